"""Faults the Convex stand-in injects on request: an error rate and 429s with Retry-After
before a request takes effect, latency, and dropped connections after it took effect (the
response is lost), the case that tests whether a client imports twice."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field


@dataclass
class Faults:
    error_rate: float = 0.0  # answer 500 before doing anything
    rate_limit_rate: float = 0.0  # answer 429 with Retry-After before doing anything
    retry_after: float = 0.2
    drop_rate: float = 0.0  # do the work, then close the connection without answering
    latency: float = 0.0
    paths: tuple[str, ...] = ("/api/",)  # which requests the faults apply to
    drop_next: dict[str, int] = field(default_factory=dict)  # path -> answers to lose next, after the work
    refuse_next: dict[str, list[int]] = field(default_factory=dict)  # path -> statuses to answer next, before it
    seed: int = 20261205
    injected: dict[str, int] = field(default_factory=dict)


class FaultDice:
    """Decides, request by request, which fault to inject; thread-safe, and seeded."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._lock = threading.Lock()
        self._random = random.Random(faults.seed)

    def applies_to(self, path: str) -> bool:
        return any(path.startswith(p) for p in self.faults.paths)

    def chance(self, rate: float) -> bool:
        with self._lock:
            return rate > 0 and self._random.random() < rate

    def take_drop(self, path: str) -> bool:
        with self._lock:
            left = self.faults.drop_next.get(path, 0)
            if left:
                self.faults.drop_next[path] = left - 1
            return left > 0

    def take_refusal(self, path: str) -> int | None:
        with self._lock:
            queue = self.faults.refuse_next.get(path)
            return queue.pop(0) if queue else None

    def count(self, kind: str) -> None:
        with self._lock:
            self.faults.injected[kind] = self.faults.injected.get(kind, 0) + 1
