"""A connection's settings that are no secret (an SMTP server's TLS mode and rate) never mask the
same text elsewhere: a rate of 1000 must not turn every "COPY 1000" of a log into dots."""

from __future__ import annotations

from pathlib import Path

from datapath import log_of
from fakes import HEADER, Harness

SMTP = """
[connections.mail]
kind = "smtp"
host = "${SMTP_HOST}"
port = "${SMTP_PORT}"
tls = "${SMTP_TLS}"
username = "${SMTP_USERNAME}"
password = "${SMTP_PASSWORD}"
sender = "Ops <ops@example.test>"
rate = "${SMTP_RATE}"
"""

ECHO = """
[[step]]
id = "echo"
phase = "window"
kind = "shell"
with = { argv = ["sh", "-c", "echo COPY 1000, tls none, password hunter2-secret"] }
"""


def test_an_smtp_connection_s_rate_and_tls_mode_are_not_masked_its_password_is(tmp_path: Path) -> None:
    env = {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": "2525",
        "SMTP_TLS": "none",
        "SMTP_USERNAME": "ops",
        "SMTP_PASSWORD": "hunter2-secret",
        "SMTP_RATE": "1000",
    }
    h = Harness(tmp_path, ECHO, header=HEADER + SMTP, env=env).start()
    try:
        h.settle()
        assert "COPY 1000, tls none, password ••••••" in log_of(h, "echo")
    finally:
        h.close()
