"""`image`: build, load, save and list images in a node's local store (no registry)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from raftkube.workers.images import (
    BUSYBOX_IMAGE,
    DEFAULT_BUSYBOX_BINARY,
    ImageError,
    PodmanCli,
    build_busybox_image,
    load_image,
    save_image,
)
from raftkube.workers.podman_setup import HostStoreConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("image", help="local images (build, load, save)")
    commands = parser.add_subparsers(dest="image_command", metavar="SUBCOMMAND")
    parser.set_defaults(func=lambda _args: _help(parser))

    build = commands.add_parser("build-busybox",
                                help=f"build {BUSYBOX_IMAGE} from busybox-static")
    build.add_argument("--tag", default=BUSYBOX_IMAGE, help="image name to create")
    build.add_argument("--busybox", type=Path, default=DEFAULT_BUSYBOX_BINARY,
                       help="static busybox binary")
    build.add_argument("--force", action="store_true", help="rebuild even if up to date")
    _store_option(build)
    build.set_defaults(func=_build_busybox)

    load = commands.add_parser("load", help="import an image archive into the store")
    load.add_argument("file", type=Path, help="archive written by `raftkube image save`")
    _store_option(load)
    load.set_defaults(func=_load)

    save = commands.add_parser("save", help="write an image to an archive")
    save.add_argument("image", help="image name, e.g. localhost/busybox:latest")
    save.add_argument("-o", "--output", type=Path, required=True, help="archive to write")
    _store_option(save)
    save.set_defaults(func=_save)


def _store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", type=Path, default=None, metavar="HOST_DIR",
                        help="per-host store written by `raftkube worker setup --host-dir` "
                             "(default: the machine's store)")


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _cli(args: argparse.Namespace) -> PodmanCli:
    if args.store is None:
        return PodmanCli()
    store = HostStoreConfig(args.store)
    if not store.containers_conf.is_file() or not store.storage_conf.is_file():
        raise ImageError(f"--store {args.store}: no containers.conf/storage.conf there "
                         "(run `raftkube worker setup --host-dir` first)")
    return PodmanCli(store)


def _build_busybox(args: argparse.Namespace) -> int:
    try:
        built = build_busybox_image(_cli(args), args.tag, args.busybox, force=args.force)
    except ImageError as exc:
        print(f"raftkube image build-busybox: {exc}", file=sys.stderr)
        return 1
    print(f"{args.tag}: {'built' if built else 'up to date'}")
    return 0


def _load(args: argparse.Namespace) -> int:
    try:
        names = load_image(_cli(args), args.file)
    except ImageError as exc:
        print(f"raftkube image load: {exc}", file=sys.stderr)
        return 1
    print("loaded: " + (", ".join(names) or "(no names)"))
    return 0


def _save(args: argparse.Namespace) -> int:
    try:
        save_image(_cli(args), args.image, args.output)
    except ImageError as exc:
        print(f"raftkube image save: {exc}", file=sys.stderr)
        return 1
    print(f"{args.image} -> {args.output}")
    return 0
