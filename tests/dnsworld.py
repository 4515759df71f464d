"""The DNS servers the DNS tests share: Knot for example.test, and resolvers in front of it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cockpit.sandbox.dns.servers import Dnsmasq, KnotServer, Record
from steps.dns.check.resolvers import Resolver

ZONE = "example.test"
NAME = "app.example.test"
OLD, NEW = "192.0.2.1", "198.51.100.7"
BIG_TXT = " ".join(f"token-{i:04d}-{'x' * 40}" for i in range(40))  # about 2 KB: over UDP's 1232


def start_knot(ttl: int = 2) -> KnotServer:
    return KnotServer(
        ZONE,
        [
            Record("app", "A", OLD, ttl=ttl),
            Record("www", "CNAME", "app", ttl=ttl),
            Record("big", "TXT", " ".join(f'"{part}"' for part in BIG_TXT.split(" ")), ttl=60),
        ],
    ).start()


def resolver(name: str, server: Any, filtering: bool = False) -> Resolver:
    return Resolver(name=name, address=server.address, port=server.port, filtering=filtering)


def resolvers_file(folder: Path, resolvers: Iterable[Resolver]) -> Path:
    path = folder / "resolvers.toml"
    path.write_text(
        "".join(
            f'[[resolver]]\nname = "{r.name}"\naddress = "{r.address}"\nport = {r.port}\n'
            f"filtering = {str(r.filtering).lower()}\n"
            for r in resolvers
        )
    )
    return path


def forwarding(address: str, knot: KnotServer, max_cache_ttl: int | None = None) -> Dnsmasq:
    return Dnsmasq(address, zone=ZONE, upstream=knot.where, max_cache_ttl=max_cache_ttl).start()


def fixed(address: str, value: str) -> Dnsmasq:
    return Dnsmasq(address, fixed={NAME: value}).start()
