"""Each run's log under migration_logs/: what it did, line by line, as it did it.

A run killed half-way leaves its log up to the last line written. The log holds no secret
(every line passes the run's redactor) and is the operator's own: the folder 0700, the file
0600.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from cockpit.secrets import Redactor


class RunLog:
    def __init__(self, folder: Path, action: str, environment: str, redactor: Redactor) -> None:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        self.path = folder / f"{stamp}-{action}-{environment}.log"
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file: TextIO = os.fdopen(descriptor, "w", encoding="utf-8")
        self._redact = redactor

    def write(self, line: str) -> str:
        """Write one line (redacted, with its time); the line as written, without the time."""
        shown = self._redact(line)
        self._file.write(f"{datetime.now(UTC).isoformat(timespec='milliseconds')} {shown}\n")
        self._file.flush()
        return shown

    def teller(self, printer: Callable[[str], None]) -> Callable[[str], None]:
        """A function that writes a line here and prints it (redacted) with `printer`."""

        def say(line: str) -> None:
            printer(self.write(line))

        return say

    def close(self) -> None:
        self._file.close()
