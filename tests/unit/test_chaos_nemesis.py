"""Nemesis scheduling and partition arithmetic (real faults: tests/chaos/)."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest

from raftkube.testing.chaos.history import History
from raftkube.testing.chaos.nemesis import (
    Fault,
    FaultError,
    Nemesis,
    NemesisConfig,
    ScheduledFault,
    bridge,
    grudge_from_groups,
    isolate,
    random_halves,
)


class RecordingFault(Fault):
    """Records start/stop calls; fails to start when told to."""

    def __init__(self, name: str, log: list[str], target: Any = None,
                 fail: bool = False) -> None:
        self.name = name
        self.log = log
        self.target = target
        self.fail = fail

    def start(self) -> dict[str, Any]:
        if self.fail:
            raise FaultError(f"{self.name}: cannot")
        self.log.append(f"start {self.name} {self.target}")
        return {"target": self.target}

    def stop(self) -> dict[str, Any]:
        self.log.append(f"stop {self.name}")
        return {}


def test_grudge_from_groups_complete_partition() -> None:
    assert grudge_from_groups([["a"], ["b", "c"]]) == {"a": {"b", "c"}, "b": {"a"},
                                                       "c": {"a"}}


def test_bridge_node_sees_both_halves() -> None:
    groups = bridge(["a", "b", "c", "d", "e"], random.Random(1))
    assert len(groups[0]) == 3 and len(groups[1]) == 3
    [middle] = set(groups[0]) & set(groups[1])
    grudge = grudge_from_groups(groups)
    assert grudge[middle] == set()
    for node in set(groups[0]) - {middle}:
        assert grudge[node] == set(groups[1]) - {middle}
    with pytest.raises(ValueError, match="at least 3"):
        bridge(["a", "b"], random.Random(1))


def test_isolate_and_halves() -> None:
    assert isolate("b", ["a", "b", "c"]) == [["b"], ["a", "c"]]
    with pytest.raises(ValueError, match="'z' is not one of"):
        isolate("z", ["a"])
    minority, majority = random_halves(["a", "b", "c", "d", "e"], random.Random(2))
    assert len(minority) == 2 and len(majority) == 3


def _nemesis(log: list[str], seed: int, **cfg: Any) -> tuple[Nemesis, History]:
    history = History()
    factories = {
        "kill": lambda rng: RecordingFault("kill", log, rng.choice(["m1", "m2", "m3"])),
        "pause": lambda rng: RecordingFault("pause", log, rng.choice(["m1", "m2", "m3"])),
        "broken": lambda rng: RecordingFault("broken", log, fail=True),
    }
    config = NemesisConfig(seed=seed, quiet=(0.0, 0.01), active=(0.0, 0.01), **cfg)
    return Nemesis(history, factories, config, announce=log.append), history


def test_same_seed_replays_the_same_faults_and_targets() -> None:
    runs = []
    for _ in range(2):
        log: list[str] = []
        nemesis, _history = _nemesis(log, seed=42)
        nemesis.run_random(threading.Event(), max_faults=12)
        runs.append(log)
    assert runs[0] == runs[1]
    assert runs[0][0] == "nemesis seed=42 (replay with --seed 42)"
    other: list[str] = []
    nemesis, _ = _nemesis(other, seed=43)
    nemesis.run_random(threading.Event(), max_faults=12)
    assert other[1:] != runs[0][1:]


def test_every_fault_recorded_and_failed_start_is_reported() -> None:
    log: list[str] = []
    nemesis, history = _nemesis(log, seed=5)
    assert nemesis.start_fault("broken") is None
    fid = nemesis.start_fault("kill")
    assert fid is not None
    nemesis.heal_all()
    nemesis.heal_all()
    faults = history.faults()
    assert [f.name for f in faults] == ["broken", "kill"]
    assert all(f.stop is not None for f in faults)
    assert "cannot" in faults[0].detail["error"]
    assert nemesis.errors == ["broken: start: FaultError: broken: cannot"]
    assert log.count("stop kill") == 1


def test_unknown_fault_name_is_an_error() -> None:
    nemesis, _ = _nemesis([], seed=1)
    with pytest.raises(ValueError, match="unknown fault 'nope'"):
        nemesis.start_fault("nope")


def test_schedule_runs_in_time_order_with_overlap() -> None:
    log: list[str] = []
    nemesis, history = _nemesis(log, seed=9)
    schedule = [ScheduledFault(0.0, "kill", 0.2), ScheduledFault(0.05, "pause", 0.05)]
    nemesis.run_schedule(schedule, threading.Event())
    names = [line.split()[0] + " " + line.split()[1] for line in log[1:]]
    assert names == ["start kill", "start pause", "stop pause", "stop kill"]
    kill, pause = history.faults()
    assert kill.start <= pause.start and pause.stop is not None and kill.stop is not None
    assert pause.stop <= kill.stop


def test_stop_event_ends_random_mode_and_heals() -> None:
    log: list[str] = []
    history = History()
    nemesis = Nemesis(history, {"kill": lambda rng: RecordingFault("kill", log)},
                      NemesisConfig(seed=1, quiet=(0, 0), active=(30, 30)),
                      announce=lambda _: None)
    stop = threading.Event()
    thread = threading.Thread(target=nemesis.run_random, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 10
    while not log:
        assert time.monotonic() < deadline, "the nemesis never started a fault"
        time.sleep(0.01)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert log == ["start kill None", "stop kill"]
