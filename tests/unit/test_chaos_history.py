"""The history recorder: pairing, faults on the same timeline, JSON, threads, misuse."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import pytest

from raftkube.testing.chaos.history import FAIL, INFO, OK, DefiniteFailure, History


def fake_clock() -> tuple[list[float], History]:
    now = [100.0]
    return now, History(clock=lambda: now[0])


def test_operations_pair_invoke_and_completion_with_times() -> None:
    now, h = fake_clock()
    a = h.invoke(1, "put", "k", 5)
    now[0] += 0.5
    b = h.invoke(2, "get", "k")
    now[0] += 0.25
    h.ok(a)
    h.ok(b, 5)
    c = h.invoke(1, "cas", "k", [5, 6])
    h.fail(c, "rejected")
    d = h.invoke(3, "put", "k", 7)
    h.info(d, "timeout")
    e = h.invoke(4, "get", "k")  # never completes
    put, get, cas, lost, pending = h.operations()
    assert (put.status, put.invoke_time, put.complete_time, put.latency) == (OK, 0, 0.75, 0.75)
    assert (get.output, get.invoke_time) == (5, 0.5)
    assert cas.status == FAIL and cas.error == "rejected"
    assert lost.status == INFO and math.isinf(lost.complete_time) and lost.latency is None
    assert pending.status == INFO and pending.op_id == e


def test_faults_share_the_timeline() -> None:
    now, h = fake_clock()
    op = h.invoke(1, "get", "k")
    now[0] += 1
    fid = h.fault_start("kill-leader", {"pid": 42})
    now[0] += 2
    h.ok(op, None)
    h.fault_stop(fid)
    open_fault = h.fault_start("partition")
    [kill, part] = h.faults()
    assert (kill.name, kill.start, kill.stop, kill.detail) == ("kill-leader", 1, 3, {"pid": 42})
    assert part.fault_id == open_fault and part.stop is None
    kinds = [type(e).__name__ for e in h.events()]
    assert kinds == ["OpEvent", "FaultEvent", "OpEvent", "FaultEvent", "FaultEvent"]


def test_json_round_trip(tmp_path: Path) -> None:
    h = History()
    h.record(1, "cas", "k", [None, 1], lambda: True)
    h.record(2, "get", ("tuple", "key"), None, lambda: {"a": [1, 2]})
    fid = h.fault_start("pause", {"pids": [1, 2]})
    h.fault_stop(fid, {"resumed": True})
    path = tmp_path / "h.json"
    h.save(path)
    back = History.load(path)
    assert back.to_dict() == History.from_json(h.to_json()).to_dict()
    assert [o.output for o in back.operations()] == [True, {"a": [1, 2]}]
    assert back.faults()[0].detail == {"pids": [1, 2]}
    # a loaded history keeps numbering after the loaded ids
    assert back.invoke(9, "get", "k") == 2


def test_malformed_json_names_the_row() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        History.from_dict({"events": []})
    bad = {"format": "raftkube-chaos-history/1",
           "events": [{"kind": "op", "type": "oops", "op_id": 0}]}
    with pytest.raises(ValueError, match=r"events\[0\]: type: 'oops'"):
        History.from_dict(bad)


def test_record_maps_exceptions_to_outcomes() -> None:
    h = History()

    def refused() -> None:
        raise DefiniteFailure("not leader")

    def timeout() -> None:
        raise TimeoutError()

    assert h.record(1, "put", "k", 1, refused).status == FAIL
    op = h.record(1, "put", "k", 2, timeout)
    assert op.status == INFO and op.error == "TimeoutError"
    assert h.record(1, "get", "k", None, lambda: 1).status == OK


def test_misuse_is_rejected() -> None:
    h = History()
    op = h.invoke(1, "get", "k")
    with pytest.raises(ValueError, match="already has an operation in flight"):
        h.invoke(1, "get", "k")
    h.ok(op, 1)
    with pytest.raises(ValueError, match="not in flight"):
        h.ok(op, 1)
    with pytest.raises(ValueError, match="not active"):
        h.fault_stop(99)


def test_many_threads_lose_nothing() -> None:
    h = History()

    def client(process: int) -> None:
        for n in range(500):
            op = h.invoke(process, "put", "k", n)
            h.ok(op)

    threads = [threading.Thread(target=client, args=(p,)) for p in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ops = h.operations()
    assert len(ops) == 4000 and all(o.status == OK for o in ops)
    assert len({o.op_id for o in ops}) == 4000
    assert [e.index for e in h.events()] == list(range(8000))
