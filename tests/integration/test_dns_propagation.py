"""Propagation checks against real servers: Knot as the authoritative server, dnsmasq instances
on 127.0.0.2 and up answering differently, one resolver that never answers, one that answers
SERVFAIL."""

from __future__ import annotations

import time

import pytest
from dnsworld import BIG_TXT, NAME, NEW, OLD, ZONE, fixed, forwarding, resolver

from cockpit.sandbox.dns.servers import Dnsmasq, KnotServer, ServfailResolver, SilentResolver, stop_all
from steps.dns.check.probe import State
from steps.dns.check.propagation import Propagation, Requirement
from steps.dns.check.records import parse_values
from steps.dns.check.resolvers import Resolver

pytestmark = pytest.mark.integration


def flip(knot: KnotServer, value: str, ttl: int = 2, name: str = "app") -> None:
    """Change the record at the authoritative server, as a provider would."""
    import dns.query
    import dns.tsigkeyring

    keyring = dns.tsigkeyring.from_text({knot.key.name: knot.key.secret})
    update = dns.update.UpdateMessage(ZONE, keyring=keyring)
    update.replace(name, ttl, "A", value)
    response = dns.query.tcp(update, knot.address, port=knot.port, timeout=5)
    assert response.rcode() == 0


def authoritative(knot: KnotServer) -> Resolver:
    return Resolver(name="knot", address=knot.address, port=knot.port)


def test_every_state_is_told_apart(knot: KnotServer) -> None:
    servers: list[object] = []
    try:
        new = fixed("127.0.0.2", NEW)
        old = forwarding("127.0.0.3", knot)
        other = fixed("127.0.0.4", "203.0.113.9")
        filtering = fixed("127.0.0.5", "0.0.0.0")
        silent = SilentResolver("127.0.0.6").start()
        servfail = ServfailResolver("127.0.0.7").start()
        refusing = Dnsmasq("127.0.0.8").start()  # no upstream at all: it refuses what it cannot answer
        servers = [new, old, other, filtering, silent, servfail, refusing]
        resolvers = [
            resolver("new", new),
            resolver("old", old),
            resolver("other", other),
            resolver("filter", filtering, filtering=True),
            resolver("silent", silent),
            resolver("servfail", servfail),
            resolver("refusing", refusing),
        ]
        check = Propagation(
            NAME,
            "A",
            parse_values("A", NEW),
            old=parse_values("A", OLD),
            resolvers=resolvers,
            authoritative=[authoritative(knot)],
            query_timeout=0.5,
        )
        summary = check.check()
        states = {s.server.name: s.state for s in check.resolvers}
        assert states == {
            "new": State.NEW,
            "old": State.OLD,
            "other": State.OTHER,
            "filter": State.OTHER,
            "silent": State.TIMEOUT,
            "servfail": State.SERVFAIL,
            "refusing": State.REFUSED,
        }
        old_status = next(s for s in check.resolvers if s.server.name == "old")
        assert old_status.answer is not None and 0 < (old_status.answer.ttl or 0) <= 2
        # Counted: new, old, other (the filtering one is shown but not counted; three gave no answer).
        assert (summary.new, summary.counted, summary.eligible) == (1, 3, 6)
        assert summary.fraction == pytest.approx(1 / 3)
        assert not summary.held
        assert "authoritative" in summary.reason and "33% of resolvers new" in summary.reason
        assert check.authoritative[0].state is State.OLD and summary.serials == (1,)
        # NXDOMAIN: a name the zone does not hold, through the forwarding resolver.
        missing = Propagation(
            f"nothing.{ZONE}",
            "A",
            parse_values("A", NEW),
            resolvers=[resolver("old", old)],
            authoritative=[authoritative(knot)],
            query_timeout=0.5,
        )
        missing.check()
        assert missing.resolvers[0].state is State.NXDOMAIN and missing.authoritative[0].state is State.NXDOMAIN
    finally:
        stop_all(servers)  # type: ignore[arg-type]


def test_caches_switch_after_their_ttl_and_the_eta_is_change_plus_old_ttl(knot: KnotServer) -> None:
    short = forwarding("127.0.0.2", knot, max_cache_ttl=1)
    full = forwarding("127.0.0.3", knot)
    try:
        check = Propagation(
            NAME,
            "A",
            parse_values("A", NEW),
            old=parse_values("A", OLD),
            resolvers=[resolver("short", short), resolver("full", full)],
            authoritative=[authoritative(knot)],
            query_timeout=1.0,
            require=Requirement(resolvers=1.0),
        )
        assert not check.check().held  # both caches now hold the old answer
        flip(knot, NEW)
        changed = time.time()
        summary = check.check()
        assert check.authoritative[0].state is State.NEW and summary.serials == (2,)
        assert summary.changed_at is not None and abs(summary.changed_at - changed) < 1
        assert summary.old_ttl == 2 and summary.eta == pytest.approx(summary.changed_at + 2)
        seen: list[dict[str, State | None]] = []
        deadline = time.monotonic() + 10
        while not summary.held and time.monotonic() < deadline:
            time.sleep(0.25)
            summary = check.check()
            seen.append({s.server.name: s.state for s in check.resolvers})
        assert summary.held, summary.reason
        assert any(s == {"short": State.NEW, "full": State.OLD} for s in seen) or seen[0]["full"] is State.NEW
        history = [state for _, state in check.resolvers[1].history]
        assert history == [State.OLD, State.NEW]
    finally:
        stop_all([short, full])


def test_a_truncated_answer_is_asked_again_over_tcp(knot: KnotServer) -> None:
    check = Propagation(
        f"big.{ZONE}",
        "TXT",
        parse_values("TXT", "anything"),
        authoritative=[authoritative(knot)],
        query_timeout=2.0,
        require=Requirement(resolvers=0),
    )
    check.check()
    answer = check.authoritative[0].answer
    assert answer is not None and answer.tcp
    text = "".join(b"".join(v.strings).decode() for v in answer.values)  # type: ignore[attr-defined]
    assert text == BIG_TXT.replace(" ", "")


def test_requirement_any_and_none(knot: KnotServer) -> None:
    new = fixed("127.0.0.2", NEW)
    try:
        both = [authoritative(knot), Resolver(name="second", address="127.0.0.2", port=new.port)]
        any_check = Propagation(
            NAME,
            "A",
            parse_values("A", NEW),
            resolvers=[resolver("new", new)],
            authoritative=both,
            require=Requirement(authoritative="any"),
            query_timeout=0.5,
        )
        assert any_check.check().held
        all_check = Propagation(
            NAME,
            "A",
            parse_values("A", NEW),
            resolvers=[resolver("new", new)],
            authoritative=both,
            require=Requirement(authoritative="all"),
            query_timeout=0.5,
        )
        summary = all_check.check()
        assert not summary.held and "1 of 2 authoritative servers not new" in summary.reason
        none_check = Propagation(
            NAME,
            "A",
            parse_values("A", NEW),
            resolvers=[resolver("new", new)],
            require=Requirement(authoritative="none"),
            query_timeout=0.5,
        )
        assert none_check.check().held
    finally:
        new.stop()


def test_the_authoritative_servers_are_found_from_ns() -> None:
    """Knot on port 53 (NS records carry no port), found through a resolver, then asked directly."""
    import os

    if os.geteuid() != 0:
        pytest.skip("port 53 needs root; CI runs as root")
    from cockpit.sandbox.dns.servers import Record
    from steps.dns.check.propagation import discover_authoritative

    knot = KnotServer(ZONE, [Record("app", "A", OLD, ttl=2)], address="127.0.0.77", port=53).start()
    caching = forwarding("127.0.0.2", knot)
    try:
        zone, found = discover_authoritative(NAME, [resolver("caching", caching)], timeout=1.0)
        assert zone == ZONE
        assert [(s.name, s.address, s.port) for s in found] == [("ns1.example.test", "127.0.0.77", 53)]
        check = Propagation(
            NAME,
            "A",
            parse_values("A", OLD),
            resolvers=[resolver("caching", caching)],
            authoritative=found,
            query_timeout=1.0,
        )
        summary = check.check()
        assert summary.held and summary.serials == (1,) and check.zone is not None
    finally:
        stop_all([caching, knot])


def test_discovery_failing_says_so() -> None:
    from steps.dns.check.propagation import DiscoveryError, discover_authoritative

    silent = SilentResolver("127.0.0.2").start()
    try:
        with pytest.raises(DiscoveryError, match=r"cannot find the authoritative servers of app\.example\.test"):
            discover_authoritative(NAME, [resolver("silent", silent)], timeout=0.3)
    finally:
        silent.stop()
