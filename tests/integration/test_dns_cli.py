"""`cockpit dns check` as an operator runs it, against Knot and dnsmasq on loopback."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import COCKPIT, subprocess_env
from dnsworld import NAME, NEW, OLD, fixed, forwarding, resolver, resolvers_file
from test_dns_propagation import flip

from cockpit.sandbox.dns.servers import KnotServer, SilentResolver, stop_all

pytestmark = pytest.mark.integration


def dns_check(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [COCKPIT, "dns", "check", *args], capture_output=True, text=True, timeout=timeout, env=subprocess_env()
    )


@pytest.fixture
def world(tmp_path: Path, knot: KnotServer):  # type: ignore[no-untyped-def]
    caching = forwarding("127.0.0.2", knot, max_cache_ttl=1)
    new = fixed("127.0.0.3", NEW)
    silent = SilentResolver("127.0.0.4").start()
    path = resolvers_file(tmp_path, [resolver("caching", caching), resolver("new", new), resolver("silent", silent)])
    try:
        yield knot, path
    finally:
        stop_all([caching, new, silent])


def test_exit_codes_text_and_json(world: tuple[KnotServer, Path]) -> None:
    knot, path = world
    common = ["--resolvers", str(path), "--authoritative", knot.where, "--timeout", "0.5"]
    held = dns_check(NAME, "--expect", OLD, "--require", "0.5", *common)
    assert held.returncode == 0, held.stderr
    assert "holds" in held.stdout and "caching" in held.stdout and "timeout" in held.stdout
    not_held = dns_check(NAME, "--expect", NEW, "--old", OLD, "--json", *common)
    assert not_held.returncode == 1
    document = json.loads(not_held.stdout)
    states = {r["name"]: (r["state"], r["answer"], r["ttl"]) for r in document["resolvers"]}
    assert states["caching"][0] == "old" and states["caching"][1] == [OLD] and states["caching"][2] is not None
    assert states["new"] == ("new", [NEW], 0)
    assert states["silent"] == ("timeout", [], None)
    assert document["authoritative"][0]["state"] == "old" and document["authoritative"][0]["serial"] == 1
    assert document["summary"]["held"] is False and document["summary"]["fraction"] == 0.5


def test_watch_returns_when_the_change_holds(world: tuple[KnotServer, Path]) -> None:
    knot, path = world
    flipper = threading.Timer(1.0, flip, args=(knot, NEW))
    flipper.start()
    started = time.monotonic()
    try:
        result = dns_check(
            NAME,
            "--expect",
            NEW,
            "--old",
            OLD,
            "--resolvers",
            str(path),
            "--authoritative",
            knot.where,
            "--timeout",
            "0.5",
            "--watch",
            "--interval",
            "0.3",
            "--within",
            "20",
            "--require",
            "1",
        )
    finally:
        flipper.cancel()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "caching (127.0.0.2" in result.stderr and "old -> new" in result.stderr
    assert time.monotonic() - started < 20


def test_watch_gives_up_after_within(world: tuple[KnotServer, Path]) -> None:
    knot, path = world
    result = dns_check(
        NAME,
        "--expect",
        NEW,
        "--resolvers",
        str(path),
        "--authoritative",
        knot.where,
        "--timeout",
        "0.3",
        "--watch",
        "--interval",
        "0.2",
        "--within",
        "1",
    )
    assert result.returncode == 1
    assert "does not hold: 1 of 1 authoritative servers not new" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bad..name", "--expect", NEW], "'bad..name' is not a DNS name"),
        (["bad-.example.test", "--expect", NEW], "may not start or end with a hyphen"),
        ([NAME, "--type", "AXFR", "--expect", NEW], "unknown record type 'AXFR'"),
        ([NAME, "--expect", "300.1.1.1"], "'300.1.1.1' is not a valid A value"),
        ([NAME, "--type", "AAAA", "--expect", NEW], "is not a valid AAAA value"),
        ([NAME], "--expect VALUE is required"),
        ([NAME, "--expect", NEW, "--authoritative", "ns1.example.test"], "'ns1.example.test' is not an IP address"),
        ([NAME, "--expect", NEW, "--timeout", "0"], "--timeout must be more than 0"),
    ],
)
def test_bad_input_exits_2(tmp_path: Path, args: list[str], message: str) -> None:
    path = resolvers_file(tmp_path, [])
    path.write_text('[[resolver]]\nname = "x"\naddress = "127.0.0.9"\n')
    result = dns_check(*args, "--resolvers", str(path))
    assert result.returncode == 2
    assert message in result.stderr and result.stdout == ""


def test_a_bad_resolvers_file_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "resolvers.toml"
    path.write_text(
        '[[resolver]]\nname = "ok"\naddress = "127.0.0.9"\n\n[[resolver]]\nname = "bad"\n'
        'address = "not-an-ip"\nprot = 53\n'
    )
    result = dns_check(NAME, "--expect", NEW, "--resolvers", str(path), "--authoritative", "127.0.0.9")
    assert result.returncode == 2
    assert (
        f"{path}:7: address: Value error, 'not-an-ip' is not an IP address" in result.stderr
        or f"{path}:7: address: 'not-an-ip' is not an IP address" in result.stderr
    )
    assert f"{path}:8: unknown key 'prot' (did you mean 'port'?)" in result.stderr
    missing = dns_check(NAME, "--expect", NEW, "--resolvers", str(tmp_path / "none.toml"))
    assert missing.returncode == 2 and "cannot read the resolvers file" in missing.stderr
