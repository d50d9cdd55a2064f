#!/usr/bin/env bash
# Prepares this machine to run raftkube's Vagrant VMs (libvirt + QEMU) and reports whether
# VMs can run here. Idempotent: installs only missing packages, starts only daemons that are
# not running. Works without systemd as PID 1 (daemons are started with -d, never -l).
#
# Usage: bash scripts/vagrant_host_setup.sh [--check]
#   --check   install nothing and start nothing: only report
#
# Exit codes (a test skips on 3 with the printed reason):
#   0  VMs can run here (libvirt answers on qemu:///system)
#   1  setup failed (package install error, bad arguments)
#   3  VMs cannot run here (not root, no libvirt, libvirtd does not answer); reason printed
#
# Prints one line "vagrant_host_setup: accel=kvm|qemu" on success: kvm only when /dev/kvm
# is usable and is not nested PVM (which cannot boot a stock Debian kernel).
set -euo pipefail

HOST_PACKAGES=(
  vagrant vagrant-libvirt libvirt-daemon-system libvirt-clients
  qemu-system-x86 qemu-utils debootstrap dnsmasq-base
  extlinux syslinux-common fdisk e2fsprogs rsync
)
LIBVIRT_URI="qemu:///system"

check_only=0
case "${1:-}" in
  "") ;;
  --check) check_only=1 ;;
  *) echo "vagrant_host_setup: unknown argument '$1' (expected --check or nothing)" >&2; exit 1 ;;
esac

log() { printf '%s vagrant_host_setup: %s\n' "$(date -u +%H:%M:%S)" "$*"; }
cannot_run() { log "VMs cannot run here: $*"; exit 3; }

[ "$(id -u)" -eq 0 ] || cannot_run "needs root (libvirt system connection, loop devices)"

missing=()
for pkg in "${HOST_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  [ "$check_only" -eq 0 ] || cannot_run "missing host packages: ${missing[*]}"
  log "installing host packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Another process may hold the dpkg lock: wait for it rather than fail.
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null || { log "apt-get install failed"; exit 1; }
  log "host packages installed"
fi

# libvirt runs QEMU as libvirt-qemu, which Debian puts in the kvm group. Where /dev/kvm
# belongs to another group (here a container maps it to gid 103, ssl-cert), libvirt finds on
# every capability lookup that KVM "was enabled when probing but is not available now",
# throws its cache away and probes QEMU again (about 4 s, dozens of times while Vagrant
# defines and starts a domain: 2-2.5 min per `vagrant up` here). Giving libvirt-qemu the
# device's group keeps the cache valid; guests still run under the accelerator the
# Vagrantfile chooses. Only a libvirtd started after this sees the new group.
kvm_group_fixed=0
if [ -c /dev/kvm ] && id libvirt-qemu >/dev/null 2>&1; then
  kvm_gid="$(stat -c %g /dev/kvm)"
  if ! id -G libvirt-qemu | tr ' ' '\n' | grep -qx "$kvm_gid"; then
    kvm_group="$(getent group "$kvm_gid" | cut -d: -f1)"
    if [ -z "$kvm_group" ]; then
      log "warning: /dev/kvm belongs to gid $kvm_gid, which has no name: libvirt will re-probe QEMU on every lookup"
    elif [ "$check_only" -eq 0 ]; then
      usermod -aG "$kvm_group" libvirt-qemu
      kvm_group_fixed=1
      log "added libvirt-qemu to group $kvm_group (owner of /dev/kvm) so libvirt's QEMU capability cache stays valid"
    fi
  fi
fi
if [ "$kvm_group_fixed" -eq 1 ] && pgrep -x libvirtd >/dev/null; then
  log "warning: libvirtd was already running: it keeps re-probing QEMU (minutes per vagrant up) until restarted"
fi

# Start a libvirt daemon unless one already runs. pgrep -x matches the exact process name.
start_daemon() {
  local name="$1"
  if pgrep -x "$name" >/dev/null; then
    return 0
  fi
  [ "$check_only" -eq 0 ] || cannot_run "$name is not running"
  command -v "$name" >/dev/null || cannot_run "$name is not installed"
  log "starting $name -d"
  "$name" -d || cannot_run "$name -d failed to start"
}
start_daemon virtlogd
start_daemon virtlockd
start_daemon libvirtd

# libvirtd needs a moment to open its socket.
answered=0
for _ in $(seq 1 30); do
  if virsh -c "$LIBVIRT_URI" list >/dev/null 2>&1; then
    answered=1
    break
  fi
  sleep 1
done
[ "$answered" -eq 1 ] || cannot_run "virsh -c $LIBVIRT_URI list does not answer: $(virsh -c "$LIBVIRT_URI" list 2>&1 | head -n 3)"

qemu_system=$(command -v qemu-system-x86_64 || true)
[ -n "$qemu_system" ] || cannot_run "qemu-system-x86_64 is not installed"

# KVM only where it can boot a stock kernel: hardware virtualisation flags and no PVM.
accel=qemu
if [ -r /dev/kvm ] && [ -w /dev/kvm ] && grep -q -w -E 'vmx|svm' /proc/cpuinfo \
   && [ ! -d /sys/module/kvm_pvm ]; then
  accel=kvm
fi
log "libvirt answers on $LIBVIRT_URI; $(vagrant --version 2>/dev/null || echo 'vagrant missing')"
echo "vagrant_host_setup: accel=$accel"
exit 0
