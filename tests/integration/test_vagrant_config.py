"""CI-cheap checks of the Vagrant deployment: the Vagrantfile validates for several cluster
sizes and names exactly the machines asked for, bad sizes are rejected with the variable
named, and every deployment shell script parses (bash -n) and passes shellcheck."""

from __future__ import annotations

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
    assert scripts == {"install_raftkube.sh", "configure_node.sh", "load_busybox_image.sh",
                       "install_units.sh"}
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
