"""The linearizability checker on hand-made and generated register histories."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Hashable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftkube.testing.chaos.history import FAIL, INFO, OK, History, Operation
from raftkube.testing.chaos.linearizability import (
    LINEARIZABLE,
    NOT_LINEARIZABLE,
    UNKNOWN,
    UNKNOWN_OUTPUT,
    Model,
    RegisterModel,
    check,
)
from raftkube.testing.chaos.synthetic import SyntheticConfig, register_history

_ids = itertools.count()


def op(process: int, f: str, key: Any, inp: Any, out: Any, start: float, end: float,
       status: str = OK) -> Operation:
    return Operation(next(_ids), process, f, key, inp, out if status == OK else None, status,
                     start, end if status != INFO else math.inf)


def test_sequential_history_is_linearizable() -> None:
    h = [op(1, "put", "x", 1, None, 0, 1), op(1, "get", "x", None, 1, 2, 3),
         op(1, "cas", "x", [1, 2], True, 4, 5), op(1, "get", "x", None, 2, 6, 7),
         op(1, "cas", "x", [1, 3], False, 8, 9)]
    result = check(h)
    assert result.outcome == LINEARIZABLE
    assert result.valid is True


def test_concurrent_overlapping_ops_may_reorder() -> None:
    # The read of 2 overlaps the put(2) and the put(1): linearizable as put1, put2, get.
    h = [op(1, "put", "x", 1, None, 0, 10), op(2, "put", "x", 2, None, 1, 3),
         op(3, "get", "x", None, 1, 4, 5), op(3, "get", "x", None, 2, 0.5, 2)]
    assert check(h).outcome == LINEARIZABLE


def test_stale_read_is_detected_with_a_readable_report() -> None:
    h = [op(1, "put", "x", 1, None, 0, 1), op(1, "put", "x", 2, None, 2, 3),
         op(2, "get", "x", None, 1, 4, 5)]
    result = check(h)
    assert result.outcome == NOT_LINEARIZABLE
    assert result.valid is False
    failure = result.failures[0]
    assert failure.key == "x"
    assert failure.culprit.f == "get" and failure.culprit.output == 1
    text = result.summary()
    assert "not_linearizable" in text and "get('x') -> 1" in text


def test_lost_write_is_detected() -> None:
    # put(2) acknowledged, later reads see the older value 1 forever.
    h = [op(1, "put", "x", 1, None, 0, 1), op(2, "put", "x", 2, None, 2, 3),
         op(3, "get", "x", None, 2, 3.5, 4), op(3, "get", "x", None, 1, 5, 6)]
    assert check(h).outcome == NOT_LINEARIZABLE


def test_cas_anomaly_two_successful_cas_from_same_value() -> None:
    h = [op(1, "put", "x", 0, None, 0, 1), op(2, "cas", "x", [0, 1], True, 2, 4),
         op(3, "cas", "x", [0, 2], True, 2.5, 4.5)]
    result = check(h)
    assert result.outcome == NOT_LINEARIZABLE
    assert result.failures[0].culprit.f == "cas"


def test_cas_false_when_value_matched_is_illegal() -> None:
    h = [op(1, "put", "x", 5, None, 0, 1), op(2, "cas", "x", [5, 6], False, 2, 3)]
    assert check(h).outcome == NOT_LINEARIZABLE


def test_info_write_may_have_happened_makes_history_legal() -> None:
    h = [op(1, "put", "x", 1, None, 0, 1), op(2, "put", "x", 2, None, 2, 3, status=INFO),
         op(3, "get", "x", None, 2, 10, 11), op(3, "get", "x", None, 2, 12, 13)]
    assert check(h).outcome == LINEARIZABLE


def test_info_write_may_not_have_happened() -> None:
    h = [op(1, "put", "x", 1, None, 0, 1), op(2, "put", "x", 2, None, 2, 3, status=INFO),
         op(3, "get", "x", None, 1, 10, 11)]
    assert check(h).outcome == LINEARIZABLE


def test_info_write_cannot_happen_before_its_invoke() -> None:
    h = [op(1, "put", "x", 1, None, 0, 1), op(3, "get", "x", None, 2, 2, 3),
         op(2, "put", "x", 2, None, 5, 6, status=INFO)]
    assert check(h).outcome == NOT_LINEARIZABLE


def test_info_cas_may_have_taken_effect_late() -> None:
    h = [op(1, "put", "x", 1, None, 0, 1), op(2, "cas", "x", [1, 9], None, 2, 3, status=INFO),
         op(3, "get", "x", None, 1, 4, 5), op(3, "get", "x", None, 9, 6, 7)]
    assert check(h).outcome == LINEARIZABLE


def test_failed_write_definitely_did_not_happen() -> None:
    h = [op(1, "put", "x", 1, None, 0, 1), op(2, "put", "x", 2, None, 2, 3, status=FAIL),
         op(3, "get", "x", None, 2, 4, 5)]
    assert check(h).outcome == NOT_LINEARIZABLE


def test_keys_are_independent_and_failure_names_the_key() -> None:
    h = [op(1, "put", "a", 1, None, 0, 1), op(1, "get", "a", None, 1, 2, 3),
         op(2, "put", "b", 1, None, 0, 1), op(2, "get", "b", None, 7, 2, 3)]
    result = check(h)
    assert result.outcome == NOT_LINEARIZABLE
    assert [f.key for f in result.failures] == ["b"]
    assert {p.key: p.outcome for p in result.partitions} == {
        "a": LINEARIZABLE, "b": NOT_LINEARIZABLE}


def test_shortest_failing_prefix_ends_at_first_bad_read() -> None:
    h = [op(1, "put", "x", 1, None, 0, 1), op(1, "get", "x", None, 5, 2, 3)]
    # many legal ops after the bad read must not be in the failing prefix
    t = 4.0
    for i in range(30):
        h.append(op(1 + i % 3, "put", "x", i, None, t, t + 0.5))
        h.append(op(4, "get", "x", None, i, t + 0.6, t + 0.9))
        t += 1
    failure = check(h).failures[0]
    assert failure.prefix_end == 3
    assert failure.culprit.output == 5
    assert len(failure.prefix_ops) == 2


def test_works_from_a_recorded_history() -> None:
    history = History()
    store: dict[str, int] = {}
    history.record(1, "put", "k", 3, lambda: store.__setitem__("k", 3))
    history.record(2, "get", "k", None, lambda: store.get("k"))
    assert check(history).outcome == LINEARIZABLE
    history.record(2, "get", "k", None, lambda: 4)
    assert check(history).outcome == NOT_LINEARIZABLE


class CounterModel(Model):
    """A plugged-in model: increment returns the new value."""

    def init(self) -> Hashable:
        return 0

    def step(self, state: Hashable, f: str, input: Any, output: Any) -> tuple[bool, Hashable]:
        assert isinstance(state, int)
        new = state + 1
        return output is UNKNOWN_OUTPUT or output == new, new


def test_other_models_plug_in() -> None:
    good = [op(1, "inc", None, None, 1, 0, 2), op(2, "inc", None, None, 2, 1, 3)]
    bad = [op(1, "inc", None, None, 1, 0, 1), op(2, "inc", None, None, 1, 2, 3)]
    assert check(good, CounterModel()).outcome == LINEARIZABLE
    assert check(bad, CounterModel()).outcome == NOT_LINEARIZABLE


def test_time_limit_gives_unknown() -> None:
    # Many concurrent writes of distinct values and a read of a value nobody wrote at the
    # end: the search must explore every order, which takes far longer than the limit.
    h = [op(i, "put", "x", i, None, 0, 100) for i in range(40)]
    h += [op(50 + i, "get", "x", None, i, 1 + i * 0.01, 99) for i in range(40)]
    h.append(op(99, "get", "x", None, -1, 101, 102))
    result = check(h, time_limit=0.3)
    assert result.outcome == UNKNOWN
    assert result.valid is None
    assert "time limit" in result.summary()


# -- generated histories -----------------------------------------------------------------


def generated_history(seed: int, n_ops: int, keys: int, clients: int) -> list[Operation]:
    config = SyntheticConfig(ops=n_ops, keys=keys, clients=clients, unknown_share=0.05,
                             failed_share=0.02)
    return register_history(seed, config)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32), n_ops=st.integers(1, 120), keys=st.integers(1, 3),
       clients=st.integers(1, 6))
def test_generated_sequential_histories_are_linearizable(seed: int, n_ops: int, keys: int,
                                                         clients: int) -> None:
    h = generated_history(seed, n_ops, keys, clients)
    result = check(h, time_limit=30)
    assert result.outcome == LINEARIZABLE, result.summary()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32), n_ops=st.integers(2, 120), keys=st.integers(1, 3),
       clients=st.integers(1, 6), pick=st.integers(0, 10**6))
def test_single_corrupted_read_is_detected(seed: int, n_ops: int, keys: int, clients: int,
                                           pick: int) -> None:
    h = generated_history(seed, n_ops, keys, clients)
    reads = [i for i, o in enumerate(h) if o.f == "get" and o.status == OK]
    if not reads:
        h.append(op(0, "get", "k0", None, None, 1e6, 1e6 + 1))
        reads = [len(h) - 1]
    victim = reads[pick % len(reads)]
    bad = h[victim]
    h[victim] = Operation(bad.op_id, bad.process, bad.f, bad.key, bad.input, -12345, OK,
                          bad.invoke_time, bad.complete_time)
    result = check(h, time_limit=30)
    assert result.outcome == NOT_LINEARIZABLE
    assert result.failures[0].culprit.op_id == bad.op_id


def test_checker_speed_5000_ops_5_keys_10_clients(capsys: Any) -> None:
    h = generated_history(seed=7, n_ops=5000, keys=5, clients=10)
    started = time.monotonic()
    result = check(h, time_limit=120)
    elapsed = time.monotonic() - started
    assert result.outcome == LINEARIZABLE
    with capsys.disabled():
        print(f"\nlinearizability checker: 5000 ops, 5 keys, 10 clients: {elapsed:.3f}s "
              f"({max_in_flight(h)} ok ops in flight at most)")


def max_in_flight(ops: list[Operation]) -> int:
    done = [o for o in ops if o.status == OK]
    edges = sorted([(o.invoke_time, 1) for o in done] + [(o.complete_time, -1) for o in done])
    level = best = 0
    for _, delta in edges:
        level += delta
        best = max(best, level)
    return best


def brute_force_linearizable(ops: list[Operation]) -> bool:
    """Every subset of unknown ops, every order respecting real time, on a plain dict."""
    model = RegisterModel()
    done = [o for o in ops if o.status == OK]
    maybe = [o for o in ops if o.status == INFO]
    for mask in range(1 << len(maybe)):
        chosen = done + [o for n, o in enumerate(maybe) if mask >> n & 1]
        for order in itertools.permutations(chosen):
            if any(b.complete_time < a.invoke_time
                   for n, a in enumerate(order) for b in order[n + 1:]):
                continue
            states: dict[Any, Any] = {}
            legal = True
            for o in order:
                out = o.output if o.status == OK else UNKNOWN_OUTPUT
                legal, states[o.key] = model.step(states.get(o.key), o.f, o.input, out)
                if not legal:
                    break
            if legal:
                return True
    return False


small_op = st.tuples(
    st.sampled_from(["get", "put", "cas"]), st.sampled_from(["a", "b"]),
    st.integers(0, 3), st.integers(0, 3), st.booleans(),
    st.floats(0, 10), st.floats(0, 3), st.sampled_from([OK, OK, INFO, FAIL]))


@settings(max_examples=300, deadline=None)
@given(st.lists(small_op, min_size=1, max_size=6))
def test_checker_agrees_with_brute_force_on_small_histories(rows: list[Any]) -> None:
    ops = []
    for process, (f, key, a, b, swapped, start, length, status) in enumerate(rows):
        if f == "get":
            inp, out = None, (None if a == 0 else a)
        elif f == "put":
            inp, out = a, None
        else:
            inp, out = [None if a == 0 else a, b], swapped
        ops.append(op(process, f, key, inp, out, start, start + length, status))
    result = check(ops, time_limit=30)
    assert result.outcome != UNKNOWN
    assert result.valid == brute_force_linearizable(ops), result.summary()


@settings(max_examples=300, deadline=None)
@given(st.lists(small_op, min_size=1, max_size=6))
def test_checker_agrees_with_brute_force_with_unique_writes(rows: list[Any]) -> None:
    # Unique written values (as the workloads write): exercises the observed-write rules.
    ops = []
    for process, (f, key, a, _b, swapped, start, length, status) in enumerate(rows):
        seen = None if a == 0 else 10 + a
        if f == "get":
            inp, out = None, seen
        elif f == "put":
            inp, out = 10 + process, None
        else:
            inp, out = [seen, 10 + process], swapped
        ops.append(op(process, f, key, inp, out, start, start + length, status))
    result = check(ops, time_limit=30)
    assert result.outcome != UNKNOWN
    assert result.valid == brute_force_linearizable(ops), result.summary()


def test_operation_completing_before_invoke_is_rejected() -> None:
    with pytest.raises(ValueError, match="before its invoke"):
        check([op(1, "put", "x", 1, None, 5, 4)])
