"""dns.update and dns.restore: RFC 2136 against a real Knot (TSIG), Cloudflare and Vercel against
stand-ins of their APIs. Each change is recorded before it is made, bad input changes nothing,
and secrets stay out of every log."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rdatatype
import pytest
from datapath import log_of
from dnsworld import NAME, NEW, OLD, ZONE
from fakes import HEADER, Harness

from cockpit import runbook_loader
from cockpit.events import RollbackFinished
from cockpit.sandbox.dns.provider_apis import CloudflareStandIn, StoredRecord, VercelStandIn
from cockpit.sandbox.dns.servers import KnotServer, free_port_on

pytestmark = pytest.mark.integration

RFC2136_TEMPLATE = """
[connections.dns]
kind = "dns"
provider = "rfc2136"
zone = "example.test"
primary = "{primary}"
tsig_name = "cutover"
tsig_secret = "${TSIG_SECRET}"
"""


def rfc2136(primary: str, signed: bool = True) -> str:
    """The connection; the primary is written out (a ${VAR} would be a secret, masked in messages)."""
    text = RFC2136_TEMPLATE.replace("{primary}", primary)
    return text if signed else text.replace('tsig_name = "cutover"\ntsig_secret = "${TSIG_SECRET}"\n', "")


UPDATE = """
[[step]]
id = "cutover"
phase = "window"
kind = "dns.update"
undo = "restore"
with = {{ connection = "dns", name = "{name}", type = "A", value = {value}, ttl = 60 }}

[[step]]
id = "restore"
phase = "rollback"
kind = "dns.restore"
with = {{ update = "cutover" }}
"""

FAIL_AFTER = """
[[step]]
id = "smoke"
phase = "window"
kind = "shell"
needs = ["cutover"]
with = { argv = ["false"] }

[[trigger]]
id = "broken"
when = { step = "smoke", state = "failed" }
action = "rollback"
within = "10m"
"""


def answer(knot: KnotServer, name: str = NAME) -> tuple[list[str], int | None]:
    query = dns.message.make_query(name, "A")
    response = dns.query.udp(query, knot.address, port=knot.port, timeout=2)
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.A:
            return sorted(r.to_text() for r in rrset), rrset.ttl
    return [], None


def run(folder: Path, body: str, header: str, env: dict[str, str], timeout: float = 60) -> Harness:
    folder.mkdir(exist_ok=True)
    h = Harness(folder, body, header=HEADER + header, env=env).start()
    try:
        h.settle(timeout)
    finally:
        h.close()
    return h


def checkpoint(h: Harness, step_id: str) -> dict[str, Any]:
    """A step's journaled checkpoint, read back from the journal file after the run."""
    from cockpit.journal import Journal

    journal = Journal(h.journal.path, readonly=True)
    try:
        return journal.checkpoint(h.engine.run_id, step_id)
    finally:
        journal.close()


def everything_said(h: Harness) -> str:
    """The logs, every event and the journal file: where a secret must never be."""
    events = "\n".join(str(e.to_dict()) for e in h.events)
    journal = b"".join(p.read_bytes() for p in h.journal.path.parent.glob("journal.db*")).decode("latin-1")
    return log_of(h, "cutover") + log_of(h, "restore") + events + journal


def rfc2136_env(knot: KnotServer, secret: str | None = None) -> dict[str, str]:
    return {"TSIG_SECRET": secret or knot.key.secret}


def test_update_records_first_and_the_rollback_restores_exactly(tmp_path: Path, knot: KnotServer) -> None:
    assert answer(knot) == ([OLD], 2)
    h = run(tmp_path, UPDATE.format(name=NAME, value=f'"{NEW}"') + FAIL_AFTER, rfc2136(knot.where), rfc2136_env(knot))
    assert h.states("cutover")[-1] == "succeeded", (h.engine.step_runtime("cutover").reason, log_of(h, "cutover"))
    recorded = checkpoint(h, "cutover")["recorded"]
    assert recorded == {"name": NAME, "type": "A", "values": [OLD], "ttl": 2, "extra": {}}
    log = log_of(h, "cutover")
    assert "recorded before the change: app.example.test A 192.0.2.1 (TTL 2)" in log
    assert h.states("restore")[-1] == "succeeded" and h.of_type(RollbackFinished)
    assert answer(knot) == ([OLD], 2)  # the value and its TTL, as they were
    assert knot.key.secret not in everything_said(h)


def test_the_new_value_is_served_after_the_update(tmp_path: Path, knot: KnotServer) -> None:
    h = run(
        tmp_path, UPDATE.format(name=NAME, value=f'["{NEW}", "198.51.100.8"]'), rfc2136(knot.where), rfc2136_env(knot)
    )
    assert h.states("cutover")[-1] == "succeeded", log_of(h, "cutover")
    assert answer(knot) == ([NEW, "198.51.100.8"], 60)
    # A second run of the same update finds it done and changes nothing.
    again = run(
        tmp_path / "again",
        UPDATE.format(name=NAME, value=f'["{NEW}", "198.51.100.8"]'),
        rfc2136(knot.where),
        rfc2136_env(knot),
    )
    assert "already set" in log_of(again, "cutover")


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        (base64.b64encode(os.urandom(32)).decode(), "BADSIG"),
        ("not base64 at all!", "is not base64"),
    ],
)
def test_a_wrong_or_malformed_key_changes_nothing(tmp_path: Path, knot: KnotServer, secret: str, expected: str) -> None:
    h = run(tmp_path, UPDATE.format(name=NAME, value=f'"{NEW}"'), rfc2136(knot.where), rfc2136_env(knot, secret))
    assert h.states("cutover")[-1] == "failed"
    reason = h.engine.step_runtime("cutover").reason
    assert expected in reason and secret not in reason
    assert answer(knot) == ([OLD], 2)
    assert secret not in everything_said(h)


def test_an_unsigned_update_is_refused(tmp_path: Path, knot: KnotServer) -> None:
    h = run(tmp_path, UPDATE.format(name=NAME, value=f'"{NEW}"'), rfc2136(knot.where, signed=False), {})
    assert "not allowed to update this zone (NOTAUTH)" in h.engine.step_runtime("cutover").reason
    assert answer(knot) == ([OLD], 2)


def test_an_unreachable_primary_or_a_name_outside_the_zone_changes_nothing(tmp_path: Path, knot: KnotServer) -> None:
    nobody = f"127.0.0.1:{free_port_on('127.0.0.1')}"
    h = run(tmp_path / "a", UPDATE.format(name=NAME, value=f'"{NEW}"'), rfc2136(nobody), rfc2136_env(knot))
    reason = h.engine.step_runtime("cutover").reason
    assert f"cannot record the current {NAME} A: cannot reach the primary {nobody}" in reason
    assert "nothing was changed" in reason
    assert checkpoint(h, "cutover") == {}
    h = run(
        tmp_path / "b",
        UPDATE.format(name="app.elsewhere.test", value=f'"{NEW}"'),
        rfc2136(knot.where),
        rfc2136_env(knot),
    )
    assert "app.elsewhere.test is not in the zone example.test" in h.engine.step_runtime("cutover").reason
    assert answer(knot) == ([OLD], 2)


def test_restore_refuses_to_overwrite_a_change_made_by_someone_else(tmp_path: Path, knot: KnotServer) -> None:
    import dns.tsigkeyring
    import dns.update

    body = UPDATE.format(name=NAME, value=f'"{NEW}"') + FAIL_AFTER.replace(
        'argv = ["false"]', 'argv = ["sh", "-c", "sleep 0.5; exit 1"]'
    )
    h = Harness(tmp_path, body, header=HEADER + rfc2136(knot.where), env=rfc2136_env(knot)).start()
    try:
        h.wait_state("cutover", "succeeded", timeout=30)
        keyring = dns.tsigkeyring.from_text({knot.key.name: knot.key.secret})
        meddle = dns.update.UpdateMessage(ZONE, keyring=keyring)
        meddle.replace("app", 30, "A", "203.0.113.50")
        dns.query.tcp(meddle, knot.address, port=knot.port, timeout=5)
        h.settle(30)
    finally:
        h.close()
    assert h.states("restore")[-1] == "failed"
    assert "changed since it was recorded (NXRRSET): nothing was changed" in h.engine.step_runtime("restore").reason
    assert answer(knot) == (["203.0.113.50"], 30)


def test_bad_names_types_and_values_are_caught_by_check(tmp_path: Path) -> None:
    body = (
        UPDATE.format(name="app..example.test", value='"1.2.3.4"')
        + '\n[[step]]\nid = "other"\nphase = "window"\nkind = "dns.update"\n'
        'with = { connection = "dns", name = "x.example.test", type = "AXFR", value = "1.2.3.4" }\n'
        + '\n[[step]]\nid = "third"\nphase = "window"\nkind = "dns.update"\n'
        'with = { connection = "dns", name = "x.example.test", type = "AAAA", value = "1.2.3.4" }\n'
    )
    path = tmp_path / "runbook.toml"
    document = HEADER + rfc2136("127.0.0.1:53") + body
    path.write_text(document)
    _, problems = runbook_loader.check(path)
    text = "\n".join(str(p) for p in problems)
    lines = document.splitlines()
    assert "'app..example.test' is not a DNS name" in text
    assert "unknown record type 'AXFR'" in text
    assert "'1.2.3.4' is not a valid AAAA value" in text
    errors = [p for p in problems if p.severity == "error"]
    assert len(errors) == 3
    for problem in errors:
        assert problem.line > 0 and "with" in lines[problem.line - 1], str(problem)


# -- Cloudflare and Vercel, against stand-ins of their APIs ---------------------------------------


def cloudflare_setup() -> tuple[CloudflareStandIn, str, dict[str, str]]:
    api = CloudflareStandIn()
    api.records = [
        StoredRecord("a1", NAME, "A", OLD, 300, proxied=True),
        StoredRecord("a2", NAME, "A", "192.0.2.2", 300, proxied=True),
        StoredRecord("t1", NAME, "TXT", "keep me", 300),
    ]
    api.start()
    header = (
        f'\n[connections.dns]\nkind = "dns"\nprovider = "cloudflare"\nzone = "{ZONE}"\n'
        f'zone_id = "{api.zone_id}"\ntoken = "${{DNS_TOKEN}}"\napi_url = "{api.api_url}"\n'
    )
    return api, header, {"DNS_TOKEN": api.token}


def vercel_setup() -> tuple[VercelStandIn, str, dict[str, str]]:
    api = VercelStandIn(domain=ZONE, team_id="team_1")
    api.records = [StoredRecord(f"rec_{i}", f"n{i}", "A", "10.0.0.1", 60) for i in range(150)]  # pages
    api.records += [StoredRecord("rec_a1", "app", "A", OLD, 300), StoredRecord("rec_a2", "app", "A", "192.0.2.2", 300)]
    api.start()
    header = (
        f'\n[connections.dns]\nkind = "dns"\nprovider = "vercel"\nzone = "{ZONE}"\nteam_id = "team_1"\n'
        f'token = "${{DNS_TOKEN}}"\napi_url = "{api.url}"\n'
    )
    return api, header, {"DNS_TOKEN": api.token}


def app_records(api: Any) -> list[tuple[str, int, bool]]:
    return sorted((r.value, r.ttl, r.proxied) for r in api.records if r.name in (NAME, "app") and r.type == "A")


@pytest.mark.parametrize("setup", [cloudflare_setup, vercel_setup], ids=["cloudflare", "vercel"])
def test_rest_providers_update_and_restore(tmp_path: Path, setup: Any) -> None:
    api, header, env = setup()
    try:
        before = app_records(api)
        others = len(api.records)
        api.faults.throttle_next = 2  # two 429s with Retry-After, then served
        h = run(
            tmp_path, UPDATE.format(name=NAME, value=f'["{NEW}", "{OLD}", "198.51.100.8"]') + FAIL_AFTER, header, env
        )
        log = log_of(h, "cutover")
        assert h.states("cutover")[-1] == "succeeded", log
        assert "recorded before the change: app.example.test A 192.0.2.1, 192.0.2.2 (TTL 300)" in log
        assert h.states("restore")[-1] == "succeeded", log_of(h, "restore")
        assert app_records(api) == before  # values, TTLs and Cloudflare's proxied flag
        assert len(api.records) == others
        assert [m for m, _ in api.requests].count("GET") >= 3
        assert api.token not in everything_said(h)
    finally:
        api.stop()


@pytest.mark.parametrize("setup", [cloudflare_setup, vercel_setup], ids=["cloudflare", "vercel"])
def test_a_refused_token_changes_nothing_and_is_never_shown(tmp_path: Path, setup: Any) -> None:
    api, header, env = setup()
    try:
        before = app_records(api)
        wrong = "wrong-" + api.token
        h = run(tmp_path, UPDATE.format(name=NAME, value=f'"{NEW}"'), header, {"DNS_TOKEN": wrong})
        reason = h.engine.step_runtime("cutover").reason
        assert "refused the token (403)" in reason and "nothing was changed" in reason
        assert app_records(api) == before
        assert wrong not in everything_said(h)
    finally:
        api.stop()


def test_a_restore_naming_a_missing_or_wrong_step_is_caught_by_check(tmp_path: Path) -> None:
    body = UPDATE.format(name=NAME, value=f'"{NEW}"')
    for wrong, message in (
        ('update = "cutovr"', "update names no step 'cutovr' (did you mean 'cutover'?)"),
        ('update = "restore"', "update names step 'restore', which is dns.restore, not dns.update"),
    ):
        document = HEADER + rfc2136("127.0.0.1:53") + body.replace('update = "cutover"', wrong)
        path = tmp_path / "runbook.toml"
        path.write_text(document)
        _, problems = runbook_loader.check(path)
        errors = [p for p in problems if p.severity == "error"]
        assert len(errors) == 1 and message in errors[0].message, errors
        assert wrong in document.splitlines()[errors[0].line - 1]


@pytest.mark.parametrize("setup", [cloudflare_setup, vercel_setup], ids=["cloudflare", "vercel"])
def test_rest_restore_refuses_a_record_someone_else_changed(tmp_path: Path, setup: Any) -> None:
    api, header, env = setup()
    try:
        body = UPDATE.format(name=NAME, value=f'"{NEW}"') + FAIL_AFTER.replace(
            'argv = ["false"]', 'argv = ["sh", "-c", "sleep 0.5; exit 1"]'
        )
        h = Harness(tmp_path, body, header=HEADER + header, env=env).start()
        try:
            h.wait_state("cutover", "succeeded", timeout=30)
            mine = next(r for r in api.records if r.name in (NAME, "app") and r.type == "A")
            mine.value = "203.0.113.50"  # someone edits the record in the provider's dashboard
            h.settle(30)
        finally:
            h.close()
        assert h.states("restore")[-1] == "failed"
        reason = h.engine.step_runtime("restore").reason
        assert "changed since it was recorded (now holds 203.0.113.50): nothing was changed" in reason
        assert [r[0] for r in app_records(api)] == ["203.0.113.50"]
    finally:
        api.stop()


def test_a_dry_run_prints_the_change_and_changes_nothing(tmp_path: Path, knot: KnotServer) -> None:
    from test_dns_steps import propagation

    body = UPDATE.format(name=NAME, value=f'"{NEW}"') + propagation(knot, [knot])
    folder = tmp_path
    h = Harness(folder, body, header=HEADER + rfc2136(knot.where), env=rfc2136_env(knot), dry_run=True).start()
    try:
        h.settle(30)
    finally:
        h.close()
    assert (
        "dry run: would set app.example.test A to 198.51.100.7 (TTL 60) through connection 'dns', "
        "after recording the current value"
    ) in log_of(h, "cutover")
    assert "dry run: needs cutover, which did not run" in h.engine.step_runtime("propagation").reason
    assert answer(knot) == ([OLD], 2)


def test_a_retry_keeps_the_first_attempts_record(tmp_path: Path) -> None:
    """The first attempt records, then the provider fails every write: the retry changes the record
    and the rollback still restores what was there before the first attempt."""
    api, header, env = cloudflare_setup()
    try:
        before = app_records(api)
        api.faults.fail_writes_next = 5  # more than one attempt's retries
        api.faults.retry_after = 0.01
        body = (
            UPDATE.format(name=NAME, value=f'"{NEW}"').replace(
                'undo = "restore"', 'undo = "restore"\nretries = 1\nretry_delay = "1s"'
            )
            + FAIL_AFTER
        )
        h = run(tmp_path, body, header, env)
        from cockpit.events import StepStateChanged

        log = log_of(h, "cutover")
        changes = [(e.state, e.attempt, e.reason) for e in h.of_type(StepStateChanged) if e.step_id == "cutover"]
        failed = [reason for state, attempt, reason in changes if reason.startswith("failed:") and attempt == 1]
        assert failed and "Cloudflare answered 500 to PATCH" in failed[0], changes
        assert ("succeeded", 2, "") in [(s, a, r) for s, a, r in changes if s == "succeeded"], changes
        assert "recorded by an earlier attempt: app.example.test A 192.0.2.1, 192.0.2.2 (TTL 300)" in log
        assert h.states("restore")[-1] == "succeeded"
        assert app_records(api) == before
    finally:
        api.stop()
