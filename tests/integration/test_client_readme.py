"""The examples in raftkube/client/README.md run, in order, against a real cluster."""

from __future__ import annotations

import re
import tempfile

import pytest

from raftkube.testing.master_cluster import REPO_ROOT, MasterCluster

pytestmark = pytest.mark.slow


def readme_examples() -> list[str]:
    text = (REPO_ROOT / "raftkube" / "client" / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_examples_run(monkeypatch, capsys, tmp_path) -> None:
    examples = readme_examples()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the examples' mkdtemp() dirs
    assert len(examples) >= 8
    with MasterCluster(3) as cluster:
        monkeypatch.setenv("RAFTKUBECONFIG", str(cluster.layout.admin_config))
        namespace: dict = {}
        for index, code in enumerate(examples):
            try:
                exec(compile(code, f"README.md example {index}", "exec"), namespace)
            except Exception as e:
                raise AssertionError(f"README example {index} failed: {e!r}\n{code}") from e
    out = capsys.readouterr().out
    assert "conflict:" in out and "metadata.name" in out and "not found" in out
