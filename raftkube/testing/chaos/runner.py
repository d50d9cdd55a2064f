"""The chaos driver: clients + nemesis for a bounded time, then checkers, then a report.

    clients (N threads) --record--> History <--record-- Nemesis (seeded)
                                       |
                                  checkers(history) --> report (JSON, text, PNG)

One round: N client threads run the workload until `duration` seconds pass or `max_ops`
operations were issued; the nemesis runs at the same time (random mode or a fixed
schedule) and heals everything when the fault phase ends; the clients keep going for
`recovery` seconds on the healed system; then each checker gets the history.

After an operation with unknown outcome the client continues under a new process id (the
old operation may still be in flight), as Jepsen does.

Soak: `run(..., RunConfig(rounds=R))` repeats rounds with seeds seed, seed+1, ...; each
round writes its own report under out_dir/round-NNN.
"""

from __future__ import annotations

import argparse
import random
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog

from raftkube.testing.chaos.history import DefiniteFailure, History
from raftkube.testing.chaos.nemesis import FaultFactory, Nemesis, NemesisConfig, ScheduledFault
from raftkube.testing.chaos.report import ReportPaths, verdict, write_report
from raftkube.testing.chaos.workloads import Workload

log = structlog.get_logger(__name__)

Checker = Callable[[History], Any]
"""Called once after the round with the full history; returns a checker result."""


@dataclass(frozen=True)
class RunConfig:
    """One chaos run.

    clients: concurrent client threads.
    duration: seconds of workload under faults (the fault phase).
    max_ops: stop issuing operations after this many in a round (None: only duration).
    recovery: seconds the clients keep running after every fault is healed.
    seed: seed of the nemesis and the clients' choices; None draws one (printed).
    rounds: rounds to run (soak); round i uses seed + i.
    out_dir: where reports go (None: no report files).
    quiet / active: (min, max) seconds between faults and of each fault (random mode).
    schedule: a fixed fault schedule instead of random mode (empty: random).
    client_join_timeout: seconds to wait for a client stuck in an operation at the end;
      its operation stays unknown in the history.
    plot: write the PNG plot.
    """

    clients: int = 5
    duration: float = 10.0
    max_ops: int | None = None
    recovery: float = 2.0
    seed: int | None = None
    rounds: int = 1
    out_dir: Path | None = None
    quiet: tuple[float, float] = (1.0, 3.0)
    active: tuple[float, float] = (2.0, 5.0)
    schedule: Sequence[ScheduledFault] = ()
    client_join_timeout: float = 30.0
    plot: bool = True

    def __post_init__(self) -> None:
        if self.clients < 1:
            raise ValueError(f"run config: clients must be >= 1, got {self.clients}")
        if self.duration < 0 or self.recovery < 0:
            raise ValueError("run config: duration and recovery must be >= 0")
        if self.rounds < 1:
            raise ValueError(f"run config: rounds must be >= 1, got {self.rounds}")
        if self.max_ops is not None and self.max_ops < 0:
            raise ValueError(f"run config: max_ops must be >= 0, got {self.max_ops}")


@dataclass
class RunResult:
    """What one round produced."""

    round: int
    seed: int
    verdict: str
    results: list[Any]
    history: History
    faults_injected: int
    nemesis_errors: list[str]
    stuck_clients: list[int]
    report: ReportPaths | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.verdict == "valid"


class _OpBudget:
    def __init__(self, limit: int | None) -> None:
        self._limit = limit
        self._used = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._limit is not None and self._used >= self._limit:
                return False
            self._used += 1
            return True


def _client_loop(history: History, workload: Workload, client: int, clients: int,
                 seed: int, stop: threading.Event, budget: _OpBudget) -> None:
    rng = random.Random(seed * 1_000_003 + client)
    process = client
    while not stop.is_set() and budget.take():
        spec = workload.next_op(rng, process)
        op_id = history.invoke(process, spec.f, spec.key, spec.value)
        try:
            output = workload.invoke(process, spec)
        except DefiniteFailure as exc:
            history.fail(op_id, f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            history.info(op_id, f"{type(exc).__name__}: {exc}")
            process += clients
        else:
            history.ok(op_id, output)


def run_round(workload: Workload, faults: Mapping[str, FaultFactory],
              checkers: Sequence[Checker], config: RunConfig, round_no: int = 0,
              announce: Callable[[str], None] = print) -> RunResult:
    """Run one round (see module docstring) and return its result; writes the report when
    config.out_dir is set. Never leaves a fault active or a client running past
    client_join_timeout."""
    seed = config.seed if config.seed is not None else secrets.randbits(32)
    history = History()
    stop_clients = threading.Event()
    stop_nemesis = threading.Event()
    budget = _OpBudget(config.max_ops)
    nemesis = None
    fault_count = [0]
    if faults:
        nemesis = Nemesis(history, faults, NemesisConfig(seed=seed, quiet=config.quiet,
                                                         active=config.active), announce)
    else:
        announce(f"chaos round {round_no}: seed={seed} (no faults)")
    threads = [threading.Thread(target=_client_loop, name=f"chaos-client-{c}", daemon=True,
                                args=(history, workload, c, config.clients, seed,
                                      stop_clients, budget))
               for c in range(config.clients)]

    def nemesis_main() -> None:
        assert nemesis is not None
        if config.schedule:
            nemesis.run_schedule(config.schedule, stop_nemesis)
            fault_count[0] = len(config.schedule)
        else:
            fault_count[0] = nemesis.run_random(stop_nemesis)

    nemesis_thread = threading.Thread(target=nemesis_main, name="chaos-nemesis", daemon=True)
    for t in threads:
        t.start()
    if nemesis is not None:
        nemesis_thread.start()
    try:
        _wait_phase(config.duration, threads)
    finally:
        stop_nemesis.set()
        if nemesis is not None:
            nemesis_thread.join()
    _wait_phase(config.recovery, threads)
    stop_clients.set()
    end = time.monotonic() + config.client_join_timeout
    for t in threads:
        t.join(timeout=max(0.0, end - time.monotonic()))
    stuck = [c for c, t in enumerate(threads) if t.is_alive()]
    results = [_run_checker(checker, history) for checker in checkers]
    meta = {"round": round_no, "clients": config.clients, "duration": config.duration,
            "recovery": config.recovery, "max_ops": config.max_ops,
            "faults": sorted(faults), "stuck_clients": stuck,
            "nemesis_errors": nemesis.errors if nemesis else []}
    result = RunResult(round_no, seed, verdict(results), results, history, fault_count[0],
                       list(meta["nemesis_errors"]), stuck, meta=meta)
    if config.out_dir is not None:
        out = Path(config.out_dir)
        if config.rounds > 1:
            out = out / f"round-{round_no:03d}"
        result.report = write_report(out, history, results, seed, meta,
                                     with_plot=config.plot)
    log.info("chaos round done", round=round_no, seed=seed, verdict=result.verdict,
             operations=len(history.operations()), faults=fault_count[0])
    return result


def run(workload_factory: Callable[[], Workload], faults: Mapping[str, FaultFactory],
        checkers: Sequence[Checker], config: RunConfig,
        announce: Callable[[str], None] = print,
        stop_on_failure: bool = False) -> list[RunResult]:
    """Run config.rounds rounds (seed, seed+1, ...), a fresh workload for each.

    stop_on_failure: stop after the first round whose verdict is "invalid".
    """
    base = config.seed if config.seed is not None else secrets.randbits(32)
    if config.seed is None:
        announce(f"chaos run seed={base} (replay with --seed {base})")
    out = []
    for round_no in range(config.rounds):
        round_config = replace(config, seed=base + round_no)
        result = run_round(workload_factory(), faults, checkers, round_config, round_no,
                           announce)
        out.append(result)
        if stop_on_failure and result.verdict == "invalid":
            break
    return out


@dataclass
class CheckerError:
    """A checker that raised (e.g. its final read failed): no verdict."""

    name: str
    error: str
    valid: None = None

    def summary(self) -> str:
        return f"{self.name}: NO VERDICT: checker raised {self.error}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "valid": None, "error": self.error}


def _run_checker(checker: Checker, history: History) -> Any:
    try:
        return checker(history)
    except Exception as exc:
        name = getattr(checker, "__name__", repr(checker))
        log.warning("chaos checker raised", checker=name, error=str(exc))
        return CheckerError(name, f"{type(exc).__name__}: {exc}")


def _wait_phase(seconds: float, threads: Sequence[threading.Thread]) -> None:
    """Sleep `seconds`, returning early once every client finished its op budget."""
    end = time.monotonic() + seconds
    while time.monotonic() < end and any(t.is_alive() for t in threads):
        time.sleep(min(0.05, max(0.0, end - time.monotonic())))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --seed, --rounds, --duration, --clients, --max-ops, --recovery, --out."""
    parser.add_argument("--seed", type=int, default=None, help="seed to replay a run")
    parser.add_argument("--rounds", type=int, default=1, help="rounds to run (soak)")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds of faults per round")
    parser.add_argument("--clients", type=int, default=5, help="concurrent clients")
    parser.add_argument("--max-ops", type=int, default=None,
                        help="operations per round at most")
    parser.add_argument("--recovery", type=float, default=2.0,
                        help="seconds of workload after healing")
    parser.add_argument("--out", type=Path, default=None, help="report directory")


def config_from_args(args: argparse.Namespace, **overrides: Any) -> RunConfig:
    """A RunConfig from add_arguments' options (keyword overrides win)."""
    values: dict[str, Any] = {
        "seed": args.seed, "rounds": args.rounds, "duration": args.duration,
        "clients": args.clients, "max_ops": args.max_ops, "recovery": args.recovery,
        "out_dir": args.out}
    values.update(overrides)
    return RunConfig(**values)

