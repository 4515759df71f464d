"""Where each migration stands on each side: applied (when, by whom, its checksum), pending,
changed since it was applied, or applied on one side only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from migrate.files import MigrationFile
from migrate.records import AppliedRecord


@dataclass(frozen=True)
class MigrationState:
    version: str
    name: str
    file: MigrationFile | None  # None: a side records it, but its file is gone
    records: dict[str, AppliedRecord | None] = field(default_factory=dict)  # side -> its record (None: pending)

    @property
    def applied_on(self) -> list[str]:
        return [side for side, record in self.records.items() if record is not None]

    @property
    def changed_on(self) -> list[str]:
        """The sides whose record's checksum is not the file's now."""
        if self.file is None:
            return []
        checksum = self.file.checksum
        return [side for side, record in self.records.items() if record is not None and record.checksum != checksum]

    @property
    def state(self) -> str:
        applied = self.applied_on
        if self.file is None:
            return "file missing"
        if self.changed_on:
            return "changed since applied"
        if not applied:
            return "pending"
        if len(applied) < len(self.records):
            return f"applied on {', '.join(applied)} only"
        return "applied"

    def as_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "name": self.name,
            "state": self.state,
            "file": None if self.file is None else self.file.path.name,
            "checksum": None if self.file is None else self.file.checksum,
            "sides": {
                side: None
                if record is None
                else {
                    "applied_at": record.applied_at.isoformat(),
                    "applied_by": record.applied_by,
                    "checksum": record.checksum,
                }
                for side, record in self.records.items()
            },
        }


def states(files: list[MigrationFile], applied: dict[str, dict[str, AppliedRecord]]) -> list[MigrationState]:
    """Every migration a file or a side knows, in version order; `applied` is side -> version ->
    record, for the sides that are enabled."""
    by_version = {file.version: file for file in files}
    versions = sorted(set(by_version) | {v for records in applied.values() for v in records})
    out = []
    for version in versions:
        file = by_version.get(version)
        records = {side: records.get(version) for side, records in applied.items()}
        known = next((r for r in records.values() if r is not None), None)
        name = file.migration.name if file else (known.name if known else "?")
        out.append(MigrationState(version, name, file, records))
    return out
