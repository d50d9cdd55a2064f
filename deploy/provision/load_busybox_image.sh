#!/usr/bin/env bash
# Builds the local image localhost/busybox:latest from Debian's busybox-static (no registry
# is reachable), the image raftkube's examples and tests run.
#
# Usage: load_busybox_image.sh [--image NAME] [--force]
#   --image NAME  image name (default localhost/busybox:latest)
#   --force       rebuild even if the image exists
#
# Idempotent: does nothing when the image already exists. Uses the podman found on PATH with
# whatever CONTAINERS_CONF / CONTAINERS_STORAGE_CONF the caller set, so a per-node store on
# a shared machine gets its own copy. Exits non-zero naming what is missing.
set -euo pipefail

image="localhost/busybox:latest"
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --image) image="${2:?--image needs a name}"; shift 2 ;;
    --force) force=1; shift ;;
    *) echo "load_busybox_image: unknown argument '$1'" >&2; exit 1 ;;
  esac
done

die() { echo "load_busybox_image: $*" >&2; exit 1; }
command -v podman >/dev/null || die "podman is not installed"
busybox=/bin/busybox
[ -x "$busybox" ] || die "$busybox missing: install busybox-static"
file -b "$busybox" 2>/dev/null | grep -q dynamically && die "$busybox is dynamically linked: install busybox-static"

if [ "$force" -eq 0 ] && podman image exists "$image"; then
  echo "load_busybox_image: $image already present"
  exit 0
fi

rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/var/www" "$rootfs/proc" "$rootfs/sys"
cp "$busybox" "$rootfs/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"
tar -C "$rootfs" -cf - . | podman import -c 'ENV PATH=/bin' -c 'CMD ["sh"]' - "$image" >/dev/null \
  || die "podman import failed"
echo "load_busybox_image: $image built from $busybox"
