"""Child processes that die with the process that started them.

The kernel sends a child its parent-death signal when the thread that started it exits, for
any reason, kill -9 included. setpriv (util-linux) sets the signal just before it execs the
command; a `preexec_fn` doing the same is not safe in a threaded program. The signal is
cleared when a process changes its user, so a server that drops privileges itself does not
keep it (cockpit/sandbox/leftovers.py stops those).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence

SETPRIV = shutil.which("setpriv")


def dying_with_parent(argv: Sequence[str], signal: str = "KILL") -> list[str]:
    """`argv` run so that it receives `signal` when its parent dies (unchanged without setpriv)."""
    return [SETPRIV, "--pdeathsig", signal, "--", *argv] if SETPRIV else list(argv)
