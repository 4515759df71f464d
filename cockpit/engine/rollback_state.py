"""Where a rollback stands, kept in the run's journal row so a restart continues it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass
class RollbackState:
    reason: str
    trigger_id: str | None
    deadline: datetime | None
    plan: list[str] | None = None
    position: int = 0
    awaiting_confirmation: bool = False
    finished: bool = False
    ok: bool | None = None
    deadline_alerted: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "trigger_id": self.trigger_id,
            "deadline": self.deadline.isoformat() if self.deadline else None,
            "plan": self.plan,
            "position": self.position,
            "awaiting_confirmation": self.awaiting_confirmation,
            "finished": self.finished,
            "ok": self.ok,
            "deadline_alerted": self.deadline_alerted,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RollbackState:
        deadline = data.get("deadline")
        return cls(
            reason=data["reason"],
            trigger_id=data.get("trigger_id"),
            deadline=datetime.fromisoformat(deadline) if deadline else None,
            plan=data.get("plan"),
            position=data.get("position", 0),
            awaiting_confirmation=data.get("awaiting_confirmation", False),
            finished=data.get("finished", False),
            ok=data.get("ok"),
            deadline_alerted=data.get("deadline_alerted", False),
        )
