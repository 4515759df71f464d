"""The Convex side of a migration, through the functions of convex/cockpitMigrations.ts.

One migration is one mutation there (its operations and its record together), so this side
has no transaction to hold open: it is applied, or rolled back, in one call that either
happens whole or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from migrate.dry_mutation import mutation
from migrate.files import MigrationFile
from migrate.records import AppliedRecord
from steps.convex.client import ConvexClient, ConvexError, ConvexFunctionError

MODULE = "cockpitMigrations"
_NOT_DEPLOYED = (
    "; the deployment lacks the cockpit's migration runner: copy convex/cockpitMigrations.ts into"
    " your project's convex/ folder, add its table to your schema (cockpit migrate schema) and deploy"
)


@dataclass(frozen=True)
class SchemaViolation:
    table: str
    document: str
    field: str
    problem: str


@dataclass(frozen=True)
class SchemaCheck:
    table: str
    checked: int
    violating: int
    violations: list[SchemaViolation]  # the first few


class ConvexSide:
    name = "convex"

    def __init__(self, url: str, deploy_key: str, *, log: Callable[[str], None] | None = None) -> None:
        self._client = ConvexClient(url, deploy_key, log=log, attempts=4)

    def close(self) -> None:
        self._client.close()

    def applied(self) -> dict[str, AppliedRecord]:
        try:
            records = self._client.query(f"{MODULE}:applied")
        except ConvexFunctionError as exc:
            if "Could not find function" in str(exc):
                raise ConvexError(f"{exc}{_NOT_DEPLOYED}") from exc
            raise
        return {
            str(r["version"]): AppliedRecord(
                str(r["version"]),
                str(r["name"]),
                str(r["checksum"]),
                datetime.fromtimestamp(float(r["appliedAt"]) / 1000, UTC),
                str(r["appliedBy"]),
            )
            for r in records
        }

    def apply(self, file: MigrationFile, applied_by: str, *, dry_run: bool = False) -> dict[str, Any]:
        """Apply it (or, with dry_run, do it and throw it away); the counts of what it did."""
        migration = file.migration
        args: dict[str, Any] = {
            "version": migration.version,
            "name": migration.name,
            "checksum": file.checksum,
            "appliedBy": applied_by,
            "operations": [op.model_dump() for op in migration.data],
        }
        return mutation(self._client, f"{MODULE}:apply", args, dry_run=dry_run)

    def rollback(self, version: str, *, dry_run: bool = False) -> dict[str, Any]:
        return mutation(self._client, f"{MODULE}:rollback", {"version": version}, dry_run=dry_run)

    def check_schema(
        self,
        table: str,
        fields: dict[str, str],
        page_size: int = 500,
        progress: Callable[[int], None] | None = None,
    ) -> SchemaCheck:
        """Every document of `table` against `fields`; `progress` hears the count checked so far."""
        checked = violating = 0
        found: list[SchemaViolation] = []
        for page in self._pages(table, fields, page_size):
            checked += int(page["checked"])
            if progress is not None:
                progress(checked)
            violating += int(page["violating"])
            found += [SchemaViolation(table, v["id"], v["field"], v["problem"]) for v in page["violations"]]
        return SchemaCheck(table, checked, violating, found[:20])

    def _pages(self, table: str, fields: dict[str, str], page_size: int) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            args = {"table": table, "fields": fields, "cursor": cursor, "numItems": page_size}
            page = self._client.query(f"{MODULE}:checkSchema", args)
            yield page
            if page["isDone"]:
                return
            cursor = page["continueCursor"]
