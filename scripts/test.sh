#!/usr/bin/env bash
# The whole test suite: install (idempotent), lint, generated-code check, tests, then the
# real-VM end-to-end test (tests/integration/test_vagrant_cluster.py: 1 master + 1 worker
# Vagrant VM under libvirt, about 5 minutes with the box cached) wherever libvirt can start
# VMs. Elsewhere that test is skipped with the reason printed.
#
# Usage: bash scripts/test.sh [pytest args...]
#
# RAFTKUBE_VAGRANT_E2E selects the real-VM test:
#   auto (default)  run it after the suite when scripts/vagrant_host_setup.sh says VMs can
#                   run here (it installs the host packages and starts the libvirt daemons
#                   if needed; exit 3 = they cannot: skip) and no test selection (an
#                   argument not starting with -) was given
#   1               run it; fail if VMs cannot run here
#   0               skip it
# The box it needs is cached in /var/cache/raftkube/boxes (outside the checkout) and rebuilt
# only when deploy/vagrant/build_box.sh or the dependency wheels change.
#
# Exit code: non-zero if the suite or the real-VM test failed (both run either way).
set -euo pipefail
cd "$(dirname "$0")/.."

vm_mode="${RAFTKUBE_VAGRANT_E2E:-auto}"
case "$vm_mode" in
  auto|0|1) ;;
  *) echo "test.sh: RAFTKUBE_VAGRANT_E2E=$vm_mode must be auto, 0 or 1" >&2; exit 2 ;;
esac
# The suite itself never boots VMs; the real-VM test runs on its own below.
unset RAFTKUBE_VAGRANT_E2E

bash scripts/install.sh
.venv/bin/ruff check raftkube tests bench
bash scripts/check_generated.sh

suite_rc=0
.venv/bin/python -m pytest "$@" || suite_rc=$?

vm_skip_reason=""
if [ "$vm_mode" = 0 ]; then
  vm_skip_reason="RAFTKUBE_VAGRANT_E2E=0"
elif [ "$vm_mode" = auto ]; then
  for arg in "$@"; do
    case "$arg" in
      -*) ;;
      *) vm_skip_reason="a test selection was given ($arg)"; break ;;
    esac
  done
fi

vm_rc=0
if [ -z "$vm_skip_reason" ]; then
  setup_rc=0
  setup_out="$(bash scripts/vagrant_host_setup.sh 2>&1)" || setup_rc=$?
  if [ "$setup_rc" -eq 3 ] && [ "$vm_mode" = auto ]; then
    vm_skip_reason="$(printf '%s\n' "$setup_out" | grep -o 'VMs cannot run here: .*' | head -n 1)"
    vm_skip_reason="${vm_skip_reason:-scripts/vagrant_host_setup.sh exited 3}"
  elif [ "$setup_rc" -ne 0 ]; then
    printf '%s\n' "$setup_out" >&2
    echo "test.sh: scripts/vagrant_host_setup.sh failed ($setup_rc): the real-VM test cannot run" >&2
    vm_rc="$setup_rc"
  else
    echo "test.sh: real-VM test (tests/integration/test_vagrant_cluster.py)"
    started=$(date +%s)
    RAFTKUBE_VAGRANT_E2E=1 .venv/bin/python -m pytest -s -p no:cacheprovider \
      tests/integration/test_vagrant_cluster.py || vm_rc=$?
    echo "test.sh: real-VM test exit code $vm_rc in $(( $(date +%s) - started ))s"
  fi
fi
if [ -n "$vm_skip_reason" ]; then
  echo "test.sh: SKIPPED the real-VM test (tests/integration/test_vagrant_cluster.py): $vm_skip_reason"
fi

if [ "$suite_rc" -ne 0 ]; then
  exit "$suite_rc"
fi
exit "$vm_rc"
