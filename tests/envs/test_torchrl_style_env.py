"""Custom envs written the TorchRL way: a ``__new__`` that passes its arguments on and may
leave specs on the class, specs assigned before or after ``super().__init__()`` as leaves
or Composites, ``allow_done_after_reset``, ``is_closed`` set by the env."""

import pytest
import torch
from tensordict import TensorDict

from streamrl.data.specs import Bounded, Categorical, Composite, Unbounded
from streamrl.envs import EnvBase, RewardScaling, TransformedEnv, check_env_specs


class ClassSpecEnv(EnvBase):
    """Specs built in ``__new__`` and left on the class, as TorchRL's mock envs do."""

    def __new__(cls, *args, obs_size=3, **kwargs):
        batch_size = kwargs.setdefault("batch_size", torch.Size([]))
        cls._output_spec = Composite(shape=batch_size)
        cls._output_spec["full_observation_spec"] = Composite(
            observation=Unbounded((*batch_size, obs_size)), shape=batch_size
        )
        cls._output_spec["full_reward_spec"] = Unbounded((*batch_size, 1))  # a leaf
        cls._output_spec["full_done_spec"] = Categorical(2, (*batch_size, 1), dtype=torch.bool)
        cls._input_spec = Composite(
            full_action_spec=Bounded(-1.0, 1.0, (*batch_size, obs_size)),
            full_state_spec=Composite(shape=batch_size),
            shape=batch_size,
        )
        return super().__new__(cls, *args, **kwargs)

    def __init__(self, *args, obs_size=3, device="cpu", **kwargs):
        super().__init__(device=device)  # no batch_size: it comes from the class's specs
        self.register_buffer("state", torch.zeros(*self.batch_size, obs_size))
        self.is_closed = False

    def _set_seed(self, seed):
        self.seed = seed

    def _reset(self, tensordict):
        self.state.zero_()
        shape = self.batch_size if tensordict is None else tensordict.batch_size
        return TensorDict({"observation": self.state.expand(*shape, -1).clone()}, shape)

    def _step(self, tensordict):
        self.state += tensordict["action"]
        reward = self.state.sum(-1, keepdim=True)
        done = torch.zeros(*self.batch_size, 1, dtype=torch.bool)
        return TensorDict(
            {"observation": self.state.clone(), "reward": reward, "done": done},
            self.batch_size,
        )


class SpecsFirstEnv(EnvBase):
    """Specs assigned before ``super().__init__()`` (TorchRL's StateLessCountingEnv)."""

    def __init__(self):
        self.observation_spec = Composite(observation=Unbounded((1,)))
        self.action_spec = Composite(action=Unbounded((1,)))  # a Composite: the full spec
        self.done_spec = Composite(terminated=Categorical(2, (1,), dtype=torch.bool))
        self.reward_spec = Composite(reward=Unbounded((1,)))
        super().__init__()

    def _set_seed(self, seed):
        pass

    def _reset(self, tensordict):
        return TensorDict({"observation": torch.zeros(1)})

    def _step(self, tensordict):
        return TensorDict(
            {"observation": tensordict["action"].clone(), "reward": torch.ones(1),
             "terminated": torch.zeros(1, dtype=torch.bool)}
        )


class UnlockedEnv(ClassSpecEnv):
    def __new__(cls, *args, **kwargs):
        return super().__new__(cls, *args, _batch_locked=False, **kwargs)


def test_specs_left_on_the_class_are_moved_to_the_env():
    env = ClassSpecEnv(batch_size=[2], obs_size=4)
    assert env.batch_size == (2,) and env.device == torch.device("cpu")
    assert "_output_spec" not in vars(ClassSpecEnv) and "_input_spec" not in vars(ClassSpecEnv)
    assert env.observation_spec["observation"].shape == (2, 4)
    assert env.reward_keys == ["reward"] and env.reward_spec.shape == (2, 1)
    assert sorted(env.done_keys) == ["done", "terminated", "truncated"]
    assert isinstance(env.action_spec, Bounded) and env.action_spec.shape == (2, 4)
    assert dict(env.named_buffers())["state"].shape == (2, 4)
    assert not env.is_closed
    check_env_specs(env)
    td = env.rollout(3)
    assert td.batch_size == (2, 3)
    assert torch.equal(td["next", "done"], td["next", "truncated"])  # flags completed


def test_each_instance_gets_its_own_class_specs():
    small, big = ClassSpecEnv(obs_size=2), ClassSpecEnv(obs_size=5)
    assert small.observation_spec["observation"].shape == (2,)
    assert big.observation_spec["observation"].shape == (5,)
    assert ClassSpecEnv().batch_size == ()


def test_batch_locked_from_new_and_from_init():
    env = UnlockedEnv(batch_size=[2])
    assert not env.batch_locked
    td = env.reset(TensorDict(batch_size=[5, 2]))
    assert td["observation"].shape == (5, 2, 3)
    assert ClassSpecEnv().batch_locked
    with pytest.raises(TypeError, match="_batch_locked must be a bool"):
        EnvBase.__new__(ClassSpecEnv, _batch_locked=1)


def test_specs_assigned_before_init():
    env = SpecsFirstEnv()
    assert env.full_action_spec.keys() == ["action"]
    assert sorted(env.done_keys) == ["done", "terminated", "truncated"]
    check_env_specs(env)
    assert env.rollout(2)["next", "reward"].tolist() == [[1.0], [1.0]]


def test_specs_set_before_init_must_fit_the_batch_size():
    class Mismatch(SpecsFirstEnv):
        def __init__(self):
            self.observation_spec = Composite(observation=Unbounded((1,)))
            EnvBase.__init__(self, batch_size=[3])

    with pytest.raises(ValueError, match="set before __init__ with shape"):
        Mismatch()


def test_leaf_and_composite_spec_assignments():
    env = SpecsFirstEnv()
    env.observation_spec = Unbounded((2,))  # a leaf goes under "observation"
    assert env.full_observation_spec.keys() == ["observation"]
    env.reward_spec = Composite(r1=Unbounded((1,)), r2=Unbounded((1,)))
    assert env.reward_keys == ["r1", "r2"]
    env.action_spec = Bounded(-1.0, 1.0, (1,))
    assert env.action_keys == ["action"]
    env.done_spec = Composite(done=Categorical(2, (1,), dtype=torch.bool))
    assert sorted(env.done_keys) == ["done", "terminated", "truncated"]
    env.state_spec = None
    assert env.full_state_spec.is_empty()
    with pytest.raises(ValueError, match=r"starts with the env's batch_size \(2,\), found"):
        HalfDoneEnv().observation_spec = Unbounded((1,))
    with pytest.raises(TypeError, match="must be a Composite"):
        env.full_reward_spec = Unbounded((1,))


def test_done_spec_completion_copies_the_given_spec():
    flag = Categorical(2, (1,), dtype=torch.bool)
    spec = Composite(terminated=flag)
    env = SpecsFirstEnv()
    env.full_done_spec = spec
    assert spec.keys() == ["terminated"]  # the caller's spec is left as it is
    assert env.full_done_spec["done"] == flag


class DoneAtResetEnv(SpecsFirstEnv):
    def __init__(self, allow=False):
        self.observation_spec = Composite(observation=Unbounded((1,)))
        self.action_spec = Unbounded((1,))
        EnvBase.__init__(self, batch_size=[], allow_done_after_reset=allow)

    def _reset(self, tensordict):
        return TensorDict({"observation": torch.zeros(1), "done": torch.ones(1, dtype=torch.bool)})


def test_done_after_reset_raises_unless_allowed():
    with pytest.raises(RuntimeError, match="expected done=False in every reset sub-env"):
        DoneAtResetEnv().reset()
    assert DoneAtResetEnv(allow=True).reset()["done"].all()
    # a TransformedEnv checks its own output, with its base env's setting
    with pytest.raises(RuntimeError, match=r"TransformedEnv\.reset"):
        TransformedEnv(DoneAtResetEnv(), RewardScaling(0.0, 1.0)).reset()
    assert TransformedEnv(DoneAtResetEnv(allow=True), RewardScaling(0.0, 1.0)).reset()["done"]
    with pytest.raises(TypeError, match="allow_done_after_reset must be a bool"):
        EnvBase(allow_done_after_reset="yes")


class HalfDoneEnv(EnvBase):
    """Two sub-envs; sub-env 1 is done after any reset."""

    def __init__(self):
        super().__init__(batch_size=[2])
        self.observation_spec = Composite(observation=Unbounded((2, 1)), shape=(2,))
        self.action_spec = Unbounded((2, 1))

    def _set_seed(self, seed):
        pass

    def _reset(self, tensordict):
        done = torch.tensor([[False], [True]])
        return TensorDict({"observation": torch.zeros(2, 1), "done": done}, [2])


def test_only_the_reset_rows_are_checked():
    env = HalfDoneEnv()
    td = env.reset(TensorDict({"_reset": torch.tensor([[True], [False]])}, [2]))
    assert td["done"].tolist() == [[False], [True]]
    with pytest.raises(RuntimeError, match=r"found done=\[False, True\]"):
        env.reset()


def test_is_closed_can_be_set():
    env = SpecsFirstEnv()
    env.is_closed = True
    with pytest.raises(RuntimeError, match="closed"):
        env.reset()
    with pytest.raises(TypeError, match="is_closed must be a bool"):
        env.is_closed = 0


def test_unbatched_spec_views():
    env = HalfDoneEnv()  # batch_size (2,)
    assert env.observation_spec_unbatched["observation"].shape == (1,)
    assert env.action_spec_unbatched.shape == (1,)
    assert env.full_done_spec_unbatched["done"].shape == (1,)
    assert env.output_spec_unbatched["full_reward_spec", "reward"].shape == (1,)
    env.observation_spec_unbatched = Composite(observation=Unbounded((4,)))
    assert env.observation_spec["observation"].shape == (2, 4)  # expanded to the batch
    env.reward_spec_unbatched = Composite(a=Unbounded((1,)), b=Unbounded((1,)))
    assert env.reward_keys == ["a", "b"] and env.full_reward_spec["b"].shape == (2, 1)
    with pytest.raises(TypeError, match="must be a spec"):
        env.action_spec_unbatched = 3
    with pytest.raises(AttributeError):
        env.input_spec_unbatched = Composite()
    plain = SpecsFirstEnv()  # no batch dims: the specs themselves
    assert plain.full_action_spec_unbatched is plain.full_action_spec


def test_several_actions_or_rewards_make_the_spec_a_composite():
    env = SpecsFirstEnv()
    assert isinstance(env.action_spec, Unbounded) and isinstance(env.reward_spec, Unbounded)
    env.full_action_spec = Composite(a=Unbounded((1,)), b=Unbounded((2,)))
    assert env.action_spec is env.full_action_spec
    env.reward_spec = Composite(r1=Unbounded((1,)), r2=Unbounded((1,)))
    assert env.reward_spec is env.full_reward_spec


def test_rollout_names_its_time_dim():
    roll = ClassSpecEnv(batch_size=[2]).rollout(2)
    assert roll.names == [None, "time"] and roll["next"].names == [None, "time"]
    assert SpecsFirstEnv().rollout(2).names == ["time"]
