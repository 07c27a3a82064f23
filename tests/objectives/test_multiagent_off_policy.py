"""DDPG and SAC on a multi-agent group (TorchRL's MADDPG tutorial and MASAC layouts):
per-agent rewards and done flags, a centralised critic reading every agent's observation and
action, one value term (and one log-prob) per agent, and no root ``action`` needed when the
critic reads the group's."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn

from streamrl.data.specs import Bounded, Composite
from streamrl.modules import (
    MultiAgentMLP,
    NormalParamExtractor,
    ProbabilisticActor,
    TanhModule,
    TanhNormal,
)
from streamrl.objectives import DDPGLoss, SACLoss, ValueEstimators

B, N, OBS, ACT = 6, 3, 4, 2


class _Cat(nn.Module):
    def forward(self, obs, action):
        return torch.cat([obs, action], dim=-1)


def _nets():
    torch.manual_seed(0)
    spec = Bounded(-1.0, 1.0, shape=(N, ACT))
    policy = TensorDictSequential(
        TensorDictModule(MultiAgentMLP(OBS, ACT, N, centralized=False, share_params=True,
                                       num_cells=[16]),
                         in_keys=[("agent", "observation")], out_keys=[("agent", "param")]),
        TanhModule(in_keys=[("agent", "param")], out_keys=[("agent", "action")], spec=spec))
    critic = TensorDictSequential(
        TensorDictModule(_Cat(), in_keys=[("agent", "observation"), ("agent", "action")],
                         out_keys=[("agent", "obs_action")]),
        TensorDictModule(MultiAgentMLP(OBS + ACT, 1, N, centralized=True, share_params=True,
                                       num_cells=[16]),
                         in_keys=[("agent", "obs_action")],
                         out_keys=[("agent", "state_action_value")]))
    return policy, critic


def _batch():
    torch.manual_seed(1)
    terminated = torch.zeros(B, N, 1, dtype=torch.bool)
    terminated[0] = True
    nxt = TensorDict({"observation": torch.randn(B, N, OBS), "reward": torch.randn(B, N, 1),
                      "done": terminated.clone(), "terminated": terminated}, [B, N])
    return TensorDict({"agent": TensorDict({"observation": torch.randn(B, N, OBS),
                                            "action": torch.rand(B, N, ACT) * 2 - 1}, [B, N]),
                       "next": {"agent": nxt}}, [B])


def _loss():
    policy, critic = _nets()
    loss = DDPGLoss(actor_network=policy, value_network=critic, delay_value=True,
                    loss_function="l2")
    loss.set_keys(state_action_value=("agent", "state_action_value"),
                  reward=("agent", "reward"), done=("agent", "done"),
                  terminated=("agent", "terminated"))
    loss.make_value_estimator(ValueEstimators.TD0, gamma=0.9)
    return loss, policy, critic


def test_one_value_term_per_agent_against_a_hand_computed_target():
    loss, policy, critic = _loss()
    data = _batch()
    out = loss(data)
    assert out["pred_value"].shape == (B, N) and out["td_error"].shape == (B, N)
    with torch.no_grad():  # the targets start as copies of the live networks
        nxt = policy(data["next"].clone())
        next_q = critic(nxt)["agent", "state_action_value"]
        q = critic(data.clone())["agent", "state_action_value"]
    reward, term = data["next", "agent", "reward"], data["next", "agent", "terminated"]
    target = reward + 0.9 * (~term) * next_q
    torch.testing.assert_close(out["loss_value"], ((q - target) ** 2).mean())
    torch.testing.assert_close(out["target_value"], target.squeeze(-1))
    with torch.no_grad():
        acted = critic(policy(data.clone()))["agent", "state_action_value"]
    torch.testing.assert_close(out["loss_actor"], -acted.mean())
    (out["loss_actor"] + out["loss_value"]).backward()


def test_a_root_action_is_required_only_when_the_critic_reads_it():
    loss, _, _ = _loss()
    loss(_batch())  # the critic reads ("agent", "action"): no root "action" needed
    loss.set_keys(action=("agent", "action"))
    data = _batch()
    del data["agent", "action"]
    with pytest.raises(KeyError, match=r"DDPGLoss needs the key .*agent.*action.* in its"):
        loss(data)


# ------------------------------------------------------------------ SAC on a group (MASAC)
def _sac_nets():
    """A per-agent Gaussian actor and a Q-network acting on the last dim: the same functions
    on a group's ``[B, N, ...]`` entries and on ``[B * N, ...]`` single-agent rows."""
    torch.manual_seed(0)
    actor_net = nn.Sequential(nn.Linear(OBS, 2 * ACT), NormalParamExtractor())
    q_net = nn.Sequential(nn.Linear(OBS + ACT, 16), nn.Tanh(), nn.Linear(16, 1))

    def build(group, target_entropy=-float(ACT)):
        torch.manual_seed(1)  # the critic copies' own initialisation: the same for both
        key = (lambda name: (group, name)) if group else (lambda name: name)
        leaf = Bounded(-1.0, 1.0, shape=(N, ACT) if group else (ACT,))
        # an env's unbatched spec: the group's Composite has the agent dim as its shape
        spec = (Composite({group: Composite(action=leaf, shape=(N,))}) if group
                else Composite(action=leaf))
        actor = ProbabilisticActor(
            TensorDictModule(actor_net, in_keys=[key("observation")],
                             out_keys=[key("loc"), key("scale")]),
            in_keys=[key("loc"), key("scale")], out_keys=[key("action")],
            distribution_class=TanhNormal, return_log_prob=True,
            spec=spec)
        qvalue = TensorDictSequential(
            TensorDictModule(_Cat(), in_keys=[key("observation"), key("action")],
                             out_keys=[key("obs_action")]),
            TensorDictModule(q_net, in_keys=[key("obs_action")],
                             out_keys=[key("state_action_value")]))
        loss = SACLoss(actor, qvalue, num_qvalue_nets=2, delay_qvalue=True,
                       loss_function="l2", target_entropy=target_entropy,
                       action_spec=spec)
        if group:
            loss.set_keys(state_action_value=key("state_action_value"), action=key("action"),
                          reward=key("reward"), done=key("done"), terminated=key("terminated"))
        loss.make_value_estimator(ValueEstimators.TD0, gamma=0.9)
        return loss

    return build


def test_sac_on_a_group_takes_one_term_per_agent_as_single_agent_sac_on_its_rows():
    build = _sac_nets()
    group_loss, flat_loss = build("agent"), build(None)
    data = _batch()
    flat = TensorDict({
        "observation": data["agent", "observation"].reshape(B * N, OBS),
        "action": data["agent", "action"].reshape(B * N, ACT),
        "next": {k: data["next", "agent", k].reshape(B * N, -1)
                 for k in ("observation", "reward", "done", "terminated")}}, [B * N])
    torch.manual_seed(5)
    grouped = group_loss(data)
    torch.manual_seed(5)  # the same noise: the actions are drawn in the same order and shape
    single = flat_loss(flat)
    for key in ("loss_actor", "loss_qvalue", "loss_alpha"):
        torch.testing.assert_close(grouped[key], single[key], msg=key)
    # one log-prob per agent, not their sum: the entropy is a single agent's
    torch.testing.assert_close(grouped["entropy"], single["entropy"])
    # one priority per transition: its agents' largest error
    assert grouped["td_error"].shape == (B,)
    torch.testing.assert_close(grouped["td_error"], single["td_error"].reshape(B, N).max(-1).values)


def test_sac_auto_target_entropy_reads_the_group_action_set_after_construction():
    # the spec holds ("agent", "action") in a group of shape [N]; the loss is told so by
    # set_keys, after construction
    auto = _sac_nets()("agent", target_entropy="auto")
    assert auto.target_entropy == "auto"  # the action key is only known at the first batch
    auto(_batch())
    # TorchRL's rule: minus the dims after the group's (one agent's action size)
    assert float(auto.target_entropy) == -float(ACT)
