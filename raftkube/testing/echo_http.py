"""A tiny HTTP/1.1 "pod" for data-path tests: answers who it is and who called.

Run: `python -m raftkube.testing.echo_http --bind IP --port N --name NAME`.
Prints `ready` on stdout once listening. Every GET/POST answers 200 with a JSON body:
`{"pod": NAME, "peer": CLIENT_IP, "path": PATH, "headers": {...}, "body_len": N}`.
POST bodies (Content-Length or chunked) are read fully; their length is echoed.
Keep-alive is supported.
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_handler(name: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # head and body are separate writes

        def _answer(self, body_len: int) -> None:
            payload = json.dumps({
                "pod": name, "peer": self.client_address[0],
                "peer_port": self.client_address[1], "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body_len": body_len,
            }).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._answer(0)

        def do_POST(self) -> None:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                total = 0
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    total += len(self.rfile.read(size))
                    self.rfile.readline()
                self._answer(total)
                return
            length = int(self.headers.get("Content-Length", "0"))
            remaining, total = length, 0
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                total += len(chunk)
                remaining -= len(chunk)
            self._answer(total)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bind", default="0.0.0.0")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.bind, args.port), make_handler(args.name))
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
