"""Report files and the re-check command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from raftkube.testing.chaos.check_cli import main as check_main
from raftkube.testing.chaos.checkers import check_set
from raftkube.testing.chaos.history import DefiniteFailure, History
from raftkube.testing.chaos.linearizability import check
from raftkube.testing.chaos.report import (
    auto_bucket,
    text_summary,
    verdict,
    write_report,
)


def small_history(stale: bool) -> History:
    now = [0.0]
    h = History(clock=lambda: now[0])

    def tick(dt: float) -> None:
        now[0] += dt

    h.record(1, "put", "k", 1, lambda: tick(0.1))
    fid = h.fault_start("kill-leader", {"pid": 123})
    tick(0.5)

    def refused() -> None:
        tick(0.1)
        raise DefiniteFailure("no leader")

    h.record(2, "put", "k", 2, refused)

    def timeout() -> None:
        tick(0.2)
        raise TimeoutError("deadline")

    h.record(3, "put", "k", 3, timeout)
    h.fault_stop(fid)
    h.record(1, "get", "k", None, lambda: 2 if stale else 1)
    h.fault_start("partition-never-healed")
    return h


def test_text_summary_has_verdict_seed_checkers_and_timeline() -> None:
    h = small_history(stale=False)
    results = [check(h), check_set(h, [1, 3], add_f="put")]
    text = text_summary(h, results, seed=99, meta={"masters": 3})
    assert verdict(results) == "valid"
    assert "verdict VALID" in text and "replay with --seed 99" in text and "masters: 3" in text
    assert "linearizability: linearizable" in text
    assert "fault START kill-leader" in text and '"pid": 123' in text
    assert "fault heal  kill-leader" in text
    assert "1 failed, 1 unknown (put)" in text


def test_write_report_and_recheck_from_the_file(tmp_path: Path) -> None:
    h = small_history(stale=True)
    result = check(h)
    assert result.outcome == "not_linearizable"
    paths = write_report(tmp_path / "out", h, [result], seed=5, name="run1")
    data = json.loads(paths.json.read_text())
    assert data["verdict"] == "invalid" and data["seed"] == 5
    assert data["results"][0]["failures"][0]["culprit"]["f"] == "get"
    assert [f["name"] for f in data["faults"]] == ["kill-leader", "partition-never-healed"]
    assert paths.png is not None and paths.png.read_bytes()[:4] == b"\x89PNG"
    assert "verdict INVALID" in paths.text.read_text()
    assert check_main([str(paths.json)]) == 1
    h.save(tmp_path / "h.json")
    proc = subprocess.run([sys.executable, "-m", "raftkube.testing.chaos.check_cli",
                           str(tmp_path / "h.json")], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert proc.returncode == 1 and "cannot linearize" in proc.stdout


def test_recheck_reports_unreadable_input(tmp_path: Path, capsys: object) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert check_main([str(bad)]) == 3
    empty = History()
    empty.save(tmp_path / "empty.json")
    assert check_main([str(tmp_path / "empty.json")]) == 0


def test_empty_history_plots_and_buckets() -> None:
    assert auto_bucket(1.2) == 0.05
    assert auto_bucket(3600) == 30
    assert verdict([]) == "valid"


def test_plot_of_an_empty_history(tmp_path: Path) -> None:
    paths = write_report(tmp_path, History(), [], seed=None)
    assert paths.png is not None and paths.png.stat().st_size > 0
    assert "seed: none" in paths.text.read_text()
