"""PendulumEnv: TorchRL's stateless pure-torch pendulum."""

import math

import pytest
import torch
from tensordict import TensorDict

from streamrl.envs import PendulumEnv, check_env_specs
from streamrl.envs.custom import PendulumEnv as CustomPendulumEnv
from streamrl.testing import EnvContractTests


class TestPendulumContract(EnvContractTests):
    def make_env(self):
        return PendulumEnv(seed=0)


def _state(th, thdot, batch=()):
    td = PendulumEnv.gen_params(batch_size=batch)
    td["th"] = torch.as_tensor(th, dtype=torch.float32).expand(batch)
    td["thdot"] = torch.as_tensor(thdot, dtype=torch.float32).expand(batch)
    return td


def test_both_import_paths_are_one_class():
    assert CustomPendulumEnv is PendulumEnv


def test_one_step_follows_the_pendulum_equations():
    env = PendulumEnv(seed=0)
    td = _state(0.0, 0.0)
    td["action"] = torch.tensor([2.0])
    nxt = env.step(td)["next"]
    # thdot' = 0 + 3 / (m l^2) * u * dt = 3 * 2 * 0.05; th' = thdot' * dt
    assert nxt["thdot"].item() == pytest.approx(0.3, rel=1e-5)
    assert nxt["th"].item() == pytest.approx(0.015, rel=1e-5)
    assert nxt["reward"].item() == pytest.approx(-0.001 * 4, rel=1e-5)
    assert not nxt["done"].item() and not nxt["terminated"].item()


def test_torque_is_clipped_and_speed_bounded_and_angle_wrapped():
    env = PendulumEnv(seed=0)
    td = _state(3.1, 7.9)
    td["action"] = torch.tensor([50.0])  # clipped to max_torque = 2
    nxt = env.step(td)["next"]
    assert nxt["thdot"].item() == pytest.approx(8.0)  # max_speed
    assert -math.pi <= nxt["th"].item() <= math.pi
    assert nxt["th"].item() == pytest.approx(3.1 + 0.4 - 2 * math.pi, abs=1e-5)
    cost = 3.1**2 + 0.1 * 7.9**2 + 0.001 * 4
    assert nxt["reward"].item() == pytest.approx(-cost, rel=1e-5)


def test_batch_unlocked_steps_any_batch():
    env = PendulumEnv(seed=0)
    assert not env.batch_locked and env.batch_size == ()
    td = env.reset(env.gen_params(batch_size=[6]))
    assert td["th"].shape == (6,) and td["params", "g"].shape == (6,)
    roll = env.rollout(5, auto_reset=False, tensordict=td)
    assert roll.batch_size == (6, 5)
    assert roll["next", "reward"].shape == (6, 5, 1)
    # each row follows its own parameters
    params = env.gen_params(batch_size=[2])
    params["params", "g"] = torch.tensor([0.0, 20.0])
    td = env.reset(params)
    td["th"] = torch.full((2,), 1.0)
    td["thdot"] = torch.zeros(2)
    td["action"] = torch.zeros(2, 1)
    nxt = env.step(td)["next"]
    assert nxt["thdot"][0].item() == 0.0 and nxt["thdot"][1].item() > 0.0


def test_seed_makes_resets_reproducible_and_td_params_are_the_default():
    a, b = PendulumEnv(seed=3), PendulumEnv(seed=3)
    assert torch.equal(a.reset()["th"], b.reset()["th"])
    a.set_seed(4)
    b.set_seed(5)
    assert not torch.equal(a.reset()["th"], b.reset()["th"])
    low_g = PendulumEnv(td_params=PendulumEnv.gen_params(g=1.0), seed=0)
    assert low_g.reset()["params", "g"].item() == 1.0
    th = low_g.reset()["th"]
    assert -math.pi <= th.item() <= math.pi


def test_check_env_specs_and_rollout_shapes():
    env = PendulumEnv(seed=1)
    check_env_specs(env)
    roll = env.rollout(3)
    assert roll["action"].shape == (3, 1)
    assert roll["next", "th"].shape == (3,)


def test_bad_arguments():
    with pytest.raises(TypeError, match="params"):
        PendulumEnv(td_params=TensorDict({"g": torch.tensor(1.0)}))
    env = PendulumEnv(seed=0)
    td = env.reset(env.gen_params(batch_size=[2]))
    td["action"] = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="shape"):
        env.step(td)
