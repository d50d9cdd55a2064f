#!/usr/bin/env bash
# Installs the systemd unit of a raftkube role (raftkube-master.service or
# raftkube-worker.service, both Restart=on-failure), enables it and, on a live system,
# (re)starts it.
#
# Usage: install_units.sh --role master|worker [--unit-dir DIR] [--root DIR] [--no-start]
#   --role ROLE     which unit to install; required
#   --unit-dir DIR  where the unit files come from (default deploy/systemd next to this
#                   script's directory)
#   --root DIR      install under DIR instead of / (default: $RAFTKUBE_ROOT or /); with a
#                   root other than /, the unit is enabled offline (the WantedBy symlink is
#                   made) and nothing is started, which is how tests and image builds use it
#   --no-start      on /, enable but do not start
#
# Idempotent: an unchanged unit file is left as is; a changed one is replaced and the
# service restarted so the new definition applies. Exits non-zero naming the unit when
# systemd fails to start it.
set -euo pipefail

role=""
script_dir="$(cd "$(dirname "$0")" && pwd)"
unit_dir="$script_dir/../systemd"
root="${RAFTKUBE_ROOT:-/}"
start=1

die() { echo "install_units: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --role) role="${2:?--role needs master or worker}"; shift 2 ;;
    --unit-dir) unit_dir="${2:?--unit-dir needs a directory}"; shift 2 ;;
    --root) root="${2:?--root needs a directory}"; shift 2 ;;
    --no-start) start=0; shift ;;
    *) die "unknown argument '$1'" ;;
  esac
done

[ "$role" = master ] || [ "$role" = worker ] || die "--role must be master or worker, got '$role'"
unit="raftkube-$role.service"
src="$unit_dir/$unit"
[ -f "$src" ] || die "unit file $src does not exist"
[ -d "$root" ] || die "root directory $root does not exist"
root="$(cd "$root" && pwd)"

target_dir="$root/etc/systemd/system"
dest="$target_dir/$unit"
mkdir -p "$target_dir"
changed=1
if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
  changed=0
else
  install -m 644 "$src" "$dest"
fi

# WantedBy=multi-user.target, made the same way `systemctl enable` makes it, so an offline
# root and a live system end up with the same files.
wants="$target_dir/multi-user.target.wants"
mkdir -p "$wants"
ln -sfn "/etc/systemd/system/$unit" "$wants/$unit"

if [ "$root" != "/" ]; then
  echo "install_units: $unit installed and enabled under $root (not started)"
  exit 0
fi

command -v systemctl >/dev/null || die "systemctl not found: this system does not run systemd"
[ -d /run/systemd/system ] || die "systemd is not PID 1 here: use --root DIR to install offline"
systemctl daemon-reload
systemctl enable "$unit" >/dev/null 2>&1 || die "systemctl enable $unit failed"
if [ "$start" -eq 1 ]; then
  if [ "$changed" -eq 1 ]; then
    systemctl restart "$unit" || die "systemctl restart $unit failed: $(systemctl status --no-pager "$unit" 2>&1 | tail -n 5)"
  else
    systemctl start "$unit" || die "systemctl start $unit failed: $(systemctl status --no-pager "$unit" 2>&1 | tail -n 5)"
  fi
  echo "install_units: $unit enabled and started"
else
  echo "install_units: $unit enabled (not started)"
fi
