"""Deterministic screens of the PERM Tracker runbook for snapshots: frozen clock, fixed states.

The engine is opened but not started, and step states are set directly, so every render of a
scene is identical: the header's clock is frozen and durations come from fixed wall times.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from conftest import copy_example

from cockpit import runbook_loader
from cockpit.app import CockpitApp, make_app
from cockpit.clock import FrozenClock
from cockpit.engine import Engine
from cockpit.engine.rollback_state import RollbackState
from cockpit.engine.step_runtime import Gate, ProgressState
from cockpit.events import RunState, StepReport, StepState
from cockpit.journal import Journal, journal_dir
from cockpit.lock import RunLock
from cockpit.operator import Operator
from cockpit.session import Session
from cockpit.triggers import TriggerWatch

ENV = {
    "V1_DATABASE_URL": "postgresql://postgres@127.0.0.1:5/permtracker",
    "V1_URL": "http://127.0.0.1:6",
    "V2_URL": "http://127.0.0.1:7",
    "CONVEX_URL": "http://127.0.0.1:8",
    "CONVEX_DEPLOY_KEY": "prod:snapshot|0",
    "VERCEL_TOKEN": "snapshot-token",
    "VERCEL_API_URL": "http://127.0.0.1:9",
    "SMTP_HOST": "127.0.0.1",
    "SMTP_PORT": "10",
    "SMTP_TLS": "none",
    "SMTP_USERNAME": "announcer",
    "SMTP_PASSWORD": "snapshot-password",
    "SMTP_RATE": "10",
    "OPERATOR_EMAIL": "operator@permtracker.test",
    "RENDER_API": "http://127.0.0.1:11/render",
    "RENDER_API_KEY": "rnd_snapshot_token",
    "RENDER_SERVICE_ID": "srv-snapshot",
    "SUPABASE_API": "http://127.0.0.1:11/supabase",
    "SUPABASE_ACCESS_TOKEN": "sbp_snapshot_token",
    "SUPABASE_PROJECT_REF": "snapshotref",
    "CALENDAR_API": "http://127.0.0.1:12/",
    "CALENDAR_TOKEN_URI": "http://127.0.0.1:12/token",
    "GOOGLE_CLIENT_ID": "snapshot.apps.googleusercontent.com",
    "GOOGLE_CLIENT_SECRET": "snapshot-client-secret",
    "CALENDAR_TOKEN_KEY": "snapshot-fernet-key",
}
WALL = 1_800_000_000.0  # a fixed "now" for durations


def perm_session(folder: Path, at: timedelta) -> Session:
    copy_example(folder)
    rb = runbook_loader.load(folder / "runbook.toml", env=ENV)
    lock = RunLock(journal_dir(rb.source) / "run.lock")
    lock.acquire("snapshot", "test")
    journal = Journal.for_runbook(rb.source)
    clock = FrozenClock(rb.t0 + at)
    engine = Engine(rb, journal, clock=clock, operator=Operator("dana"), rehearsal=True, env=ENV)
    engine.open()
    return Session(rb, journal, lock, engine, clock)


def _finish(
    engine: Engine,
    step_id: str,
    seconds: float,
    state: StepState = StepState.SUCCEEDED,
    reason: str = "",
    ago: float = 60.0,
) -> None:
    rt = engine.step_runtime(step_id)
    rt.state = state
    rt.attempt = max(rt.attempt, 1)
    if state == StepState.SUCCEEDED:
        engine.live.completions += 1
        rt.completed_seq = engine.live.completions
    rt.started_wall = WALL - ago - seconds
    rt.ended_wall = WALL - ago
    rt.started_clock = engine.clock.now() - timedelta(seconds=ago + seconds)
    rt.ended_clock = engine.clock.now() - timedelta(seconds=ago)
    rt.reason = reason


def _running(engine: Engine, step_id: str, seconds: float, progress: tuple[float, float, str] | None = None) -> None:
    rt = engine.step_runtime(step_id)
    rt.state = StepState.RUNNING
    rt.attempt = 1
    rt.started_wall = WALL - seconds
    rt.started_clock = engine.clock.now() - timedelta(seconds=seconds)
    import threading

    rt.cancel = threading.Event()  # marks a live attempt, for the views
    if progress is not None:
        done, total, unit = progress
        rt.progress[engine.runbook.step(step_id).label] = ProgressState(
            engine.runbook.step(step_id).label, done, total, unit, rate=done / seconds
        )


def _log(session: Session, step_id: str, lines: list[str]) -> None:
    session.journal.append_logs(session.engine.run_id, [(step_id, n, 1, WALL, line) for n, line in enumerate(lines, 1)])
    session.engine.step_runtime(step_id).log_count = len(lines)


BEFORE_WINDOW = [
    "announce-30d",
    "audit-emails",
    "remind-7d",
    "migrate",
    "dns-ttl",
    "remind-1d",
    "export",
    "transform",
    "import",
    "resolve",
    "sync-baseline",
    "v1-health",
    "v2-health",
    "source-counts",
    "go-no-go",
]


def _window_opened(folder: Path, at: timedelta) -> Session:
    """Everything before the window done, and v1 frozen at T-0."""
    session = perm_session(folder, at)
    engine = session.engine
    since = at.total_seconds()
    for n, step in enumerate(BEFORE_WINDOW):
        _finish(engine, step, 0.3 + n * 0.2, ago=3600.0)
    _finish(engine, "read-only", 0.42, ago=since - 2)
    _finish(engine, "v1-refuses-writes", 0.07, ago=since - 4)
    _log(
        session,
        "read-only",
        [
            "ALTER DATABASE permtracker SET default_transaction_read_only = on",
            "ended 1 open session(s) so they reconnect with the new default: 1 of authenticator",
            "proved: a write as authenticator is refused (25006 read-only transaction)",
        ],
    )
    return session


SYNC_LOG = [
    "users (auth.users): read 6 (changes since the watermark) in 0.1s",
    "  inserted 2, updated 4, unchanged 0, deleted 0",
    "cases (public.cases): read 212 (changes since the watermark) in 1.6s",
    "  inserted 31, updated 181, unchanged 0, deleted 4",
    "userSettings (public.user_settings): read 9 (changes since the watermark) in 0.1s",
    "  inserted 2, updated 7, unchanged 0, deleted 0",
    "userPreferences (public.user_preferences): read 3 (changes since the watermark) in 0.1s",
    "  inserted 2, updated 1, unchanged 0, deleted 0",
    "notifications (public.notifications): read 3,041 (every row) in 1.9s",
    "  inserted 96, updated 58, unchanged 2,887, deleted 55",
]


def window_in_progress(folder: Path) -> Session:
    """T+1m: v1 is frozen and the day's changes are synced; the backup runs, and the
    verifications read v2 (the sample is halfway)."""
    session = _window_opened(folder, timedelta(minutes=1))
    engine = session.engine
    _finish(engine, "sync", 3.8, ago=52)
    _finish(engine, "verify-counts", 1.2, ago=50)
    _finish(engine, "verify-refs", 2.9, ago=48)
    _finish(engine, "verify-calc", 0.8, ago=50)
    _running(engine, "backup", 56.0, (14_200_000, 24_500_000, "bytes"))
    _running(engine, "verify-sample", 47.0, (620, 1000, "rows"))
    _log(session, "sync", SYNC_LOG)
    return session


DATA_PATH = ["sync", "backup", "verify-counts", "verify-refs", "verify-sample", "verify-calc"]


def smoke_failed_and_rolling_back(folder: Path) -> Session:
    """T+3m: the dashboard check failed, its trigger fired, the rollback is running."""
    session = window_in_progress(folder)
    engine = session.engine
    engine.clock.advance(8 * 60)  # type: ignore[attr-defined]
    for n, step in enumerate(DATA_PATH):
        _finish(engine, step, 20.0 - n * 2, ago=400 - n * 40)
    _finish(engine, "dns-cutover", 0.4, ago=150)
    _finish(engine, "dns-propagation", 61.0, ago=60)
    _finish(engine, "smoke-auth", 6.4, ago=40)
    _finish(engine, "smoke-latency", 10.2, StepState.CANCELLED, "cancelled by the rollback", ago=30)
    _finish(
        engine,
        "smoke-cases",
        4.2,
        StepState.FAILED,
        "3 of 3 checks failed: check 1: status 503, expected 200; check 2: status 503, expected 200; "
        "check 3: status 503, expected 200",
        ago=45,
    )
    _log(
        session,
        "smoke-cases",
        [f"GET http://127.0.0.1:7/api/cases?limit=5 -> 503 in {n} ms: status 503, expected 200" for n in (6, 4, 5)],
    )
    now = engine.clock.now()
    engine.live.triggers = TriggerWatch(
        engine.runbook, engine.plan, {"critical-feature": (now - timedelta(seconds=44), "step 'smoke-cases' is failed")}
    )
    engine.live.state = RunState.ROLLING_BACK
    engine.live.rollback = RollbackState(
        reason="trigger 'critical-feature' (Critical feature broken): step 'smoke-cases' is failed",
        trigger_id="critical-feature",
        deadline=now + timedelta(minutes=9, seconds=16),
        plan=["read-write", "announce-rollback", "post-mortem"],
        position=0,
    )
    _running(engine, "read-write", 0.2)
    return session


def _server(
    name: str,
    address: str,
    state: str,
    answer: list[str],
    ttl: int | None,
    ago: float,
    history: list[str],
    **extra: Any,
) -> dict[str, Any]:
    checked = datetime.fromtimestamp(WALL - ago, UTC).isoformat(timespec="seconds")
    return {
        "name": name,
        "address": address,
        "port": 53,
        "filtering": False,
        "state": state,
        "answer": answer,
        "ttl": ttl,
        "serial": None,
        "ms": 12.0,
        "tcp": False,
        "detail": "",
        "checked": checked,
        "history": [{"at": checked, "state": h} for h in history],
        **extra,
    }


def dns_report() -> dict[str, Any]:
    """A propagation check halfway: some caches still old, one filtering, two not answering."""
    v1, v2 = "192.0.2.10", "198.51.100.20"
    resolvers = [
        _server("Google", "8.8.8.8", "new", [v2], 300, 4, ["old", "new"]),
        _server("Google", "8.8.4.4", "new", [v2], 299, 4, ["old", "new"]),
        _server("Cloudflare", "1.1.1.1", "old", [v1], 112, 4, ["old"]),
        _server("Cloudflare", "1.0.0.1", "new", [v2], 300, 4, ["old", "new"]),
        _server("Quad9", "9.9.9.9", "old", [v1], 41, 4, ["old"]),
        _server("OpenDNS", "208.67.222.222", "nxdomain", [], None, 4, ["old", "nxdomain"]),
        _server("Comodo", "8.26.56.26", "timeout", [], None, 2, ["timeout"], detail="no answer in 2s"),
        _server("DNS.Watch", "84.200.69.80", "servfail", [], None, 4, ["servfail"]),
        _server("AdGuard", "94.140.14.14", "other", ["0.0.0.0"], 0, 4, ["other"], filtering=True),
    ]
    authoritative = [
        _server("ns1.vercel-dns.com", "198.51.44.1", "new", [v2], 300, 4, ["old", "new"], serial=2),
        _server("ns2.vercel-dns.com", "198.51.45.1", "new", [v2], 300, 4, ["new"], serial=2),
    ]
    eta = datetime.fromtimestamp(WALL + 180, UTC).isoformat(timespec="seconds")
    return {
        "name": "app.permtracker.test",
        "type": "A",
        "expect": [v2],
        "old": [v1],
        "round": 7,
        "require": {"authoritative": "all", "resolvers": 0.9},
        "summary": {
            "held": False,
            "new": 3,
            "counted": 6,
            "eligible": 8,
            "fraction": 0.5,
            "authoritative_new": 2,
            "authoritative": 2,
            "serials": [2, 2],
            "serials_agree": True,
            "changed_at": None,
            "old_ttl": 300,
            "eta": eta,
            "reason": "50% of resolvers new, 90% required",
        },
        "resolvers": resolvers,
        "authoritative": authoritative,
    }


def dns_propagating(folder: Path) -> Session:
    """T+12m: the data path verified, DNS switched, and the check halfway through."""
    session = window_in_progress(folder)
    engine = session.engine
    engine.clock.advance(7 * 60)  # type: ignore[attr-defined]
    for n, step in enumerate(DATA_PATH):
        _finish(engine, step, 20.0 - n * 2, ago=400 - n * 40)
    _finish(engine, "dns-cutover", 0.4, ago=62)
    _running(engine, "dns-propagation", 61.0)
    report = StepReport(
        step_id="dns-propagation",
        attempt=1,
        topic="dns.propagation",
        data=json.dumps(dns_report()),
        wall=WALL,
        clock=engine.clock.now(),
    )
    session.journal.record(engine.run_id, report)
    _log(
        session,
        "dns-propagation",
        ["round 7: 3 of 6 resolvers new (50%), 2 not answering · authoritative 2/2 new, serial 2 · ETA 03:03:00"],
    )
    return session


SMOKE = ["smoke-auth", "smoke-cases", "smoke-latency"]


def ponr_waiting(folder: Path) -> Session:
    """T+22m: the smoke tests passed; opening v2 to users, the point of no return, asks."""
    session = window_in_progress(folder)
    engine = session.engine
    engine.clock.advance(17 * 60)  # type: ignore[attr-defined]
    for n, step in enumerate(DATA_PATH):
        _finish(engine, step, 20.0 - n * 2, ago=900 - n * 40)
    _finish(engine, "dns-cutover", 0.4, ago=600)
    _finish(engine, "dns-propagation", 61.0, ago=500)
    for step in SMOKE:
        _finish(engine, step, 6.0, ago=40)
    _running(engine, "open-v2", 12.0)
    rt = engine.step_runtime("open-v2")
    params = engine.runbook.step("open-v2").with_
    rt.gate = Gate("ask", params["question"], params["confirm"])
    rt.state = StepState.WAITING
    return session


def interrupted_after_restart(folder: Path) -> Session:
    """T+30s: the cockpit was killed during the window's sync and started again: the sync is
    interrupted (its committed batches stay in v2, and a retry continues after them)."""
    session = _window_opened(folder, timedelta(seconds=30))
    engine = session.engine
    _running(engine, "backup", 26.0, (6_100_000, 24_500_000, "bytes"))
    _running(engine, "sync", 24.0)
    rt = engine.step_runtime("sync")
    for label, done, total, unit in [("sync", 1, 5, "tables"), ("users", 6, 6, "rows"), ("cases", 1000, 2120, "rows")]:
        rt.progress[label] = ProgressState(label, done, total, unit)
    rt.state = StepState.INTERRUPTED
    rt.cancel = None
    rt.ended_wall = WALL - 20
    rt.reason = "the cockpit stopped while this step ran; retry (continues from its checkpoint), skip or mark done"
    _log(session, "sync", [*SYNC_LOG[:2], "cases: 1,000 of 2,120 rows in, 1,000 written so far ..."])
    return session


def app_for(session: Session, **kwargs: Any) -> CockpitApp:
    return make_app(session, start_engine=False, refresh_interval=3600.0, **kwargs)
