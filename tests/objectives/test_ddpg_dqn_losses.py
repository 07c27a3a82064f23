"""DDPGLoss and DQNLoss against hand-written computations; gradient routing; bad input."""

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.objectives import DDPGLoss, DQNLoss, ValueEstimators, total_loss


class Concat(nn.Linear):
    def forward(self, obs, action):
        return super().forward(torch.cat([obs, action], -1))


def _ddpg(**kwargs):
    torch.manual_seed(0)
    actor_net = nn.Linear(3, 1)
    critic_net = Concat(4, 1)
    actor = TensorDictModule(actor_net, in_keys=["observation"], out_keys=["action"])
    critic = TensorDictModule(critic_net, in_keys=["observation", "action"],
                              out_keys=["state_action_value"])
    return DDPGLoss(actor, critic, **kwargs), actor_net, critic_net


def _transitions(n=6, terminated=True):
    g = torch.Generator().manual_seed(3)
    done = torch.zeros(n, 1, dtype=torch.bool)
    done[1] = done[4] = True
    nxt = {"observation": torch.randn(n, 3, generator=g), "reward": torch.randn(n, 1, generator=g),
           "done": done}
    if terminated:
        term = torch.zeros(n, 1, dtype=torch.bool)
        term[1] = True  # index 4 is a truncation
        nxt["terminated"] = term
    return TensorDict({"observation": torch.randn(n, 3, generator=g),
                       "action": torch.randn(n, 1, generator=g), "next": nxt}, [n])


def test_ddpg_values_match_hand_computation():
    loss, actor_net, critic_net = _ddpg()
    loss.make_value_estimator(ValueEstimators.TD0, gamma=0.9)
    # make the target critic differ from the live one, to see which one is used
    with torch.no_grad():
        loss.target_value_network_params["module", "weight"].add_(0.5)
    td = _transitions()
    out = loss(td)
    with torch.no_grad():
        w_t = critic_net.weight + 0.5
        s2, r = td["next", "observation"], td["next", "reward"]
        a2 = actor_net(s2)
        q2 = torch.cat([s2, a2], -1) @ w_t.T + critic_net.bias
        not_term = (~td["next", "terminated"]).float()
        target = r + 0.9 * not_term * q2
        pred = critic_net(td["observation"], td["action"])
        q_pi = critic_net(td["observation"], actor_net(td["observation"]))
    torch.testing.assert_close(out["target_value"], target.squeeze(-1))
    torch.testing.assert_close(out["pred_value"], pred.squeeze(-1))
    torch.testing.assert_close(out["loss_value"], ((pred - target) ** 2).mean())
    torch.testing.assert_close(out["loss_actor"], -q_pi.mean())
    torch.testing.assert_close(td["td_error"], (pred - target).abs().squeeze(-1))
    # the truncated transition bootstraps, the terminated one does not
    assert out["target_value"][1] == td["next", "reward"][1, 0]
    assert out["target_value"][4] != td["next", "reward"][4, 0]


def test_ddpg_gradients_reach_only_intended_params():
    loss, actor_net, critic_net = _ddpg()
    out = loss(_transitions())
    out["loss_actor"].backward()
    assert actor_net.weight.grad is not None and actor_net.weight.grad.abs().sum() > 0
    assert critic_net.weight.grad is None
    out["loss_value"].backward()
    assert critic_net.weight.grad is not None and critic_net.weight.grad.abs().sum() > 0
    for t in loss.target_value_network_params.values(True, True):
        assert not t.requires_grad and t.grad is None
    param_ids = {id(p) for p in loss.parameters()}
    assert id(actor_net.weight) in param_ids and id(critic_net.weight) in param_ids
    assert all(id(t) not in param_ids for t in loss.target_value_network_params.values(True, True))


def test_ddpg_shares_params_with_the_given_modules_and_trains():
    loss, actor_net, _critic_net = _ddpg()
    opt = torch.optim.SGD(loss.parameters(), lr=0.1)
    before = actor_net.weight.detach().clone()
    td = _transitions()
    total_loss(loss(td)).backward()
    opt.step()
    assert not torch.equal(before, actor_net.weight)  # the user's module moved


def test_ddpg_missing_terminated_uses_done():
    loss, _, _ = _ddpg()
    td = _transitions(terminated=False)
    out = loss(td)
    torch.testing.assert_close(out["target_value"][[1, 4]], td["next", "reward"][[1, 4], 0])


def test_ddpg_input_untouched_except_td_error():
    loss, _, _ = _ddpg()
    td = _transitions()
    keys_before = set(td.keys(True, True))
    loss(td)
    assert set(td.keys(True, True)) == keys_before | {"td_error"}


def test_ddpg_missing_key_names_key_and_loss():
    loss, _, _ = _ddpg()
    td = _transitions()
    del td["next", "reward"]
    with pytest.raises(KeyError, match=r"DDPGLoss.*reward"):
        loss(td)
    td = _transitions()
    del td["observation"]
    with pytest.raises(KeyError, match=r"DDPGLoss.*observation|DDPGLoss.*action"):
        loss(td)


def test_ddpg_reward_shape_mismatch_is_error():
    loss, _, _ = _ddpg()
    td = _transitions()
    td["next", "reward"] = td["next", "reward"].squeeze(-1)
    with pytest.raises(ValueError, match="shape"):
        loss(td)


def test_ddpg_set_keys_renames_reward_and_priority():
    loss, _, _ = _ddpg()
    loss.make_value_estimator(gamma=0.5)
    td = _transitions()
    td.rename_key_(("next", "reward"), ("next", "r"))
    loss.set_keys(reward="r", priority="prio")
    loss(td)
    assert "prio" in td.keys() and "td_error" not in td.keys()
    with pytest.raises(ValueError, match="valid keys"):
        loss.set_keys(bogus="x")


def test_ddpg_td_lambda_estimator_over_time():
    loss, actor_net, critic_net = _ddpg(delay_value=False)
    loss.make_value_estimator(ValueEstimators.TD1, gamma=0.5)
    td = _transitions().reshape(2, 3)
    out = loss(td)
    with torch.no_grad():
        s2 = td["next", "observation"]
        q2 = critic_net(s2, actor_net(s2)).squeeze(-1)
    r = td["next", "reward"].squeeze(-1)
    done = td["next", "done"].squeeze(-1)
    term = td["next", "terminated"].squeeze(-1)
    for b in range(2):
        g = 0.0
        for t in reversed(range(3)):
            boot = 0.0 if term[b, t] else 1.0
            if done[b, t] or t == 2:
                g = r[b, t] + 0.5 * boot * q2[b, t]
            else:
                g = r[b, t] + 0.5 * g
            torch.testing.assert_close(out["target_value"][b, t], torch.as_tensor(g))


def test_make_value_estimator_rejects_unknown():
    loss, _, _ = _ddpg()
    with pytest.raises(ValueError, match="unknown"):
        loss.make_value_estimator("nope")


# ---------------------------------------------------------------------------------- DQN


def _dqn(**kwargs):
    torch.manual_seed(0)
    net = nn.Linear(3, 4)
    module = TensorDictModule(net, in_keys=["observation"], out_keys=["action_value"])
    return DQNLoss(module, **kwargs), net


def _discrete(n=6, one_hot=False):
    td = _transitions(n)
    idx = torch.tensor([0, 3, 1, 2, 3, 0])[:n]
    td["action"] = nn.functional.one_hot(idx, 4) if one_hot else idx
    return td, idx


@pytest.mark.parametrize("one_hot", [False, True])
@pytest.mark.parametrize("double", [False, True])
def test_dqn_matches_hand_computation(one_hot, double):
    loss, net = _dqn(double_dqn=double)
    loss.make_value_estimator(gamma=0.9)
    with torch.no_grad():
        loss.target_value_network_params["module", "weight"].mul_(-1.0)
    td, idx = _discrete(one_hot=one_hot)
    out = loss(td)
    with torch.no_grad():
        q = net(td["observation"])
        q_next_target = td["next", "observation"] @ (-net.weight).T + net.bias
        if double:
            best = net(td["next", "observation"]).argmax(-1, keepdim=True)
            nv = q_next_target.gather(-1, best)
        else:
            nv = q_next_target.max(-1, keepdim=True).values
        target = td["next", "reward"] + 0.9 * (~td["next", "terminated"]).float() * nv
        pred = q.gather(-1, idx.unsqueeze(-1))
    torch.testing.assert_close(out["loss"], ((pred - target) ** 2).mean())
    torch.testing.assert_close(out["target_value"], target.squeeze(-1))
    torch.testing.assert_close(td["td_error"], (pred - target).abs().squeeze(-1))


def test_dqn_gradients_and_targets():
    loss, net = _dqn()
    td, _ = _discrete()
    loss(td)["loss"].backward()
    assert net.weight.grad is not None
    for t in loss.target_value_network_params.values(True, True):
        assert t.grad is None and not t.requires_grad


def test_dqn_bad_action_and_args():
    loss, _ = _dqn()
    td, _ = _discrete()
    td["action"] = torch.randn(6, 3)
    with pytest.raises(ValueError, match="action"):
        loss(td)
    with pytest.raises(ValueError, match="double_dqn"):
        _dqn(double_dqn=True, delay_value=False)
    with pytest.raises(ValueError, match="action_space"):
        _dqn(action_space="box")
    with pytest.raises(ValueError, match="loss_function"):
        _dqn(loss_function="l3")
