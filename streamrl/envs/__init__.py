"""streamrl.envs: the environment contract, gymnasium wrappers, transforms, batched envs.

:class:`EnvBase` is the contract; :class:`~streamrl.envs.libs.gym.GymEnv` wraps gymnasium,
:class:`~streamrl.envs.libs.dm_control.DMControlEnv` the DeepMind Control suite,
:class:`~streamrl.envs.libs.pettingzoo.PettingZooEnv` PettingZoo's multi-agent envs;
:class:`SerialEnv` and :class:`ParallelEnv` batch N envs (in this process / in worker
processes); transforms (:class:`TransformedEnv`, :class:`Compose`, ...) rewrite an env's
inputs and outputs. Every env steps through one protocol, :meth:`EnvBase.step_into` into
:class:`StepBuffers`, which :func:`run_steps` (rollouts and collectors) drives.
"""

from streamrl.envs import transforms as _transforms
from streamrl.envs.atari import atari_transforms, make_atari_env
from streamrl.envs.batched import SerialEnv
from streamrl.envs.common import EnvBase, EnvClosedError
from streamrl.envs.custom import BitFlippingEnv, FourRoomsEnv, PendulumEnv, PointNavigationEnv
from streamrl.envs.env_creator import EnvCreator
from streamrl.envs.gym_like import BaseInfoDictReader, default_info_dict_reader
from streamrl.envs.libs.dm_control import DMControlEnv, DMControlWrapper
from streamrl.envs.libs.envpool import MultiThreadedEnv, MultiThreadedEnvWrapper
from streamrl.envs.libs.gym import GymEnv, GymWrapper, gym_backend, set_gym_backend
from streamrl.envs.libs.pettingzoo import PettingZooEnv, PettingZooWrapper
from streamrl.envs.libs.vmas import VmasEnv, VmasWrapper
from streamrl.envs.marl_groups import MarlGroupMapType, check_marl_grouping
from streamrl.envs.parallel import ParallelEnv
from streamrl.envs.step_buffers import StepBuffers
from streamrl.envs.stepping import run_steps
from streamrl.envs.transforms import *  # noqa: F403
from streamrl.envs.utils import (
    ExplorationType,
    RandomPolicy,
    check_env_specs,
    exploration_type,
    make_composite_from_td,
    make_tensordict,
    set_exploration_type,
    step_mdp,
    terminated_or_truncated,
)

__all__ = [
    "BaseInfoDictReader",
    "DMControlEnv",
    "DMControlWrapper",
    "EnvBase",
    "EnvClosedError",
    "EnvCreator",
    "ExplorationType",
    "FourRoomsEnv",
    "GymEnv",
    "GymWrapper",
    "MarlGroupMapType",
    "MultiThreadedEnv",
    "MultiThreadedEnvWrapper",
    "ParallelEnv",
    "PendulumEnv",
    "PettingZooEnv",
    "PettingZooWrapper",
    "BitFlippingEnv",
    "PointNavigationEnv",
    "RandomPolicy",
    "SerialEnv",
    "StepBuffers",
    "VmasEnv",
    "VmasWrapper",
    "check_env_specs",
    "check_marl_grouping",
    "default_info_dict_reader",
    "exploration_type",
    "atari_transforms",
    "gym_backend",
    "make_atari_env",
    "make_composite_from_td",
    "make_tensordict",
    "run_steps",
    "set_exploration_type",
    "set_gym_backend",
    "step_mdp",
    "terminated_or_truncated",
    *_transforms.__all__,
]
