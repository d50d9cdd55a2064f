"""Label and field selectors parse kubectl's grammar and match like Kubernetes."""

from __future__ import annotations

import pytest

from raftkube.api.v1 import meta_pb2, pod_pb2
from raftkube.objects.selectors import (
    LabelSelector,
    SelectorError,
    field_value,
    node_selector_matches,
    node_selector_term_matches,
    parse_field_selector,
    parse_label_selector,
    selector_from_map,
    selector_from_proto,
)

LABELS = {"app": "web", "tier": "frontend", "env": "prod", "replicas": "5",
          "example.com/owner": "team-a"}


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app=db", False),
        ("tier!=db", True),
        ("tier!=frontend", False),
        ("missing!=x", True),
        ("env in (prod,staging)", True),
        ("env in (staging)", False),
        ("env notin (dev, staging)", True),
        ("env notin (prod)", False),
        ("missing notin (x)", True),
        ("app", True),
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("replicas>3", True),
        ("replicas<3", False),
        ("app>3", False),
        ("example.com/owner=team-a", True),
        ("app=web,tier!=db", True),
        ("app=web, env in (prod), !canary", True),
        ("app=web,tier=db", False),
    ],
)
def test_label_selector_matching(text: str, matches: bool) -> None:
    assert parse_label_selector(text).matches(LABELS) is matches


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a in ()", "need at least one value"),
        ("a=b=c", "cannot parse"),
        ("a in (b", "unbalanced '('"),
        ("a)", "unbalanced ')'"),
        ("=x", "cannot parse"),
        ("app=web,,tier=x", "empty term"),
        ("app=-bad-", "invalid label value"),
        ("-bad-", "invalid label key"),
    ],
)
def test_label_selector_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_label_selector(text)
    assert message in str(info.value)


def test_printing_a_parsed_selector_gives_text_that_parses_to_the_same_selector() -> None:
    selector = parse_label_selector("app=web,tier!=db,env in (a,b),env notin (c),x,!y,n>3")
    assert str(selector) == "app=web,tier!=db,env in (a,b),env notin (c),x,!y,n>3"
    assert parse_label_selector(str(selector)) == selector


def test_selector_from_map_and_proto() -> None:
    assert selector_from_map({"b": "2", "a": "1"}) == parse_label_selector("a=1,b=2")
    proto = meta_pb2.LabelSelector(
        match_labels={"app": "web"},
        match_expressions=[meta_pb2.LabelSelectorRequirement(key="env", operator="In",
                                                             values=["prod"])],
    )
    selector = selector_from_proto(proto)
    assert selector.matches({"app": "web", "env": "prod"})
    assert not selector.matches({"app": "web", "env": "dev"})
    assert selector_from_proto(meta_pb2.LabelSelector()) == LabelSelector()


@pytest.mark.parametrize(
    ("operator", "values", "message"),
    [("Equals", ["x"], "not a valid operator"), ("In", [], "at least one value"),
     ("Exists", ["x"], "takes no values")],
)
def test_selector_from_proto_rejects_bad_expressions(operator, values, message) -> None:
    proto = meta_pb2.LabelSelector(
        match_expressions=[meta_pb2.LabelSelectorRequirement(key="k", operator=operator,
                                                             values=values)]
    )
    with pytest.raises(SelectorError, match=message):
        selector_from_proto(proto)


def _pod() -> pod_pb2.Pod:
    pod = pod_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.name = "web-1"
    pod.metadata.namespace = "demo"
    pod.spec.node_name = "w1"
    pod.status.phase = "Running"
    pod.spec.host_network = False
    return pod


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("", True),
        ("spec.nodeName=w1", True),
        ("spec.nodeName==w1", True),
        ("spec.nodeName=w2", False),
        ("spec.nodeName!=w2", True),
        ("metadata.name=web-1,metadata.namespace=demo", True),
        ("status.phase!=Running", False),
        ("status.podIP=", True),
        ("spec.hostNetwork=false", True),
    ],
)
def test_field_selector_matching(text: str, matches: bool) -> None:
    assert parse_field_selector(text).matches(_pod()) is matches


def test_field_selector_errors_name_the_bad_field() -> None:
    with pytest.raises(SelectorError, match="'nodeNme' is not a supported field of Pod"):
        parse_field_selector("spec.nodeNme=w1").check_paths(pod_pb2.Pod)
    with pytest.raises(SelectorError, match="must name a scalar field"):
        parse_field_selector("spec=x").matches(_pod())
    with pytest.raises(SelectorError, match="cannot parse"):
        parse_field_selector("spec.nodeName")
    with pytest.raises(SelectorError, match="not a supported field"):
        field_value(_pod(), "spec.containers")


def test_field_value_reads_strings_numbers_and_bools() -> None:
    pod = _pod()
    pod.spec.termination_grace_period_seconds = 30
    assert field_value(pod, "spec.nodeName") == "w1"
    assert field_value(pod, "spec.terminationGracePeriodSeconds") == "30"
    assert field_value(pod, "spec.hostNetwork") == "false"


def _term(*exprs, fields=()) -> pod_pb2.NodeSelectorTerm:
    return pod_pb2.NodeSelectorTerm(
        match_expressions=[pod_pb2.NodeSelectorRequirement(key=k, operator=o, values=v)
                           for k, o, v in exprs],
        match_fields=[pod_pb2.NodeSelectorRequirement(key=k, operator=o, values=v)
                      for k, o, v in fields],
    )


NODE_LABELS = {"zone": "a", "disk": "ssd", "cores": "8"}


@pytest.mark.parametrize(
    ("term", "matches"),
    [
        (_term(("zone", "In", ["a", "b"])), True),
        (_term(("zone", "NotIn", ["a"])), False),
        (_term(("gpu", "NotIn", ["x"])), True),
        (_term(("disk", "Exists", [])), True),
        (_term(("gpu", "DoesNotExist", [])), True),
        (_term(("cores", "Gt", ["4"])), True),
        (_term(("cores", "Lt", ["4"])), False),
        (_term(("zone", "Gt", ["4"])), False),
        (_term(("zone", "In", ["a"]), ("disk", "In", ["hdd"])), False),
        (_term(fields=[("metadata.name", "In", ["w1"])]), True),
        (_term(fields=[("metadata.name", "NotIn", ["w1"])]), False),
        (_term(("zone", "Equals", ["a"])), False),
        (_term(), False),
    ],
)
def test_node_selector_terms(term, matches) -> None:
    assert node_selector_term_matches(term, NODE_LABELS, "w1") is matches


def test_node_selector_terms_are_ored_and_empty_matches_nothing() -> None:
    selector = pod_pb2.NodeSelector(node_selector_terms=[
        _term(("zone", "In", ["b"])), _term(("disk", "In", ["ssd"]))])
    assert node_selector_matches(selector, NODE_LABELS, "w1")
    assert not node_selector_matches(pod_pb2.NodeSelector(), NODE_LABELS, "w1")
