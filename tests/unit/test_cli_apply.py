"""`raftkubectl apply --dry-run=client`: output formats, errors one per line, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from raftkube.cli import raftkubectl_main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

GOOD = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: fast
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: localhost/busybox:latest
        ports:
        - containerPort: 8080
"""


def _run(args: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "raftkube.cli.raftkubectl_main", *args],
        input=stdin, capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
    )


def test_examples_directory_dry_run_succeeds_with_one_line_per_object() -> None:
    result = _run(["apply", "--dry-run=client", "-f", "examples/"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "namespace/demo configured (dry run)"
    assert "deployment.apps/web configured (dry run)" in lines
    assert "ingress.networking.k8s.io/web configured (dry run)" in lines
    assert "statefulset.apps/kv configured (dry run)" in lines
    assert all(line.endswith(" configured (dry run)") for line in lines)
    assert result.stderr == ""


def test_output_yaml_prints_defaulted_objects_that_load_again(tmp_path: Path, capsys) -> None:
    manifest = tmp_path / "app.yaml"
    manifest.write_text(GOOD)
    assert raftkubectl_main.main(["apply", "--dry-run=client", "-f", str(manifest),
                                  "-o", "yaml"]) == 0
    documents = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["kind"] for d in documents] == ["ConfigMap", "Deployment"]
    deployment = documents[1]
    assert deployment["metadata"]["namespace"] == "default"
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": "25%",
                                                               "maxSurge": "25%"}
    port = deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]
    assert port == {"containerPort": 8080, "protocol": "TCP"}


def test_output_json_and_name_and_namespace_flag(tmp_path: Path, capsys) -> None:
    manifest = tmp_path / "app.yaml"
    manifest.write_text(GOOD)
    assert raftkubectl_main.main(["apply", "--dry-run=client", "-f", str(manifest),
                                  "-o", "json", "-n", "shop"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["kind"] == "List"
    assert [i["metadata"]["namespace"] for i in listed["items"]] == ["shop", "shop"]
    assert raftkubectl_main.main(["apply", "--dry-run=client", "-f", str(manifest),
                                  "-o", "name"]) == 0
    assert capsys.readouterr().out == "configmap/settings\ndeployment.apps/web\n"


def test_stdin_with_errors_prints_each_error_and_fails() -> None:
    broken = GOOD.replace("containerPort: 8080", "containerPort: 70000").replace(
        "name: settings", "name: Settings")
    result = _run(["apply", "--dry-run=client", "-f", "-"], stdin=broken)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: <stdin>[0]: metadata.name: 'Settings' is not a valid DNS-1123 subdomain: "
        "lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
        "error: <stdin>[1]: spec.template.spec.containers[0].ports[0].containerPort: "
        "70000 is not a valid port",
    ]


def test_a_missing_file_fails(capsys) -> None:
    assert raftkubectl_main.main(["apply", "--dry-run=client", "-f", "/nonexistent.yaml"]) == 1
    assert "the path '/nonexistent.yaml' does not exist" in capsys.readouterr().err


def test_without_a_cluster_config_it_names_the_missing_file(tmp_path: Path, capsys,
                                                            monkeypatch) -> None:
    missing = tmp_path / "nowhere" / "config"
    monkeypatch.setenv("RAFTKUBECONFIG", str(missing))
    assert raftkubectl_main.main(["apply", "-f", str(EXAMPLES)]) == 1
    err = capsys.readouterr().err
    assert f"{missing}: cannot read the client config" in err


def test_bad_output_format_is_a_usage_error() -> None:
    result = _run(["apply", "--dry-run=client", "-f", "examples/", "-o", "xml"])
    assert result.returncode == 2
    assert "invalid choice: 'xml'" in result.stderr
