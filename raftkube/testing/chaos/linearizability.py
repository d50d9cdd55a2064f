"""A linearizability checker for histories of operations against a sequential model.

The search is the Wing & Gong algorithm with Lowe's memoisation, as Porcupine does it:
operations become call and return entries in time order, kept in a doubly linked list; the
search repeatedly picks a pending call that the model accepts, removes it and its return
from the list, and backtracks when it meets a return whose operation it has not
linearized yet. A cache of (set of linearized operations as a bitset, model state) prunes
every configuration that was already explored; for operations with unknown outcome it
prunes by inclusion (a configuration that linearized more optional operations than an
explored one with the same state and the same required operations can do nothing new).

The history is first split into independent partitions (P-compositionality: a history of
a map of registers is linearizable iff each key's sub-history is), and each partition is
checked alone.

Outcomes: an "ok" operation happened between its invoke and its completion. A "fail"
operation did not happen and is dropped. An "info" operation may or may not have happened,
at any time after its invoke: its return is placed at infinity and the search is allowed
to finish without linearizing it.

When a partition is not linearizable, the checker searches for the shortest failing
prefix: the earliest completion time T such that the operations invoked by T (with those
still running at T treated as unknown) already have no linearization. The report names the
operation completing at T, the operations concurrent with it and the longest partial
linearization found, with the model state after each step.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from raftkube.testing.chaos.history import FAIL, INFO, OK, History, Operation

LINEARIZABLE = "linearizable"
NOT_LINEARIZABLE = "not_linearizable"
UNKNOWN = "unknown"


class _Unknown:
    """The output of an operation whose outcome is unknown."""

    def __repr__(self) -> str:
        return "?"

    def __reduce__(self) -> str:
        return "UNKNOWN_OUTPUT"


UNKNOWN_OUTPUT = _Unknown()


class _Unobserved:
    """The representative of written values that no operation ever observes."""

    def __repr__(self) -> str:
        return "<unobserved value>"

    def __reduce__(self) -> str:
        return "UNOBSERVED"


UNOBSERVED = _Unobserved()


class Model(ABC):
    """A sequential specification to check histories against.

    Subclasses define `init` and `step`; `partition`, `read_only`, `blind`, `canonical`
    and `prepare` are optional refinements that only make the search faster and must not
    change the verdict. States must be hashable and compared by value (tuples, ...).
    """

    @abstractmethod
    def init(self) -> Hashable:
        """The state before any operation."""

    @abstractmethod
    def step(self, state: Hashable, f: str, input: Any, output: Any) -> tuple[bool, Hashable]:
        """Apply operation `f(input)` that returned `output` to `state`.

        Returns (legal, new_state): legal is False when the model could not have produced
        `output` from `state`. `output` is UNKNOWN_OUTPUT for an operation whose outcome is
        unknown: the model then applies the operation as it would have run (it must accept).
        Must be a pure function.
        """

    def partition(self, ops: Sequence[Operation]) -> dict[Hashable, list[Operation]]:
        """Independent sub-histories; the default is one partition holding everything."""
        return {None: list(ops)}

    def read_only(self, f: str) -> bool:
        """True when `f` never changes the state (unknown-outcome reads are then dropped)."""
        return False

    def blind(self, f: str, input: Any) -> bool:
        """True when `f(input)` is always legal and its new state ignores the old one (a
        blind write). The search then never linearizes it right after an unknown-outcome
        operation: the same result is reached by skipping that operation."""
        return False

    def canonical(self, ops: Sequence[Operation]) -> list[tuple[str, Any, Any]]:
        """The (f, input, output) the search passes to `step` for each operation: frozen
        values (lists as tuples), UNKNOWN_OUTPUT for unknown outcomes. A model may map
        values that no operation can tell apart to one representative (fewer states)."""
        return [(op.f, freeze(op.input),
                 freeze(op.output) if op.status == OK else UNKNOWN_OUTPUT) for op in ops]

    def prepare(self, ops: Sequence[Operation]) -> list[Operation]:
        """Refine one partition before the search (default: unchanged). A model may turn an
        unknown-outcome operation whose effect was observed into a completed one, with a
        return time no later than the first completed observation; it must stay sound."""
        return list(ops)


def freeze(value: Any) -> Hashable:
    """A hashable equal-by-value copy of a JSON-like value (lists become tuples)."""
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    return value


class RegisterModel(Model):
    """A map of independent registers, partitioned per key; absent keys read as None.

    Operations (input / output on ok):
    - get: input None; output the value read (None when absent).
    - put: input the value; output ignored.
    - delete: input None; output ignored.
    - cas: input [expected, new]; output True when it swapped (current == expected) and
      False when it did not (current != expected).
    """

    def init(self) -> Hashable:
        return None

    def step(self, state: Hashable, f: str, input: Any, output: Any) -> tuple[bool, Hashable]:
        if f == "get":
            return (output is UNKNOWN_OUTPUT or freeze(output) == state), state
        if f == "put":
            return True, freeze(input)
        if f == "delete":
            return True, None
        if f == "cas":
            expected, new = input
            matches = freeze(expected) == state
            if output is UNKNOWN_OUTPUT:
                return True, (freeze(new) if matches else state)
            if output:
                return matches, freeze(new)
            return not matches, state
        raise ValueError(f"register model: unknown operation {f!r} (get/put/delete/cas)")

    def partition(self, ops: Sequence[Operation]) -> dict[Hashable, list[Operation]]:
        parts: dict[Hashable, list[Operation]] = {}
        for op in ops:
            parts.setdefault(freeze(op.key), []).append(op)
        return parts

    def read_only(self, f: str) -> bool:
        return f == "get"

    def blind(self, f: str, input: Any) -> bool:
        return f in ("put", "delete")

    def canonical(self, ops: Sequence[Operation]) -> list[tuple[str, Any, Any]]:
        """Written values that no get returns and no cas expects are indistinguishable:
        they all become UNOBSERVED, so states that differ only by them are one state."""
        observed: set[Hashable] = {None}
        for op in ops:
            if op.f == "get" and op.status == OK:
                observed.add(freeze(op.output))
            elif op.f == "cas":
                observed.add(freeze(op.input[0]))
        out = super().canonical(ops)
        for n, (f, inp, res) in enumerate(out):
            if f == "put" and inp not in observed:
                out[n] = (f, UNOBSERVED, res)
            elif f == "cas" and inp[1] not in observed:
                out[n] = (f, (inp[0], UNOBSERVED), res)
        return out

    def prepare(self, ops: Sequence[Operation]) -> list[Operation]:
        """Unknown writes whose value was observed certainly happened.

        Only for values written by exactly one operation (the workloads write unique
        values): if an ok get returned it, or an ok cas swapped from it, the unknown put or
        cas that wrote it took effect before that observer returned. It becomes an ok
        operation (a cas with output True) completing at the earliest such return.
        """
        writers: dict[Hashable, list[Operation]] = {}
        for op in ops:
            written = _written_value(op)
            if written is not None:
                writers.setdefault(written, []).append(op)
        first_seen: dict[Hashable, float] = {}
        for op in ops:
            if op.status != OK:
                continue
            seen = None
            if op.f == "get":
                seen = freeze(op.output)
            elif op.f == "cas" and op.output:
                seen = freeze(op.input[0])
            if seen is not None:
                first_seen[seen] = min(first_seen.get(seen, math.inf), op.complete_time)
        out = []
        for op in ops:
            value = _written_value(op)
            if (op.status == INFO and value is not None and len(writers[value]) == 1
                    and value in first_seen):
                observed = first_seen[value]
                op = Operation(op.op_id, op.process, op.f, op.key, op.input,
                               True if op.f == "cas" else None, OK, op.invoke_time,
                               max(op.invoke_time, observed),
                               f"outcome unknown; observed by t={observed:.3f}")
            out.append(op)
        return out


def _written_value(op: Operation) -> Hashable:
    if op.f == "put":
        return freeze(op.input)
    if op.f == "cas":
        return freeze(op.input[1])
    return None


def describe_op(op: Operation) -> str:
    """One readable line: `p3 cas(k1, [1, 2]) -> True  [1.203, 1.250] ok`."""
    arg = f"{op.key!r}" if op.input is None else f"{op.key!r}, {op.input!r}"
    out = {OK: repr(op.output), INFO: "?", FAIL: "failed"}.get(op.status, "?")
    end = "inf" if math.isinf(op.complete_time) else f"{op.complete_time:.3f}"
    return f"p{op.process} {op.f}({arg}) -> {out}  [{op.invoke_time:.3f}, {end}] {op.status}"


@dataclass
class Failure:
    """Why one partition is not linearizable.

    prefix_end: the completion time T of the shortest failing prefix.
    culprit: the ok operation completing at T: with it the prefix has no linearization.
    concurrent: operations of the prefix whose interval overlaps the culprit's.
    prefix_ops: every operation of the failing prefix (those running at T as unknown).
    partial: the longest partial linearization found: (operation, state after it).
    """

    key: Hashable
    prefix_end: float
    culprit: Operation
    concurrent: list[Operation]
    prefix_ops: list[Operation]
    partial: list[tuple[Operation, Hashable]]

    def describe(self, max_lines: int = 12) -> str:
        lines = [f"key {self.key!r}: not linearizable; shortest failing prefix ends at "
                 f"t={self.prefix_end:.3f} ({len(self.prefix_ops)} operations)",
                 f"  cannot linearize: {describe_op(self.culprit)}",
                 "  concurrent with it:"]
        done = [op for op in self.concurrent if op.status == OK]
        unknown = [op for op in self.concurrent if op.status != OK]
        lines += [f"    {describe_op(op)}" for op in done[:max_lines]]
        if len(done) > max_lines:
            lines.append(f"    ... {len(done) - max_lines} more completed operations")
        lines += [f"    {describe_op(op)}" for op in unknown[:3]]
        if len(unknown) > 3:
            lines.append(f"    ... {len(unknown) - 3} more with unknown outcome")
        if not self.concurrent:
            lines.append("    none")
        lines.append(f"  longest partial linearization ({len(self.partial)} steps), last steps:")
        for op, state in self.partial[-max_lines:]:
            lines.append(f"    {describe_op(op)}   => state {state!r}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "prefix_end": self.prefix_end,
            "culprit": _op_dict(self.culprit),
            "concurrent": [_op_dict(op) for op in self.concurrent],
            "prefix_op_ids": [op.op_id for op in self.prefix_ops],
            "partial": [{"op_id": op.op_id, "state": repr(s)} for op, s in self.partial],
        }


@dataclass
class PartitionResult:
    """The outcome for one partition (one key of a register map)."""

    key: Hashable
    outcome: str
    operations: int
    elapsed: float
    failure: Failure | None = None


@dataclass
class LinearizabilityResult:
    """The checker's verdict over all partitions.

    outcome: "linearizable", "not_linearizable" or "unknown" (time limit reached before a
    verdict; a partition found not linearizable wins over unknown ones).
    """

    outcome: str
    partitions: list[PartitionResult]
    elapsed: float
    operations: int
    name: str = "linearizability"
    failures: list[Failure] = field(default_factory=list)

    @property
    def valid(self) -> bool | None:
        """True/False for a verdict, None for unknown."""
        return {LINEARIZABLE: True, NOT_LINEARIZABLE: False}.get(self.outcome)

    def summary(self) -> str:
        head = (f"{self.name}: {self.outcome} ({self.operations} operations, "
                f"{len(self.partitions)} partitions, {self.elapsed:.2f}s)")
        unknown = [p.key for p in self.partitions if p.outcome == UNKNOWN]
        parts = [head]
        if unknown:
            parts.append(f"  time limit reached on keys {unknown!r}")
        parts += [f.describe() for f in self.failures]
        return "\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "outcome": self.outcome, "valid": self.valid,
            "operations": self.operations, "elapsed": self.elapsed,
            "partitions": [{"key": p.key, "outcome": p.outcome, "operations": p.operations,
                            "elapsed": p.elapsed} for p in self.partitions],
            "failures": [f.to_dict() for f in self.failures],
        }


def check(history: History | Iterable[Operation], model: Model | None = None,
          time_limit: float | None = 60.0, explain: bool = True) -> LinearizabilityResult:
    """Check a history against `model` (default RegisterModel) within `time_limit` seconds.

    `time_limit` None means no limit. `explain` False skips the shortest-prefix search on
    failure (the verdict is the same, the report names the first blocking operation only).
    Pure: never modifies the history.
    """
    model = model or RegisterModel()
    ops = history.operations() if isinstance(history, History) else list(history)
    started = time.monotonic()
    deadline = None if time_limit is None else started + time_limit
    kept = [op for op in ops if op.status != FAIL
            and not (op.status != OK and model.read_only(op.f))]
    results: list[PartitionResult] = []
    failures: list[Failure] = []
    for key, part in model.partition(kept).items():
        t0 = time.monotonic()
        part = model.prepare(part)
        search = _Search(model, part)
        verdict = search.run(deadline)
        failure = None
        if verdict == NOT_LINEARIZABLE:
            failure = _explain(model, key, part, deadline) if explain else None
            if failure is None:
                tracked = _Search(model, part, track=True)
                tracked.run(deadline)
                failure = tracked.failure(key)
            failures.append(failure)
        results.append(PartitionResult(key, verdict, len(part), time.monotonic() - t0, failure))
    if failures:
        outcome = NOT_LINEARIZABLE
    elif any(r.outcome == UNKNOWN for r in results):
        outcome = UNKNOWN
    else:
        outcome = LINEARIZABLE
    return LinearizabilityResult(outcome, results, time.monotonic() - started, len(ops),
                                 failures=failures)


def checker(model: Model | None = None, time_limit: float | None = 60.0,
            name: str = "linearizability") -> Callable[[History], LinearizabilityResult]:
    """A runner checker: history -> check(history, model, time_limit), named `name`."""

    def run_check(history: History) -> LinearizabilityResult:
        result = check(history, model, time_limit)
        result.name = name
        return result

    run_check.__name__ = name
    return run_check


class _Search:
    """One partition's search over the entry list (arrays for speed)."""

    def __init__(self, model: Model, ops: Sequence[Operation], track: bool = False) -> None:
        """track: remember the longest partial linearization (costs a copy of the stack at
        every new depth maximum; only for explaining a failure)."""
        self.model = model
        self.track = track
        self.ops = list(ops)
        entries = []
        for i, op in enumerate(self.ops):
            if op.status == OK and op.complete_time < op.invoke_time:
                raise ValueError(f"operation {op.op_id}: completes at {op.complete_time} "
                                 f"before its invoke at {op.invoke_time}")
            entries.append((op.invoke_time, 0, i))
            end = op.complete_time if op.status == OK else math.inf
            entries.append((end, 1, i))
        entries.sort()
        size = len(entries) + 1
        self.nxt = [-1] * size
        self.prv = [-1] * size
        self.is_call = [False] * size
        self.op_of = [-1] * size
        self.match = [-1] * size
        self.unbounded = [False] * size
        call_pos: dict[int, int] = {}
        for pos, (when, kind, i) in enumerate(entries, start=1):
            self.op_of[pos] = i
            self.is_call[pos] = kind == 0
            self.unbounded[pos] = kind == 1 and math.isinf(when)
            if kind == 0:
                call_pos[i] = pos
            else:
                self.match[call_pos[i]] = pos
            self.prv[pos] = pos - 1
            self.nxt[pos - 1] = pos
        self.args = model.canonical(self.ops)
        self.optional = [op.status != OK for op in self.ops]
        self.blind = [model.blind(op.f, op.input) for op in self.ops]
        self.deepest: list[tuple[int, Hashable]] = []
        self.blocked_at: int = -1

    def _lift(self, e: int) -> None:
        nxt, prv = self.nxt, self.prv
        for x in (e, self.match[e]):
            nxt[prv[x]] = nxt[x]
            if nxt[x] != -1:
                prv[nxt[x]] = prv[x]

    def _unlift(self, e: int) -> None:
        nxt, prv = self.nxt, self.prv
        for x in (self.match[e], e):
            nxt[prv[x]] = x
            if nxt[x] != -1:
                prv[nxt[x]] = x

    def run(self, deadline: float | None) -> str:
        """Search; returns LINEARIZABLE, NOT_LINEARIZABLE or UNKNOWN (deadline passed).

        The cache maps (linearized required ops, state) to the sets of optional (unknown
        outcome) ops linearized with them. A configuration is pruned when an explored one
        has the same required ops and state and a subset of its optional ops: whatever the
        larger set can still do, the smaller can too, since optional ops may be skipped.
        """
        step = self.model.step
        nxt, is_call, op_of, args = self.nxt, self.is_call, self.op_of, self.args
        optional, blind = self.optional, self.blind
        state = self.model.init()
        required_bits = 0
        optional_bits = 0
        cache: dict[tuple[int, Hashable], list[int]] = {}
        stack: list[tuple[int, Hashable, Hashable, set[Any]]] = []
        tried: set[Any] = set()  # optional (f, input, output) tried in this configuration
        after_optional = False  # the last linearized operation was an optional one
        optional_pass = False  # scanning optional candidates (required ones were tried)
        e = nxt[0]
        loops = 0
        while e != -1:
            loops += 1
            if deadline is not None and loops & 1023 == 0 and time.monotonic() > deadline:
                return UNKNOWN
            if is_call[e]:
                i = op_of[e]
                if optional[i] != optional_pass or (after_optional and blind[i]):
                    e = nxt[e]
                    continue
                if optional_pass:
                    # Optional ops with equal arguments are interchangeable once invoked.
                    if args[i] in tried:
                        e = nxt[e]
                        continue
                    tried.add(args[i])
                f, inp, out = args[i]
                legal, new_state = step(state, f, inp, out)
                if optional_pass and new_state == state:
                    legal = False  # a no-op optional step is dominated by not taking it
                if legal:
                    if optional_pass:
                        req, opt = required_bits, optional_bits | (1 << i)
                    else:
                        req, opt = required_bits | (1 << i), optional_bits
                    explored = cache.setdefault((req, new_state), [])
                    if not any(seen & ~opt == 0 for seen in explored):
                        explored.append(opt)
                        stack.append((e, state, new_state, tried))
                        tried = set()
                        state, required_bits, optional_bits = new_state, req, opt
                        self._lift(e)
                        after_optional, optional_pass = optional_pass, False
                        e = nxt[0]
                        continue
                e = nxt[e]
            else:
                if self.unbounded[e]:
                    return LINEARIZABLE
                if not optional_pass:
                    optional_pass = True
                    e = nxt[0]
                    continue
                if self.track and (len(stack) > len(self.deepest) or not self.deepest):
                    # a local maximum of depth: remember the partial linearization
                    self.deepest = [(op_of[s[0]], s[2]) for s in stack]
                    self.blocked_at = op_of[e]
                if not stack:
                    if self.blocked_at < 0:
                        self.blocked_at = op_of[e]
                    return NOT_LINEARIZABLE
                e, state, _, tried = stack.pop()
                i = op_of[e]
                optional_pass = optional[i]
                if optional_pass:
                    optional_bits &= ~(1 << i)
                else:
                    required_bits &= ~(1 << i)
                after_optional = bool(stack) and optional[op_of[stack[-1][0]]]
                self._unlift(e)
                e = nxt[e]
        return LINEARIZABLE

    def failure(self, key: Hashable) -> Failure:
        """A report from this search alone (no prefix minimisation)."""
        culprit = self.ops[self.blocked_at] if self.blocked_at >= 0 else self.ops[-1]
        concurrent = [op for op in self.ops if op is not culprit and _overlaps(op, culprit)]
        partial = [(self.ops[i], s) for i, s in self.deepest]
        return Failure(key, culprit.complete_time, culprit, concurrent, self.ops, partial)


def _overlaps(a: Operation, b: Operation) -> bool:
    a_end = a.complete_time if a.status == OK else math.inf
    b_end = b.complete_time if b.status == OK else math.inf
    return a.invoke_time <= b_end and b.invoke_time <= a_end


def _prefix(ops: Sequence[Operation], cut: float) -> list[Operation]:
    """Operations invoked by `cut`; those completing after it become unknown."""
    out = []
    for op in ops:
        if op.invoke_time > cut:
            continue
        if op.status == OK and op.complete_time > cut:
            op = Operation(op.op_id, op.process, op.f, op.key, op.input, None, INFO,
                           op.invoke_time, math.inf, "running at the prefix's end")
        out.append(op)
    return out


def _explain(model: Model, key: Hashable, ops: Sequence[Operation],
             deadline: float | None) -> Failure | None:
    """Binary-search the shortest failing prefix; None if the deadline cuts it short."""
    cuts = sorted({op.complete_time for op in ops if op.status == OK})
    lo, hi = 0, len(cuts) - 1
    best: tuple[float, _Search] | None = None
    while lo <= hi:
        mid = (lo + hi) // 2
        prefix = model.prepare([op for op in _prefix(ops, cuts[mid])
                                if not (op.status != OK and model.read_only(op.f))])
        search = _Search(model, prefix)
        verdict = search.run(deadline)
        if verdict == UNKNOWN:
            return None
        if verdict == NOT_LINEARIZABLE:
            best = (cuts[mid], search)
            hi = mid - 1
        else:
            lo = mid + 1
    if best is None:
        return None
    cut, search = best
    search = _Search(model, search.ops, track=True)
    search.run(deadline)
    culprits = [op for op in search.ops if op.status == OK and op.complete_time == cut]
    culprit = culprits[0]
    concurrent = [op for op in search.ops if op is not culprit and _overlaps(op, culprit)]
    partial = [(search.ops[i], s) for i, s in search.deepest]
    return Failure(key, cut, culprit, concurrent, search.ops, partial)


def _op_dict(op: Operation) -> dict[str, Any]:
    return {"op_id": op.op_id, "process": op.process, "f": op.f, "key": op.key,
            "input": op.input, "output": op.output, "status": op.status,
            "invoke_time": op.invoke_time,
            "complete_time": None if math.isinf(op.complete_time) else op.complete_time}
