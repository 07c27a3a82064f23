"""TensorDictPrimer: values at reset (fixed, random, callables), carrying over steps, partial
resets, specs, plain data, bad input and the transform contract."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from transform_contract import TransformContractTests

from streamrl.data.specs import Bounded, Categorical, Composite, Unbounded
from streamrl.envs.transforms import Compose, StepCounter, TensorDictPrimer, TransformedEnv
from streamrl.envs.utils import check_env_specs


def test_primer_reset_step_and_specs(counting_env):
    env = TransformedEnv(counting_env(batch_size=(2,)), TensorDictPrimer(mykey=Unbounded([3])))
    assert env.observation_spec["mykey"].shape == (2, 3)
    assert env.state_spec["mykey"].shape == (2, 3)
    td = env.reset()
    assert td["mykey"].tolist() == [[0.0] * 3] * 2
    td["mykey"] = torch.ones(2, 3)
    out = env.step(env.rand_action(td))
    assert out["next", "mykey"].tolist() == [[1.0] * 3] * 2  # carried over


def test_primer_value_set_by_the_user_is_carried(counting_env):
    env = TransformedEnv(counting_env(), Compose(TensorDictPrimer(h=Unbounded([1])), StepCounter()))
    td = env.reset()
    td["h"] = torch.tensor([3.0])
    td = env.rand_step(td)
    assert td["next", "h"].item() == 3.0


def test_primer_partial_reset_keeps_other_rows(counting_env):
    env = TransformedEnv(
        counting_env(batch_size=(3,), max_count=2), TensorDictPrimer({"h": Unbounded([2])})
    )
    roll = env.rollout(3, break_when_any_done=False, auto_reset=True)
    assert roll["h"].shape == (3, 3, 2)
    td = env.reset()
    td["h"] = torch.full((3, 2), 5.0)
    td["_reset"] = torch.tensor([[True], [False], [False]])
    out = env.reset(td)
    assert out["h"][:, 0].tolist() == [0.0, 5.0, 5.0]


def test_primer_keep_at_reset_keeps_the_carried_values(counting_env):
    env = TransformedEnv(counting_env(batch_size=(3,), max_count=2),
                         TensorDictPrimer({"h": Unbounded([2])}, keep_at_reset=True))
    td = env.reset()
    assert td["h"].tolist() == [[0.0, 0.0]] * 3  # the first reset: nothing carried
    td["h"] = torch.full((3, 2), 5.0)
    td["_reset"] = torch.tensor([[True], [False], [False]])
    assert env.reset(td)["h"][:, 0].tolist() == [5.0, 5.0, 5.0]  # the reset row too
    with pytest.raises(ValueError, match="keep_at_reset keeps the carried values"):
        TensorDictPrimer({"h": Unbounded([2])}, keep_at_reset=True, random=True)
    with pytest.raises(TypeError, match="keep_at_reset must be a bool, found int"):
        TensorDictPrimer({"h": Unbounded([2])}, keep_at_reset=1)


def test_primer_random_callables_and_dicts():
    spec = Bounded(-1.0, 1.0, shape=(4,))
    torch.manual_seed(0)
    td = TensorDictPrimer(x=spec, random=True)(TensorDict({}, [5]))
    assert td["x"].shape == (5, 4) and spec.is_in(td["x"]) and td["x"].std() > 0
    calls = []

    def make():
        calls.append(1)
        return torch.arange(4.0)

    td = TensorDictPrimer(x=spec, default_value=make)(TensorDict({}, [2]))
    assert td["x"].tolist() == [[0.0, 1.0, 2.0, 3.0]] * 2 and calls
    td = TensorDictPrimer(
        Composite({"a": Unbounded([1]), "n": Composite({"b": Categorical(3, shape=(1,))})}),
        default_value={"a": 2.0, ("n", "b"): lambda: torch.tensor([1])},
    )(TensorDict({}, []))
    assert td["a"].tolist() == [2.0] and td["n", "b"].tolist() == [1]
    assert td["n", "b"].dtype == torch.int64
    present = TensorDict({"x": torch.ones(4)})
    assert TensorDictPrimer(x=spec)(present)["x"].tolist() == [1.0] * 4  # not overwritten


def test_primer_single_default_value(counting_env):
    seen = []

    def make(reset=None):
        seen.append(reset)
        return TensorDict({"h": torch.full((2, 1), 9.0)}, [2])

    env = TransformedEnv(
        counting_env(batch_size=(2,)),
        TensorDictPrimer(h=Unbounded([1]), default_value=make, single_default_value=True),
    )
    assert env.reset()["h"].tolist() == [[9.0], [9.0]]
    assert seen == [None]


def test_primer_expand_specs_false_and_bad_input(counting_env):
    env = TransformedEnv(
        counting_env(batch_size=(2,)), TensorDictPrimer(h=Unbounded([3]), expand_specs=False)
    )
    with pytest.raises(ValueError, match="expand_specs=False"):
        _ = env.observation_spec
    with pytest.raises(ValueError, match="not both"):
        TensorDictPrimer({"a": Unbounded([1])}, b=Unbounded([1]))
    with pytest.raises(ValueError, match="at least one"):
        TensorDictPrimer()
    with pytest.raises(TypeError, match="TensorSpec"):
        TensorDictPrimer(a=3)
    with pytest.raises(ValueError, match="default_value must be None"):
        TensorDictPrimer(a=Unbounded([1]), random=True, default_value=1.0)
    with pytest.raises(ValueError, match="primer keys"):
        TensorDictPrimer(a=Unbounded([1]), default_value={"b": 1.0})
    with pytest.raises(ValueError, match="callable default_value"):
        TensorDictPrimer(a=Unbounded([1]), default_value=1.0, single_default_value=True)
    with pytest.raises(TypeError, match="number or a callable"):
        TensorDictPrimer(a=Unbounded([1]), default_value="x")
    env = TransformedEnv(counting_env(), TensorDictPrimer(h=Unbounded([1])))
    td = env.reset().exclude("h")
    with pytest.raises(KeyError, match="carry over"):
        env.step(env.rand_action(td))


class TestPrimerContract(TransformContractTests):
    def make_transform(self):
        return TensorDictPrimer(h=Unbounded([2]), c=Bounded(0, 4, shape=(1,), dtype=torch.int64))


class TestRandomPrimerContract(TestPrimerContract):
    def make_transform(self):
        return TensorDictPrimer(h=Bounded(-1.0, 1.0, shape=(2,)), random=True)


def test_primer_call_before_env_reset_base_env_sees_the_values(counting_env):
    seen = []

    class Reads(type(counting_env())):
        def _reset(self, tensordict=None, **kwargs):
            seen.append(None if tensordict is None else tensordict.get("goal", None))
            return super()._reset(tensordict, **kwargs)

    base = Reads(batch_size=(2,))
    env = TransformedEnv(
        base, TensorDictPrimer(goal=Unbounded([1]), default_value=4.0, call_before_env_reset=True)
    )
    try:
        td = env.reset()
        assert seen[-1].squeeze(-1).tolist() == [4.0, 4.0]
        assert td["goal"].squeeze(-1).tolist() == [4.0, 4.0]
        td["goal"] = torch.tensor([[1.0], [2.0]])
        td["_reset"] = torch.tensor([[True], [False]])
        out = env.reset(td)
        assert out["goal"].squeeze(-1).tolist() == [4.0, 2.0]
        check_env_specs(env)
    finally:
        env.close()


class TestPrimerBeforeResetContract(TestPrimerContract):
    def make_transform(self):
        return TensorDictPrimer(h=Unbounded([2]), default_value=1.0, call_before_env_reset=True)
