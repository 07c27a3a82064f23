"""The root of the next step leaves out every reward key of the env, not only "reward": a
transform that writes a second reward entry (a scaled or normalized reward) must not leak it
into the root, where it would break the stacking of a rollout."""

from __future__ import annotations

import pytest
import torch

from streamrl.collectors import SyncDataCollector
from streamrl.envs import GymEnv, SerialEnv, TransformedEnv
from streamrl.envs.transforms import RewardScaling


def scaled_pendulum():
    return TransformedEnv(GymEnv("Pendulum-v1"),
                          RewardScaling(loc=0.0, scale=2.0, in_keys=["reward"],
                                        out_keys=["reward_scaled"]))


def test_reward_keys_and_next_root():
    env = scaled_pendulum()
    assert env.reward_keys == ["reward", "reward_scaled"]
    td = env.reset()
    td["action"] = env.action_spec.rand()
    stepped = env.step(td)
    root = env.next_root(stepped)
    assert "reward_scaled" not in root.keys() and "action" not in root.keys()
    torch.testing.assert_close(stepped["next", "reward_scaled"], 2 * stepped["next", "reward"])
    _, root = env.step_and_maybe_reset(td)
    assert "reward_scaled" not in root.keys()


@pytest.mark.parametrize("break_when_any_done", [True, False])
def test_rollouts_keep_the_extra_reward_under_next_only(break_when_any_done):
    env = scaled_pendulum()
    roll = env.rollout(6, break_when_any_done=break_when_any_done)
    assert roll.batch_size == (6,)
    assert "reward_scaled" in roll["next"].keys() and "reward_scaled" not in roll.keys()
    batched = SerialEnv(2, scaled_pendulum)
    try:
        roll = batched.rollout(4, break_when_any_done=break_when_any_done)
        assert roll.batch_size == (2, 4) and "reward_scaled" not in roll.keys()
    finally:
        batched.close()


def test_collector_batches_with_an_extra_reward_key():
    collector = SyncDataCollector(scaled_pendulum, None, frames_per_batch=8, total_frames=16)
    try:
        for batch in collector:
            assert "reward_scaled" in batch["next"].keys() and "reward_scaled" not in batch.keys()
    finally:
        collector.shutdown()
