"""DNS on a node namespace, queried from a pod with the pod resolv.conf (search path)."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

import pytest

from raftkube.testing.netns import NetnsCluster
from raftkube.workers.network.dns_server import pod_resolv_conf

pytestmark = [pytest.mark.netns, pytest.mark.slow]

ROOT = str(Path(__file__).resolve().parents[2])


def test_pod_resolves_short_names_and_srv_through_node_dns(
        netns_cluster: NetnsCluster, tmp_path: Path) -> None:
    h0 = netns_cluster.hosts[0]
    pod = netns_cluster.add_pod(h0)
    records = [
        {"namespace": "default", "name": "web", "cluster_ip": "10.96.0.10",
         "ports": [{"name": "http", "port": 80}], "endpoints": [{"ip": pod.ip}]},
        {"namespace": "prod", "name": "db", "cluster_ip": None,
         "ports": [{"name": "pg", "port": 5432}],
         "endpoints": [{"ip": "10.244.9.7", "hostname": "db-0"}]},
    ]
    (tmp_path / "records.json").write_text(json.dumps(records))
    proc = netns_cluster.popen(h0.netns, [
        sys.executable, "-m", "raftkube.workers.network.dns_server", "--listen", h0.pod_gateway,
        "--port", "53", "--records", str(tmp_path / "records.json")],
        stdout=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.stdout is not None
    assert select.select([proc.stdout], [], [], 20)[0], "dns server did not start"
    assert proc.stdout.readline().startswith(b"ready")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(pod_resolv_conf("default", h0.pod_gateway))

    def in_pod(cmd: str) -> subprocess.CompletedProcess:
        # a private mount namespace gives the pod its own /etc/resolv.conf
        return netns_cluster.run(pod.netns, [
            "unshare", "-m", "sh", "-c",
            f"mount --bind {resolv} /etc/resolv.conf && {cmd}"], check=False)

    short = in_pod("getent ahostsv4 web")
    assert "10.96.0.10" in short.stdout, short.stderr
    cross_ns = in_pod("getent ahostsv4 db-0.db.prod")
    assert "10.244.9.7" in cross_ns.stdout, cross_ns.stderr
    missing = in_pod("getent ahostsv4 nothere")
    assert missing.returncode != 0
    srv = in_pod(f"busybox nslookup -type=srv _pg._tcp.db.prod.svc.cluster.local "
                 f"{h0.pod_gateway}")
    assert "db-0.db.prod.svc.cluster.local" in srv.stdout, srv.stdout + srv.stderr
    assert "5432" in srv.stdout
