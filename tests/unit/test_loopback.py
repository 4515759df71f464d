"""The stand-ins' HTTP servers: an accept with no client waiting must not block, or shutdown()
hangs after a client resets before its connection is accepted."""

from __future__ import annotations

import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler

import httpx

from cockpit.sandbox.loopback import loopback_server


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args: object) -> None:
        pass


def test_an_accept_with_no_client_waiting_returns_at_once() -> None:
    server = loopback_server(_Hello)
    try:
        # What serve_forever does when select() said a client waited and it reset meanwhile.
        accepting = threading.Thread(target=server._handle_request_noblock, daemon=True)
        accepting.start()
        accepting.join(2.0)
        assert not accepting.is_alive(), "accept() blocked with no client waiting"
    finally:
        server.server_close()


def test_a_client_that_resets_leaves_the_server_serving_and_able_to_stop() -> None:
    server = loopback_server(_Hello)
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    serving.start()
    try:
        host, port = server.server_address[:2]
        for _ in range(20):
            rude = socket.create_connection((str(host), port))
            rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            rude.close()  # a reset, perhaps before the accept
        assert httpx.get(f"http://{host!s}:{port}/").text == "hello"
    finally:
        stopping = threading.Thread(target=server.shutdown, daemon=True)
        stopping.start()
        stopping.join(5.0)
        assert not stopping.is_alive(), "shutdown() hung"
        server.server_close()
