"""Accelerators: the CPU (cores, memory) always, and CUDA GPUs through torch where it sees any."""

from __future__ import annotations

import os
from pathlib import Path

from hal.checker import CHECKERS, Checker
from hal.robot import Health, HealthStatus
from hal.units import Node, Unit
from robot_rl.core import HardwareError

GIB = 1024**3


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return os.uname().machine


@CHECKERS.register("accelerator")
class AcceleratorChecker(Checker):
    """`cpu` with its usable cores and memory; `gpu:N` with memory and compute capability."""

    type = "accelerator"
    timeout_s = 20.0  # importing torch and initialising CUDA take seconds on a loaded machine

    def discover(self, node: Node) -> list[Unit]:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        units = [Unit("cpu", self.type, node.name, _cpu_model(),
                      {"cores": len(os.sched_getaffinity(0)), "memory_gb": round(memory / GIB, 1)})]
        return units + self._gpus(node)

    def _gpus(self, node: Node) -> list[Unit]:
        try:
            import torch
        except ImportError:
            return []
        if not torch.cuda.is_available():
            return []
        units = []
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            units.append(Unit(f"gpu:{index}", self.type, node.name, props.name, {
                "index": index, "memory_gb": round(props.total_memory / GIB, 1),
                "compute_capability": f"{props.major}.{props.minor}"}))
        return units

    def validate(self, unit: Unit) -> Health:
        if unit.name == "cpu":
            return Health(HealthStatus.OK, f"load average {os.getloadavg()[0]:.2f}")
        import torch

        try:
            free, total = torch.cuda.mem_get_info(int(unit.meta["index"]))
        except RuntimeError as exc:
            raise HardwareError(f"{unit.name}: CUDA error: {exc}") from None
        return Health(HealthStatus.OK, f"{free / GIB:.1f} of {total / GIB:.1f} GiB free")
