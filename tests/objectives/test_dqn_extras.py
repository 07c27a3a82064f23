"""DQN and distributional DQN: factored (mult_one_hot) actions, reductions, keyword inputs,
the estimators they take, parameter resets."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.data import MultiOneHot, OneHot
from streamrl.modules import DistributionalQValueActor, QValueActor
from streamrl.objectives import DistributionalDQNLoss, DQNLoss, ValueEstimators


def _fixed_linear(weight: torch.Tensor) -> nn.Linear:
    net = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        net.weight.copy_(weight)
    return net


def _batch(action: torch.Tensor) -> TensorDict:
    return TensorDict({
        "observation": torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
        "action": action,
        "next": {"observation": torch.tensor([[0.0, 1.0], [1.0, 1.0]]),
                 "reward": torch.tensor([[1.0], [-1.0]]),
                 "done": torch.tensor([[False], [True]]),
                 "terminated": torch.tensor([[False], [True]])},
    }, [2])


def test_dqn_mult_one_hot_by_hand():
    # Q(s) = W s with 5 entries: components of sizes [2, 3]
    weight = torch.tensor([[1.0, 0.0], [2.0, 1.0], [0.0, 3.0], [1.0, 1.0], [-1.0, 2.0]])
    actor = QValueActor(_fixed_linear(weight), spec=MultiOneHot([2, 3]))
    loss = DQNLoss(actor, delay_value=False).make_value_estimator(gamma=0.5)
    assert loss.action_space == "mult_one_hot" and loss.var_nums == [2, 3]
    action = torch.tensor([[1, 0, 0, 0, 1], [0, 1, 1, 0, 0]])
    td = _batch(action)
    out = loss(td)
    # Q(s0) = [1, 2, 0, 1, -1]: Q(s0, a0) = 1 + (-1) = 0;  Q(s1) = [0, 1, 3, 1, 2]: 1 + 3 = 4
    # Q(s0') = [0, 1, 3, 1, 2]: bootstrap max(0, 1) + max(3, 1, 2) = 4 -> target 1 + 0.5 * 4 = 3
    # s1' is terminal: target -1
    torch.testing.assert_close(out["pred_value"], torch.tensor([0.0, 4.0]))
    torch.testing.assert_close(out["target_value"], torch.tensor([3.0, -1.0]))
    torch.testing.assert_close(out["loss"], torch.tensor((9.0 + 25.0) / 2))
    torch.testing.assert_close(td["td_error"], torch.tensor([3.0, 5.0]))


def test_dqn_mult_one_hot_double_dqn_picks_with_the_live_network():
    weight = torch.tensor([[1.0, 0.0], [2.0, 1.0], [0.0, 3.0], [1.0, 1.0], [-1.0, 2.0]])
    actor = QValueActor(_fixed_linear(weight), spec=MultiOneHot([2, 3]))
    loss = DQNLoss(actor, double_dqn=True).make_value_estimator(gamma=0.5)
    with torch.no_grad():
        loss.target_value_network_params["module", "0", "module", "weight"].mul_(-1.0)
    out = loss(_batch(torch.tensor([[1, 0, 0, 0, 1], [0, 1, 1, 0, 0]])))
    # live picks components (1, 2) at s0' = [0, 1, 3, 1, 2]; the target values them at -(1 + 3)
    torch.testing.assert_close(out["target_value"], torch.tensor([1.0 - 0.5 * 4.0, -1.0]))


@pytest.mark.parametrize("reduction", [None, "mean", "sum", "none"])
def test_dqn_reduction(reduction):
    torch.manual_seed(0)
    loss = DQNLoss(QValueActor(nn.Linear(2, 3), action_space="categorical"), reduction=reduction)
    td = _batch(torch.tensor([0, 2]))
    out = loss(td)
    per_sample = td["td_error"] ** 2
    expected = {None: per_sample.mean(), "mean": per_sample.mean(), "sum": per_sample.sum(),
                "none": per_sample}[reduction]
    torch.testing.assert_close(out["loss"].detach(), expected)
    with pytest.raises(ValueError, match="reduction"):
        DQNLoss(QValueActor(nn.Linear(2, 3), action_space="categorical"), reduction="max")


def test_dqn_keyword_inputs_give_the_loss_tensor():
    torch.manual_seed(0)
    actor = QValueActor(nn.Linear(2, 3), spec=OneHot(3), in_keys=["obs"])
    loss = DQNLoss(actor, delay_value=False)
    td = _batch(torch.eye(3, dtype=torch.long)[torch.tensor([0, 2])]).rename_key_("observation",
                                                                                 "obs")
    td["next"].rename_key_("observation", "obs")
    assert loss.in_keys == ["obs", "action", ("next", "obs"), ("next", "reward"),
                            ("next", "done"), ("next", "terminated")]
    value = loss(obs=td["obs"], action=td["action"], next_obs=td["next", "obs"],
                 next_reward=td["next", "reward"], next_done=td["next", "done"],
                 next_terminated=td["next", "terminated"])
    torch.testing.assert_close(value, loss(td)["loss"])
    with pytest.raises(TypeError, match="unexpected keyword inputs \\['observation'\\]"):
        loss(observation=td["obs"])


@pytest.mark.parametrize("value_type", [ValueEstimators.GAE, ValueEstimators.MAGAE,
                                        ValueEstimators.VTrace])
def test_dqn_refuses_advantage_estimators(value_type):
    loss = DQNLoss(QValueActor(nn.Linear(2, 3), action_space="categorical"))
    with pytest.raises(NotImplementedError, match="TD0"):
        loss.make_value_estimator(value_type)


def test_dqn_keys_reach_the_estimator():
    loss = DQNLoss(QValueActor(nn.Linear(2, 3), action_space="categorical"))
    loss.set_keys(value="q", advantage="adv", value_target=("vt", "x"), reward="r")
    loss.make_value_estimator(ValueEstimators.TDLambda, gamma=0.5, lmbda=0.5)
    keys = loss.value_estimator.tensor_keys
    assert (keys.value, keys.advantage, keys.value_target, keys.reward) == (
        "q", "adv", ("vt", "x"), "r")


def test_reset_parameters_recursive_resets_and_syncs_targets():
    loss = DQNLoss(QValueActor(nn.Linear(2, 3), action_space="categorical"))
    weight = loss.value_network_params["module", "0", "module", "weight"]
    with torch.no_grad():
        weight.fill_(1000.0)
    loss.reset_parameters_recursive()
    assert weight.abs().max() < 10  # the same tensor, re-initialised in place
    torch.testing.assert_close(loss.target_value_network_params["module", "0", "module", "weight"],
                               weight.detach())


def _distributional(var_nums, spec):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 3 * 4), nn.Unflatten(-1, (3, 4)))
    return DistributionalQValueActor(net, support=torch.tensor([-1.0, 0.0, 1.0]),
                                     var_nums=var_nums, spec=spec)


def test_distributional_mult_one_hot_sums_the_branch_losses():
    actor = _distributional([2, 2], MultiOneHot([2, 2]))
    loss = DistributionalDQNLoss(actor, gamma=0.9, delay_value=False)
    action = torch.tensor([[1, 0, 0, 1], [0, 1, 1, 0]])
    td = _batch(action)
    out = loss(td)
    # each branch alone is a one-hot distributional loss over its 2 actions
    branch_losses = []
    for part in range(2):
        sl = slice(2 * part, 2 * part + 2)

        def branch(x, sl=sl):
            return actor.module[0](x)[..., sl]

        one = DistributionalQValueActor(TensorDictModule(branch, ["observation"], ["action_value"]),
                                        support=torch.tensor([-1.0, 0.0, 1.0]), spec=OneHot(2))
        sub = DistributionalDQNLoss(one, gamma=0.9, delay_value=False)
        branch_losses.append(sub(_batch(action[:, sl]))["loss"])
    torch.testing.assert_close(out["loss"], sum(branch_losses))


def test_distributional_estimator_and_n_step_discount():
    actor = _distributional(None, OneHot(4))
    loss = DistributionalDQNLoss(actor, gamma=0.9, delay_value=False)
    assert loss.make_value_estimator(ValueEstimators.TD0, gamma=0.5) is loss
    assert loss.gamma == 0.5
    for other in (ValueEstimators.TD1, ValueEstimators.GAE, ValueEstimators.VTrace):
        with pytest.raises(NotImplementedError, match="TD0"):
            loss.make_value_estimator(other)
    action = torch.eye(4, dtype=torch.long)[torch.tensor([0, 3])]
    one_step = loss(_batch(action))["loss"]
    td = _batch(action)
    td["steps_to_next_obs"] = torch.tensor([1, 1])
    torch.testing.assert_close(loss(td)["loss"], one_step)
    td["steps_to_next_obs"] = torch.tensor([3, 3])
    loss_n = DistributionalDQNLoss(actor, gamma=0.5 ** 3, delay_value=False)(_batch(action))
    torch.testing.assert_close(loss(td)["loss"], loss_n["loss"])


def test_dqn_prioritized_weights():
    torch.manual_seed(0)
    actor = QValueActor(nn.Linear(2, 3), action_space="categorical")
    td = _batch(torch.tensor([0, 2]))
    plain = DQNLoss(actor, reduction="none", use_prioritized_weights=False)
    per_sample = plain(td.clone())["loss"].detach()
    td["priority_weight"] = torch.tensor([3.0, 1.0])
    torch.testing.assert_close(plain(td.clone())["loss"].detach(), per_sample)  # ignored
    auto = DQNLoss(actor)(td.clone())["loss"].detach()
    torch.testing.assert_close(auto, (3.0 * per_sample[0] + per_sample[1]) / 4.0)
    summed = DQNLoss(actor, reduction="sum", use_prioritized_weights=True)(td.clone())["loss"]
    torch.testing.assert_close(summed.detach(), 3.0 * per_sample[0] + per_sample[1])
    with pytest.raises(KeyError, match="priority_weight"):
        DQNLoss(actor, use_prioritized_weights=True)(td.exclude("priority_weight"))
    with pytest.raises(ValueError, match="use_prioritized_weights"):
        DQNLoss(actor, use_prioritized_weights="yes")


def test_dqn_with_agent_group_keys_is_one_td_term_per_agent():
    # independent Q-learning (TorchRL's iql.py keys): values [B, n_agents, n_actions] and
    # per-agent rewards / flags; the loss equals one single-agent DQN over the B * n rows
    torch.manual_seed(0)
    b, n, a = 5, 3, 4
    net = nn.Linear(6, a)
    group = TensorDictModule(net, [("agents", "observation")], [("agents", "action_value")])
    loss = DQNLoss(group, delay_value=False, action_space="categorical")
    loss.set_keys(action_value=("agents", "action_value"), action=("agents", "action"),
                  value=("agents", "chosen_action_value"), reward=("agents", "reward"),
                  done=("agents", "done"), terminated=("agents", "terminated"))
    loss.make_value_estimator(gamma=0.9)
    flags = torch.rand(b, n, 1) < 0.3
    td = TensorDict({
        "agents": TensorDict({"observation": torch.randn(b, n, 6),
                              "action": torch.randint(a, (b, n))}, [b, n]),
        "next": {"agents": TensorDict({"observation": torch.randn(b, n, 6),
                                       "reward": torch.randn(b, n, 1),
                                       "done": flags, "terminated": flags}, [b, n])},
    }, [b])
    out = loss(td)
    assert out["pred_value"].shape == (b, n) and out["td_error"].shape == (b,)
    assert loss.sample_shape(td) == (b, n)
    flat = TensorDict({
        "observation": td["agents", "observation"].reshape(b * n, 6),
        "action": td["agents", "action"].reshape(b * n),
        "next": {"observation": td["next", "agents", "observation"].reshape(b * n, 6),
                 "reward": td["next", "agents", "reward"].reshape(b * n, 1),
                 "done": flags.reshape(b * n, 1), "terminated": flags.reshape(b * n, 1)},
    }, [b * n])
    single = DQNLoss(net, delay_value=False, action_space="categorical")
    single.make_value_estimator(gamma=0.9)
    expected = single(flat)
    torch.testing.assert_close(out["loss"], expected["loss"])
    torch.testing.assert_close(out["pred_value"].reshape(-1), expected["pred_value"])
    torch.testing.assert_close(out["td_error"], expected["td_error"].reshape(b, n).mean(-1))
    loss.reduction = "none"
    assert loss(td)["loss"].shape == (b, n)
    # a network that drops the agent dim is named, with the shape the rewards ask for
    bad = DQNLoss(TensorDictModule(lambda o: net(o).sum(-2), [("agents", "observation")],
                                   ["action_value"]), delay_value=False)
    bad.set_keys(action=("agents", "action"),
                 reward=("agents", "reward"), done=("agents", "done"),
                 terminated=("agents", "terminated"))
    with pytest.raises(ValueError, match=r"must have shape \(5, 3, 'n_actions'\)"):
        bad(td)


def test_greedy_values_of_one_component_equal_the_per_component_path():
    from streamrl.objectives._utils import greedy_values

    torch.manual_seed(0)
    values = torch.randn(5, 3, 4)
    values[0, 0] = torch.tensor([1.0, 3.0, 3.0, -1.0])  # a tie
    selector = torch.randn(5, 3, 4)
    for pick in (None, selector):
        fast = greedy_values(values, None, pick)
        general = greedy_values(values, [4], pick)
        assert fast.shape == (5, 3, 1)
        torch.testing.assert_close(fast, general, rtol=0, atol=0)
    torch.testing.assert_close(greedy_values(values, None), values.max(-1, keepdim=True).values)
    torch.testing.assert_close(greedy_values(values, None, selector),
                               values.gather(-1, selector.argmax(-1, keepdim=True)))
