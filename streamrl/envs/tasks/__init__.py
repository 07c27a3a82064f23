"""Task families: a gym env whose tasks differ by a few parameters (physics, or the
objective), drawn from ranges, and :class:`SampleTask`, the transform that gives an env a
task at reset and writes ``("task", "id")`` / ``("task", "params")`` into its data (for
multi-task batches and meta-RL); :class:`MetaWorldFamily`, Meta-World's benchmarks, where the
optional ``metaworld`` package is installed."""

from streamrl.envs.tasks.family import (
    CartPoleFamily,
    HalfCheetahDirFamily,
    HalfCheetahVelFamily,
    NavigationFamily,
    PendulumFamily,
    TaskFamily,
)
from streamrl.envs.tasks.meta_world import MetaWorldFamily, metaworld_batch
from streamrl.envs.tasks.sample_task import SampleTask

__all__ = [
    "CartPoleFamily",
    "HalfCheetahDirFamily",
    "HalfCheetahVelFamily",
    "MetaWorldFamily",
    "NavigationFamily",
    "PendulumFamily",
    "SampleTask",
    "TaskFamily",
    "metaworld_batch",
]
