"""What a side (PostgreSQL or Convex) records of a migration it has applied."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class AppliedRecord:
    version: str
    name: str
    checksum: str  # of the file as it was applied: a file changed since no longer matches
    applied_at: datetime
    applied_by: str
