"""Requests/s and latency through a ClusterIP (nftables DNAT) and through the ingress proxy,
side by side with the same requests sent straight to the pod, in the same run.

Topology (network namespaces on this machine, nothing leaves it):

    h0: client pod --(direct)------------------------------> h1: server pod :8080
        client pod --(ClusterIP 10.96.0.10:80, nft DNAT)---> h1: server pod :8080
        client pod --(ingress proxy on h0 :80)-------------> h1: server pod :8080

Load is bounded: each mode runs `--duration` seconds with `--concurrency` client threads,
in a shuffled order per round, for `--rounds` rounds; figures are medians over rounds,
and 'vs direct' is the median of the per-round ratios (robust to load drifting on a
shared machine).
Two client styles: a new TCP connection per request (what the DNAT path pays for) and
keep-alive. Run as root:

    /work/venv/bin/python bench/service_path.py [--duration 2] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import select
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from raftkube.testing.netns import NetnsCluster, NetnsConfig  # noqa: E402
from raftkube.workers.network.model import (  # noqa: E402
    Endpoint,
    ProxyModel,
    Service,
    ServicePort,
)
from raftkube.workers.network.nft_rules import RulesConfig  # noqa: E402
from raftkube.workers.network.pod_routes import (  # noqa: E402
    NodeRoute,
    RouteConfig,
    RouteSyncer,
)
from raftkube.workers.network.service_proxy import (  # noqa: E402
    ServiceProxy,
    ServiceProxyConfig,
)

VIP = "10.96.0.10"


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def start_ready(cluster: NetnsCluster, netns: str, argv: list[str]) -> subprocess.Popen:
    proc = cluster.popen(netns, argv, stdout=subprocess.PIPE,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.stdout is not None
    if not select.select([proc.stdout], [], [], 20)[0] or not proc.stdout.readline().startswith(
            b"ready"):
        raise RuntimeError(f"{argv} did not start in {netns}")
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per mode/round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1, help="seed of the mode order shuffle")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    if os.geteuid() != 0:
        sys.exit("run as root (network namespaces and nftables)")

    cluster = NetnsCluster(NetnsConfig(hosts=2)).setup()
    proxy: ServiceProxy | None = None
    try:
        h0, h1 = cluster.hosts
        client, server = cluster.add_pod(h0), cluster.add_pod(h1)
        cluster.start_echo_http(server.netns, 8080, "server")
        nodes = [NodeRoute(h.name, h.address, h.pod_cidr) for h in cluster.hosts]
        for h in cluster.hosts:
            RouteSyncer(RouteConfig(node_name=h.name, netns=h.netns)).sync(nodes)
        service = Service("default", "web", VIP, ports=(ServicePort(80, 8080, name="http"),),
                          endpoints=(Endpoint(server.ip),))
        proxy = ServiceProxy(ServiceProxyConfig(netns=h0.netns, rules=RulesConfig(
            table=f"raftkube_{secrets.token_hex(3)}",
            cluster_cidr=str(cluster.pod_cluster_cidr))))
        proxy.sync(ProxyModel((service,)))
        with tempfile.TemporaryDirectory() as tmp:
            routes = Path(tmp) / "routes.json"
            routes.write_text(json.dumps({
                "ingresses": [{"namespace": "default", "name": "web", "rules": [
                    {"host": "", "paths": [{"path": "/", "path_type": "Prefix", "backend": {
                        "namespace": "default", "service": "web", "port": 80}}]}]}],
                "services": [{"namespace": "default", "name": "web", "cluster_ip": VIP,
                              "ports": [{"name": "http", "port": 80, "target_port": 8080}],
                              "endpoints": [{"ip": server.ip}]}]}))
            start_ready(cluster, h0.netns, [
                sys.executable, "-m", "raftkube.workers.network.ingress_proxy",
                "--listen", h0.pod_gateway, "--port", "80", "--routes", str(routes)])
            modes = {"direct": f"http://{server.ip}:8080/", "clusterip": f"http://{VIP}/",
                     "ingress": f"http://{h0.pod_gateway}/"}
            results: dict[tuple[str, bool], list[dict]] = {}
            order = list(modes)
            for keepalive in (False, True):
                for round_no in range(args.rounds):
                    rng.shuffle(order)
                    row = {}
                    for mode in order:
                        r = cluster.http_probe(client.netns, modes[mode], count=10_000_000,
                                               concurrency=args.concurrency,
                                               keepalive=keepalive, duration_s=args.duration)
                        if r["fail"]:
                            raise RuntimeError(f"{mode}: {r['fail']} failures: {r['errors']}")
                        lat = r["latencies_ms"]
                        row[mode] = {"rps": r["ok"] / r["elapsed_s"],
                                     "p50": percentile(lat, 50), "p99": percentile(lat, 99)}
                    for mode, figures in row.items():
                        figures["ratio"] = figures["rps"] / row["direct"]["rps"]
                        results.setdefault((mode, keepalive), []).append(figures)
                    print(f"round {round_no + 1}/{args.rounds} "
                          f"{'keep-alive' if keepalive else 'new/request'}: " + ", ".join(
                              f"{m} {row[m]['rps']:.0f}/s" for m in modes), flush=True)
        print(f"\nservice path benchmark: {args.rounds} rounds x {args.duration:.0f} s per mode "
              f"(order shuffled per round), {args.concurrency} client threads, client pod on "
              "node h0, server pod on h1")
        print("figures: medians over rounds; 'vs direct' = median of per-round ratios")
        print(f"{'connection':<12}{'path':<11}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
              f"{'vs direct':>11}")
        for keepalive in (False, True):
            for mode in modes:
                rounds = results[(mode, keepalive)]
                med = {k: statistics.median(x[k] for x in rounds)
                       for k in ("rps", "p50", "p99", "ratio")}
                print(f"{'keep-alive' if keepalive else 'new/request':<12}{mode:<11}"
                      f"{med['rps']:>9.0f}{med['p50']:>9.2f}{med['p99']:>9.2f}"
                      f"{med['ratio']:>10.2f}x")
        print("target: ClusterIP >= 0.9x direct")
    finally:
        if proxy is not None:
            proxy.close()
        cluster.teardown()


if __name__ == "__main__":
    main()
