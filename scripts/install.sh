#!/usr/bin/env bash
# Installs everything raftkube needs on a Debian 12 machine (run as root), idempotently:
# system packages (Podman, runc, busybox-static, nftables, iproute2, etcd for benchmarks,
# the ShellCheck and Vagrant tools for the deployment checks),
# a virtual environment in .venv with raftkube and its dev tools.
# Usage: bash scripts/install.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM_PACKAGES=(
  python3 python3-venv python3-pip
  podman runc netavark aardvark-dns conmon catatonit
  busybox-static nftables iptables iproute2 conntrack procps psmisc curl
  etcd-server etcd-client
  shellcheck vagrant
)

missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install.sh: installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# etcd-server's package starts a default member on some machines; the benchmarks run their
# own members on other ports, so a running default member is only stopped if we started it.

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.raftkube-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
echo "install.sh: ready (.venv/bin/raftkube, .venv/bin/raftkubectl)"
