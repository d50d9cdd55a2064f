"""`worker setup`: install and configure Podman on this machine (idempotent)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from raftkube.workers.images import BUSYBOX_IMAGE, ImageError, PodmanCli, build_busybox_image
from raftkube.workers.podman_setup import (
    SYSTEM_CONTAINERS_CONF,
    HostStoreConfig,
    SetupError,
    install_packages,
    missing_packages,
    write_host_configs,
    write_system_config,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("worker", help="worker node commands")
    parser.add_argument("--config", type=Path, default=None,
                        help="run the worker (agent) with this config file (YAML)")
    commands = parser.add_subparsers(dest="worker_command", metavar="SUBCOMMAND")
    parser.set_defaults(func=lambda args: _run_worker(args) if args.config else _help(parser))

    setup = commands.add_parser(
        "setup", help="install Podman, runc, busybox-static and write containers.conf")
    setup.add_argument("--no-install", action="store_true",
                       help="do not apt-get install missing packages (fail instead)")
    setup.add_argument("--system-config", type=Path, default=SYSTEM_CONTAINERS_CONF,
                       help="machine-wide containers.conf to write")
    setup.add_argument("--host-dir", type=Path, default=None,
                       help="write a per-host store (configs, storage, run, networks) here "
                            "instead of the machine-wide config")
    setup.add_argument("--default-subnet", default="",
                       help="with --host-dir: subnet of that host's default network")
    setup.add_argument("--build-busybox", action="store_true",
                       help=f"also build {BUSYBOX_IMAGE} into the configured store")
    setup.set_defaults(func=_setup)


def _run_worker(args: argparse.Namespace) -> int:
    from raftkube.cli.cmd_worker import run_from_file

    return run_from_file(args.config)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _setup(args: argparse.Namespace) -> int:
    try:
        missing = missing_packages()
        if missing and args.no_install:
            raise SetupError(f"missing packages: {', '.join(missing)} (--no-install given)")
        install_packages(missing)
        store = None
        if args.host_dir is not None:
            store = HostStoreConfig(args.host_dir.resolve(), default_subnet=args.default_subnet)
            changed = [str(p) for p in write_host_configs(store)]
        else:
            changed = [str(args.system_config)] if write_system_config(
                args.system_config) else []
        if args.build_busybox:
            build_busybox_image(PodmanCli(store))
    except (SetupError, ImageError, OSError) as exc:
        print(f"raftkube worker setup: {exc}", file=sys.stderr)
        return 1
    if missing:
        print(f"installed: {', '.join(missing)}")
    print("changed: " + ", ".join(changed) if changed else "configuration up to date")
    return 0
