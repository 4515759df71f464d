"""The DNS cutover as runbook steps: update at Knot, propagation through caching dnsmasq
resolvers, the grid published as reports, the propagated fraction as a metric."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datapath import log_of
from dnsworld import NAME, NEW, OLD, fixed, forwarding
from fakes import HEADER, Harness
from test_dns_update import UPDATE, checkpoint, rfc2136, rfc2136_env

from cockpit import runbook_loader
from cockpit.events import MetricRecorded, StepReport
from cockpit.sandbox.dns.servers import KnotServer, ServfailResolver, SilentResolver, stop_all

pytestmark = pytest.mark.integration


def propagation(
    knot: KnotServer,
    resolvers: list[object],
    *,
    require: str = "{ resolvers = 1.0 }",
    within: str = "30s",
    expect: str = NEW,
) -> str:
    listed = ", ".join(
        f'{{ name = "r{i}", address = "{r.address}", port = {r.port} }}'  # type: ignore[attr-defined]
        for i, r in enumerate(resolvers)
    )
    return f'''
[[step]]
id = "propagation"
phase = "window"
kind = "dns.propagation"
needs = ["cutover"]
timeout = "2m"
[step.with]
name = "{NAME}"
expect = "{expect}"
update = "cutover"
builtin_resolvers = false
resolvers = [{listed}]
authoritative = ["{knot.where}"]
require = {require}
interval = "1s"
within = "{within}"
query_timeout = "500ms"
'''


def test_the_cutover_propagates_and_the_grid_is_reported(tmp_path: Path, knot: KnotServer) -> None:
    caching = [forwarding("127.0.0.2", knot, max_cache_ttl=1), forwarding("127.0.0.3", knot)]
    silent = SilentResolver("127.0.0.4").start()
    servfail = ServfailResolver("127.0.0.5").start()
    try:
        body = UPDATE.format(name=NAME, value=f'"{NEW}"') + propagation(knot, [*caching, silent, servfail])
        # The harness's rehearsal clock runs 600x; while the check runs it holds wall speed, so
        # `within` (30s) and the 1s interval are real seconds, as the caches' TTLs are.
        h = Harness(tmp_path, body, header=HEADER + rfc2136(knot.where), env=rfc2136_env(knot)).start()
        try:
            h.settle(60)
        finally:
            h.close()
        log = log_of(h, "propagation")
        assert h.states("propagation")[-1] == "succeeded", log
        assert "holds: 2 of 2 resolvers new (100%), 2 not answering · authoritative 1/1 new, serial 2" in log
        reports = [e for e in h.of_type(StepReport) if e.step_id == "propagation"]
        assert reports and all(r.topic == "dns.propagation" for r in reports)
        last = json.loads(reports[-1].data)
        assert [r["state"] for r in last["resolvers"]] == ["new", "new", "timeout", "servfail"]
        assert last["authoritative"][0]["serial"] == 2 and last["summary"]["held"] is True
        metrics = [e.value for e in h.of_type(MetricRecorded) if e.name == "propagation.propagated"]
        assert metrics[-1] == 1.0
        # The ETA comes from the update's record: when it changed, plus the old TTL it recorded.
        made = checkpoint(h, "cutover")
        assert last["summary"]["old_ttl"] == 2 == made["recorded"]["ttl"]
        assert checkpoint(h, "propagation")["dns"] == {"changed_at": made["applied_at"], "old_ttl": 2}
    finally:
        stop_all([*caching, silent, servfail])


def test_it_fails_after_within_saying_what_is_missing(tmp_path: Path, knot: KnotServer) -> None:
    stuck = fixed("127.0.0.2", OLD)  # a resolver that keeps the old answer
    try:
        body = UPDATE.format(name=NAME, value=f'"{NEW}"') + propagation(knot, [stuck], within="5s")
        h = Harness(tmp_path, body, header=HEADER + rfc2136(knot.where), env=rfc2136_env(knot), speed=10).start()
        try:
            h.settle(60)
        finally:
            h.close()
        reason = h.engine.step_runtime("propagation").reason
        assert h.states("propagation")[-1] == "failed"
        assert reason.startswith("not propagated after 5s: 0% of resolvers new, 100% required")
    finally:
        stuck.stop()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('expect = "198.51.100.7"', 'expect = "not-an-address"'), "'not-an-address' is not a valid A value"),
        (("resolvers = []", 'resolvers_file = "missing.toml"'), "missing.toml: cannot read the resolvers file"),
        (("require = { resolvers = 1.0 }", "require = { resolvers = 1.5 }"), "less than or equal to 1"),
        (
            ("require = { resolvers = 1.0 }", 'require = { authoritive = "all" }'),
            "unknown key 'authoritive' (did you mean 'authoritative'?)",
        ),
        (("builtin_resolvers = false\nresolvers = []", "builtin_resolvers = false"), "no resolvers"),
    ],
)
def test_check_names_bad_propagation_parameters(
    tmp_path: Path, knot: KnotServer, change: tuple[str, str], message: str
) -> None:
    body = propagation(knot, []).replace('needs = ["cutover"]\n', "").replace('update = "cutover"\n', "")
    assert change[0] in body
    document = HEADER + body.replace(*change)
    path = tmp_path / "runbook.toml"
    path.write_text(document)
    _, problems = runbook_loader.check(path)
    errors = [p for p in problems if p.severity == "error"]
    assert len(errors) == 1 and message in str(errors[0]), errors
    assert errors[0].line > 0
