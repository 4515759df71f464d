"""`cockpit demo --headless`: the sandbox, the PERM Tracker runbook, the rollback path."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from conftest import COCKPIT, ROOT, copy_example, subprocess_env

pytestmark = pytest.mark.integration


def _sandbox_processes() -> list[str]:
    out = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
    return [
        line
        for line in out.splitlines()
        if "cockpit-demo-pgdata-" in line or "cockpit-knot-" in line or "127.0.53." in line
    ]


def _step_log(folder: Path, step_id: str) -> str:
    """A step's whole log, as `cockpit status --log` prints it."""
    return subprocess.run(
        [COCKPIT, "status", "runbook.toml", "--log", step_id],
        cwd=folder,
        env=subprocess_env(),
        capture_output=True,
        text=True,
    ).stdout


def _demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    copy_example(tmp_path)
    return subprocess.run(
        [COCKPIT, "demo", "--headless", "--speed", "600", "--scale", "0.2", *args],
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _installed_wheel(tmp_path: Path) -> Path:
    """The cockpit built as a wheel and installed into a folder of its own, outside the checkout."""
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)]
    subprocess.run(build, check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("cutover_cockpit-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True, timeout=300)
    return target


def test_the_demo_from_an_installed_wheel_rehearses_the_whole_runbook_and_exits_0(tmp_path: Path) -> None:
    site = _installed_wheel(tmp_path)
    assert (site / "cockpit" / "example" / "runbook.toml").exists()
    assert (site / "cockpit" / "example" / "migration" / "perm-mapping.toml").exists()
    assert (site / "cockpit" / "example" / "migrations" / "001_v2_tables.json").exists()
    elsewhere = tmp_path / "operator"
    elsewhere.mkdir()
    before = _sandbox_processes()
    # The installed package comes first on the path: nothing is read from the checkout.
    env = {**subprocess_env(), "PYTHONPATH": str(site)}
    code = (
        "import sys; site = sys.argv.pop(1); import cockpit; "
        "assert cockpit.__file__.startswith(site), cockpit.__file__; from cockpit.cli import main; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(site), "demo", "--headless", "--speed", "600", "--scale", "0.2"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (elsewhere / "cockpit-demo" / "runbook.toml").exists(), result.stderr[-3000:]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "run 1 starts: PERM Tracker v1 to v2 (rehearsal)" in out
    for step in (
        "audit-emails",
        "migrate",
        "export",
        "transform",
        "import",
        "resolve",
        "sync-baseline",
        "read-only",
        "v1-refuses-writes",
        "backup",
        "sync",
        "verify-counts",
        "verify-refs",
        "verify-sample",
        "verify-calc",
        "dns-cutover",
        "dns-propagation",
        "smoke-auth",
        "open-v2",
        "supabase-off",
    ):
        assert f"{step:<22} succeeded" in out, step
    assert "run is done: every step succeeded or was skipped" in out
    assert "sandbox: seeding v1: 200 users, 2,000 cases" in result.stderr
    log = _step_log(elsewhere / "cockpit-demo", "audit-emails")
    assert "200 users," in log and "emails shared by" in log
    # The data path ran for real: every seeded case is a document in the Convex stand-in.
    log = _step_log(elsewhere / "cockpit-demo", "verify-counts")
    # v1's users kept adding cases until the window froze v1: as many in v2, none missing.
    assert re.search(r"public\.cases -> cases\s+([\d,]+)\s+0\s+\1\s+0\s+0\s+ok", log), log
    # Bulk-loaded the day before: the window's sync read only what changed since.
    log = _step_log(elsewhere / "cockpit-demo", "sync")
    assert re.search(r"^cases \(public\.cases\): read [\d,]+ \(changes since the watermark\)", log, re.M), log
    # The DNS cutover ran against the sandbox's Knot and resolvers, and the grid filled in.
    log = _step_log(elsewhere / "cockpit-demo", "dns-propagation")
    # Some cache still held v1's address at the first round, and switched later (which one
    # depends on when each cache was last filled).
    assert re.search(r"\w+ 127\.0\.53\.\d:53530: old -> new 198\.51\.100\.20", log), log
    assert (
        "holds: 5 of 5 resolvers new (100%), 2 not answering · authoritative 1/1 new, serial 3" in log
    )  # 2: dns-ttl at T-2d
    assert _sandbox_processes() == before  # PostgreSQL, Knot, dnsmasq and the stand-ins stopped with the demo


def test_a_broken_sign_in_rolls_the_go_live_back_and_exits_3(tmp_path: Path) -> None:
    result = _demo(tmp_path, "--break", "auth")
    assert result.returncode == 3, result.stdout[-3000:]
    out = result.stdout
    assert (
        "smoke-auth             failed       3 of 3 checks failed: check 1: status 500, expected 200; "
        "check 2: status 500, expected 200; check 3: status 500, expected 200"
    ) in out
    assert "TRIGGER auth-failing fired (rollback): step 'smoke-auth' is failed" in out
    assert "ROLLBACK starts" in out
    assert "plan: dns-restore, dns-ttl-back, dns-back, restore-v1, read-write, announce-rollback, post-mortem" in out
    assert "dns-restore            succeeded" in out and "read-write             succeeded" in out
    assert "dns-back               succeeded" in out  # the resolvers answer v1's address again
    assert "run is rolled_back" in out
    log = _step_log(tmp_path, "read-write")
    assert "proved: a write as authenticated is accepted" in log
    log = _step_log(tmp_path, "dns-restore")
    assert "restored: app.permtracker.test A 192.0.2.10 (TTL 10)" in log, log


def test_the_seeded_database_has_the_hostile_mix(postgres: object) -> None:
    from cockpit.sandbox.seed import SeedSize, seed

    dsn = postgres.create_database("seed_shape")  # type: ignore[attr-defined]
    counts = seed(dsn, SeedSize.for_scale(0.1))
    assert counts == {
        "auth.users": 100,
        "public.cases": 1000,
        "public.user_settings": 98,
        "public.user_preferences": 100,
        "public.notifications": 300,
    }
    with psycopg.connect(dsn) as conn:
        columns = conn.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'cases'")
        assert columns.fetchone() == (33,)
        notes = [r[0] for r in conn.execute("SELECT DISTINCT notes FROM cases WHERE notes IS NOT NULL")]
        assert any("\n" in n and "\\" in n and '"' in n for n in notes)
        assert any("✅" in n for n in notes)
        names = [r[0] for r in conn.execute("SELECT DISTINCT employer_name FROM cases")]
        assert "株式会社テスト" in names and "O'Brien & Sons" in names and "Back\\slash LLC" in names
        nulls = conn.execute("SELECT count(*) - count(pwd_wage_amount), max(pwd_wage_amount) FROM cases").fetchone()
        assert nulls is not None and nulls[0] > 0 and str(nulls[1]) == "99999999.99"
        dups = conn.execute(
            "SELECT count(*) FROM (SELECT lower(trim(email)) FROM auth.users WHERE email IS NOT NULL "
            "GROUP BY 1 HAVING count(*) > 1) d"
        ).fetchone()
        assert dups is not None and dups[0] >= 1
        again = seed(postgres.create_database("seed_shape_2"), SeedSize.for_scale(0.1))  # type: ignore[attr-defined]
        assert again == counts


def _kept_processes(state: Path) -> list[str]:
    out = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(state) in line or "127.0.53." in line or "cockpit-knot-" in line]


def test_a_killed_demo_leaves_nothing_running_and_the_next_one_continues_it(tmp_path: Path) -> None:
    import signal
    import time

    from cockpit.sandbox.world import state_folder

    copy_example(tmp_path)
    state = state_folder(tmp_path / "runbook.toml")
    first = subprocess.Popen(
        [COCKPIT, "demo", "--headless", "--speed", "60", "--scale", "0.1"],
        cwd=tmp_path,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert first.stdout is not None
    for line in first.stdout:  # into the window: v1 is read-only, the import under way
        if "export" in line and "succeeded" in line:
            break
    first.send_signal(signal.SIGKILL)
    first.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and [p for p in _kept_processes(state) if "dnsmasq" not in p]:
        time.sleep(0.1)
    # PostgreSQL and Knot die with the demo (their parent-death signal); dnsmasq drops its
    # privileges and with them that signal, so the next demo stops it.
    assert [p for p in _kept_processes(state) if "dnsmasq" not in p] == []
    second = _demo(tmp_path)  # (the copy of the runbook is made again, unchanged)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "sandbox: continuing the unfinished rehearsal (run 1)" in second.stderr
    assert "sandbox: v1 as the unfinished rehearsal left it" in second.stderr
    assert "seeding v1" not in second.stderr
    if "dnsmasq" in " ".join(_kept_processes(state)) or "left" in second.stderr:
        assert "sandbox: a sandbox that was killed left" in second.stderr
    assert "run 1 continues" in second.stdout
    assert "export                 succeeded" not in second.stdout.split("run 1 continues")[1]  # never again
    assert "run is done" in second.stdout
    assert _kept_processes(state) == []
    third = _demo(tmp_path, "--new")
    assert third.returncode == 0 and "seeding v1" in third.stderr and "run 2 starts" in third.stdout
    shutil.rmtree(state, ignore_errors=True)
