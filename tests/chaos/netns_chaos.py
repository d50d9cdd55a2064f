"""One chaos run against masters in network namespaces: the piece every test shares.

`chaos_on_masters` builds the faults from `cluster_faults()` over the cluster's hooks,
runs the workload with the runner (report under out_dir), always closes the extra
resources it was given (watchers) and returns the result; `summary_line` is the one line
each test prints; `every_fault_once` makes a seeded schedule so a short CI run covers every
fault it lists.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from raftkube.testing.chaos.cluster_faults import cluster_faults
from raftkube.testing.chaos.nemesis import ScheduledFault
from raftkube.testing.chaos.runner import Checker, RunConfig, RunResult, run
from raftkube.testing.chaos.workloads import Workload
from raftkube.testing.master_cluster import MasterCluster
from raftkube.testing.master_hooks import master_cluster_hooks


def chaos_on_masters(cluster: MasterCluster, workload: Callable[[], Workload],
                     kinds: Sequence[str], checkers: Sequence[Checker],
                     config: RunConfig) -> list[RunResult]:
    """Run `config.rounds` rounds of `workload` under the fault `kinds` on `cluster`."""
    faults = cluster_faults(master_cluster_hooks(cluster), kinds)
    return run(workload, faults, checkers, config, announce=print)


def summary_line(result: RunResult) -> str:
    """seed, verdict, operations by outcome, faults by name, checker verdicts."""
    ops = result.history.operations()
    by_status = {s: sum(1 for o in ops if o.status == s) for s in ("ok", "fail", "info")}
    faults: dict[str, int] = {}
    for fault in result.history.faults():
        faults[fault.name] = faults.get(fault.name, 0) + 1
    checks = ", ".join(f"{getattr(r, 'name', type(r).__name__)}={r.valid}"
                       for r in result.results)
    return (f"round {result.round} seed {result.seed}: {result.verdict}; ops {len(ops)} "
            f"{by_status}; faults {faults}; checks {checks}")


def failure_text(result: RunResult) -> str:
    """Every checker's summary and the nemesis' errors, for assertion messages."""
    parts = [r.summary() for r in result.results]
    if result.nemesis_errors:
        parts.append(f"nemesis errors: {result.nemesis_errors}")
    if result.report is not None:
        parts.append(f"report: {result.report}")
    return "\n".join(parts)


def every_fault_once(kinds: Sequence[str], rng: random.Random,
                     quiet: tuple[float, float] = (1.0, 2.5),
                     active: tuple[float, float] = (2.0, 4.0)
                     ) -> tuple[list[ScheduledFault], float]:
    """A schedule running each of `kinds` once, in an order and with gaps and lengths drawn
    from `rng`, one fault at a time; returns it with its length in seconds (end of the
    last fault plus a quiet gap), to use as the run's duration."""
    order = list(kinds)
    rng.shuffle(order)
    schedule = []
    at = rng.uniform(*quiet)
    for kind in order:
        length = rng.uniform(*active)
        schedule.append(ScheduledFault(at, kind, length))
        at += length + rng.uniform(*quiet)
    return schedule, at
