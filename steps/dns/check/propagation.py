"""A propagation check: every resolver and authoritative server asked at once, each put in a
state, and a requirement that says when the world sees the change.

Used by the `dns.propagation` step (which checks on an interval) and by `cockpit dns check`.
Counting rules, so that a number on screen means one thing:
- filtering resolvers (they answer differently on purpose) are shown, never counted;
- resolvers that did not answer (SERVFAIL, REFUSED, timeout, error) are shown, not counted
  either way, but at least half of the non-filtering resolvers must answer for the
  requirement to hold;
- the propagated fraction is new / counted.
The ETA is the time the authoritative servers changed plus the old record's TTL: no resolver
may keep the old answer longer than that (serve-stale aside).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdata
import dns.rdatatype
import dns.resolver
from pydantic import BaseModel, ConfigDict, Field

from steps.dns.check.probe import Answer, State, ask, ask_authoritative, serial_newer, zone_of
from steps.dns.check.records import show, wire_type
from steps.dns.check.resolvers import Resolver

HISTORY = 20  # state changes kept per server


class Requirement(BaseModel):
    """When a propagation check holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    authoritative: Literal["all", "any", "none"] = Field(
        default="all", description="how many authoritative servers must answer the new value"
    )
    resolvers: float = Field(
        default=0.9, ge=0.0, le=1.0, description="the fraction of counted resolvers that must answer the new value"
    )


class DiscoveryError(RuntimeError):
    """The zone's authoritative servers could not be found."""


@dataclass
class ServerStatus:
    server: Resolver
    authoritative: bool = False
    state: State | None = None
    answer: Answer | None = None
    history: list[tuple[float, State]] = field(default_factory=list)

    def record(self, state: State, answer: Answer) -> None:
        if self.state != state:
            self.history.append((answer.at, state))
            del self.history[:-HISTORY]
        self.state, self.answer = state, answer

    @property
    def expires_at(self) -> float | None:
        """When this server's cached old answer runs out."""
        if self.state is State.OLD and self.answer is not None and self.answer.ttl is not None:
            return self.answer.at + self.answer.ttl
        return None

    def to_json(self) -> dict[str, Any]:
        answer = self.answer
        return {
            "name": self.server.name,
            "address": self.server.address,
            "port": self.server.port,
            "filtering": self.server.filtering,
            "state": self.state.value if self.state else None,
            "answer": sorted(show(v) for v in answer.values) if answer else [],
            "ttl": answer.ttl if answer else None,
            "serial": answer.serial if answer else None,
            "ms": round(answer.ms, 1) if answer else None,
            "tcp": answer.tcp if answer else False,
            "detail": answer.detail if answer else "",
            "checked": _iso(answer.at) if answer else None,
            "history": [{"at": _iso(at), "state": state.value} for at, state in self.history],
        }


@dataclass(frozen=True)
class Summary:
    held: bool
    new: int  # counted resolvers answering the new value
    counted: int
    eligible: int  # resolvers that are not filtering
    fraction: float
    authoritative_new: int
    authoritative: int
    serials: tuple[int | None, ...]
    changed_at: float | None
    old_ttl: int | None
    eta: float | None
    reason: str  # why it does not hold yet ("" when it holds)

    @property
    def serials_agree(self) -> bool:
        known = {s for s in self.serials if s is not None}
        return len(known) <= 1 and None not in self.serials

    def line(self) -> str:
        parts = [f"{self.new} of {self.counted} resolvers new ({self.fraction:.0%})"]
        if self.eligible > self.counted:
            parts[0] += f", {self.eligible - self.counted} not answering"
        if self.authoritative:
            serials = sorted({s for s in self.serials if s is not None})
            parts.append(
                f"authoritative {self.authoritative_new}/{self.authoritative} new, serial "
                + ("/".join(map(str, serials)) if serials else "?")
                + ("" if self.serials_agree else " (differ)")
            )
        if self.eta is not None and not self.held:
            parts.append("ETA " + datetime.fromtimestamp(self.eta, UTC).astimezone().strftime("%H:%M:%S"))
        return " · ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "held": self.held,
            "new": self.new,
            "counted": self.counted,
            "eligible": self.eligible,
            "fraction": round(self.fraction, 4),
            "authoritative_new": self.authoritative_new,
            "authoritative": self.authoritative,
            "serials": list(self.serials),
            "serials_agree": self.serials_agree,
            "changed_at": _iso(self.changed_at),
            "old_ttl": self.old_ttl,
            "eta": _iso(self.eta),
            "reason": self.reason,
        }


def _iso(at: float | None) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


class Propagation:
    """The state of one name across a set of servers, updated by `check()`."""

    def __init__(
        self,
        name: str,
        kind: str,
        expect: frozenset[dns.rdata.Rdata],
        *,
        old: frozenset[dns.rdata.Rdata] | None = None,
        resolvers: Sequence[Resolver] = (),
        authoritative: Sequence[Resolver] = (),
        zone: str | None = None,
        require: Requirement | None = None,
        query_timeout: float = 2.0,
        old_ttl: int | None = None,
        changed_at: float | None = None,
    ) -> None:
        self.name, self.kind = name, kind
        self.qname = dns.name.from_text(name)
        self.rdtype = wire_type(kind)
        self.expect, self.old = expect, old or None
        self.require = require or Requirement()
        self.query_timeout = query_timeout
        self.zone = dns.name.from_text(zone) if zone else None
        self.old_ttl = old_ttl
        self.changed_at = changed_at
        self.resolvers = [ServerStatus(r) for r in resolvers]
        self.authoritative = [ServerStatus(a, authoritative=True) for a in authoritative]
        self.rounds = 0

    def judge(self, answer: Answer) -> State:
        if answer.rcode == "NOERROR":
            if answer.values and answer.values == self.expect:
                return State.NEW
            if self.old and answer.values == self.old:
                return State.OLD
            return State.OTHER
        return {
            "NXDOMAIN": State.NXDOMAIN,
            "SERVFAIL": State.SERVFAIL,
            "REFUSED": State.REFUSED,
            "TIMEOUT": State.TIMEOUT,
        }.get(answer.rcode, State.ERROR)

    async def _round(self) -> tuple[list[Answer], list[Answer]]:
        if self.authoritative and self.zone is None:
            self.zone = await zone_of(self.authoritative[0].server, self.qname, self.query_timeout)
        resolver_answers = [ask(s.server, self.qname, self.rdtype, self.query_timeout) for s in self.resolvers]
        authoritative_answers = [
            ask_authoritative(s.server, self.qname, self.rdtype, self.zone, self.query_timeout)
            for s in self.authoritative
        ]
        answers = await asyncio.gather(*resolver_answers, *authoritative_answers)
        return list(answers[: len(self.resolvers)]), list(answers[len(self.resolvers) :])

    def check(self) -> Summary:
        """One round: every server asked once, concurrently; then the summary."""
        resolver_answers, authoritative_answers = asyncio.run(self._round())
        for status, answer in zip(self.resolvers, resolver_answers, strict=True):
            status.record(self.judge(answer), answer)
        before = self._authoritative_changed()
        for status, answer in zip(self.authoritative, authoritative_answers, strict=True):
            state = self.judge(answer)
            if state is State.OLD and answer.ttl is not None:
                # The authoritative TTL of the old record is the longest any cache may keep it.
                self.old_ttl = max(self.old_ttl or 0, answer.ttl)
            status.record(state, answer)
        if self.changed_at is None and not before and self._authoritative_changed():
            self.changed_at = min((s.answer.at for s in self.authoritative if s.answer), default=time.time())
        self.rounds += 1
        return self.summary()

    def _authoritative_changed(self) -> bool:
        if not self.authoritative:
            return False
        new = [s.state is State.NEW for s in self.authoritative]
        return all(new) if self.require.authoritative == "all" else any(new)

    def summary(self) -> Summary:
        eligible = [s for s in self.resolvers if not s.server.filtering]
        counted = [s for s in eligible if s.state is not None and s.state.answered]
        new = sum(1 for s in counted if s.state is State.NEW)
        fraction = new / len(counted) if counted else 0.0
        authoritative_new = sum(1 for s in self.authoritative if s.state is State.NEW)
        reasons = []
        if self.require.authoritative != "none":
            if not self.authoritative:
                reasons.append("no authoritative server to ask")
            elif self.require.authoritative == "all" and authoritative_new < len(self.authoritative):
                reasons.append(
                    f"{len(self.authoritative) - authoritative_new} of {len(self.authoritative)} "
                    "authoritative servers not new"
                )
            elif self.require.authoritative == "any" and authoritative_new == 0:
                reasons.append("no authoritative server new")
        if self.require.resolvers > 0:
            if not eligible:
                reasons.append("no resolvers to ask")
            elif len(counted) * 2 < len(eligible):
                reasons.append(f"only {len(counted)} of {len(eligible)} resolvers answered")
            elif fraction < self.require.resolvers:
                reasons.append(f"{fraction:.0%} of resolvers new, {self.require.resolvers:.0%} required")
        changed_at = self.changed_at
        if changed_at is None and self._authoritative_changed() and self.rounds:
            changed_at = min((s.answer.at for s in self.authoritative if s.answer), default=None)
        # The bound the issue names: the change at the authoritative servers plus the old TTL;
        # before that is known, the latest expiry of an old answer seen in a cache.
        expiries = [e for e in (s.expires_at for s in self.resolvers) if e is not None]
        eta = (
            changed_at + self.old_ttl
            if changed_at is not None and self.old_ttl is not None
            else max(expiries)
            if expiries
            else None
        )
        serials = tuple(s.answer.serial if s.answer else None for s in self.authoritative)
        return Summary(
            not reasons,
            new,
            len(counted),
            len(eligible),
            fraction,
            authoritative_new,
            len(self.authoritative),
            serials,
            changed_at,
            self.old_ttl,
            eta,
            "; ".join(reasons),
        )

    def serial_lagging(self) -> list[str]:
        """Authoritative servers whose serial is behind the newest one seen."""
        serials = [(s, s.answer.serial) for s in self.authoritative if s.answer and s.answer.serial is not None]
        if not serials:
            return []
        newest = serials[0][1]
        for _, serial in serials[1:]:
            if serial is not None and newest is not None and serial_newer(serial, newest):
                newest = serial
        return [s.server.where for s, serial in serials if serial != newest]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.kind,
            "expect": sorted(show(v) for v in self.expect),
            "old": sorted(show(v) for v in self.old) if self.old else None,
            "summary": self.summary().to_json(),
            "resolvers": [s.to_json() for s in self.resolvers],
            "authoritative": [s.to_json() for s in self.authoritative],
        }


def discover_authoritative(name: str, resolvers: Sequence[Resolver], timeout: float) -> tuple[str, list[Resolver]]:
    """The zone of `name` and the addresses of its NS servers, asked of the first resolver that
    knows them. DiscoveryError when none does."""
    problems: list[str] = []
    for resolver in [r for r in resolvers if not r.filtering] or list(resolvers):
        stub = dns.asyncresolver.Resolver(configure=False)
        stub.nameservers = [resolver.address]
        stub.port = resolver.port
        stub.timeout = timeout
        stub.lifetime = timeout * 2
        stub.use_edns(0, 0, 1232)

        async def find(stub: dns.asyncresolver.Resolver = stub) -> tuple[str, list[Resolver]]:
            zone = await dns.asyncresolver.zone_for_name(name, resolver=stub)
            ns = await stub.resolve(zone, "NS")
            servers: list[Resolver] = []
            for host in sorted(str(r.target) for r in ns):
                for kind in ("A", "AAAA"):
                    try:
                        for address in await stub.resolve(host, kind):
                            servers.append(Resolver(name=host.rstrip("."), address=str(address)))
                    except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
                        continue
            return zone.to_text().rstrip("."), servers

        try:
            zone, servers = asyncio.run(find())
        except dns.exception.DNSException as exc:
            problems.append(f"{resolver.name} ({resolver.where}): {exc}")
            continue
        if servers:
            return zone, servers
        problems.append(f"{resolver.name} ({resolver.where}): the NS servers of {zone} have no address")
    raise DiscoveryError(f"cannot find the authoritative servers of {name}: " + "; ".join(problems[:3]))
