"""capture_state / restore_state: a restored env continues exactly; bad states change nothing."""

from __future__ import annotations

import functools

import gymnasium as gym
import pytest
import torch

from streamrl.envs import GymEnv, GymWrapper, ParallelEnv, SerialEnv, TransformedEnv
from streamrl.envs.transforms import (
    CatFrames,
    Compose,
    ObservationNorm,
    RewardSum,
    StepCounter,
    VecNorm,
)
from streamrl.envs.utils import step_mdp
from streamrl.train import load_checkpoint, save_checkpoint

STEPS = 50


def _advance(env, steps, seed=1):
    """Reset and take ``steps`` random steps (resetting done envs); the carried root."""
    env.set_seed(seed)
    torch.manual_seed(seed)
    td = env.reset()
    if steps:
        td = env.rollout(steps, auto_reset=False, tensordict=td, break_when_any_done=False)
        td = env.maybe_reset(step_mdp(td[..., -1]))
    return td


def _continue(env, td, seed=7):
    torch.manual_seed(seed)
    return env.rollout(STEPS, auto_reset=False, tensordict=td.clone(), break_when_any_done=False)


def _assert_continues_identically(make, warmup=30, through_file=None):
    env, twin = make(), make()
    try:
        td = _advance(env, warmup)
        _advance(twin, 3, seed=99)  # somewhere else entirely
        state = env.capture_state()
        if through_file is not None:  # plain data: saves and loads with weights_only=True
            state = load_checkpoint(save_checkpoint(through_file, {"env": state}))["env"]
        twin.restore_state(state)
        a, b = _continue(env, td), _continue(twin, td)
        assert (a == b).all(), "the restored env diverged"
        # and the twin's state is now the original's, step for step
        assert bool(a["next", "done"].any()), "the test should cross an episode end"
    finally:
        env.close()
        twin.close()


@pytest.mark.parametrize(
    "name", ["CartPole-v1", "Pendulum-v1", "MountainCar-v0", "Acrobot-v1",
             "MountainCarContinuous-v0"]
)
def test_classic_control_continues_identically(name, tmp_path):
    def make():
        # short episodes so that 50 steps cross a reset (the reset uses the env's np_random)
        return GymEnv(name, max_episode_steps=20)

    _assert_continues_identically(make, through_file=tmp_path / "s.pt")


def test_serial_env_continues_identically():
    _assert_continues_identically(lambda: SerialEnv(3, lambda: GymEnv("CartPole-v1")))


def test_parallel_env_continues_identically():
    _assert_continues_identically(
        lambda: ParallelEnv(2, functools.partial(GymEnv, "CartPole-v1")), warmup=10)


def test_transformed_env_with_stateful_transforms_continues_identically():
    def make():
        base = SerialEnv(2, lambda: GymEnv("CartPole-v1"))
        return TransformedEnv(base, Compose(
            ObservationNorm(loc=0.0, scale=1.0), VecNorm(), StepCounter(max_steps=15),
            RewardSum()))

    _assert_continues_identically(make)


def test_restored_transform_stats_and_counters():
    env = TransformedEnv(GymEnv("CartPole-v1"), Compose(VecNorm(), StepCounter()))
    twin = TransformedEnv(GymEnv("CartPole-v1"), Compose(VecNorm(), StepCounter()))
    try:
        _advance(env, 12)
        twin.restore_state(env.capture_state())
        for a, b in zip(env.transform[0].mean_std(), twin.transform[0].mean_std()):
            assert torch.equal(a, b)
    finally:
        env.close()
        twin.close()


def test_state_is_plain_data_and_has_the_env_type():
    env = GymEnv("CartPole-v1")
    try:
        _advance(env, 5)
        state = env.capture_state()
        assert state["type"] == "GymEnv"
        assert state["state"]["gym"]["env_id"] == "CartPole-v1"
        assert state["state"]["gym"]["wrappers"][0]["attrs"] == {"_elapsed_steps": 5}
    finally:
        env.close()


# ------------------------------------------------------------------ bad input
@pytest.fixture
def cartpole():
    env = GymEnv("CartPole-v1")
    _advance(env, 5)
    yield env
    env.close()


def _unchanged(env):
    before = env.capture_state()
    return lambda: _same(before, env.capture_state())


def _same(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return a == b


def test_state_of_another_env_id_is_refused(cartpole):
    other = GymEnv("Acrobot-v1")
    try:
        _advance(other, 3)
        state = other.capture_state()
    finally:
        other.close()
    still = _unchanged(cartpole)
    with pytest.raises(ValueError, match="'Acrobot-v1', this env is 'CartPole-v1'"):
        cartpole.restore_state(state)
    assert still()


def test_state_with_wrong_keys_or_type_is_refused(cartpole):
    still = _unchanged(cartpole)
    state = cartpole.capture_state()
    with pytest.raises(TypeError, match="expected an env state"):
        cartpole.restore_state([1, 2])
    with pytest.raises(ValueError, match="expected keys"):
        cartpole.restore_state({"type": "GymEnv"})
    with pytest.raises(ValueError, match="is of a SerialEnv, this env is a GymEnv"):
        cartpole.restore_state({**state, "type": "SerialEnv"})
    broken = {**state, "state": {**state["state"], "extra": 1}}
    with pytest.raises(ValueError, match="expected keys"):
        cartpole.restore_state(broken)
    assert still()


def test_batched_state_of_another_size_is_refused():
    three, two = (SerialEnv(n, lambda: GymEnv("CartPole-v1")) for n in (3, 2))
    try:
        _advance(three, 2)
        _advance(two, 2)
        with pytest.raises(ValueError, match="state is of 3 sub-envs, this SerialEnv has 2"):
            two.restore_state(three.capture_state())
    finally:
        three.close()
        two.close()


def test_batched_state_is_checked_for_every_sub_env_before_any_is_restored():
    a = SerialEnv(2, lambda: GymEnv("CartPole-v1"))
    b = SerialEnv(2, lambda: GymEnv("CartPole-v1"))
    try:
        _advance(a, 4)
        _advance(b, 9, seed=3)
        state = a.capture_state()
        gym_state = state["state"]["envs"][1]["state"]["gym"]
        gym_state["env_id"] = "Acrobot-v1"  # only the second sub-env is wrong
        still = _unchanged(b)
        with pytest.raises(ValueError, match="sub-env 1"):
            b.restore_state(state)
        assert still()
    finally:
        a.close()
        b.close()


def test_parallel_env_refuses_a_foreign_sub_env_state():
    a = ParallelEnv(2, functools.partial(GymEnv, "CartPole-v1"))
    try:
        _advance(a, 2)
        state = a.capture_state()
        state["state"]["envs"][0]["state"]["gym"]["env_id"] = "Pendulum-v1"
        with pytest.raises(ValueError, match="'Pendulum-v1', this env is 'CartPole-v1'"):
            a.restore_state(state)
    finally:
        a.close()


def test_transformed_env_refuses_other_transforms():
    a = TransformedEnv(GymEnv("CartPole-v1"), StepCounter())
    b = TransformedEnv(GymEnv("CartPole-v1"), RewardSum())
    try:
        _advance(a, 2)
        with pytest.raises(ValueError, match=r"transforms \['StepCounter'\], this env has "
                                             r"\['RewardSum'\]"):
            b.restore_state(a.capture_state())
    finally:
        a.close()
        b.close()


# ------------------------------------------------------------------ what cannot be captured
def test_unknown_gym_env_raises_naming_it():
    env = GymEnv("FrozenLake-v1")
    try:
        env.reset()
        with pytest.raises(NotImplementedError, match="'FrozenLake-v1' cannot be captured"):
            env.capture_state()
    finally:
        env.close()


def test_unknown_wrapper_with_state_raises_naming_it():
    class Counting(gym.Wrapper):
        def __init__(self, env):
            super().__init__(env)
            self.count = 0

    env = GymWrapper(Counting(gym.make("CartPole-v1")))
    try:
        with pytest.raises(NotImplementedError, match=r"wrapper Counting holds \['count'\]"):
            env.capture_state()
    finally:
        env.close()


def test_env_without_the_hooks_raises_naming_it():
    from tests.envs.test_batched import CountingEnv

    env = CountingEnv()
    with pytest.raises(NotImplementedError, match="CountingEnv"):
        env.capture_state()


def test_frame_stacking_refuses_rather_than_resuming_part_of_the_state():
    env = TransformedEnv(GymEnv("CartPole-v1"), CatFrames(N=2, dim=-1, in_keys=["observation"]))
    try:
        env.reset()
        with pytest.raises(NotImplementedError, match="CatFrames keeps state outside"):
            env.capture_state()
    finally:
        env.close()


def test_closed_env_refuses(cartpole):
    state = cartpole.capture_state()
    cartpole.close()
    from streamrl.envs import EnvClosedError

    with pytest.raises(EnvClosedError):
        cartpole.restore_state(state)
