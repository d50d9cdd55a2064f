"""A tiny key-value register server for testing the chaos tooling against real processes.

    python kv_server.py HOST PORT [STATE_FILE]

One JSON request per TCP connection: {"f": "get"|"put"|"cas", "key": k, "value": v,
"expected": e, "new": n}; one JSON reply line: {"ok": true, "value": ...}. With STATE_FILE
every write is written to a temporary file, fsynced and renamed before the reply (durable);
without it the state lives in memory only and a kill -9 loses everything (a deliberately
broken store the checker must catch). Prints "ready" once listening.
"""

from __future__ import annotations

import json
import os
import socketserver
import sys
import threading
from pathlib import Path
from typing import Any


class RegisterState:
    """The registers, guarded by one lock; persisted when a path is given."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.data: dict[str, Any] = {}
        if path is not None and path.exists():
            self.data = json.loads(path.read_text())

    def apply(self, request: dict[str, Any]) -> Any:
        with self.lock:
            f, key = request["f"], request["key"]
            if f == "get":
                return self.data.get(key)
            if f == "put":
                self.data[key] = request["value"]
                self._persist()
                return None
            if f == "cas":
                if self.data.get(key) != request["expected"]:
                    return False
                self.data[key] = request["new"]
                self._persist()
                return True
            raise ValueError(f"unknown operation {f!r}")

    def _persist(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as out:
            json.dump(self.data, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    state = RegisterState(Path(sys.argv[3]) if len(sys.argv) > 3 else None)

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            line = self.rfile.readline()
            try:
                reply = {"ok": True, "value": state.apply(json.loads(line))}
            except (ValueError, KeyError) as exc:
                reply = {"ok": False, "error": str(exc)}
            self.wfile.write(json.dumps(reply).encode() + b"\n")

    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True

    with Server((host, port), Handler) as server:
        print("ready", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
