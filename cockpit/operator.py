"""Who is acting: every operator action is journaled with this identity."""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Operator:
    user: str
    ssh_from: str | None = None
    via: str | None = None  # "--answer", "demo autopilot", "trigger"

    @classmethod
    def current(cls, env: Mapping[str, str] | None = None, via: str | None = None) -> Operator:
        env = os.environ if env is None else env
        user = env.get("USER") or env.get("LOGNAME")
        if not user:
            try:
                user = getpass.getuser()
            except (KeyError, OSError):
                user = f"uid {os.getuid()}"
        ssh = env.get("SSH_CONNECTION", "").split()
        ssh_from = f"{ssh[0]}:{ssh[1]}" if len(ssh) >= 2 else None
        return cls(user=user, ssh_from=ssh_from, via=via)

    def acting_via(self, via: str) -> Operator:
        return Operator(self.user, self.ssh_from, via)

    def __str__(self) -> str:
        text = self.user
        if self.ssh_from:
            text += f" (ssh from {self.ssh_from})"
        if self.via:
            text += f" via {self.via}"
        return text
