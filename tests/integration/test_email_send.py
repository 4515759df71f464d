"""email.send against a real SMTP server (aiosmtpd, the sandbox's mail server) and real
PostgreSQL for the recipients: the preview and the test message, deduplication and exclusions,
refusals and deferrals, a refused login, a dry run, and a kill -9 in the middle of a send."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import COCKPIT, subprocess_env
from datapath import V1_CONNECTION, log_of
from fakes import HEADER, Harness, write_runbook

from cockpit.engine.views import Outcome
from cockpit.sandbox.mail import SandboxMailServer

pytestmark = pytest.mark.integration

SMTP = """
[connections.mail]
kind = "smtp"
host = "${SMTP_HOST}"
port = "${SMTP_PORT}"
tls = "none"
username = "${SMTP_USERNAME}"
password = "${SMTP_PASSWORD}"
sender = "PERM Tracker <hello@permtracker.test>"
rate = "${SMTP_RATE}"
"""
PASSWORD = "s3cret-smtp-pass"
USERS_SQL = "SELECT email, raw_user_meta_data->>'full_name' AS name FROM auth.users ORDER BY created_at"


def announce(with_: str, step_id: str = "announce") -> str:
    return f'\n[[step]]\nid = "{step_id}"\nphase = "window"\nkind = "email.send"\n\n[step.with]\n{with_}\n'


BY_SQL = f'''connection = "mail"
recipients_connection = "v1"
recipients_sql = "{USERS_SQL}"
subject = "PERM Tracker - maintenance on {{window_start}}"
body = "Hi {{name}},\\n\\nPERM Tracker is down for {{window_length}} from {{window_start}} ({{window_start_utc}}).\\n"
timezone = "America/New_York"
rate = 500
'''


@pytest.fixture
def mail(tmp_path: Path) -> Iterator[SandboxMailServer]:
    server = SandboxMailServer(tmp_path / "mailbox", username="cockpit", password=PASSWORD).start()
    try:
        yield server
    finally:
        server.stop()


def env_of(mail: SandboxMailServer, dsn: str | None = None, **more: str) -> dict[str, str]:
    return {**mail.env, **({"TEST_DSN": dsn} if dsn else {}), **more}


def run(folder: Path, body: str, env: dict[str, str], answer: bool | None = True, **options: object) -> Harness:
    h = Harness(folder, body, header=HEADER + V1_CONNECTION + SMTP, env=env, **options).start()
    if answer is not None:
        h.wait_for(lambda: h.engine.step_runtime("announce").gate is not None or h.state("announce") == "failed", 30)
        if h.engine.step_runtime("announce").gate is not None:
            h.engine.answer("announce", answer, h.engine.operator)
    h.settle(60)
    return h


def test_the_announcement_goes_to_each_user_once_after_a_preview_and_a_test_message(
    tmp_path: Path, perm_dsn: str, mail: SandboxMailServer
) -> None:
    (tmp_path / "exclude.txt").write_text("# decided after the audit\nUSER5@example.com\n")
    body = BY_SQL + 'exclude_file = "exclude.txt"\ntest_to = "ops@permtracker.test"\n'
    h = run(tmp_path, announce(body), env_of(mail, perm_dsn))
    try:
        assert h.state("announce") == "succeeded", h.engine.step_runtime("announce").reason
        arrivals = mail.arrivals()
        test, real = arrivals[0], arrivals[1:]
        assert test.recipients == ["ops@permtracker.test"] and test.message["Subject"].startswith("[TEST] ")
        addresses = [a.recipients[0] for a in real]
        # 100 users: user97 repeats user96 in capitals (one message), user5 is excluded.
        assert len(addresses) == 98 == len({a.lower() for a in addresses})
        assert "user5@example.com" not in addresses and "user89@example.com" in addresses  # trimmed
        assert len({a.message_id for a in arrivals}) == len(arrivals)
        first = real[0].message
        assert first["Subject"] == "PERM Tracker - maintenance on Saturday 5 December 2026, 6:00 PM EST"
        text = first.get_payload(decode=True).decode()
        assert "down for 30 minutes from Saturday 5 December 2026, 6:00 PM EST" in text
        assert "(Saturday 5 December 2026, 11:00 PM UTC)" in text
        assert text.startswith("Hi ") and "{name}" not in text
        log = log_of(h, "announce")
        assert "98 recipients; left out: 1 duplicate addresses, 1 on the exclusion list" in log
        assert "preview of the first of 98 messages" in log and "Subject: PERM Tracker - maintenance" in log
        assert PASSWORD not in log and "98 of 98 sent, 0 refused, 0 deferred" in log
        assert h.engine.view().metrics["email.sent"] == 98
        listed = next((tmp_path / ".cockpit").rglob("recipients.jsonl"))
        assert stat.S_IMODE(listed.stat().st_mode) == 0o600
    finally:
        h.close()


def test_no_from_the_operator_sends_nothing_but_the_test_message(
    tmp_path: Path, perm_dsn: str, mail: SandboxMailServer
) -> None:
    h = run(tmp_path, announce(BY_SQL + 'test_to = "ops@permtracker.test"\n'), env_of(mail, perm_dsn), answer=False)
    try:
        assert h.state("announce") == "failed"
        assert h.engine.step_runtime("announce").reason == "the operator did not confirm the send"
        assert [a.recipients for a in mail.arrivals()] == [["ops@permtracker.test"]]
    finally:
        h.close()


def test_refused_recipients_are_listed_deferred_ones_tried_again_and_too_many_refusals_fail(
    tmp_path: Path, mail: SandboxMailServer
) -> None:
    to = [f"u{n}@example.com" for n in range(8)]
    mail.refuse("u2@example.com")
    mail.defer("u5@example.com")
    body = (
        f'connection = "mail"\nto = {json.dumps(to)}\nsubject = "Done"\nbody = "v2 is live."\nconfirm = false\n'
        'rate = 500\ndeferred_pause = "5m"\nmax_refused = 1\n'
    )
    h = Harness(tmp_path, announce(body), header=HEADER + V1_CONNECTION + SMTP, env=env_of(mail, "postgresql://x"))
    h.start()
    try:
        h.wait_for(lambda: "deferred; trying them again" in log_of(h, "announce"), 30)
        mail.defer("u5@example.com", on=False)  # the greylisting passes
        h.settle(60)
        assert h.state("announce") == "succeeded", h.engine.step_runtime("announce").reason
        assert sorted(a.recipients[0] for a in mail.arrivals()) == sorted(set(to) - {"u2@example.com"})
        log = log_of(h, "announce")
        assert "u***@example.com: refused: 550 5.1.1 <u2@example.com>: Recipient address rejected" in log
        assert "7 of 8 sent, 1 refused, 0 deferred" in log
        undelivered = next((tmp_path / ".cockpit").rglob("undelivered.tsv")).read_text()
        assert undelivered.startswith("u2@example.com\trefused\t550")
    finally:
        h.close()
    mail.refuse("u3@example.com")
    again = tmp_path / "again"
    again.mkdir()
    h = Harness(again, announce(body), header=HEADER + V1_CONNECTION + SMTP, env=env_of(mail, "postgresql://x"))
    h.start()
    try:
        assert h.settle(60) != Outcome.DONE
        assert h.engine.step_runtime("announce").reason == "2 recipients refused, more than max_refused = 1"
    finally:
        h.close()


def test_a_login_the_server_refuses_fails_the_step_clearly_and_sends_nothing(
    tmp_path: Path, mail: SandboxMailServer
) -> None:
    body = 'connection = "mail"\nto = ["a@example.com"]\nsubject = "s"\nbody = "b"\nconfirm = false\n'
    env = env_of(mail, "postgresql://x", SMTP_PASSWORD="wrong-password-1")
    h = Harness(tmp_path, announce(body), header=HEADER + V1_CONNECTION + SMTP, env=env).start()
    try:
        h.settle(30)
        reason = h.engine.step_runtime("announce").reason
        assert reason.startswith(f"the SMTP server at 127.0.0.1:{mail.port} refused the login of 'cockpit': 535")
        assert "wrong-password-1" not in reason + log_of(h, "announce")
        assert mail.arrivals() == []
    finally:
        h.close()


def test_a_dry_run_writes_each_message_as_an_eml_file_and_sends_none(
    tmp_path: Path, perm_dsn: str, mail: SandboxMailServer
) -> None:
    h = Harness(
        tmp_path, announce(BY_SQL), header=HEADER + V1_CONNECTION + SMTP, env=env_of(mail, perm_dsn), dry_run=True
    ).start()
    try:
        h.settle(60)
        assert h.state("announce") == "succeeded", h.engine.step_runtime("announce").reason
        files = sorted((tmp_path / ".cockpit").rglob("*.eml"))
        assert len(files) == 99 and mail.arrivals() == []
        assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
        assert b"Subject: PERM Tracker - maintenance on Saturday 5 December 2026" in files[0].read_bytes()
    finally:
        h.close()


@pytest.mark.parametrize(
    ("with_", "problem"),
    [
        ('subject = "Hi {first_name}"\nbody = "b"', "subject names {first_name}, which no message has"),
        ('subject = "s"\nbody = "Costs {"', "body: Single '{' encountered in format string"),
        ('subject = "s"\nbody_file = "comms/none.md"', "body_file comms/none.md: no such file"),
        ('subject = "s"\nbody = "b"\ntimezone = "Mars/Olympus"', "timezone 'Mars/Olympus' is not a zone name"),
        ('subject = "s"', "give the body as either `body` or `body_file`"),
    ],
)
def test_cockpit_check_refuses_a_template_or_zone_that_cannot_be_rendered(
    tmp_path: Path, with_: str, problem: str
) -> None:
    body = announce(f'connection = "mail"\nto = ["a@example.com"]\n{with_}')
    path = write_runbook(tmp_path, body, HEADER + V1_CONNECTION + SMTP)
    result = subprocess.run(
        [COCKPIT, "check", str(path)], env=subprocess_env(SMTP_HOST="h", SMTP_PORT="25"), capture_output=True, text=True
    )
    assert result.returncode == 2, result.stdout + result.stderr
    said = result.stdout + result.stderr
    assert problem in said, said
    assert "runbook.toml:" in said


KILLED = announce(
    'connection = "mail"\nto = {to}\nsubject = "Maintenance {{window_start}}"\nbody = "Hi {{email}}"\n'
    "confirm = false\nrate = 40\n"
)


def test_a_send_killed_and_resumed_reaches_every_recipient_with_one_message_id_each(
    tmp_path: Path, mail: SandboxMailServer
) -> None:
    to = [f"user{n}@example.com" for n in range(120)]
    write_runbook(tmp_path, KILLED.format(to=json.dumps(to)), HEADER + SMTP)
    env = subprocess_env(**mail.env)
    argv = [COCKPIT, "run", "runbook.toml", "--headless", "--rehearsal", "--speed", "100000"]
    kills = 0
    for at in (25, 70):  # twice: at about a quarter and again past the half
        proc = subprocess.Popen(
            [*argv, "--answer", "announce=retry"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while len(mail.arrivals()) < at and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
    finished = subprocess.run(
        [*argv, "--answer", "announce=retry"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-2000:]
    arrivals = mail.arrivals()
    per_recipient = Counter(a.recipients[0] for a in arrivals)
    assert set(per_recipient) == set(to)  # no one skipped
    ids = {r: {a.message_id for a in arrivals if a.recipients[0] == r} for r in to}
    assert all(len(i) == 1 for i in ids.values())  # one message per recipient, by Message-ID
    # A message is in doubt only if the kill fell between the server's 250 and the journal write.
    assert sum(per_recipient.values()) - len(to) <= kills


def test_a_secret_in_the_operators_question_is_masked_as_in_the_log(
    tmp_path: Path, perm_dsn: str, mail: SandboxMailServer
) -> None:
    body = BY_SQL + 'test_to = "${OPERATOR_EMAIL}"\n'
    env = env_of(mail, perm_dsn, OPERATOR_EMAIL="dana.ops@permtracker.test")
    h = Harness(tmp_path, announce(body), header=HEADER + V1_CONNECTION + SMTP, env=env).start()
    try:
        h.wait_for(lambda: h.engine.step_runtime("announce").gate is not None, 30)
        question = h.engine.step_runtime("announce").gate.question
        assert "a test message went to" in question and "dana.ops" not in question
        h.engine.answer("announce", False, h.engine.operator)
        h.settle(30)
        assert mail.arrivals()[0].recipients == ["dana.ops@permtracker.test"]
    finally:
        h.close()


def test_a_recipients_query_without_an_email_column_fails_clearly_and_sends_nothing(
    tmp_path: Path, perm_dsn: str, mail: SandboxMailServer
) -> None:
    body = BY_SQL.replace("SELECT email,", "SELECT email AS address,") + "confirm = false\n"
    h = run(tmp_path, announce(body), env_of(mail, perm_dsn), answer=None)
    try:
        reason = h.engine.step_runtime("announce").reason
        assert reason == "recipients_sql returns no `email` column (it returns address, name)"
        assert mail.arrivals() == []
    finally:
        h.close()
