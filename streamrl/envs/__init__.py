"""streamrl.envs: the environment contract, gymnasium wrappers, transforms, batched envs."""

from streamrl.envs.common import EnvBase, EnvClosedError
from streamrl.envs.utils import step_mdp

__all__ = ["EnvBase", "EnvClosedError", "step_mdp"]
