"""verify.sample spread over worker processes finds exactly what one process finds, in the same
order, and a cancel stops every process at once."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
from datapath import CONNECTIONS, env_for, log_of, step
from fakes import HEADER, Harness
from test_verify_steps import PREPARE, VERIFY_WITH, run

from cockpit.engine.views import Outcome
from cockpit.operator import Operator
from cockpit.sandbox.convex.server import ConvexStandIn

pytestmark = pytest.mark.integration

PROBLEM = re.compile(r"^cases \S+: .*", re.M)


def sample(workers: int, extra: str = "") -> str:
    return step("sample", "verify.sample", f"{VERIFY_WITH}\nfraction = 1.0\nbatch = 40\nworkers = {workers}{extra}")


def children() -> set[int]:
    """This process's child processes that are spawned workers (not the resource tracker, which
    multiprocessing keeps for the life of the process)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and b"spawn_main" in command:
            found.add(int(entry.name))
    return found


def test_workers_find_the_same_rows_and_differences_in_the_same_order(
    tmp_path: Path, perm_dsn: str, standin: ConvexStandIn
) -> None:
    h, outcome = run(tmp_path / "prepare", PREPARE, perm_dsn, standin)
    assert outcome == Outcome.DONE
    store = standin.store
    cases = list(store.documents("cases"))
    for document in cases[100:130]:  # more differences than are shown (20)
        store.patch(document["_id"], {"employerName": "Someone Else LLC"})
    store.delete(cases[500]["_id"])
    store.delete(cases[900]["_id"])

    found = {}
    for workers in (1, 3):
        h, outcome = run(tmp_path / f"workers{workers}", sample(workers), perm_dsn, standin)
        assert outcome == Outcome.FAILED
        log = log_of(h, "sample")
        metrics = h.engine.view().metrics
        found[workers] = (
            metrics["sample.rows_missing"],
            metrics["sample.rows_differ"],
            PROBLEM.findall(log),
            re.search(r"public\.cases -> cases .*", log).group(0),
        )  # type: ignore[union-attr]
        assert "only the first 20 differences are shown" in log
        if workers == 3:
            # Batches of 40: the spawned two were given the first four at least.
            shares = re.search(
                r"cases: 1,000 rows compared by 3 processes \(([\d,]+) here, ([\d,]+) in 2 spawned\)", log
            )
            assert shares, log
            here, spawned = (int(n.replace(",", "")) for n in shares.groups())
            assert here + spawned == 1000 and spawned >= 4 * 40
    assert found[1] == found[3]
    assert found[1][:2] == (2, 30) and len(found[1][2]) == 20


def test_cancelling_a_sample_in_workers_stops_it_and_every_worker(
    tmp_path: Path, perm_dsn: str, standin: ConvexStandIn
) -> None:
    h, outcome = run(tmp_path / "prepare", PREPARE, perm_dsn, standin)
    assert outcome == Outcome.DONE
    standin.faults.latency = 0.5  # every call: the sample takes far longer than the test waits
    folder = tmp_path / "sample"
    folder.mkdir()
    (folder / "mapping.toml").write_text((tmp_path / "prepare" / "mapping.toml").read_text())
    h = Harness(folder, sample(3), header=HEADER + CONNECTIONS, env=env_for(perm_dsn, standin)).start()
    try:
        h.wait_state("sample", "running", 30)
        h.wait_for(lambda: len(children()) == 2 and h.engine.step_runtime("sample").progress, 30)
        asked = time.monotonic()
        h.engine.cancel("sample", Operator("tester"))
        h.wait_for(lambda: h.state("sample") != "running", 30)
        took = time.monotonic() - asked
        assert h.state("sample") == "cancelled"
        assert took < 2.0, f"the sample took {took:.1f}s to stop"
        h.wait_for(lambda: not children(), 5)  # the workers end with their current batch
    finally:
        h.close()


def test_a_worker_that_dies_fails_the_step_with_a_clear_reason(
    tmp_path: Path, perm_dsn: str, standin: ConvexStandIn
) -> None:
    h, outcome = run(tmp_path / "prepare", PREPARE, perm_dsn, standin)
    assert outcome == Outcome.DONE
    standin.faults.latency = 0.3
    folder = tmp_path / "sample"
    folder.mkdir()
    (folder / "mapping.toml").write_text((tmp_path / "prepare" / "mapping.toml").read_text())
    h = Harness(folder, sample(3), header=HEADER + CONNECTIONS, env=env_for(perm_dsn, standin)).start()
    try:
        h.wait_for(lambda: len(children()) == 2 and h.engine.step_runtime("sample").progress, 30)
        os.kill(min(children()), signal.SIGKILL)  # as the kernel's out-of-memory killer would
        h.wait_for(lambda: h.state("sample") != "running", 30)
        assert h.state("sample") == "failed"
        assert "a worker process of the sample stopped" in h.engine.step_runtime("sample").reason
        h.wait_for(lambda: not children(), 10)
    finally:
        h.close()
