"""A runbook opened where it lies, with a journal of the bench's own.

A runbook names files beside it (its mapping, its resolvers, its announcement), and whatever
it will name next. The bench opens the project's runbook as `cockpit demo` does, with every
one of those in reach, but must not write into the project's journal: a `--new` run there
would abandon the operator's unfinished rehearsal. The journal lives beside the runbook file
(`.cockpit/`), so the workspace holds a copy of the runbook file alone and links every other
entry of the runbook's folder, hidden ones (the journal, the virtual environment) excepted.

The variables the runbook references are set to placeholders that refuse connections: what
the benchmarks measure happens before anything connects, and a step that starts meanwhile
fails at its connection, before it reads or writes anything through the links.
"""

from __future__ import annotations

import shutil
import tempfile
import tomllib
from pathlib import Path
from types import TracebackType

from cockpit import secrets

# Nothing listens on the discard port on loopback: a connection is refused at once.
REFUSED_URL = "http://127.0.0.1:9"
REFUSED_DSN = "postgresql://bench@127.0.0.1:9/none"
REFUSED_MAIL = "nobody@bench.invalid"


class RunbookWorkspace:
    """A temporary folder where `runbook` opens with everything beside it, and a journal of its own."""

    def __init__(self, runbook: Path) -> None:
        self.source = runbook.resolve()
        self.folder = Path(tempfile.mkdtemp(prefix="cockpit-bench-"))
        self.runbook = self.folder / self.source.name
        shutil.copy(self.source, self.runbook)
        for entry in self.source.parent.iterdir():
            if entry.name.startswith(".") or entry.name == self.source.name:
                continue
            (self.folder / entry.name).symlink_to(entry)

    def placeholder_env(self) -> dict[str, str]:
        """Every `${VAR}` the runbook references, set to an address that refuses connections."""
        document = tomllib.loads(self.runbook.read_text())
        env = {name: REFUSED_URL for name in secrets.references(document)}
        # Fields that are not URLs take a placeholder of their own form, wherever they are.
        forms = {"dsn": REFUSED_DSN, "port": "9", "rate": "1", "tls": "none", "test_to": REFUSED_MAIL}
        forms |= {"to": REFUSED_MAIL, "email": REFUSED_MAIL}

        def visit(value: object, key: str = "") -> None:
            if isinstance(value, dict):
                for k, v in value.items():
                    visit(v, k)
            elif isinstance(value, list):
                for v in value:
                    visit(v, key)
            elif key in forms:
                for name in secrets.references(value):
                    env[name] = forms[key]

        visit(document)
        return env

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> RunbookWorkspace:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.remove()
