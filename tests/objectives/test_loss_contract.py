"""The loss contract: every loss of streamrl.objectives runs it.

For each loss: the output holds the documented keys; each ``loss_*`` term sends gradient to
the networks it trains and to no other; target parameters get no gradient and do not move
during forward/backward; two calls with the same seed give the same output; an input
missing the action raises a ``KeyError`` naming it. A new loss adds a case to ``CASES``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import (
    NormalParamExtractor,
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
)
from torch import nn
from torch.distributions import Categorical, Normal

from streamrl.data import MultiOneHot
from streamrl.modules import (
    DistributionalQValueActor,
    DTActor,
    OnlineDTActor,
    ProbabilisticActor,
    QMixer,
    QValueActor,
    TanhNormal,
    VDNMixer,
)
from streamrl.objectives import (
    A2CLoss,
    BCLoss,
    ClipPPOLoss,
    CQLLoss,
    CrossQLoss,
    DDPGLoss,
    DiscreteCQLLoss,
    DiscreteIQLLoss,
    DiscreteSACLoss,
    DistributionalDQNLoss,
    DQNLoss,
    DTLoss,
    IQLLoss,
    KLPENPPOLoss,
    LossModule,
    OnlineDTLoss,
    PPOLoss,
    QMixerLoss,
    REDQLoss,
    ReinforceLoss,
    SACLoss,
    TD3BCLoss,
    TD3Loss,
    TQCLoss,
    total_loss,
)

OBS, ACT, N_ACTIONS = 3, 2, 4


@dataclass
class Case:
    build: Callable[[], LossModule]
    data: Callable[[], TensorDictBase]
    keys: set[str]  # the documented output keys
    # loss term -> networks (``<name>_params`` or a submodule name) it must train; any other
    # parameter must get no gradient from that term
    routes: dict[str, set[str]] = field(default_factory=dict)
    action_key: str | tuple[str, ...] = "action"
    reads_reward: bool = True  # behaviour cloning reads no reward


class _Concat(nn.Module):
    def __init__(self, n_in: int = OBS + ACT, n_out: int = 1) -> None:
        super().__init__()
        self.lin = nn.Linear(n_in, n_out)

    def forward(self, obs, action):
        return self.lin(torch.cat([obs, action], -1))


def _gaussian_actor():
    return ProbabilisticTensorDictSequential(
        TensorDictModule(nn.Sequential(nn.Linear(OBS, 2 * ACT), NormalParamExtractor()),
                         in_keys=["observation"], out_keys=["loc", "scale"]),
        ProbabilisticTensorDictModule(in_keys=["loc", "scale"], out_keys=["action"],
                                      distribution_class=Normal, return_log_prob=True,
                                      log_prob_key="action_log_prob"),
    )


def _categorical_actor():
    return ProbabilisticTensorDictSequential(
        TensorDictModule(nn.Linear(OBS, N_ACTIONS), in_keys=["observation"],
                         out_keys=["logits"]),
        ProbabilisticTensorDictModule(in_keys=["logits"], out_keys=["action"],
                                      distribution_class=Categorical),
    )


def _qnet():
    return TensorDictModule(_Concat(), in_keys=["observation", "action"],
                            out_keys=["state_action_value"])


def _critic():
    return TensorDictModule(nn.Linear(OBS, 1), in_keys=["observation"], out_keys=["state_value"])


def _transitions(action: torch.Tensor, n: int = 6) -> TensorDict:
    g = torch.Generator().manual_seed(11)
    done = torch.zeros(n, 1, dtype=torch.bool)
    done[2] = done[4] = True
    term = done.clone()
    term[4] = False
    return TensorDict({
        "observation": torch.randn(n, OBS, generator=g), "action": action,
        "next": {"observation": torch.randn(n, OBS, generator=g),
                 "reward": torch.randn(n, 1, generator=g), "done": done, "terminated": term},
    }, [n])


def _continuous():
    g = torch.Generator().manual_seed(12)
    return _transitions(torch.rand(6, ACT, generator=g) * 2 - 1)


def _discrete():
    return _transitions(torch.tensor([0, 1, 2, 3, 1, 0]))


def _rollout():
    td = _continuous().unsqueeze(0)
    with torch.no_grad():
        td["action_log_prob"] = torch.randn(1, 6) - 2.0
    return td


def _agents():
    g = torch.Generator().manual_seed(13)
    td = _discrete()
    agents = {"observation": torch.randn(6, 2, OBS, generator=g),
              "action": torch.randint(N_ACTIONS, (6, 2), generator=g)}
    td["agents"] = TensorDict(agents, [6, 2])
    td["next", "agents"] = TensorDict({"observation": torch.randn(6, 2, OBS, generator=g)}, [6, 2])
    td["state"] = torch.randn(6, 5, generator=g)
    td["next", "state"] = torch.randn(6, 5, generator=g)
    return td.exclude("action")


def _local_q():
    return TensorDictModule(nn.Linear(OBS, N_ACTIONS), [("agents", "observation")],
                            [("agents", "action_value")])


_DT_KEYS = ["observation", "action", "return_to_go"]
_DT_CFG = {"n_embd": 8, "n_layer": 1, "n_head": 2, "n_inner": 16}


def _sequences():
    # the batch dim of the transitions is the sequence's time dim: [T=6, F] entries
    td = _continuous()
    td["return_to_go"] = torch.linspace(1.0, 0.0, 6).unsqueeze(-1)
    return td


def _online_dt_actor():
    return ProbabilisticActor(
        TensorDictModule(OnlineDTActor(OBS, ACT, _DT_CFG), _DT_KEYS, ["loc", "scale"]),
        in_keys=["loc", "scale"], out_keys=["action"], distribution_class=TanhNormal)


def _seeded(build):
    def _make():
        torch.manual_seed(0)
        return build()
    return _make


def _on_policy(cls, **kwargs):
    def _make():
        loss = cls(_gaussian_actor(), _critic(), **kwargs)
        loss.make_value_estimator(gamma=0.9)
        return loss
    return _seeded(_make)


CASES: dict[str, Case] = {
    "BCLoss": Case(
        _seeded(lambda: BCLoss(TensorDictModule(nn.Linear(OBS, ACT), ["observation"], ["action"]))),
        _continuous, {"loss_bc"}, {"loss_bc": {"actor_network_params"}}, reads_reward=False),
    "BCLoss-likelihood": Case(
        _seeded(lambda: BCLoss(_gaussian_actor())), _continuous, {"loss_bc"},
        {"loss_bc": {"actor_network_params"}}, reads_reward=False),
    "DTLoss": Case(
        _seeded(lambda: DTLoss(TensorDictModule(DTActor(OBS, ACT, _DT_CFG), _DT_KEYS, ["action"]))),
        _sequences, {"loss"}, {"loss": {"actor_network_params"}}, reads_reward=False),
    "OnlineDTLoss": Case(
        _seeded(lambda: OnlineDTLoss(_online_dt_actor())), _sequences,
        {"loss_log_likelihood", "loss_entropy", "loss_alpha", "alpha", "entropy"},
        {"loss_log_likelihood": {"actor_network_params"}, "loss_entropy": {"actor_network_params"},
         "loss_alpha": {"entropy_coef"}}, reads_reward=False),
    "DQNLoss": Case(
        _seeded(lambda: DQNLoss(QValueActor(nn.Linear(OBS, N_ACTIONS), action_space="categorical"))),
        _discrete, {"loss", "pred_value", "target_value", "td_error"},
        {"loss": {"value_network_params"}}),
    "DQNLoss-double": Case(
        _seeded(lambda: DQNLoss(QValueActor(nn.Linear(OBS, N_ACTIONS), action_space="one-hot"),
                                double_dqn=True)),
        lambda: _transitions(torch.eye(N_ACTIONS, dtype=torch.long)[torch.tensor([0, 1, 2, 3, 1, 0])]),
        {"loss", "pred_value", "target_value", "td_error"},
        {"loss": {"value_network_params"}}),
    "DQNLoss-mult_one_hot": Case(
        _seeded(lambda: DQNLoss(QValueActor(nn.Linear(OBS, N_ACTIONS), spec=MultiOneHot([2, 2])))),
        lambda: _transitions(torch.tensor([[1, 0, 0, 1], [0, 1, 0, 1], [1, 0, 1, 0]] * 2)),
        {"loss", "pred_value", "target_value", "td_error"},
        {"loss": {"value_network_params"}}),
    "DistributionalDQNLoss-mult_one_hot": Case(
        _seeded(lambda: DistributionalDQNLoss(DistributionalQValueActor(
            nn.Sequential(nn.Linear(OBS, 5 * N_ACTIONS), nn.Unflatten(-1, (5, N_ACTIONS))),
            support=torch.linspace(-2, 2, 5), var_nums=[2, 2], action_space="mult_one_hot"),
            gamma=0.9)),
        lambda: _transitions(torch.tensor([[1, 0, 0, 1], [0, 1, 0, 1], [1, 0, 1, 0]] * 2)),
        {"loss"}, {"loss": {"value_network_params"}}),
    "DistributionalDQNLoss": Case(
        _seeded(lambda: DistributionalDQNLoss(DistributionalQValueActor(
            nn.Sequential(nn.Linear(OBS, 5 * N_ACTIONS), nn.Unflatten(-1, (5, N_ACTIONS))),
            support=torch.linspace(-2, 2, 5), action_space="categorical"), gamma=0.9)),
        _discrete, {"loss"}, {"loss": {"value_network_params"}}),
    "DDPGLoss": Case(
        _seeded(lambda: DDPGLoss(TensorDictModule(nn.Linear(OBS, ACT), ["observation"], ["action"]),
                                 _qnet())),
        _continuous, {"loss_actor", "loss_value", "pred_value", "target_value", "pred_value_max",
                      "target_value_max", "td_error"},
        {"loss_actor": {"actor_network_params"}, "loss_value": {"value_network_params"}}),
    "TD3Loss": Case(
        _seeded(lambda: TD3Loss(TensorDictModule(nn.Linear(OBS, ACT), ["observation"], ["action"]),
                                _qnet(), action_low=-1.0, action_high=1.0)),
        _continuous, {"loss_actor", "loss_qvalue", "pred_value", "state_action_value_actor",
                      "next_state_value", "target_value", "td_error"},
        {"loss_actor": {"actor_network_params"}, "loss_qvalue": {"qvalue_network_params"}}),
    "SACLoss": Case(
        _seeded(lambda: SACLoss(_gaussian_actor(), _qnet())), _continuous,
        {"loss_actor", "loss_qvalue", "loss_alpha", "alpha", "entropy", "td_error"},
        {"loss_actor": {"actor_network_params"}, "loss_qvalue": {"qvalue_network_params"},
         "loss_alpha": {"entropy_coef"}}),
    "SACLoss-value_network": Case(
        _seeded(lambda: SACLoss(_gaussian_actor(), _qnet(), _critic())), _continuous,
        {"loss_actor", "loss_qvalue", "loss_value", "loss_alpha", "alpha", "entropy", "td_error"},
        {"loss_actor": {"actor_network_params"}, "loss_qvalue": {"qvalue_network_params"},
         "loss_value": {"value_network_params"}, "loss_alpha": {"entropy_coef"}}),
    "SACLoss-options": Case(
        _seeded(lambda: SACLoss(_gaussian_actor(), _qnet(), delay_actor=True,
                                skip_done_states=True, deactivate_vmap=True, reduction="sum",
                                separate_losses=True)), _continuous,
        {"loss_actor", "loss_qvalue", "loss_alpha", "alpha", "entropy", "td_error"},
        {"loss_actor": {"actor_network_params"}, "loss_qvalue": {"qvalue_network_params"},
         "loss_alpha": {"entropy_coef"}}),
    "TD3Loss-options": Case(
        _seeded(lambda: TD3Loss(TensorDictModule(nn.Linear(OBS, ACT), ["observation"], ["action"]),
                                _qnet(), action_low=-1.0, action_high=1.0, deactivate_vmap=True,
                                separate_losses=True, reduction="sum")),
        _continuous, {"loss_actor", "loss_qvalue", "pred_value", "state_action_value_actor",
                      "next_state_value", "target_value", "td_error"},
        {"loss_actor": {"actor_network_params"}, "loss_qvalue": {"qvalue_network_params"}}),
    "REDQLoss": Case(
        _seeded(lambda: REDQLoss(_gaussian_actor(), _qnet(), num_qvalue_nets=4)), _continuous,
        {"loss_actor", "loss_qvalue", "loss_alpha", "alpha", "entropy",
         "state_action_value_actor", "action_log_prob_actor", "next.state_value", "target_value"},
        {"loss_actor": {"actor_network_params"}, "loss_qvalue": {"qvalue_network_params"},
         "loss_alpha": {"entropy_coef"}}),
    "CrossQLoss": Case(
        _seeded(lambda: CrossQLoss(_gaussian_actor(), _qnet())), _continuous,
        {"loss_actor", "loss_qvalue", "loss_alpha", "alpha", "entropy"},
        {"loss_actor": {"actor_network_params"}, "loss_qvalue": {"qvalue_network_params"},
         "loss_alpha": {"entropy_coef"}}),
    "TQCLoss": Case(
        _seeded(lambda: TQCLoss(_gaussian_actor(), TensorDictModule(
            _Concat(n_out=5), in_keys=["observation", "action"], out_keys=["state_action_value"]),
            num_qvalue_nets=3, top_quantiles_to_drop_per_net=2)), _continuous,
        {"loss_actor", "loss_qvalue", "loss_alpha", "alpha", "entropy"},
        {"loss_actor": {"actor_network_params"}, "loss_qvalue": {"qvalue_network_params"},
         "loss_alpha": {"entropy_coef"}}),
    "DiscreteSACLoss": Case(
        _seeded(lambda: DiscreteSACLoss(
            _categorical_actor(),
            TensorDictModule(nn.Linear(OBS, N_ACTIONS), ["observation"], ["action_value"]),
            num_actions=N_ACTIONS)),
        _discrete, {"loss_actor", "loss_qvalue", "loss_alpha", "alpha", "entropy", "td_error"},
        {"loss_actor": {"actor_network_params"}, "loss_qvalue": {"qvalue_network_params"},
         "loss_alpha": {"entropy_coef"}}),
    "IQLLoss": Case(
        _seeded(lambda: IQLLoss(_gaussian_actor(), _qnet(), _critic(), expectile=0.7)),
        _continuous, {"loss_actor", "loss_qvalue", "loss_value", "entropy"},
        {"loss_actor": {"actor_network_params"}, "loss_qvalue": {"qvalue_network_params"},
         "loss_value": {"value_network_params"}}),
    "IQLLoss-options": Case(
        _seeded(lambda: IQLLoss(_gaussian_actor(), _qnet(), _critic(), num_qvalue_nets=3,
                                separate_losses=True, deactivate_vmap=True, reduction="sum",
                                loss_function="l2")),
        _continuous, {"loss_actor", "loss_qvalue", "loss_value", "entropy"},
        {"loss_actor": {"actor_network_params"}, "loss_qvalue": {"qvalue_network_params"},
         "loss_value": {"value_network_params"}}),
    "DiscreteIQLLoss": Case(
        _seeded(lambda: DiscreteIQLLoss(
            _categorical_actor(),
            TensorDictModule(nn.Linear(OBS, N_ACTIONS), ["observation"], ["state_action_value"]),
            _critic(), action_space="categorical", temperature=2.0)),
        _discrete, {"loss_actor", "loss_qvalue", "loss_value", "entropy"},
        {"loss_actor": {"actor_network_params"}, "loss_qvalue": {"qvalue_network_params"},
         "loss_value": {"value_network_params"}}),
    "CQLLoss": Case(
        _seeded(lambda: CQLLoss(_gaussian_actor(), _qnet(), num_random=3)), _continuous,
        {"loss_actor", "loss_actor_bc", "loss_qvalue", "loss_cql", "loss_alpha", "alpha",
         "entropy"},
        {"loss_actor": {"actor_network_params"}, "loss_actor_bc": {"actor_network_params"},
         "loss_qvalue": {"qvalue_network_params"}, "loss_cql": {"qvalue_network_params"},
         "loss_alpha": {"entropy_coef"}}),
    "CQLLoss-options": Case(
        _seeded(lambda: CQLLoss(_gaussian_actor(), _qnet(), num_random=2, with_lagrange=True,
                                lagrange_thresh=0.5, max_q_backup=True, delay_actor=True,
                                deterministic_backup=False, reduction="sum")), _continuous,
        {"loss_actor", "loss_actor_bc", "loss_qvalue", "loss_cql", "loss_alpha",
         "loss_alpha_prime", "alpha", "entropy"},
        {"loss_actor": {"actor_network_params"}, "loss_actor_bc": {"actor_network_params"},
         "loss_qvalue": {"qvalue_network_params"}, "loss_cql": {"qvalue_network_params"},
         "loss_alpha": {"entropy_coef"}, "loss_alpha_prime": {"log_alpha_prime"}}),
    "DiscreteCQLLoss": Case(
        _seeded(lambda: DiscreteCQLLoss(QValueActor(nn.Linear(OBS, N_ACTIONS),
                                                    action_space="categorical"))),
        _discrete, {"loss_qvalue", "loss_cql", "pred_value", "target_value", "td_error"},
        {"loss_qvalue": {"value_network_params"}, "loss_cql": {"value_network_params"}}),
    "TD3BCLoss": Case(
        _seeded(lambda: TD3BCLoss(TensorDictModule(nn.Linear(OBS, ACT), ["observation"],
                                                   ["action"]), _qnet(), bounds=(-1.0, 1.0))),
        _continuous, {"loss_actor", "loss_qvalue", "bc_loss", "lmbd", "pred_value",
                      "state_action_value_actor", "next_state_value", "target_value", "td_error"},
        {"loss_actor": {"actor_network_params"}, "loss_qvalue": {"qvalue_network_params"}}),
    "A2CLoss": Case(
        _on_policy(A2CLoss), _rollout, {"loss_objective", "loss_entropy", "loss_critic", "entropy"},
        {"loss_objective": {"actor_network_params"}, "loss_entropy": {"actor_network_params"},
         "loss_critic": {"critic_network_params"}}),
    "ClipPPOLoss": Case(
        _on_policy(ClipPPOLoss), _rollout,
        {"loss_objective", "loss_entropy", "loss_critic", "entropy", "clip_fraction", "kl_approx",
         "ESS", "explained_variance", "max_ratio", "mean_ratio"},
        {"loss_objective": {"actor_network_params"}, "loss_entropy": {"actor_network_params"},
         "loss_critic": {"critic_network_params"}}),
    "KLPENPPOLoss": Case(
        _on_policy(KLPENPPOLoss), _rollout,
        {"loss_objective", "loss_entropy", "loss_critic", "entropy", "kl", "kl_approx",
         "explained_variance", "ESS", "beta", "max_ratio", "mean_ratio"},
        {"loss_objective": {"actor_network_params"}, "loss_entropy": {"actor_network_params"},
         "loss_critic": {"critic_network_params"}}),
    "ClipPPOLoss-options": Case(
        _on_policy(ClipPPOLoss, reduction="sum", max_importance_ratio=5.0), _rollout,
        {"loss_objective", "loss_entropy", "loss_critic", "entropy", "clip_fraction", "kl_approx",
         "ESS", "explained_variance", "max_ratio", "mean_ratio"},
        {"loss_objective": {"actor_network_params"}, "loss_entropy": {"actor_network_params"},
         "loss_critic": {"critic_network_params"}}),
    "PPOLoss": Case(
        _on_policy(PPOLoss), _rollout,
        {"loss_objective", "loss_entropy", "loss_critic", "entropy", "kl_approx", "ESS",
         "explained_variance", "max_ratio", "mean_ratio"},
        {"loss_objective": {"actor_network_params"}, "loss_entropy": {"actor_network_params"},
         "loss_critic": {"critic_network_params"}}),
    "ReinforceLoss": Case(
        _on_policy(ReinforceLoss), _rollout, {"loss_actor", "loss_value"},
        {"loss_actor": {"actor_network_params"}, "loss_value": {"critic_network_params"}}),
    "ReinforceLoss-delay_value": Case(
        _on_policy(ReinforceLoss, delay_value=True), _rollout, {"loss_actor", "loss_value"},
        {"loss_actor": {"actor_network_params"}, "loss_value": {"critic_network_params"}}),
    "QMixerLoss-VDN": Case(
        _seeded(lambda: QMixerLoss(_local_q(), VDNMixer(2), action_space="categorical")),
        _agents, {"loss"}, {"loss": {"local_value_network_params"}}, ("agents", "action")),
    "QMixerLoss-QMIX": Case(
        _seeded(lambda: QMixerLoss(_local_q(), QMixer((5,), 4, 2), action_space="categorical")),
        _agents, {"loss"}, {"loss": {"local_value_network_params", "mixer_network_params"}},
        ("agents", "action")),
}

NAMES = sorted(CASES)


def _targets(loss: LossModule) -> dict[str, TensorDictBase]:
    return {name: getattr(loss, f"target_{name}_params") for name in loss.target_network_names}


@pytest.mark.parametrize("name", NAMES)
def test_output_keys(name):
    case = CASES[name]
    out = case.build()(case.data())
    assert set(out.keys()) == case.keys
    for key, value in out.items():
        if key == "loss" or key.startswith("loss_"):
            assert value.requires_grad, f"loss term {key} carries no gradient"
        else:
            assert not value.requires_grad, f"diagnostic {key} must be detached"
        assert torch.isfinite(value).all(), key


@pytest.mark.parametrize("name", NAMES)
def test_gradient_routing(name):
    case = CASES[name]
    loss = case.build()
    out = loss(case.data())
    named = list(loss.named_parameters())
    assert named, "a loss must expose trainable parameters"
    for term, owners in case.routes.items():
        grads = torch.autograd.grad(out[term], [p for _, p in named], allow_unused=True,
                                    retain_graph=True)
        reached = {n for (n, _), g in zip(named, grads) if g is not None and g.abs().sum() > 0}
        for owner in owners:
            assert any(n.startswith(owner) for n in reached), f"{term} does not train {owner}"
        stray = {n for n in reached if not any(n.startswith(o) for o in owners)}
        assert not stray, f"{term} sends gradient to {sorted(stray)}"


@pytest.mark.parametrize("name", NAMES)
def test_targets_untouched_by_backward(name):
    case = CASES[name]
    loss = case.build()
    targets = _targets(loss)
    before = {k: v.clone() for k, v in targets.items()}
    total_loss(loss(case.data())).backward()
    for key, params in targets.items():
        assert all(p.grad is None and not p.requires_grad for p in params.values(True, True))
        assert (params == before[key]).all(), f"target {key} moved"
    trainable = {id(p) for p in loss.parameters()}
    assert not any(id(p) in trainable for t in targets.values() for p in t.values(True, True))


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_given_a_seed(name):
    case = CASES[name]
    outs = []
    for _ in range(2):
        loss = case.build()
        torch.manual_seed(123)
        outs.append(loss(case.data()).detach())
    torch.testing.assert_close(outs[0].to_dict(), outs[1].to_dict())


@pytest.mark.parametrize("name", NAMES)
def test_missing_action_raises_key_error(name):
    case = CASES[name]
    loss = case.build()
    with pytest.raises(KeyError, match="action"):
        loss(case.data().exclude(case.action_key))


@pytest.mark.parametrize("name", [n for n in NAMES if CASES[n].reads_reward])
def test_missing_reward_raises_key_error(name):
    case = CASES[name]
    loss = case.build()
    with pytest.raises(KeyError, match="reward"):
        loss(case.data().exclude(("next", "reward")))
