"""TorchRL's module path for the batched envs: :class:`SerialEnv` and :class:`ParallelEnv`
(defined in :mod:`streamrl.envs.batched` and :mod:`streamrl.envs.parallel`)."""

from streamrl.envs.batched import SerialEnv
from streamrl.envs.parallel import ParallelEnv

__all__ = ["ParallelEnv", "SerialEnv"]
