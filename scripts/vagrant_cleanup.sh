#!/usr/bin/env bash
# Removes what a raftkube Vagrant run leaves in libvirt when it could not clean up itself
# (a failed `vagrant up`, a killed test, a failed `vagrant destroy`): every domain whose name
# starts with PREFIX, stopped and undefined with its disk volumes, then the raftkube
# networks, each only when no remaining domain (of any name) is attached to it.
#
# Usage: bash scripts/vagrant_cleanup.sh --prefix PREFIX [--network NAME]...
#   --prefix PREFIX  domain name prefix (the Vagrantfile's RAFTKUBE_VM_PREFIX), required;
#                    at least 3 characters, so it cannot match every domain
#   --network NAME   a libvirt network to remove when unused; may repeat (default:
#                    raftkube-mgmt and raftkube-private, the Vagrantfile's)
#
# Idempotent: with nothing left it changes nothing and exits 0. Exits 1 naming each domain or
# network it could not remove, 2 on bad arguments, 3 when libvirt does not answer. Never
# touches the box volumes (they are the cache) or domains outside PREFIX.
set -euo pipefail

LIBVIRT_URI="qemu:///system"
prefix=""
networks=()

log() { printf '%s vagrant_cleanup: %s\n' "$(date -u +%H:%M:%S)" "$*"; }
usage_error() { echo "vagrant_cleanup: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || usage_error "--prefix needs a value"; prefix="$2"; shift 2 ;;
    --network) [ $# -ge 2 ] || usage_error "--network needs a name"; networks+=("$2"); shift 2 ;;
    *) usage_error "unknown argument '$1' (expected --prefix PREFIX, --network NAME)" ;;
  esac
done
[ "${#prefix}" -ge 3 ] || usage_error "--prefix must be at least 3 characters, got '$prefix'"
[ "${#networks[@]}" -gt 0 ] || networks=(raftkube-mgmt raftkube-private)

virsh_() { virsh -q -c "$LIBVIRT_URI" "$@"; }
virsh_ list >/dev/null 2>&1 || { log "libvirt does not answer on $LIBVIRT_URI"; exit 3; }

failed=()
while IFS= read -r domain; do
  case "$domain" in
    "$prefix"*) ;;
    *) continue ;;
  esac
  if [ "$(virsh_ domstate "$domain" 2>/dev/null)" != "shut off" ]; then
    virsh_ destroy "$domain" >/dev/null 2>&1 || true
  fi
  if virsh_ undefine "$domain" --remove-all-storage >/dev/null 2>&1 \
     || virsh_ undefine "$domain" >/dev/null 2>&1; then
    log "removed domain $domain"
  else
    failed+=("domain $domain")
  fi
done < <(virsh_ list --all --name)

for network in "${networks[@]}"; do
  virsh_ net-info "$network" >/dev/null 2>&1 || continue
  users=()
  while IFS= read -r domain; do
    [ -n "$domain" ] || continue
    if virsh_ dumpxml "$domain" 2>/dev/null | grep -q "<source network='$network'"; then
      users+=("$domain")
    fi
  done < <(virsh_ list --all --name)
  if [ "${#users[@]}" -gt 0 ]; then
    log "keeping network $network: used by ${users[*]}"
    continue
  fi
  virsh_ net-destroy "$network" >/dev/null 2>&1 || true
  if virsh_ net-undefine "$network" >/dev/null 2>&1; then
    log "removed network $network"
  else
    failed+=("network $network")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  log "could not remove: ${failed[*]}"
  exit 1
fi
exit 0
