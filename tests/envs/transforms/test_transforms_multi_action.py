"""MultiAction: a stack of actions per step."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from transform_contract import TransformContractTests

from streamrl.envs.transforms import Compose, MultiAction, StepCounter, TransformedEnv
from streamrl.envs.utils import check_env_specs


# stack_rewards=False: SerialEnv/ParallelEnv step buffers hold rewards of shape (*batch, 1)
class TestMultiActionContract(TransformContractTests):
    def make_transform(self):
        return MultiAction(chunk_size=2, stack_rewards=False)


class TestMultiActionStackedObservationsContract(TransformContractTests):
    def make_transform(self):
        return Compose(
            MultiAction(chunk_size=3, stack_rewards=False, stack_observations=True), StepCounter()
        )


def test_each_action_is_stepped_and_rewards_stacked(counting_env):
    base = counting_env(max_count=10)
    env = TransformedEnv(base, Compose(StepCounter(), MultiAction(chunk_size=3)))
    assert env.action_spec.shape == (3, 1) and env.full_reward_spec["reward"].shape == (3, 1)
    td = env.step(env.reset().set("action", torch.tensor([[0.1], [0.2], [0.3]])))
    # CountingEnv's reward is its count: 1, 2, 3; the StepCounter (before) counts actions
    assert td["next", "reward"].squeeze(-1).tolist() == [1.0, 2.0, 3.0]
    assert td["next", "step_count"].item() == 3 and td["next", "observation"][0].item() == 3.0
    assert base.last_action.tolist() == pytest.approx([0.3])


def test_last_reward_and_stacked_observations(counting_env):
    env = TransformedEnv(
        counting_env(batch_size=(2,), max_count=10),
        MultiAction(chunk_size=2, stack_rewards=False, stack_observations=True),
    )
    reset = env.reset()
    assert reset["observation"].shape == (2, 2, 3)
    td = env.step(reset.set("action", torch.zeros(2, 2, 1)))
    assert td["next", "reward"].squeeze(-1).tolist() == [2.0, 2.0]
    assert td["next", "observation"][0, :, 0].tolist() == [1.0, 2.0]
    check_env_specs(env)


def test_done_inside_the_chunk_stops_and_pads(counting_env):
    env = TransformedEnv(counting_env(max_count=2), MultiAction(chunk_size=4))
    td = env.step(env.reset().set("action", torch.zeros(4, 1)))
    assert td["next", "reward"].squeeze(-1).tolist() == [1.0, 2.0, 0.0, 0.0]
    assert td["next", "done"].item()


def test_any_chunk_length_without_chunk_size_and_chunk_key(counting_env):
    base = counting_env(max_count=10)
    env = TransformedEnv(base, MultiAction(chunk_key="plan"))
    assert env.full_action_spec["plan"].shape == (-1, 1)
    assert "action" not in env.full_action_spec.keys()
    td = env.step(env.reset().set("plan", torch.zeros(5, 1)))
    assert td["next", "reward"].shape == (5, 1) and td["next", "observation"][0].item() == 5.0


def test_bad_input(counting_env):
    with pytest.raises(ValueError, match="dim"):
        MultiAction(dim=0)
    with pytest.raises(ValueError, match="chunk_size"):
        MultiAction(chunk_size=0)
    env = TransformedEnv(counting_env(), MultiAction(chunk_size=2))
    with pytest.raises(ValueError, match="expected shape"):
        env.step(env.reset().set("action", torch.zeros(3, 1)))
    with pytest.raises(ValueError, match="expected chunk_size=2"):
        MultiAction(action_key="action", chunk_size=2).inv(TensorDict({"action": torch.zeros(3)}))
    with pytest.raises(ValueError, match="no actions"):
        MultiAction(action_key="action").inv(TensorDict({"action": torch.zeros(())}))
    with pytest.raises(KeyError, match="action"):
        MultiAction(action_key="action").inv(TensorDict({"other": torch.zeros(2)}))
