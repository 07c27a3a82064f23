"""MultiThreadedEnv / MultiThreadedEnvWrapper: EnvPool's thread pools as batched envs."""

from __future__ import annotations

import pytest
import torch

from streamrl import StreamRLWarning
from streamrl.data.specs import Categorical, OneHot
from streamrl.envs import MultiThreadedEnv, MultiThreadedEnvWrapper
from streamrl.testing import EnvContractTests

envpool = pytest.importorskip("envpool")


class TestCartPoleContract(EnvContractTests):
    def make_env(self):
        return MultiThreadedEnv(3, "CartPole-v1")


# a pool is seeded when made (set_seed warns): each env of the suite is made with seed 0
@pytest.mark.filterwarnings("ignore:MultiThreadedEnvWrapper.set_seed does nothing")
class TestWrapperContract(EnvContractTests):
    def make_env(self):
        return MultiThreadedEnvWrapper(envpool.make("CartPole-v1", env_type="gymnasium",
                                                    num_envs=2, seed=0))


class TestPongContract(EnvContractTests):
    stepping_steps = 12

    def make_env(self):
        # episodes of 20 agent steps: the stepping check crosses episode ends
        return MultiThreadedEnv(2, "Pong-v5", create_env_kwargs={"max_episode_steps": 20})


def test_specs_and_atari_frames():
    env = MultiThreadedEnv(2, "ALE/Pong-v5", categorical_action_encoding=True)
    try:
        assert env.batch_size == (2,)
        assert isinstance(env.action_spec, Categorical) and env.action_spec.shape == (2,)
        spec = env.observation_spec["observation"]
        assert spec.shape == (2, 4, 84, 84) and spec.dtype == torch.uint8
        td = env.rollout(3)
        assert td["next", "observation"].shape == (2, 3, 4, 84, 84)
        assert td["next", "reward"].shape == (2, 3, 1)
    finally:
        env.close()
    one_hot = MultiThreadedEnv(2, "CartPole-v1")
    assert isinstance(one_hot.action_spec, OneHot) and one_hot.action_spec.shape == (2, 2)
    one_hot.close()


def test_partial_reset_resets_only_the_marked_envs():
    env = MultiThreadedEnv(3, "CartPole-v1", create_env_kwargs={"seed": 1})
    try:
        td = env.reset()
        for _ in range(3):
            td = env.rand_step(td)["next"]
        before = td["observation"].clone()
        handed_out = td["observation"]
        td.set("_reset", torch.tensor([[False], [True], [False]]))
        out = env.reset(td)
        assert torch.equal(handed_out, before)  # what a step returned is never written over
        assert torch.equal(out["observation"][[0, 2]], before[[0, 2]])
        assert not torch.equal(out["observation"][1], before[1])
        assert out["observation"][1].abs().max() <= 0.05  # CartPole's initial state range
        # the reset env steps on from its new state: no auto-reset step by EnvPool
        nxt = env.rand_step(out.exclude("_reset"))["next"]
        assert not nxt["done"].any() and (nxt["reward"] == 1).all()
    finally:
        env.close()


def test_seeding_rebuilds_the_pool():
    def first_obs(seed):
        env = MultiThreadedEnv(2, "CartPole-v1")
        env.set_seed(seed)
        torch.manual_seed(0)  # the random actions
        try:
            return env.rollout(4, break_when_any_done=False)["next", "observation"]
        finally:
            env.close()

    assert torch.equal(first_obs(3), first_obs(3))
    assert not torch.equal(first_obs(3), first_obs(4))


def test_wrapper_wraps_a_pool_and_cannot_reseed_it():
    pool = envpool.make("CartPole-v1", env_type="gymnasium", num_envs=2, seed=0)
    env = MultiThreadedEnvWrapper(pool)
    try:
        assert env.num_workers == 2 and "num_workers=2" in repr(env)
        with pytest.warns(StreamRLWarning, match="seeded when it is made"):
            env.set_seed(1)
        assert env.rollout(2)["next", "observation"].shape == (2, 2, 4)
    finally:
        env.close()


def test_bad_arguments():
    with pytest.raises(TypeError, match="expects an EnvPool pool"):
        MultiThreadedEnvWrapper(object())
    with pytest.raises(ValueError, match="num_workers must be an int >= 1"):
        MultiThreadedEnv(0, "CartPole-v1")
    with pytest.raises(ValueError, match="EnvPool has no task 'Nope-v0'"):
        MultiThreadedEnv(1, "Nope-v0")
    with pytest.raises(TypeError, match="create_env_kwargs must be a dict"):
        MultiThreadedEnv(1, "CartPole-v1", create_env_kwargs=[1])
    pool = envpool.make("CartPole-v1", env_type="gymnasium", num_envs=4, batch_size=2)
    with pytest.raises(ValueError, match=r"synchronous mode.*batch_size=2, num_envs=4"):
        MultiThreadedEnvWrapper(pool)
