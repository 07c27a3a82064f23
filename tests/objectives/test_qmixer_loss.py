"""QMixerLoss with VDN and QMIX mixers against hand computations; the mixers; bad input."""

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn
from torch.nn import functional as F

from streamrl.modules import QMixer, QValueActor, VDNMixer
from streamrl.objectives import QMixerLoss

N_AGENTS, OBS, N_ACT = 2, 3, 4


def _local():
    torch.manual_seed(0)
    net = nn.Linear(OBS, N_ACT)
    return net, TensorDictModule(net, [("agents", "observation")], [("agents", "action_value")])


def _data(n=5):
    g = torch.Generator().manual_seed(4)
    term = torch.zeros(n, 1, dtype=torch.bool)
    term[1] = True
    return TensorDict({
        "agents": TensorDict({"observation": torch.randn(n, N_AGENTS, OBS, generator=g),
                              "action": torch.randint(N_ACT, (n, N_AGENTS), generator=g)},
                             [n, N_AGENTS]),
        "state": torch.randn(n, 6, generator=g),
        "next": {"agents": TensorDict({"observation": torch.randn(n, N_AGENTS, OBS, generator=g)},
                                      [n, N_AGENTS]),
                 "state": torch.randn(n, 6, generator=g),
                 "reward": torch.randn(n, 1, generator=g), "done": term.clone(),
                 "terminated": term},
    }, [n])


def test_vdn_loss_by_hand():
    net, local = _local()
    loss = QMixerLoss(local, VDNMixer(N_AGENTS), action_space="categorical")
    loss.make_value_estimator(gamma=0.9)
    with torch.no_grad():
        loss.target_local_value_network_params["module", "bias"].add_(1.0)
    td = _data()
    out = loss(td)
    with torch.no_grad():
        q = net(td["agents", "observation"]).gather(-1, td["agents", "action"].unsqueeze(-1))
        pred = q.sum(-2)
        next_q = (net(td["next", "agents", "observation"]) + 1.0).max(-1).values.sum(-1, True)
        y = td["next", "reward"] + 0.9 * (~td["next", "terminated"]) * next_q
    torch.testing.assert_close(out["loss"], F.mse_loss(pred, y))
    torch.testing.assert_close(td["td_error"], (pred - y).abs().squeeze(-1))
    out["loss"].backward()
    assert net.weight.grad is not None and net.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.target_local_value_network_params.values(True, True))


def test_double_dqn_values_the_live_networks_greedy_actions_with_the_target():
    net, local = _local()
    loss = QMixerLoss(local, VDNMixer(N_AGENTS), action_space="categorical", double_dqn=True)
    loss.make_value_estimator(gamma=0.9)
    with torch.no_grad():  # a target that disagrees with the live network on the argmax
        loss.target_local_value_network_params["module", "bias"].copy_(
            torch.tensor([3.0, 0.0, -3.0, 1.0]))
    td = _data()
    out = loss(td)
    with torch.no_grad():
        q = net(td["agents", "observation"]).gather(-1, td["agents", "action"].unsqueeze(-1))
        pred = q.sum(-2)
        obs = td["next", "agents", "observation"]
        pick = net(obs).argmax(-1, keepdim=True)
        target_q = obs @ net.weight.T + torch.tensor([3.0, 0.0, -3.0, 1.0])
        next_q = target_q.gather(-1, pick).sum(-2)
        y = td["next", "reward"] + 0.9 * (~td["next", "terminated"]) * next_q
        plain_next = target_q.max(-1, keepdim=True).values.sum(-2)
    assert not torch.allclose(next_q, plain_next), "the case should tell double from plain"
    torch.testing.assert_close(out["loss"], F.mse_loss(pred, y))
    with pytest.raises(ValueError, match="double_dqn=True needs delay_value=True"):
        QMixerLoss(local, VDNMixer(N_AGENTS), delay_value=False, double_dqn=True)


def test_qmix_loss_by_hand_and_gradient_to_mixer():
    net, local = _local()
    mixer = QMixer(state_shape=(6,), mixing_embed_dim=5, n_agents=N_AGENTS)
    loss = QMixerLoss(QValueActor(local, action_space="categorical",
                                  action_value_key=("agents", "action_value")),
                      mixer, delay_value=False,
                      loss_function="l1")
    loss.make_value_estimator(gamma=0.5)
    td = _data()
    out = loss(td)
    with torch.no_grad():
        q = net(td["agents", "observation"]).gather(-1, td["agents", "action"].unsqueeze(-1))
        pred = mixer(q, td["state"])
        next_q = net(td["next", "agents", "observation"]).max(-1, keepdim=True).values
        y = td["next", "reward"] + 0.5 * (~td["next", "terminated"]) * mixer(
            next_q, td["next", "state"])
    torch.testing.assert_close(out["loss"], (pred - y).abs().mean())
    out["loss"].backward()
    assert mixer.hyper_w_1.weight.grad.abs().sum() > 0 and net.weight.grad.abs().sum() > 0


def test_qmixer_formula_and_monotonicity():
    torch.manual_seed(1)
    mixer = QMixer(state_shape=(2, 3), mixing_embed_dim=4, n_agents=3)
    q, s = torch.randn(7, 3, 1), torch.randn(7, 2, 3)
    flat = s.reshape(7, 6)
    w1 = mixer.hyper_w_1(flat).abs().view(7, 3, 4)
    hidden = F.elu(q.transpose(-1, -2) @ w1 + mixer.hyper_b_1(flat).view(7, 1, 4))
    y = hidden @ mixer.hyper_w_final(flat).abs().view(7, 4, 1) + mixer.V(flat).view(7, 1, 1)
    torch.testing.assert_close(mixer(q, s), y.view(7, 1))
    bumped = q.clone()
    bumped[:, 1] += 0.5
    assert (mixer(bumped, s) >= mixer(q, s)).all()  # monotonic in each agent's value
    assert mixer(q.view(7, 1, 3, 1), s.view(7, 1, 2, 3)).shape == (7, 1, 1)


def test_mixer_bad_input():
    with pytest.raises(ValueError, match="n_agents"):
        VDNMixer(0)
    with pytest.raises(ValueError, match="n_agents"):
        VDNMixer(3)(torch.zeros(2, 2, 1))
    with pytest.raises(TypeError, match="state_shape"):
        QMixer(state_shape=3, mixing_embed_dim=4, n_agents=2)
    mixer = QMixer(state_shape=(3,), mixing_embed_dim=4, n_agents=2)
    with pytest.raises(ValueError, match="state"):
        mixer(torch.zeros(5, 2, 1), torch.zeros(5, 4))
    with pytest.raises(ValueError, match="mixing_embed_dim"):
        QMixer(state_shape=(3,), mixing_embed_dim=0, n_agents=2)


def test_loss_bad_input():
    _, local = _local()
    with pytest.raises(TypeError, match="mixer_network"):
        QMixerLoss(local, "sum")
    with pytest.raises(ValueError, match="action_space"):
        QMixerLoss(QValueActor(local, action_space="categorical"), VDNMixer(2),
                   action_space="one_hot")
    loss = QMixerLoss(local, VDNMixer(N_AGENTS), action_space="categorical")
    with pytest.raises(KeyError, match="action"):
        loss(_data().exclude(("agents", "action")))
    bad = _data()
    bad["next", "reward"] = torch.zeros(5, 2)
    with pytest.raises(ValueError, match="reward"):
        loss(bad)
    wrong_agents = QMixerLoss(local, VDNMixer(3), action_space="categorical")
    with pytest.raises(ValueError, match="n_agents"):
        wrong_agents(_data())


@pytest.mark.parametrize("value_type", ["TD0", "TD1", "TDLambda"])
def test_bootstrap_estimators_by_hand(value_type):
    from streamrl.objectives import ValueEstimators

    net = nn.Linear(4, 3)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.fill_(1.5)  # every action of every agent is worth 1.5: mixed (VDN) 3.0
    local = TensorDictModule(net, [("agents", "observation")], [("agents", "action_value")])
    loss = QMixerLoss(local, VDNMixer(n_agents=2), action_space="categorical", delay_value=False)
    loss.set_keys(advantage="adv")
    kwargs = {"gamma": 0.5} if value_type != "TDLambda" else {"gamma": 0.5, "lmbda": 0.5}
    loss.make_value_estimator(getattr(ValueEstimators, value_type), **kwargs)
    assert loss.value_estimator.tensor_keys.value == "chosen_action_value"
    assert loss.value_estimator.tensor_keys.advantage == "adv"
    done = torch.tensor([[False], [False], [True]])
    td = TensorDict({
        "agents": TensorDict({"observation": torch.randn(3, 2, 4),
                              "action": torch.zeros(3, 2, dtype=torch.long)}, [3, 2]),
        "next": {"agents": TensorDict({"observation": torch.randn(3, 2, 4)}, [3, 2]),
                 "reward": torch.tensor([[1.0], [2.0], [4.0]]), "done": done,
                 "terminated": done.clone()},
    }, [3])
    loss(td)
    # pred is 3.0 everywhere; the bootstrap value of a non-terminal next step is 3.0
    td0 = torch.tensor([1.0 + 0.5 * 3.0, 2.0 + 0.5 * 3.0, 4.0])
    td1 = torch.tensor([1.0 + 0.5 * (2.0 + 0.5 * 4.0), 2.0 + 0.5 * 4.0, 4.0])
    lam = torch.tensor([0.0, 2.0 + 0.5 * 4.0, 4.0])  # G(1) mixes 0.5 * TD0 + 0.5 * TD1
    lam[1] = 0.5 * td0[1] + 0.5 * td1[1]
    lam[0] = 1.0 + 0.5 * (0.5 * 3.0 + 0.5 * lam[1])
    target = {"TD0": td0, "TD1": td1, "TDLambda": lam}[value_type]
    torch.testing.assert_close(td["td_error"], (3.0 - target).abs())
