"""Transforms on batched envs: outside the batch (one transform for all sub-envs, partial
resets through the ``_reset`` mask) and inside each sub-env; both give the same data."""

from __future__ import annotations

import pytest
import torch
from transform_test_envs import CountingEnv

from streamrl.envs import ParallelEnv, SerialEnv
from streamrl.envs.transforms import (
    CatFrames,
    Compose,
    InitTracker,
    NoopResetEnv,
    RewardSum,
    StepCounter,
    ToTensorImage,
    TransformedEnv,
)
from streamrl.envs.utils import check_env_specs

# sub-env i terminates after 2 + i steps, so sub-envs reset at different times
MAX_COUNTS = (2, 3, 4)


def _stack():
    return Compose(
        StepCounter(), RewardSum(), InitTracker(), CatFrames(N=2, dim=-1, in_keys=["observation"])
    )


def _fns(transformed: bool):
    def make(m):
        if transformed:
            return lambda: TransformedEnv(CountingEnv(max_count=m), _stack())
        return lambda: CountingEnv(max_count=m)

    return [make(m) for m in MAX_COUNTS]


def test_transform_outside_serial_env_resets_sub_envs_one_by_one():
    env = TransformedEnv(SerialEnv(3, _fns(False)), _stack())
    try:
        roll = env.rollout(6, break_when_any_done=False)
        assert roll.batch_size == (3, 6)
        counts = roll["next", "step_count"].squeeze(-1).tolist()
        assert counts == [[1, 2, 1, 2, 1, 2], [1, 2, 3, 1, 2, 3], [1, 2, 3, 4, 1, 2]]
        returns = roll["next", "episode_reward"].squeeze(-1)
        assert returns[2].tolist() == [1, 3, 6, 10, 1, 3]
        assert roll["is_init"].squeeze(-1)[0].tolist() == [True, False, True, False, True, False]
        # sub-env 0 reset after step 2: its history restarts with the reset frame
        assert roll["next", "observation"][0, 2, ::3].tolist() == [0.0, 1.0]
        check_env_specs(env, steps=6)
    finally:
        env.close()


def test_inside_and_outside_the_batch_agree():
    outside = TransformedEnv(SerialEnv(3, _fns(False)), _stack())
    inside = SerialEnv(3, _fns(True))
    try:
        a = outside.rollout(7, break_when_any_done=False)
        b = inside.rollout(7, break_when_any_done=False)
        assert set(a.keys(True, True)) == set(b.keys(True, True))
        for key in a.keys(True, True):
            if key == "action":  # random
                continue
            torch.testing.assert_close(a[key], b[key], msg=lambda m, k=key: f"{k}: {m}")
    finally:
        outside.close()
        inside.close()


def test_parallel_env_of_transformed_envs():
    env = ParallelEnv(
        2,
        lambda: TransformedEnv(
            CountingEnv(max_count=3, pixels=True, hw=(4, 4)),
            Compose(ToTensorImage(), StepCounter(), NoopResetEnv(1, random=False)),
        ),
        mp_start_method="fork",
    )
    try:
        assert env.observation_spec["pixels"].shape == (2, 3, 4, 4)
        td = env.reset()
        assert td["step_count"].squeeze(-1).tolist() == [1, 1]  # the no-op step was counted
        roll = env.rollout(4, break_when_any_done=False, tensordict=td, auto_reset=False)
        assert roll["next", "step_count"][0].squeeze(-1).tolist() == [2, 3, 2, 3]
    finally:
        env.close()


@pytest.mark.parametrize("start", ["fork"])
def test_transformed_parallel_env_partial_resets(start):
    env = TransformedEnv(
        ParallelEnv(3, _fns(False), mp_start_method=start), Compose(StepCounter(), RewardSum())
    )
    try:
        roll = env.rollout(5, break_when_any_done=False)
        assert roll["next", "step_count"].squeeze(-1).tolist() == [
            [1, 2, 1, 2, 1],
            [1, 2, 3, 1, 2],
            [1, 2, 3, 4, 1],
        ]
    finally:
        env.close()
