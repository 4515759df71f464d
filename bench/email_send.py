"""An announcement to 1,000 users: `email.send` against smtplib sending the same messages in a
plain loop, both to the same aiosmtpd mail server on loopback, one after the other.

The baseline is the least a sender can do: one connection, `send_message` per recipient, no
journal. `email.send` also renders each message, journals each outcome before the next message
and paces to the connection's rate (set far above either here, so only the work is measured).
The step's time is the cockpit's own record of it (`took_s` in `cockpit status --json`),
from a headless run in its own process.

    python bench/email_send.py [--messages 1000] [--json]
"""

from __future__ import annotations

import argparse
import json
import smtplib
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.table import print_table  # noqa: E402
from cockpit.sandbox.mail import SandboxMailServer  # noqa: E402

RUNBOOK = """[runbook]
name = "Announcement"
t0 = 2026-12-05T23:00:00-05:00
window = "30m"

[connections.mail]
kind = "smtp"
host = "127.0.0.1"
port = {port}
tls = "none"
sender = "PERM Tracker <hello@permtracker.test>"
rate = 10000

[[phase]]
id = "announce"
at = "T-0"

[[step]]
id = "announce"
phase = "announce"
kind = "email.send"
[step.with]
connection = "mail"
to = {to}
subject = "PERM Tracker - Brief Maintenance Window on {{window_start}}"
body_file = "announcement.md"
confirm = false
"""
COCKPIT = str(Path(sys.executable).parent / "cockpit")


def plain_loop(port: int, recipients: list[str], body: str) -> float:
    """smtplib alone: the same number of messages of the same size, over one connection."""
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as session:
        for address in recipients:
            message = EmailMessage()
            message["From"] = "PERM Tracker <hello@permtracker.test>"
            message["To"] = address
            message["Subject"] = "PERM Tracker - Brief Maintenance Window on Saturday 5 December 2026, 11:00 PM"
            message.set_content(body)
            session.send_message(message)
    return time.perf_counter() - started


def step_seconds(folder: Path) -> float:
    argv = [COCKPIT, "run", "runbook.toml", "--headless", "--rehearsal", "--speed", "100000"]
    subprocess.run(argv, cwd=folder, check=True, capture_output=True, timeout=600)
    status = subprocess.run(
        [COCKPIT, "status", "runbook.toml", "--json"], cwd=folder, check=True, capture_output=True, text=True
    )
    step = json.loads(status.stdout)["steps"]["announce"]
    if step["state"] != "succeeded":
        raise SystemExit(f"the announcement did not succeed: {step}")
    return float(step["took_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    recipients = [f"user{n}@example.com" for n in range(args.messages)]
    body = (ROOT / "comms" / "announcement.md").read_text()
    with tempfile.TemporaryDirectory(prefix="cockpit-bench-mail-") as tmp:
        folder = Path(tmp)
        server = SandboxMailServer(folder / "mailbox").start()
        try:
            baseline_s = plain_loop(server.port, recipients, body)
            (folder / "announcement.md").write_text(body)
            (folder / "runbook.toml").write_text(RUNBOOK.format(port=server.port, to=json.dumps(recipients)))
            step_s = step_seconds(folder)
            arrived = len(server.arrivals())
        finally:
            server.stop()
    if arrived != 2 * args.messages:
        raise SystemExit(f"{arrived} messages arrived, not {2 * args.messages}")
    figures = {
        "smtplib_messages_per_s": round(args.messages / baseline_s, 1),
        "step_messages_per_s": round(args.messages / step_s, 1),
        "step_vs_smtplib": round(baseline_s / step_s, 2),
    }
    if args.json:
        print(json.dumps({"email_send": figures}))
        return
    print_table(
        [
            ("email, smtplib in a plain loop, messages/s", figures["smtplib_messages_per_s"], "baseline"),
            ("email, email.send, messages/s", figures["step_messages_per_s"], ""),
            ("email, email.send / smtplib", figures["step_vs_smtplib"], ">= 0.5x"),
        ]
    )


if __name__ == "__main__":
    main()
