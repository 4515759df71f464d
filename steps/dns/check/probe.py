"""One DNS question to one server, and the state its answer puts that server in.

dnspython's stub resolver tries its nameservers one after another, so a propagation check asks
each server on its own (`ask`) and gathers them (`ask_all`): one check takes as long as the
slowest server, capped by the per-query timeout, not the sum.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from steps.dns.check.resolvers import Resolver as Server

EDNS_PAYLOAD = 1232  # the size that avoids fragmentation (DNS flag day 2020)


class State(StrEnum):
    NEW = "new"  # answers the expected value
    OLD = "old"  # answers the value before the change (still cached: see its TTL)
    OTHER = "other"  # answers something else, or no record at all
    NXDOMAIN = "nxdomain"
    SERVFAIL = "servfail"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    ERROR = "error"  # unreachable, a malformed answer, another rcode

    @property
    def answered(self) -> bool:
        """The server said something about the name (right or wrong)."""
        return self in (State.NEW, State.OLD, State.OTHER, State.NXDOMAIN)


@dataclass(frozen=True)
class Answer:
    """What one server said, before it is judged against the expected value."""

    rcode: str  # NOERROR, NXDOMAIN, SERVFAIL, REFUSED, TIMEOUT, ERROR
    values: frozenset[dns.rdata.Rdata] = frozenset()
    ttl: int | None = None
    serial: int | None = None  # the zone's SOA serial, for authoritative servers
    tcp: bool = False
    ms: float = 0.0
    detail: str = ""
    at: float = field(default_factory=time.time)


def _chase(
    response: dns.message.Message, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> tuple[frozenset[dns.rdata.Rdata], int | None]:
    """The answer's records of `rdtype` for `qname`, through any CNAME chain; the chain's
    smallest TTL, since a cache drops the whole answer when its first part expires."""
    name, ttl = qname, None
    for _ in range(16):
        rrset = response.get_rrset(response.answer, name, dns.rdataclass.IN, rdtype)
        if rrset is not None:
            ttl = rrset.ttl if ttl is None else min(ttl, rrset.ttl)
            return frozenset(rrset), ttl
        cname = response.get_rrset(response.answer, name, dns.rdataclass.IN, dns.rdatatype.CNAME)
        if cname is None or rdtype == dns.rdatatype.CNAME:
            break
        ttl = cname.ttl if ttl is None else min(ttl, cname.ttl)
        name = cname[0].target
    return frozenset(), None


async def ask(
    server: Server, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType, timeout: float, *, recursion: bool = True
) -> Answer:
    """Ask one server, EDNS on, over TCP when the UDP answer is truncated; never raises."""
    query = dns.message.make_query(qname, rdtype, use_edns=0, payload=EDNS_PAYLOAD)
    if not recursion:
        query.flags &= ~dns.flags.RD
    started = time.perf_counter()
    try:
        # The whole exchange (UDP, then TCP if truncated) within the one timeout.
        response, used_tcp = await asyncio.wait_for(
            dns.asyncquery.udp_with_fallback(query, server.address, timeout=timeout, port=server.port), timeout
        )
    except (TimeoutError, dns.exception.Timeout):
        return Answer("TIMEOUT", ms=(time.perf_counter() - started) * 1000, detail=f"no answer in {timeout:g}s")
    except OSError as exc:
        return Answer("ERROR", ms=(time.perf_counter() - started) * 1000, detail=exc.strerror or type(exc).__name__)
    except dns.exception.DNSException as exc:
        return Answer("ERROR", ms=(time.perf_counter() - started) * 1000, detail=f"bad answer: {exc}")
    ms = (time.perf_counter() - started) * 1000
    rcode = dns.rcode.to_text(response.rcode())
    if rcode != "NOERROR":
        return Answer(rcode, tcp=used_tcp, ms=ms)
    values, ttl = _chase(response, qname, rdtype)
    return Answer("NOERROR", values, ttl, tcp=used_tcp, ms=ms)


async def ask_serial(server: Server, zone: dns.name.Name, timeout: float) -> int | None:
    answer = await ask(server, zone, dns.rdatatype.SOA, timeout, recursion=False)
    for value in answer.values:
        return int(value.serial)  # type: ignore[attr-defined]
    return None


async def ask_authoritative(
    server: Server, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType, zone: dns.name.Name | None, timeout: float
) -> Answer:
    """The record and the zone's serial, asked at once, recursion off."""
    if zone is None:
        answer = await ask(server, qname, rdtype, timeout, recursion=False)
        return answer
    answer, serial = await asyncio.gather(
        ask(server, qname, rdtype, timeout, recursion=False), ask_serial(server, zone, timeout)
    )
    return Answer(answer.rcode, answer.values, answer.ttl, serial, answer.tcp, answer.ms, answer.detail, answer.at)


async def ask_all(
    servers: Sequence[Server], qname: dns.name.Name, rdtype: dns.rdatatype.RdataType, timeout: float
) -> list[Answer]:
    return list(await asyncio.gather(*(ask(s, qname, rdtype, timeout) for s in servers)))


async def zone_of(server: Server, qname: dns.name.Name, timeout: float) -> dns.name.Name | None:
    """The zone holding `qname`, from an authoritative server: the SOA it sends with the answer."""
    query = dns.message.make_query(qname, dns.rdatatype.SOA, use_edns=0, payload=EDNS_PAYLOAD)
    query.flags &= ~dns.flags.RD
    try:
        response, _ = await asyncio.wait_for(
            dns.asyncquery.udp_with_fallback(query, server.address, timeout=timeout, port=server.port), timeout
        )
    except (TimeoutError, OSError, dns.exception.DNSException):
        return None
    for section in (response.answer, response.authority):
        for rrset in section:
            if rrset.rdtype == dns.rdatatype.SOA:
                return rrset.name
    return None


def serial_newer(a: int, b: int) -> bool:
    """RFC 1982 serial arithmetic: is `a` after `b`?"""
    return a != b and ((a - b) % 2**32) < 2**31
