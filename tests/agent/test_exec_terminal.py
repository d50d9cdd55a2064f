"""`raftkubectl exec -it` on a real terminal (a pseudo-terminal this test owns): through the
masters to a Podman container, in raw mode, following the terminal's size, passing Ctrl-C
to the remote shell, ending with the remote exit code and the terminal restored."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from raftkube.testing.agent_harness import REPO_ROOT, AgentHarness, condition, container

pytestmark = [pytest.mark.podman, pytest.mark.timeout(300)]


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


_CURSOR_QUERY = b"\x1b[6n"  # busybox's line editor asks where the cursor is


def read_until(fd: int, wanted: bytes, seen: bytearray, timeout: float = 30.0,
               times: int = 1) -> None:
    """Read the terminal's output into `seen` until `wanted` showed `times` times,
    answering cursor position queries as a terminal would."""
    deadline = time.monotonic() + timeout
    while seen.count(wanted) < times:
        left = deadline - time.monotonic()
        assert left > 0, f"{wanted!r} never came; got {bytes(seen)[-500:]!r}"
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the other side closed
                raise AssertionError(f"closed before {wanted!r}; got {bytes(seen)!r}"
                                     ) from None
            seen += chunk
            for _ in range(chunk.count(_CURSOR_QUERY)):
                os.write(fd, b"\x1b[1;5R")


def test_interactive_exec_follows_the_terminal(harness: AgentHarness) -> None:
    if "w1" not in harness.agents:
        harness.start_agent("w1", node_agent=harness.serving_config("w1"))
    ns = harness.namespace()
    pod = harness.pod("shell", ns, containers=[container(
        "sh", ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"])])
    pod.spec.termination_grace_period_seconds = 1
    harness.wait_pod(harness.create(pod), lambda p: condition(p, "Ready") == "True",
                     what="Ready")
    main_fd, side_fd = pty.openpty()
    set_size(side_fd, 30, 90)
    cooked = termios.tcgetattr(side_fd)
    # setsid -c: a new session whose controlling terminal is the pty (so SIGWINCH reaches
    # raftkubectl); no preexec_fn, which is unsafe in a process running gRPC threads.
    process = subprocess.Popen(
        ["setsid", "-c", sys.executable, "-m", "raftkube.cli.raftkubectl_main", "exec",
         "-it", "shell", "-n", ns, "--config", str(harness.cluster.layout.admin_config), "--",
         "sh"], stdin=side_fd, stdout=side_fd, stderr=side_fd, cwd=REPO_ROOT)
    seen = bytearray()
    prompts = 0

    def type_at_prompt(line: bytes) -> None:
        """Wait for the shell's next prompt (its cursor query ends it), then type until the
        shell echoes the line: busybox drops what arrives in the same read as the answer
        to its query, which a loaded machine can make happen."""
        nonlocal prompts
        prompts += 1
        read_until(main_fd, _CURSOR_QUERY, seen, times=prompts)
        echo = line.rstrip(b"\r")
        echoes = seen.count(echo)
        for _attempt in range(3):
            time.sleep(0.5)
            os.write(main_fd, line)
            try:
                read_until(main_fd, echo, seen, timeout=5, times=echoes + 1)
                return
            except AssertionError:
                continue
        raise AssertionError(f"the shell never echoed {echo!r}: {bytes(seen)[-500:]!r}")

    try:
        type_at_prompt(b"stty size\r")
        read_until(main_fd, b"30 90", seen)
        assert termios.tcgetattr(side_fd)[3] & termios.ECHO == 0, "local terminal is raw"
        set_size(side_fd, 41, 123)  # the kernel sends SIGWINCH to raftkubectl
        time.sleep(1.0)
        type_at_prompt(b"stty size\r")
        read_until(main_fd, b"41 123", seen)
        type_at_prompt(b"sleep 30\r")
        time.sleep(1.0)
        os.write(main_fd, b"\x03")  # Ctrl-C: interrupts the remote sleep, not raftkubectl
        type_at_prompt(b"echo still-$((40+2))\r")
        read_until(main_fd, b"still-42", seen, timeout=20)
        assert process.poll() is None
        type_at_prompt(b"exit 3\r")
        assert process.wait(30) == 3
        assert termios.tcgetattr(side_fd) == cooked, "terminal settings restored"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        os.close(main_fd)
        os.close(side_fd)
        harness.admin.pods.delete("shell", ns)
