"""Run reports: JSON (everything), a short text summary, and a PNG plot.

Checker results are any objects with `name`, `valid` (True / False / None for "no
verdict"), `summary()` and `to_dict()`; every checker of this package returns one.

The verdict of a run: "invalid" if any checker says False, else "unknown" if any gives no
verdict (e.g. the linearizability search hit its time limit), else "valid".
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from raftkube.testing.chaos.history import (
    FAIL,
    FAULT_START,
    INFO,
    OK,
    FaultEvent,
    History,
    OpEvent,
)

VALID = "valid"
INVALID = "invalid"
UNDECIDED = "unknown"


class CheckerResult(Protocol):
    """What a report needs from a checker's result."""

    name: str

    @property
    def valid(self) -> bool | None: ...

    def summary(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ReportPaths:
    """Files written by `write_report` (png None when plotting was off)."""

    json: Path
    text: Path
    png: Path | None


def verdict(results: Sequence[CheckerResult]) -> str:
    """'invalid' if any result is False, 'unknown' if any is None, else 'valid'."""
    values = [r.valid for r in results]
    if any(v is False for v in values):
        return INVALID
    if any(v is None for v in values):
        return UNDECIDED
    return VALID


def report_dict(history: History, results: Sequence[CheckerResult], seed: int | None,
                meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything about a run as JSON-ready data."""
    return {
        "format": "raftkube-chaos-report/1",
        "seed": seed,
        "verdict": verdict(results),
        "meta": meta or {},
        "results": [r.to_dict() for r in results],
        "faults": [asdict(f) for f in history.faults()],
        "history": history.to_dict(),
    }


def text_summary(history: History, results: Sequence[CheckerResult], seed: int | None,
                 meta: dict[str, Any] | None = None, max_bursts: int = 200,
                 burst_gap: float = 0.5) -> str:
    """A few lines per checker, then a timeline: every fault start and heal, and the
    failed/unknown operations grouped into bursts (no more than `burst_gap` seconds between
    two of them), at most `max_bursts` bursts."""
    ops = history.operations()
    counts = {s: sum(1 for o in ops if o.status == s) for s in (OK, FAIL, INFO)}
    end = max((e.time for e in history.events()), default=0.0)
    lines = [f"chaos run: verdict {verdict(results).upper()}",
             f"seed {seed} (replay with --seed {seed})" if seed is not None else "seed: none",
             f"duration {end:.1f}s; {len(ops)} operations: {counts[OK]} ok, "
             f"{counts[FAIL]} failed, {counts[INFO]} unknown; {len(history.faults())} faults"]
    lines += [f"{k}: {v}" for k, v in (meta or {}).items()]
    lines.append("")
    lines += [r.summary() for r in results]
    lines += ["", "timeline (every fault; failed and unknown operations in bursts):"]
    timeline: list[str] = []
    burst: list[OpEvent] = []
    shown_bursts = 0

    def flush() -> None:
        nonlocal shown_bursts
        if not burst:
            return
        shown_bursts += 1
        if shown_bursts <= max_bursts:
            timeline.append(_burst_line(burst))
        burst.clear()

    for event in history.events():
        if isinstance(event, FaultEvent):
            flush()
            what = "START" if event.type == FAULT_START else "heal "
            detail = f" {json.dumps(event.detail, default=str)}" if event.detail else ""
            timeline.append(f"  {event.time:9.3f}  fault {what} {event.name}{detail}")
        elif isinstance(event, OpEvent) and event.type in (FAIL, INFO):
            if burst and event.time - burst[-1].time > burst_gap:
                flush()
            burst.append(event)
    flush()
    if shown_bursts > max_bursts:
        timeline.append(f"  ... {shown_bursts - max_bursts} more bursts in the JSON report")
    lines += timeline or ["  (nothing)"]
    return "\n".join(lines) + "\n"


def _burst_line(burst: Sequence[OpEvent]) -> str:
    failed = sum(1 for e in burst if e.type == FAIL)
    unknown = len(burst) - failed
    errors: dict[str, int] = {}
    for e in burst:
        errors[e.error or "?"] = errors.get(e.error or "?", 0) + 1
    common = max(errors, key=errors.__getitem__)
    ops = sorted({e.f for e in burst})
    span = (f"{burst[0].time:9.3f}" if len(burst) == 1
            else f"{burst[0].time:9.3f}-{burst[-1].time:.3f}")
    return (f"  {span}  {failed} failed, {unknown} unknown ({', '.join(ops)}); "
            f"most common error: {common} (x{errors[common]})")


def auto_bucket(duration: float) -> float:
    """The smallest round bucket width giving at most 120 buckets over `duration`."""
    for width in (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 600):
        if duration / width <= 120:
            return float(width)
    return duration / 120


def plot(history: History, path: str | Path, bucket: float | None = None,
         title: str = "chaos run") -> Path:
    """PNG: latency of every operation (top) and share of ok operations per `bucket`
    seconds (bottom; default auto_bucket), fault intervals shaded and labelled."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ops = history.operations()
    faults = history.faults()
    end = max((e.time for e in history.events()), default=1.0) or 1.0
    bucket = bucket or auto_bucket(end)
    fig, (lat_ax, av_ax) = plt.subplots(2, 1, figsize=(12, 6.5), sharex=True,
                                        gridspec_kw={"height_ratios": [3, 2]})
    try:
        names = sorted({o.f for o in ops})
        colours = plt.get_cmap("tab10")
        for i, f in enumerate(names):
            done = [o for o in ops if o.f == f and o.status == OK]
            lat_ax.scatter([o.invoke_time for o in done],
                           [max(o.complete_time - o.invoke_time, 1e-5) * 1000 for o in done],
                           s=6, color=colours(i % 10), label=f"{f} ok", alpha=0.7)
        failed = [o for o in ops if o.status == FAIL]
        lat_ax.scatter([o.invoke_time for o in failed],
                       [max(o.complete_time - o.invoke_time, 1e-5) * 1000 for o in failed],
                       s=22, marker="x", color="red", label="failed")
        unknown = [o for o in ops if o.status == INFO]
        top = max([o.latency * 1000 for o in ops if o.latency] or [1.0]) * 1.5
        lat_ax.scatter([o.invoke_time for o in unknown], [top] * len(unknown), s=22,
                       marker="v", color="darkorange", label="unknown outcome (drawn at top)")
        lat_ax.set_yscale("log")
        positive = [max(o.complete_time - o.invoke_time, 1e-5) * 1000 for o in ops
                    if o.status != INFO]
        lat_ax.set_ylim(min(positive, default=0.01) * 0.7, top * 1.4)
        lat_ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        lat_ax.set_ylabel("latency (ms, log)")
        fig.suptitle(title)
        lat_ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), fontsize=8, ncol=6,
                      frameon=False)
        buckets = max(1, math.ceil(end / bucket))
        total = [0] * buckets
        good = [0] * buckets
        for o in ops:
            # an operation counts where it ended; unknown outcomes where they were sent
            when = o.invoke_time if o.status == INFO else o.complete_time
            b = min(buckets - 1, int(when / bucket))
            total[b] += 1
            good[b] += o.status == OK
        xs = [(b + 0.5) * bucket for b in range(buckets)]
        # a bucket where nothing completed had no successful operation: 0 %
        share = [g / t * 100 if t else 0.0 for g, t in zip(good, total, strict=True)]
        av_ax.plot(xs, share, color="tab:green", marker=".", label="ok operations (%)")
        av_ax.set_ylim(-5, 105)
        av_ax.set_ylabel(f"ok share of ops ending\nper {bucket:g}s (%)")
        av_ax.set_xlabel("time since start (s)")
        rate_ax = av_ax.twinx()
        rate_ax.plot(xs, [t / bucket for t in total], color="tab:gray", linewidth=0.8,
                     label="operations ending/s")
        rate_ax.set_ylabel("operations ending/s (grey)")
        for n, fault in enumerate(faults):
            stop = fault.stop if fault.stop is not None else end
            for ax in (lat_ax, av_ax):
                ax.axvspan(fault.start, stop, color="tab:red", alpha=0.15)
            av_ax.text(fault.start, 100 - (n % 4) * 12, fault.name, fontsize=7,
                       va="top", color="darkred")
        av_ax.set_xlim(0, end)
        fig.tight_layout()
        out = Path(path)
        fig.savefig(out, dpi=110)
        return out
    finally:
        plt.close(fig)


def write_report(out_dir: str | Path, history: History, results: Sequence[CheckerResult],
                 seed: int | None, meta: dict[str, Any] | None = None,
                 name: str = "report", with_plot: bool = True) -> ReportPaths:
    """Write NAME.json, NAME.txt and NAME.png under out_dir (created; files overwritten)."""
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / f"{name}.json"
    text_path = directory / f"{name}.txt"
    json_path.write_text(json.dumps(report_dict(history, results, seed, meta), default=str))
    text_path.write_text(text_summary(history, results, seed, meta))
    png = plot(history, directory / f"{name}.png", title=f"{name} (seed {seed})") \
        if with_plot else None
    return ReportPaths(json_path, text_path, png)
