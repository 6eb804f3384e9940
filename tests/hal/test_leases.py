import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from hal import SafeRobot
from hal.fakes import PointRobot
from hal.health_monitor import HealthMonitor
from hal.leases import FileLeaseStore, Holder, Lease, LeaseConflict, LeaseLost
from robot_rl.core import HardwareError

SESSION = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from hal.leases import FileLeaseStore, Lease
    from robot_rl.core import HardwareError

    root, ttl, mode = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    store = FileLeaseStore(root, ttl_s=ttl)
    try:
        lease = Lease(store, "arm0", on_lost=lambda unit, why: print("lost", why, flush=True))
    except HardwareError as exc:
        print("refused", exc, flush=True)
        sys.exit(3)
    print("held", flush=True)
    if mode == "hold":
        while True:
            time.sleep(0.05)
    lease.release()
""")


@pytest.fixture
def session(tmp_path):
    script = tmp_path / "session.py"
    script.write_text(SESSION)
    procs = []

    def start(mode: str, ttl: float = 30.0) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "leases"), str(ttl),
                                 mode], stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def wait_until_free(store: FileLeaseStore, deadline_s: float = 60.0) -> None:
    stop = time.monotonic() + deadline_s
    while store.current("arm0") is not None:
        assert time.monotonic() < stop, "the lease never expired"
        time.sleep(0.05)


def test_a_second_session_is_refused_with_the_holder_named(session, tmp_path):
    holder = session("hold")
    assert holder.stdout.readline().strip() == "held"
    contender = session("take")
    out, _ = contender.communicate(timeout=60)
    assert contender.returncode == 3
    assert out.startswith("refused arm0 is leased to session")
    assert f"pid {holder.pid} on {socket.gethostname()}" in out
    assert "session.py" in out and "since 20" in out
    record = FileLeaseStore(tmp_path / "leases").current("arm0")
    assert record.holder.pid == holder.pid


def test_the_lease_of_a_holder_killed_with_sigkill_is_free_at_once(session, tmp_path):
    holder = session("hold")
    assert holder.stdout.readline().strip() == "held"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    store = FileLeaseStore(tmp_path / "leases", ttl_s=30.0)
    with Lease(store, "arm0") as lease:
        assert store.current("arm0").holder == lease.holder


def test_a_holder_that_stops_heartbeating_loses_its_lease_after_the_ttl_and_is_told(
        session, tmp_path):
    holder = session("hold", ttl=0.6)
    assert holder.stdout.readline().strip() == "held"
    os.kill(holder.pid, signal.SIGSTOP)  # alive but silent, like a hung or partitioned host
    store = FileLeaseStore(tmp_path / "leases", ttl_s=30.0)  # the taker's own ttl: long
    wait_until_free(store)
    taker = Lease(store, "arm0")
    os.kill(holder.pid, signal.SIGCONT)
    line = holder.stdout.readline()
    assert line.startswith("lost lost the lease on arm0: it is leased to session"), line
    assert store.current("arm0").holder == taker.holder
    taker.release()
    assert store.current("arm0") is None


def test_renewing_a_lease_taken_by_another_holder_raises_lease_lost(tmp_path):
    store = FileLeaseStore(tmp_path, ttl_s=30.0)
    mine = Holder.this_process("s1")
    store.acquire("arm0", mine)
    store.release("arm0", mine)
    store.acquire("arm0", Holder.this_process("s2"))
    with pytest.raises(LeaseLost, match="leased to session s2"):
        store.renew("arm0", mine)
    with pytest.raises(LeaseConflict, match="leased to session s2"):
        store.acquire("arm0", mine)


@pytest.mark.parametrize("text", ["{not json", '{"unit": "arm0"}', "[1, 2]"])
def test_a_corrupt_lease_file_names_itself(tmp_path, text):
    store = FileLeaseStore(tmp_path)
    (tmp_path / "arm0.lease").write_text(text)
    with pytest.raises(HardwareError, match="arm0.lease: unreadable lease file"):
        store.current("arm0")
    with pytest.raises(HardwareError, match="delete it if no session holds this unit"):
        store.acquire("arm0", Holder.this_process())


def robots(tmp_path):
    store = FileLeaseStore(tmp_path, ttl_s=30.0)
    out = []
    for name in ("arm0", "arm1"):
        inner = PointRobot(name)
        safe = SafeRobot(inner)
        safe.connect()
        safe.reset()
        out.append((inner, safe, Lease(store, name)))
    return store, out


def test_a_robot_failing_mid_session_is_held_its_lease_faulted_and_the_other_goes_on(tmp_path):
    store, ((inner0, safe0, lease0), (inner1, safe1, lease1)) = robots(tmp_path)
    faults, recoveries = [], []
    monitor = HealthMonitor(on_fault=lambda rid, h: faults.append((rid, h.message)),
                            on_recover=recoveries.append)
    monitor.watch(safe0, lease0)
    monitor.watch(safe1, lease1)
    step = np.array([1.0, 0, 0, 0, 0], dtype=np.float32)
    monitor.poll_once()
    assert faults == []
    inner0.fault = "joint 2 over temperature"
    monitor.poll_once()
    monitor.poll_once()  # a second round does not report it again
    assert faults == [("arm0", "joint 2 over temperature")]
    assert safe0.estopped and store.current("arm0").faulted == "fault: joint 2 over temperature"
    np.testing.assert_array_equal(inner0.applied[-1], np.zeros(5))  # held at once
    inner0.fault = None  # the driver clears, but the robot stays held until rejoined
    np.testing.assert_array_equal(safe0.send_action(step), np.zeros(5))
    np.testing.assert_allclose(safe1.send_action(step), step)
    assert store.current("arm1").faulted == ""
    monitor.poll_once()
    assert recoveries == ["arm0"]
    monitor.rejoin("arm0")
    assert monitor.faulted("arm0") is None and store.current("arm0").faulted == ""
    np.testing.assert_allclose(safe0.send_action(step), step)


def test_a_robot_still_unhealthy_cannot_rejoin_and_an_operator_estop_is_never_released(tmp_path):
    _, ((inner0, safe0, lease0), (_, safe1, lease1)) = robots(tmp_path)
    monitor = HealthMonitor()
    monitor.watch(safe0, lease0)
    monitor.watch(safe1, lease1)
    inner0.fault = "encoder lost"
    monitor.poll_once()
    with pytest.raises(HardwareError, match="arm0 cannot rejoin: fault encoder lost"):
        monitor.rejoin("arm0")
    safe1.estop("operator pressed e-stop")
    monitor.rejoin("arm1")
    assert safe1.estopped


def test_the_monitor_thread_holds_a_robot_that_throws_in_health(tmp_path):
    _, ((inner0, safe0, lease0), _) = robots(tmp_path)

    def broken():
        raise OSError("serial port closed")

    inner0.health = broken
    faults = []
    with HealthMonitor(poll_s=0.01, on_fault=lambda rid, h: faults.append(h.message)) as monitor:
        monitor.watch(safe0, lease0)
        stop = time.monotonic() + 30
        while not faults and time.monotonic() < stop:
            time.sleep(0.01)
    assert faults == ["health() raised OSError: serial port closed"] and safe0.estopped


def test_a_robot_whose_lease_was_lost_is_held(tmp_path):
    store, ((_, safe0, lease0), _) = robots(tmp_path)
    faults = []
    monitor = HealthMonitor(on_fault=lambda rid, h: faults.append(h.message))
    monitor.watch(safe0, lease0)
    (tmp_path / "arm0.lease").unlink()  # as if it had expired while this process stalled
    store.acquire("arm0", Holder.this_process("other"))
    lease0.renew()
    monitor.poll_once()
    assert safe0.estopped
    assert len(faults) == 1
    assert faults[0].startswith("lease lost: lost the lease on arm0: it is leased to session other")
