"""On-policy losses on a multi-agent group (TorchRL's MAPPO / IPPO layout): per-agent
ratios and advantages (``[*batch, n_agents, 1]``), GAE over per-agent rewards with the
shared done expanded to the agents, and the value estimator called with the loss's critic
parameters, as TorchRL's multi-agent PPO tutorial does."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule

from streamrl.modules import MultiAgentMLP, ProbabilisticActor
from streamrl.objectives import A2CLoss, ClipPPOLoss, ValueEstimators

N, OBS, ACT = 3, 4, 2


def _actor() -> ProbabilisticActor:
    net = torch.nn.Sequential(
        MultiAgentMLP(OBS, 2 * ACT, N, centralized=False, share_params=True, num_cells=[16]),
        NormalParamExtractor())
    module = TensorDictModule(net, in_keys=[("agents", "observation")],
                              out_keys=[("agents", "loc"), ("agents", "scale")])
    return ProbabilisticActor(module, in_keys=[("agents", "loc"), ("agents", "scale")],
                              out_keys=[("agents", "action")],
                              distribution_class=torch.distributions.Normal,
                              return_log_prob=True)


def _critic() -> TensorDictModule:
    net = MultiAgentMLP(OBS, 1, N, centralized=True, share_params=True, num_cells=[16])
    return TensorDictModule(net, in_keys=[("agents", "observation")],
                            out_keys=[("agents", "state_value")])


def _rollout(batch=(2, 5)) -> TensorDict:
    torch.manual_seed(0)
    agents = TensorDict({"observation": torch.randn(*batch, N, OBS)}, [*batch, N])
    nxt = TensorDict({"observation": torch.randn(*batch, N, OBS),
                      "reward": torch.randn(*batch, N, 1)}, [*batch, N])
    done = torch.zeros(*batch, 1, dtype=torch.bool)
    done[:, -1] = True
    return TensorDict({"agents": agents, "next": {"agents": nxt, "done": done,
                                                   "terminated": done.clone()}}, list(batch))


def _loss(cls=ClipPPOLoss, **kwargs):
    torch.manual_seed(1)
    actor = _actor()
    loss = cls(actor, _critic(), **kwargs)
    loss.actor = actor  # the live module, for the tests to act with
    loss.set_keys(reward=("agents", "reward"), action=("agents", "action"),
                  sample_log_prob=("agents", "action_log_prob"),
                  value=("agents", "state_value"), done=("agents", "done"),
                  terminated=("agents", "terminated"))
    loss.make_value_estimator(ValueEstimators.GAE, gamma=0.9, lmbda=0.8)
    return loss


def _expand_done(td: TensorDict) -> None:
    shape = td.get_item_shape(("next", "agents", "reward"))
    for key in ("done", "terminated"):
        td.set(("next", "agents", key), td.get(("next", key)).unsqueeze(-1).expand(shape))


def test_gae_runs_per_agent_and_takes_the_losss_critic_params():
    loss = _loss()
    data = _rollout()
    with torch.no_grad():
        loss.actor(data)
    _expand_done(data)
    plain = data.clone()
    with torch.no_grad():
        loss.value_estimator(plain)
        loss.value_estimator(data, params=loss.critic_network_params,
                             target_params=loss.target_critic_network_params)
    assert data["advantage"].shape == (2, 5, N, 1)
    torch.testing.assert_close(data["advantage"], plain["advantage"])
    # a different set of parameters gives different values: the params are used
    other = loss.critic_network_params.clone().apply(torch.zeros_like)
    moved = data.exclude("advantage", "value_target")
    with torch.no_grad():
        loss.value_estimator(moved, params=other, target_params=other)
    assert (moved["agents", "state_value"] == 0).all()


def test_ppo_takes_one_ratio_per_agent():
    loss = _loss(clip_epsilon=0.2, entropy_coeff=0.0, normalize_advantage=False)
    data = _rollout().reshape(-1)
    with torch.no_grad():
        loss.actor(data)
    stored = data["agents", "action_log_prob"].clone()  # [10, N, ACT]
    # agent 0 was acted by a policy that made its action more likely, agent 2 less
    data["agents", "action_log_prob"] = stored + torch.tensor([[0.5], [0.0], [-0.5]])
    data["advantage"] = torch.linspace(-1, 1, 10 * N).reshape(10, N, 1)
    data["value_target"] = torch.zeros(10, N, 1)
    out = loss(data)
    with torch.no_grad():
        dist = loss.actor.get_dist(data)
        log_prob = dist.log_prob(data["agents", "action"]).sum(-1)  # [10, N]
    ratio = (log_prob - data["agents", "action_log_prob"].sum(-1)).exp()
    adv = data["advantage"].squeeze(-1)
    expected = -torch.minimum(ratio * adv, ratio.clamp(0.8, 1.2) * adv).mean()
    torch.testing.assert_close(out["loss_objective"], expected)
    clipped = ((ratio - 1).abs() > 0.2).float().mean()
    torch.testing.assert_close(out["clip_fraction"], clipped)
    out["loss_objective"].backward()


def test_a2c_and_the_critic_loss_keep_the_agent_dim():
    loss = _loss(A2CLoss, reduction="none")
    data = _rollout()
    with torch.no_grad():
        loss.actor(data)
    _expand_done(data)
    out = loss(data.reshape(-1))
    assert out["loss_objective"].shape == (10, N)
    assert out["loss_critic"].shape == (10, N)


def test_a_joint_advantage_still_sums_the_agents_log_probs():
    """Without agent dims in the advantage (one per sample), the log-probs of the group are
    summed: one joint ratio per sample, the single-agent behaviour."""
    loss = _loss(entropy_coeff=0.0)
    data = _rollout().reshape(-1)
    with torch.no_grad():
        loss.actor(data)
    data["advantage"] = torch.ones(10, 1)
    assert loss.sample_shape(data) == (10,)
    _, log_prob = loss.log_prob(data)
    assert log_prob.shape == (10,)


def test_a_stored_log_prob_of_the_wrong_shape_is_named():
    loss = _loss()
    data = _rollout().reshape(-1)
    with torch.no_grad():
        loss.actor(data)
    data["advantage"] = torch.ones(10, N, 1)
    data["joint_log_prob"] = torch.zeros(10, 1)  # one per sample, not one per agent
    loss.set_keys(sample_log_prob="joint_log_prob")
    with pytest.raises(ValueError, match=r"'joint_log_prob' must start with the sample "
                                         r"shape \(10, 3\), found \(10, 1\)"):
        loss(data)
