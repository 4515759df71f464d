"""A trigger's `notify`: the firing mailed through a real SMTP server (aiosmtpd) and posted to a
webhook on loopback, how each went shown as an alert; a bad notify refused by `cockpit check`."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from fakes import HEADER, Harness, load, write_runbook

from cockpit.events import Alert
from cockpit.runbook import RunbookError
from cockpit.sandbox.loopback import loopback_server
from cockpit.sandbox.mail import SandboxMailServer

pytestmark = pytest.mark.integration

MAIL = """
[connections.mail]
kind = "smtp"
host = "${SMTP_HOST}"
port = "${SMTP_PORT}"
tls = "none"
sender = "cockpit@permtracker.test"
"""
FAILING = """
[[step]]
id = "smoke"
phase = "window"
kind = "fake.work"
with = { fail_attempts = 1, fail_message = "auth answered 500" }

[[trigger]]
id = "smoke-failed"
title = "Authentication failing"
when = { step = "smoke", state = "failed" }
action = "alert"
notify = { connection = "mail", email = ["oncall@permtracker.test", "lead@permtracker.test"], webhook = "${HOOK}" }
"""


class Hook:
    """A webhook on loopback: records each POST's JSON, answers `status`."""

    def __init__(self, status: int = 200) -> None:
        self.posts: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                hook.posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = loopback_server(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T000/s3cr3t-hook-token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mail(tmp_path: Path) -> Iterator[SandboxMailServer]:
    server = SandboxMailServer(tmp_path / "mailbox").start()
    try:
        yield server
    finally:
        server.stop()


def alerts(h: Harness) -> list[str]:
    return [e.message for e in h.of_type(Alert)]


@pytest.mark.parametrize("status", [200, 404])
def test_a_firing_is_mailed_and_posted_and_the_screen_says_how_that_went(
    tmp_path: Path, mail: SandboxMailServer, status: int
) -> None:
    hook = Hook(status)
    env = {**mail.env, "HOOK": hook.url}
    h = Harness(tmp_path, FAILING, header=HEADER + MAIL, env=env).start()
    try:
        h.wait_for(lambda: sum(m.startswith("Authentication failing: ") for m in alerts(h)) >= 3, 30)
        (arrival,) = mail.arrivals()
        assert sorted(arrival.recipients) == ["lead@permtracker.test", "oncall@permtracker.test"]
        assert arrival.message["Subject"] == "[cockpit] Test run: Authentication failing (alert)"
        assert "auth answered 500" in arrival.message.get_content()
        assert hook.posts[0]["trigger"] == "smoke-failed" and "auth answered 500" in hook.posts[0]["reason"]
        said = alerts(h)
        assert "Authentication failing: mailed to 2 of 2 addresses" in said
        if status == 200:
            assert "Authentication failing: posted to the webhook (200)" in said
        else:  # a webhook that refuses is asked once, and the screen says so
            assert len(hook.posts) == 1
            assert "Authentication failing: could not post to the webhook: the webhook answered HTTP 404" in said
        assert not any("s3cr3t-hook-token" in m for m in said)
    finally:
        h.close()
        hook.stop()


@pytest.mark.parametrize(
    ("notify", "problem"),
    [
        ('{ email = ["a@example.com"] }', "notify.email needs notify.connection"),
        ('{ connection = "nowhere", email = ["a@example.com"] }', "notify.connection 'nowhere' is not a connection"),
        ('{ webhook = "ftp://example.com/x" }', "is not an http(s) URL"),
        ("{ }", "notify needs email (with connection) or webhook"),
    ],
)
def test_cockpit_check_refuses_a_notify_that_cannot_be_delivered(tmp_path: Path, notify: str, problem: str) -> None:
    body = FAILING[: FAILING.index("notify = ")] + f"notify = {notify}\n"
    path = write_runbook(tmp_path, body, HEADER + MAIL)
    with pytest.raises(RunbookError) as refused:
        load(path, {"SMTP_HOST": "h", "SMTP_PORT": "25"})
    assert problem in str(refused.value)
    assert "runbook.toml:" in str(refused.value)
