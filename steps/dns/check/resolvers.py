"""The resolvers a propagation check asks: the built-in public set, a resolvers file, the runbook's.

A resolvers file is TOML:

    [[resolver]]
    name = "Google"
    address = "8.8.8.8"
    port = 53            # optional
    filtering = false    # optional: true for resolvers that answer differently on purpose

The built-in addresses are the operators' published anycast resolvers (see the README): they
measure operators, not places. Add regional resolvers when geography matters.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cockpit.step_api import ProblemsError, load_checked


class Resolver(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    address: str
    port: int = Field(default=53, gt=0, lt=65536)
    filtering: bool = Field(default=False, description="answers differently on purpose: shown, never counted")

    @field_validator("address")
    @classmethod
    def _is_address(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address") from None

    @property
    def where(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return host if self.port == 53 else f"{host}:{self.port}"


BUILTIN: tuple[Resolver, ...] = tuple(
    Resolver(name=n, address=a, filtering=f)
    for n, a, f in (
        ("Google", "8.8.8.8", False),
        ("Google", "8.8.4.4", False),
        ("Cloudflare", "1.1.1.1", False),
        ("Cloudflare", "1.0.0.1", False),
        ("Quad9", "9.9.9.9", False),
        ("Quad9", "149.112.112.112", False),
        ("OpenDNS", "208.67.222.222", False),
        ("OpenDNS", "208.67.220.220", False),
        ("Comodo", "8.26.56.26", False),
        ("Comodo", "8.20.247.20", False),
        ("DNS.Watch", "84.200.69.80", False),
        ("DNS.Watch", "84.200.70.40", False),
        ("AdGuard", "94.140.14.14", True),
        ("CleanBrowsing", "185.228.168.9", True),
    )
)


class _ResolversFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    resolver: list[Resolver] = Field(min_length=1)


class ResolversFileError(ProblemsError):
    pass


def load_resolvers(path: Path) -> list[Resolver]:
    """Read a resolvers file; ResolversFileError lists every problem as file:line."""
    parsed, collect = load_checked(path, _ResolversFile, "resolvers file", ResolversFileError)
    seen: dict[tuple[str, int], int] = {}
    for index, resolver in enumerate(parsed.resolver):
        key = (resolver.address, resolver.port)
        if key in seen:
            collect.error(
                ("resolver", index, "address"), f"{resolver.where} is listed twice (also resolver {seen[key] + 1})"
            )
        seen[key] = index
    if collect.problems:
        raise ResolversFileError(collect.problems)
    return list(parsed.resolver)


def combine(*groups: list[Resolver] | tuple[Resolver, ...]) -> list[Resolver]:
    """The resolvers of every group, each address:port once (the first naming wins)."""
    out: dict[tuple[str, int], Resolver] = {}
    for group in groups:
        for resolver in group:
            out.setdefault((resolver.address, resolver.port), resolver)
    return list(out.values())
