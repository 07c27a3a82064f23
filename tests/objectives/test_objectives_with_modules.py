"""The losses with streamrl.modules' actors and critics, and small learning checks."""

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

modules = pytest.importorskip("streamrl.modules")

from streamrl.objectives import (  # noqa: E402
    ClipPPOLoss,
    DDPGLoss,
    DQNLoss,
    SACLoss,
    SoftUpdate,
    total_loss,
)


class QNet(nn.Module):
    def __init__(self, obs_dim, act_dim):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(obs_dim + act_dim, 32), nn.Tanh(), nn.Linear(32, 1))

    def forward(self, obs, action):
        return self.net(torch.cat([obs, action], -1))


def _bandit_batch(action, n):
    """One-step episodes: reward -(a - 0.3)^2, always terminal."""
    done = torch.ones(n, 1, dtype=torch.bool)
    return TensorDict({
        "observation": torch.zeros(n, 1),
        "action": action,
        "next": {"observation": torch.zeros(n, 1),
                 "reward": -((action - 0.3) ** 2).sum(-1, keepdim=True),
                 "done": done, "terminated": done},
    }, [n])


def test_ddpg_learns_a_bandit_with_streamrl_actor():
    torch.manual_seed(0)
    actor = modules.Actor(nn.Linear(1, 1), in_keys=["observation"])
    critic = modules.ValueOperator(QNet(1, 1), in_keys=["observation", "action"])
    loss = DDPGLoss(actor, critic)
    updater = SoftUpdate(loss, tau=0.1)
    optim = torch.optim.Adam(loss.parameters(), lr=0.03)
    for _ in range(300):
        batch = _bandit_batch(torch.rand(64, 1) * 2 - 1, 64)
        optim.zero_grad()
        total_loss(loss(batch)).backward()
        optim.step()
        updater.step()
    with torch.no_grad():
        action = actor(TensorDict({"observation": torch.zeros(1, 1)}, [1]))["action"]
    assert abs(action.item() - 0.3) < 0.1


def test_ppo_learns_a_bandit_with_tanh_normal():
    torch.manual_seed(0)
    net = TensorDictModule(
        nn.Sequential(nn.Linear(1, 2), modules.NormalParamExtractor()),
        in_keys=["observation"], out_keys=["loc", "scale"],
    )
    actor = modules.ProbabilisticActor(net, distribution_class=modules.TanhNormal,
                                       return_log_prob=True)
    critic = modules.ValueOperator(nn.Linear(1, 1), in_keys=["observation"])
    loss = ClipPPOLoss(actor, critic, entropy_coef=0.0, normalize_advantage=True)
    loss.make_value_estimator(gamma=0.9, lmbda=0.9)
    optim = torch.optim.Adam(loss.parameters(), lr=0.05)
    for _ in range(60):
        with torch.no_grad():
            batch = actor(TensorDict({"observation": torch.zeros(128, 1)}, [128]))
        batch = _bandit_batch(batch["action"], 128).update(
            {"action_log_prob": batch["action_log_prob"], "loc": batch["loc"]})
        batch = batch.unsqueeze(-1)  # [envs, time=1]
        for _ in range(4):
            optim.zero_grad()
            total_loss(loss(batch.exclude("advantage", "value_target"))).backward()
            optim.step()
    with modules.set_exploration_type(modules.ExplorationType.DETERMINISTIC), torch.no_grad():
        action = actor(TensorDict({"observation": torch.zeros(1, 1)}, [1]))["action"]
    assert abs(action.item() - 0.3) < 0.15


def test_sac_and_dqn_accept_streamrl_modules():
    torch.manual_seed(0)
    net = TensorDictModule(
        nn.Sequential(nn.Linear(3, 4), modules.NormalParamExtractor()),
        in_keys=["observation"], out_keys=["loc", "scale"],
    )
    actor = modules.ProbabilisticActor(net, distribution_class=modules.TanhNormal)
    qvalue = modules.ValueOperator(QNet(3, 2), in_keys=["observation", "action"])
    td = TensorDict({"observation": torch.randn(6, 3), "action": torch.rand(6, 2) * 2 - 1,
                     "next": {"observation": torch.randn(6, 3), "reward": torch.randn(6, 1),
                              "done": torch.zeros(6, 1, dtype=torch.bool)}}, [6])
    out = SACLoss(actor, qvalue)(td)
    assert torch.isfinite(total_loss(out))
    qactor = modules.QValueActor(nn.Linear(3, 4), in_keys=["observation"],
                                 action_space="one_hot")
    with torch.no_grad():
        qactor(td)  # writes a one-hot (integer) action
    out = DQNLoss(qactor)(td)
    assert torch.isfinite(out["loss"])
