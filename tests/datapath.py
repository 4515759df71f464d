"""What the data-path tests share: the v1 and v2 connections, a step as TOML, a step's log, the
shipped PERM mapping and the calculations the runbook checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MAPPING = (ROOT / "migration" / "perm-mapping.toml").read_text()
PERM_TABLES = ["auth.users", "public.cases", "public.user_settings", "public.user_preferences", "public.notifications"]

V1_CONNECTION = """
[connections.v1]
kind = "postgres"
dsn = "${TEST_DSN}"
"""
V2_CONNECTION = """
[connections.v2]
kind = "convex"
url = "${CONVEX_URL}"
deploy_key = "${CONVEX_DEPLOY_KEY}"
"""
CONNECTIONS = V1_CONNECTION + V2_CONNECTION

# verify.calc's checks of runbook.toml: cases per status, and the total of the wages in cents.
CALC_CHECKS = """
[[step.with.checks]]
name = "cases per status"
sql = "SELECT case_status AS key, count(*) AS count FROM public.cases GROUP BY 1"
table = "cases"
group_by = "caseStatus"
[[step.with.checks]]
name = "total wages"
sql = "SELECT count(*) AS count, sum(round(pwd_wage_amount * 100)) AS sum FROM public.cases"
table = "cases"
sum = "pwdWageAmount"
"""


def step(step_id: str, kind: str, with_: str, extra: str = "") -> str:
    """A window step as TOML; `with_` holds the lines of its [step.with] table."""
    return f'\n[[step]]\nid = "{step_id}"\nphase = "window"\nkind = "{kind}"\n{extra}\n[step.with]\n{with_}\n'


def log_of(h: Any, step_id: str) -> str:
    """Everything a step logged in a Harness run, as one text."""
    from cockpit.events import StepLog

    return "\n".join(line for e in h.of_type(StepLog) if e.step_id == step_id for line in e.lines)


def wrap_function(standin: Any, path: str, around: Any = None) -> list[dict[str, Any]]:
    """Route the stand-in's function `path` through `around(implementation, store, args)` (or
    straight to it); the calls that answered, each its arguments and, under "answer", what it
    returned."""
    kind, internal, implementation = standin.functions[path]
    calls: list[dict[str, Any]] = []

    def wrapped(store: Any, args: dict[str, Any]) -> Any:
        answer = around(implementation, store, args) if around else implementation(store, args)
        calls.append({**args, "answer": answer})
        return answer

    standin.functions[path] = (kind, internal, wrapped)
    return calls


def env_for(dsn: str | None = None, standin: Any = None) -> dict[str, str]:
    """The variables of CONNECTIONS; an address nothing listens on where there is no v2."""
    env = {
        "CONVEX_URL": standin.url if standin else "http://127.0.0.1:9",
        "CONVEX_DEPLOY_KEY": standin.deploy_key if standin else "none",
    }
    if dsn is not None:
        env["TEST_DSN"] = dsn
    return env
