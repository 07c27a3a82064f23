"""The env contract suite itself: it passes a correct env and catches broken ones."""

import numpy as np
import pytest
import torch
from tensordict import TensorDict

from streamrl.data import Categorical, Composite, Unbounded
from streamrl.envs import EnvBase
from streamrl.testing import EnvContractTests, check_env_contract


class ToyEnv(EnvBase):
    """Observation: a float position; action 0/1 moves it; done after 4 steps."""

    def __init__(self, bug=None):
        # the contract must catch a done reset even where the env allows it
        super().__init__(allow_done_after_reset=bug == "reset_done")
        self.bug = bug
        self.observation_spec = Composite(observation=Unbounded((2,)))
        self.action_spec = Categorical(2)
        self.rng = np.random.default_rng()
        self.pos = torch.zeros(2)
        self.t = 0

    def _set_seed(self, seed):
        if self.bug != "ignores_seed":
            self.rng = np.random.default_rng(seed)

    def _reset(self, td):
        self.t = 0
        self.pos = torch.as_tensor(self.rng.normal(size=2), dtype=torch.float32)
        out = TensorDict({"observation": self.pos.clone()}, [])
        if self.bug == "reset_done":
            out["done"] = torch.ones(1, dtype=torch.bool)
        return out

    def _step(self, td):
        self.t += 1
        self.pos = self.pos + (td["action"].float() * 2 - 1)
        term = torch.tensor([self.t >= 4])
        obs = self.pos.clone()
        if self.bug == "obs_dtype":
            obs = obs.double()
        done = term.clone() if self.bug != "done_mismatch" else torch.ones(1, dtype=torch.bool)
        reward = torch.ones(1) if self.bug != "reward_shape" else torch.ones(())
        return TensorDict(
            {
                "observation": obs,
                "reward": reward,
                "done": done,
                "terminated": term,
                "truncated": torch.zeros(1, dtype=torch.bool),
            },
            [],
        )


class TestToyContract(EnvContractTests):
    # a user's env: only _reset/_step/_set_seed and specs; the default stepping protocol
    def make_env(self):
        return ToyEnv()


def _buggy_step_into(self, buffers, t, steps, break_when_any_done):
    # a fast path that forgets to scale the reward: the stepping check must catch it
    n = EnvBase._step_into(self, buffers, t, steps, break_when_any_done)
    buffers.reward[..., t : t + n, :] += 1
    return n


def test_correct_env_passes():
    check_env_contract(ToyEnv)


@pytest.mark.parametrize(
    ("bug", "error", "match"),
    [
        ("reset_done", AssertionError, "reset: 'done' is set"),
        ("done_mismatch", AssertionError, "done != terminated"),
        ("ignores_seed", AssertionError, "same seeds"),
        ("obs_dtype", AssertionError, "not in its spec"),
        ("reward_shape", AssertionError, "reward shape"),
        ("step_into_reward", AssertionError, r"stepping, .*'reward'\)? differs"),
    ],
)
def test_broken_envs_are_caught(bug, error, match, monkeypatch):
    if bug == "step_into_reward":
        monkeypatch.setattr(ToyEnv, "_step_into", _buggy_step_into)
    with pytest.raises(error, match=match):
        check_env_contract(lambda: ToyEnv(bug))
