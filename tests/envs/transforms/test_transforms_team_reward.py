"""TeamReward: the mean of an agent group's rewards as one reward per env (contract on a
counting env with a two-agent group; values, specs, bad input; on PettingZoo)."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from tensordict import TensorDict
from transform_contract import TransformContractTests
from transform_test_envs import CountingEnv

from streamrl.data.specs import Composite, Unbounded
from streamrl.envs.transforms import TeamReward, TransformedEnv


class GroupCountingEnv(CountingEnv):
    """CountingEnv whose reward is a two-agent group's: ``count`` and ``3 * count``."""

    def __init__(self, batch_size=(), **kwargs) -> None:
        super().__init__(batch_size=batch_size, **kwargs)
        b = self.batch_size
        self.full_reward_spec = Composite(
            team=Composite(reward=Unbounded((*b, 2, 1)), shape=(*b, 2)), shape=b)

    def _step(self, tensordict):
        out = super()._step(tensordict)
        count = out.pop("reward")
        out.set(("team", "reward"), torch.stack([count, 3 * count], -2))
        return out


class TestTeamRewardContract(TransformContractTests):
    base_env = GroupCountingEnv

    def make_transform(self):
        return TeamReward("team")


def test_the_team_reward_is_the_agents_mean_and_the_group_stays():
    env = TransformedEnv(GroupCountingEnv((2,), max_count=3), TeamReward("team"))
    assert env.reward_keys == [("team", "reward"), "reward"]
    assert env.full_reward_spec["reward"].shape == (2, 1)
    td = env.rollout(3)
    # count 1, 2, 3: agents get c and 3c, the team 2c
    assert td["next", "reward"][0].squeeze(-1).tolist() == [2.0, 4.0, 6.0]
    assert td["next", "team", "reward"].shape == (2, 3, 2, 1)
    named = TransformedEnv(GroupCountingEnv(max_count=3), TeamReward("team", out_key="mean"))
    assert named.rollout(2)["next", "mean"].squeeze(-1).tolist() == [2.0, 4.0]


def test_bad_input():
    with pytest.raises(TypeError, match="group must be an agent group's name"):
        TeamReward(("team", "reward"))
    with pytest.raises(ValueError, match=r"\[\*batch, n_agents, 1\], found \(\)"):
        TeamReward("team")(TensorDict({("team", "reward"): torch.tensor(1.0)}))
    with pytest.raises(KeyError):
        TeamReward("team")(TensorDict({"reward": torch.ones(1)}))


@pytest.mark.skipif(importlib.util.find_spec("mpe2") is None, reason="needs mpe2")
def test_on_simple_spread():
    from streamrl.envs.libs.pettingzoo import PettingZooEnv

    env = TransformedEnv(PettingZooEnv("simple_spread_v3", parallel=True, max_cycles=5),
                         TeamReward("agent"))
    try:
        td = env.rollout(5)
        torch.testing.assert_close(td["next", "reward"], td["next", "agent", "reward"].mean(-2))
    finally:
        env.close()
