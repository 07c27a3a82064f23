"""FrameSkipTransform: rewards summed over frames, early stop at done, transforms before
(count frames) and after (action path applied to every frame), bad input, contract."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from transform_contract import TransformContractTests

from streamrl.envs.transforms import (
    Compose,
    FrameSkipTransform,
    StepCounter,
    TransformedEnv,
    UnsqueezeTransform,
)


def test_frame_skip_sums_rewards_and_stops_at_done(counting_env):
    env = TransformedEnv(counting_env(max_count=5), FrameSkipTransform(2))
    roll = env.rollout(5)
    # frames c = (1, 2), (3, 4), (5: done, the repetition stops)
    assert roll["next", "reward"].squeeze(-1).tolist() == [3.0, 7.0, 5.0]
    assert roll["next", "observation"][:, 0].tolist() == [2.0, 4.0, 5.0]
    assert roll["next", "done"].squeeze(-1).tolist() == [False, False, True]


def test_frame_skip_batched_stops_when_any_sub_env_is_done(counting_env):
    env = TransformedEnv(counting_env(batch_size=(2,), max_count=3), FrameSkipTransform(4))
    out = env.rand_step(env.reset())
    assert out["next", "reward"].squeeze(-1).tolist() == [6.0, 6.0]  # 1 + 2 + 3, then done


def test_frame_skip_with_transforms_before_and_after(counting_env):
    base = counting_env(max_count=20)
    env = TransformedEnv(
        base,
        Compose(
            StepCounter(), FrameSkipTransform(3), UnsqueezeTransform(-1, in_keys_inv=["action"])
        ),
    )
    td = env.reset()
    td["action"] = torch.full((1, 1), 0.5)
    out = env.step(td)
    assert out["next", "step_count"].item() == 3  # frames counted by the transform before
    assert base.last_action.shape == (1,) and base.last_action.item() == 0.5
    assert out["next", "reward"].item() == 6.0


def test_frame_skip_bad_input_and_plain_data(counting_env):
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="positive int"):
            FrameSkipTransform(bad)
    td = TensorDict({"reward": torch.ones(1)})
    assert FrameSkipTransform(3)(td)["reward"].tolist() == [1.0]
    env = TransformedEnv(counting_env(), FrameSkipTransform(1))
    assert env.rollout(2)["next", "reward"].squeeze(-1).tolist() == [1.0, 2.0]


class TestFrameSkipContract(TransformContractTests):
    def make_transform(self):
        return Compose(
            StepCounter(), FrameSkipTransform(2), UnsqueezeTransform(-1, in_keys_inv=["action"])
        )
