#!/usr/bin/env bash
# Configures one raftkube node (master or worker) from a nodes file and the cluster
# directory that `raftkube init` wrote on the operator's machine:
#   1. /etc/hosts: one line per node with its private-network address, in a marked block
#      that is replaced on every run; `127.0.1.1 NAME` lines naming a cluster node (written
#      by Vagrant's hostname step) are dropped, so nodes never resolve each other, or
#      themselves, to a loopback or management address;
#   2. /etc/raftkube/pki/: the cluster CA certificate and this node's own files (its
#      certificate, key, tokens), keys mode 0600, directory 0700; nothing of other nodes;
#   3. /etc/raftkube/master.yaml or worker.yaml: copied from the cluster directory when
#      `raftkube init` wrote one for this node, else rendered from
#      templates/ROLE.yaml.in next to this script;
#   4. /etc/raftkube/nodes (the nodes file) and the data directory /var/lib/raftkube/ROLE.
#
# Usage: configure_node.sh --name NAME --nodes FILE --cluster-dir DIR [--root DIR]
#                          [--api-port N] [--raft-port N]
#   --name NAME        this node; must be listed in the nodes file
#   --nodes FILE       one node per line: NAME ROLE ADDRESS (ROLE master|worker);
#                      blank lines and lines starting with # are ignored
#   --cluster-dir DIR  layout written by `raftkube init`:
#                        DIR/ca.crt             cluster CA certificate (required)
#                        DIR/nodes/NAME/        this node's files (required): certificate,
#                                               key, tokens, secrets; ROLE.yaml optional
#   --root DIR         write under DIR instead of / (default: $RAFTKUBE_ROOT or /), which is
#                      how the local multi-host bring-up and the tests use it
#   --api-port N       API server port written into master addresses (default 6443)
#   --raft-port N      Raft port of the masters (default 2380)
#
# Idempotent: running it again with the same inputs leaves the same files. Nothing is
# written until every input has been checked; a bad nodes file is reported with its file
# name and line number.
set -euo pipefail

name=""
nodes_file=""
cluster_dir=""
root="${RAFTKUBE_ROOT:-/}"
api_port=6443
raft_port=2380
script_dir="$(cd "$(dirname "$0")" && pwd)"

die() { echo "configure_node: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --name) name="${2:?--name needs a value}"; shift 2 ;;
    --nodes) nodes_file="${2:?--nodes needs a file}"; shift 2 ;;
    --cluster-dir) cluster_dir="${2:?--cluster-dir needs a directory}"; shift 2 ;;
    --root) root="${2:?--root needs a directory}"; shift 2 ;;
    --api-port) api_port="${2:?--api-port needs a number}"; shift 2 ;;
    --raft-port) raft_port="${2:?--raft-port needs a number}"; shift 2 ;;
    *) die "unknown argument '$1'" ;;
  esac
done

[ -n "$name" ] || die "--name is required"
[ -n "$nodes_file" ] || die "--nodes is required"
[ -n "$cluster_dir" ] || die "--cluster-dir is required"
[ -f "$nodes_file" ] || die "nodes file $nodes_file does not exist"
[ -d "$root" ] || die "root directory $root does not exist"
for port in "$api_port" "$raft_port"; do
  if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    die "port '$port' is not a number between 1 and 65535"
  fi
done
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
    [[ "$p" =~ ^[0-9]{1,3}$ ]] && [ "$p" -le 255 ] || return 1
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
masters=()
for i in "${!names[@]}"; do
  if [ "${names[$i]}" = "$name" ]; then
    role="${roles[$i]}"; address="${addrs[$i]}"
  fi
  [ "${roles[$i]}" != master ] || masters+=("${names[$i]}=${addrs[$i]}")
done
[ -n "$role" ] || die "node '$name' is not listed in $nodes_file"
[ "${#masters[@]}" -gt 0 ] || die "$nodes_file lists no master"

# ---- check the cluster directory ----
[ -d "$cluster_dir" ] || die "cluster directory $cluster_dir does not exist (run raftkube init)"
[ -f "$cluster_dir/ca.crt" ] || die "$cluster_dir/ca.crt missing (run raftkube init)"
node_src="$cluster_dir/nodes/$name"
[ -d "$node_src" ] || die "$node_src missing: raftkube init wrote no files for node '$name'"
config_src="$node_src/$role.yaml"
template="$script_dir/templates/$role.yaml.in"
if [ ! -f "$config_src" ]; then
  [ -f "$template" ] || die "no $config_src and no template $template"
fi

# ---- write ----
etc="$root/etc/raftkube"
pki="$etc/pki"
data_dir="/var/lib/raftkube/$role"
install -d -m 755 "$etc" "$root$data_dir"
install -d -m 700 "$pki"

# Replace the PKI directory's content with exactly this node's files.
find "$pki" -mindepth 1 -delete
install -m 644 "$cluster_dir/ca.crt" "$pki/ca.crt"
for f in "$node_src"/*; do
  [ -f "$f" ] || continue
  base="$(basename "$f")"
  [ "$base" != "$role.yaml" ] || continue
  case "$base" in
    *.crt|*.pem.pub) install -m 644 "$f" "$pki/$base" ;;
    *) install -m 600 "$f" "$pki/$base" ;;
  esac
done

# Nodes file (kept for operators and for the daemons' peer list).
if [ "$(readlink -f "$nodes_file")" != "$(readlink -f "$etc/nodes" 2>/dev/null || true)" ]; then
  install -m 644 "$nodes_file" "$etc/nodes"
fi

# Config: from raftkube init when present, else rendered from the template.
config="$etc/$role.yaml"
if [ -f "$config_src" ]; then
  install -m 600 "$config_src" "$config"
else
  peers_yaml=""
  masters_yaml=""
  for m in "${masters[@]}"; do
    mname="${m%%=*}"; maddr="${m#*=}"
    masters_yaml+="  - ${maddr}:${api_port}"$'\n'
    [ "$mname" = "$name" ] || peers_yaml+="  - ${maddr}:${raft_port}"$'\n'
  done
  [ -n "$peers_yaml" ] || peers_yaml="  []"$'\n'
  tmp="$(mktemp "$etc/.$role.yaml.XXXXXX")"
  while IFS= read -r tline || [ -n "$tline" ]; do
    case "$tline" in
      *@RAFT_PEERS@*) printf '%s' "$peers_yaml" ;;
      *@MASTER_ADDRESSES@*) printf '%s' "$masters_yaml" ;;
      *)
        tline="${tline//@NODE_NAME@/$name}"
        tline="${tline//@NODE_ADDRESS@/$address}"
        tline="${tline//@API_PORT@/$api_port}"
        tline="${tline//@RAFT_PORT@/$raft_port}"
        tline="${tline//@PKI_DIR@//etc/raftkube/pki}"
        tline="${tline//@DATA_DIR@/$data_dir}"
        printf '%s\n' "$tline"
        ;;
    esac
  done <"$template" >"$tmp"
  chmod 600 "$tmp"
  mv "$tmp" "$config"
fi

# /etc/hosts: drop loopback lines naming a cluster node and the previous block, then add
# the current block.
hosts="$root/etc/hosts"
mkdir -p "$root/etc"
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
