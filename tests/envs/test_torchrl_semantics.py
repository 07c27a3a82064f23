"""TorchRL env semantics: reset(td) in place, done flags completed, batch_locked, nn.Module
envs, attribute passthrough, ParallelEnv arguments, EnvCreator state, closed envs."""

import pickle

import pytest
import torch
from tensordict import TensorDict
from torch import nn

from streamrl.data.specs import Composite, Unbounded
from streamrl.envs import (
    EnvBase,
    EnvClosedError,
    EnvCreator,
    GymEnv,
    ObservationNorm,
    ParallelEnv,
    SerialEnv,
    StepCounter,
    TransformedEnv,
    check_env_specs,
    gym_backend,
    set_gym_backend,
)


class DoneOnlyEnv(EnvBase):
    """A custom env as TorchRL users write it: an nn.Module with a buffer, a parameter and
    a sub-module, whose _step returns only ``done``."""

    def __init__(self, horizon=3):
        super().__init__()
        self.register_buffer("scale", torch.tensor(2.0))
        self.bias = nn.Parameter(torch.zeros(2))
        self.model = nn.Linear(2, 2)
        self.horizon = horizon
        self.t = 0
        self.observation_spec = Composite(observation=Unbounded((2,)), shape=())
        self.action_spec = Unbounded((2,))

    def _set_seed(self, seed):
        pass

    def _reset(self, td, **kwargs):
        self.t = 0
        return TensorDict({"observation": torch.zeros(2)})

    def _step(self, td):  # outputs require grad (a learnt model)
        self.t += 1
        obs = self.model(td["action"]) * self.scale + self.bias
        done = torch.tensor([self.t >= self.horizon])
        return TensorDict({"observation": obs, "reward": torch.ones(1), "done": done})


# ---------------------------------------------------------------- reset in place
def test_reset_updates_the_given_tensordict_in_place():
    with GymEnv("CartPole-v1") as env:
        td = TensorDict({"extra": torch.tensor(1.0), "observation": torch.full((4,), 9.0)})
        out = env.reset(td)
        assert out is td
        assert td["extra"].item() == 1.0
        assert not (td["observation"] == 9.0).any()  # overwritten with the reset observation
        assert not td["done"].any()
        fresh = env.reset()
        assert fresh is not td


def test_partial_reset_of_a_batched_env_updates_in_place_and_keeps_other_rows():
    with SerialEnv(2, lambda: GymEnv("CartPole-v1")) as env:
        env.set_seed(0)
        td = env.reset()
        before = td["observation"].clone()
        td["_reset"] = torch.tensor([[True], [False]])
        out = env.reset(td)
        assert out is td
        assert torch.equal(td["observation"][1], before[1])
        assert not torch.equal(td["observation"][0], before[0])


def test_reset_in_place_through_a_transformed_env_keeps_dropped_keys_out():
    env = TransformedEnv(GymEnv("CartPole-v1"), StepCounter())
    td = TensorDict({"mine": torch.ones(1)})
    out = env.reset(td)
    assert out is td and td["step_count"].item() == 0 and "mine" in td.keys()
    env.close()


# ---------------------------------------------------------------- done flags
def test_terminated_and_truncated_are_filled_from_done():
    env = DoneOnlyEnv(horizon=2)
    td = env.reset()
    assert set(td.keys()) >= {"done", "terminated", "truncated"}
    roll = env.rollout(5)
    nxt = roll["next"]
    assert roll.batch_size == (2,)
    assert torch.equal(nxt["terminated"], nxt["done"])
    assert not nxt["truncated"].any()
    assert nxt["done"][-1].item()
    assert not nxt["observation"].requires_grad  # buffered rollouts keep values only
    check_env_specs(env)


# ---------------------------------------------------------------- nn.Module envs
def test_custom_env_is_an_nn_module_with_buffers_and_parameters():
    env = DoneOnlyEnv()
    assert isinstance(env, nn.Module)
    assert sorted(env.state_dict()) == ["bias", "model.bias", "model.weight", "scale"]
    assert len(list(env.parameters())) == 3
    env.scale = torch.tensor(5.0)  # setting a registered buffer updates it
    assert env.state_dict()["scale"].item() == 5.0
    env.horizon = 7  # plain attributes stay plain
    assert "horizon" not in env.state_dict() and env.horizon == 7
    del env.model
    assert "model.weight" not in env.state_dict()
    with pytest.raises(AttributeError):
        _ = env.model


# ---------------------------------------------------------------- batch_locked
def test_batch_locked_by_default_and_refuses_other_batches():
    with GymEnv("CartPole-v1") as env:
        assert env.batch_locked
        with pytest.raises(ValueError, match="batch_size"):
            env.reset(TensorDict(batch_size=[3]))
    with pytest.raises(TypeError, match="batch_locked"):
        EnvBase(batch_locked="no")


def test_unlocked_env_still_refuses_a_mismatched_trailing_batch():
    env = SerialEnv(2, lambda: GymEnv("CartPole-v1"))
    env.batch_locked = False
    with pytest.raises(ValueError, match="batch_size"):
        env.reset(TensorDict(batch_size=[3]))
    env.close()


# ---------------------------------------------------------------- passthrough
def test_gym_wrapper_reads_missing_attributes_from_the_gymnasium_env():
    env = GymEnv("CartPole-v1")
    assert env.spec.id == "CartPole-v1"
    assert env.unwrapped.gravity == pytest.approx(9.8)
    with pytest.raises(AttributeError, match="no_such_attribute"):
        _ = env.no_such_attribute
    wrapped = TransformedEnv(env, StepCounter())
    assert wrapped.spec.id == "CartPole-v1"  # TransformedEnv -> GymEnv -> gymnasium env
    assert pickle.loads(pickle.dumps(EnvCreator(lambda: GymEnv("CartPole-v1"))))().spec
    wrapped.close()


def test_available_envs_and_gym_backend():
    assert "CartPole-v1" in GymEnv.available_envs
    import gymnasium

    assert gym_backend() is gymnasium
    with set_gym_backend(gymnasium):
        assert gym_backend("spaces") is gymnasium.spaces
    with set_gym_backend(lambda: gymnasium):
        pass
    with pytest.raises(ValueError, match="gymnasium"):
        set_gym_backend("gym")
    with pytest.raises(TypeError):
        set_gym_backend(3)


# ---------------------------------------------------------------- ParallelEnv args
def test_parallel_env_serial_for_single_and_pin_memory():
    single = ParallelEnv(1, lambda: GymEnv("CartPole-v1"), serial_for_single=True)
    assert isinstance(single, SerialEnv) and single.batch_size == (1,)
    single.close()
    par = ParallelEnv(1, lambda: GymEnv("CartPole-v1"), serial_for_single=False)
    assert type(par) is ParallelEnv
    par.close()
    two = ParallelEnv(2, lambda: GymEnv("CartPole-v1"), serial_for_single=True)
    assert type(two) is ParallelEnv and two.serial_for_single
    two.close()
    with pytest.raises(ValueError, match="pin_memory"):
        ParallelEnv(2, lambda: GymEnv("CartPole-v1"), pin_memory=True)
    with pytest.raises(TypeError, match="serial_for_single"):
        ParallelEnv(1, lambda: GymEnv("CartPole-v1"), serial_for_single="yes")


@pytest.mark.parametrize("make", [
    lambda: GymEnv("CartPole-v1"),
    lambda: SerialEnv(2, lambda: GymEnv("CartPole-v1")),
    lambda: ParallelEnv(2, lambda: GymEnv("CartPole-v1")),
])
def test_set_seed_after_close_raises_a_clear_error(make):
    env = make()
    env.reset()
    env.close()
    with pytest.raises(EnvClosedError, match="closed"):
        env.set_seed(0)


# ---------------------------------------------------------------- EnvCreator
def _norm_env():
    return TransformedEnv(GymEnv("CartPole-v1"), ObservationNorm(loc=0.0, scale=1.0,
                                                                 in_keys=["observation"]))


def test_env_creator_state_dict_reaches_the_envs_it_builds():
    make = EnvCreator(_norm_env)
    sd = make.state_dict()
    assert set(sd) and all(isinstance(v, torch.Tensor) for v in sd.values())
    assert EnvCreator(lambda: GymEnv("CartPole-v1")).state_dict() == {}
    new = {k: torch.full_like(v, 3.0) for k, v in sd.items()}
    make.load_state_dict(new)
    for env in (make(), pickle.loads(pickle.dumps(make))()):
        assert all(torch.equal(env.state_dict()[k], new[k]) for k in new)
        env.close()
    with pytest.raises(KeyError, match="expected keys"):
        make.load_state_dict({"nope": torch.zeros(1)})
    key = next(iter(sd))
    with pytest.raises(ValueError, match="shape"):
        make.load_state_dict({**new, key: torch.zeros(7, 7)})
    with pytest.raises(TypeError):
        EnvCreator(_norm_env, create_env_kwargs=[1])


# ---------------------------------------------------------------- check_env_specs
def test_check_env_specs_takes_torchrl_arguments():
    with GymEnv("CartPole-v1") as env:
        check_env_specs(env, seed=0, break_when_any_done="both")
        check_env_specs(env, return_contiguous=True, check_dtype=False)
        env.set_seed(1)
        check_env_specs(env, tensordict=env.reset())
        with pytest.raises(ValueError, match="return_contiguous"):
            check_env_specs(env, return_contiguous=False)
        with pytest.raises(ValueError, match="break_when_any_done"):
            check_env_specs(env, break_when_any_done="sometimes")


def test_check_env_specs_check_dtype_false_tolerates_a_dtype_mismatch():
    class DoubleObs(DoneOnlyEnv):
        def _step(self, td):
            out = super()._step(td)
            out["observation"] = out["observation"].double()
            return out

    env = DoubleObs()
    with pytest.raises(TypeError, match="dtype"):
        check_env_specs(env)
    check_env_specs(env, check_dtype=False)


def test_batch_locked_declared_on_the_class_as_in_torchrl():
    class Unlocked(DoneOnlyEnv):
        batch_locked = False

        def _reset(self, td, **kwargs):
            batch = () if td is None else td.batch_size
            return TensorDict({"observation": torch.zeros(*batch, 2)}, batch_size=batch)

    env = Unlocked()
    assert env.batch_locked is False
    td = env.reset(TensorDict(batch_size=[3]))
    assert td["observation"].shape == (3, 2) and td["done"].shape == (3, 1)
    env.batch_locked = True
    with pytest.raises(ValueError, match="batch_size"):
        env.reset(TensorDict(batch_size=[3]))
