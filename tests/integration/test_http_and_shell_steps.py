"""http.check against the v1/v2 stand-in servers; shell against real processes."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import HEADER, Harness

from cockpit.engine.views import Outcome
from cockpit.sandbox.web import StandInServer, v2_app
from steps.http import json_path

pytestmark = pytest.mark.integration


@pytest.fixture
def v2() -> Iterator[StandInServer]:
    server = v2_app().start()
    try:
        yield server
    finally:
        server.stop()


CONNECTION = '\n[connections.app]\nkind = "http"\nbase_url = "${APP_URL}"\n'


def _check(step_id: str, with_: str) -> str:
    return f'\n[[step]]\nid = "{step_id}"\nphase = "window"\nkind = "http.check"\n[step.with]\n{with_}\n'


def _run(tmp_path: Path, url: str, body: str, **options: object) -> Harness:
    return Harness(tmp_path, body, header=HEADER + CONNECTION, env={"APP_URL": url}, **options).start()


def test_json_path() -> None:
    doc = {"a": {"b": [{"c": 1}, {"c": 2}]}, "ok": True}
    assert json_path(doc, "$.a.b[1].c") == 2
    assert json_path(doc, "ok") is True
    with pytest.raises(KeyError):
        json_path(doc, "$.a.x")
    with pytest.raises(TypeError):
        json_path(doc, "$.ok[0]")


def test_a_passing_check_logs_each_call_and_publishes_metrics(tmp_path: Path, v2: StandInServer) -> None:
    body = _check(
        "auth",
        'connection = "app"\nurl = "/api/auth/session"\njson_path = "$.authenticated"\n'
        'equals = true\nrepeat = 3\ninterval = "1s"\nbody_contains = "google"',
    )
    h = _run(tmp_path, v2.url, body)
    try:
        assert h.settle() == Outcome.DONE
        log = h.journal.log_lines(h.engine.run_id, "auth")
        # The base URL came from ${APP_URL}: an address, so its host is shown (which app a check
        # reached matters), only credentials inside it would be masked.
        assert len(log) == 3 and all(line.startswith(f"GET {v2.url}/api/auth/session -> 200 in ") for line in log)
        assert h.engine.view().metrics["auth.failures"] == 0
        assert v2.requests == 3
    finally:
        h.close()


def test_every_kind_of_mismatch_is_reported(tmp_path: Path, v2: StandInServer) -> None:
    v2.break_path("/api/cases", 503)
    body = (
        _check("status", 'connection = "app"\nurl = "/api/cases"')
        + _check("value", 'connection = "app"\nurl = "/health"\njson_path = "$.app"\nequals = "v3"')
        + _check("text", 'connection = "app"\nurl = "/health"\nbody_contains = "healthy"')
        + _check("missing", 'connection = "app"\nurl = "/health"\njson_path = "$.version"\nequals = 2')
    )
    h = _run(tmp_path, v2.url, body)
    try:
        assert h.settle() == Outcome.FAILED
        reasons = {s: h.engine.step_runtime(s).reason for s in ("status", "value", "text", "missing")}
        assert reasons["status"] == "1 of 1 checks failed: check 1: status 503, expected 200"
        assert reasons["value"] == '1 of 1 checks failed: check 1: $.app is "v2", expected "v3"'
        assert reasons["text"] == "1 of 1 checks failed: check 1: body does not contain 'healthy'"
        assert reasons["missing"] == "1 of 1 checks failed: check 1: $.version: \"no key 'version'\""
    finally:
        h.close()


def test_latency_over_the_limit_fails(tmp_path: Path, v2: StandInServer) -> None:
    v2.latency = 0.3
    body = _check("fast", 'connection = "app"\nurl = "/health"\nmax_latency = "100ms"\nrepeat = 2\ninterval = "1s"')
    h = _run(tmp_path, v2.url, body)
    try:
        assert h.settle() == Outcome.FAILED
        reason = h.engine.step_runtime("fast").reason
        assert reason.startswith("2 of 2 checks failed: check 1: took ") and "over 100ms" in reason
        assert h.engine.view().metrics["fast.latency_ms"] >= 300
    finally:
        h.close()


def test_a_refused_connection_is_a_clear_failure(tmp_path: Path) -> None:
    body = _check("down", 'connection = "app"\nurl = "/health"\ntimeout = "2s"')
    h = _run(tmp_path, "http://127.0.0.1:1", body)
    try:
        assert h.settle() == Outcome.FAILED
        assert "ConnectError" in h.engine.step_runtime("down").reason
    finally:
        h.close()


def test_a_post_check_is_a_mutation_and_a_get_is_a_probe(tmp_path: Path, v2: StandInServer) -> None:
    body = _check("read", 'connection = "app"\nurl = "/health"') + _check(
        "write", 'connection = "app"\nurl = "/api/cases"\nmethod = "POST"\nexpect_status = [404, 405]'
    )
    h = _run(tmp_path, v2.url, body, dry_run=True)
    try:
        assert h.settle() == Outcome.DONE
        steps = h.engine.view().steps
        assert steps["read"].effect == "probe" and not steps["read"].not_run
        assert steps["write"].effect == "mutate" and steps["write"].not_run
        assert v2.requests == 1  # only the probe reached the server
    finally:
        h.close()


def _shell(step_id: str, argv: str, extra: str = "") -> str:
    return f'\n[[step]]\nid = "{step_id}"\nphase = "window"\nkind = "shell"\n{extra}\n[step.with]\nargv = {argv}\n'


def test_shell_streams_output_with_env_and_cwd(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    body = (
        _shell("env", '["sh", "-c", "pwd; echo $GREETING; echo to-stderr >&2; printf no-newline"]', "")
        + 'env = { GREETING = "hello ${WHO}" }\ncwd = "work"\n'
    )
    h = Harness(tmp_path, body, env={"WHO": "operator-name"}).start()
    try:
        assert h.settle() == Outcome.DONE
        log = h.journal.log_lines(h.engine.run_id, "env")
        assert log[0] == str(tmp_path / "work")
        assert log[1] == "hello ••••••"  # a ${VAR} value is a secret everywhere it appears
        assert "to-stderr" in log and log[-1] == "no-newline"
    finally:
        h.close()


def test_shell_non_zero_exit_fails_and_a_missing_command_says_so(tmp_path: Path) -> None:
    body = _shell("bad", '["sh", "-c", "exit 3"]') + _shell("ghost", '["definitely-not-a-command-xyz"]')
    h = Harness(tmp_path, body).start()
    try:
        assert h.settle() == Outcome.FAILED
        assert h.engine.step_runtime("bad").reason == "sh exited with status 3"
        assert h.engine.step_runtime("ghost").reason == "command not found: definitely-not-a-command-xyz"
    finally:
        h.close()


def test_cancelling_a_shell_step_kills_its_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    body = _shell("tree", f'["sh", "-c", "sleep 60 & echo $! > {pidfile}; wait"]')
    h = Harness(tmp_path, body).start()
    try:
        h.wait_for(lambda: pidfile.exists() and pidfile.read_text().strip())
        child = int(pidfile.read_text())
        h.engine.cancel("tree", h.engine.operator)
        h.wait_state("tree", "cancelled", timeout=10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the grandchild `sleep 60` survived the cancellation")
    finally:
        h.close()
