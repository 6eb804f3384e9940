"""MuJoCo arms that are hal robots, and the tasks they do."""

from sim.arm import MujocoArm
from sim.tasks import TASKS, Task, TaskOutcome

__all__ = ["TASKS", "MujocoArm", "Task", "TaskOutcome"]
