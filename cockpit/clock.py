"""Durations, T-offsets, and the clocks the engine runs on.

Durations are written `90s`, `5m`, `1h30m`, `7d` (units d, h, m, s, ms, in that order);
offsets are a duration relative to T-0: `T-30d`, `T-0`, `T+24h`.

Two clocks share one interface. `RealClock` is wall time. `RehearsalClock` is compressed
time: it runs `speed` times faster than wall time and can jump over idle gaps, so a
rehearsal of a sixty-day plan passes in minutes. Steps never call `time.sleep`; they wait
on the clock with their cancellation event, so a compressed wait is a short real wait and a
cancelled step wakes at once.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Protocol

_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_UNIT_ORDER = ["d", "h", "m", "s", "ms"]
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")


class DurationError(ValueError):
    """A duration or offset that does not parse."""


def parse_duration(text: str) -> timedelta:
    """Parse `90s`, `5m`, `1h30m`, `7d`, `250ms`; `0` alone is accepted as zero."""
    if not isinstance(text, str):
        raise DurationError(f'a duration is a string such as "90s", not {type(text).__name__}')
    s = text.strip()
    if s == "0":
        return timedelta(0)
    if not s:
        raise DurationError('empty duration: use e.g. "90s", "5m", "1h30m", "7d"')
    pos = 0
    total = 0.0
    last_unit = -1
    while pos < len(s):
        m = _PART.match(s, pos)
        if not m:
            raise DurationError(f'bad duration {text!r}: use e.g. "90s", "5m", "1h30m", "7d"')
        unit = _UNIT_ORDER.index(m.group(2))
        if unit <= last_unit:
            raise DurationError(f"bad duration {text!r}: units must go from largest to smallest, once each")
        last_unit = unit
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    return timedelta(seconds=total)


def parse_offset(text: str) -> timedelta:
    """Parse a T-offset (`T-30d`, `T-0`, `T+24h`) into a signed timedelta from T-0."""
    if not isinstance(text, str):
        raise DurationError(f'an offset is a string such as "T-30d", not {type(text).__name__}')
    s = text.strip()
    if s in ("T", "T0", "T-0", "T+0"):
        return timedelta(0)
    if len(s) < 3 or s[0] != "T" or s[1] not in "+-":
        raise DurationError(f'bad offset {text!r}: use e.g. "T-30d", "T-0", "T+24h"')
    try:
        magnitude = parse_duration(s[2:])
    except DurationError as exc:
        raise DurationError(f'bad offset {text!r}: use e.g. "T-30d", "T-0", "T+24h"') from exc
    return -magnitude if s[1] == "-" else magnitude


def format_duration(delta: timedelta | float, *, precise: bool = False) -> str:
    """Render a duration compactly: `1d2h`, `5m03s`, `42s`, `850ms`."""
    seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if precise and 0 < seconds < 1:
        return f"{sign}{int(seconds * 1000)}ms"
    if precise and seconds < 10:
        return f"{sign}{seconds:.1f}s"
    whole = int(seconds + 0.5) if not precise else int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days}d{hours}h" if hours else f"{sign}{days}d"
    if hours:
        return f"{sign}{hours}h{minutes:02d}m"
    if minutes:
        return f"{sign}{minutes}m{secs:02d}s"
    return f"{sign}{secs}s"


def format_offset(delta: timedelta) -> str:
    """Render a signed offset from T-0 as `T-30d`, `T+0`, `T+1h30m`."""
    seconds = delta.total_seconds()
    if abs(seconds) < 0.5:
        return "T-0"
    return ("T-" if seconds < 0 else "T+") + _exact_duration(abs(seconds))


def _exact_duration(seconds: float) -> str:
    whole = int(round(seconds))
    parts = []
    for unit in ("d", "h", "m", "s"):
        size = int(_UNIT_SECONDS[unit])
        n, whole = divmod(whole, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts) or "0s"


def format_t_clock(now: datetime, t0: datetime) -> str:
    """The header's T-clock: `T-12d 04:03:02`, `T-00:12:03`, `T+00:04:10`."""
    seconds = (now - t0).total_seconds()
    sign = "-" if seconds < 0 else "+"
    whole = int(abs(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"T{sign}{days}d {clock}" if days else f"T{sign}{clock}"


class Clock(Protocol):
    """What the engine and the steps know about time."""

    speed: float

    def now(self) -> datetime:
        """The current (possibly compressed) time, timezone-aware."""

    def sleep(self, seconds: float, cancel: threading.Event | None = None) -> bool:
        """Wait `seconds` of clock time; True if `cancel` was set first."""

    def sleep_until(self, when: datetime, cancel: threading.Event | None = None) -> bool:
        """Wait until clock time `when`; True if `cancel` was set first."""

    def real_seconds(self, clock_seconds: float) -> float:
        """How many wall seconds pass while the clock advances `clock_seconds`."""

    def real_time(self) -> AbstractContextManager[None]:
        """A block during which the clock runs at wall speed (a no-op but in a rehearsal)."""

    def compressed(self) -> AbstractContextManager[None]:
        """Inside a `real_time` block: a stretch during which that hold is let go (a wait)."""


class _ClockBase:
    speed: float = 1.0
    # Sleepers wake at least this often to notice jumps of the rehearsal clock.
    _POLL = 0.05

    def __init__(self) -> None:
        self._changed = threading.Condition()

    def now(self) -> datetime:  # pragma: no cover - abstract
        raise NotImplementedError

    def real_seconds(self, clock_seconds: float) -> float:
        return clock_seconds / self.speed

    def real_time(self) -> AbstractContextManager[None]:
        """While held, time passes as on the wall: see RehearsalClock.real_time."""
        return contextlib.nullcontext()

    def compressed(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def sleep(self, seconds: float, cancel: threading.Event | None = None) -> bool:
        return self.sleep_until(self.now() + timedelta(seconds=max(0.0, seconds)), cancel)

    def sleep_until(self, when: datetime, cancel: threading.Event | None = None) -> bool:
        while True:
            if cancel is not None and cancel.is_set():
                return True
            remaining = (when - self.now()).total_seconds()
            if remaining <= 0:
                return False
            step = min(self.real_seconds(remaining), self._POLL if self.speed != 1.0 else 0.25)
            if cancel is not None:
                if cancel.wait(step):
                    return True
            else:
                with self._changed:
                    self._changed.wait(step)


class RealClock(_ClockBase):
    """Wall-clock time in UTC."""

    speed = 1.0

    def now(self) -> datetime:
        return datetime.now(UTC)


class RehearsalClock(_ClockBase):
    """Compressed time: `speed` times faster than wall time, able to jump ahead.

    `glide` makes a jump visible: instead of teleporting, the clock sweeps to the target over
    that many wall seconds (an operator watching a demo sees the T-clock run), and an
    `interrupt_glide` (something became ready) ends the sweep where it is.
    """

    def __init__(self, start: datetime, speed: float = 60.0, glide: float = 0.0) -> None:
        super().__init__()
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._speed = float(speed)
        self._held = 0
        self.glide = glide
        self._lock = threading.Lock()
        self._base_clock = start
        self._base_real = time.monotonic()
        self._glide_target: datetime | None = None
        self._glide_rate = 0.0

    @property
    def speed(self) -> float:
        """The rehearsal's speed; 1 while a step holds real time."""
        return 1.0 if self._held > 0 else self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        with self._lock:
            real = time.monotonic()
            self._base_clock = self._now_locked(real)
            self._base_real = real
            self._speed = float(value)

    @contextlib.contextmanager
    def real_time(self) -> Iterator[None]:
        """Run at wall speed while the block runs. A step that waits on the real world (DNS caches
        expiring) holds it: a rehearsal cannot make a TTL pass faster, and its deadlines must
        mean what they say."""
        self._hold(+1)
        try:
            yield
        finally:
            self._hold(-1)

    @contextlib.contextmanager
    def compressed(self) -> Iterator[None]:
        """Let go of one `real_time` hold for the block: a working step that waits (between two
        checks, for the operator) waits on the compressed clock. Call it only inside a hold."""
        self._hold(-1)
        try:
            yield
        finally:
            self._hold(+1)

    def _hold(self, delta: int) -> None:
        with self._lock:
            real = time.monotonic()
            self._base_clock = self._now_locked(real)
            self._base_real = real
            self._glide_target = None
            self._held += delta
        with self._changed:
            self._changed.notify_all()

    def now(self) -> datetime:
        with self._lock:
            return self._now_locked(time.monotonic())

    def _now_locked(self, real: float) -> datetime:
        elapsed = real - self._base_real
        if self._glide_target is not None:
            candidate = self._base_clock + timedelta(seconds=elapsed * self._glide_rate)
            if candidate < self._glide_target:
                return candidate
            # The sweep is over: continue at the rehearsal's speed from the target.
            sweep_real = (self._glide_target - self._base_clock).total_seconds() / self._glide_rate
            self._base_clock = self._glide_target
            self._base_real += sweep_real
            self._glide_target = None
            elapsed = real - self._base_real
        return self._base_clock + timedelta(seconds=elapsed * self.speed)

    def jump_to(self, when: datetime) -> None:
        """Move the clock forward to `when` (never backwards)."""
        with self._lock:
            real = time.monotonic()
            current = self._now_locked(real)
            if when <= current or (self._glide_target is not None and when >= self._glide_target):
                return  # already there, or already sweeping towards it
            self._base_clock = current
            self._base_real = real
            distance = (when - current).total_seconds()
            if self.glide > 0 and distance / self.speed > self.glide:
                self._glide_target = when
                self._glide_rate = distance / self.glide
            else:
                self._base_clock = when
                self._glide_target = None
        with self._changed:
            self._changed.notify_all()

    @property
    def gliding(self) -> bool:
        with self._lock:
            self._now_locked(time.monotonic())
            return self._glide_target is not None

    def interrupt_glide(self) -> None:
        with self._lock:
            real = time.monotonic()
            current = self._now_locked(real)
            self._base_clock = current
            self._base_real = real
            self._glide_target = None


class FrozenClock(_ClockBase):
    """A clock that moves only when told: for deterministic tests and snapshots."""

    def __init__(self, start: datetime) -> None:
        super().__init__()
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)
        with self._changed:
            self._changed.notify_all()

    def jump_to(self, when: datetime) -> None:
        with self._lock:
            if when > self._now:
                self._now = when

    def sleep_until(self, when: datetime, cancel: threading.Event | None = None) -> bool:
        # Frozen time never reaches `when` by itself: wait for advance() or cancel.
        while True:
            if cancel is not None and cancel.is_set():
                return True
            if self.now() >= when:
                return False
            if cancel is not None:
                cancel.wait(0.01)
            else:
                time.sleep(0.01)
