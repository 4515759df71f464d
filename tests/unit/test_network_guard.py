"""The guard itself must fail a connection outside loopback, and let loopback through."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from conftest import subprocess_env
from netguard import NetworkGuardError


def test_connecting_outside_loopback_fails_the_test() -> None:
    with pytest.raises(NetworkGuardError, match="outside loopback"):
        socket.create_connection(("192.0.2.1", 443), timeout=0.1)


def test_resolving_a_public_name_fails_the_test() -> None:
    with pytest.raises(NetworkGuardError, match="convex.cloud"):
        socket.getaddrinfo("happy-otter-123.convex.cloud", 443)


def test_loopback_is_allowed() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=1):
            pass


def test_subprocesses_of_the_tests_are_guarded_too() -> None:
    code = "import socket; socket.create_connection(('198.51.100.7', 80), timeout=0.1)"
    result = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True)
    assert result.returncode != 0
    assert "outside loopback" in result.stderr
