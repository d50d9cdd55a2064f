"""`logs POD`, `exec POD -- COMMAND` and `port-forward POD [LOCAL:]PORT`: container
streams through the masters."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading

from raftkube.cli.kubectl.common import add_config_flag, add_namespace_flags, command, make_client
from raftkube.cli.kubectl.terminal import interactive_terminal, terminal_size


def register(subparsers: argparse._SubParsersAction) -> None:
    logs = subparsers.add_parser("logs", help="print a container's logs")
    logs.add_argument("pod")
    logs.add_argument("-c", "--container", default="", help="the container (if several)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep streaming new output")
    logs.add_argument("--tail", type=int, default=0, help="only the last N lines")
    logs.add_argument("-p", "--previous", action="store_true",
                      help="the previous instance of the container (after a restart)")
    logs.add_argument("--timestamps", action="store_true", help="prefix lines with times")
    add_namespace_flags(logs, all_namespaces=False)
    add_config_flag(logs)
    logs.set_defaults(func=_logs)

    execute = subparsers.add_parser("exec", help="run a command in a container")
    _exec_options(execute)
    execute.add_argument("pod")
    execute.add_argument("command", nargs=argparse.REMAINDER,
                         help="[options] -- COMMAND [ARGS...]")
    execute.set_defaults(func=_exec)
    register_port_forward(subparsers)


def _exec_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("-c", "--container", default="")
    parser.add_argument("-i", "--stdin", action="store_true", help="pass stdin to the command")
    parser.add_argument("-t", "--tty", action="store_true",
                        help="allocate a terminal (with -i on a terminal: interactive, raw "
                        "mode, size followed)")
    add_namespace_flags(parser, all_namespaces=False)
    add_config_flag(parser)
    return parser


def split_exec_arguments(args: argparse.Namespace) -> list[str]:
    """The command of `exec POD [options] -- COMMAND`: options given after the pod name
    (before `--`) are parsed into `args`; what follows `--` is the command."""
    rest = list(args.command)
    if "--" not in rest:
        return rest
    cut = rest.index("--")
    options, command_line = rest[:cut], rest[cut + 1:]
    if options:
        _exec_options(argparse.ArgumentParser(prog="raftkubectl exec")).parse_args(
            options, namespace=args)
    return command_line


@command
def _logs(args: argparse.Namespace) -> int:
    out = sys.stdout.buffer
    with make_client(args) as client:
        for chunk in client.pod_logs(args.pod, args.namespace or None,
                                     container=args.container, follow=args.follow,
                                     tail_lines=args.tail, previous=args.previous,
                                     timestamps=args.timestamps):
            out.write(chunk)
            out.flush()
    return 0


@command
def _exec(args: argparse.Namespace) -> int:
    command_line = split_exec_arguments(args)
    if not command_line:
        print("error: exec needs a command: raftkubectl exec POD -- COMMAND", file=sys.stderr)
        return 2
    tty = args.tty
    interactive = tty and args.stdin and sys.stdin.isatty()
    if tty and args.stdin and not interactive:
        print("Unable to use a TTY - input is not a terminal", file=sys.stderr)
        tty = False
    stdin_fd = sys.stdin.fileno() if interactive else -1
    with make_client(args) as client:
        session = client.pod_exec(args.pod, command_line, args.namespace or None,
                                  container=args.container, tty=tty, stdin=args.stdin,
                                  terminal_size=terminal_size(stdin_fd) if interactive
                                  else None)
        with (interactive_terminal(stdin_fd, session.resize) if interactive
              else contextlib.nullcontext()):
            if args.stdin:
                def pump() -> None:
                    # os.read, not sys.stdin: a daemon thread blocked inside a buffered
                    # reader aborts the interpreter at exit.
                    fd = sys.stdin.fileno()
                    for data in iter(lambda: os.read(fd, 65536), b""):
                        session.send(data)
                    session.close_stdin()

                threading.Thread(target=pump, daemon=True).start()
            for stream, data in session.output():
                target = sys.stderr.buffer if stream == "stderr" else sys.stdout.buffer
                target.write(data)
                target.flush()
    return session.exit_code if session.exit_code is not None else 1


def register_port_forward(subparsers: argparse._SubParsersAction) -> None:
    forward = subparsers.add_parser("port-forward",
                                    help="forward a local port to a port of a pod")
    forward.add_argument("pod")
    forward.add_argument("ports", help="[LOCAL_PORT:]POD_PORT")
    forward.add_argument("--address", default="127.0.0.1", help="local address to listen on")
    forward.add_argument("--max-connections", type=int, default=0,
                         help="stop after this many connections (0: until interrupted)")
    add_namespace_flags(forward, all_namespaces=False)
    add_config_flag(forward)
    forward.set_defaults(func=_port_forward)


@command
def _port_forward(args: argparse.Namespace) -> int:
    import socket

    local, _, remote = args.ports.rpartition(":")
    try:
        pod_port = int(remote)
        local_port = int(local) if local else pod_port
    except ValueError:
        print(f"error: ports: {args.ports!r} is not [LOCAL_PORT:]POD_PORT", file=sys.stderr)
        return 2
    listener = socket.create_server((args.address, local_port))
    bound = listener.getsockname()[1]
    print(f"Forwarding from {args.address}:{bound} -> {pod_port}", flush=True)
    relays: list[threading.Thread] = []
    with make_client(args) as client, listener:
        while not args.max_connections or len(relays) < args.max_connections:
            conn, _ = listener.accept()
            stream = client.pod_port_forward(args.pod, pod_port, args.namespace or None)
            relay = threading.Thread(target=_relay, args=(conn, stream), daemon=True)
            relay.start()
            relays.append(relay)
        for relay in relays:  # the client's channels must outlive the open connections
            relay.join()
    return 0


def _relay(conn, stream) -> None:
    """Copy bytes between a local connection and a port-forward stream until both close."""
    def local_to_pod() -> None:
        try:
            while data := conn.recv(65536):
                stream.send(data)
        except OSError:
            pass
        finally:
            stream.close_write()

    threading.Thread(target=local_to_pod, daemon=True).start()
    try:
        for data in stream.received():
            conn.sendall(data)
    except Exception as e:  # the pod refused or the stream broke: close the local side
        print(f"error: port-forward: {e}", file=sys.stderr)
    finally:
        conn.close()
