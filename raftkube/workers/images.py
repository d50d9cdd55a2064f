"""Local images for nodes that can reach no registry.

    busybox-static (/bin/busybox) --> rootfs: /bin/busybox + applet links, /www/index.html,
                                      /etc/passwd, /etc/group, /tmp
                                  --> tar --> `podman import` --> localhost/busybox:latest
    FILE.tar --> `podman load` into a node's store;  image --> `podman save` --> FILE.tar

Everything runs the podman CLI against one store: the machine's, or a per-host store
written by `raftkube worker setup --host-dir DIR` (CONTAINERS_CONF/CONTAINERS_STORAGE_CONF).
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from raftkube.workers.podman_setup import HostStoreConfig

BUSYBOX_IMAGE = "localhost/busybox:latest"
DEFAULT_BUSYBOX_BINARY = Path("/bin/busybox")
DIGEST_LABEL = "io.raftkube.image.content-digest"
# Bump when the rootfs layout below changes, so existing images are rebuilt.
_ROOTFS_FORMAT = "1"
_INDEX_HTML = b"<html><body><h1>raftkube busybox</h1></body></html>\n"
_PASSWD = (b"root:x:0:0:root:/root:/bin/sh\n"
           b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
_GROUP = b"root:x:0:\nnogroup:x:65534:\n"


class ImageError(Exception):
    """An image operation failed; the message names the image or file and the cause."""


@dataclass(frozen=True)
class PodmanCli:
    """The podman command line against one store.

    store: a per-host store (None = the machine's default store).
    podman_binary: the podman executable.
    """

    store: HostStoreConfig | None = None
    podman_binary: str = "podman"

    def run(self, args: Sequence[str], stdin: bytes | None = None,
            check: bool = True) -> subprocess.CompletedProcess[bytes]:
        """Run `podman ARGS`; with `check`, raise ImageError naming the command on failure."""
        env = dict(os.environ)
        if self.store is not None:
            env.update(self.store.env())
        result = subprocess.run([self.podman_binary, *args], input=stdin, env=env,
                                capture_output=True, check=False)
        if check and result.returncode != 0:
            raise ImageError(f"podman {' '.join(args[:2])} failed ({result.returncode}): "
                             f"{result.stderr.decode(errors='replace').strip()[-600:]}")
        return result

    def image_exists(self, image: str) -> bool:
        return self.run(["image", "exists", image], check=False).returncode == 0

    def image_label(self, image: str, label: str) -> str:
        """The value of `label` on `image` ("" when absent or no such image)."""
        result = self.run(["image", "inspect", "--format",
                           "{{index .Labels \"" + label + "\"}}", image], check=False)
        if result.returncode != 0:
            return ""
        value = result.stdout.decode().strip()
        return "" if value == "<no value>" else value


def busybox_applets(busybox: Path) -> list[str]:
    """The applet names `busybox --list` reports."""
    result = subprocess.run([str(busybox), "--list"], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise ImageError(f"{busybox}: `--list` failed: {result.stderr.strip()}")
    return sorted({name for name in result.stdout.split() if name and "/" not in name})


def busybox_rootfs_tar(busybox: Path = DEFAULT_BUSYBOX_BINARY) -> tuple[bytes, str]:
    """A tar (bytes) of the busybox rootfs and its content digest; owned by root."""
    if not busybox.is_file():
        raise ImageError(f"{busybox}: not found (install the busybox-static package)")
    binary = busybox.read_bytes()
    applets = busybox_applets(busybox)
    digest = hashlib.sha256()
    for part in (_ROOTFS_FORMAT.encode(), binary, _INDEX_HTML, _PASSWD, _GROUP,
                 "\n".join(applets).encode()):
        digest.update(hashlib.sha256(part).digest())
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory, mode in (("bin", 0o755), ("etc", 0o755), ("www", 0o755),
                                ("tmp", 0o1777), ("root", 0o700), ("proc", 0o555),
                                ("sys", 0o555), ("dev", 0o755)):
            tar.addfile(_entry(directory, tarfile.DIRTYPE, mode))
        _add_file(tar, "bin/busybox", binary, 0o755)
        for applet in applets:
            if applet != "busybox":
                link = _entry(f"bin/{applet}", tarfile.SYMTYPE, 0o777)
                link.linkname = "busybox"
                tar.addfile(link)
        _add_file(tar, "www/index.html", _INDEX_HTML, 0o644)
        _add_file(tar, "etc/passwd", _PASSWD, 0o644)
        _add_file(tar, "etc/group", _GROUP, 0o644)
    return buffer.getvalue(), digest.hexdigest()


def _entry(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = _entry(name, tarfile.REGTYPE, mode)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def build_busybox_image(cli: PodmanCli, image: str = BUSYBOX_IMAGE,
                        busybox: Path = DEFAULT_BUSYBOX_BINARY, force: bool = False) -> bool:
    """Build `image` from the busybox binary into `cli`'s store.

    Idempotent: when `image` exists with the same content digest label, nothing is done
    and False is returned; True when (re)built.
    """
    tar, digest = busybox_rootfs_tar(busybox)
    if not force and cli.image_label(image, DIGEST_LABEL) == digest:
        return False
    cli.run(["import", "-c", "ENV PATH=/bin", "-c", 'CMD ["sh"]', "-c",
             f"LABEL {DIGEST_LABEL}={digest}", "-", image], stdin=tar)
    return True


def load_image(cli: PodmanCli, tarball: Path) -> list[str]:
    """Load an image archive (from `podman save`) into `cli`'s store; returns the names
    loaded. Idempotent: loading the same archive again changes nothing."""
    if not tarball.is_file():
        raise ImageError(f"{tarball}: no such file")
    result = cli.run(["load", "-q", "-i", str(tarball)])
    names = []
    for line in result.stdout.decode().splitlines():
        if line.startswith("Loaded image"):
            names.extend(n.strip() for n in line.split(":", 1)[1].split(","))
    return names


def save_image(cli: PodmanCli, image: str, output: Path) -> None:
    """Write `image` from `cli`'s store to the archive `output` (docker-archive)."""
    if not cli.image_exists(image):
        raise ImageError(f"image {image!r} is not in the store")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    tmp.unlink(missing_ok=True)
    cli.run(["save", "-q", "-o", str(tmp), image])
    os.replace(tmp, output)
