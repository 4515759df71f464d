"""The deletion walk: v2's legacy ids that are no key of v1's, page by page, whatever the
batches and pages look like; and the read-ahead that feeds it."""

from __future__ import annotations

import random
import threading

import pytest

from migrate.prefetch import prefetched
from migrate.sync_deletions import gone


def _chunks(items: list[str], sizes: random.Random, most: int) -> list[list[str]]:
    out, start = [], 0
    while start < len(items):
        size = sizes.randint(1, most)
        out.append(items[start : start + size])
        start += size
    return out


@pytest.mark.parametrize("seed", range(20))
def test_the_walk_finds_exactly_the_legacy_ids_v1_lacks(seed: int) -> None:
    rng = random.Random(seed)
    universe = sorted(f"{rng.getrandbits(32):08x}" for _ in range(400))
    keys = sorted(x for x in universe if rng.random() < 0.8)
    legacy = sorted(x for x in universe if rng.random() < 0.8)
    pages = _chunks(legacy, rng, 30) + [[]]  # an empty last page, as a table's end may be
    found = [x for batch in gone(_chunks(keys, rng, 50), pages) for x in batch]
    assert found == sorted(set(legacy) - set(keys))


def test_no_keys_at_all_means_every_legacy_id_is_gone() -> None:
    assert list(gone([], [["a", "b"], ["c"]])) == [["a", "b"], ["c"]]
    assert list(gone([["a", "b", "c"]], [])) == []


def test_read_ahead_keeps_order_and_raises_the_sources_error() -> None:
    assert list(prefetched(iter(range(100)), depth=3)) == list(range(100))

    def failing() -> object:
        yield 1
        raise RuntimeError("v1 went away")

    reader = prefetched(failing())  # type: ignore[arg-type]
    assert next(reader) == 1
    with pytest.raises(RuntimeError, match="v1 went away"):
        next(reader)


def test_closing_the_reader_stops_its_thread() -> None:
    started = threading.active_count()
    reader = prefetched(iter(range(10**9)), depth=1)
    assert next(reader) == 0
    reader.close()
    assert threading.active_count() == started
