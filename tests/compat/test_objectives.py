"""Compatibility with TorchRL 0.14's ``torchrl.objectives`` for the losses added in issue 12.

Each class is imported from the path TorchRL documents it at, built with the constructor
arguments TorchRL documents (names and defaults), and its main method is run once.
Names TorchRL documents there that streamrl does not provide are listed in
docs/torchrl_differences.md.
"""

import inspect

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn

from streamrl.modules import (
    DistributionalQValueActor,
    DistributionalQValueModule,
    ProbabilisticActor,
    QMixer,
    QValueActor,
    QValueModule,
    TanhNormal,
    VDNMixer,
)
from streamrl.objectives import (
    BCLoss,
    CrossQLoss,
    DistributionalDQNLoss,
    DQNLoss,
    PPOLoss,
    QMixerLoss,
    REDQLoss,
    ReinforceLoss,
    SACLoss,
    TQCLoss,
    ValueEstimators,
)
from streamrl.objectives.value import VTrace
from streamrl.objectives.value.advantages import MultiAgentGAE
from streamrl.objectives.value.functional import vtrace_advantage_estimate

N_OBS, N_ACT = 3, 4


class _Q(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(N_OBS + N_ACT, 1)

    def forward(self, obs, act):
        return self.linear(torch.cat([obs, act], -1))


def _actor():
    module = TensorDictModule(nn.Sequential(nn.Linear(N_OBS, 2 * N_ACT), NormalParamExtractor()),
                              in_keys=["observation"], out_keys=["loc", "scale"])
    return ProbabilisticActor(module=module, in_keys=["loc", "scale"],
                              distribution_class=TanhNormal, return_log_prob=True)


def _qvalue():
    return TensorDictModule(_Q(), in_keys=["observation", "action"],
                            out_keys=["state_action_value"])


def _continuous(batch=(2,)):
    return TensorDict({
        "observation": torch.randn(*batch, N_OBS), "action": torch.rand(*batch, N_ACT) * 2 - 1,
        ("next", "done"): torch.zeros(*batch, 1, dtype=torch.bool),
        ("next", "terminated"): torch.zeros(*batch, 1, dtype=torch.bool),
        ("next", "reward"): torch.randn(*batch, 1),
        ("next", "observation"): torch.randn(*batch, N_OBS),
    }, batch)


def _defaults(cls):
    return {n: p.default for n, p in inspect.signature(cls).parameters.items()
            if p.default is not inspect.Parameter.empty}


def test_redq_documented_constructor():
    d = _defaults(REDQLoss)
    assert (d["num_qvalue_nets"], d["sub_sample_len"], d["loss_function"], d["alpha_init"],
            d["min_alpha"], d["max_alpha"], d["fixed_alpha"], d["target_entropy"],
            d["delay_qvalue"]) == (10, 2, "smooth_l1", 1.0, 0.1, 10.0, False, "auto", True)
    out = REDQLoss(_actor(), _qvalue())(_continuous())
    assert {"loss_actor", "loss_qvalue", "loss_alpha", "alpha", "entropy",
            "state_action_value_actor", "action_log_prob_actor", "next.state_value",
            "target_value"} == set(out.keys())


def test_crossq_documented_constructor():
    d = _defaults(CrossQLoss)
    assert (d["num_qvalue_nets"], d["loss_function"], d["alpha_init"], d["min_alpha"],
            d["max_alpha"], d["fixed_alpha"], d["target_entropy"]) == (
        2, "smooth_l1", 1.0, None, None, False, "auto")
    out = CrossQLoss(_actor(), _qvalue())(_continuous())
    assert set(out.keys()) == {"alpha", "entropy", "loss_actor", "loss_alpha", "loss_qvalue"}


def test_sac_with_value_network():
    value = TensorDictModule(nn.Linear(N_OBS, 1), ["observation"], ["state_value"])
    loss = SACLoss(_actor(), _qvalue(), value_network=value, delay_value=True)
    assert "loss_value" in loss(_continuous()).keys()
    assert "value_network" in loss.target_network_names
    assert _defaults(SACLoss)["value_network"] is None


def test_distributional_dqn_documented_constructor():
    nbins = 3
    actor = DistributionalQValueActor(
        module=nn.Sequential(nn.Linear(N_OBS, nbins * N_ACT), nn.Unflatten(-1, (nbins, N_ACT))),
        support=torch.arange(nbins, dtype=torch.float), action_space="one-hot")
    td = actor(TensorDict({"observation": torch.randn(5, N_OBS)}, [5]))
    assert td["action"].shape == (5, N_ACT) and td["action_value"].shape == (5, nbins, N_ACT)
    d = _defaults(DistributionalDQNLoss)
    assert d["delay_value"] is True and d["reduction"] is None
    loss = DistributionalDQNLoss(actor, gamma=0.99)
    data = _continuous((5,))
    data["action"] = td["action"]
    assert set(loss(data).keys()) == {"loss"}
    module = DistributionalQValueModule("categorical", support=torch.tensor([-1, 0.0, 1.0]),
                                        action_value_key="my_action_value")
    value = torch.full((3, 4), -100.0)
    value[2, 2] = 0.0
    assert module(TensorDict({"my_action_value": value.log_softmax(-2)}, []))["action"] == 2


def test_qmixer_documented_constructor():
    n_agents = 4
    qnet = QValueActor(
        TensorDictModule(nn.Linear(10, 3), in_keys=[("agents", "observation")],
                         out_keys=[("agents", "action_value")]),
        action_space="categorical", action_value_key=("agents", "action_value"))
    qmixer = TensorDictModule(
        module=QMixer(state_shape=(64, 64, 3), mixing_embed_dim=32, n_agents=n_agents,
                      device="cpu"),
        in_keys=[("agents", "chosen_action_value"), "state"], out_keys=["chosen_action_value"])
    loss = QMixerLoss(qnet, qmixer, action_space="categorical")
    agents = TensorDict({"observation": torch.zeros(32, n_agents, 10),
                         "action": torch.zeros(32, n_agents, dtype=torch.long)}, [32, n_agents])
    td = TensorDict({
        "agents": agents, "state": torch.zeros(32, 64, 64, 3),
        "next": TensorDict({
            "agents": TensorDict({"observation": torch.zeros(32, n_agents, 10)},
                                 [32, n_agents]),
            "state": torch.zeros(32, 64, 64, 3), "reward": torch.zeros(32, 1),
            "done": torch.zeros(32, 1, dtype=torch.bool),
            "terminated": torch.zeros(32, 1, dtype=torch.bool)}, [32]),
    }, [32])
    assert set(loss(td).keys()) == {"loss"}
    assert VDNMixer(n_agents=n_agents, device="cpu")(torch.ones(2, n_agents, 1)).tolist() == [
        [4.0], [4.0]]
    assert _defaults(QMixerLoss)["loss_function"] == "l2"


def test_reinforce_delay_value_and_qvalue_keys():
    critic = TensorDictModule(nn.Linear(N_OBS, 1), ["observation"], ["state_value"])
    assert _defaults(ReinforceLoss)["delay_value"] is False
    loss = ReinforceLoss(_actor(), critic, delay_value=True)
    assert loss.target_network_names == ("critic_network",)
    assert QValueModule(action_space="categorical", action_value_key=None).action_value_key == (
        "action_value")
    actor = QValueActor(nn.Linear(N_OBS, 2), action_value_key=None, action_space="one-hot")
    assert DQNLoss(actor, action_space="one-hot").action_space == "one_hot"


@pytest.mark.parametrize("rho_thresh,c_thresh", [(1.0, 1.0), (2.0, 0.5)])
def test_vtrace(rho_thresh, c_thresh):
    assert ValueEstimators.VTrace.name == "VTrace"
    d = _defaults(VTrace)
    assert (d["rho_thresh"], d["c_thresh"], d["average_adv"], d["differentiable"]) == (
        1.0, 1.0, False, False)
    T = 5
    adv, target = vtrace_advantage_estimate(
        0.9, torch.zeros(1, T, 1), torch.zeros(1, T, 1), torch.zeros(1, T, 1),
        torch.zeros(1, T, 1), torch.ones(1, T, 1), torch.zeros(1, T, 1, dtype=torch.bool),
        rho_thresh=rho_thresh, c_thresh=c_thresh)
    assert adv.shape == target.shape == (1, T, 1)


def test_ppo_loss_documented_constructor():
    d = _defaults(PPOLoss)
    assert (d["entropy_bonus"], d["samples_mc_entropy"], d["entropy_coeff"],
            d["log_explained_variance"], d["loss_critic_type"], d["normalize_advantage"],
            d["separate_losses"], d["clip_value"]) == (
        True, 1, None, True, "smooth_l1", False, False, None)
    value = TensorDictModule(nn.Linear(N_OBS, 1), ["observation"], ["state_value"])
    loss = PPOLoss(_actor(), value, samples_mc_entropy=2, separate_losses=True)
    loss.make_value_estimator(ValueEstimators.GAE, gamma=0.9, lmbda=0.95)
    data = _continuous(batch=(2, 3))
    data["action_log_prob"] = torch.randn(2, 3)
    out = loss(data)
    assert {"entropy", "explained_variance", "kl_approx", "loss_critic", "loss_entropy",
            "loss_objective"} <= set(out.keys())


@pytest.mark.parametrize("name, kwargs", [
    ("TD0Estimate", {}), ("TD1Estimate", {}), ("TDLambdaEstimate", {"lmbda": 0.95}),
])
def test_deprecated_estimate_names(name, kwargs):
    import streamrl.objectives.value as value_module
    from streamrl import StreamRLWarning

    cls = getattr(value_module, name)
    assert name in value_module.__all__ and cls.__doc__
    value = TensorDictModule(nn.Linear(N_OBS, 1), ["observation"], ["state_value"])
    with pytest.warns(StreamRLWarning):
        estimator = cls(gamma=0.99, value_network=value, differentiable=False, **kwargs)
    out = estimator(_continuous(batch=(2, 3)))
    assert out["advantage"].shape == out["value_target"].shape == (2, 3, 1)


@pytest.mark.parametrize("path", ["streamrl.objectives", "streamrl.objectives.utils"])
def test_group_optimizers_and_kl_adaptive_lr(path):
    import importlib

    module = importlib.import_module(path)
    params = [nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    d = _defaults(module.KLAdaptiveLR)
    assert (d["factor"], d["min_lr"], d["max_lr"]) == (1.5, 1e-5, 1e-2)
    scheduler = module.KLAdaptiveLR(optimizer, target_kl=0.01, factor=2.0)
    scheduler.step(kl=0.05)
    assert optimizer.param_groups[0]["lr"] == 0.0005
    other = torch.optim.Adam([nn.Parameter(torch.zeros(2))], lr=1e-2)
    grouped = module.group_optimizers(optimizer, other)
    assert isinstance(grouped, torch.optim.Adam) and len(grouped.param_groups) == 2


def test_tqc_documented_constructor():
    from streamrl.modules import MLP, ValueOperator

    d = _defaults(TQCLoss)
    assert (d["num_qvalue_nets"], d["top_quantiles_to_drop_per_net"], d["alpha_init"],
            d["min_alpha"], d["max_alpha"], d["fixed_alpha"], d["target_entropy"],
            d["delay_qvalue"]) == (5, 2, 1.0, None, None, False, "auto", True)
    critic = ValueOperator(MLP(in_features=N_OBS + N_ACT, out_features=8, num_cells=[]),
                           in_keys=["observation", "action"])
    loss = TQCLoss(_actor(), critic, num_qvalue_nets=2)
    loss.make_value_estimator(gamma=0.99)
    batch = _continuous(batch=(4,))
    output = loss(batch)
    assert output.get("loss_qvalue").shape == torch.Size([])
    assert set(output.keys()) == {"loss_actor", "loss_qvalue", "loss_alpha", "alpha", "entropy"}
    assert batch["td_error"].shape == (4,)


def test_step_mdp_from_objectives_utils():
    from tensordict import TensorDict

    from streamrl.envs.utils import step_mdp
    from streamrl.objectives.utils import step_mdp as from_objectives

    assert from_objectives is step_mdp
    td = TensorDict({"observation": torch.zeros(2), "action": torch.ones(1),
                     "next": {"observation": torch.ones(2), "reward": torch.ones(1)}}, [])
    assert sorted(from_objectives(td).keys()) == ["observation"]


def test_bc_loss_documented_constructor():
    from streamrl.objectives.bc import BCLoss as FromPath

    assert FromPath is BCLoss
    d = _defaults(BCLoss)
    assert (d["loss_function"], d["reduction"]) == (None, None)
    actor = TensorDictModule(nn.Linear(N_OBS, N_ACT), ["observation"], ["action"])
    loss = BCLoss(actor, loss_function="l1", reduction="sum")
    data = TensorDict({"observation": torch.randn(5, N_OBS), "action": torch.randn(5, N_ACT)}, [5])
    assert loss(data)["loss_bc"].shape == ()
    assert loss.in_keys == ["observation", "action"] and loss.out_keys == ["loss_bc"]
    loss.set_keys(pad_mask="is_pad")
    data["is_pad"] = torch.zeros(5, dtype=torch.bool)
    loss(observation=data["observation"], action=data["action"], is_pad=data["is_pad"]).backward()
    likelihood = BCLoss(_actor())
    assert likelihood(TensorDict({"observation": torch.randn(5, N_OBS),
                                  "action": torch.rand(5, N_ACT) * 2 - 1}, [5]))["loss_bc"].isfinite()


def test_multiagent_gae_and_magae():
    assert _defaults(MultiAgentGAE)["agent_dim"] == -2
    value = TensorDictModule(nn.Linear(N_OBS, 1), ["observation"], ["state_value"])
    est = MultiAgentGAE(gamma=0.9, lmbda=0.95, value_network=value)
    td = TensorDict({"observation": torch.randn(4, 2, N_OBS),
                     "next": {"observation": torch.randn(4, 2, N_OBS), "reward": torch.randn(4, 1),
                              "done": torch.zeros(4, 1, dtype=torch.bool)}}, [4])
    assert est(td)["advantage"].shape == (4, 2, 1)
    ppo = PPOLoss(_actor(), TensorDictModule(nn.Linear(N_OBS, 1), ["observation"],
                                             ["state_value"]))
    ppo.make_value_estimator(ValueEstimators.MAGAE)
    assert isinstance(ppo.value_estimator, MultiAgentGAE)


def test_dqn_losses_documented_arguments():
    d = _defaults(DQNLoss)
    assert (d["loss_function"], d["delay_value"], d["double_dqn"], d["action_space"],
            d["reduction"]) == ("l2", True, False, None, None)
    loss = DQNLoss(QValueActor(nn.Linear(N_OBS, 4), action_space="categorical"), reduction="none")
    td = TensorDict({"observation": torch.randn(3, N_OBS), "action": torch.tensor([0, 1, 3]),
                     "next": {"observation": torch.randn(3, N_OBS), "reward": torch.randn(3, 1),
                              "done": torch.zeros(3, 1, dtype=torch.bool)}}, [3])
    assert loss(td)["loss"].shape == (3,)
    for name in ("GAE", "MAGAE", "VTrace"):
        with pytest.raises(NotImplementedError):
            loss.make_value_estimator(getattr(ValueEstimators, name))
    loss.reset_parameters_recursive()
    assert loss.target_value_network_params is not None
    assert _defaults(DistributionalDQNLoss)["reduction"] is None


def test_sac_sota_style_construction():
    """A TorchRL sota-style SACLoss: delay_actor / action_spec and the alpha optimizer built
    from ``loss_module.log_alpha``."""
    from streamrl.data import Bounded
    from streamrl.objectives import SoftUpdate, group_optimizers

    spec = Bounded(-1.0, 1.0, shape=(N_ACT,))
    loss = SACLoss(actor_network=_actor(), qvalue_network=_qvalue(), num_qvalue_nets=2,
                   loss_function="l2", delay_actor=False, delay_qvalue=True, alpha_init=1.0,
                   action_spec=spec, separate_losses=False, reduction="mean",
                   skip_done_states=False, deactivate_vmap=False,
                   use_prioritized_weights="auto", scalar_output_mode=None)
    loss.make_value_estimator(gamma=0.99)
    assert float(loss.target_entropy) == -N_ACT
    optim = group_optimizers(
        torch.optim.Adam(list(loss.actor_network_params.flatten_keys().values())),
        torch.optim.Adam(list(loss.qvalue_network_params.flatten_keys().values())),
        torch.optim.Adam([loss.log_alpha]))
    out = loss(_continuous())
    (out["loss_actor"] + out["loss_qvalue"] + out["loss_alpha"]).backward()
    optim.step()
    SoftUpdate(loss, eps=0.995).step()


def test_documented_option_defaults_of_the_off_policy_losses():
    from streamrl.objectives import DDPGLoss, DiscreteSACLoss, HardUpdate, TD3Loss

    expected = {"separate_losses": False, "reduction": None}
    for cls in (SACLoss, DiscreteSACLoss, TD3Loss, DDPGLoss, REDQLoss, CrossQLoss, TQCLoss):
        d = _defaults(cls)
        assert {k: d[k] for k in expected} == expected, cls.__name__
    for cls in (SACLoss, DiscreteSACLoss, TD3Loss, REDQLoss, CrossQLoss, TQCLoss):
        assert _defaults(cls)["deactivate_vmap"] is False, cls.__name__
    for cls in (SACLoss, DiscreteSACLoss, TD3Loss, DDPGLoss, TQCLoss):
        assert _defaults(cls)["use_prioritized_weights"] == "auto", cls.__name__
    assert _defaults(SACLoss)["delay_actor"] is False and _defaults(TD3Loss)["delay_actor"]
    assert _defaults(HardUpdate)["value_network_update_interval"] == 1000
    td3 = TD3Loss(_actor_det(), _qvalue(), action_spec=None, bounds=(-1.0, 1.0),
                  deactivate_vmap=True, use_prioritized_weights=False)
    assert set(td3(_continuous()).keys()) >= {"loss_actor", "loss_qvalue"}
    # TorchRL's TD3Loss.actor_loss / value_loss(tensordict) -> (loss, metadata)
    loss_actor, _ = td3.actor_loss(_continuous())
    loss_value, metadata = td3.value_loss(_continuous())
    assert loss_actor.shape == loss_value.shape == () and "td_error" in metadata


def _actor_det():
    return TensorDictModule(nn.Sequential(nn.Linear(N_OBS, N_ACT), nn.Tanh()),
                            in_keys=["observation"], out_keys=["action"])


def test_on_policy_documented_options():
    from streamrl.objectives import A2CLoss, ClipPPOLoss, KLPENPPOLoss

    critic = TensorDictModule(nn.Linear(N_OBS, 1), ["observation"], ["state_value"])
    data = TensorDict({"observation": torch.randn(3, N_OBS),
                       "action": torch.rand(3, N_ACT) - 0.5,
                       "action_log_prob": torch.zeros(3), "advantage": torch.randn(3, 1),
                       "value_target": torch.randn(3, 1), "state_value": torch.zeros(3, 1)},
                      [3])
    for cls in (PPOLoss, ClipPPOLoss, KLPENPPOLoss):
        d = _defaults(cls)
        assert d["actor_network"] is None and d["normalize_advantage_exclude_dims"] == ()
        loss = cls(actor=_actor(), critic=critic, normalize_advantage=True,
                   normalize_advantage_exclude_dims=(), reduction="none",
                   max_importance_ratio=10.0, functional=True)
        assert loss(data.clone())["loss_objective"].shape == (3,)
    assert _defaults(KLPENPPOLoss)["samples_mc_kl"] == 1
    a2c = A2CLoss(actor=_actor(), critic=critic, samples_mc_entropy=2, separate_losses=True,
                  reduction="sum", clip_value=0.5)
    assert a2c(data.clone())["loss_critic"].shape == ()


def test_on_policy_functional_device_and_coeff_buffers():
    from dataclasses import asdict

    from streamrl.objectives import A2CLoss, ClipPPOLoss, LossModule
    from streamrl.objectives.value import GAE

    critic = TensorDictModule(nn.Linear(N_OBS, 1), ["observation"], ["state_value"])
    assert _defaults(PPOLoss)["functional"] is True and _defaults(PPOLoss)["device"] is None
    loss = ClipPPOLoss(_actor(), critic, functional=False, device=torch.device("cpu"))
    assert loss.functional is False and loss.critic_network is critic
    loss.entropy_coeff = 0.003
    assert loss.entropy_coeff.item() == pytest.approx(0.003)
    assert {"entropy_coeff", "clip_epsilon"} <= ClipPPOLoss._all_schedulable_buffers
    data = _continuous(batch=(2, 3))
    data["action_log_prob"] = torch.randn(2, 3)
    assert "loss_objective" in loss(data).keys()
    assert A2CLoss(_actor(), critic, functional=False).actor_network_params is None
    d = _defaults(ReinforceLoss)
    assert (d["separate_losses"], d["functional"], d["reduction"], d["clip_value"]) == (
        False, True, None, None)
    reinforce = ReinforceLoss(actor=_actor(), critic=critic, functional=False,
                              reduction="mean", clip_value=0.5)
    assert set(reinforce(_continuous(batch=(2, 3))).keys()) >= {"loss_actor", "loss_value"}
    base = LossModule()
    base.register_coeff_buffer("coeff", 0.5, device="cpu", dtype=torch.float32)
    assert "coeff" in base.state_dict()
    assert asdict(GAE._AcceptedKeys())["advantage"] == "advantage"
