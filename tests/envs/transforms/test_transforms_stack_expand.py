"""ExpandAs, Stack and RemoveEmptySpecs."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from transform_contract import TransformContractTests

from streamrl.data.specs import Composite
from streamrl.envs.transforms import (
    Compose,
    ExpandAs,
    RemoveEmptySpecs,
    Stack,
    Transform,
    TransformedEnv,
    UnaryTransform,
)
from streamrl.envs.utils import check_env_specs


# ---------------------------------------------------------------------------- ExpandAs
def _first(value):
    return value[..., :1]


class TestExpandAsContract(TransformContractTests):
    # an observation entry: SerialEnv's step buffers hold rewards of shape (*batch, 1) only
    def make_transform(self):
        return Compose(
            UnaryTransform(["observation"], ["first"], fn=_first),
            ExpandAs("first", "observation", "first3"),
        )


def test_expand_as_values_and_spec(counting_env):
    env = TransformedEnv(counting_env(batch_size=(2,)), ExpandAs("reward", "observation"))
    assert env.full_reward_spec["reward"].shape == (2, 3)
    roll = env.rollout(2)
    assert roll["next", "reward"][0].tolist() == [[1.0] * 3, [2.0] * 3]


def test_expand_as_adds_trailing_dims_and_out_key():
    td = TensorDict({"d": torch.tensor([True, False]), "r": torch.zeros(2, 2, 3)}, [2])
    out = ExpandAs("d", "r", out_key="dd")(td)
    assert out["dd"].shape == (2, 2, 3) and out["d"].shape == (2,)
    assert out["dd"][0].all() and not out["dd"][1].any()


def test_expand_as_missing_entries_pass_through_and_bad_shapes():
    td = TensorDict({"d": torch.ones(2)}, [])
    assert ExpandAs("d", "r")(td)["d"].shape == (2,)
    with pytest.raises(ValueError, match="cannot be expanded"):
        ExpandAs("d", "r")(TensorDict({"d": torch.ones(2), "r": torch.ones(3, 4)}))
    with pytest.raises(TypeError, match="ref_key must be one key"):
        ExpandAs("d", ["r", "s"])


# ---------------------------------------------------------------------------- Stack
class TestStackContract(TransformContractTests):
    def make_transform(self):
        # the stacked action keeps the name "action" (ParallelEnv steps one "action" key)
        return Stack(["observation"], "obs", in_key_inv="action", out_keys_inv=["action"], dim=-2)


def test_stack_two_entries_in_env_and_inverse(counting_env):
    base = counting_env(max_count=3)
    env = TransformedEnv(
        base,
        Compose(
            UnaryTransform(["observation"], ["neg"], fn=torch.neg),
            Stack(["observation", "neg"], "both", dim=-2),
        ),
    )
    assert "observation" not in env.observation_spec.keys() and "neg" not in env.observation_spec
    assert env.observation_spec["both"].shape == (2, 3)
    check_env_specs(env)
    td = env.rollout(2)
    assert td["next", "both"][1].tolist() == [[2.0] * 3, [-2.0] * 3]


def test_stack_keeps_inputs_without_del_keys_and_positive_dim():
    td = TensorDict({"a": torch.zeros(2, 3), "b": torch.ones(2, 3)}, [2])
    out = Stack(["a", "b"], "s", dim=0, allow_positive_dim=True, del_keys=False)(td)
    # dim 0 is the first non-batch dim
    assert out["s"].shape == (2, 2, 3) and out["s"][:, 1].eq(1).all() and "a" in out.keys()


def test_stack_tensordicts_and_unstack():
    td = TensorDict({"p": {"o": torch.zeros(3)}, "q": {"o": torch.ones(3)}})
    out = Stack(["p", "q"], "agents")(td)
    assert out["agents"].batch_size == (2,) and out["agents", "o"][:, 0].tolist() == [0.0, 1.0]
    t = Stack(["x"], "y", in_key_inv="act", out_keys_inv=["a0", "a1"], dim=-1)
    inv = t.inv(TensorDict({"act": torch.tensor([[1.0, 2.0]])}, [1]))
    assert inv["a0"].tolist() == [1.0] and inv["a1"].tolist() == [2.0]


def test_stack_bad_input():
    with pytest.raises(ValueError, match="negative"):
        Stack(["a", "b"], "s", dim=0)
    with pytest.raises(ValueError, match="both or neither"):
        Stack(["a"], "s", in_key_inv="x")
    with pytest.raises(ValueError, match="at least one"):
        Stack([], "s")
    with pytest.raises(ValueError, match="share one shape"):
        Stack(["a", "b"], "s")(TensorDict({"a": torch.zeros(2), "b": torch.zeros(3)}))
    t = Stack(["x"], "y", in_key_inv="act", out_keys_inv=["a0", "a1"])
    with pytest.raises(ValueError, match="expected 2"):
        t.inv(TensorDict({"act": torch.zeros(3)}))


# ---------------------------------------------------------------------------- RemoveEmptySpecs
class _AddEmpty(Transform):
    """Adds an empty ``info`` Composite (with an empty ``nested`` one) to the observations."""

    def _call(self, td):
        td.set("info", TensorDict({"nested": TensorDict({}, td.batch_size)}, td.batch_size))
        return td

    def _reset(self, td, td_reset):
        return self._call(td_reset)

    def transform_observation_spec(self, spec):
        spec["info"] = Composite(nested=Composite(shape=spec.shape), shape=spec.shape)
        return spec

    def __repr__(self):
        return "_AddEmpty()"


class TestRemoveEmptySpecsContract(TransformContractTests):
    def make_transform(self):
        return Compose(_AddEmpty(), RemoveEmptySpecs())

    def test_copy_pickle_repr(self):
        super().test_copy_pickle_repr()
        assert repr(RemoveEmptySpecs()) == "RemoveEmptySpecs()"


def test_remove_empty_specs_drops_empty_entries(counting_env):
    with_empty = TransformedEnv(counting_env(), _AddEmpty())
    assert "info" in with_empty.observation_spec.keys()
    env = TransformedEnv(counting_env(), Compose(_AddEmpty(), RemoveEmptySpecs()))
    assert env.observation_spec.keys() == ["observation"]
    td = env.rollout(2)
    assert "info" not in td.keys() and "info" not in td["next"].keys()


def test_remove_empty_specs_keeps_non_empty_subtrees():
    td = TensorDict({"a": {"b": {}, "c": torch.ones(1)}, "e": {}})
    out = RemoveEmptySpecs()(td)
    assert set(out.keys(True, True)) == {("a", "c")}
