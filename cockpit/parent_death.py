"""Child processes that die with the process that started them.

The kernel sends a child its parent-death signal when the thread that started it exits, for
any reason, kill -9 included. setpriv (util-linux) sets the signal just before it execs the
command; a `preexec_fn` doing the same is not safe in a threaded program. The signal is
cleared when a process changes its user, so a server that drops privileges itself does not
keep it (cockpit/sandbox/leftovers.py stops those).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal as signals
from collections.abc import Sequence

PR_SET_PDEATHSIG = 1

SETPRIV = shutil.which("setpriv")


def dying_with_parent(argv: Sequence[str], signal: str = "KILL") -> list[str]:
    """`argv` run so that it receives `signal` when its parent dies (unchanged without setpriv)."""
    return [SETPRIV, "--pdeathsig", signal, "--", *argv] if SETPRIV else list(argv)


def die_with_parent(parent: int) -> None:
    """For a worker process a step spawns (a pool's initializer, given the step's pid): the
    kernel kills it when the thread that started it ends, the step's process killed with -9
    included; a worker busy with a task would otherwise finish the task first, unseen."""
    with_libc = ctypes.CDLL(None, use_errno=True)
    with_libc.prctl(PR_SET_PDEATHSIG, signals.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the signal was set
        os._exit(1)
