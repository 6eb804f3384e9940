"""Ray for a session: a private local instance bound to loopback, or an existing cluster."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray

from hal.placement import NodeResources
from robot_rl.core import ConfigError

LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": every Ray socket on 127.0.0.1


def log_to(path: Path) -> logging.Handler:
    """Send this process's Ray chatter (and our warnings) to the run's log, not the terminal;
    the handler, for `stop_logging`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for name in ("ray", ""):
        logging.getLogger(name).addHandler(handler)
    logging.getLogger("ray").propagate = False
    return handler


def stop_logging(handler: logging.Handler) -> None:
    for name in ("ray", ""):
        logging.getLogger(name).removeHandler(handler)
    handler.close()


@contextmanager
def output_to(path: Path) -> Iterator[None]:
    """This process's stdout and stderr (file descriptors: what Ray's start-up prints) to `path`."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with path.open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)


INIT = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
            configure_logging=False)


def _errors_to_log(data: dict[str, Any], ignore_prefix: bool = False) -> None:
    """Where Ray's driver prints what its cluster reports (a task retried after a part died):
    the run's log. The supervisor says what happened in one line of its own."""
    for line in data.get("lines", []):
        logging.getLogger("ray").warning("(%s) %s", data.get("pid", "ray"), line)


def _quiet_driver() -> None:
    """Ray's driver prints every error its cluster reports to stdout (ray 2.60: its error
    listener calls worker.print_to_stdstream); send them to the run's log instead."""
    import ray._private.worker as driver

    if hasattr(driver, "print_to_stdstream"):
        driver.print_to_stdstream = _errors_to_log


@contextmanager
def our_signals() -> Iterator[None]:
    """ray.init installs its own SIGTERM handler (it aborts the process); keep ours, which ends
    a session like Ctrl-C: checkpointed, robots holding."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def start_local_ray(log: Path, offered: NodeResources | None = None) -> None:
    """A private Ray instance on this machine, every socket on 127.0.0.1, offering this node's
    robots and GPUs (`offered`, from its inventory) as its resources; what it prints at start-up
    goes to `log`."""
    os.environ[LOOPBACK_ONLY] = "0"  # read by ray.init's node start-up, and its children
    offered = offered or NodeResources(0, {})
    _quiet_driver()
    with output_to(log), our_signals():
        ray.init(num_cpus=os.cpu_count() or 1, num_gpus=offered.num_gpus,
                 resources=offered.resources, _node_ip_address="127.0.0.1", **INIT)


@contextmanager
def ray_for_session(address: str | None, log_dir: Path,
                    offered: NodeResources | None = None) -> Iterator[None]:
    """`address` None: start a private Ray on this machine (loopback only, shut down after),
    offering `offered`; else join the cluster at HOST:PORT (and leave it running). A process
    already connected to Ray (a test suite, a notebook) keeps its connection."""
    handler = log_to(log_dir / "ray.log")
    started = not ray.is_initialized()
    try:
        if started and address is None:
            start_local_ray(log_dir / "ray.log", offered)
        elif started:
            _join(address, log_dir / "ray.log")
        yield
    finally:
        if started:
            ray.shutdown()
        stop_logging(handler)


def _join(address: str, log: Path) -> None:
    try:
        _quiet_driver()
        with output_to(log), our_signals():
            ray.init(address=address, **INIT)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"cannot join the Ray cluster at cluster.address={address}: {exc}; "
                          "check the address (ray status on the head node prints it) or "
                          "drop cluster.address for a private one") from None
