"""Which documents of v2 lost their row in v1: v2's legacy ids that are no key of v1's.

Both come in byte order, a page at a time: v2's from the by_legacy_id index, v1's from the
primary key. Each page of legacy ids is compared with the keys up to its last one as sets, so
memory holds a page and its keys, never a table. The candidates are a proposal only: the caller
asks v1 for them again before deleting, so a difference in how the two sides order text, or a
row inserted during the walk, can never delete a document whose row exists.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator


def gone(key_batches: Iterable[list[str]], legacy_pages: Iterable[list[str]]) -> Iterator[list[str]]:
    """For each page of legacy ids (sorted), those that are no key of v1's (keys sorted too)."""
    batches = iter(key_batches)
    batch: list[str] = []
    position = 0
    exhausted = False
    for page in legacy_pages:
        if not page:
            continue
        last = page[-1]
        keys: set[str] = set()
        while True:
            end = bisect_right(batch, last, position)
            keys.update(batch[position:end])
            position = end
            if end < len(batch) or exhausted:
                break
            following = next(batches, None)
            if following is None:
                exhausted = True
                break
            batch, position = following, 0
        missing = [legacy for legacy in page if legacy not in keys]
        if missing:
            yield missing
