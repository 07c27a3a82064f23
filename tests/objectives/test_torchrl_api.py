"""TorchRL 0.14's loss API: argument names and defaults, output keys, value-estimator
construction, objectives.utils, convert_to_functional and lazy networks."""

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import (
    NormalParamExtractor,
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
)
from torch import nn
from torch.distributions import Normal

from streamrl.data import Bounded, Categorical, Composite, OneHot
from streamrl.modules import QValueActor
from streamrl.objectives import (
    A2CLoss,
    ClipPPOLoss,
    DiscreteSACLoss,
    DQNLoss,
    KLPENPPOLoss,
    LossModule,
    SACLoss,
    TD3Loss,
    total_loss,
)
from streamrl.objectives import utils as ou
from streamrl.objectives.value import GAE, TD0Estimator, TD1Estimator, ValueEstimators


# ----------------------------------------------------------------- on-policy coefficients
def _actor_critic():
    torch.manual_seed(0)
    actor = ProbabilisticTensorDictSequential(
        TensorDictModule(nn.Sequential(nn.Linear(3, 4), NormalParamExtractor()),
                         in_keys=["observation"], out_keys=["loc", "scale"]),
        ProbabilisticTensorDictModule(in_keys=["loc", "scale"], out_keys=["action"],
                                      distribution_class=Normal, return_log_prob=True,
                                      log_prob_key="sample_log_prob"),
    )
    critic = TensorDictModule(nn.Linear(3, 1), in_keys=["observation"], out_keys=["state_value"])
    return actor, critic


def _rollout(actor, B=2, T=5):
    g = torch.Generator().manual_seed(1)
    td = TensorDict({
        "observation": torch.randn(B, T, 3, generator=g),
        "next": {"observation": torch.randn(B, T, 3, generator=g),
                 "reward": torch.randn(B, T, 1, generator=g),
                 "done": torch.zeros(B, T, 1, dtype=torch.bool)},
    }, [B, T])
    with torch.no_grad():
        actor(td)
    td["sample_log_prob"] = td["sample_log_prob"].sum(-1) + 0.3 * torch.randn(B, T, generator=g)
    return td


@pytest.mark.parametrize("cls", [A2CLoss, ClipPPOLoss, KLPENPPOLoss])
def test_coefficient_spellings_and_defaults(cls):
    actor, critic = _actor_critic()
    default = cls(actor, critic)
    assert default.entropy_coeff == 0.01 and default.critic_coeff == 1.0
    assert cls(actor, critic, entropy_coeff=None).entropy_coeff == 0.01
    new = cls(actor, critic, entropy_coeff=0.2, critic_coeff=0.3)
    old = cls(actor, critic, entropy_coef=0.2, critic_coef=0.3)
    for loss in (new, old):
        assert (loss.entropy_coeff, loss.critic_coeff) == (0.2, 0.3)
        assert (loss.entropy_coef, loss.critic_coef) == (0.2, 0.3)
    td = _rollout(actor)
    a, b = new(td.clone()), old(td.clone())
    torch.testing.assert_close(a["loss_entropy"], b["loss_entropy"])
    torch.testing.assert_close(a["loss_critic"], b["loss_critic"])
    torch.testing.assert_close(a["loss_entropy"], -0.2 * a["entropy"])
    with pytest.raises(ValueError, match="entropy_coeff or its older spelling"):
        cls(actor, critic, entropy_coeff=0.1, entropy_coef=0.1)
    with pytest.raises(ValueError, match="critic_coeff or its older spelling"):
        cls(actor, critic, critic_coeff=0.1, critic_coef=0.1)


@pytest.mark.parametrize("cls", [A2CLoss, ClipPPOLoss, KLPENPPOLoss])
def test_critic_coeff_none_leaves_the_critic_loss_out(cls):
    actor, critic = _actor_critic()
    out = cls(actor, critic, critic_coeff=None)(_rollout(actor))
    assert "loss_critic" not in out.keys() and "explained_variance" not in out.keys()
    assert "loss_objective" in out.keys()


def test_ppo_output_keys_match_torchrl():
    actor, critic = _actor_critic()
    out = ClipPPOLoss(actor, critic)(_rollout(actor))
    assert set(out.keys()) == {
        "loss_objective", "loss_critic", "loss_entropy", "entropy", "ESS", "clip_fraction",
        "kl_approx", "explained_variance", "max_ratio", "mean_ratio",
    }
    assert out["max_ratio"] >= out["mean_ratio"] > 0
    out = KLPENPPOLoss(actor, critic)(_rollout(actor))
    assert {"kl", "kl_approx", "explained_variance", "loss_critic"} <= set(out.keys())
    quiet = ClipPPOLoss(actor, critic, log_explained_variance=False)(_rollout(actor))
    assert "explained_variance" not in quiet.keys()


def test_explained_variance_is_one_for_a_perfect_critic():
    actor, critic = _actor_critic()
    td = _rollout(actor)
    with torch.no_grad():
        critic(td)
    td["value_target"] = td["state_value"].clone()
    td["advantage"] = torch.randn((*td.shape, 1))
    out = ClipPPOLoss(actor, critic)(td)
    torch.testing.assert_close(out["explained_variance"], torch.tensor(1.0))
    td["value_target"] = td["state_value"] + torch.randn_like(td["state_value"])
    assert ClipPPOLoss(actor, critic)(td)["explained_variance"] < 1.0


# ------------------------------------------------------------------------------ DQN
def _discrete_batch(categorical, n=4, B=6):
    g = torch.Generator().manual_seed(2)
    index = torch.randint(n, (B,), generator=g)
    action = index if categorical else nn.functional.one_hot(index, n)
    return TensorDict({
        "observation": torch.randn(B, 3, generator=g), "action": action,
        "next": {"observation": torch.randn(B, 3, generator=g),
                 "reward": torch.randn(B, 1, generator=g),
                 "done": torch.zeros(B, 1, dtype=torch.bool)},
    }, [B])


def _qnet(n=4):
    torch.manual_seed(0)
    return nn.Linear(3, n)


def test_dqn_output_is_torchrl_loss_key():
    loss = DQNLoss(QValueActor(_qnet(), action_space="one_hot"))
    out = loss(_discrete_batch(False))
    assert set(out.keys()) == {"loss", "pred_value", "target_value", "td_error"}
    torch.testing.assert_close(total_loss(out), out["loss"])
    out["loss"].backward()


@pytest.mark.parametrize("space, expected", [
    ("one_hot", "one_hot"), ("one-hot", "one_hot"), ("categorical", "categorical"),
    (OneHot(4), "one_hot"), (Categorical(4), "categorical"), (None, None),
])
def test_dqn_action_space_names_and_specs(space, expected):
    loss = DQNLoss(_qnet(), action_space=space)  # a plain nn.Module is wrapped
    assert loss.action_space == expected
    batch = _discrete_batch(expected == "categorical")
    assert torch.isfinite(loss(batch)["loss"])


@pytest.mark.parametrize("spec, expected", [(OneHot(4), "one_hot"),
                                            (Categorical(4), "categorical")])
def test_dqn_action_space_inferred_from_qvalue_actor(spec, expected):
    loss = DQNLoss(QValueActor(_qnet(), spec=spec))
    assert loss.action_space == expected
    with pytest.raises(ValueError, match="QValueActor uses"):
        DQNLoss(QValueActor(_qnet(), spec=spec),
                action_space="categorical" if expected == "one_hot" else "one_hot")


def test_dqn_same_loss_for_both_encodings():
    one_hot = DQNLoss(QValueActor(_qnet(), spec=OneHot(4)))
    cat = DQNLoss(QValueActor(_qnet(), spec=Categorical(4)))
    a, b = one_hot(_discrete_batch(False)), cat(_discrete_batch(True))
    torch.testing.assert_close(a["loss"], b["loss"])


@pytest.mark.parametrize("space, match", [
    ("mult_one_hot", "needs the component sizes"), ("binary", "not supported"),
    ("box", "action_space"), (Bounded(-1.0, 1.0, shape=(2,)), "OneHot or Categorical"),
])
def test_dqn_rejects_action_spaces_it_cannot_read(space, match):
    with pytest.raises(ValueError, match=match):
        DQNLoss(_qnet(), action_space=space)
    with pytest.raises(TypeError, match=r"nn\.Module"):
        DQNLoss("net")


# ---------------------------------------------------------------------- discrete SAC
def _discrete_sac(**kwargs):
    torch.manual_seed(0)
    actor = ProbabilisticTensorDictSequential(
        TensorDictModule(nn.Linear(3, 4), in_keys=["observation"], out_keys=["logits"]),
        ProbabilisticTensorDictModule(in_keys=["logits"], out_keys=["action"],
                                      distribution_class=torch.distributions.OneHotCategorical),
    )
    qnet = TensorDictModule(nn.Linear(3, 4), in_keys=["observation"], out_keys=["action_value"])
    return DiscreteSACLoss(actor, qnet, **kwargs)


def test_discrete_sac_action_space_gives_num_actions_and_both_encodings_agree():
    one_hot = _discrete_sac(action_space=OneHot(4))
    cat = _discrete_sac(action_space=Categorical(4))
    assert one_hot.num_actions == cat.num_actions == 4
    assert (one_hot.action_space, cat.action_space) == ("one_hot", "categorical")
    torch.manual_seed(3)
    a = one_hot(_discrete_batch(False))
    torch.manual_seed(3)
    b = cat(_discrete_batch(True))
    assert set(a.keys()) >= {"loss_actor", "loss_qvalue", "loss_alpha", "alpha", "entropy"}
    for key in ("loss_actor", "loss_qvalue", "loss_alpha"):
        torch.testing.assert_close(a[key], b[key])
    assert _discrete_sac(action_space="one-hot", num_actions=4).action_space == "one_hot"
    with pytest.raises(ValueError, match="num_actions"):
        _discrete_sac(action_space="one_hot")
    with pytest.raises(ValueError, match="spec has 4"):
        _discrete_sac(action_space=OneHot(4), num_actions=3)


# ------------------------------------------------------------------------------ TD3
class _Concat(nn.Linear):
    def forward(self, obs, action):
        return super().forward(torch.cat([obs, action], -1))


def _td3_parts():
    torch.manual_seed(0)
    actor = TensorDictModule(nn.Sequential(nn.Linear(3, 2), nn.Tanh()), in_keys=["observation"],
                             out_keys=["action"])
    qnet = TensorDictModule(_Concat(5, 1), in_keys=["observation", "action"],
                            out_keys=["state_action_value"])
    return actor, qnet


def _continuous_batch(B=6):
    g = torch.Generator().manual_seed(4)
    return TensorDict({
        "observation": torch.randn(B, 3, generator=g), "action": torch.rand(B, 2, generator=g),
        "next": {"observation": torch.randn(B, 3, generator=g),
                 "reward": torch.randn(B, 1, generator=g),
                 "done": torch.zeros(B, 1, dtype=torch.bool)},
    }, [B])


def test_td3_bounds_from_spec_pair_or_floats():
    actor, qnet = _td3_parts()
    spec = Bounded(-torch.ones(2), torch.ones(2), (2,))
    for kwargs in (dict(action_spec=spec), dict(action_spec=Composite(action=spec)),
                   dict(bounds=(-1.0, 1.0)), dict(action_low=-1.0, action_high=1.0)):
        loss = TD3Loss(actor, qnet, **kwargs)
        torch.testing.assert_close(loss.action_high.expand(2), torch.ones(2))
    assert TD3Loss(actor, qnet, bounds=(-1.0, 1.0)).loss_function == "smooth_l1"
    with pytest.raises(ValueError, match="exactly one"):
        TD3Loss(actor, qnet)
    with pytest.raises(ValueError, match="exactly one"):
        TD3Loss(actor, qnet, action_spec=spec, bounds=(-1.0, 1.0))
    with pytest.raises(TypeError, match="Bounded"):
        TD3Loss(actor, qnet, action_spec=OneHot(2))


def test_td3_diagnostics_have_torchrl_names_and_shapes():
    actor, qnet = _td3_parts()
    out = TD3Loss(actor, qnet, bounds=(-1.0, 1.0), num_qvalue_nets=3)(_continuous_batch())
    shapes = {k: tuple(v.shape) for k, v in out.items()}
    assert shapes == {"loss_actor": (), "loss_qvalue": (), "pred_value": (3, 6),
                      "state_action_value_actor": (3, 6), "next_state_value": (6,),
                      "target_value": (6,), "td_error": (6,)}


def test_sac_defaults_to_smooth_l1():
    actor, _ = _actor_critic()
    _, qnet = _td3_parts()
    assert SACLoss(actor, qnet).loss_function == "smooth_l1"
    assert _discrete_sac(num_actions=4).loss_function == "smooth_l1"


# ------------------------------------------------------------------- value estimators
def test_make_value_estimator_defaults_classes_and_instances():
    loss = DQNLoss(_qnet(), action_space="one_hot")
    assert loss.make_value_estimator() is loss
    assert loss.value_type is ValueEstimators.TD0
    assert loss.value_estimator.gamma == 0.99 and loss.value_estimator.differentiable
    loss.make_value_estimator(ValueEstimators.TD1, gamma=0.5)
    assert isinstance(loss.value_estimator, TD1Estimator) and loss.value_estimator.gamma == 0.5
    loss.make_value_estimator(TD0Estimator, gamma=0.7)
    assert loss.value_type is TD0Estimator and loss.value_estimator.gamma == 0.7
    actor, critic = _actor_critic()
    ppo = ClipPPOLoss(actor, critic)
    gae = GAE(gamma=0.9, lmbda=0.8, value_network=critic)
    ppo.make_value_estimator(gae)
    assert ppo.value_estimator is gae
    ppo.set_keys(advantage="adv")
    assert gae.tensor_keys["advantage"] == "adv"  # the loss's keys reach the instance
    with pytest.raises(ValueError, match="instance and hyperparameters"):
        ppo.make_value_estimator(gae, gamma=0.5)
    with pytest.raises(TypeError, match="ValueEstimatorBase subclass"):
        ppo.make_value_estimator(nn.Linear)
    with pytest.raises(ValueError, match="unknown value estimator"):
        ppo.make_value_estimator("MC")


def test_default_value_kwargs():
    assert ou.default_value_kwargs(ValueEstimators.TD0) == {"gamma": 0.99, "differentiable": True}
    assert ou.default_value_kwargs("GAE") == {"gamma": 0.99, "lmbda": 0.95,
                                              "differentiable": True}
    assert ou.default_value_kwargs("TD(lambda)")["lmbda"] == 0.95
    with pytest.raises(ValueError, match="unknown value estimator"):
        ou.default_value_kwargs("MC")
    with pytest.raises(TypeError, match="ValueEstimators member"):
        ou.default_value_kwargs(3)


# ---------------------------------------------------------------------------- utils
def test_utils_namespace():
    for name in ou.__all__:
        assert getattr(ou, name).__doc__, name
    assert ou.SoftUpdate.__name__ == "SoftUpdate" and ou.ValueEstimators is ValueEstimators


def test_hold_out_net_blocks_its_gradient_but_not_its_inputs():
    net = nn.Linear(2, 1)
    x = torch.ones(3, 2, requires_grad=True)
    with ou.hold_out_net(net):
        net(x).sum().backward()
    assert net.weight.grad is None and x.grad is not None
    assert all(p.requires_grad for p in net.parameters())
    with pytest.raises(RuntimeError), ou.hold_out_net(net):
        raise RuntimeError("inside")
    assert all(p.requires_grad for p in net.parameters())  # restored on error
    with pytest.raises(TypeError, match=r"nn\.Module"), ou.hold_out_net("net"):
        pass


def test_hold_out_params():
    params = TensorDict.from_module(nn.Linear(2, 1))
    with ou.hold_out_params(params) as held:
        assert not held["weight"].requires_grad
    with ou.hold_out_params(list(nn.Linear(2, 1).parameters())) as held:
        assert isinstance(held, tuple) and not any(p.requires_grad for p in held)
    with pytest.raises(TypeError, match="single Tensor"), ou.hold_out_params(torch.ones(2)):
        pass


def test_next_state_value():
    td = TensorDict({"next": {"observation": torch.tensor([[1.0], [2.0], [3.0]]),
                              "reward": torch.ones(3, 1),
                              "done": torch.tensor([[False], [True], [False]])}}, [3])
    op = TensorDictModule(lambda o: 2 * o, in_keys=["observation"],
                          out_keys=["state_action_value"])
    torch.testing.assert_close(ou.next_state_value(td, op, gamma=0.5),
                               torch.tensor([2.0, 1.0, 4.0]))
    td["steps_to_next_obs"] = torch.tensor([[1], [1], [2]])
    torch.testing.assert_close(ou.next_state_value(td, op, gamma=0.5),
                               torch.tensor([2.0, 1.0, 2.5]))
    with pytest.raises(ValueError, match="operator or pred_next_val"):
        ou.next_state_value(td)
    with pytest.raises(KeyError, match="reward"):
        ou.next_state_value(TensorDict({}, [3]), pred_next_val=torch.ones(3))


def test_distance_loss_strict_shape():
    with pytest.raises(ValueError, match="shape"):
        ou.distance_loss(torch.ones(3, 1), torch.zeros(3), "l2")
    torch.testing.assert_close(
        ou.distance_loss(torch.ones(3, 1), torch.zeros(3), "l2", strict_shape=False),
        torch.ones(3))
    with pytest.raises(ValueError, match="as many elements"):
        ou.distance_loss(torch.ones(3), torch.zeros(2), "l2", strict_shape=False)


# ------------------------------------------------------- convert_to_functional, lazy nets
def test_convert_to_functional():
    loss = LossModule()
    loss.convert_to_functional(nn.Linear(2, 2), "qvalue_network", expand_dim=3,
                               create_target_params=True)
    assert loss.qvalue_network_params["weight"].shape == (3, 2, 2)
    assert loss.target_qvalue_network_params["weight"].shape == (3, 2, 2)
    assert loss.target_network_names == ("qvalue_network",)
    assert not loss.target_qvalue_network_params["weight"].requires_grad


def test_convert_to_functional_compare_against_holds_shared_views():
    trunk = nn.Linear(2, 2)
    loss = LossModule()
    loss.convert_to_functional(nn.Sequential(trunk, nn.Linear(2, 2)), "actor_network")
    critic = TensorDictModule(nn.Sequential(trunk, nn.Linear(2, 1)), ["x"], ["q"])
    loss.convert_to_functional(critic, "qvalue_network", expand_dim=3,
                               compare_against=list(trunk.parameters()))
    shared = loss.qvalue_network_params["module", "0", "weight"]
    assert shared.shape == (3, 2, 2) and not shared.requires_grad
    assert not isinstance(shared, nn.Parameter)
    # no duplicate: the actor's 4 tensors and the critic head's 2 (stacked) are trained
    assert len([p for p in loss.parameters() if p.requires_grad]) == 6
    with torch.no_grad():
        trunk.weight.add_(1.0)  # the views follow the shared tensors
    torch.testing.assert_close(loss.qvalue_network_params["module", "0", "weight"][1],
                               trunk.weight)
    out = loss.vmap_network("qvalue_network", TensorDict({"x": torch.ones(4, 2)}, [4]))
    assert out["q"].shape == (3, 4, 1)
    out["q"].sum().backward()
    assert trunk.weight.grad is None  # the critic's loss does not train the shared trunk
    assert loss.qvalue_network_params["module", "1", "weight"].grad is not None


def test_convert_to_functional_compare_against_lazy_is_refused():
    loss = LossModule()
    with pytest.raises(ValueError, match="lazy layers"):
        loss.convert_to_functional(nn.LazyLinear(2), "q", compare_against=[])


def test_lazy_value_network_with_delayed_target():
    actor = QValueActor(nn.LazyLinear(4), spec=OneHot(4))
    loss = DQNLoss(actor, delay_value=True)
    optim = torch.optim.SGD(loss.parameters(), lr=0.1)  # built before initialisation
    updater = ou.SoftUpdate(loss, tau=0.5)
    out = loss(_discrete_batch(False))
    live = loss.value_network_params.detach()
    target = loss.target_value_network_params
    assert live["module", "0", "module", "weight"].shape == (4, 3)
    assert (target == live).all()  # the target is a copy of the initialised weights
    before = live.clone()
    out["loss"].backward()
    optim.step()
    assert not (loss.value_network_params.detach() == before).all()  # the optimizer sees them
    updater.step()
    assert not (target == before).all()


def test_lazy_ensemble_copies_are_made_once_initialised():
    actor, _ = _actor_critic()
    qnet = TensorDictModule(_LazyConcat(), in_keys=["observation", "action"],
                            out_keys=["state_action_value"])
    loss = SACLoss(actor, qnet, num_qvalue_nets=2)
    out = loss(_continuous_batch())
    weights = loss.qvalue_network_params["module", "lin", "weight"]
    assert weights.shape == (2, 1, 5) and not torch.equal(weights[0], weights[1])
    assert torch.isfinite(total_loss(out))


class _LazyConcat(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.LazyLinear(1)

    def forward(self, obs, action):
        return self.lin(torch.cat([obs, action], -1))


def test_materialize_lazy_explicitly_and_bad_input():
    actor, _ = _actor_critic()
    qnet = TensorDictModule(_LazyConcat(), in_keys=["observation", "action"],
                            out_keys=["state_action_value"])
    loss = SACLoss(actor, qnet)
    with pytest.raises(KeyError, match="lazy network qvalue_network"):
        loss(TensorDict({"observation": torch.randn(2, 3)}, [2]))
    loss.materialize_lazy(_continuous_batch())
    optim = torch.optim.Adam(loss.parameters())  # every parameter initialised by now
    assert all(not isinstance(p, nn.parameter.UninitializedParameter)
               for group in optim.param_groups for p in group["params"])
    assert not loss._forward_pre_hooks  # no per-call hook once nothing is lazy
    total_loss(loss(_continuous_batch())).backward()
    optim.step()
