"""Transform stacks checked against the env contract suite (streamrl.testing)."""

from __future__ import annotations

import torch
from transform_test_envs import CountingEnv

from streamrl.envs import SerialEnv
from streamrl.envs.libs.gym import GymEnv
from streamrl.envs.transforms import (
    CatFrames,
    CenterCrop,
    Compose,
    DTypeCastTransform,
    ExcludeTransform,
    FlattenObservation,
    GrayScale,
    InitTracker,
    NoopResetEnv,
    ObservationNorm,
    RenameTransform,
    Resize,
    RewardClipping,
    RewardScaling,
    RewardSum,
    SelectTransform,
    StepCounter,
    ToTensorImage,
    TransformedEnv,
    UnsqueezeTransform,
    VecNorm,
)
from streamrl.testing import EnvContractTests


class TestCartPoleCounters(EnvContractTests):
    steps = 12

    def make_env(self):
        return TransformedEnv(
            GymEnv("CartPole-v1"),
            Compose(
                NoopResetEnv(3),
                StepCounter(max_steps=10),
                RewardSum(),
                InitTracker(),
                VecNorm(decay=0.99),
            ),
        )


class TestPendulumObservationAndActionPath(EnvContractTests):
    def make_env(self):
        return TransformedEnv(
            GymEnv("Pendulum-v1"),
            Compose(
                ObservationNorm(loc=0.0, scale=2.0),
                RewardScaling(0.0, 0.1),
                RewardClipping(-1.0, 1.0),
                CatFrames(N=3, dim=-1, in_keys=["observation"]),
                UnsqueezeTransform(-1, in_keys=[], in_keys_inv=["action"]),
                DTypeCastTransform(
                    torch.float32, torch.float16, in_keys=[], in_keys_inv=["action"]
                ),
            ),
        )


class TestPendulumPixels(EnvContractTests):
    steps = 3

    def make_env(self):
        return TransformedEnv(
            GymEnv("Pendulum-v1", from_pixels=True, pixels_only=True),
            Compose(
                ToTensorImage(),
                GrayScale(),
                Resize(32),
                CenterCrop(24),
                CatFrames(N=2, dim=-3),
                FlattenObservation(-3, -2, in_keys=["pixels"]),
            ),
        )


class TestBatchedKeys(EnvContractTests):
    steps = 7

    def make_env(self):
        return TransformedEnv(
            CountingEnv(batch_size=(3,), max_count=4, pixels=True),
            Compose(
                RenameTransform(["observation"], ["obs"]),
                ExcludeTransform("pixels"),
                StepCounter(),
                SelectTransform("obs", "step_count"),
            ),
        )


class TestSerialCartPoleOutside(EnvContractTests):
    steps = 15

    def make_env(self):
        return TransformedEnv(
            SerialEnv(2, lambda: GymEnv("CartPole-v1")),
            Compose(StepCounter(max_steps=12), RewardSum(), InitTracker()),
        )
