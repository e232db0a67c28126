"""A local HTTP server on 127.0.0.1 that stands in for ntfy and a healthchecks.io endpoint."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Sink:
    """What was posted to it: (path, headers, body), in order."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                sink.requests.append((self.path, dict(self.headers), self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"id": "1"}')

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def messages(self) -> list[dict[str, object]]:
        """The ntfy messages (apprise posts them as JSON to /)."""
        return [json.loads(body) | {"headers": h} for path, h, body in self.requests if path == "/"]

    def pings(self) -> list[tuple[str, bytes]]:
        return [(path, body) for path, _h, body in self.requests if path.startswith("/ping/")]

    def clear(self) -> None:
        self.requests.clear()
