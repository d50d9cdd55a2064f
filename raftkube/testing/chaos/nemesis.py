"""Fault injection: processes are PIDs, hosts are network namespaces.

A `Fault` has `start()` (inject) and `stop()` (heal); `stop()` is idempotent and safe after
a failed start. Faults that pick targets take them from callables at start time (e.g. "the
current leader"), so one fault object can be reused.

`Nemesis` runs faults against a `History`: each one is recorded as a fault start and stop
on the operation timeline. It draws every random choice from `random.Random(seed)` and
prints the seed, so a run can be replayed with the same sequence of faults.

Network faults:
- `Partition` drops traffic between hosts with nftables rules inside each namespace, in an
  `inet` table with a unique name per Partition object; healing deletes the tables.
- `LinkDelay` adds latency with `tc netem`; the kernel must have `sch_netem`
  (`netem_available()` says; it is missing on the development machines of this project).
- `LinkRateLimit` throttles a link with `tc tbf` (queueing delay under load); works where
  netem is missing.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from raftkube.testing.chaos.history import History

log = structlog.get_logger(__name__)

PidSource = int | Callable[[], int | Iterable[int]]


class FaultError(RuntimeError):
    """A fault could not be injected or healed; the message names the fault and command."""


class Fault(ABC):
    """One kind of fault against chosen targets.

    start() injects it and returns what was done (JSON-ready detail); stop() heals it and
    returns detail; stop() is idempotent and safe after a failed or partial start.
    """

    name: str = "fault"

    @abstractmethod
    def start(self) -> dict[str, Any]:
        """Inject the fault; raise FaultError when it could not be injected."""

    @abstractmethod
    def stop(self) -> dict[str, Any]:
        """Heal the fault (idempotent)."""


def _resolve_pids(source: PidSource) -> list[int]:
    value = source() if callable(source) else source
    if isinstance(value, int):
        return [value]
    return [int(v) for v in value]


def _signal_all(pids: Sequence[int], sig: int) -> dict[str, list[int]]:
    done, missing = [], []
    for pid in pids:
        try:
            os.kill(pid, sig)
            done.append(pid)
        except ProcessLookupError:
            missing.append(pid)
    return {"signalled": done, "missing": missing}


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants alive now (from /proc), parents first; [] if gone."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    if not os.path.exists(f"/proc/{pid}"):
        return []
    out, todo = [], [pid]
    while todo:
        current = todo.pop(0)
        out.append(current)
        todo.extend(sorted(children.get(current, [])))
    return out


def pids_in_netns(netns: str) -> list[int]:
    """Every process whose network namespace is /run/netns/`netns` (a whole host).

    FaultError if the namespace does not exist.
    """
    try:
        target = os.stat(f"/run/netns/{netns}").st_ino
    except OSError as exc:
        raise FaultError(f"network namespace {netns!r} not found: {exc}") from exc
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino == target:
                    out.append(int(entry))
            except OSError:
                continue
    return sorted(out)


class KillProcess(Fault):
    """kill -9 the process(es) from `pids`; on stop, call `restart` (if given) once.

    pids: an int, or a callable returning one PID or several (e.g. agent and containers).
    restart: brings the process back; its return value is recorded as text.
    """

    def __init__(self, name: str, pids: PidSource,
                 restart: Callable[[], object] | None = None) -> None:
        self.name = name
        self._pids = pids
        self._restart = restart
        self._killed = False

    def start(self) -> dict[str, Any]:
        pids = _resolve_pids(self._pids)
        if not pids:
            raise FaultError(f"{self.name}: no process to kill")
        detail = _signal_all(pids, signal.SIGKILL)
        self._killed = True
        return detail

    def stop(self) -> dict[str, Any]:
        if not self._killed or self._restart is None:
            return {}
        self._killed = False
        return {"restarted": repr(self._restart())}


class PauseProcess(Fault):
    """SIGSTOP the process(es) from `pids`; stop sends SIGCONT to the same PIDs."""

    def __init__(self, name: str, pids: PidSource) -> None:
        self.name = name
        self._pids = pids
        self._paused: list[int] = []

    def start(self) -> dict[str, Any]:
        pids = _resolve_pids(self._pids)
        if not pids:
            raise FaultError(f"{self.name}: no process to pause")
        detail = _signal_all(pids, signal.SIGSTOP)
        self._paused = detail["signalled"]
        return detail

    def stop(self) -> dict[str, Any]:
        paused, self._paused = self._paused, []
        return _signal_all(paused, signal.SIGCONT) if paused else {}


class CallableFault(Fault):
    """A fault made of two caller-provided callables (e.g. membership change, restart all).

    inject() starts it, heal() (optional) stops it; their return values are recorded.
    """

    def __init__(self, name: str, inject: Callable[[], object],
                 heal: Callable[[], object] | None = None) -> None:
        self.name = name
        self._inject = inject
        self._heal = heal
        self._active = False

    def start(self) -> dict[str, Any]:
        result = self._inject()
        self._active = True
        return {"result": repr(result)}

    def stop(self) -> dict[str, Any]:
        if not self._active:
            return {}
        self._active = False
        return {"result": repr(self._heal())} if self._heal is not None else {}


class LoseUnsyncedWrites(CallableFault):
    """Crash a node and drop the writes it had not synced to disk.

    lose: caller-provided; must kill the process and discard its unsynced data (how is the
    store's business). restart: brings the node back on stop.
    """

    def __init__(self, name: str, lose: Callable[[], object],
                 restart: Callable[[], object] | None = None) -> None:
        super().__init__(name, lose, restart)


# -- network ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Host:
    """A host of the cluster under test: its network namespace and its addresses."""

    netns: str
    addresses: tuple[str, ...]


def run_in_netns(netns: str, argv: Sequence[str], stdin: str | None = None,
                 check: bool = True, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    """Run argv inside network namespace `netns` (nsenter, so /sys stays untouched)."""
    cmd = ["nsenter", f"--net=/run/netns/{netns}", *argv]
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise FaultError(f"in netns {netns}: {' '.join(argv)} failed "
                         f"({proc.returncode}): {proc.stderr.strip()}")
    return proc


def grudge_from_groups(groups: Sequence[Sequence[str]]) -> dict[str, set[str]]:
    """Every node drops traffic with every node outside its own group.

    A node listed in several groups (a bridge) drops only nodes that share none of its
    groups.
    """
    member_of: dict[str, set[int]] = {}
    for i, group in enumerate(groups):
        for node in group:
            member_of.setdefault(node, set()).add(i)
    return {node: {other for other, og in member_of.items() if not (mine & og)}
            for node, mine in member_of.items()}


def isolate(node: str, nodes: Sequence[str]) -> list[list[str]]:
    """Groups cutting `node` off from all the others."""
    if node not in nodes:
        raise ValueError(f"isolate: {node!r} is not one of {list(nodes)!r}")
    return [[node], [n for n in nodes if n != node]]


def random_halves(nodes: Sequence[str], rng: random.Random) -> list[list[str]]:
    """A random split into a minority and a majority."""
    shuffled = list(nodes)
    rng.shuffle(shuffled)
    cut = len(shuffled) // 2
    return [shuffled[:cut], shuffled[cut:]]


def bridge(nodes: Sequence[str], rng: random.Random) -> list[list[str]]:
    """Two overlapping groups sharing one bridge node that sees both (needs >= 3 nodes).

    With 5 nodes: [a, b, c] and [c, d, e]; each side has a majority only with c.
    """
    if len(nodes) < 3:
        raise ValueError(f"bridge: needs at least 3 nodes, got {len(nodes)}")
    shuffled = list(nodes)
    rng.shuffle(shuffled)
    middle = len(shuffled) // 2
    return [shuffled[: middle + 1], shuffled[middle:]]


def _nft_table_script(table: str, drop: Iterable[str]) -> str:
    v4 = sorted(a for a in drop if ":" not in a)
    v6 = sorted(a for a in drop if ":" in a)
    lines = [f"table inet {table} {{",
             "  chain input { type filter hook input priority -200; policy accept;"]
    lines += [f"    ip saddr {{ {', '.join(v4)} }} drop"] if v4 else []
    lines += [f"    ip6 saddr {{ {', '.join(v6)} }} drop"] if v6 else []
    lines += ["  }", "  chain output { type filter hook output priority -200; policy accept;"]
    lines += [f"    ip daddr {{ {', '.join(v4)} }} drop"] if v4 else []
    lines += [f"    ip6 daddr {{ {', '.join(v6)} }} drop"] if v6 else []
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


class Partition(Fault):
    """Cut traffic between hosts: node X drops all packets from/to the addresses of the
    nodes in its grudge, with an nft table inside X's namespace.

    hosts: node name -> Host. groups: a callable(rng) or fixed groups (see
    grudge_from_groups, isolate, random_halves, bridge); evaluated at start.
    Each Partition owns tables named `raftkube_chaos_<random>`; stop deletes them in every
    namespace it touched (missing tables are fine).
    """

    def __init__(self, name: str, hosts: Mapping[str, Host],
                 groups: Sequence[Sequence[str]] | Callable[[], Sequence[Sequence[str]]],
                 table: str | None = None) -> None:
        self.name = name
        self._hosts = dict(hosts)
        self._groups = groups
        self.table = table or f"raftkube_chaos_{secrets.token_hex(4)}"
        self._touched: list[str] = []

    def start(self) -> dict[str, Any]:
        groups = [list(g) for g in (self._groups() if callable(self._groups) else self._groups)]
        unknown = {n for g in groups for n in g} - set(self._hosts)
        if unknown:
            raise FaultError(f"{self.name}: unknown nodes {sorted(unknown)!r}")
        grudge = grudge_from_groups(groups)
        try:
            for node, enemies in grudge.items():
                if not enemies:
                    continue
                drop = [a for e in enemies for a in self._hosts[e].addresses]
                netns = self._hosts[node].netns
                self._touched.append(netns)
                run_in_netns(netns, ["nft", "-f", "-"], stdin=_nft_table_script(self.table, drop))
        except Exception:
            self.stop()
            raise
        return {"groups": groups, "table": self.table,
                "grudge": {k: sorted(v) for k, v in grudge.items()}}

    def stop(self) -> dict[str, Any]:
        touched, self._touched = self._touched, []
        errors = []
        for netns in dict.fromkeys(touched):
            proc = run_in_netns(netns, ["nft", "delete", "table", "inet", self.table],
                                check=False)
            if proc.returncode != 0 and "No such file" not in proc.stderr:
                errors.append(f"{netns}: {proc.stderr.strip()}")
        if errors:
            raise FaultError(f"{self.name}: heal failed: {'; '.join(errors)}")
        return {"healed": list(dict.fromkeys(touched))}


def remove_partition_tables(netns: str) -> list[str]:
    """Delete every `raftkube_chaos_*` nft table in `netns` (cleanup after a crashed run);
    returns the names removed. Idempotent."""
    listing = run_in_netns(netns, ["nft", "list", "tables"]).stdout.split()
    removed = []
    for family, name in zip(listing[1::3], listing[2::3], strict=True):
        if name.startswith("raftkube_chaos_"):
            run_in_netns(netns, ["nft", "delete", "table", family, name])
            removed.append(name)
    return removed


def netem_available(netns: str, device: str = "lo") -> bool:
    """True if `tc qdisc ... netem` works in `netns` (probes on `device`, then removes it).

    Replaces any root qdisc on `device`; use a device the test owns.
    """
    proc = run_in_netns(netns, ["tc", "qdisc", "add", "dev", device, "root", "netem",
                                "delay", "1ms"], check=False)
    if proc.returncode != 0:
        return False
    run_in_netns(netns, ["tc", "qdisc", "del", "dev", device, "root"], check=False)
    return True


class _RootQdisc(Fault):
    """Replace the root qdisc of a device in a namespace; stop deletes it."""

    def __init__(self, name: str, netns: str, device: str, qdisc: Sequence[str]) -> None:
        self.name = name
        self.netns = netns
        self.device = device
        self._qdisc = list(qdisc)
        self._active = False

    def start(self) -> dict[str, Any]:
        run_in_netns(self.netns, ["tc", "qdisc", "replace", "dev", self.device, "root",
                                  *self._qdisc])
        self._active = True
        return {"netns": self.netns, "device": self.device, "qdisc": " ".join(self._qdisc)}

    def stop(self) -> dict[str, Any]:
        if not self._active:
            return {}
        self._active = False
        run_in_netns(self.netns, ["tc", "qdisc", "del", "dev", self.device, "root"],
                     check=False)
        return {"netns": self.netns, "device": self.device}


class LinkDelay(_RootQdisc):
    """Delay every packet leaving `device` in `netns` by delay_ms (+- jitter_ms), netem.

    start raises FaultError where the kernel has no netem (see netem_available).
    """

    def __init__(self, name: str, netns: str, device: str, delay_ms: float,
                 jitter_ms: float = 0.0) -> None:
        qdisc = ["netem", "delay", f"{delay_ms}ms"]
        if jitter_ms:
            qdisc.append(f"{jitter_ms}ms")
        super().__init__(name, netns, device, qdisc)


class LinkRateLimit(_RootQdisc):
    """Throttle `device` in `netns` to rate_kbit with a token bucket (tc tbf).

    Packets queue up to latency_ms, then are dropped: a slow, lossy link under load.
    """

    def __init__(self, name: str, netns: str, device: str, rate_kbit: int,
                 burst_kbit: int = 32, latency_ms: int = 400) -> None:
        super().__init__(name, netns, device, ["tbf", "rate", f"{rate_kbit}kbit", "burst",
                                               f"{burst_kbit}kbit", "latency",
                                               f"{latency_ms}ms"])


# -- the scheduler -----------------------------------------------------------------------

FaultFactory = Callable[[random.Random], Fault]


@dataclass(frozen=True)
class NemesisConfig:
    """How the nemesis schedules faults in mixed-random mode.

    seed: the seed of every random choice; None draws one (always printed for replay).
    quiet: (min, max) seconds of calm before each fault.
    active: (min, max) seconds each fault lasts.
    """

    seed: int | None = None
    quiet: tuple[float, float] = (1.0, 3.0)
    active: tuple[float, float] = (2.0, 5.0)


@dataclass(frozen=True)
class ScheduledFault:
    """One fault of a fixed schedule: factory `name`, started `at` seconds after the
    schedule begins, healed `duration` seconds later."""

    at: float
    name: str
    duration: float


@dataclass
class _Active:
    fault: Fault
    fault_id: int


@dataclass
class Nemesis:
    """Runs faults (by factory name) against a history; thread-safe; heals on the way out.

    factories: name -> callable(rng) -> Fault; the rng is the nemesis' own, so target
    choices replay with the seed.
    """

    history: History
    factories: Mapping[str, FaultFactory]
    config: NemesisConfig = field(default_factory=NemesisConfig)
    announce: Callable[[str], None] = print

    def __post_init__(self) -> None:
        if not self.factories:
            raise ValueError("nemesis: no fault factories given")
        self.seed = self.config.seed if self.config.seed is not None else secrets.randbits(32)
        self.rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self._active: list[_Active] = []
        self.errors: list[str] = []
        self.announce(f"nemesis seed={self.seed} (replay with --seed {self.seed})")

    def start_fault(self, name: str) -> int | None:
        """Build and inject fault `name` now, recorded in the history; returns its fault id.

        A fault that fails to start is recorded (start and stop with the error) and
        returns None.
        """
        if name not in self.factories:
            raise ValueError(f"nemesis: unknown fault {name!r}; known: {sorted(self.factories)}")
        fault = self.factories[name](self.rng)
        try:
            detail = fault.start()
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            self.errors.append(f"{name}: start: {error}")
            log.warning("nemesis fault failed to start", fault=name, error=error)
            fid = self.history.fault_start(name, {"error": error})
            try:
                fault.stop()
            except Exception as heal_exc:
                self.errors.append(f"{name}: stop after failed start: {heal_exc}")
            self.history.fault_stop(fid, {"error": error})
            return None
        fid = self.history.fault_start(name, detail)
        with self._lock:
            self._active.append(_Active(fault, fid))
        log.info("nemesis fault started", fault=name, detail=detail)
        return fid

    def stop_fault(self, fault_id: int) -> None:
        """Heal the active fault `fault_id` and record it; unknown ids are ignored."""
        with self._lock:
            found = [a for a in self._active if a.fault_id == fault_id]
            self._active = [a for a in self._active if a.fault_id != fault_id]
        for active in found:
            try:
                detail = active.fault.stop()
            except Exception as exc:
                detail = {"error": f"{type(exc).__name__}: {exc}"}
                self.errors.append(f"{active.fault.name}: stop: {detail['error']}")
                log.warning("nemesis fault failed to heal", fault=active.fault.name,
                            error=detail["error"])
            self.history.fault_stop(fault_id, detail)
            log.info("nemesis fault healed", fault=active.fault.name)

    def heal_all(self) -> None:
        """Heal every active fault, newest first (idempotent)."""
        with self._lock:
            ids = [a.fault_id for a in reversed(self._active)]
        for fid in ids:
            self.stop_fault(fid)

    def run_random(self, stop: threading.Event, max_faults: int | None = None) -> int:
        """Mixed-random mode until `stop` is set: calm, a random fault, heal, repeat.

        Returns the number of faults attempted (failed starts included); heals everything
        before returning.
        """
        names = sorted(self.factories)
        count = 0
        try:
            while not stop.is_set() and (max_faults is None or count < max_faults):
                if stop.wait(self.rng.uniform(*self.config.quiet)):
                    break
                name = self.rng.choice(names)
                duration = self.rng.uniform(*self.config.active)
                fid = self.start_fault(name)
                count += 1
                stop.wait(duration)
                if fid is not None:
                    self.stop_fault(fid)
        finally:
            self.heal_all()
        return count

    def run_schedule(self, schedule: Sequence[ScheduledFault], stop: threading.Event) -> None:
        """Run a fixed schedule (faults may overlap); stops early when `stop` is set.

        Heals everything before returning.
        """
        begin = self.history.now()
        timeline: list[tuple[float, int, ScheduledFault]] = []
        for i, item in enumerate(schedule):
            timeline.append((item.at, 0, i))
            timeline.append((item.at + item.duration, 1, i))
        timeline.sort(key=lambda t: (t[0], -t[1]))
        ids: dict[int, int | None] = {}
        try:
            for when, kind, i in timeline:
                if stop.wait(max(0.0, begin + when - self.history.now())):
                    break
                if kind == 0:
                    ids[i] = self.start_fault(schedule[i].name)
                elif ids.get(i) is not None:
                    self.stop_fault(ids[i])  # type: ignore[arg-type]
        finally:
            self.heal_all()
