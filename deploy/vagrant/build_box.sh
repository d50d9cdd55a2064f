#!/usr/bin/env bash
# Builds the libvirt Vagrant box "raftkube/bookworm" locally, without downloading any box:
# only Debian's package mirror is used (debootstrap + apt). Everything a raftkube node needs
# is baked in (sshd, sudo, python3 + venv, ifupdown, rsync, podman + runc + netavark +
# aardvark-dns, iptables, nftables, dbus, busybox-static, systemd, kernel + extlinux), so
# guests never install packages while running under slow software emulation.
#
# Usage: sudo bash deploy/vagrant/build_box.sh [--wheels DIR] [--rebuild] [--no-add]
#   --wheels DIR  bake raftkube's Python dependencies into the box: a venv at
#                 /opt/raftkube/venv (where deploy/provision/install_raftkube.sh --prefix
#                 /opt/raftkube puts it) holding exactly the wheels DIR/dependencies.txt
#                 names (written by scripts/build_wheels.sh --out DIR), and a copy of that
#                 file as /opt/raftkube/venv/raftkube-dependencies.txt. Provisioning then
#                 installs only raftkube's own wheel. Without it the box has no venv and
#                 every guest installs the dependencies itself (minutes under emulation).
#   --rebuild     build again even if the cached box file for this version exists
#   --no-add      build (or reuse) the box file but do not run `vagrant box add`
#
# Environment:
#   RAFTKUBE_BOX_CACHE     where box files are kept, outside the checkout
#                          (default /var/cache/raftkube/boxes); downloaded packages are
#                          kept next to it (../debs) and reused by the next build
#   RAFTKUBE_DEBIAN_MIRROR Debian mirror (default http://deb.debian.org/debian)
#   RAFTKUBE_BOX_NAME      name given to `vagrant box add` (default raftkube/bookworm)
#
# Idempotent: the box file is named after a hash of this script (its package list and
# every configuration step) and of DIR/dependencies.txt, so an unchanged script with the same
# dependency wheels reuses the cached file, and an edited script or a changed dependency set
# builds a new box. `vagrant box add` is skipped when the installed box carries the same
# build id. Each step is logged with the wall-clock time it took. Prints the box file path
# as the last line.
set -euo pipefail

BOX_NAME="${RAFTKUBE_BOX_NAME:-raftkube/bookworm}"
CACHE_DIR="${RAFTKUBE_BOX_CACHE:-/var/cache/raftkube/boxes}"
MIRROR="${RAFTKUBE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
DISK_GIB=8
PART_START_SECTOR=2048 # 1 MiB: room for the MBR and alignment
ROOT_LABEL=raftkube-root
DEB_CACHE="$(dirname "$CACHE_DIR")/debs"
# The guest venv: install_raftkube.sh --prefix /opt/raftkube (the Vagrantfile's GUEST_BASE).
GUEST_VENV=/opt/raftkube/venv

# Installed with apt inside the image after debootstrap (no recommends). podman lists
# crun|runc: naming runc selects it, as on the hosts (crun rejects cgroups v1 hybrid mode).
# catatonit is only a recommendation of podman, but pods need it (the pause image).
GUEST_PACKAGES=(
  systemd-sysv udev dbus kmod linux-image-amd64 initramfs-tools
  openssh-server sudo python3 python3-venv ifupdown isc-dhcp-client iproute2 netbase
  rsync ca-certificates procps less e2fsprogs
  podman runc conmon catatonit netavark aardvark-dns iptables nftables conntrack
  busybox-static
)

rebuild=0
add_box=1
wheels=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rebuild) rebuild=1; shift ;;
    --no-add) add_box=0; shift ;;
    --wheels)
      [ $# -ge 2 ] || { echo "build_box.sh: --wheels needs a directory" >&2; exit 2; }
      wheels="$2"; shift 2 ;;
    *) echo "build_box.sh: unknown argument '$1' (expected --wheels DIR, --rebuild, --no-add)" >&2; exit 2 ;;
  esac
done
if [ -n "$wheels" ]; then
  [ -f "$wheels/dependencies.txt" ] || { echo "build_box.sh: $wheels/dependencies.txt does not exist (run scripts/build_wheels.sh --out $wheels)" >&2; exit 2; }
  wheels="$(cd "$wheels" && pwd)"
fi

script_path="$(readlink -f "$0")"
# The box's identity: this script and the dependency set baked into it (if any).
build_id="$( { cat "$script_path"; [ -z "$wheels" ] || cat "$wheels/dependencies.txt"; } \
  | sha256sum | cut -c1-12)"
box_file="$CACHE_DIR/raftkube-bookworm-$build_id.box"
build_started=$(date +%s)

log() { printf '%s build_box: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# step NAME COMMAND...: runs a step and logs how long it took.
step() {
  local name="$1"; shift
  local t0; t0=$(date +%s)
  log "step '$name' started"
  "$@"
  log "step '$name' done in $(( $(date +%s) - t0 ))s"
}

find_insecure_key() {
  # Vagrant ships its documented public insecure key in its package; never typed by hand.
  local candidate
  for candidate in /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub \
                   /usr/lib/ruby/vendor_ruby/vagrant/keys/vagrant.pub \
                   /opt/vagrant/embedded/gems/gems/vagrant-*/keys/vagrant.pub; do
    if [ -f "$candidate" ]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

preflight() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (loop devices, mount, chroot)"
  local cmd
  for cmd in debootstrap qemu-img sfdisk losetup mkfs.ext4 extlinux chroot fstrim tar \
             sha256sum; do
    command -v "$cmd" >/dev/null || die "'$cmd' not found: run scripts/vagrant_host_setup.sh"
  done
  [ -f /usr/lib/syslinux/mbr/mbr.bin ] \
    || die "/usr/lib/syslinux/mbr/mbr.bin missing: install syslinux-common"
  INSECURE_KEY="$(find_insecure_key)" \
    || die "Vagrant's public insecure key (keys/vagrant.pub) not found: install vagrant"
}

# ---- state shared by the build steps and the cleanup trap ----
WORK=""
LOOP=""
MNT=""

cleanup() {
  local m
  if [ -n "$MNT" ]; then
    for m in var/cache/apt/archives dev/pts dev proc sys; do
      mountpoint -q "$MNT/$m" 2>/dev/null && umount -l "$MNT/$m"
    done
    mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"
  fi
  if [ -n "$LOOP" ]; then
    losetup -d "$LOOP" 2>/dev/null || true
  fi
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    rm -rf "$WORK"
  fi
}

make_disk() {
  truncate -s "${DISK_GIB}G" "$WORK/disk.raw"
  printf 'label: dos\nstart=%s, type=83, bootable\n' "$PART_START_SECTOR" \
    | sfdisk --quiet "$WORK/disk.raw"
  # Partition devices (loopNp1) do not appear on these hosts: map the partition itself.
  local offset=$((PART_START_SECTOR * 512))
  local size=$(( DISK_GIB * 1024 * 1024 * 1024 - offset ))
  LOOP="$(losetup --find --show --offset "$offset" --sizelimit "$size" "$WORK/disk.raw")"
  # extlinux cannot read ext4 with the 64bit feature; 8 GiB does not need it.
  # Inode tables and journal are zeroed now, at host speed (lazy_*_init=0), so no guest
  # spends its first minutes zeroing them in the background (ext4lazyinit) under
  # emulation; qemu-img convert stores zeroed blocks as nothing, so the box stays small.
  mkfs.ext4 -q -L "$ROOT_LABEL" -O ^64bit -E lazy_itable_init=0,lazy_journal_init=0 "$LOOP"
  MNT="$WORK/root"
  mkdir -p "$MNT"
  mount "$LOOP" "$MNT"
}

run_debootstrap() {
  # Packages are cached outside the image: they never take space in the box, and a rebuild
  # downloads only what changed on the mirror.
  mkdir -p "$DEB_CACHE/debootstrap"
  nice -n 10 debootstrap --variant=minbase --cache-dir="$DEB_CACHE/debootstrap" \
    "$SUITE" "$MNT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
}

in_chroot() { chroot "$MNT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"; }

install_packages() {
  mount -t proc proc "$MNT/proc"
  mount -t sysfs sysfs "$MNT/sys"
  mount --bind /dev "$MNT/dev"
  mount --bind /dev/pts "$MNT/dev/pts"
  mkdir -p "$DEB_CACHE/apt/partial"
  mount --bind "$DEB_CACHE/apt" "$MNT/var/cache/apt/archives"
  # No service may start inside the chroot.
  printf '#!/bin/sh\nexit 101\n' >"$MNT/usr/sbin/policy-rc.d"
  chmod 755 "$MNT/usr/sbin/policy-rc.d"
  cat >"$MNT/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
  cp /etc/resolv.conf "$MNT/etc/resolv.conf"
  in_chroot apt-get -qq update >"$WORK/apt.log" 2>&1 \
    || { tail -n 30 "$WORK/apt.log" >&2; die "apt-get update in the image failed"; }
  in_chroot nice -n 10 apt-get install -y -qq --no-install-recommends "${GUEST_PACKAGES[@]}" \
    >>"$WORK/apt.log" 2>&1 \
    || { tail -n 30 "$WORK/apt.log" >&2; die "apt-get install in the image failed"; }
  # shellcheck disable=SC2016 # dpkg-query formats, not shell expansions
  local show_version='${Package} ${Version}\n' show_status='${Status}'
  in_chroot dpkg-query -W -f="$show_version" podman runc linux-image-amd64 python3 >&2
  if in_chroot dpkg-query -W -f="$show_status" crun 2>/dev/null | grep -q "install ok installed"; then
    die "crun got installed in the image; podman must use runc"
  fi
}

bake_python_dependencies() {
  # Exactly the wheels dependencies.txt names, without resolving (--no-deps), then pip check
  # proves they satisfy each other. Byte-compiled here, at host speed.
  local stage=/tmp/raftkube-wheels name
  local in_image=() # the wheels' paths as seen inside the chroot
  mkdir -p "$MNT$stage"
  while IFS= read -r name; do
    [ -n "$name" ] || continue
    [ -f "$wheels/$name" ] || die "$wheels/dependencies.txt names $name, which is not in $wheels"
    cp "$wheels/$name" "$MNT$stage/"
    in_image+=("$stage/$name")
  done <"$wheels/dependencies.txt"
  [ "${#in_image[@]}" -gt 0 ] || die "$wheels/dependencies.txt names no wheel"
  in_chroot python3 -m venv "$GUEST_VENV" || die "python3 -m venv $GUEST_VENV failed in the image"
  in_chroot "$GUEST_VENV/bin/python" -m pip --disable-pip-version-check --no-input -q install \
    --no-cache-dir --no-index --no-deps "${in_image[@]}" >"$WORK/pip.log" 2>&1 \
    || { tail -n 30 "$WORK/pip.log" >&2; die "pip install of the dependency wheels failed in the image"; }
  in_chroot "$GUEST_VENV/bin/python" -m pip --disable-pip-version-check check >&2 \
    || die "the dependency wheels in $wheels/dependencies.txt do not satisfy each other"
  cp "$wheels/dependencies.txt" "$MNT$GUEST_VENV/raftkube-dependencies.txt"
  rm -rf "${MNT:?}$stage"
  log "baked $(wc -l <"$wheels/dependencies.txt") dependency wheels into $GUEST_VENV"
}

configure_system() {
  local uuid
  uuid="$(blkid -s UUID -o value "$LOOP")"
  echo "raftkube" >"$MNT/etc/hostname"
  cat >"$MNT/etc/hosts" <<'EOF'
127.0.0.1 localhost
127.0.1.1 raftkube
::1 localhost ip6-localhost ip6-loopback
EOF
  printf 'UUID=%s / ext4 errors=remount-ro 0 1\n' "$uuid" >"$MNT/etc/fstab"

  # eth0 is Vagrant's management network (DHCP); Vagrant appends the private network.
  # allow-hotplug (Debian's installer default), not auto: eth0 comes up when udev sees it,
  # and networking.service no longer waits for every udev event first (ifupdown-pre's
  # `udevadm settle`: 19 s of a 61 s boot under emulation).
  cat >"$MNT/etc/network/interfaces" <<'EOF'
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

allow-hotplug eth0
iface eth0 inet dhcp
EOF
  : >"$MNT/etc/resolv.conf"

  # The vagrant user: Vagrant's public insecure key and passwordless sudo. Vagrant replaces
  # the key with a per-machine one on first `vagrant up`.
  if ! in_chroot id vagrant >/dev/null 2>&1; then
    in_chroot useradd --create-home --shell /bin/bash vagrant
  fi
  install -d -m 700 -o 1000 -g 1000 "$MNT/home/vagrant/.ssh"
  install -m 600 -o 1000 -g 1000 "$INSECURE_KEY" "$MNT/home/vagrant/.ssh/authorized_keys"
  [ "$(in_chroot id -u vagrant)" = "1000" ] || die "vagrant user did not get uid 1000"
  printf 'vagrant ALL=(ALL) NOPASSWD:ALL\nDefaults:vagrant !requiretty\n' \
    >"$MNT/etc/sudoers.d/vagrant"
  chmod 440 "$MNT/etc/sudoers.d/vagrant"
  in_chroot visudo -c -q -f /etc/sudoers.d/vagrant || die "sudoers file for vagrant is invalid"
  # Ed25519 and ECDSA host keys only: generating an RSA key took most of the 14 s the
  # first-boot key unit took under emulation.
  printf 'UseDNS no\nPasswordAuthentication no\nHostKey /etc/ssh/ssh_host_ed25519_key\nHostKey /etc/ssh/ssh_host_ecdsa_key\n' \
    >"$MNT/etc/ssh/sshd_config.d/raftkube.conf"

  # Every VM made from this box gets its own SSH host keys and machine-id on first boot.
  rm -f "$MNT"/etc/ssh/ssh_host_*
  cat >"$MNT/etc/systemd/system/raftkube-ssh-host-keys.service" <<'EOF'
[Unit]
Description=Generate SSH host keys on first boot
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key
ExecStart=/usr/bin/ssh-keygen -q -t ecdsa -N "" -f /etc/ssh/ssh_host_ecdsa_key

[Install]
WantedBy=multi-user.target
EOF
  in_chroot systemctl enable raftkube-ssh-host-keys.service ssh.service >/dev/null 2>&1
  : >"$MNT/etc/machine-id"
  rm -f "$MNT/var/lib/dbus/machine-id"
  ln -s /etc/machine-id "$MNT/var/lib/dbus/machine-id"

  # Podman as on the hosts: runc, netavark, k8s-file logs, file events (no journald need).
  mkdir -p "$MNT/etc/containers"
  cat >"$MNT/etc/containers/containers.conf" <<'EOF'
[containers]
log_driver = "k8s-file"
[engine]
runtime = "runc"
events_logger = "file"
[engine.runtimes]
runc = ["/usr/sbin/runc"]
[network]
network_backend = "netavark"
EOF
  # Serial console for `virsh console` when something goes wrong at boot.
  in_chroot systemctl enable serial-getty@ttyS0.service >/dev/null 2>&1
  # Periodic jobs would compete with raftkube for a slow emulated CPU at random times (and
  # apt's would reach the network): nodes are updated by rebuilding the box. Boot-time
  # units of no use on a node take the one emulated CPU while it boots: podman's
  # auto-update and restart services (13 s and 5 s; raftkube's agent restarts containers
  # itself, they run with restart policy "no") and loading modules for graphics and EFI.
  local unit
  for unit in apt-daily.timer apt-daily-upgrade.timer podman-auto-update.timer \
              e2scrub_all.timer fstrim.timer podman-auto-update.service \
              podman-restart.service modprobe@drm.service modprobe@efi_pstore.service; do
    in_chroot systemctl mask "$unit" >/dev/null 2>&1 || die "systemctl mask $unit failed"
  done
}

install_bootloader() {
  # The kernel package maintains /vmlinuz and /initrd.img symlinks; extlinux follows them,
  # so a kernel upgrade inside a guest keeps booting.
  if [ ! -e "$MNT/vmlinuz" ] || [ ! -e "$MNT/initrd.img" ]; then
    die "/vmlinuz or /initrd.img missing in the image (kernel install failed?)"
  fi
  local uuid
  uuid="$(blkid -s UUID -o value "$LOOP")"
  mkdir -p "$MNT/boot/extlinux"
  # quiet: only errors reach the emulated serial console, whose every byte costs time while
  # the kernel boots; `virsh console` still shows the errors and the login prompt.
  cat >"$MNT/boot/extlinux/extlinux.conf" <<EOF
DEFAULT raftkube
PROMPT 0
TIMEOUT 1
LABEL raftkube
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND root=UUID=$uuid ro quiet net.ifnames=0 biosdevname=0 console=tty0 console=ttyS0,115200
EOF
  extlinux --install "$MNT/boot/extlinux" >/dev/null 2>&1 || die "extlinux --install failed"
  dd if=/usr/lib/syslinux/mbr/mbr.bin of="$WORK/disk.raw" bs=440 count=1 conv=notrunc \
    status=none
}

finish_filesystem() {
  rm -f "$MNT/usr/sbin/policy-rc.d"
  rm -rf "$MNT"/var/lib/apt/lists/* "$MNT"/var/log/*.log "$MNT"/tmp/* "$MNT"/root/.bash_history
  local m
  for m in var/cache/apt/archives dev/pts dev proc sys; do umount "$MNT/$m"; done
  # Give freed blocks back to the sparse file so the qcow2 stays small.
  fstrim "$MNT" >/dev/null 2>&1 || log "fstrim not supported here; image may be larger"
  log "filesystem uses $(df -h --output=used "$MNT" | tail -n 1 | tr -d ' '); raw disk holds $(du -h "$WORK/disk.raw" | cut -f1)"
  umount "$MNT"
  losetup -d "$LOOP"
  LOOP=""
}

convert_and_pack() {
  nice -n 10 qemu-img convert -c -O qcow2 "$WORK/disk.raw" "$WORK/box.img"
  rm -f "$WORK/disk.raw"
  printf '{"provider":"libvirt","format":"qcow2","virtual_size":%s}\n' "$DISK_GIB" \
    >"$WORK/metadata.json"
  cat >"$WORK/Vagrantfile" <<'EOF'
# Box defaults for raftkube/bookworm (built by deploy/vagrant/build_box.sh).
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |libvirt|
    libvirt.disk_bus = "virtio"
    libvirt.nic_model_type = "virtio"
  end
end
EOF
  echo "$build_id" >"$WORK/raftkube-build-id"
  mkdir -p "$CACHE_DIR"
  tar -C "$WORK" -cf "$box_file.partial" metadata.json Vagrantfile box.img raftkube-build-id
  mv "$box_file.partial" "$box_file"
}

installed_build_id() {
  local home="${VAGRANT_HOME:-$HOME/.vagrant.d}"
  local dir="$home/boxes/${BOX_NAME//\//-VAGRANTSLASH-}"
  cat "$dir"/*/libvirt/raftkube-build-id 2>/dev/null | head -n 1
}

add_to_vagrant() {
  vagrant box add --force --name "$BOX_NAME" "$box_file" >/dev/null
  # vagrant-libvirt uploads the box into a storage pool volume named after the box file's
  # mtime; volumes of older builds of this box are removed when no domain uses them.
  local prefix="${BOX_NAME//\//-VAGRANTSLASH-}_vagrant_box_image_"
  local vol
  if command -v virsh >/dev/null && virsh -c qemu:///system pool-info default >/dev/null 2>&1; then
    for vol in $(virsh -c qemu:///system vol-list default 2>/dev/null | awk 'NR>2 {print $1}'); do
      case "$vol" in
        "$prefix"*)
          if virsh -c qemu:///system vol-delete --pool default "$vol" >/dev/null 2>&1; then
            log "removed old box volume $vol"
          fi
          ;;
      esac
    done
  fi
}

main() {
  preflight
  if [ "$rebuild" -eq 1 ] || [ ! -f "$box_file" ]; then
    mkdir -p "$CACHE_DIR"
    WORK="$(mktemp -d "$CACHE_DIR/.build.XXXXXX")"
    trap cleanup EXIT
    step "partition and format an ${DISK_GIB} GiB MBR disk" make_disk
    step "debootstrap --variant=minbase $SUITE" run_debootstrap
    step "install node packages" install_packages
    if [ -n "$wheels" ]; then
      step "bake Python dependencies into $GUEST_VENV" bake_python_dependencies
    fi
    step "configure users, ssh, network, first boot" configure_system
    step "install extlinux with net.ifnames=0" install_bootloader
    step "clean and trim the filesystem" finish_filesystem
    step "convert to compressed qcow2 and pack the box" convert_and_pack
    log "box built: $box_file ($(du -h "$box_file" | cut -f1))"
    # Older builds of this box are of no further use.
    find "$CACHE_DIR" -maxdepth 1 -name 'raftkube-bookworm-*.box' ! -path "$box_file" \
      -print -delete | sed 's/^/removed old box file /' >&2
  else
    log "reusing cached box $box_file"
  fi
  if [ "$add_box" -eq 1 ]; then
    if [ "$(installed_build_id)" = "$build_id" ]; then
      log "vagrant box $BOX_NAME already at build $build_id"
    else
      step "vagrant box add $BOX_NAME" add_to_vagrant
    fi
  fi
  log "total $(( $(date +%s) - build_started ))s"
  echo "$box_file"
}

main
