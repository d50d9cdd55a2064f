"""End to end on real VMs: 1 master + 1 worker under libvirt/QEMU, raftkube installed from
locally built wheels, the cluster started by its systemd units, a Deployment behind a
NodePort Service reached from this host over the private network, then the VMs destroyed.

Runs only with RAFTKUBE_VAGRANT_E2E=1 (it takes minutes and boots VMs) and only where
libvirt can start VMs (scripts/vagrant_host_setup.sh decides; exit code 3 = cannot). The box
is cached outside the checkout by deploy/vagrant/build_box.sh, keyed on the script and on the
dependency wheels baked into it, so only the first run (or one after a dependency change)
builds it. Set RAFTKUBE_VAGRANT_MASTERS=3 to run the same test with three masters, and
RAFTKUBE_VAGRANT_SERIAL=1 to bring the VMs up one after the other (`--no-parallel`).

The VMs are named with their own prefix (VM_PREFIX); leftovers of an earlier killed run are
removed before and everything is removed after, however the test ends
(scripts/vagrant_cleanup.sh after `vagrant destroy`). Runs of this test on one machine take
turns (a lock file): they would share the private network's addresses.

Interfaces this test drives (the steps a user follows, README.md in deploy/vagrant/):
  raftkube init --dir DIR --master NAME=ADDRESS... --worker NAME...
      writes DIR/cluster.yaml, DIR/masters/NAME/, DIR/workers/NAME/ and DIR/config.yaml
      (the admin client config)
  RAFTKUBECONFIG=DIR/config.yaml raftkubectl apply -f FILE
  RAFTKUBECONFIG=DIR/config.yaml raftkubectl get pods -n default -o json
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VAGRANT_DIR = REPO / "deploy" / "vagrant"
SUBNET = "192.168.57"
VM_PREFIX = "raftkube-e2e-"
LOCK_FILE = Path("/run/lock/raftkube-vagrant-e2e.lock")
NODE_PORT = 30080
PAGE = "raftkube-vagrant-ok"
# Guests are emulated (about 6x slower than the host): generous waits.
UNITS_ACTIVE_TIMEOUT = 600.0
PODS_RUNNING_TIMEOUT = 900.0
NODE_PORT_TIMEOUT = 300.0
POLL_INTERVAL = 2.0

MANIFEST = f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: httpd
        image: localhost/busybox:latest
        command:
        - sh
        - -c
        - mkdir -p /www && echo {PAGE} > /www/index.html && exec httpd -f -p 8080 -h /www
        ports:
        - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
spec:
  type: NodePort
  selector: {{app: web}}
  ports:
  - port: 80
    targetPort: 8080
    nodePort: {NODE_PORT}
"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(7200),
    pytest.mark.skipif(
        os.environ.get("RAFTKUBE_VAGRANT_E2E") != "1",
        reason="real-VM test: set RAFTKUBE_VAGRANT_E2E=1 to boot VMs (takes minutes; "
               "needs root and libvirt, see deploy/vagrant/README.md)",
    ),
]


def _log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} test_vagrant_cluster: {message}", flush=True)


def _run(cmd: list[str], *, env: dict[str, str] | None = None, timeout: float = 600,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                            check=False)
    _log(f"{' '.join(cmd[:4])} ... rc={result.returncode} in "
         f"{time.monotonic() - started:.0f}s")
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def _run_logged(cmd: list[str], *, env: dict[str, str], timeout: float) -> None:
    """Runs cmd, printing each output line as it comes with the time, so a run's log shows
    how long each step of `vagrant up` took. Killed after timeout seconds; raises on a
    non-zero exit with the last lines."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    tail: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            # Vagrant redraws its upload progress many times a second.
            if "Progress: " not in line:
                _log(f"  | {line}")
            tail = [*tail[-60:], line]
        proc.wait()
    finally:
        killer.cancel()
    _log(f"{' '.join(cmd[:3])} ... rc={proc.returncode} in {time.monotonic() - started:.0f}s")
    if proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n" + "\n".join(tail))


def _cleanup_leftovers() -> None:
    """Every libvirt domain named VM_PREFIX*, then the raftkube networks if unused."""
    _run(["bash", str(REPO / "scripts" / "vagrant_cleanup.sh"), "--prefix", VM_PREFIX],
         timeout=600, check=False)


def _raftkube_command(name: str) -> list[str]:
    """The raftkube/raftkubectl CLI of this checkout, run with this interpreter."""
    module = {"raftkube": "raftkube.cli.raftkube_main",
              "raftkubectl": "raftkube.cli.raftkubectl_main"}[name]
    return [sys.executable, "-m", module]


def _cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.update(extra or {})
    return env


@pytest.fixture(scope="module")
def host_ready() -> None:
    result = subprocess.run(["bash", str(REPO / "scripts" / "vagrant_host_setup.sh")],
                            capture_output=True, text=True, timeout=1800, check=False)
    if result.returncode == 3:
        pytest.skip(f"VMs cannot run on this machine: {result.stdout.strip()}")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def nodes() -> list[tuple[str, str, str]]:
    masters = int(os.environ.get("RAFTKUBE_VAGRANT_MASTERS", "1"))
    return ([(f"master-{i}", "master", f"{SUBNET}.{10 + i}") for i in range(1, masters + 1)]
            + [("worker-1", "worker", f"{SUBNET}.51")])


@pytest.fixture(scope="module")
def cluster(host_ready, nodes, tmp_path_factory) -> Iterator[dict[str, object]]:
    """Wheels, box, credentials, then `vagrant up`; `vagrant destroy` and
    scripts/vagrant_cleanup.sh however it ends."""
    work = tmp_path_factory.mktemp("vagrant-e2e")
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with LOCK_FILE.open("w") as lock:
        _log(f"waiting for {LOCK_FILE} (another run of this test on this machine?)")
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield from _cluster_locked(nodes, work)


def _cluster_locked(nodes: list[tuple[str, str, str]],
                    work: Path) -> Iterator[dict[str, object]]:
    _cleanup_leftovers()
    wheels = work / "wheels"
    _run(["bash", str(REPO / "scripts" / "build_wheels.sh"), "--out", str(wheels)],
         timeout=1800)
    # The box carries every dependency wheel pre-installed: provisioning installs only
    # raftkube's own wheel.
    _run(["bash", str(VAGRANT_DIR / "build_box.sh"), "--wheels", str(wheels)], timeout=3600)

    cluster_dir = work / "cluster"
    init = [*_raftkube_command("raftkube"), "init", "--dir", str(cluster_dir)]
    for name, role, address in nodes:
        init += ["--master", f"{name}={address}"] if role == "master" else ["--worker", name]
    _run(init, env=_cli_env(), timeout=300)
    for name, role, _address in nodes:
        assert (cluster_dir / f"{role}s" / name).is_dir(), f"raftkube init wrote no {name}"
    admin_config = cluster_dir / "config.yaml"
    assert admin_config.is_file(), "raftkube init wrote no admin client config"

    masters = sum(1 for _n, role, _a in nodes if role == "master")
    env = {
        **os.environ,
        "VAGRANT_CWD": str(VAGRANT_DIR),
        "VAGRANT_DOTFILE_PATH": str(work / "vagrant-state"),
        "RAFTKUBE_MASTERS": str(masters),
        "RAFTKUBE_WORKERS": "1",
        "RAFTKUBE_SUBNET": SUBNET,
        "RAFTKUBE_WHEELS": str(wheels),
        "RAFTKUBE_CLUSTER_DIR": str(cluster_dir),
        "RAFTKUBE_VM_PREFIX": VM_PREFIX,
    }
    up = ["vagrant", "up"]
    if os.environ.get("RAFTKUBE_VAGRANT_SERIAL") == "1":
        up.append("--no-parallel")
    try:
        _run_logged(up, env=env, timeout=5400)
        ssh_config = work / "ssh-config"
        ssh_config.write_text(_run(["vagrant", "ssh-config"], env=env, timeout=300).stdout)
        yield {"env": env, "admin_config": admin_config, "nodes": nodes,
               "ssh_config": ssh_config}
    finally:
        _run(["vagrant", "destroy", "-f"], env=env, timeout=1200, check=False)
        _cleanup_leftovers()


def _ssh(cluster: dict[str, object], machine: str, command: str,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    """command on machine over plain ssh with Vagrant's ssh-config (a `vagrant ssh` costs
    several seconds of Vagrant start-up on the host each time)."""
    return _run(["ssh", "-F", str(cluster["ssh_config"]), machine, command], timeout=300,
                check=check)


def _wait(what: str, timeout: float, probe) -> object:
    started = time.monotonic()
    deadline = started + timeout
    last: object = None
    while time.monotonic() < deadline:
        ok, last = probe()
        if ok:
            _log(f"{what}: after {time.monotonic() - started:.0f}s")
            return last
        time.sleep(POLL_INTERVAL)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last}")


def test_units_start_and_a_nodeport_service_answers_from_the_host(cluster):
    for name, role, _address in cluster["nodes"]:
        unit = f"raftkube-{role}.service"

        def unit_active(name=name, unit=unit):
            result = _ssh(cluster, name,
                          f"systemctl is-active {unit}; systemctl is-enabled {unit}",
                          check=False)
            return result.stdout.split() == ["active", "enabled"], result.stdout.strip()

        _wait(f"{unit} active and enabled on {name}", UNITS_ACTIVE_TIMEOUT, unit_active)

    kubectl_env = _cli_env({"RAFTKUBECONFIG": str(cluster["admin_config"])})
    manifest = Path(cluster["env"]["VAGRANT_DOTFILE_PATH"]).parent / "web.yaml"
    manifest.write_text(MANIFEST)
    _run([*_raftkube_command("raftkubectl"), "apply", "-f", str(manifest)],
         env=kubectl_env, timeout=300)

    def pods_running():
        result = _run([*_raftkube_command("raftkubectl"), "get", "pods", "-n", "default",
                       "-l", "app=web", "-o", "json"], env=kubectl_env, timeout=120,
                      check=False)
        if result.returncode != 0:
            return False, result.stderr[-500:]
        if not result.stdout.strip():
            return False, "no pods yet"
        doc = json.loads(result.stdout)
        # One object is printed as itself, several as a v1 List.
        items = doc["items"] if doc.get("kind") == "List" else [doc]
        phases = [i.get("status", {}).get("phase") for i in items]
        return len(phases) == 2 and all(p == "Running" for p in phases), phases

    _wait("2 web pods Running", PODS_RUNNING_TIMEOUT, pods_running)

    worker_address = next(a for _n, role, a in cluster["nodes"] if role == "worker")
    url = f"http://{worker_address}:{NODE_PORT}/"

    def node_port_answers():
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = response.read().decode()
        except OSError as exc:
            return False, repr(exc)
        return PAGE in body, body[:200]

    _wait(f"{url} to serve the page", NODE_PORT_TIMEOUT, node_port_answers)


    # Streams and usage reach the worker VM through a master (the node agent service on
    # the worker's private address, mutual TLS with its certificate from raftkube init).
    listed = _run([*_raftkube_command("raftkubectl"), "get", "pods", "-n", "default", "-l",
                   "app=web", "-o", "name"], env=kubectl_env, timeout=120)
    pod = listed.stdout.split()[0].removeprefix("pod/")
    shown = _run([*_raftkube_command("raftkubectl"), "exec", pod, "-n", "default", "--",
                  "cat", "/www/index.html"], env=kubectl_env, timeout=120)
    assert PAGE in shown.stdout

    def top_has_figures():
        result = _run([*_raftkube_command("raftkubectl"), "top", "node", "worker-1"],
                      env=kubectl_env, timeout=120, check=False)
        return result.returncode == 0, result.stdout + result.stderr

    print(_wait("top node worker-1", NODE_PORT_TIMEOUT, top_has_figures))
