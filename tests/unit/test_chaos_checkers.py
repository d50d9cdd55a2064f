"""Set, watch, convergence, divergence, ordinal and availability checkers."""

from __future__ import annotations

import itertools
import math

from raftkube.testing.chaos.checkers import (
    OrdinalInterval,
    Sample,
    WatchEvent,
    check_divergence,
    check_ordinal_uniqueness,
    check_set,
    check_watches,
    samples_from_history,
    summarize_availability,
    wait_converged,
)
from raftkube.testing.chaos.history import FAIL, INFO, OK, DefiniteFailure, History, Operation

_ids = itertools.count()


def add(element: int, status: str) -> Operation:
    return Operation(next(_ids), 1, "add", None, element, None, status, 0, 1 if status != INFO
                     else math.inf)


def test_set_all_acknowledged_present_is_valid() -> None:
    ops = [add(1, OK), add(2, OK), add(3, FAIL), add(4, INFO), add(5, INFO)]
    result = check_set(ops, [1, 2, 4])
    assert result.valid
    assert result.acknowledged == 2
    assert result.unknown_present == [4] and result.unknown_absent == [5]


def test_set_lost_unexpected_and_phantom_elements_are_reported() -> None:
    ops = [add(1, OK), add(2, OK), add(3, FAIL)]
    result = check_set(ops, [1, 3, 99])
    assert not result.valid
    assert result.lost == [2] and result.unexpected == [3] and result.phantom == [99]
    assert "1 lost [2]" in result.summary()


def test_set_retried_add_acknowledged_once_counts() -> None:
    result = check_set([add(7, FAIL), add(7, OK)], [7])
    assert result.valid and result.unexpected == []


def test_set_from_recorded_history() -> None:
    h = History()
    members: set[int] = set()
    h.record(1, "add", None, 1, lambda: members.add(1))

    def refuse() -> None:
        raise DefiniteFailure("rejected")

    h.record(1, "add", None, 2, refuse)
    assert check_set(h, members).valid
    assert not check_set(h, set()).valid


def test_watch_streams_in_order_without_gaps_are_valid() -> None:
    truth = {1: "a", 2: "b", 3: "c", 4: "d"}
    observed = {
        "m1": [WatchEvent(r, p) for r, p in truth.items()],
        "m2": [WatchEvent(3, "c"), WatchEvent(4, "d")],  # started late: fine
    }
    assert check_watches(truth, observed).valid


def test_watch_gap_duplicate_reorder_and_mismatch_are_reported() -> None:
    truth = [1, 2, 3, 4, 5]
    observed = {
        "gap": [WatchEvent(1, "a"), WatchEvent(3, "c"), WatchEvent(4, "d")],
        "dup": [WatchEvent(1, "a"), WatchEvent(2, "b"), WatchEvent(2, "b")],
        "order": [WatchEvent(1, "a"), WatchEvent(3, "c"), WatchEvent(2, "b")],
        "payload": [WatchEvent(1, "a"), WatchEvent(2, "X")],
        "ghost": [WatchEvent(9, "z")],
    }
    result = check_watches(truth, observed)
    by = {w.watcher: w for w in result.watchers}
    assert by["gap"].gaps == [2]
    assert by["dup"].duplicates == [2]
    assert by["order"].out_of_order == [(3, 2)]
    assert by["payload"].mismatched == [2]
    assert by["payload"].mismatch_samples == [(2, "b", "X")]
    assert by["ghost"].unknown == [9]
    assert not result.valid
    assert "gaps [2]" in result.summary()
    assert "at 2: expected 'b', received 'X'" in result.summary()


def test_watch_start_revision_catches_missing_first_events() -> None:
    observed = {"w": [WatchEvent(3), WatchEvent(4)]}
    result = check_watches([1, 2, 3, 4], observed, start_revisions={"w": 1})
    assert result.watchers[0].gaps == [1, 2]


def test_wait_converged_records_time_and_errors() -> None:
    now = [0.0]
    calls = iter([RuntimeError("not yet"), False, True])

    def predicate() -> bool:
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    def sleep(seconds: float) -> None:
        now[0] += seconds

    result = wait_converged(predicate, timeout=5, what="deploy", interval=1,
                            clock=lambda: now[0], sleep=sleep)
    assert result.converged and result.polls == 3 and result.elapsed == 2


def test_wait_converged_times_out() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    result = wait_converged(lambda: False, timeout=2.5, interval=1, clock=lambda: now[0],
                            sleep=sleep)
    assert not result.converged and result.elapsed == 2.5
    assert "did NOT converge" in result.summary()


def test_divergence_equal_and_different_hashes() -> None:
    same = check_divergence({"m1": {5: "h5", 6: "h6"}, "m2": {5: "h5"}, "m3": {6: "h6"}})
    assert same.valid is True and same.compared == [5, 6]
    diff = check_divergence({"m1": {5: "h5"}, "m2": {5: "XX"}})
    assert diff.valid is False and diff.diverged == {5: {"m1": "h5", "m2": "XX"}}
    assert check_divergence({"m1": {5: "h"}}).valid is None


def test_ordinal_overlap_detected_and_sequential_incarnations_ok() -> None:
    ok = [OrdinalInterval(0, "n1", 0, 5), OrdinalInterval(0, "n2", 5, None),
          OrdinalInterval(1, "n1", 0, None)]
    assert check_ordinal_uniqueness(ok).valid
    bad = [*ok, OrdinalInterval(1, "n3", 10, 12)]
    result = check_ordinal_uniqueness(bad)
    assert not result.valid
    assert [(a.node, b.node) for a, b in result.overlaps] == [("n1", "n3")]


def test_availability_share_and_longest_gap() -> None:
    samples = [Sample(t, ok, 0.01) for t, ok in
               [(0, True), (1, True), (2, False), (3, False), (4, False), (5, True), (6, True)]]
    result = summarize_availability(samples, max_failed_share=0.5, max_gap=5)
    assert result.requests == 7 and result.failed == 3
    assert math.isclose(result.longest_gap, 4.0)
    assert math.isclose(result.gap_start, 1.01)
    assert result.valid is True
    assert summarize_availability(samples, max_gap=1).valid is False


def test_availability_gap_at_the_end_counts() -> None:
    samples = [Sample(0, True, 0.0), Sample(1, False, 0.0)]
    result = summarize_availability(samples, start=0, end=10)
    assert result.longest_gap == 10 and result.gap_start == 0


def test_availability_from_history() -> None:
    h = History()
    h.record(1, "http", None, None, lambda: 200)

    def boom() -> None:
        raise OSError("refused")

    h.record(1, "http", None, None, boom)
    samples = samples_from_history(h, f="http")
    assert [s.ok for s in samples] == [True, False]
