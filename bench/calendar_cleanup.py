"""The calendar cleanup at scale: 1,000 users x 20 of v1's events, 10% of the API's calls
answered with a rate limit or a 503, against deleting the same events one call each.

Both runs use Google's own client against the Calendar stand-in on loopback, with the same
faults. `calendar.cleanup` (in a headless cockpit, its `took_s`) lists each user's events and
deletes them in batches, batching the rate-limited calls again; the baseline deletes event by
event with `execute(num_retries=...)`, as the research's script would, for a sample of the
users (its waits make it take minutes per hundred users), scaled to all. Reported: the HTTP
requests each made (the batch counts as one request on the wire, its calls count against the
quota), and the time of each.

    python bench/calendar_cleanup.py [--users 1000] [--events 20] [--faults 0.1] [--sample 40] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.table import print_table  # noqa: E402
from cockpit.sandbox.calendar import CalendarStandIn, Faults  # noqa: E402
from cockpit.sandbox.postgres import PostgresServer  # noqa: E402

COCKPIT = str(Path(sys.executable).parent / "cockpit")
RUNBOOK = """[runbook]
name = "Calendar cleanup"
t0 = 2026-12-05T23:00:00-05:00

[connections.v1]
kind = "postgres"
dsn = "{dsn}"

[connections.google]
kind = "google_calendar"
api_endpoint = "{url}"
token_uri = "{url}token"
client_id = "bench"
client_secret = "bench"

[[phase]]
id = "cleanup"
at = "T-0"

[[step]]
id = "calendar"
phase = "cleanup"
kind = "calendar.cleanup"
[step.with]
connection = "google"
users_connection = "v1"
users_sql = "SELECT user_id, email, refresh_token FROM calendar_tokens ORDER BY user_id"
marker = "PERM Tracker"
backoff = "100ms"
"""


def world(users: int, events: int, faults: float) -> CalendarStandIn:
    calendar = CalendarStandIn(Faults(rate=faults, seed=11)).start()
    for n in range(users):
        email = f"user{n:05d}@example.com"
        calendar.add_user(email, f"1//bench-{n}")
        for e in range(events):
            calendar.add_event(email, f"PWD deadline {e}", "Created by PERM Tracker")
    return calendar


def one_by_one(calendar: CalendarStandIn) -> float:
    """The research's script: list, then delete each event with the client's own retries."""
    from google.oauth2.credentials import Credentials
    from googleapiclient.discovery import build

    started = time.perf_counter()
    for email, user in list(calendar.users.items()):
        credentials = Credentials(
            token=None,
            refresh_token=user.refresh_token,
            token_uri=calendar.url + "token",
            client_id="b",
            client_secret="b",
        )
        service = build(
            "calendar",
            "v3",
            credentials=credentials,
            static_discovery=True,
            client_options={"api_endpoint": calendar.url},
        )
        token = None
        ids: list[str] = []
        while True:
            page = service.events().list(calendarId="primary", q="PERM Tracker", pageToken=token).execute(num_retries=8)
            ids += [e["id"] for e in page.get("items", [])]
            token = page.get("nextPageToken")
            if not token:
                break
        for event_id in ids:
            service.events().delete(calendarId="primary", eventId=event_id).execute(num_retries=8)
        if calendar.remaining(email):
            raise SystemExit(f"the one-by-one baseline left events of {email}")
    return time.perf_counter() - started


def requests_of(calendar: CalendarStandIn) -> int:
    return sum(calendar.counts[k] for k in ("token", "list", "batch")) + (
        calendar.counts["delete"] if not calendar.counts["batch"] else 0
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--faults", type=float, default=0.1)
    parser.add_argument(
        "--sample", type=int, default=40, help="users the one-by-one baseline runs for (its figures are scaled up)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    total = args.users * args.events
    server = PostgresServer(name="cockpit-bench-calendar").start()
    try:
        dsn = server.create_database("calendar_bench")
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE calendar_tokens (user_id text, email text, refresh_token text)")
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO calendar_tokens VALUES (%s, %s, %s)",
                    [(f"u{n:05d}", f"user{n:05d}@example.com", f"1//bench-{n}") for n in range(args.users)],
                )
        # The baseline waits out every rate limit call by call (the client sleeps up to 2^n s):
        # it runs for a sample of the users, and its figures are scaled to all of them.
        sample = min(args.sample, args.users)
        baseline = world(sample, args.events, args.faults)
        try:
            baseline_s = one_by_one(baseline) * args.users / sample
            baseline_requests = round(requests_of(baseline) * args.users / sample)
        finally:
            baseline.stop()
        calendar = world(args.users, args.events, args.faults)
        try:
            with tempfile.TemporaryDirectory(prefix="cockpit-bench-calendar-") as tmp:
                folder = Path(tmp)
                (folder / "runbook.toml").write_text(RUNBOOK.format(dsn=dsn, url=calendar.url))
                argv = [COCKPIT, "run", "runbook.toml", "--headless", "--rehearsal", "--speed", "100000"]
                subprocess.run(argv, cwd=folder, check=True, capture_output=True, timeout=3600)
                status = subprocess.run(
                    [COCKPIT, "status", "runbook.toml", "--json"],
                    cwd=folder,
                    check=True,
                    capture_output=True,
                    text=True,
                )
            step = json.loads(status.stdout)["steps"]["calendar"]
            if step["state"] != "succeeded" or any(calendar.remaining(u) for u in calendar.users):
                raise SystemExit(f"the cleanup did not clean every calendar: {step}")
            step_s = float(step["took_s"])
            step_requests = requests_of(calendar)
            faults = calendar.counts["fault"]
        finally:
            calendar.stop()
    finally:
        server.stop()
    figures = {
        "events": total,
        "step_http_requests": step_requests,
        "requests_vs_one_per_event": round(step_requests / total, 3),
        "step_faults_met": faults,
        "step_s": round(step_s, 2),
        "one_by_one_s": round(baseline_s, 2),
        "one_by_one_http_requests": baseline_requests,
        "step_vs_one_by_one_time": round(step_s / baseline_s, 2),
    }
    if args.json:
        print(json.dumps({"calendar_cleanup": figures}))
        return
    print_table(
        [
            ("calendar, events of v1 to delete", total, ""),
            ("calendar, one call per event: HTTP requests (sampled)", baseline_requests, "baseline"),
            ("calendar, calendar.cleanup: HTTP requests", step_requests, ""),
            ("calendar, requests / events", figures["requests_vs_one_per_event"], "<= 0.25x"),
            ("calendar, one call per event (s, sampled)", figures["one_by_one_s"], "baseline"),
            ("calendar, calendar.cleanup (s)", figures["step_s"], ""),
            ("calendar, cleanup / one by one, time", figures["step_vs_one_by_one_time"], "<= 0.5x"),
        ]
    )


if __name__ == "__main__":
    main()
