"""Fails any connection a test makes outside loopback.

Installed as an audit hook in the test process (conftest.py) and, through
`guard/sitecustomize.py`, in every Python subprocess the tests start: an accidental call to a
real Convex, Google or mail host fails the test instead of leaving the machine.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from typing import Any

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


class NetworkGuardError(RuntimeError):
    pass


def is_loopback(host: Any) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    host = str(host).strip("[]").split("%")[0]
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect":
        sock, address = args[0], args[1]
        inet = getattr(sock, "family", None) in (socket.AF_INET, socket.AF_INET6)
        if inet and isinstance(address, tuple) and not is_loopback(address[0]):
            raise NetworkGuardError(f"test tried to connect to {address[0]}:{address[1]}, outside loopback")
    elif event == "socket.getaddrinfo":
        host, port = args[0], args[1]
        if not is_loopback(host):
            raise NetworkGuardError(f"test tried to resolve {host!r} (port {port}), outside loopback")
    elif event == "socket.sendto":
        sock, address = args[0], args[1]
        if isinstance(address, tuple) and not is_loopback(address[0]):
            raise NetworkGuardError(f"test tried to send to {address[0]}:{address[1]}, outside loopback")


_installed = False


def install() -> None:
    global _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True
