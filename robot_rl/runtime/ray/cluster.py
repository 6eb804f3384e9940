"""Ray for a session: a private local instance bound to loopback, or an existing cluster."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ray

from robot_rl.core import ConfigError

LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": every Ray socket on 127.0.0.1


def log_to(path: Path) -> None:
    """Send this process's Ray chatter (and our warnings) to the run's log, not the terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for name in ("ray", ""):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
    logging.getLogger("ray").propagate = False


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


@contextmanager
def ray_for_session(address: str | None, log_dir: Path) -> Iterator[None]:
    """`address` None: start a private Ray on this machine (loopback only, shut down after);
    else join the cluster at HOST:PORT (and leave it running)."""
    log_to(log_dir / "ray.log")
    kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                  configure_logging=False)
    if address is None:
        os.environ[LOOPBACK_ONLY] = "0"  # read by ray.init's node start-up, and its children
        with output_to(log_dir / "ray.log"):
            ray.init(num_cpus=os.cpu_count() or 1, _node_ip_address="127.0.0.1", **kwargs)
    else:
        try:
            with output_to(log_dir / "ray.log"):
                ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"cannot join the Ray cluster at cluster.address={address}: {exc}; "
                              "check the address (ray status on the head node prints it) or "
                              "drop cluster.address for a private one") from None
    try:
        yield
    finally:
        ray.shutdown()
