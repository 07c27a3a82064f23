"""DDPG on a multi-agent group (TorchRL's MADDPG tutorial layout): per-agent rewards and
done flags, a centralised critic reading every agent's observation and action, one value
term per agent, and no root ``action`` needed when the critic reads the group's."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn

from streamrl.data.specs import Bounded
from streamrl.modules import MultiAgentMLP, TanhModule
from streamrl.objectives import DDPGLoss, ValueEstimators

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
