"""Suite-wide settings: headless rendering for every test, and the whole run inside a private
network namespace whose only interface is loopback.

Ray (and DDS) bind the machine's outward address unless told otherwise; in a namespace with only
`lo` up nothing a test starts can reach, or be reached from, another host. Where namespaces are
not permitted (not root, a container that forbids them) the suite runs in place, and the local
Ray instances the runtime starts still listen on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

PRIVATE_NET = "ROBOT_RL_PRIVATE_NET"  # "1" inside the namespace, "0" where none could be made
LOOPBACK_UP = 'ip link set lo up && exec "$@"'


def _can_unshare() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(["unshare", "--net", "sh", "-c", "ip link set lo up"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


def pytest_configure(config: pytest.Config) -> None:
    """Re-run this same pytest command inside a fresh network namespace (once)."""
    if os.environ.get(PRIVATE_NET):
        return
    if not _can_unshare():
        os.environ[PRIVATE_NET] = "0"
        print("tests: no private network namespace (unshare not permitted); running in place, "
              "Ray bound to 127.0.0.1", file=sys.stderr)
        return
    os.environ[PRIVATE_NET] = "1"
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.stop_global_capturing()  # the new process must write to the real terminal
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp("unshare", ["unshare", "--net", "sh", "-c", LOOPBACK_UP, "sh", *sys.orig_argv])
