"""Label selectors and field selectors: parse, match, print. Pure functions.

Label selector text has the kubectl grammar, terms separated by commas and ANDed:
`app=web`, `app==web`, `tier!=db`, `env in (a,b)`, `env notin (a,b)`, `x` (key exists),
`!x` (key absent), `n>3` / `n<3` (integer compare). `!=` and `notin` also match objects
without the key, as in Kubernetes.

Field selector text: `spec.nodeName=w1,status.phase!=Running` (`=`, `==`, `!=`), compared
with the string form of the field (unset -> "", booleans "true"/"false").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from raftkube.api.v1 import meta_pb2, pod_pb2
from raftkube.objects.names import label_value_problems, qualified_name_problems

IN, NOT_IN, EXISTS, DOES_NOT_EXIST = "In", "NotIn", "Exists", "DoesNotExist"
EQUALS, NOT_EQUALS, GREATER, LESS = "=", "!=", "Gt", "Lt"
EXPRESSION_OPERATORS = (IN, NOT_IN, EXISTS, DOES_NOT_EXIST)


class SelectorError(ValueError):
    """A selector does not parse or refers to something that does not exist."""


@dataclass(frozen=True)
class Requirement:
    """One term: `key` `operator` `values`."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator in (IN, EQUALS):
            return present and value in self.values
        if self.operator in (NOT_IN, NOT_EQUALS):
            return not present or value not in self.values
        if self.operator == EXISTS:
            return present
        if self.operator == DOES_NOT_EXIST:
            return not present
        if self.operator in (GREATER, LESS):
            try:
                have, want = int(value or ""), int(self.values[0])
            except ValueError:
                return False
            return have > want if self.operator == GREATER else have < want
        raise SelectorError(f"unknown operator {self.operator!r}")

    def __str__(self) -> str:
        if self.operator == EXISTS:
            return self.key
        if self.operator == DOES_NOT_EXIST:
            return f"!{self.key}"
        if self.operator in (EQUALS, NOT_EQUALS):
            return f"{self.key}{self.operator}{self.values[0]}"
        if self.operator in (GREATER, LESS):
            return f"{self.key}{'>' if self.operator == GREATER else '<'}{self.values[0]}"
        word = "in" if self.operator == IN else "notin"
        return f"{self.key} {word} ({','.join(self.values)})"


@dataclass(frozen=True)
class LabelSelector:
    """Requirements ANDed together. No requirements: matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def empty(self) -> bool:
        return not self.requirements

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


_KEY = r"[^\s!=<>(),]+"
_VALUE = r"[^\s!=<>(),]*"
_NOT_EXISTS_RE = re.compile(rf"!\s*({_KEY})")
_SET_RE = re.compile(rf"({_KEY})\s+(in|notin)\s*\((.*)\)")
_EQ_RE = re.compile(rf"({_KEY})\s*(==|=|!=)\s*({_VALUE})")
_CMP_RE = re.compile(rf"({_KEY})\s*([<>])\s*(-?\d+)")
_EXISTS_RE = re.compile(rf"({_KEY})")


def _split_terms(text: str) -> list[str]:
    terms, depth, current = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced ')' in selector {text!r}")
        if ch == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth != 0:
        raise SelectorError(f"unbalanced '(' in selector {text!r}")
    terms.append("".join(current))
    return terms


def _check_key(key: str, term: str) -> None:
    problems = qualified_name_problems(key)
    if problems:
        raise SelectorError(f"invalid label key in {term!r}: {problems[0]}")


def _check_value(value: str, term: str) -> None:
    problems = label_value_problems(value)
    if problems:
        raise SelectorError(f"invalid label value in {term!r}: {problems[0]}")


def parse_label_selector(text: str) -> LabelSelector:
    """Parse kubectl label-selector text; "" means everything. Raise SelectorError."""
    if not text.strip():
        return LabelSelector()
    requirements = []
    for raw in _split_terms(text):
        term = raw.strip()
        if not term:
            raise SelectorError(f"empty term in selector {text!r}")
        if m := _NOT_EXISTS_RE.fullmatch(term):
            _check_key(m[1], term)
            requirements.append(Requirement(m[1], DOES_NOT_EXIST))
        elif m := _SET_RE.fullmatch(term):
            _check_key(m[1], term)
            values = tuple(v.strip() for v in m[3].split(","))
            if values == ("",):
                raise SelectorError(f"{term!r}: 'in' and 'notin' need at least one value")
            for v in values:
                _check_value(v, term)
            requirements.append(Requirement(m[1], IN if m[2] == "in" else NOT_IN, values))
        elif m := _CMP_RE.fullmatch(term):
            _check_key(m[1], term)
            requirements.append(Requirement(m[1], GREATER if m[2] == ">" else LESS, (m[3],)))
        elif m := _EQ_RE.fullmatch(term):
            _check_key(m[1], term)
            _check_value(m[3], term)
            requirements.append(Requirement(m[1], NOT_EQUALS if m[2] == "!=" else EQUALS, (m[3],)))
        elif m := _EXISTS_RE.fullmatch(term):
            _check_key(m[1], term)
            requirements.append(Requirement(m[1], EXISTS))
        else:
            raise SelectorError(f"cannot parse selector term {term!r}")
    return LabelSelector(tuple(requirements))


def selector_from_map(labels: Mapping[str, str]) -> LabelSelector:
    """key=value for every entry (Service.spec.selector, nodeSelector), sorted by key."""
    return LabelSelector(tuple(Requirement(k, EQUALS, (labels[k],)) for k in sorted(labels)))


def selector_from_proto(selector: meta_pb2.LabelSelector) -> LabelSelector:
    """The selector a LabelSelector message describes. An empty message matches
    everything. Raise SelectorError for an unknown operator or wrong value count."""
    requirements = list(selector_from_map(selector.match_labels).requirements)
    for expr in selector.match_expressions:
        if expr.operator not in EXPRESSION_OPERATORS:
            raise SelectorError(
                f"{expr.operator!r} is not a valid operator "
                f"(use one of {', '.join(EXPRESSION_OPERATORS)})"
            )
        if expr.operator in (IN, NOT_IN) and not expr.values:
            raise SelectorError(f"operator {expr.operator} needs at least one value")
        if expr.operator in (EXISTS, DOES_NOT_EXIST) and expr.values:
            raise SelectorError(f"operator {expr.operator} takes no values")
        requirements.append(Requirement(expr.key, expr.operator, tuple(expr.values)))
    return LabelSelector(tuple(requirements))


# ---- field selectors -----------------------------------------------------------------


@dataclass(frozen=True)
class FieldRequirement:
    """`path` (JSON field path such as spec.nodeName) equals / differs from `value`."""

    path: str
    operator: str  # EQUALS or NOT_EQUALS
    value: str

    def __str__(self) -> str:
        return f"{self.path}{self.operator}{self.value}"


@dataclass(frozen=True)
class FieldSelector:
    """Field requirements ANDed together. No requirements: matches everything."""

    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Message) -> bool:
        """Raise SelectorError when a path does not name a scalar field of `obj`."""
        for req in self.requirements:
            have = field_value(obj, req.path)
            if (have == req.value) != (req.operator == EQUALS):
                return False
        return True

    def check_paths(self, message_class: type[Message]) -> None:
        """Raise SelectorError naming the first path that is not a scalar field of the kind."""
        for req in self.requirements:
            _resolve_path(message_class.DESCRIPTOR, req.path)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


_FIELD_TERM_RE = re.compile(r"\s*([A-Za-z][A-Za-z0-9_.]*)\s*(==|=|!=)\s*(.*?)\s*")


def parse_field_selector(text: str) -> FieldSelector:
    """Parse `path=value,path!=value`; "" means everything. Raise SelectorError."""
    if not text.strip():
        return FieldSelector()
    requirements = []
    for term in text.split(","):
        m = _FIELD_TERM_RE.fullmatch(term)
        if m is None:
            raise SelectorError(f"cannot parse field selector term {term.strip()!r}")
        op = NOT_EQUALS if m[2] == "!=" else EQUALS
        requirements.append(FieldRequirement(m[1], op, m[3]))
    return FieldSelector(tuple(requirements))


def _resolve_path(descriptor: Descriptor, path: str) -> list[FieldDescriptor]:
    fields = []
    current: Descriptor | None = descriptor
    for part in path.split("."):
        if current is None:
            raise SelectorError(f"field selector {path!r}: {fields[-1].json_name} is not an object")
        field = next((f for f in current.fields if f.json_name == part), None)
        if field is None or field.is_repeated:
            raise SelectorError(
                f"field selector {path!r}: {part!r} is not a supported field of "
                f"{descriptor.name}"
            )
        fields.append(field)
        current = field.message_type
    if current is not None and current.full_name != meta_pb2.IntOrString.DESCRIPTOR.full_name:
        raise SelectorError(f"field selector {path!r} must name a scalar field")
    return fields


def field_value(obj: Message, path: str) -> str:
    """The string form of the scalar field at `path` ("" when unset). Raise SelectorError
    when the path is not a scalar field of this kind."""
    value: object = obj
    for field in _resolve_path(obj.DESCRIPTOR, path):
        value = getattr(value, field.name)
    if isinstance(value, meta_pb2.IntOrString):
        which = value.WhichOneof("value")
        return "" if which is None else str(getattr(value, which))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ---- node selectors (node affinity, PersistentVolume node affinity) -------------------


def _node_requirement_matches(operator: str, values: tuple[str, ...], value: str | None) -> bool:
    present = value is not None
    if operator == IN:
        return present and value in values
    if operator == NOT_IN:
        return not present or value not in values
    if operator == EXISTS:
        return present
    if operator == DOES_NOT_EXIST:
        return not present
    if operator in (GREATER, LESS):
        try:
            have, want = int(value or ""), int(values[0])
        except (ValueError, IndexError):
            return False
        return have > want if operator == GREATER else have < want
    return False


def node_selector_term_matches(
    term: pod_pb2.NodeSelectorTerm, node_labels: Mapping[str, str], node_name: str
) -> bool:
    """A term matches when every matchExpression matches the node's labels and every
    matchField matches its fields (only `metadata.name` exists). A term with no
    requirements matches nothing, as in Kubernetes. Unknown operators never match."""
    if not term.match_expressions and not term.match_fields:
        return False
    for req in term.match_expressions:
        if not _node_requirement_matches(req.operator, tuple(req.values),
                                         node_labels.get(req.key)):
            return False
    for req in term.match_fields:
        value = node_name if req.key == "metadata.name" else None
        if not _node_requirement_matches(req.operator, tuple(req.values), value):
            return False
    return True


def node_selector_matches(
    selector: pod_pb2.NodeSelector, node_labels: Mapping[str, str], node_name: str
) -> bool:
    """True when any term matches (terms are ORed); no terms match nothing."""
    return any(
        node_selector_term_matches(term, node_labels, node_name)
        for term in selector.node_selector_terms
    )
