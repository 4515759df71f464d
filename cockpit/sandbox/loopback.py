"""The sandbox's servers on 127.0.0.1: the stand-ins' HTTP servers, and a free TCP port for
servers that must be told one (PostgreSQL, the mail server)."""

from __future__ import annotations

import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def loopback_server(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A server whose listening socket never blocks.

    serve_forever() accepts once select() says a connection waits; a client that resets before
    that accept takes its connection out of the queue, and a blocking accept() then waits for
    the next client, so shutdown() never returns (a test run hung there). Without blocking, that
    accept fails at once and the loop goes on. Accepted connections still block, as usual.
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket.setblocking(False)
    return server


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
