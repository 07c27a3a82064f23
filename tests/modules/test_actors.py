"""SafeModule, Actor, ValueOperator, ProbabilisticActor, Q-value actors, actor-critic."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn

from streamrl._warnings import StreamRLWarning
from streamrl.data.specs import Bounded, Categorical, Composite, MultiOneHot, OneHot, Unbounded
from streamrl.modules import (
    MLP,
    Actor,
    ActorCriticOperator,
    ActorCriticWrapper,
    ActorValueOperator,
    ExplorationType,
    IndependentNormal,
    NormalParamExtractor,
    ProbabilisticActor,
    QValueActor,
    QValueModule,
    SafeModule,
    TanhNormal,
    ValueOperator,
    set_exploration_type,
)


class TestSafeModule:
    def test_projection_only_outside_spec(self):
        torch.manual_seed(0)
        spec = Bounded(-torch.ones(3), torch.ones(3))
        module = SafeModule(nn.Linear(5, 3), in_keys=["obs"], out_keys=["action"], spec=spec,
                            safe=True)
        small = module(TensorDict({"obs": torch.randn(5) * 0.01}))["action"]
        assert small.grad_fn is not None and "Maximum" not in type(small.grad_fn).__name__
        big = module(TensorDict({"obs": torch.randn(4, 5) * 100}, [4]))["action"]
        assert big.abs().max().item() == 1.0 and spec.is_in(big)
        raw = module.module(torch.randn(4, 5) * 100)
        assert not spec.is_in(raw)

    def test_unsafe_leaves_values(self):
        spec = Bounded(-1.0, 1.0, shape=(3,))
        module = SafeModule(nn.Linear(5, 3), in_keys=["obs"], out_keys=["action"], spec=spec)
        obs = torch.randn(2, 5) * 100
        torch.testing.assert_close(module(TensorDict({"obs": obs}, [2]))["action"],
                                   module.module(obs))

    def test_one_hot_and_composite_spec(self):
        spec = Composite(action=OneHot(4), value=Bounded(0.0, 1.0, shape=(1,)))
        net = lambda x: (x, x[..., :1])  # noqa: E731
        module = SafeModule(net, in_keys=["obs"], out_keys=["action", "value"], spec=spec,
                            safe=True)
        td = module(TensorDict({"obs": torch.tensor([[0.1, 3.0, -1.0, 0.5]])}, [1]))
        assert td["action"].tolist() == [[0, 1, 0, 0]]
        assert td["value"].tolist() == [[pytest.approx(0.1)]]
        assert module.spec["action"] is spec["action"]

    def test_bad_specs(self):
        with pytest.raises(RuntimeError, match="specs are not specified"):
            SafeModule(nn.Linear(2, 2), in_keys=["a"], out_keys=["b"], safe=True)
        # entries at keys that are no out key are ignored, with a warning (TorchRL keeps them)
        with pytest.warns(StreamRLWarning, match=r"\['other'\].*out_keys.*ignored"):
            SafeModule(nn.Linear(2, 2), in_keys=["a"], out_keys=["b"],
                       spec=Composite(other=Unbounded(shape=(2,))))
        with pytest.raises(TypeError, match="spec must be"):
            SafeModule(nn.Linear(2, 2), in_keys=["a"], out_keys=["b"], spec="box")
        module = SafeModule(nn.Linear(2, 3), in_keys=["a"], out_keys=["b"],
                            spec=Bounded(-1.0, 1.0, shape=(2,)), safe=True)
        with pytest.raises(ValueError, match=r"'b' has shape \(4, 3\).*\(2,\)"):
            module(TensorDict({"a": torch.randn(4, 2)}, [4]))

    def test_missing_in_key_is_named(self):
        actor = Actor(nn.Linear(2, 1), in_keys=["obs"])
        with pytest.raises(KeyError, match="obs"):
            actor(TensorDict({"observation": torch.randn(2)}))


def test_actor_and_value_operator_defaults():
    actor = Actor(nn.Linear(3, 2))
    assert actor.in_keys == ["observation"] and actor.out_keys == ["action"]
    assert ValueOperator(nn.Linear(3, 1)).out_keys == ["state_value"]
    q = ValueOperator(MLP(out_features=1, num_cells=[4]), in_keys=["observation", "action"])
    assert q.out_keys == ["state_action_value"]
    td = TensorDict({"observation": torch.randn(5, 3), "action": torch.randn(5, 2)}, [5])
    assert q(td)["state_action_value"].shape == (5, 1)
    assert ValueOperator(nn.Linear(3, 1), out_keys=["v"]).out_keys == ["v"]


def _param_net(obs_dim=3, act_dim=2):
    return TensorDictModule(nn.Sequential(nn.Linear(obs_dim, 2 * act_dim), NormalParamExtractor()),
                            in_keys=["observation"], out_keys=["loc", "scale"])


class TestProbabilisticActor:
    def test_keys_and_log_prob(self):
        actor = ProbabilisticActor(_param_net(), distribution_class=IndependentNormal,
                                   return_log_prob=True)
        assert actor.out_keys[-2:] == ["action", "action_log_prob"]
        td = actor(TensorDict({"observation": torch.randn(4, 3)}, [4]))
        dist = actor.get_dist(td)
        torch.testing.assert_close(td["action_log_prob"], dist.log_prob(td["action"]))

    def test_default_random_then_mode(self):
        actor = ProbabilisticActor(_param_net(), distribution_class=TanhNormal)
        td = TensorDict({"observation": torch.randn(4, 3)}, [4])
        a1, a2 = actor(td.clone())["action"], actor(td.clone())["action"]
        assert not torch.equal(a1, a2)  # no exploration type set: samples
        with set_exploration_type(ExplorationType.MODE):
            m1, m2 = actor(td.clone())["action"], actor(td.clone())["action"]
        assert torch.equal(m1, m2)
        torch.testing.assert_close(m1, torch.tanh(actor.module[0](td.clone())["loc"]))

    def test_spec_bounds_fill_tanh_normal(self):
        spec = Bounded(torch.tensor([0.0, -5.0]), torch.tensor([1.0, 5.0]))
        actor = ProbabilisticActor(_param_net(), spec=spec, distribution_class=TanhNormal)
        td = actor(TensorDict({"observation": torch.randn(500, 3) * 5}, [500]))
        assert spec.is_in(td["action"])
        assert td["action"][:, 1].abs().max() > 1.0  # really uses [-5, 5], not [-1, 1]
        explicit = ProbabilisticActor(_param_net(), spec=spec, distribution_class=TanhNormal,
                                      distribution_kwargs={"low": -1.0, "high": 1.0})
        assert explicit.module[-1].distribution_kwargs == {"low": -1.0, "high": 1.0}

    def test_safe_projection(self):
        spec = Bounded(-0.1, 0.1, shape=(2,))
        actor = ProbabilisticActor(_param_net(), spec=spec, safe=True,
                                   distribution_class=IndependentNormal)
        td = actor(TensorDict({"observation": torch.randn(50, 3)}, [50]))
        assert spec.is_in(td["action"])

    def test_bad_module(self):
        with pytest.raises(TypeError, match="TensorDict module"):
            ProbabilisticActor(nn.Linear(3, 4))


class TestQValue:
    def test_one_hot(self):
        td = TensorDict({"action_value": torch.tensor([[1.0, 3.0, 2.0], [5.0, 0.0, 1.0]])}, [2])
        QValueModule(action_space="one_hot")(td)
        assert td["action"].tolist() == [[0, 1, 0], [1, 0, 0]]
        assert td["action"].dtype == torch.long
        assert td["chosen_action_value"].tolist() == [[3.0], [5.0]]

    def test_categorical_from_spec_and_mask(self):
        module = QValueModule(spec=Categorical(3), action_mask_key="action_mask")
        assert module.action_space == "categorical"
        td = TensorDict({"action_value": torch.tensor([[1.0, 3.0, 2.0], [5.0, 0.0, 1.0]]),
                         "action_mask": torch.tensor([[True, False, True], [False, True, True]])},
                        [2])
        module(td)
        assert td["action"].tolist() == [2, 2]
        assert td["chosen_action_value"].tolist() == [[2.0], [1.0]]

    def test_categorical_unit_dim_spec(self):
        td = TensorDict({"action_value": torch.tensor([[1.0, 3.0], [5.0, 0.0]])}, [2])
        QValueModule(spec=Categorical(2, shape=(1,)))(td)
        assert td["action"].tolist() == [[1], [0]]

    def test_actor(self):
        actor = QValueActor(nn.Linear(4, 2), spec=OneHot(2))
        td = actor(TensorDict({"observation": torch.randn(3, 4)}, [3]))
        torch.testing.assert_close(td["action_value"], actor.module[0].module(td["observation"]))
        assert OneHot(2).is_in(td["action"])
        torch.testing.assert_close(td["chosen_action_value"],
                                   td["action_value"].max(-1, keepdim=True).values)

    def test_mult_one_hot_from_spec_with_mask(self):
        module = QValueModule(spec=MultiOneHot([2, 3]), action_mask_key="mask")
        assert (module.action_space, module.var_nums) == ("mult_one_hot", [2, 3])
        td = TensorDict({"action_value": torch.tensor([[1.0, 2.0, 9.0, 3.0, 4.0]]),
                         "mask": torch.tensor([[True, True, False, True, True]])}, [1])
        module(td)
        assert td["action"].tolist() == [[False, True, False, False, True]]  # spec dtype bool
        assert td["chosen_action_value"].tolist() == [[6.0]]  # 2 + 4
        actor = QValueActor(nn.Linear(4, 5), spec=MultiOneHot([2, 3]))
        out = actor(TensorDict({"observation": torch.randn(6, 4)}, [6]))
        assert MultiOneHot([2, 3]).is_in(out["action"])
        with pytest.raises(ValueError, match="sums to 5"):
            module(TensorDict({"action_value": torch.zeros(1, 4),
                               "mask": torch.ones(1, 4, dtype=torch.bool)}, [1]))
        with pytest.raises(ValueError, match="needs var_nums"):
            QValueModule(action_space="mult-one-hot")
        with pytest.raises(ValueError, match="does not match the spec's nvec"):
            QValueModule(spec=MultiOneHot([2, 3]), var_nums=[3, 2])

    def test_errors(self):
        with pytest.raises(ValueError, match="action_space"):
            QValueModule(action_space="binary")
        with pytest.raises(ValueError, match="does not match"):
            QValueModule(action_space="one_hot", spec=Categorical(3))
        with pytest.raises(ValueError, match="OneHot, Categorical or MultiOneHot"):
            QValueModule(spec=Bounded(-1.0, 1.0, shape=(2,)))
        module = QValueModule(action_mask_key="mask")
        td = TensorDict({"action_value": torch.zeros(2, 3), "mask": torch.ones(2, 4, dtype=bool)},
                        [2])
        with pytest.raises(ValueError, match=r"\(2, 4\).*\(2, 3\)"):
            module(td)
        with pytest.raises(KeyError, match="action_value"):
            QValueModule()(TensorDict({}, [2]))


def _trunk():
    return TensorDictModule(nn.Linear(3, 8), in_keys=["observation"], out_keys=["hidden"])


def test_actor_value_operator_shares_trunk():
    policy = ProbabilisticActor(
        TensorDictModule(nn.Sequential(nn.Linear(8, 4), NormalParamExtractor()),
                         in_keys=["hidden"], out_keys=["loc", "scale"]),
        distribution_class=TanhNormal, return_log_prob=True)
    value = ValueOperator(nn.Linear(8, 1), in_keys=["hidden"])
    op = ActorValueOperator(_trunk(), policy, value)
    td = TensorDict({"observation": torch.randn(5, 3)}, [5])
    full = op(td.clone())
    for key in ("hidden", "action", "action_log_prob", "state_value"):
        assert key in full.keys()
    policy_op, value_op = op.get_policy_operator(), op.get_value_operator()
    with set_exploration_type(ExplorationType.MODE):
        a = policy_op(td.clone())
        assert policy_op.get_dist(td.clone()).mode.shape == (5, 2)
    assert "state_value" not in a.keys()
    v = value_op(td.clone())
    torch.testing.assert_close(v["state_value"], full["state_value"])
    trunk_params = {id(p) for p in op.module[0].parameters()}
    assert trunk_params <= {id(p) for p in policy_op.parameters()}
    assert trunk_params <= {id(p) for p in value_op.parameters()}


def test_actor_critic_operator_and_wrapper():
    policy = Actor(nn.Linear(8, 2), in_keys=["hidden"])
    critic = ValueOperator(MLP(out_features=1, num_cells=[4]), in_keys=["hidden", "action"])
    op = ActorCriticOperator(_trunk(), policy, critic)
    td = TensorDict({"observation": torch.randn(5, 3)}, [5])
    out = op.get_critic_operator()(td.clone())
    assert out["state_action_value"].shape == (5, 1)
    assert "state_action_value" not in op.get_policy_operator()(td.clone()).keys()
    wrapper = ActorCriticWrapper(Actor(nn.Linear(3, 2)),
                                 ValueOperator(nn.Linear(3, 1)))
    assert isinstance(wrapper.get_policy_operator(), Actor)
    assert isinstance(wrapper, TensorDictSequential)
    assert wrapper(td.clone())["state_value"].shape == (5, 1)


def test_probabilistic_actor_with_action_mask():
    from streamrl.modules import MaskedCategorical

    torch.manual_seed(0)
    net = TensorDictModule(nn.Linear(3, 4), in_keys=["observation"], out_keys=["logits"])
    actor = ProbabilisticActor(net, in_keys={"logits": "logits", "mask": "action_mask"},
                               distribution_class=MaskedCategorical, return_log_prob=True)
    mask = torch.tensor([[True, False, False, True]] * 200)
    td = actor(TensorDict({"observation": torch.randn(200, 3), "action_mask": mask}, [200]))
    assert set(td["action"].unique().tolist()) <= {0, 3}
    assert torch.isfinite(td["action_log_prob"]).all()
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        greedy = actor(td.clone())["action"]
    logits = td["logits"].masked_fill(~mask, float("-inf"))
    assert torch.equal(greedy, logits.argmax(-1))


def test_tanh_module_bounds_and_gradient():
    from streamrl.modules import TanhModule

    spec = Bounded(torch.tensor([0.0, -2.0]), torch.tensor([1.0, 2.0]))
    actor = TensorDictSequential(Actor(nn.Linear(3, 2), out_keys=["raw"]),
                                 TanhModule("raw", "action", spec=spec))
    td = actor(TensorDict({"observation": torch.randn(64, 3) * 100}, [64]))
    assert spec.is_in(td["action"])
    td["action"].sum().backward()
    assert torch.isfinite(actor.module[0].module.weight.grad).all()
    raw = torch.tensor([[0.0, 0.0]])
    out = TanhModule(["x"], spec=spec)(TensorDict({"x": raw}, [1]))["x"]
    torch.testing.assert_close(out, torch.tensor([[0.5, 0.0]]))
    with pytest.raises(ValueError, match="not both"):
        TanhModule("x", spec=spec, low=0.0)
    with pytest.raises(ValueError, match="low < high"):
        TanhModule("x", low=1.0, high=0.0)
    with pytest.raises(KeyError, match="'x'"):
        TanhModule("x")(TensorDict({}, [1]))


@pytest.mark.parametrize("categorical", [False, True])
def test_qvalue_actor_with_a_batched_env_spec(categorical):
    from streamrl.envs import SerialEnv
    from streamrl.envs.libs.gym import GymEnv

    env = SerialEnv(1, lambda: GymEnv("CartPole-v1", categorical_action_encoding=categorical))
    actor = QValueActor(MLP(out_features=2, num_cells=[8]), in_keys=["observation"],
                        spec=env.action_spec)
    assert actor.action_space == ("categorical" if categorical else "one_hot")
    td = actor(env.reset())
    assert td["action"].shape == env.action_spec.shape == ((1,) if categorical else (1, 2))
    assert env.action_spec.is_in(td["action"])
    env.step(td)  # accepted by the env
    env.close()
