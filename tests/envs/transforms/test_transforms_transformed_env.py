"""Transform base, Compose and TransformedEnv: ordering, parent, append/insert, specs, reprs."""

from __future__ import annotations

import copy

import pytest
import torch
from tensordict import TensorDict

from streamrl.envs.transforms import (
    Compose,
    DoubleToFloat,
    NoopResetEnv,
    ObservationNorm,
    RewardScaling,
    StepCounter,
    ToTensorImage,
    Transform,
    TransformedEnv,
)
from streamrl.envs.utils import check_env_specs


class AddOne(Transform):
    """Test transform: observation + 1, action - 1 on the way in."""

    def _apply_transform(self, value):
        return value + 1

    def _inv_apply_transform(self, value):
        return value - 1


class Times(Transform):
    def __init__(self, k, **kw):
        super().__init__(**kw)
        self.k = k

    def _apply_transform(self, value):
        return value * self.k

    def _inv_apply_transform(self, value):
        return value / self.k


# ---------------------------------------------------------------------------- base
def test_keys_are_normalized():
    t = AddOne(in_keys="a", out_keys=("x", ("y",)))
    assert t.in_keys == ["a"]
    assert t.out_keys == [("x", "y")]
    t = AddOne(in_keys=["a", ("b", "c")])
    assert t.out_keys == ["a", ("b", "c")]


def test_bad_keys():
    with pytest.raises(TypeError, match="in_keys"):
        AddOne(in_keys=[1])
    with pytest.raises(ValueError, match="same length"):
        AddOne(in_keys=["a", "b"], out_keys=["c"])


def test_plain_tensordict_forward_and_inv():
    t = AddOne(in_keys=["obs"], out_keys=["obs2"], in_keys_inv=["act"], out_keys_inv=["act_user"])
    td = TensorDict({"obs": torch.zeros(2), "act_user": torch.ones(2)})
    out = t(td)
    assert out is td
    torch.testing.assert_close(td["obs2"], torch.ones(2))
    torch.testing.assert_close(td["obs"], torch.zeros(2))
    inv = t.inv(td)
    assert inv is not td and "act" not in td.keys()
    torch.testing.assert_close(inv["act"], torch.zeros(2))


def test_missing_key_is_named():
    t = AddOne(in_keys=["pixels"])
    with pytest.raises(KeyError, match="pixels"):
        t(TensorDict({"observation": torch.zeros(3)}))


def test_forward_rejects_non_tensordict():
    with pytest.raises(TypeError, match="TensorDict"):
        AddOne(in_keys=["a"])({"a": torch.zeros(1)})


def test_compose_order_forward_and_inverse():
    c = Compose(
        AddOne(in_keys=["x"], in_keys_inv=["a"]), Times(10, in_keys=["x"], in_keys_inv=["a"])
    )
    td = TensorDict({"x": torch.tensor([1.0]), "a": torch.tensor([30.0])})
    c(td)
    torch.testing.assert_close(td["x"], torch.tensor([20.0]))  # (1 + 1) * 10
    inv = c.inv(td)
    torch.testing.assert_close(inv["a"], torch.tensor([2.0]))  # 30 / 10 - 1


def test_compose_list_interface_and_repr():
    a, b, c = AddOne(in_keys=["a"]), AddOne(in_keys=["b"]), AddOne(in_keys=["c"])
    comp = Compose(a, c)
    comp.insert(1, b)
    assert list(comp) == [a, b, c] and len(comp) == 3 and comp[-1] is c
    assert list(comp[1:]) == [b, c]
    d = AddOne(in_keys=["d"])
    comp.insert(-1, d)  # before the last one, like list.insert
    assert list(comp) == [a, b, d, c]
    with pytest.raises(IndexError):
        comp.insert(10, AddOne(in_keys=["e"]))
    with pytest.raises(TypeError, match="Transform"):
        Compose(a, "nope")
    assert repr(Compose(AddOne(in_keys=["a"]), AddOne(in_keys=["b"]))) == (
        "Compose(\n        AddOne(keys=['a']),\n        AddOne(keys=['b']))"
    )


def test_compose_takes_a_list_positionally_or_as_transforms():
    a, b = AddOne(in_keys=["a"]), AddOne(in_keys=["b"])
    assert list(Compose([a, b])) == [a, b]
    c, d = AddOne(in_keys=["c"]), AddOne(in_keys=["d"])
    comp = Compose(transforms=(c, d))
    assert list(comp) == [c, d] and c.container is comp
    with pytest.raises(TypeError, match="not both"):
        Compose(AddOne(in_keys=["e"]), transforms=[AddOne(in_keys=["f"])])
    with pytest.raises(TypeError, match="must be a list"):
        Compose(transforms=AddOne(in_keys=["g"]))


def test_transform_belongs_to_one_container():
    t = AddOne(in_keys=["a"])
    Compose(t)
    with pytest.raises(ValueError, match="already belongs"):
        Compose(t)
    # a deep copy is free to go elsewhere
    Compose(copy.deepcopy(t))


# ---------------------------------------------------------------------------- env
def test_transformed_env_step_and_inverse(counting_env):
    base = counting_env(double=True)
    env = TransformedEnv(base, DoubleToFloat(in_keys_inv=["action"]))
    assert env.action_spec.dtype == torch.float32
    td = env.reset()
    td["action"] = torch.tensor([0.5])
    env.step(td)
    assert base.last_action.dtype == torch.float64
    torch.testing.assert_close(base.last_action, torch.tensor([0.5], dtype=torch.float64))
    assert td["action"].dtype == torch.float32  # the caller's data is not rewritten


def test_wrong_action_is_rejected_against_transformed_spec(counting_env):
    env = TransformedEnv(counting_env(double=True), DoubleToFloat(in_keys_inv=["action"]))
    td = env.reset()
    td["action"] = torch.tensor([0.5], dtype=torch.float64)
    with pytest.raises(TypeError, match="float32"):
        env.step(td)
    td["action"] = torch.tensor([0.5, 0.5])
    with pytest.raises(ValueError, match="shape"):
        env.step(td)


def test_single_transform_is_wrapped_in_compose(counting_env):
    t = RewardScaling(0.0, 2.0)
    env = TransformedEnv(counting_env(), t)
    assert isinstance(env.transform, Compose) and env.transform[0] is t
    td = env.rand_step(env.reset())
    torch.testing.assert_close(td["next", "reward"], torch.tensor([2.0]))


def test_parent_is_env_up_to_the_transform(counting_env):
    base = counting_env(pixels=True)
    env = TransformedEnv(base, Compose(NoopResetEnv(3), ToTensorImage()))
    env.append_transform(ObservationNorm(in_keys=["pixels"], loc=2, scale=1))
    parent = env.transform[2].parent
    assert isinstance(parent, TransformedEnv) and parent.base_env is base
    assert [type(t) for t in parent.transform] == [NoopResetEnv, ToTensorImage]
    # the parent sees pixels as floats in [0, 1], not normalized yet
    assert parent.observation_spec["pixels"].dtype == torch.float32
    assert parent.observation_spec["pixels"].shape == (3, 8, 6)
    assert env.transform[0].parent.transform.transforms.__len__() == 0
    # the transforms in the parent still belong to the real env
    assert env.transform[1].container is env.transform
    assert AddOne(in_keys=["a"]).parent is None
    # closing the parent view does not close the real env
    parent.close()
    assert not base.is_closed
    env.reset()


def test_parent_of_nested_transformed_env(counting_env):
    base = counting_env()
    inner = TransformedEnv(base, StepCounter())
    outer = TransformedEnv(inner, Compose(RewardScaling(0.0, 2.0), RewardScaling(1.0, 1.0)))
    parent = outer.transform[1].parent
    assert parent.base_env is inner
    assert [type(t) for t in parent.transform] == [RewardScaling]


def test_parent_of_transform_in_nested_compose(counting_env):
    base = counting_env()
    s1, s2 = RewardScaling(0.0, 2.0), RewardScaling(1.0, 1.0)
    env = TransformedEnv(base, Compose(StepCounter(), Compose(s1, s2)))
    parent = s2.parent
    assert parent.base_env is base
    assert [type(t) for t in parent.transform] == [StepCounter, RewardScaling]
    assert parent.transform[1] is s1
    env.close()


def test_append_and_insert_refresh_specs(counting_env):
    env = TransformedEnv(counting_env(pixels=True))
    assert env.observation_spec["pixels"].dtype == torch.uint8
    env.append_transform(ToTensorImage())
    assert env.observation_spec["pixels"].shape == (3, 8, 6)
    env.insert_transform(0, StepCounter())
    assert "step_count" in env.observation_spec.keys()
    assert [type(t) for t in env.transform] == [StepCounter, ToTensorImage]
    with pytest.raises(TypeError, match="Transform"):
        env.append_transform(lambda td: td)
    check_env_specs(env)


@pytest.mark.parametrize("batch", [(), (3,)])
def test_transformed_env_passes_spec_check(counting_env, batch):
    env = TransformedEnv(
        counting_env(batch_size=batch, pixels=True),
        Compose(StepCounter(max_steps=4), ToTensorImage(), RewardScaling(1.0, 0.5)),
    )
    check_env_specs(env, steps=6)
    td = env.rollout(6, break_when_any_done=False)
    assert td.batch_size == (*batch, 6)
    spec = env.full_observation_spec
    for key in spec.keys(True, True):
        sample = spec[key].rand()
        assert sample.shape == spec[key].shape and sample.dtype == spec[key].dtype


def test_repr_matches_seed_layout(counting_env):
    env = TransformedEnv(counting_env(pixels=True), Compose(NoopResetEnv(3), ToTensorImage()))
    env.append_transform(ObservationNorm(in_keys=["pixels"], loc=2, scale=1))
    assert repr(env) == (
        "TransformedEnv(\n"
        "    env=CountingEnv(batch_size=torch.Size([])),\n"
        "    transform=Compose(\n"
        "            NoopResetEnv(noops=3, random=True),\n"
        "            ToTensorImage(keys=['pixels']),\n"
        "            ObservationNorm(loc=2.0000, scale=1.0000, keys=['pixels'])))"
    )


def test_close_closes_base_and_is_idempotent(counting_env):
    base = counting_env()
    with TransformedEnv(base, StepCounter()) as env:
        env.reset()
    assert base.is_closed and env.is_closed
    env.close()
    with pytest.raises(RuntimeError, match="closed"):
        env.reset()


def test_step_after_base_closed_raises(counting_env):
    base = counting_env()
    env = TransformedEnv(base, StepCounter())
    td = env.reset()
    base.close()
    with pytest.raises(RuntimeError, match="closed"):
        env.rand_step(td)


def test_seed_and_attribute_forwarding(counting_env):
    base = counting_env()
    env = TransformedEnv(base, StepCounter())
    assert env.set_seed(7) == 8
    assert base.seed == 7
    assert env.max_count == 5  # looked up on the base env
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = env.no_such_thing


def test_rejects_non_env_and_non_transform(counting_env):
    with pytest.raises(TypeError, match="EnvBase"):
        TransformedEnv(object())
    with pytest.raises(TypeError, match="Transform"):
        TransformedEnv(counting_env(), transform=lambda td: td)


def test_env_state_dict_round_trip(counting_env):
    env = TransformedEnv(counting_env(), ObservationNorm(loc=[1.0, 2.0, 3.0], scale=2.0))
    sd = env.state_dict()
    assert set(sd) == {"transforms.0.loc", "transforms.0.scale"}
    env2 = TransformedEnv(counting_env(), ObservationNorm(loc=0.0, scale=1.0))
    env2.load_state_dict(sd)
    td = env2.reset()
    torch.testing.assert_close(td["observation"], torch.tensor([1.0, 2.0, 3.0]))


def test_misconfigured_action_path_fails_at_the_base_env(counting_env):
    # the base env takes float32; casting actions to float64 for it is a configuration error
    env = TransformedEnv(counting_env(), DoubleToFloat(in_keys=[], in_keys_inv=["action"]))
    td = env.reset()
    td["action"] = torch.tensor([0.5])
    with pytest.raises(TypeError, match="float32"):
        env.step(td)


def test_transform_can_be_replaced(counting_env):
    env = TransformedEnv(counting_env(), StepCounter())
    old = env.transform
    assert "step_count" in env.observation_spec.keys()
    new = RewardScaling(0.0, 3.0)
    env.transform = new
    assert isinstance(env.transform, Compose) and env.transform[0] is new
    assert "step_count" not in env.observation_spec.keys()
    assert old.container is None
    td = env.rand_step(env.reset())
    torch.testing.assert_close(td["next", "reward"], torch.tensor([3.0]))
    # the old Compose is free to go to another env
    TransformedEnv(counting_env(), old)


def test_pickle_round_trip_keeps_parent_links(counting_env):
    import pickle

    env = TransformedEnv(counting_env(), Compose(StepCounter(), RewardScaling(0.0, 2.0)))
    clone = pickle.loads(pickle.dumps(env))
    assert clone.transform.container is clone
    assert clone.transform[1].parent.base_env is clone.base_env
    td = clone.rand_step(clone.reset())
    assert td["next", "step_count"].item() == 1


def _per_step_stack():
    from streamrl.envs.transforms import (
        CenterCrop,
        ExcludeTransform,
        FlattenObservation,
        GrayScale,
        RenameTransform,
        Resize,
        RewardClipping,
    )

    return Compose(
        ToTensorImage(),
        GrayScale(),
        Resize(6, 6),
        CenterCrop(4),
        FlattenObservation(0, -1, in_keys=["pixels"]),
        ObservationNorm(loc=1.0, scale=3.0, in_keys=["observation"]),
        RewardScaling(0.5, 2.0),
        RewardClipping(0.0, 7.0),
        RenameTransform(["observation"], ["obs"], create_copy=True),
        ExcludeTransform("observation"),
    )


@pytest.mark.parametrize("batch", [(), (2,)])
@pytest.mark.parametrize("break_when_any_done", [True, False])
def test_trajectory_rollout_matches_step_by_step(counting_env, batch, break_when_any_done):
    env = TransformedEnv(
        counting_env(batch_size=batch, max_count=3, pixels=True), _per_step_stack()
    )
    assert env._trajectory_ok()
    fast = env.rollout(7, break_when_any_done=break_when_any_done)
    slow = env.rollout(7, policy=env.rand_action, break_when_any_done=break_when_any_done)
    assert fast.batch_size == slow.batch_size
    assert set(fast.keys(True, True)) == set(slow.keys(True, True))
    for key in fast.keys(True, True):
        if key != "action":
            torch.testing.assert_close(fast[key], slow[key], msg=lambda m, k=key: f"{k}: {m}")
    assert env.action_spec.is_in(fast["action"].movedim(len(batch), 0))
    check_env_specs(env)


def test_stateful_or_inverse_transforms_use_the_step_loop(counting_env):
    assert not TransformedEnv(counting_env(), StepCounter())._trajectory_ok()
    inv = TransformedEnv(counting_env(double=True), DoubleToFloat())
    assert not inv._trajectory_ok()  # float64 actions are cast back: there is an action path
    assert TransformedEnv(counting_env(), RewardScaling(0.0, 1.0))._trajectory_ok()


def test_transformed_specs_sample_valid_data(counting_env):
    from streamrl.envs.transforms import CatFrames, InitTracker, RewardSum, VecNorm

    env = TransformedEnv(
        counting_env(batch_size=(2,), pixels=True),
        Compose(
            InitTracker(),
            StepCounter(5),
            RewardSum(),
            ToTensorImage(),
            CatFrames(2, -3),
            VecNorm(in_keys=["observation"]),
        ),
    )
    expected = {
        "observation": ((2, 3), torch.float32),
        "pixels": ((2, 6, 8, 6), torch.float32),
        "is_init": ((2, 1), torch.bool),
        "step_count": ((2, 1), torch.int64),
        "episode_reward": ((2, 1), torch.float32),
    }
    sample = env.full_observation_spec.rand()
    assert {k: (tuple(v.shape), v.dtype) for k, v in sample.items()} == expected
    for part in (env.full_observation_spec, env.full_done_spec, env.full_reward_spec):
        assert part.is_in(part.rand())
    # the outputs have exactly the layout the specs promise
    td = env.reset()
    assert {k: (tuple(td[k].shape), td[k].dtype) for k in expected} == expected
    fake = env.fake_tensordict()
    roll = env.rollout(3)
    assert set(fake.keys(True, True)) == set(roll.keys(True, True))


def test_rollout_after_close_raises(counting_env):
    env = TransformedEnv(counting_env(), RewardScaling(0.0, 1.0))
    env.close()
    with pytest.raises(RuntimeError, match="closed"):
        env.rollout(3)
