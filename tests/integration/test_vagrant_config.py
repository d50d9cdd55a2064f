"""CI-cheap checks of the Vagrant deployment: the Vagrantfile validates for several cluster
sizes and names exactly the machines asked for, bad sizes are rejected with the variable
named, and every deployment shell script parses (bash -n) and passes shellcheck."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VAGRANT_DIR = REPO / "deploy" / "vagrant"
SHELL_SCRIPTS = sorted(
    [
        *(REPO / "deploy").rglob("*.sh"),
        *(REPO / "scripts").glob("vagrant_*.sh"),
        REPO / "scripts" / "build_wheels.sh",
    ]
)


def _validate(tmp_path: Path, **env_overrides: str) -> subprocess.CompletedProcess[str]:
    """`vagrant validate --ignore-provider` with no plugins; Vagrant's state goes to tmp."""
    if shutil.which("vagrant") is None:
        pytest.skip("vagrant is not installed (scripts/vagrant_host_setup.sh installs it)")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("RAFTKUBE_", "VAGRANT_"))
    }
    env.update(
        VAGRANT_NO_PLUGINS="1",
        VAGRANT_CWD=str(VAGRANT_DIR),
        VAGRANT_DOTFILE_PATH=str(tmp_path / "dotfile"),
        VAGRANT_HOME=str(tmp_path / "vagrant.d"),
        RAFTKUBE_WHEELS=str(tmp_path / "wheels"),
        RAFTKUBE_CLUSTER_DIR=str(tmp_path / "cluster"),
    )
    env.update(env_overrides)
    return subprocess.run(
        ["vagrant", "validate", "--ignore-provider"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _machines(output: str) -> list[str]:
    return re.findall(r"==> (\S+): Ignoring provider config for validation", output)


def test_default_vagrantfile_validates_with_three_masters_and_two_workers(tmp_path):
    result = _validate(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Vagrantfile validated successfully" in result.stdout
    assert _machines(result.stdout) == [
        "master-1", "master-2", "master-3", "worker-1", "worker-2",
    ]


def test_cluster_size_comes_from_the_environment(tmp_path):
    result = _validate(tmp_path, RAFTKUBE_MASTERS="1", RAFTKUBE_WORKERS="0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _machines(result.stdout) == ["master-1"]

    result = _validate(tmp_path, RAFTKUBE_MASTERS="5", RAFTKUBE_WORKERS="3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _machines(result.stdout) == [
        "master-1", "master-2", "master-3", "master-4", "master-5",
        "worker-1", "worker-2", "worker-3",
    ]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RAFTKUBE_MASTERS", "0"),
        ("RAFTKUBE_MASTERS", "three"),
        ("RAFTKUBE_WORKERS", "-1"),
        ("RAFTKUBE_SUBNET", "192.168.300"),
        ("RAFTKUBE_VAGRANT_ACCEL", "hyperv"),
    ],
)
def test_bad_settings_are_rejected_naming_the_variable(tmp_path, variable, value):
    result = _validate(tmp_path, **{variable: value})
    assert result.returncode != 0
    assert f"{variable}={value!r}".replace("'", '"') in result.stdout + result.stderr


def test_validate_leaves_no_state_in_the_checkout(tmp_path):
    before = (VAGRANT_DIR / ".vagrant").exists()
    result = _validate(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (VAGRANT_DIR / ".vagrant").exists() == before


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_shell_script_parses(script):
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_shell_script_passes_shellcheck(script):
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    result = subprocess.run(["shellcheck", "--severity=info", str(script)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shell_scripts_are_executable():
    not_executable = [str(p.relative_to(REPO)) for p in SHELL_SCRIPTS
                      if not os.access(p, os.X_OK)]
    assert not_executable == []


def test_every_provisioning_script_the_vagrantfile_runs_exists():
    text = (VAGRANT_DIR / "Vagrantfile").read_text()
    scripts = set(re.findall(r'provision\.call\("[\w-]+", "([\w.]+\.sh)"', text))
    assert scripts == {"install_raftkube.sh", "configure_node.sh", "install_units.sh"}
    for script in scripts:
        assert (REPO / "deploy" / "provision" / script).is_file(), script
    for role in ("master", "worker"):
        assert (REPO / "deploy" / "systemd" / f"raftkube-{role}.service").is_file()


def test_host_setup_check_says_whether_vms_can_run_here():
    script = REPO / "scripts" / "vagrant_host_setup.sh"
    result = subprocess.run(["bash", str(script), "--check"], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode in (0, 3), result.stdout + result.stderr
    if result.returncode == 0:
        assert re.search(r"^vagrant_host_setup: accel=(kvm|qemu)$", result.stdout, re.M)
    else:
        assert "VMs cannot run here: " in result.stdout


def test_host_setup_rejects_unknown_arguments():
    script = REPO / "scripts" / "vagrant_host_setup.sh"
    result = subprocess.run(["bash", str(script), "--install-everything"], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "unknown argument '--install-everything'" in result.stderr


# Loads the Vagrantfile with a stand-in for Vagrant's configuration object that records
# every setting and call, so what Vagrant would be asked to do can be checked without
# Vagrant or its plugins. Calls made inside `define NAME` carry NAME in their path.
_RUBY_RECORDER = r'''
require "json"
class Recorder
  def initialize(path, calls) @path = path; @calls = calls end
  def method_missing(name, *args, **kw, &block)
    n = name.to_s
    if n.end_with?("=")
      @calls << {"path" => @path, "set" => n.chomp("="), "value" => args[0]}
      return args[0]
    end
    @calls << {"path" => @path, "call" => n, "args" => args, "kw" => kw}
    child = Recorder.new(@path + [n] + (n == "define" ? args.map(&:to_s) : []), @calls)
    block.call(child) if block
    child
  end
  def respond_to_missing?(*) true end
end
module Vagrant
  CALLS = []
  def self.configure(_version) yield Recorder.new([], CALLS) end
end
load ARGV[0]
puts JSON.generate(Vagrant::CALLS)
'''


def _recorded_calls(tmp_path: Path, **env_overrides: str) -> list[dict]:
    if shutil.which("ruby") is None:
        pytest.skip("ruby is not installed (it comes with vagrant)")
    probe = tmp_path / "recorder.rb"
    probe.write_text(_RUBY_RECORDER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAFTKUBE_")}
    env.update(env_overrides)
    result = subprocess.run(["ruby", str(probe), str(VAGRANT_DIR / "Vagrantfile")], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _machine(call: dict) -> str | None:
    path = call["path"]
    return path[path.index("define") + 1] if "define" in path else None


def test_each_vm_receives_only_its_own_part_of_the_cluster_directory(tmp_path):
    """The rsync filter the Vagrantfile gives each VM, run with real rsync against a
    cluster directory of raftkube init's layout."""
    from tests.integration.test_vagrant_provision_local import _write_cluster_dir

    cluster_dir = tmp_path / "cluster"
    _write_cluster_dir(cluster_dir)
    calls = _recorded_calls(tmp_path, RAFTKUBE_MASTERS="3", RAFTKUBE_WORKERS="1",
                            RAFTKUBE_CLUSTER_DIR=str(cluster_dir))
    folders = {(_machine(c), c["args"][1]): c for c in calls if c.get("call") == "synced_folder"}
    expected = {
        "master-2": ["ca/ca.crt", "cluster.yaml", "encryption-keys.yaml",
                     "masters/master-2/server.crt", "masters/master-2/server.key",
                     "node-serving-ca/ca.crt", "node-serving-ca/ca.key", "raft-secret",
                     "tokens.json"],
        "worker-1": ["ca/ca.crt", "cluster.yaml", "workers/worker-1/client.crt",
                     "workers/worker-1/client.key", "workers/worker-1/config.yaml",
                     "workers/worker-1/token"],
    }
    for machine, files in expected.items():
        folder = folders[(machine, "/opt/raftkube/cluster")]
        assert folder["args"][0] == str(cluster_dir)
        assert folder["kw"]["type"] == "rsync"
        received = tmp_path / f"received-{machine}"
        received.mkdir()
        result = subprocess.run(["rsync", *folder["kw"]["rsync__args"], f"{cluster_dir}/",
                                 f"{received}/"], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        got = sorted(str(p.relative_to(received)) for p in received.rglob("*") if p.is_file())
        assert got == files


def test_provisioning_steps_run_in_order_with_each_node_s_name_and_role(tmp_path):
    calls = _recorded_calls(tmp_path, RAFTKUBE_MASTERS="2", RAFTKUBE_WORKERS="1")
    steps: dict[str, list[tuple[str, list[str]]]] = {}
    for call in calls:
        if call.get("call") == "provision":
            steps.setdefault(_machine(call), []).append(
                (call["args"][0], call["kw"].get("args", [])))
    assert sorted(steps) == ["master-1", "master-2", "worker-1"]
    nodes_lines = ["master-1 master 192.168.57.11", "master-2 master 192.168.57.12",
                   "worker-1 worker 192.168.57.51"]
    for machine, role in (("master-1", "master"), ("master-2", "master"),
                          ("worker-1", "worker")):
        names = [name for name, _args in steps[machine]]
        expected = ["nodes-file", "install-raftkube", "configure-node", "install-units"]
        if role == "worker":
            expected.insert(3, "worker-setup")
        assert names == expected
        args = dict(steps[machine])
        assert args["nodes-file"] == nodes_lines
        assert args["configure-node"][:2] == ["--name", machine]
        assert args["install-units"][:2] == ["--role", role]


def test_software_emulation_unless_kvm_is_forced(tmp_path):
    def provider_settings(**env: str) -> dict[str, object]:
        return {c["set"]: c["value"] for c in _recorded_calls(tmp_path, **env)
                if "set" in c and c["path"][-1:] == ["provider"]}

    forced_qemu = provider_settings(RAFTKUBE_VAGRANT_ACCEL="qemu")
    assert forced_qemu["driver"] == "qemu"
    assert forced_qemu["cpu_mode"] == "custom"
    assert forced_qemu["cpu_model"] == "qemu64"
    assert forced_qemu["cpus"] == 1
    assert forced_qemu["memory"] == 1024
    forced_kvm = provider_settings(RAFTKUBE_VAGRANT_ACCEL="kvm")
    assert forced_kvm["driver"] == "kvm"
    assert "cpu_model" not in forced_kvm


def test_build_box_needs_the_dependency_list_of_the_wheel_directory(tmp_path):
    result = subprocess.run(["bash", str(VAGRANT_DIR / "build_box.sh"), "--wheels",
                             str(tmp_path)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 2
    assert f"{tmp_path}/dependencies.txt does not exist" in result.stderr


def test_cleanup_refuses_a_prefix_that_could_match_every_domain():
    script = REPO / "scripts" / "vagrant_cleanup.sh"
    for args in ([], ["--prefix", "r"], ["--prefix"]):
        result = subprocess.run(["bash", str(script), *args], capture_output=True, text=True,
                                timeout=60, check=False)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "vagrant_cleanup: " in result.stderr


def test_build_box_rejects_unknown_arguments():
    result = subprocess.run(["bash", str(VAGRANT_DIR / "build_box.sh"), "--fast"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "unknown argument '--fast'" in result.stderr
