"""Pod volumes on the node: directories the runtime bind-mounts into containers.

    <data_dir>/pods/<pod uid>/volumes/<volume name>/
        emptyDir          a directory (medium Memory: a tmpfs mounted there)
        configMap/secret  an atomic "view": ..<stamp>/ files, ..data -> ..<stamp>,
                          <key> -> ..data/<key>; an update writes a new ..<stamp> and swaps
                          ..data with one rename (what a reader sees is always whole);
                          a secret's view lives on its own tmpfs (never on disk)
    hostPath              the host path itself (checked against `type`)
    persistentVolumeClaim the bound PersistentVolume's local/hostPath directory (kept when
                          the pod goes)

`VolumeManager.prepare(pod)` is idempotent (it also refreshes configMap/secret views);
`cleanup(uid)` unmounts and removes the pod's directory and nothing outside it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from raftkube.api.v1 import core_pb2, pod_pb2, storage_pb2
from raftkube.objects.quantity import QuantityError, parse_quantity
from raftkube.workers.agent.pod_spec import ConfigError, ObjectSource
from raftkube.workers.runtime.interface import Mount, MountKind

DATA_LINK = "..data"
SECRET_TMPFS_BYTES = 16 * 1024 * 1024


class VolumeError(Exception):
    """A volume cannot be set up (FailedMount); the message names volume and cause."""


class VolumeSource(ObjectSource, Protocol):
    def pvc(self, namespace: str, name: str) -> storage_pb2.PersistentVolumeClaim | None: ...

    def pv(self, name: str) -> storage_pb2.PersistentVolume | None: ...


@dataclass(frozen=True)
class PreparedVolumes:
    """Host paths of the pod's volumes by volume name."""

    paths: Mapping[str, Path]

    def mounts(self, container: pod_pb2.Container) -> tuple[Mount, ...]:
        """The container's bind mounts. VolumeError for an unknown volume name."""
        out = []
        for vm in container.volume_mounts:
            base = self.paths.get(vm.name)
            if base is None:
                raise VolumeError(f'volumeMounts: no volume named "{vm.name}"')
            source = base / vm.sub_path if vm.sub_path else base
            if vm.sub_path:
                if ".." in Path(vm.sub_path).parts or Path(vm.sub_path).is_absolute():
                    raise VolumeError(f"volumeMounts {vm.name}: subPath {vm.sub_path!r} "
                                      "must be a relative path without '..'")
                if not source.exists():
                    source.mkdir(parents=True, exist_ok=True)
            out.append(Mount(MountKind.BIND, target=vm.mount_path, source=str(source),
                             read_only=vm.read_only))
        return tuple(out)


def _mounted(path: Path) -> bool:
    text = Path("/proc/mounts").read_text()
    return any(line.split()[1] == str(path) for line in text.splitlines())


def _mount_tmpfs(path: Path, size_bytes: int, mode: str = "0755") -> None:
    if _mounted(path):
        return
    options = f"mode={mode}" + (f",size={size_bytes}" if size_bytes else "")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise VolumeError(f"mount tmpfs at {path}: {result.stderr.strip()}")


def _file_mode(value: int) -> int:
    return value & 0o777


def write_view(directory: Path, files: Mapping[str, tuple[bytes, int]]) -> bool:
    """Make `directory` show exactly `files` (relative path -> (content, mode)) through an
    atomic ..data swap. Returns whether anything changed (unchanged content: no swap)."""
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / DATA_LINK
    if data.is_symlink() and _view_matches(directory / os.readlink(data), files):
        return False
    stamp = directory / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    stamp.mkdir(mode=0o755)
    for rel, (content, mode) in files.items():
        target = stamp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        os.chmod(target, mode)
    old = os.readlink(data) if data.is_symlink() else None
    tmp = directory / "..data_tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(stamp.name, tmp)
    os.replace(tmp, data)
    tops = {Path(rel).parts[0] for rel in files}
    for top in tops:
        link = directory / top
        if not link.is_symlink():
            os.symlink(f"{DATA_LINK}/{top}", link)
    for entry in directory.iterdir():
        if entry.name.startswith(".."):
            continue
        if entry.is_symlink() and entry.name not in tops:
            entry.unlink()
    if old and old != stamp.name:
        shutil.rmtree(directory / old, ignore_errors=True)
    return True


def _view_matches(current: Path, files: Mapping[str, tuple[bytes, int]]) -> bool:
    try:
        present = {str(p.relative_to(current)) for p in current.rglob("*") if p.is_file()}
        if present != set(files):
            return False
        for rel, (content, mode) in files.items():
            path = current / rel
            if path.read_bytes() != content or stat.S_IMODE(path.stat().st_mode) != mode:
                return False
    except OSError:
        return False
    return True


def _projected(data: Mapping[str, bytes], items: list[pod_pb2.KeyToPath], default_mode: int,
               what: str) -> dict[str, tuple[bytes, int]]:
    if not items:
        return {key: (value, default_mode) for key, value in data.items()}
    out = {}
    for item in items:
        if item.key not in data:
            raise ConfigError(f"couldn't find key {item.key} in {what}")
        path = Path(item.path)
        if path.is_absolute() or ".." in path.parts:
            raise ConfigError(f"{what}: item path {item.path!r} must be relative without '..'")
        mode = _file_mode(item.mode) if item.HasField("mode") else default_mode
        out[item.path] = (data[item.key], mode)
    return out


class VolumeManager:
    """Sets up and removes the volumes of pods on this node (see module docstring)."""

    def __init__(self, data_dir: Path, source: VolumeSource) -> None:
        self.data_dir = Path(data_dir)
        self.source = source

    def pod_dir(self, uid: str) -> Path:
        return self.data_dir / "pods" / uid

    def prepare(self, pod: pod_pb2.Pod) -> PreparedVolumes:
        """Create or refresh every volume of `pod`. VolumeError / ConfigError name the
        volume; what was set up for other volumes stays (retried next time)."""
        paths: dict[str, Path] = {}
        base = self.pod_dir(pod.metadata.uid) / "volumes"
        for volume in pod.spec.volumes:
            try:
                paths[volume.name] = self._prepare_one(pod, volume, base / volume.name)
            except (VolumeError, ConfigError) as exc:
                raise VolumeError(f'volume "{volume.name}": {exc}') from None
            except OSError as exc:
                raise VolumeError(f'volume "{volume.name}": {exc}') from None
        return PreparedVolumes(paths)

    def _prepare_one(self, pod: pod_pb2.Pod, volume: pod_pb2.Volume, path: Path) -> Path:
        ns = pod.metadata.namespace
        if volume.HasField("host_path"):
            return self._host_path(volume.host_path)
        if volume.HasField("persistent_volume_claim"):
            return self._claim(ns, volume.persistent_volume_claim.claim_name)
        path.mkdir(parents=True, exist_ok=True)
        if volume.HasField("config_map"):
            src = volume.config_map
            cm = self.source.configmap(ns, src.name)
            if cm is None:
                if src.optional:
                    write_view(path, {})
                    return path
                raise ConfigError(f'configmap "{src.name}" not found')
            data = {k: v.encode() for k, v in cm.data.items()}
            data.update(dict(cm.binary_data))
            mode = _file_mode(src.default_mode) if src.HasField("default_mode") else 0o644
            write_view(path, _projected(data, list(src.items), mode, f"ConfigMap {ns}/{src.name}"))
            return path
        if volume.HasField("secret"):
            ssrc = volume.secret
            _mount_tmpfs(path, SECRET_TMPFS_BYTES, "0755")
            secret = self.source.secret(ns, ssrc.secret_name)
            if secret is None:
                if ssrc.optional:
                    write_view(path, {})
                    return path
                raise ConfigError(f'secret "{ssrc.secret_name}" not found')
            mode = _file_mode(ssrc.default_mode) if ssrc.HasField("default_mode") else 0o644
            write_view(path, _projected(dict(secret.data), list(ssrc.items), mode,
                                        f"Secret {ns}/{ssrc.secret_name}"))
            return path
        # emptyDir (also the default when no source is set)
        if volume.empty_dir.medium == "Memory":
            size = 0
            if volume.empty_dir.size_limit:
                try:
                    size = parse_quantity(volume.empty_dir.size_limit).int_value()
                except QuantityError as exc:
                    raise VolumeError(f"emptyDir.sizeLimit: {exc}") from None
            _mount_tmpfs(path, size, "0777")
        else:
            os.chmod(path, 0o777)
        return path

    @staticmethod
    def _host_path(source: pod_pb2.HostPathVolumeSource) -> Path:
        path = Path(source.path)
        kind = source.type
        if not path.is_absolute():
            raise VolumeError(f"hostPath.path {source.path!r} must be absolute")
        if kind == "DirectoryOrCreate":
            path.mkdir(parents=True, exist_ok=True, mode=0o755)
        elif kind == "FileOrCreate":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(exist_ok=True)
        checks = {
            "Directory": (Path.is_dir, "a directory"), "File": (Path.is_file, "a file"),
            "Socket": (Path.is_socket, "a socket"),
            "CharDevice": (Path.is_char_device, "a character device"),
            "BlockDevice": (Path.is_block_device, "a block device"),
        }
        if kind in checks:
            check, what = checks[kind]
            if not check(path):
                raise VolumeError(f"hostPath type check failed: {path} is not {what}")
        elif kind not in ("", "DirectoryOrCreate", "FileOrCreate"):
            raise VolumeError(f"hostPath.type {kind!r} is not supported")
        return path

    def _claim(self, namespace: str, claim: str) -> Path:
        pvc = self.source.pvc(namespace, claim)
        if pvc is None:
            raise VolumeError(f'persistentvolumeclaim "{claim}" not found')
        if not pvc.spec.volume_name:
            raise VolumeError(f'persistentvolumeclaim "{claim}" is not bound')
        pv = self.source.pv(pvc.spec.volume_name)
        if pv is None:
            raise VolumeError(f'persistentvolume "{pvc.spec.volume_name}" not found')
        path_text = pv.spec.local.path or pv.spec.host_path.path
        if not path_text:
            raise VolumeError(f'persistentvolume "{pv.metadata.name}" has no local or '
                              "hostPath directory")
        path = Path(path_text)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def cleanup(self, uid: str) -> None:
        """Unmount and remove the pod's volume directories (idempotent). hostPath and
        persistent volume contents are outside and stay."""
        root = self.pod_dir(uid)
        if not root.exists():
            return
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1].startswith(str(root) + "/")]
        for mount in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)

    def known_pod_uids(self) -> list[str]:
        pods = self.data_dir / "pods"
        return sorted(p.name for p in pods.iterdir()) if pods.exists() else []


def configmap_source_data(cm: core_pb2.ConfigMap) -> dict[str, bytes]:
    data = {k: v.encode() for k, v in cm.data.items()}
    data.update(dict(cm.binary_data))
    return data
