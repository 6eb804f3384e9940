"""Leases: a robot serves one session at a time, held by heartbeats, freed when its holder dies.

`LeaseStore` is the seam: `FileLeaseStore` keeps leases in a directory of the node (an OS lock
around each read-modify-write, heartbeat timestamps inside); a store shared across machines
(a Ray actor) can replace it behind the same calls.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from robot_rl.core import HardwareError


def default_lease_dir() -> Path:
    """Where this node keeps its leases: $ROBOT_RL_LEASE_DIR, else one folder per user in /tmp."""
    env = os.environ.get("ROBOT_RL_LEASE_DIR")
    return Path(env) if env else Path(tempfile.gettempdir()) / f"robot_rl-leases-{os.getuid()}"


class LeaseConflict(HardwareError):
    """The unit is leased to another live session."""


class LeaseLost(HardwareError):
    """Our lease expired and was taken, or was released behind our back."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lease: enough for a person to find the session and stop it."""

    session: str
    pid: int
    host: str
    command: str
    since: float  # epoch seconds

    @classmethod
    def this_process(cls, session: str | None = None) -> Holder:
        pid = os.getpid()
        return cls(session or f"{socket.gethostname()}:{pid}", pid, socket.gethostname(),
                   " ".join(sys.argv)[:200], time.time())

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.since))
        return (f"session {self.session} (pid {self.pid} on {self.host}, "
                f"command {self.command!r}, since {since})")


@dataclass(frozen=True)
class LeaseRecord:
    """A lease as stored: its unit, holder, last heartbeat, the holder's promise to beat again
    within `ttl_s`, and why the unit is faulted ('' if it is not)."""

    unit: str
    holder: Holder
    heartbeat: float
    ttl_s: float
    faulted: str = ""


class LeaseStore(ABC):
    """Grants each unit to one holder; a lease whose heartbeats stop for its ttl expires.

    `ttl_s` is what this store grants: holders heart-beat every `ttl_s / 3`.
    """

    ttl_s: float

    @abstractmethod
    def acquire(self, unit: str, holder: Holder) -> LeaseRecord:
        """Take `unit` for `holder`; LeaseConflict naming the live holder if someone has it."""

    @abstractmethod
    def renew(self, unit: str, holder: Holder, faulted: str | None = None) -> LeaseRecord:
        """Heartbeat (and set `faulted` if given); LeaseLost if `holder` no longer has it."""

    @abstractmethod
    def release(self, unit: str, holder: Holder) -> None:
        """Give `unit` back; releasing a lease already lost is not an error."""

    @abstractmethod
    def current(self, unit: str) -> LeaseRecord | None:
        """The live lease on `unit`, or None where it is free or its lease expired."""


def _process_gone(holder: Holder) -> bool:
    """True where the holder ran on this host and its process no longer exists."""
    if holder.host != socket.gethostname():
        return False
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class FileLeaseStore(LeaseStore):
    """Leases as JSON files in `root`, one per unit; a holder that died on this host frees its
    lease at once, one that stopped heart-beating after the `ttl_s` it was granted with."""

    def __init__(self, root: Path, ttl_s: float = 10.0) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.ttl_s = ttl_s

    def _path(self, unit: str) -> Path:
        return self.root / f"{quote(unit, safe='')}.lease"

    @contextmanager
    def _locked(self, unit: str) -> Iterator[Path]:
        path = self._path(unit)
        with open(path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield path
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self, path: Path) -> LeaseRecord | None:
        try:
            raw = json.loads(path.read_text())
            record = LeaseRecord(raw["unit"], Holder(**raw["holder"]), float(raw["heartbeat"]),
                                 float(raw["ttl_s"]), str(raw.get("faulted", "")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise HardwareError(f"{path}: unreadable lease file ({type(exc).__name__}: {exc}); "
                                "delete it if no session holds this unit") from None
        expired = time.time() - record.heartbeat > record.ttl_s or _process_gone(record.holder)
        return None if expired else record

    def _write(self, path: Path, record: LeaseRecord) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(record)))
        os.replace(tmp, path)

    def acquire(self, unit: str, holder: Holder) -> LeaseRecord:
        with self._locked(unit) as path:
            record = self._read(path)
            if record is not None and record.holder != holder:
                raise LeaseConflict(f"{unit} is leased to {record.holder.describe()}; stop that "
                                    f"session or wait for its lease to expire ({record.ttl_s:g} "
                                    "s after its last heartbeat)")
            record = LeaseRecord(unit, holder, time.time(), self.ttl_s)
            self._write(path, record)
            return record

    def renew(self, unit: str, holder: Holder, faulted: str | None = None) -> LeaseRecord:
        with self._locked(unit) as path:
            record = self._read(path)
            if record is None or record.holder != holder:
                now = "free" if record is None else f"leased to {record.holder.describe()}"
                raise LeaseLost(f"lost the lease on {unit}: it is {now}")
            record = replace(record, heartbeat=time.time(),
                             faulted=record.faulted if faulted is None else faulted)
            self._write(path, record)
            return record

    def release(self, unit: str, holder: Holder) -> None:
        with self._locked(unit) as path:
            record = self._read(path)
            if record is not None and record.holder == holder:
                path.unlink()

    def current(self, unit: str) -> LeaseRecord | None:
        return self._read(self._path(unit))  # no lock: writers replace the file atomically


class LeaseHandle(Protocol):
    """What watching a leased robot needs of its lease: whether it is lost, and a way to mark the
    unit faulted ('' clears it) where other sessions and `hal list` see it."""

    @property
    def lost(self) -> str | None: ...

    def mark_faulted(self, reason: str) -> None: ...


class Lease:
    """A lease held by this process: a daemon thread heart-beats it every `ttl_s / 3` seconds.

    If a heartbeat finds the lease gone (we stalled past the ttl and another session took it),
    `lost` says why and `on_lost(unit, reason)` is called once; the robot is no longer ours.
    """

    def __init__(self, store: LeaseStore, unit: str, holder: Holder | None = None,
                 on_lost: Callable[[str, str], None] | None = None) -> None:
        self.store, self.unit = store, unit
        self.holder = holder or Holder.this_process()
        self.on_lost = on_lost
        self.lost: str | None = None
        self._faulted: str | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        store.acquire(unit, self.holder)
        self._thread = threading.Thread(target=self._beat, name=f"lease {unit}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.store.ttl_s / 3):
            self.renew()

    def renew(self) -> None:
        """One heartbeat now (the thread does this on its own)."""
        with self._lock:
            if self.lost is not None:
                return
            try:
                self.store.renew(self.unit, self.holder, self._faulted)
                return
            except HardwareError as exc:
                self.lost = str(exc)
                self._stop.set()
        if self.on_lost is not None:
            self.on_lost(self.unit, self.lost)

    def mark_faulted(self, reason: str) -> None:
        """Record in the store that the unit is faulted ('' clears it), so others see it."""
        self._faulted = reason
        self.renew()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=self.store.ttl_s)
        if self.lost is None:
            self.store.release(self.unit, self.holder)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
