"""A session leases all its robots at once; each robot's worker watches it through the lease:
one failing is held and marked faulted while the other goes on, and rejoins on recovery."""

from __future__ import annotations

import json
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from hal.health_monitor import HealthMonitor
from hal.leases import FileLeaseStore, Holder, LeaseConflict
from hal.robot import Health
from hal.session_leases import LeaseView, SessionLeases
from robot_rl.config import compose_session
from robot_rl.core import HardwareError
from robot_rl.runtime.build import build_robot

SESSION = textwrap.dedent("""
    import json, sys, time
    from dataclasses import asdict
    from pathlib import Path
    from hal.leases import FileLeaseStore
    from hal.session_leases import SessionLeases

    store = FileLeaseStore(Path(sys.argv[1]), ttl_s=float(sys.argv[2]))
    leases = SessionLeases(store, sys.argv[3:], session="pick-2")
    print(json.dumps(asdict(leases.holder)), flush=True)
    while True:
        time.sleep(0.05)
""")


@pytest.fixture
def other_session(tmp_path):
    script = tmp_path / "session.py"
    script.write_text(SESSION)
    procs: list[subprocess.Popen] = []

    def start(*units: str, ttl: float = 30.0) -> tuple[subprocess.Popen, Holder]:
        proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "leases"),
                                 str(ttl), *units], stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        return proc, Holder(**json.loads(proc.stdout.readline()))

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait()


def wait_for(condition, what: str, deadline_s: float = 60.0) -> None:
    stop = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < stop, f"{what} never happened"
        time.sleep(0.02)


def test_a_second_session_is_refused_naming_every_holder_and_takes_nothing(tmp_path,
                                                                          other_session):
    store = FileLeaseStore(tmp_path / "leases")
    proc, _ = other_session("bench0", "bench1")
    with pytest.raises(LeaseConflict) as err:
        SessionLeases(store, ["bench2", "bench1", "bench0"], session="reach-8")
    text = str(err.value)
    assert text.startswith("session reach-8 cannot start: bench0 is leased to session pick-2 ")
    assert f"bench1 is leased to session pick-2 (pid {proc.pid}" in text
    assert store.current("bench2") is None  # all at once or none
    proc.kill()
    proc.wait()  # a holder that dies frees its robots at once
    with SessionLeases(store, ["bench0", "bench1", "bench2"], session="reach-8") as leases:
        assert {store.current(u).holder.session for u in leases.leases} == {"reach-8"}
        with pytest.raises(HardwareError, match="bench9 is not leased by session reach-8"):
            leases.view("bench9")
    assert all(store.current(u) is None for u in ("bench0", "bench1", "bench2"))


class Worker:
    """What an env worker does with its robot: steps it and watches its health and lease."""

    def __init__(self, unit: str, view: LeaseView) -> None:
        self.raw, self.robot = build_robot(compose_session(
            ["robot=fake", f"robot.id={unit}", "task.name=wipe", "reward=human_label"]))
        self.robot.connect()
        self.faulted, self.recovered = threading.Event(), threading.Event()
        self.told: list[tuple[str, Health]] = []
        self.monitor = HealthMonitor(poll_s=0.02, on_fault=self._fault,
                                     on_recover=lambda _: self.recovered.set())
        self.monitor.watch(self.robot, pickle.loads(pickle.dumps(view)))  # it crosses processes
        self.monitor.start()

    def _fault(self, robot_id: str, health: Health) -> None:
        self.told.append((robot_id, health))
        self.faulted.set()

    def step(self) -> float:
        """One forward step; how far the end effector moved."""
        before = self.raw.position.copy()
        self.robot.send_action(np.array([0.5, 0, 0, 0, 0], np.float32))
        return float(self.raw.position[0] - before[0])

    def close(self) -> None:
        self.monitor.stop()
        self.robot.disconnect()


def test_a_robot_failing_is_held_and_faulted_while_the_other_goes_on_then_rejoins(tmp_path):
    store = FileLeaseStore(tmp_path / "leases")
    with SessionLeases(store, ["bench0", "bench1"], session="reach-9") as leases:
        failing, steady = Worker("bench0", leases.view("bench0")), Worker("bench1",
                                                                        leases.view("bench1"))
        try:
            assert failing.step() > 0 and steady.step() > 0
            failing.raw.fault = "driver error: joint 2 over current"
            wait_for(failing.faulted.is_set, "the fault report")
            assert failing.told[0][0] == "bench0" and "over current" in failing.told[0][1].message
            assert [failing.step() for _ in range(3)] == [0.0, 0.0, 0.0]  # held
            assert all(steady.step() > 0 for _ in range(3))  # the other goes on
            assert leases.faults() == {"bench0": "fault: driver error: joint 2 over current"}
            assert store.current("bench0").faulted and not store.current("bench1").faulted
            assert not steady.faulted.is_set()
            with pytest.raises(HardwareError, match="bench0 cannot rejoin: fault"):
                failing.monitor.rejoin("bench0")
            failing.raw.fault = None  # the driver recovers
            wait_for(failing.recovered.is_set, "the recovery report")
            failing.monitor.rejoin("bench0")
            assert leases.faults() == {} and failing.step() > 0
        finally:
            failing.close()
            steady.close()


def test_a_session_that_stops_heartbeating_leaves_its_robot_held(tmp_path, other_session):
    store = FileLeaseStore(tmp_path / "leases")
    proc, holder = other_session("bench0", ttl=0.6)
    worker = Worker("bench0", LeaseView(store, "bench0", holder))
    try:
        assert worker.step() > 0
        proc.send_signal(signal.SIGSTOP)  # a hung session: alive, but no more heartbeats
        wait_for(worker.faulted.is_set, "the lost lease")
        assert "lease lost: the session's lease on bench0 expired" in worker.told[0][1].message
        assert worker.step() == 0.0 and worker.robot.estopped
    finally:
        worker.close()


def test_a_lease_removed_behind_the_session_s_back_is_reported_lost(tmp_path):
    store = FileLeaseStore(tmp_path / "leases", ttl_s=0.3)
    with SessionLeases(store, ["bench0", "bench1"], session="reach-10") as leases:
        (tmp_path / "leases" / "bench0.lease").unlink()  # an operator cleared it by hand
        wait_for(lambda: "bench0" in leases.lost(), "the next heartbeat")
        assert leases.lost() == {"bench0": "lost the lease on bench0: it is free"}
        assert store.current("bench1").holder == leases.holder
