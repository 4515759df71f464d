"""The incremental sync from v1 to v2: each mapped table's changed rows, transformed as the
full transform does, upserted into Convex by legacy id with their references resolved, and the
documents whose row v1 no longer has deleted.

Each batch and the table's watermark after it commit in one Convex mutation
(convex/cockpitSync.ts), so a sync killed at any point, kill -9 included, resumes after the
last batch that committed: nothing is lost and nothing is written twice. Deletions are found
by walking v1's keys and v2's legacy ids side by side, both in byte order, in constant memory
(migrate/sync_deletions.py); they run once a table's changes are all in (not in a run that
`limit` cut short).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from migrate.dry_mutation import mutation
from migrate.prefetch import prefetched
from migrate.sync_deletions import gone
from migrate.sync_source import ChangedRow, Horizon, Source, Watermark
from steps.convex.client import ConvexClient
from steps.rows.documents import converted
from steps.rows.mapping import Mapping
from steps.rows.transformer import RowTransformer
from steps.rows.values import RejectRow

MODULE = "cockpitSync"
BATCH = 500  # documents per mutation: with a reference each, 1,000 index reads of Convex's 4,096
DELETE_BATCH = 1000
PROGRESS_EVERY_S = 2.0
# Legacy ids per query: Convex reads whole documents, and 4,000 of a few KB stay under its
# 16 MiB read per query (and its 32,000 documents scanned).
KEY_PAGE = 4000


class SyncRefused(ValueError):
    """A sync asked of tables the mapping lacks, or that v1 lacks: nothing was written."""


@dataclass
class TableSync:
    """What a sync did (or, dry, would do) to one table."""

    source: str
    target: str
    read: int = 0
    to_read: int = 0  # the rows this run reads, counted before the first batch (for a progress bar)
    processed: int = 0  # the rows of the batches that committed (a dry run's: that answered)
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    unresolved: int = 0
    rejected: list[str] = field(default_factory=list)  # "key: reason"
    incremental: bool = True
    from_watermark: bool = False  # False: every row was read (the first sync, or no updated_at)
    complete: bool = True  # False: `limit` stopped it before the end of its changes
    watermark: Watermark | None = None
    changes_s: float = 0.0  # looking at the table, reading, transforming and upserting its changed rows
    deletions_s: float = 0.0  # walking v1's keys against v2's legacy ids, and deleting

    def summary(self, took: str = "") -> str:
        """Two lines: what was read, and what it did."""
        how = "changes since the watermark" if self.from_watermark else "every row"
        counts = (
            f"inserted {self.inserted:,}, updated {self.updated:,}, unchanged {self.unchanged:,},"
            f" deleted {self.deleted:,}"
        )
        extra = []
        if self.unresolved:
            extra.append(f"{self.unresolved:,} references not resolved yet")
        if self.rejected:
            extra.append(f"{len(self.rejected):,} rows rejected")
        if not self.complete:
            extra.append("stopped at --limit: the rest next time, deletions then too")
        tail = "".join(f"; {e}" for e in extra)
        return f"{self.target} ({self.source}): read {self.read:,} ({how}){took}\n  {counts}{tail}"

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "table": self.target,
            "read": self.read,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "unresolved": self.unresolved,
            "rejected": self.rejected,
            "incremental": self.incremental,
            "from_watermark": self.from_watermark,
            "changes_s": round(self.changes_s, 3),
            "deletions_s": round(self.deletions_s, 3),
            "complete": self.complete,
            "watermark": None
            if self.watermark is None
            else {"updated_at": self.watermark.updated_at, "last_key": self.watermark.last_key},
        }


class Syncer:
    def __init__(
        self,
        mapping: Mapping,
        source: Source,
        convex: ConvexClient,
        *,
        log: Callable[[str], None],
        dry_run: bool = False,
        limit: int | None = None,
        progress: Callable[[TableSync], None] | None = None,
    ) -> None:
        """`progress` hears a table's figures as each of its batches commits."""
        self._mapping = mapping
        self._progress = progress
        self._source = source
        self._convex = convex
        self._log = log
        self._dry_run = dry_run
        self._limit = limit
        self._walker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-deletions")

    def close(self) -> None:
        self._walker.shutdown(wait=True)

    def tables(self, names: list[str]) -> list[str]:
        """The mapping's source tables for `names` (source or Convex names; all when empty), in
        the order references need: a table after the tables its rows refer to."""
        by_name = {source: source for source in self._mapping.tables}
        by_name.update({table.target: source for source, table in self._mapping.tables.items()})
        unknown = [name for name in names if name not in by_name]
        if unknown:
            known = ", ".join(self._mapping.tables)
            raise SyncRefused(f"the mapping {self._mapping.path} has no table {', '.join(unknown)} (it has {known})")
        wanted = [by_name[name] for name in names] or list(self._mapping.tables)
        missing = [source for source in wanted if not self._source.table_exists(source)]
        if missing:
            raise SyncRefused(f"v1 has no table {', '.join(missing)}")
        return _referenced_first(self._mapping, list(dict.fromkeys(wanted)))

    def target_of(self, source: str) -> str:
        return self._mapping.target_of(source)

    def watermarks(self) -> dict[str, Watermark]:
        return {
            str(mark["table"]): Watermark(mark.get("updatedAt"), mark.get("lastId"))
            for mark in self._convex.query(f"{MODULE}:watermarks")
        }

    def sync_table(self, source: str, since: Watermark | None) -> TableSync:
        started = time.monotonic()
        table = self._mapping.tables[source]
        key = table.primary_key or self._mapping.defaults.primary_key
        columns = self._source.columns(source)
        incremental = "updated_at" in columns
        ahead = self._source.stamped_ahead(source) if incremental else None
        if ahead is not None:
            self._log(
                f"{table.target}: updated_at reaches {ahead}, ahead of v1's clock: rows changed now would sort"
                " before a watermark, so every row is compared"
            )
            incremental = False
        result = TableSync(
            source,
            table.target,
            incremental=incremental,
            from_watermark=incremental and since is not None,
            watermark=since,
        )
        transform = self._mapping.compile(source, columns)
        references = [
            {"legacyField": r.legacy_field, "idField": r.id_field, "target": r.target}
            for r in self._mapping.references()
            if r.source_table == source
        ]
        # The walk for deletions goes on beside the changes: an upsert only writes documents
        # whose row v1 has, and each candidate is asked of v1 again before it is deleted. A run
        # that `limit` may cut short leaves deletions to the run that completes.
        walk = None if self._limit is not None else self._walker.submit(self._delete_gone, source, key, table.target)
        try:
            self._upsert_changes(source, key, since, result, transform, references)
        except BaseException:
            if walk is not None:
                wait([walk])  # its own failure, if any, is not the one to report
            raise
        result.changes_s = time.monotonic() - started
        deleted = walk.result() if walk is not None else None
        if deleted is None and result.complete:
            deleted = self._delete_gone(source, key, table.target)
        result.deleted = deleted or 0
        result.deletions_s = time.monotonic() - started - result.changes_s
        return result

    def _upsert_changes(
        self,
        source: str,
        key: str,
        since: Watermark | None,
        result: TableSync,
        transform: RowTransformer,
        references: list[dict[str, str]],
    ) -> None:
        """Each batch of changed rows transformed (the next one read and transformed on a
        thread meanwhile) and upserted with its watermark, in order."""
        horizon = self._source.horizon() if result.incremental else None
        if horizon is not None and horizon.held_by is not None:
            self._log(
                f"{result.target}: v1 has {horizon.held_by}: the watermark stays before it, and rows changed"
                " since then are read again next time"
            )
        batches = self._changed(source, key, since if result.incremental else None, result, horizon)
        transformed = prefetched(_documents_of(batches, transform, result.rejected))
        said = time.monotonic()
        try:
            for batch, documents in transformed:
                mark = _after(batch, result.watermark) if result.incremental else None
                counts = self._upsert(result.target, documents, references, mark)
                result.watermark = mark or result.watermark
                for name in ("inserted", "updated", "unchanged", "unresolved"):
                    setattr(result, name, getattr(result, name) + int(counts.get(name, 0)))
                result.processed += len(batch)
                if self._progress is not None:
                    self._progress(result)
                if time.monotonic() - said >= PROGRESS_EVERY_S:
                    said = time.monotonic()
                    written = result.inserted + result.updated
                    of = f" of {result.to_read:,}" if result.to_read else ""
                    self._log(f"{result.target}: {result.processed:,}{of} rows in, {written:,} written so far ...")
        finally:
            transformed.close()

    def _changed(
        self, source: str, key: str, since: Watermark | None, result: TableSync, horizon: Horizon | None
    ) -> Iterator[list[ChangedRow]]:
        limit = self._limit

        def counted(total: int) -> None:
            result.to_read = total if limit is None else min(total, limit)
            if self._progress is not None:
                self._progress(result)

        # Counted for a progress bar only: the count reads the table's changes once more.
        rows = self._source.changed_rows(
            source,
            key,
            since,
            BATCH,
            incremental=result.incremental,
            horizon=horizon,
            counted=counted if self._progress is not None else None,
        )
        for batch in rows:
            if limit is not None and result.read >= limit:
                result.complete = False  # more changes wait for the next run
                return
            if limit is not None and result.read + len(batch) > limit:
                batch = batch[: limit - result.read]
                result.complete = False
            result.read += len(batch)
            yield batch

    def _upsert(
        self, table: str, documents: list[dict[str, Any]], references: list[dict[str, str]], mark: Watermark | None
    ) -> dict[str, Any]:
        args: dict[str, Any] = {"table": table, "documents": documents, "references": references}
        if mark is not None:
            args["watermark"] = {"table": table, "updatedAt": mark.updated_at, "lastId": mark.last_key}
        return self._mutation(f"{MODULE}:upsert", args)

    def _mutation(self, path: str, args: dict[str, Any]) -> dict[str, Any]:
        return mutation(self._convex, path, args, dry_run=self._dry_run)

    def _delete_gone(self, source: str, key: str, target: str) -> int:
        """Delete the documents whose legacy id is no key of v1's (asked again of v1 first).
        v1's keys and v2's legacy ids are fetched at once, each on a thread of its own."""
        deleted = 0
        keys = prefetched(self._source.keys_in_order(source, key))
        pages = prefetched(self._legacy_pages(target))
        try:
            for candidates in gone(keys, pages):
                still = self._source.existing_keys(source, key, candidates)  # its own connection
                doomed = [legacy for legacy in candidates if legacy not in still]
                for start in range(0, len(doomed), DELETE_BATCH):
                    deleted += self._delete(target, doomed[start : start + DELETE_BATCH])
        finally:
            keys.close()
            pages.close()
        return deleted

    def _delete(self, table: str, legacy_ids: list[str]) -> int:
        counts = self._mutation(f"{MODULE}:deleteByLegacyIds", {"table": table, "legacyIds": legacy_ids})
        return int(counts["deleted"])

    def _legacy_pages(self, table: str) -> Iterator[list[str]]:
        cursor: str | None = None
        while True:
            args = {"table": table, "cursor": cursor, "numItems": KEY_PAGE}
            page = self._convex.query(f"{MODULE}:legacyIds", args)
            yield [legacy for legacy in page["legacyIds"] if isinstance(legacy, str)]
            if page["isDone"]:
                return
            cursor = page["continueCursor"]


def _documents_of(
    batches: Iterator[list[ChangedRow]], transform: RowTransformer, rejected: list[str]
) -> Iterator[tuple[list[ChangedRow], list[dict[str, Any]]]]:
    """Each batch with its rows as documents, as the transform makes them; a row that cannot be
    one is named in `rejected` with its reason."""
    for batch in batches:
        documents = []
        for row in batch:
            try:
                documents.append(converted(transform, row.line)[0])
            except RejectRow as exc:
                rejected.append(f"{row.key}: {exc}")
        yield batch, documents


def _after(batch: list[ChangedRow], before: Watermark | None) -> Watermark | None:
    """The watermark after a batch: its last row with a stamp (rows without one come first and
    do not move it); at v1's horizon, before any key, when that row is not settled yet."""
    stamped = [row for row in batch if row.updated_at is not None]
    if not stamped:
        return before
    last = stamped[-1]
    return Watermark(last.updated_at, last.key if last.settled else "")


def _source_of(mapping: Mapping, target: str) -> str:
    return next(source for source, table in mapping.tables.items() if table.target == target)


def _referenced_first(mapping: Mapping, tables: list[str]) -> list[str]:
    """`tables` with each after the tables it refers to (the mapping's order otherwise)."""
    ordered: list[str] = []

    def visit(source: str, seen: tuple[str, ...]) -> None:
        if source in ordered or source in seen:
            return
        for target in mapping.tables[source].references.values():
            referenced = _source_of(mapping, target)
            if referenced in tables:
                visit(referenced, (*seen, source))
        ordered.append(source)

    for source in tables:
        visit(source, ())
    return ordered
