"""`top node [NAME]` and `top pod [NAME]`: CPU and memory in use, as kubectl prints them.

    NAME  CPU(cores)  CPU%  MEMORY(bytes)  MEMORY%        (nodes; % of allocatable)
    NAME  CPU(cores)  MEMORY(bytes)                       (pods; --containers: per container)

Figures come from the agents' samples (raftkube/client/usage.py); reading them needs the
right to `get nodes/stats`.
"""

from __future__ import annotations

import argparse
import sys

from raftkube.cli.kubectl.common import (
    add_config_flag,
    add_namespace_flags,
    command,
    make_client,
)
from raftkube.cli.kubectl.printers import align
from raftkube.client.usage import NodeTop, PodTop, top_nodes, top_pods

_MI = 1024 * 1024


def register(subparsers: argparse._SubParsersAction) -> None:
    top = subparsers.add_parser("top", help="CPU and memory in use by nodes or pods")
    kinds = top.add_subparsers(dest="top_kind", metavar="KIND", required=True)
    for name, aliases in (("node", ["nodes", "no"]), ("pod", ["pods", "po"])):
        parser = kinds.add_parser(name, aliases=aliases, help=f"usage of {name}s")
        parser.add_argument("name", nargs="?", default="")
        parser.add_argument("-l", "--selector", default="", help="label selector")
        parser.add_argument("--no-headers", action="store_true")
        parser.add_argument("--sort-by", choices=("cpu", "memory"), default=None)
        add_config_flag(parser)
        if name == "pod":
            add_namespace_flags(parser)
            parser.add_argument("--containers", action="store_true",
                                help="one line per container")
            parser.set_defaults(func=_top_pods)
        else:
            parser.set_defaults(func=_top_nodes)


def cpu_text(millicores: int) -> str:
    return f"{millicores}m"


def memory_text(size: int) -> str:
    return f"{size // _MI}Mi"


def _percent(used: int, total: int) -> str:
    return f"{used * 100 // total}%" if total else "<unknown>"


def node_rows(nodes: list[NodeTop]) -> list[list[str]]:
    """The rows of `top node`, header first; a node without figures shows <unknown>."""
    rows = [["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"]]
    for n in nodes:
        if n.error:
            rows.append([n.name] + ["<unknown>"] * 4)
        else:
            rows.append([n.name, cpu_text(n.cpu_millicores),
                         _percent(n.cpu_millicores, n.cpu_allocatable_millicores),
                         memory_text(n.memory_bytes),
                         _percent(n.memory_bytes, n.memory_allocatable_bytes)])
    return rows


def pod_rows(pods: list[PodTop], all_namespaces: bool, containers: bool) -> list[list[str]]:
    """The rows of `top pod`, header first."""
    head = ["NAMESPACE"] if all_namespaces else []
    if containers:
        rows = [[*head, "POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]]
        for p in pods:
            for c in p.containers:
                rows.append(([p.namespace] if all_namespaces else [])
                            + [p.name, c.name, cpu_text(c.cpu_millicores),
                               memory_text(c.memory_bytes)])
        return rows
    rows = [[*head, "NAME", "CPU(cores)", "MEMORY(bytes)"]]
    for p in pods:
        rows.append(([p.namespace] if all_namespaces else [])
                    + [p.name, cpu_text(p.cpu_millicores), memory_text(p.memory_bytes)])
    return rows


def _sorted(items: list, sort_by: str | None) -> list:
    if sort_by == "cpu":
        return sorted(items, key=lambda i: -i.cpu_millicores)
    if sort_by == "memory":
        return sorted(items, key=lambda i: -i.memory_bytes)
    return items


def _print(rows: list[list[str]], no_headers: bool) -> None:
    sys.stdout.write(align(rows[1:] if no_headers else rows))


@command
def _top_nodes(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        nodes = top_nodes(client, [args.name] if args.name else (), args.selector)
    if not nodes:
        print("No resources found", file=sys.stderr)
        return 0
    _print(node_rows(_sorted(nodes, args.sort_by)), args.no_headers)
    for n in nodes:
        if n.error:
            print(f"error: node {n.name}: {n.error}", file=sys.stderr)
    return 1 if all(n.error for n in nodes) else 0


@command
def _top_pods(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        report = top_pods(client, args.namespace or None, args.name, args.selector,
                          all_namespaces=args.all_namespaces)
    for node, reason in sorted(report.unavailable.items()):
        print(f"warning: no figures from node {node}: {reason}", file=sys.stderr)
    pods = report.pods
    if not pods:
        namespace = args.namespace or "default"
        what = (f"pod {namespace}/{args.name}" if args.name else "pods in any namespace"
                if args.all_namespaces else f'pods in namespace "{namespace}"')
        print(f"error: metrics not available yet for {what} (usage is sampled every few "
              "seconds; a running container needs two samples)", file=sys.stderr)
        return 1
    _print(pod_rows(_sorted(pods, args.sort_by), args.all_namespaces, args.containers),
           args.no_headers)
    return 0
