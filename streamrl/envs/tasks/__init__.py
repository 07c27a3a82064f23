"""Task families: a gym env whose tasks differ by a few parameters (physics, or the
objective), drawn from ranges, and :class:`SampleTask`, the transform that gives an env a
task at reset and writes ``("task", "id")`` / ``("task", "params")`` into its data (for
multi-task batches and meta-RL)."""

from streamrl.envs.tasks.family import (
    CartPoleFamily,
    HalfCheetahDirFamily,
    HalfCheetahVelFamily,
    NavigationFamily,
    PendulumFamily,
    TaskFamily,
)
from streamrl.envs.tasks.sample_task import SampleTask

__all__ = [
    "CartPoleFamily",
    "HalfCheetahDirFamily",
    "HalfCheetahVelFamily",
    "NavigationFamily",
    "PendulumFamily",
    "SampleTask",
    "TaskFamily",
]
