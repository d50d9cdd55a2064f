#!/usr/bin/env bash
# Configures one raftkube node (master or worker) from a nodes file and the cluster
# directory that `raftkube init --dir DIR` wrote on the operator's machine:
#   1. /etc/hosts: one line per node with its private-network address, in a marked block
#      that is replaced on every run; `127.x NAME` lines naming a cluster node (Vagrant's
#      hostname step writes `127.0.1.1 NAME`) are dropped, so nodes never resolve each
#      other, or themselves, to a loopback address;
#   2. /etc/raftkube/cluster/: the part of the cluster directory this node needs, at the
#      same relative paths, and nothing of other nodes or the CA key:
#        every node  cluster.yaml, ca/ca.crt
#        master      masters/NAME/, raft-secret, encryption-keys.yaml, tokens.json, and
#                    node-serving-ca/ when cluster.yaml names it (directories made
#                    before it have none)
#        worker      workers/NAME/
#      Absolute paths inside cluster.yaml and workers/NAME/config.yaml that point into the
#      source directory are rewritten to /etc/raftkube/cluster. Secrets 0600, dirs 0700;
#   3. /etc/raftkube/master.yaml or worker.yaml rendered from templates/ROLE.yaml.in next
#      to this script (0600);
#   4. /etc/raftkube/nodes (the nodes file) and the data directory /var/lib/raftkube/ROLE.
#
# Usage: configure_node.sh --name NAME --nodes FILE --cluster-dir DIR [--root DIR]
#   --name NAME        this node; must be listed in the nodes file
#   --nodes FILE       one node per line: NAME ROLE ADDRESS (ROLE master|worker);
#                      blank lines and text after # are ignored
#   --cluster-dir DIR  the directory `raftkube init` wrote (or a copy holding at least
#                      this node's part of it)
#   --root DIR         write under DIR instead of / (default: $RAFTKUBE_ROOT or /): how the
#                      local multi-host bring-up and the tests use it; paths written into
#                      files are the node's own (/etc/raftkube/...), not DIR-prefixed
#
# Idempotent: the same inputs leave the same files. Nothing is written until every input
# has been checked; a bad nodes file is reported with its file name and line number, a
# missing cluster file with its path.
set -euo pipefail

name=""
nodes_file=""
cluster_dir=""
root="${RAFTKUBE_ROOT:-/}"
script_dir="$(cd "$(dirname "$0")" && pwd)"
GUEST_CLUSTER_DIR=/etc/raftkube/cluster

die() { echo "configure_node: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --name) name="${2:?--name needs a value}"; shift 2 ;;
    --nodes) nodes_file="${2:?--nodes needs a file}"; shift 2 ;;
    --cluster-dir) cluster_dir="${2:?--cluster-dir needs a directory}"; shift 2 ;;
    --root) root="${2:?--root needs a directory}"; shift 2 ;;
    *) die "unknown argument '$1'" ;;
  esac
done

[ -n "$name" ] || die "--name is required"
[ -n "$nodes_file" ] || die "--nodes is required"
[ -n "$cluster_dir" ] || die "--cluster-dir is required"
[ -f "$nodes_file" ] || die "nodes file $nodes_file does not exist"
[ -d "$root" ] || die "root directory $root does not exist"
root="${root%/}"

# ---- parse and check the nodes file ----
names=()
roles=()
addrs=()
lineno=0
valid_ipv4() {
  local IFS=.
  local -a parts
  read -r -a parts <<<"$1"
  [ "${#parts[@]}" -eq 4 ] || return 1
  local p
  for p in "${parts[@]}"; do
    [[ "$p" =~ ^[0-9]{1,3}$ ]] || return 1
    [ "$p" -le 255 ] || return 1
  done
}
while IFS= read -r line || [ -n "$line" ]; do
  lineno=$((lineno + 1))
  line="${line%%#*}"
  read -r -a fields <<<"$line" || true
  [ "${#fields[@]}" -eq 0 ] && continue
  where="$nodes_file:$lineno"
  [ "${#fields[@]}" -eq 3 ] || die "$where: expected 'NAME ROLE ADDRESS', got '$line'"
  n="${fields[0]}"; r="${fields[1]}"; a="${fields[2]}"
  [[ "$n" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] \
    || die "$where: node name '$n' is not a DNS label (lowercase letters, digits, '-')"
  [ "$r" = master ] || [ "$r" = worker ] || die "$where: role '$r' is not master or worker"
  valid_ipv4 "$a" || die "$where: address '$a' is not an IPv4 address"
  for i in "${!names[@]}"; do
    [ "${names[$i]}" != "$n" ] || die "$where: node '$n' is listed twice"
    [ "${addrs[$i]}" != "$a" ] || die "$where: address $a is already used by ${names[$i]}"
  done
  names+=("$n"); roles+=("$r"); addrs+=("$a")
done <"$nodes_file"
[ "${#names[@]}" -gt 0 ] || die "$nodes_file lists no nodes"

role=""
address=""
have_master=0
worker_index=0
pod_cidr=""
for i in "${!names[@]}"; do
  if [ "${roles[$i]}" = worker ]; then worker_index=$((worker_index + 1)); fi
  if [ "${names[$i]}" = "$name" ]; then
    role="${roles[$i]}"; address="${addrs[$i]}"
    # Worker K (in nodes-file order) gets the pod subnet 10.244.K.0/24.
    [ "$role" != worker ] || pod_cidr="10.244.$worker_index.0/24"
  fi
  [ "${roles[$i]}" != master ] || have_master=1
done
[ -n "$role" ] || die "node '$name' is not listed in $nodes_file"
[ "$have_master" -eq 1 ] || die "$nodes_file lists no master"

# ---- check the cluster directory ----
[ -d "$cluster_dir" ] || die "cluster directory $cluster_dir does not exist (run raftkube init)"
cluster_dir="$(cd "$cluster_dir" && pwd)"
cluster_file="$cluster_dir/cluster.yaml"
[ -f "$cluster_file" ] || die "$cluster_file missing (run raftkube init --dir $cluster_dir)"
grep -q '^kind: Cluster$' "$cluster_file" || die "$cluster_file: not a raftkube cluster file (kind: Cluster)"
# The directory init wrote into: cluster.yaml's caFile is DIR/ca/ca.crt.
ca_file="$(sed -n "s/^caFile: *['\"]\{0,1\}\([^'\"]*\)['\"]\{0,1\} *$/\1/p" "$cluster_file")"
case "$ca_file" in
  /*/ca/ca.crt) init_dir="${ca_file%/ca/ca.crt}" ;;
  *) die "$cluster_file: caFile '$ca_file' is not an absolute path ending in /ca/ca.crt" ;;
esac

if [ "$role" = master ]; then
  # Only entries of the top-level `masters:` list count (workers are listed the same way).
  awk -v n="$name" '/^[^ -]/ { section = $1 }
      section == "masters:" && ($0 == "- name: " n || $0 == "- name: '"'"'" n "'"'"'" ||
                                $0 == "- name: \"" n "\"") { found = 1 }
      END { exit !found }' "$cluster_file" \
    || die "$cluster_file: no master named '$name' (raftkube init --master $name=$address)"
  needed=(ca/ca.crt "masters/$name/server.crt" "masters/$name/server.key" raft-secret
          encryption-keys.yaml tokens.json)
  if grep -q '^nodeServingCA:' "$cluster_file"; then
    needed+=(node-serving-ca/ca.crt node-serving-ca/ca.key)
  fi
else
  needed=(ca/ca.crt "workers/$name/client.crt" "workers/$name/client.key"
          "workers/$name/token" "workers/$name/config.yaml")
fi
for f in "${needed[@]}"; do
  [ -f "$cluster_dir/$f" ] \
    || die "$cluster_dir/$f missing: raftkube init wrote no credentials for $role '$name'"
done
template="$script_dir/templates/$role.yaml.in"
[ -f "$template" ] || die "template $template missing"

# ---- write ----
etc="$root/etc/raftkube"
dest="$root$GUEST_CLUSTER_DIR"
data_dir="/var/lib/raftkube/$role"
install -d -m 755 "$etc" "$root$data_dir"
install -d -m 700 "$dest"

# Paths written by init point into init_dir; on the node they point into the copy.
init_dir_pattern="$(printf '%s' "$init_dir" | sed 's/[][\.*^$#]/\\&/g')"
copy_rewritten() {
  local src="$1" dst="$2" mode="$3"
  local tmp; tmp="$(mktemp "$(dirname "$dst")/.copy.XXXXXX")"
  sed "s#$init_dir_pattern/#$GUEST_CLUSTER_DIR/#g" "$src" >"$tmp"
  chmod "$mode" "$tmp"
  mv "$tmp" "$dst"
}

# Exactly this node's part: whatever else a previous run left is removed.
find "$dest" -mindepth 1 -delete
copy_rewritten "$cluster_file" "$dest/cluster.yaml" 644
for f in "${needed[@]}"; do
  install -d -m 700 "$dest/$(dirname "$f")"
  case "$f" in
    */config.yaml) copy_rewritten "$cluster_dir/$f" "$dest/$f" 600 ;;
    *.crt) install -m 644 "$cluster_dir/$f" "$dest/$f" ;;
    *) install -m 600 "$cluster_dir/$f" "$dest/$f" ;;
  esac
done

# Nodes file (kept for operators and the local bring-up).
if [ "$(readlink -f "$nodes_file")" != "$(readlink -f "$etc/nodes" 2>/dev/null || true)" ]; then
  install -m 644 "$nodes_file" "$etc/nodes"
fi

config="$etc/$role.yaml"
tmp="$(mktemp "$etc/.$role.yaml.XXXXXX")"
while IFS= read -r tline || [ -n "$tline" ]; do
  tline="${tline//@NODE_NAME@/$name}"
  tline="${tline//@NODE_ADDRESS@/$address}"
  tline="${tline//@CLUSTER_DIR@/$GUEST_CLUSTER_DIR}"
  tline="${tline//@DATA_DIR@/$data_dir}"
  tline="${tline//@POD_CIDR@/$pod_cidr}"
  printf '%s\n' "$tline"
done <"$template" >"$tmp"
chmod 600 "$tmp"
mv "$tmp" "$config"

# /etc/hosts: drop loopback lines naming a cluster node and the previous block, then add
# the current block.
hosts="$root/etc/hosts"
touch "$hosts"
begin="# BEGIN raftkube nodes (configure_node.sh)"
end="# END raftkube nodes"
tmp="$(mktemp "$root/etc/.hosts.XXXXXX")"
in_block=0
while IFS= read -r hline || [ -n "$hline" ]; do
  if [ "$hline" = "$begin" ]; then in_block=1; continue; fi
  if [ "$in_block" -eq 1 ]; then
    [ "$hline" = "$end" ] && in_block=0
    continue
  fi
  read -r -a hf <<<"${hline%%#*}" || true
  if [ "${#hf[@]}" -ge 2 ] && [[ "${hf[0]}" == 127.* ]] && [ "${hf[0]}" != 127.0.0.1 ]; then
    named_node=0
    for h in "${hf[@]:1}"; do
      for n in "${names[@]}"; do
        [ "$h" != "$n" ] || named_node=1
      done
    done
    [ "$named_node" -eq 0 ] || continue
  fi
  printf '%s\n' "$hline"
done <"$hosts" >"$tmp"
{
  echo "$begin"
  for i in "${!names[@]}"; do
    printf '%s %s\n' "${addrs[$i]}" "${names[$i]}"
  done
  echo "$end"
} >>"$tmp"
# Rewritten in place rather than renamed: /etc/hosts is a bind mount on some machines.
cat "$tmp" >"$hosts"
rm -f "$tmp"

echo "configure_node: $name ($role, $address) configured under ${root:-/}"
