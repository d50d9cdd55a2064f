"""How long the service proxy takes to program N services (3 endpoints each), and one
change among them, with its difference updates next to a full table replacement (what a
proxy without diffs does) in the same run. Inside a throwaway namespace. Run as root:

    /work/venv/bin/python bench/service_sync_scale.py [--sizes 100 1000 5000]
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from raftkube.testing.netns import NetnsCluster, NetnsConfig, netns_prefix
from raftkube.workers.network.model import (
    Endpoint,
    ProxyModel,
    Service,
    ServicePort,
)
from raftkube.workers.network.nft_rules import (
    RulesConfig,
    full_script,
    render_table,
)
from raftkube.workers.network.service_proxy import (
    ServiceProxy,
    ServiceProxyConfig,
)


def model(n: int, moved: int = 0) -> ProxyModel:
    """n services; the first `moved` have their endpoints shifted by one address."""
    return ProxyModel(tuple(Service(
        "bench", f"s{i}", f"10.96.{i // 250}.{i % 250 + 1}",
        ports=(ServicePort(80, 8080, name="http"),),
        endpoints=tuple(Endpoint(f"10.244.{(i + j + (1 if i < moved else 0)) % 200}."
                                 f"{(i * 7 + j) % 250 + 2}") for j in range(3)))
        for i in range(n)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000])
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (network namespaces and nftables)")
    cluster = NetnsCluster(NetnsConfig(hosts=1, with_pod_bridge=False)).setup()
    netns = cluster.hosts[0].netns
    try:
        print(f"{'services':>9}{'first sync':>12}{'1 changed':>11}{'no-op':>8}"
              f"{'1 changed, full replace':>25}   (ms)")
        for n in args.sizes:
            rules = RulesConfig(table=f"raftkube_{secrets.token_hex(3)}")
            proxy = ServiceProxy(ServiceProxyConfig(netns=netns, rules=rules))
            try:
                t = time.perf_counter()
                proxy.sync(model(n))
                first = time.perf_counter() - t
                t = time.perf_counter()
                proxy.sync(model(n, 1))
                changed = time.perf_counter() - t
                t = time.perf_counter()
                proxy.sync(model(n, 1))
                noop = time.perf_counter() - t
                # the peer: render, then replace the whole table in one transaction
                t = time.perf_counter()
                script = full_script(render_table(model(n, 2), rules))
                subprocess.run([*netns_prefix(netns), "nft", "-f", "-"], input=script,
                               text=True, check=True, timeout=600)
                full = time.perf_counter() - t
            finally:
                proxy.close()
            print(f"{n:>9}{first * 1000:>12.0f}{changed * 1000:>11.0f}{noop * 1000:>8.0f}"
                  f"{full * 1000:>25.0f}")
    finally:
        cluster.teardown()


if __name__ == "__main__":
    main()
