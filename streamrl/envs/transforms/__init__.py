"""Env transforms: TransformedEnv, Compose and the transforms themselves.

A transform rewrites an env's outputs (and, for some, its inputs) and the specs that
describe them; it also applies to plain TensorDicts such as replay-buffer samples.

>>> from streamrl.envs.libs.gym import GymEnv
>>> from streamrl.envs.transforms import Compose, ObservationNorm, StepCounter, TransformedEnv
>>> env = TransformedEnv(GymEnv("Pendulum-v1"), Compose(StepCounter(), ObservationNorm(0.0, 2.0)))
>>> env.reset()["step_count"]
tensor([0])
>>> env.close()
"""

from streamrl.envs.transforms.action_discretizer import ActionDiscretizer
from streamrl.envs.transforms.action_mask import ActionMask
from streamrl.envs.transforms.action_projection import DiscreteActionProjection
from streamrl.envs.transforms.auto_reset import AutoResetTransform
from streamrl.envs.transforms.batch_size import BatchSizeTransform
from streamrl.envs.transforms.burn_in import BurnInTransform
from streamrl.envs.transforms.cat_frames import CatFrames
from streamrl.envs.transforms.cat_tensors import CatTensors
from streamrl.envs.transforms.compose import Compose
from streamrl.envs.transforms.conditional_skip import ConditionalSkip
from streamrl.envs.transforms.counters import InitTracker, StepCounter
from streamrl.envs.transforms.device import DeviceCastTransform, PinMemoryTransform
from streamrl.envs.transforms.dtype import DoubleToFloat, DTypeCastTransform
from streamrl.envs.transforms.elementwise import ClipTransform, SignTransform
from streamrl.envs.transforms.end_of_life import EndOfLifeTransform
from streamrl.envs.transforms.expand_as import ExpandAs
from streamrl.envs.transforms.finite_check import FiniteTensorDictCheck
from streamrl.envs.transforms.fire_reset import FireResetEnv
from streamrl.envs.transforms.flatten_action import FlattenAction
from streamrl.envs.transforms.frame_skip import FrameSkipTransform
from streamrl.envs.transforms.goal_reward import GoalReachingReward
from streamrl.envs.transforms.gsde import gSDENoise
from streamrl.envs.transforms.image import CenterCrop, Crop, GrayScale, Resize, ToTensorImage
from streamrl.envs.transforms.keys import ExcludeTransform, RenameTransform, SelectTransform
from streamrl.envs.transforms.multi_action import MultiAction
from streamrl.envs.transforms.multi_step import MultiStepTransform
from streamrl.envs.transforms.noop_reset import NoopResetEnv
from streamrl.envs.transforms.observation_norm import ObservationNorm
from streamrl.envs.transforms.pad import PadObservation
from streamrl.envs.transforms.previous_step import PreviousStepInputs
from streamrl.envs.transforms.primer import TensorDictPrimer
from streamrl.envs.transforms.random_crop import RandomCropTensorDict
from streamrl.envs.transforms.random_truncation import RandomTruncationTransform
from streamrl.envs.transforms.remove_empty_specs import RemoveEmptySpecs
from streamrl.envs.transforms.reward import RewardClipping, RewardScaling, RewardSum
from streamrl.envs.transforms.reward_maps import (
    BinarizeReward,
    LineariseRewards,
    Reward2GoTransform,
    TargetReturn,
)
from streamrl.envs.transforms.running_mean_std import RunningMeanStd
from streamrl.envs.transforms.shape import (
    FlattenObservation,
    PermuteTransform,
    SqueezeTransform,
    UnsqueezeTransform,
)
from streamrl.envs.transforms.stack import Stack
from streamrl.envs.transforms.success_reward import SuccessReward
from streamrl.envs.transforms.team_reward import TeamReward
from streamrl.envs.transforms.terminate import TerminateTransform
from streamrl.envs.transforms.time_max_pool import TimeMaxPool
from streamrl.envs.transforms.timer import Timer
from streamrl.envs.transforms.traj_counter import TrajCounter
from streamrl.envs.transforms.transform import ObservationTransform, Transform
from streamrl.envs.transforms.transformed_env import TransformedEnv
from streamrl.envs.transforms.unary import UnaryTransform
from streamrl.envs.transforms.vecnorm import VecNorm
from streamrl.envs.transforms.vecnorm_v2 import VecNormV2

__all__ = [
    "ActionDiscretizer",
    "ActionMask",
    "AutoResetTransform",
    "BatchSizeTransform",
    "BinarizeReward",
    "BurnInTransform",
    "CatFrames",
    "CatTensors",
    "CenterCrop",
    "ClipTransform",
    "Compose",
    "ConditionalSkip",
    "Crop",
    "DTypeCastTransform",
    "DeviceCastTransform",
    "DiscreteActionProjection",
    "DoubleToFloat",
    "EndOfLifeTransform",
    "ExcludeTransform",
    "ExpandAs",
    "FiniteTensorDictCheck",
    "FireResetEnv",
    "FlattenAction",
    "FlattenObservation",
    "FrameSkipTransform",
    "GoalReachingReward",
    "GrayScale",
    "InitTracker",
    "LineariseRewards",
    "MultiAction",
    "MultiStepTransform",
    "NoopResetEnv",
    "ObservationNorm",
    "ObservationTransform",
    "PadObservation",
    "PermuteTransform",
    "PinMemoryTransform",
    "PreviousStepInputs",
    "RandomCropTensorDict",
    "RandomTruncationTransform",
    "RemoveEmptySpecs",
    "RenameTransform",
    "Resize",
    "Reward2GoTransform",
    "RewardClipping",
    "RewardScaling",
    "RewardSum",
    "RunningMeanStd",
    "SelectTransform",
    "SignTransform",
    "SqueezeTransform",
    "Stack",
    "StepCounter",
    "SuccessReward",
    "TargetReturn",
    "TeamReward",
    "TensorDictPrimer",
    "TerminateTransform",
    "TimeMaxPool",
    "Timer",
    "ToTensorImage",
    "TrajCounter",
    "Transform",
    "TransformedEnv",
    "UnaryTransform",
    "UnsqueezeTransform",
    "VecNorm",
    "VecNormV2",
    "gSDENoise",
]
