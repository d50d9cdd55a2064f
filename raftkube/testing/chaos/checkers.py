"""Checkers for the non-register workloads: set, watch, convergence, divergence,
StatefulSet ordinal uniqueness and availability.

Every checker is a pure function from recorded observations to a result with `valid`
(True, False, or None when no verdict is possible), `summary()` (a few readable lines) and
`to_dict()` (JSON-ready), so reports treat them alike. Only `wait_converged` has a loop: it
polls a caller-provided predicate.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from raftkube.testing.chaos.history import FAIL, INFO, OK, History, Operation, iter_ops

MISMATCH_SAMPLES = 5  # payload mismatches a watcher's report shows in full

# -- set ---------------------------------------------------------------------------------


@dataclass
class SetResult:
    """Outcome of the set workload.

    lost: acknowledged adds missing from the final read (data loss).
    unexpected: elements present whose add definitely failed.
    phantom: elements present that no client ever tried to add.
    unknown_present / unknown_absent: adds with unknown outcome, by what the read shows.
    """

    acknowledged: int
    lost: list[Any]
    unexpected: list[Any]
    phantom: list[Any]
    unknown_present: list[Any]
    unknown_absent: list[Any]
    name: str = "set"

    @property
    def valid(self) -> bool:
        return not (self.lost or self.unexpected or self.phantom)

    def summary(self) -> str:
        verdict = "ok" if self.valid else "FAILED"
        return (f"{self.name}: {verdict}: {self.acknowledged} acknowledged adds, "
                f"{len(self.lost)} lost {_sample(self.lost)}, "
                f"{len(self.unexpected)} present although failed {_sample(self.unexpected)}, "
                f"{len(self.phantom)} never added {_sample(self.phantom)}; unknown outcome: "
                f"{len(self.unknown_present)} present, {len(self.unknown_absent)} absent")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "valid": self.valid}


def check_set(history: History | Iterable[Operation], final_elements: Iterable[Hashable],
              add_f: str = "add") -> SetResult:
    """Compare the adds of a history (op `add_f`, element = input) with the final read.

    An element added several times counts as acknowledged if any add was ok, as failed
    only if every add failed.
    """
    final = set(final_elements)
    outcomes: dict[Hashable, set[str]] = {}
    for op in iter_ops(history):
        if op.f == add_f:
            outcomes.setdefault(op.input, set()).add(op.status)
    acked = {e for e, s in outcomes.items() if OK in s}
    failed = {e for e, s in outcomes.items() if s == {FAIL}}
    unknown = {e for e, s in outcomes.items() if OK not in s and INFO in s}
    return SetResult(
        acknowledged=len(acked), lost=_sorted(acked - final), unexpected=_sorted(failed & final),
        phantom=_sorted(final - set(outcomes)), unknown_present=_sorted(unknown & final),
        unknown_absent=_sorted(unknown - final))


# -- watch -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchEvent:
    """One event a watcher received: the store revision and what changed (any hashable)."""

    revision: int
    payload: Hashable = None


@dataclass
class WatcherReport:
    """Problems seen by one watcher (empty lists: correct)."""

    watcher: str
    events: int
    out_of_order: list[tuple[int, int]] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    gaps: list[int] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)
    mismatched: list[int] = field(default_factory=list)
    mismatch_samples: list[tuple[int, Any, Any]] = field(default_factory=list)
    """(revision, expected payload, received payload) of the first few mismatches."""

    @property
    def valid(self) -> bool:
        return not (self.out_of_order or self.duplicates or self.gaps or self.unknown
                    or self.mismatched)


@dataclass
class WatchResult:
    """Outcome of the watch workload across all watchers."""

    watchers: list[WatcherReport]
    name: str = "watch"

    @property
    def valid(self) -> bool:
        return all(w.valid for w in self.watchers)

    def summary(self) -> str:
        lines = [f"{self.name}: {'ok' if self.valid else 'FAILED'}: "
                 f"{len(self.watchers)} watchers"]
        for w in self.watchers:
            if not w.valid:
                lines.append(
                    f"  {w.watcher}: {w.events} events; out of order {_sample(w.out_of_order)}; "
                    f"duplicates {_sample(w.duplicates)}; gaps {_sample(w.gaps)}; "
                    f"revisions not in the store {_sample(w.unknown)}; "
                    f"payload differs {_sample(w.mismatched)}")
                for revision, expected, received in w.mismatch_samples:
                    lines.append(f"    at {revision}: expected {expected!r}, "
                                 f"received {received!r}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "valid": self.valid,
                "watchers": [{**asdict(w), "valid": w.valid} for w in self.watchers]}


def check_watches(authoritative: Mapping[int, Hashable] | Sequence[int],
                  observed: Mapping[str, Sequence[WatchEvent]],
                  start_revisions: Mapping[str, int] | None = None) -> WatchResult:
    """Check every watcher's stream against the authoritative revisions.

    authoritative: the revisions that really happened (a sequence), or revision -> payload
    (then payloads are compared too). A watcher started at revision S (start_revisions,
    default: its first event's revision) must see every authoritative revision from S up
    to its last event, strictly increasing, once each. Payloads of the same revision must
    be equal across watchers even without an authoritative payload.
    """
    if isinstance(authoritative, Mapping):
        truth: dict[int, Hashable] = dict(authoritative)
        compare_truth = True
    else:
        truth = {r: None for r in authoritative}
        compare_truth = False
    ordered = sorted(truth)
    first_payload: dict[int, Hashable] = {}
    reports = []
    for watcher, events in observed.items():
        report = WatcherReport(watcher, len(events))
        seen: set[int] = set()
        for prev, cur in itertools.pairwise(events):
            if cur.revision < prev.revision:
                report.out_of_order.append((prev.revision, cur.revision))
        for ev in events:
            if ev.revision in seen:
                report.duplicates.append(ev.revision)
                continue
            seen.add(ev.revision)
            if ev.revision not in truth:
                report.unknown.append(ev.revision)
                continue
            expected = truth[ev.revision] if compare_truth else first_payload.setdefault(
                ev.revision, ev.payload)
            if expected != ev.payload:
                report.mismatched.append(ev.revision)
                if len(report.mismatch_samples) < MISMATCH_SAMPLES:
                    report.mismatch_samples.append((ev.revision, expected, ev.payload))
        if events:
            start = (start_revisions or {}).get(watcher, events[0].revision)
            last = max(ev.revision for ev in events)
            report.gaps = [r for r in ordered if start <= r <= last and r not in seen]
        reports.append(report)
    return WatchResult(reports)


# -- convergence -------------------------------------------------------------------------


@dataclass
class ConvergenceResult:
    """Whether a predicate became true before the deadline, and how long it took."""

    what: str
    converged: bool
    elapsed: float
    polls: int
    last_error: str | None = None
    name: str = "convergence"

    @property
    def valid(self) -> bool:
        return self.converged

    def summary(self) -> str:
        state = "converged" if self.converged else "did NOT converge"
        extra = ""
        if self.last_error and not self.converged:
            extra = f" (last error: {self.last_error})"
        return (f"{self.name}: {self.what}: {state} after {self.elapsed:.2f}s, "
                f"{self.polls} polls{extra}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "valid": self.valid}


def wait_converged(predicate: Callable[[], bool], timeout: float, what: str = "",
                   interval: float = 0.2, clock: Callable[[], float] = time.monotonic,
                   sleep: Callable[[float], None] = time.sleep) -> ConvergenceResult:
    """Poll `predicate` until it returns True or `timeout` seconds pass.

    An exception from the predicate counts as "not yet" (its text is kept). Always polls
    at least once; never sleeps past the deadline.
    """
    started = clock()
    polls = 0
    last_error = None
    while True:
        polls += 1
        try:
            if predicate():
                return ConvergenceResult(what, True, clock() - started, polls)
            last_error = None
        except Exception as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        remaining = started + timeout - clock()
        if remaining <= 0:
            return ConvergenceResult(what, False, clock() - started, polls, last_error)
        sleep(min(interval, remaining))


# -- divergence --------------------------------------------------------------------------


@dataclass
class DivergenceResult:
    """State hashes of the members compared revision by revision.

    diverged: revision -> {member: hash} for every revision where members disagree.
    compared: revisions reported by at least two members.
    """

    diverged: dict[int, dict[str, str]]
    compared: list[int]
    members: list[str]
    name: str = "divergence"

    @property
    def valid(self) -> bool | None:
        if self.diverged:
            return False
        return True if self.compared else None

    def summary(self) -> str:
        if self.diverged:
            rev = min(self.diverged)
            return (f"{self.name}: FAILED: members differ at {len(self.diverged)} revisions; "
                    f"first at revision {rev}: {self.diverged[rev]}")
        if not self.compared:
            return f"{self.name}: no revision reported by two members; nothing compared"
        return (f"{self.name}: ok: {len(self.members)} members agree at "
                f"{len(self.compared)} revisions (latest {max(self.compared)})")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "valid": self.valid, "members": self.members,
                "compared": self.compared,
                "diverged": {str(k): v for k, v in self.diverged.items()}}


def check_divergence(hashes: Mapping[str, Mapping[int, str]]) -> DivergenceResult:
    """hashes: member -> {revision: state hash}. Equal revisions must have equal hashes."""
    by_revision: dict[int, dict[str, str]] = {}
    for member, per_rev in hashes.items():
        for revision, digest in per_rev.items():
            by_revision.setdefault(revision, {})[member] = digest
    compared = sorted(r for r, m in by_revision.items() if len(m) >= 2)
    diverged = {r: by_revision[r] for r in compared if len(set(by_revision[r].values())) > 1}
    return DivergenceResult(diverged, compared, sorted(hashes))


# -- StatefulSet ordinals ----------------------------------------------------------------


@dataclass(frozen=True)
class OrdinalInterval:
    """One incarnation of a StatefulSet ordinal: running on `node` from start to stop.

    stop None: still running at the end of the observation.
    """

    ordinal: int
    node: str
    start: float
    stop: float | None = None


@dataclass
class OrdinalResult:
    """Pairs of incarnations of one ordinal that ran at the same time."""

    overlaps: list[tuple[OrdinalInterval, OrdinalInterval]]
    incarnations: int
    name: str = "statefulset-ordinals"

    @property
    def valid(self) -> bool:
        return not self.overlaps

    def summary(self) -> str:
        if not self.overlaps:
            return f"{self.name}: ok: {self.incarnations} incarnations, no ordinal ran twice"
        lines = [f"{self.name}: FAILED: {len(self.overlaps)} overlapping incarnations"]
        for a, b in self.overlaps[:10]:
            lines.append(f"  ordinal {a.ordinal}: {a.node} [{a.start:.2f}, {_t(a.stop)}] and "
                         f"{b.node} [{b.start:.2f}, {_t(b.stop)}]")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "valid": self.valid, "incarnations": self.incarnations,
                "overlaps": [[asdict(a), asdict(b)] for a, b in self.overlaps]}


def check_ordinal_uniqueness(intervals: Iterable[OrdinalInterval]) -> OrdinalResult:
    """No two incarnations of the same ordinal may overlap in time (touching ends are ok)."""
    items = sorted(intervals, key=lambda i: (i.ordinal, i.start))
    overlaps = []
    by_ordinal: dict[int, list[OrdinalInterval]] = {}
    for item in items:
        by_ordinal.setdefault(item.ordinal, []).append(item)
    for group in by_ordinal.values():
        for i, a in enumerate(group):
            a_stop = math.inf if a.stop is None else a.stop
            for b in group[i + 1:]:
                if b.start >= a_stop:
                    break
                overlaps.append((a, b))
    return OrdinalResult(overlaps, len(items))


# -- availability ------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One request of an availability client: when it started, success, latency (s)."""

    time: float
    ok: bool
    latency: float


@dataclass
class AvailabilityResult:
    """Share of failed requests and the longest time without a successful one.

    valid is True when `max_failed_share` and `max_gap` (if set) are respected, else None
    when no bound was given (a report, not a verdict).
    """

    requests: int
    failed: int
    longest_gap: float
    gap_start: float
    latency_p50: float | None
    latency_p99: float | None
    max_failed_share: float | None = None
    max_gap: float | None = None
    name: str = "availability"

    @property
    def failed_share(self) -> float:
        return self.failed / self.requests if self.requests else 1.0

    @property
    def valid(self) -> bool | None:
        if self.max_failed_share is None and self.max_gap is None:
            return None
        return ((self.max_failed_share is None or self.failed_share <= self.max_failed_share)
                and (self.max_gap is None or self.longest_gap <= self.max_gap))

    def summary(self) -> str:
        lat = ("" if self.latency_p50 is None else
               f", latency p50 {self.latency_p50 * 1000:.1f} ms p99 "
               f"{(self.latency_p99 or 0) * 1000:.1f} ms")
        return (f"{self.name}: {self.requests} requests, {self.failed} failed "
                f"({self.failed_share:.1%}), longest gap {self.longest_gap:.2f}s "
                f"from t={self.gap_start:.2f}{lat}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "failed_share": self.failed_share, "valid": self.valid}


def summarize_availability(samples: Iterable[Sample], start: float | None = None,
                           end: float | None = None, max_failed_share: float | None = None,
                           max_gap: float | None = None) -> AvailabilityResult:
    """Summarise an HTTP client's results over [start, end] (default: first to last sample).

    The longest gap is the longest interval inside [start, end] with no successful request
    completing (a success counts at time + latency).
    """
    items = sorted(samples, key=lambda s: s.time)
    if start is None:
        start = items[0].time if items else 0.0
    if end is None:
        end = max((s.time + s.latency for s in items), default=start)
    successes = sorted(s.time + s.latency for s in items if s.ok)
    longest, gap_start, previous = 0.0, start, start
    for done in [*successes, end]:
        done = min(max(done, start), end)
        if done - previous > longest:
            longest, gap_start = done - previous, previous
        previous = max(previous, done)
    latencies = sorted(s.latency for s in items if s.ok)
    return AvailabilityResult(
        requests=len(items), failed=sum(1 for s in items if not s.ok), longest_gap=longest,
        gap_start=gap_start, latency_p50=_quantile(latencies, 0.5),
        latency_p99=_quantile(latencies, 0.99), max_failed_share=max_failed_share,
        max_gap=max_gap)


def samples_from_history(history: History | Iterable[Operation],
                         f: str | None = None) -> list[Sample]:
    """Availability samples from recorded operations (ok = success; fail/info = failure)."""
    out = []
    for op in iter_ops(history):
        if f is not None and op.f != f:
            continue
        latency = op.latency if op.latency is not None else 0.0
        out.append(Sample(op.invoke_time, op.status == OK, latency))
    return out


def _quantile(sorted_values: Sequence[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _sorted(values: Iterable[Any]) -> list[Any]:
    return sorted(values, key=repr)


def _sample(values: Sequence[Any], limit: int = 5) -> str:
    if not values:
        return ""
    more = f" +{len(values) - limit}" if len(values) > limit else ""
    return f"{list(values[:limit])}{more}"


def _t(value: float | None) -> str:
    return "running" if value is None else f"{value:.2f}"
