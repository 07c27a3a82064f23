"""gSDENoise: the noise shape, drawn at reset and kept through the episode, the placeholder
without dims, partial resets, bad input."""

from __future__ import annotations

import pytest
import torch
from transform_contract import TransformContractTests

from streamrl.envs.transforms import TensorDictPrimer, TransformedEnv, gSDENoise


def test_noise_is_drawn_at_reset_and_kept(counting_env):
    env = TransformedEnv(counting_env(batch_size=(2,), max_count=9),
                         gSDENoise(state_dim=30, action_dim=4, shape=(5,)))
    assert isinstance(env.transform[0], TensorDictPrimer)
    assert env.observation_spec["_eps_gSDE"].shape == (2, 5, 4, 30)
    td = env.reset()
    eps = td["_eps_gSDE"]
    assert eps.shape == (2, 5, 4, 30) and eps.dtype == torch.float32
    assert abs(eps.mean().item()) < 0.2 and 0.8 < eps.std().item() < 1.2  # standard normal
    r = env.rollout(3, tensordict=td, auto_reset=False)
    assert torch.equal(r["next", "_eps_gSDE"][:, -1], eps)  # one draw for the episode
    again = env.reset()["_eps_gSDE"]
    assert not torch.equal(again, eps)  # a new episode, a new draw


def test_partial_reset_redraws_the_reset_rows_only(counting_env):
    env = TransformedEnv(counting_env(batch_size=(2,)), gSDENoise(state_dim=3, action_dim=2))
    td = env.reset()
    eps = td["_eps_gSDE"].clone()
    td["_reset"] = torch.tensor([[True], [False]])
    out = env.reset(td)["_eps_gSDE"]
    assert torch.equal(out[1], eps[1]) and not torch.equal(out[0], eps[0])


def test_placeholder_without_dims(counting_env):
    env = TransformedEnv(counting_env(batch_size=(3,)), gSDENoise(shape=(2,)))
    eps = env.reset()["_eps_gSDE"]
    assert eps.shape == (3, 2, 1) and not eps.any()


def test_bad_input():
    with pytest.raises(ValueError, match="state_dim"):
        gSDENoise(state_dim=0, action_dim=1)
    with pytest.raises(ValueError, match="action_dim"):
        gSDENoise(state_dim=2, action_dim=1.5)
    with pytest.raises(TypeError, match="sets its primer"):
        gSDENoise(3, 1, random=False)
    with pytest.raises(TypeError, match="sequence of ints"):
        gSDENoise(3, 1, shape=4)


class TestgSDENoiseContract(TransformContractTests):
    def make_transform(self):
        return gSDENoise(state_dim=3, action_dim=1)
