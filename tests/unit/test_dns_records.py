"""DNS names, types, values and resolver sets as the operator writes them (no servers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from steps.dns.check.probe import Answer, State
from steps.dns.check.propagation import Propagation, Requirement
from steps.dns.check.records import BadRecord, check_name, check_type, parse_values, show, split_address
from steps.dns.check.resolvers import BUILTIN, Resolver, ResolversFileError, combine, load_resolvers


@pytest.mark.parametrize(
    "name", ["app.example.com", "APP.Example.COM.", "_dmarc.example.com", "*.example.com", "a-b.c1.example"]
)
def test_good_names(name: str) -> None:
    assert check_name(name) == name.rstrip(".").lower()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "it is empty"),
        ("a..b", "empty label"),
        ("-a.example.com", "hyphen"),
        ("a b.com", "space"),
        ("x" * 64 + ".com", "label is > 63 octets"),
        ("ex@mple.com", "letters, digits"),
    ],
)
def test_bad_names(name: str, message: str) -> None:
    with pytest.raises(BadRecord, match=message):
        check_name(name)


def test_types_and_values_compare_canonically() -> None:
    assert check_type("aaaa") == "AAAA"
    with pytest.raises(BadRecord, match="unknown record type 'AXFR'"):
        check_type("AXFR")
    assert parse_values("AAAA", "2001:DB8::1") == parse_values("AAAA", "2001:db8:0::1")
    assert parse_values("CNAME", "Cname.Vercel-DNS.com") == parse_values("CNAME", "cname.vercel-dns.com.")
    assert [show(v) for v in parse_values("CNAME", "cname.vercel-dns.com")] == ["cname.vercel-dns.com"]
    assert [show(v) for v in parse_values("TXT", 'v=spf1 include:"x" -all')] == ['v=spf1 include:"x" -all']
    with pytest.raises(BadRecord, match="is not a valid A value"):
        parse_values("A", "192.0.2.300")
    with pytest.raises(BadRecord, match="no value"):
        parse_values("A", [])


def test_addresses() -> None:
    assert split_address("127.0.0.1") == ("127.0.0.1", 53)
    assert split_address("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert split_address("[::1]:5353") == ("::1", 5353)
    for bad in ("ns1.example.com", "127.0.0.1:x", "127.0.0.1:70000"):
        with pytest.raises(BadRecord):
            split_address(bad)


def test_the_builtin_set_is_extended_once_per_address(tmp_path: Path) -> None:
    path = tmp_path / "resolvers.toml"
    path.write_text(
        '[[resolver]]\nname = "Google again"\naddress = "8.8.8.8"\n'
        '[[resolver]]\nname = "ISP"\naddress = "192.0.2.53"\nport = 5353\n'
    )
    combined = combine(list(BUILTIN), load_resolvers(path), [Resolver(name="office", address="10.0.0.53")])
    assert len(combined) == len(BUILTIN) + 2
    assert [r.name for r in combined if r.address == "8.8.8.8"] == ["Google"]
    assert {r.name for r in BUILTIN if r.filtering} == {"AdGuard", "CleanBrowsing"}


def test_a_resolvers_file_with_a_duplicate_is_refused_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "resolvers.toml"
    path.write_text(
        '[[resolver]]\nname = "a"\naddress = "192.0.2.1"\n\n[[resolver]]\nname = "b"\naddress = "192.0.2.1"\n'
    )
    with pytest.raises(ResolversFileError) as caught:
        load_resolvers(path)
    assert [(p.line, p.message) for p in caught.value.problems] == [(7, "192.0.2.1 is listed twice (also resolver 1)")]


def _answer(rcode: str, values: str | None = None, ttl: int | None = None) -> Answer:
    return Answer(rcode, parse_values("A", values) if values else frozenset(), ttl)


def test_counting_rules() -> None:
    resolvers = [Resolver(name=f"r{i}", address=f"192.0.2.{i + 1}") for i in range(6)]
    resolvers.append(Resolver(name="filter", address="192.0.2.99", filtering=True))
    check = Propagation(
        "app.example.com",
        "A",
        parse_values("A", "198.51.100.7"),
        old=parse_values("A", "192.0.2.10"),
        resolvers=resolvers,
        require=Requirement(authoritative="none", resolvers=0.75),
    )
    answers = [
        _answer("NOERROR", "198.51.100.7", 300),
        _answer("NOERROR", "198.51.100.7", 299),
        _answer("NOERROR", "198.51.100.7", 12),
        _answer("NOERROR", "192.0.2.10", 40),
        _answer("TIMEOUT"),
        _answer("SERVFAIL"),
        _answer("NOERROR", "0.0.0.0", 0),
    ]
    for status, answer in zip(check.resolvers, answers, strict=True):
        status.record(check.judge(answer), answer)
    assert [s.state for s in check.resolvers] == [
        State.NEW,
        State.NEW,
        State.NEW,
        State.OLD,
        State.TIMEOUT,
        State.SERVFAIL,
        State.OTHER,
    ]
    summary = check.summary()
    assert (summary.new, summary.counted, summary.eligible) == (3, 4, 6)
    assert summary.held and summary.fraction == 0.75
    assert summary.eta == pytest.approx(answers[3].at + 40)  # when the old answer's cache runs out
    # Half the resolvers silent: nothing can be said.
    for status in check.resolvers[:2]:
        status.record(State.TIMEOUT, _answer("TIMEOUT"))
    summary = check.summary()
    assert not summary.held and summary.reason == "only 2 of 6 resolvers answered"
