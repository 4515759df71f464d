"""A TCP proxy on loopback that limits bandwidth: a slow link to a real server, for tests that
must catch a long transfer in the middle."""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class ThrottledProxy:
    def __init__(self, target_port: int, bytes_per_second: int) -> None:
        self._target = ("127.0.0.1", target_port)
        self._rate = bytes_per_second
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, slow: bool) -> None:
        chunk = 16384
        with contextlib.suppress(OSError):
            while data := source.recv(chunk):
                sink.sendall(data)
                if slow:  # only what the server sends is slowed: the export's direction
                    time.sleep(len(data) / self._rate)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
