from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from cockpit.clock import (
    DurationError,
    RehearsalClock,
    format_duration,
    format_offset,
    format_t_clock,
    parse_duration,
    parse_offset,
)

T0 = datetime(2026, 12, 5, 23, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("1h30m", 5400),
        ("7d", 604800),
        ("250ms", 0.25),
        ("0", 0),
        ("1d2h3m4s", 93784),
        ("1.5h", 5400),
    ],
)
def test_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "5x", "m5", "5m1h", "1h1h", "-5m", "5 m", "1h 30m"])
def test_bad_durations_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(DurationError) as exc:
        parse_duration(text)
    assert "90s" in str(exc.value) or "largest to smallest" in str(exc.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("T-30d", -30 * 86400), ("T-0", 0), ("T+24h", 86400), ("T+1h30m", 5400), ("T-5m", -300), ("T+0", 0)],
)
def test_offsets_parse(text: str, seconds: int) -> None:
    assert parse_offset(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["30d", "T30d", "T-", "T-x", "t-5m", "T--5m", "T+5 m"])
def test_bad_offsets_are_refused(text: str) -> None:
    with pytest.raises(DurationError, match="T-30d"):
        parse_offset(text)


def test_formatting() -> None:
    assert format_duration(timedelta(seconds=5400)) == "1h30m"
    assert format_duration(42) == "42s"
    assert format_duration(0.25, precise=True) == "250ms"
    assert format_duration(3.25, precise=True) == "3.2s"
    assert format_offset(timedelta(days=-30)) == "T-30d"
    assert format_offset(timedelta(seconds=90)) == "T+1m30s"
    assert format_offset(timedelta(0)) == "T-0"
    assert format_t_clock(T0 - timedelta(minutes=12, seconds=3), T0) == "T-00:12:03"
    assert format_t_clock(T0 + timedelta(days=1, seconds=5), T0) == "T+1d 00:00:05"


def test_rehearsal_clock_runs_speed_times_faster() -> None:
    clock = RehearsalClock(T0, speed=100)
    time.sleep(0.2)
    advanced = (clock.now() - T0).total_seconds()
    assert 15 <= advanced <= 60  # ~20 s of clock time in 0.2 s of wall time


def test_rehearsal_clock_jumps_forward_never_back() -> None:
    clock = RehearsalClock(T0, speed=1)
    clock.jump_to(T0 + timedelta(days=3))
    assert clock.now() >= T0 + timedelta(days=3)
    clock.jump_to(T0)
    assert clock.now() >= T0 + timedelta(days=3)


def test_gliding_jump_sweeps_to_the_target_in_about_the_glide_time() -> None:
    clock = RehearsalClock(T0, speed=1, glide=0.3)
    target = T0 + timedelta(days=10)
    clock.jump_to(target)
    time.sleep(0.1)
    middle = clock.now()
    assert T0 < middle < target  # on its way, not teleported
    clock.jump_to(target)  # asking again must not restart the sweep
    time.sleep(0.35)
    assert clock.now() >= target


def test_sleep_is_compressed_and_cancellable() -> None:
    clock = RehearsalClock(T0, speed=600)
    started = time.monotonic()
    assert clock.sleep(60) is False  # a minute of clock time
    assert time.monotonic() - started < 1.0
    cancel = threading.Event()
    threading.Timer(0.05, cancel.set).start()
    started = time.monotonic()
    assert clock.sleep(3600 * 24, cancel) is True
    assert time.monotonic() - started < 1.0


def test_real_time_holds_the_rehearsal_clock_at_wall_speed(monkeypatch: pytest.MonkeyPatch) -> None:
    import cockpit.clock

    wall = [1000.0]
    monkeypatch.setattr(cockpit.clock.time, "monotonic", lambda: wall[0])
    clock = RehearsalClock(T0, speed=100)
    wall[0] += 1  # 100 s of rehearsal time
    with clock.real_time():
        assert clock.speed == 1.0
        held_at = clock.now()
        wall[0] += 5
        assert clock.now() - held_at == timedelta(seconds=5)  # a DNS TTL passes as on the wall
        with clock.real_time():  # holds nest
            wall[0] += 1
        wall[0] += 1
        assert clock.now() - held_at == timedelta(seconds=7)
    assert clock.speed == 100
    released_at = clock.now()
    wall[0] += 1
    assert clock.now() - released_at == timedelta(seconds=100)
    assert released_at - T0 == timedelta(seconds=107)  # nothing lost or doubled at the switches
