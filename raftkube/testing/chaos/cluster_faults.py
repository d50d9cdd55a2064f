"""The issue's fault list as nemesis factories over a few cluster callables.

The chaos suite gives `ClusterHooks` (member names, PIDs, restart, leader, hosts) and gets
a name -> factory map for `Nemesis`. Every target (the leader, a random member, a random
split) is chosen when the fault starts: the leader from `hooks.leader()`, random choices
from the nemesis' seeded rng. A fault whose target does not exist (no leader right now)
raises FaultError, which the nemesis records as a fault that failed to start.

    kill-leader, kill-random, kill-all     SIGKILL, restart on heal
    pause-leader, pause-random             SIGSTOP, SIGCONT on heal
    partition-leader                       leader alone vs the rest
    partition-random                       random minority vs majority
    partition-bridge                       two halves sharing one member
    lose-unsynced-random                   hooks.lose_unsynced(member), restart on heal
    slow-link-leader                       the leader's link throttled (tc tbf: 512 kbit/s,
                                           packets queue up to 200 ms, then drop)
    membership-change                      hooks.add_member() (a new member joins the
                                           running cluster), hooks.remove_member() on heal
"""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from raftkube.testing.chaos.nemesis import (
    Fault,
    FaultError,
    FaultFactory,
    Host,
    LinkRateLimit,
    Partition,
    bridge,
    isolate,
    random_halves,
)


@dataclass(frozen=True)
class ClusterHooks:
    """What the nemesis needs from a cluster; callables are evaluated at fault time.

    members: names of the members to hurt (e.g. the masters).
    pid_of: PID(s) of a member (several for a whole host: agent and containers).
    restart: start a killed member again (blocking until it runs); called once per kill.
    leader: the current leader's name, None when there is none.
    hosts: member -> Host (network namespace, addresses); partitions need it.
    lose_unsynced: crash a member and drop its unsynced writes (the store's hook).
    add_member: grow the cluster by one member, returning its name (blocking until it
        serves); remove_member: take that member out of the membership and stop it.
    link_device: the network device of each host's link (slow-link faults).
    """

    members: Callable[[], Sequence[str]]
    pid_of: Callable[[str], int | Iterable[int]]
    restart: Callable[[str], object]
    leader: Callable[[], str | None]
    hosts: Mapping[str, Host] | None = None
    lose_unsynced: Callable[[str], object] | None = None
    add_member: Callable[[], str] | None = None
    remove_member: Callable[[str], object] | None = None
    link_device: str = "eth0"


def _leader(hooks: ClusterHooks) -> str:
    name = hooks.leader()
    if name is None:
        raise FaultError("no leader to target right now")
    return name


def _pids(hooks: ClusterHooks, name: str) -> list[int]:
    value = hooks.pid_of(name)
    return [value] if isinstance(value, int) else [int(v) for v in value]


class _MemberSignal(Fault):
    """Signal the members chosen at start; heal sends `heal_signal` or restarts them."""

    def __init__(self, name: str, hooks: ClusterHooks, choose: Callable[[], list[str]],
                 signal_no: int, heal: str) -> None:
        self.name = name
        self._hooks = hooks
        self._choose = choose
        self._signal = signal_no
        self._heal = heal  # "restart" or "cont"
        self._targets: list[str] = []
        self._pids: list[int] = []

    def start(self) -> dict[str, Any]:
        targets = self._choose()
        pids = [pid for t in targets for pid in _pids(self._hooks, t)]
        if not pids:
            raise FaultError(f"{self.name}: no process for {targets!r}")
        missing = []
        for pid in pids:
            try:
                os.kill(pid, self._signal)
            except ProcessLookupError:
                missing.append(pid)
        self._targets, self._pids = targets, pids
        return {"members": targets, "pids": pids, "missing": missing}

    def stop(self) -> dict[str, Any]:
        targets, self._targets = self._targets, []
        pids, self._pids = self._pids, []
        if not targets:
            return {}
        if self._heal == "cont":
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    continue
            return {"resumed": targets}
        return {"restarted": {t: repr(self._hooks.restart(t)) for t in targets}}


class _SlowLeaderLink(Fault):
    """Throttle the link of whichever member leads when the fault starts."""

    name = "slow-link-leader"

    def __init__(self, hooks: ClusterHooks) -> None:
        self._hooks = hooks
        self._link: LinkRateLimit | None = None

    def start(self) -> dict[str, Any]:
        assert self._hooks.hosts is not None
        leader = _leader(self._hooks)
        host = self._hooks.hosts[leader]
        self._link = LinkRateLimit(self.name, host.netns, self._hooks.link_device,
                                   rate_kbit=512, latency_ms=200)
        return {"member": leader, **self._link.start()}

    def stop(self) -> dict[str, Any]:
        link, self._link = self._link, None
        return link.stop() if link is not None else {}


class _MembershipChange(Fault):
    """A member joins while the cluster serves; on heal it is removed again."""

    name = "membership-change"

    def __init__(self, hooks: ClusterHooks) -> None:
        self._hooks = hooks
        self._added = ""

    def start(self) -> dict[str, Any]:
        assert self._hooks.add_member is not None
        self._added = self._hooks.add_member()
        return {"added": self._added}

    def stop(self) -> dict[str, Any]:
        added, self._added = self._added, ""
        if not added:
            return {}
        assert self._hooks.remove_member is not None
        self._hooks.remove_member(added)
        return {"removed": added}


class _LoseUnsynced(Fault):
    def __init__(self, hooks: ClusterHooks, member: str) -> None:
        self.name = "lose-unsynced-random"
        self._hooks = hooks
        self._member = member
        self._active = False

    def start(self) -> dict[str, Any]:
        assert self._hooks.lose_unsynced is not None
        result = self._hooks.lose_unsynced(self._member)
        self._active = True
        return {"member": self._member, "result": repr(result)}

    def stop(self) -> dict[str, Any]:
        if not self._active:
            return {}
        self._active = False
        return {"restarted": repr(self._hooks.restart(self._member))}


def cluster_faults(hooks: ClusterHooks, kinds: Iterable[str] | None = None
                   ) -> dict[str, FaultFactory]:
    """Factories for the faults listed in the module docstring (those the hooks allow).

    kinds: restrict to these names; ValueError names an unknown or unsupported kind.
    """

    def members() -> list[str]:
        names = list(hooks.members())
        if not names:
            raise FaultError("no members")
        return names

    def random_member(rng: random.Random) -> Callable[[], list[str]]:
        return lambda: [rng.choice(members())]

    out: dict[str, FaultFactory] = {
        "kill-leader": lambda rng: _MemberSignal(
            "kill-leader", hooks, lambda: [_leader(hooks)], signal.SIGKILL, "restart"),
        "kill-random": lambda rng: _MemberSignal(
            "kill-random", hooks, random_member(rng), signal.SIGKILL, "restart"),
        "kill-all": lambda rng: _MemberSignal(
            "kill-all", hooks, members, signal.SIGKILL, "restart"),
        "pause-leader": lambda rng: _MemberSignal(
            "pause-leader", hooks, lambda: [_leader(hooks)], signal.SIGSTOP, "cont"),
        "pause-random": lambda rng: _MemberSignal(
            "pause-random", hooks, random_member(rng), signal.SIGSTOP, "cont"),
    }
    if hooks.hosts is not None:
        hosts = hooks.hosts
        out["partition-leader"] = lambda rng: Partition(
            "partition-leader", hosts, lambda: isolate(_leader(hooks), members()))
        out["partition-random"] = lambda rng: Partition(
            "partition-random", hosts, lambda: random_halves(members(), rng))
        out["partition-bridge"] = lambda rng: Partition(
            "partition-bridge", hosts, lambda: bridge(members(), rng))
        out["slow-link-leader"] = lambda rng: _SlowLeaderLink(hooks)
    if hooks.lose_unsynced is not None:
        out["lose-unsynced-random"] = lambda rng: _LoseUnsynced(
            hooks, rng.choice(members()))
    if hooks.add_member is not None and hooks.remove_member is not None:
        out["membership-change"] = lambda rng: _MembershipChange(hooks)
    if kinds is None:
        return out
    wanted = list(kinds)
    unknown = [k for k in wanted if k not in out]
    if unknown:
        raise ValueError(f"cluster faults: unknown or unsupported kinds {unknown!r}; "
                         f"available: {sorted(out)}")
    return {k: out[k] for k in wanted}
