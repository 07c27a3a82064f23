"""SoftUpdate / HardUpdate and the LossModule's parameter handling."""

import copy

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.objectives import (
    DDPGLoss,
    DQNLoss,
    HardUpdate,
    LossModule,
    SoftUpdate,
    ValueEstimators,
    total_loss,
)


def _dqn(delay_value=True):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    module = TensorDictModule(net, in_keys=["observation"], out_keys=["action_value"])
    return DQNLoss(module, delay_value=delay_value), net


def _perturb(net):
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)


def test_targets_start_as_detached_copies():
    loss, net = _dqn()
    target = loss.target_value_network_params
    torch.testing.assert_close(target["module", "0", "weight"], net[0].weight.detach())
    assert target["module", "0", "weight"].data_ptr() != net[0].weight.data_ptr()
    # buffers (batch-norm statistics) are copied too
    assert ("module", "1", "running_mean") in target.keys(True, True)


def test_soft_update_moves_targets_by_tau():
    loss, net = _dqn()
    updater = SoftUpdate(loss, tau=0.1)
    old = loss.target_value_network_params.clone()
    _perturb(net)
    updater.step()
    new = loss.target_value_network_params
    for key in [("module", "0", "weight"), ("module", "2", "bias")]:
        live = loss.value_network_params.get(key).detach()
        torch.testing.assert_close(new.get(key), 0.9 * old.get(key) + 0.1 * live)
    # integer buffers are copied, not averaged
    torch.testing.assert_close(new["module", "1", "num_batches_tracked"],
                               net[1].num_batches_tracked)


def test_hard_update_copies_every_period():
    loss, net = _dqn()
    updater = HardUpdate(loss, period=3)
    before = loss.target_value_network_params["module", "0", "weight"].clone()
    _perturb(net)
    updater.step()
    updater.step()
    torch.testing.assert_close(loss.target_value_network_params["module", "0", "weight"], before)
    updater.step()
    torch.testing.assert_close(loss.target_value_network_params["module", "0", "weight"],
                               net[0].weight.detach())
    assert updater.state_dict() == {"counter": 3}
    updater.load_state_dict({"counter": 5})
    _perturb(net)
    updater.step()  # counter 6: copies
    torch.testing.assert_close(loss.target_value_network_params["module", "0", "weight"],
                               net[0].weight.detach())


def test_updater_bad_args():
    loss, _ = _dqn(delay_value=False)
    with pytest.raises(ValueError, match="no target"):
        SoftUpdate(loss)
    loss, _ = _dqn()
    with pytest.raises(ValueError, match="tau"):
        SoftUpdate(loss, tau=0.0)
    with pytest.raises(ValueError, match="period"):
        HardUpdate(loss, period=0)
    with pytest.raises(TypeError, match="LossModule"):
        SoftUpdate(nn.Linear(2, 2))


def test_soft_update_after_training_step_keeps_targets_gradient_free():
    torch.manual_seed(0)
    actor = TensorDictModule(nn.Linear(3, 1), in_keys=["observation"], out_keys=["action"])

    class Concat(nn.Linear):
        def forward(self, obs, action):
            return super().forward(torch.cat([obs, action], -1))

    critic = TensorDictModule(Concat(4, 1), in_keys=["observation", "action"],
                              out_keys=["state_action_value"])
    loss = DDPGLoss(actor, critic, delay_actor=True)
    assert set(loss.target_network_names) == {"actor_network", "value_network"}
    updater = SoftUpdate(loss, tau=0.5)
    optim = torch.optim.Adam(loss.parameters(), lr=0.1)
    td = TensorDict({"observation": torch.randn(4, 3), "action": torch.randn(4, 1),
                     "next": {"observation": torch.randn(4, 3), "reward": torch.randn(4, 1),
                              "done": torch.zeros(4, 1, dtype=torch.bool)}}, [4])
    for _ in range(2):
        optim.zero_grad()
        total_loss(loss(td.clone())).backward()
        optim.step()
        updater.step()
    t = loss.target_actor_network_params["module", "weight"]
    assert not t.requires_grad and t.grad is None
    assert not torch.equal(t, actor.module.weight.detach())  # lags behind the live weights


def test_loss_module_state_dict_roundtrip_and_device_move():
    loss, _ = _dqn()
    state = loss.state_dict()
    assert any(k.startswith("target_value_network_params") for k in state)
    other = copy.deepcopy(loss)
    _perturb(other.network_template("value_network"))  # the template holds no data
    other.load_state_dict(state)
    for k, v in other.state_dict().items():
        torch.testing.assert_close(v, state[k])
    assert next(iter(loss.network_template("value_network").parameters())).device.type == "meta"


def test_loss_module_base_api():
    loss, _ = _dqn()
    assert loss.tensor_keys["reward"] == "reward"
    with pytest.raises(TypeError):
        loss.tensor_keys["reward"] = "r"  # read-only view

    class TD0Only(DDPGLoss):
        supported_value_estimators = (ValueEstimators.TD0,)

    d = TD0Only(TensorDictModule(nn.Linear(3, 1), ["observation"], ["action"]),
                TensorDictModule(nn.Linear(3, 1), ["observation"], ["state_action_value"]))
    with pytest.raises(NotImplementedError, match="supports"):
        d.make_value_estimator(ValueEstimators.GAE)
    with pytest.raises(NotImplementedError):
        LossModule()(TensorDict({}, []))
    with pytest.raises(TypeError, match=r"nn\.Module"):
        LossModule().register_network("x", lambda td: td)
    with pytest.raises(ValueError, match="num_copies"):
        LossModule().register_network("x", nn.Linear(2, 2), num_copies=0)


def test_soft_update_eps_and_tensor_keys_view():
    loss, _net = _dqn()
    assert SoftUpdate(loss, eps=0.75).tau == pytest.approx(0.25)
    with pytest.raises(ValueError, match="not both"):
        SoftUpdate(loss, tau=0.1, eps=0.9)
    keys = loss.tensor_keys
    assert keys.reward == keys["reward"] == "reward"
    assert dict(keys)["priority"] == "td_error"
    with pytest.raises(AttributeError, match="valid keys"):
        _ = keys.nope
    with pytest.raises(AttributeError, match="set_keys"):
        keys.reward = "r"
    loss.set_keys(reward="r")
    assert loss.tensor_keys.reward == "r"
    assert loss.value_estimator.tensor_keys["reward"] == "r"  # the estimator follows


def test_ensemble_of_modules_without_reset_warns():
    from streamrl import StreamRLWarning

    class Fixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(2))

        def forward(self, x):
            return x * self.w

    with pytest.warns(StreamRLWarning, match="identical"):
        LossModule().register_network("q", Fixed(), num_copies=2)


def test_hard_update_value_network_update_interval():
    loss, net = _dqn()
    updater = HardUpdate(loss, value_network_update_interval=2.0)  # TorchRL's name (a float)
    assert updater.period == 2
    before = loss.target_value_network_params["module", "0", "weight"].clone()
    _perturb(net)
    updater.step()
    torch.testing.assert_close(loss.target_value_network_params["module", "0", "weight"], before)
    updater.step()
    torch.testing.assert_close(loss.target_value_network_params["module", "0", "weight"],
                               net[0].weight.detach())
    assert HardUpdate(loss).period == 1000
    with pytest.raises(ValueError, match="not both"):
        HardUpdate(loss, period=2, value_network_update_interval=2)
    with pytest.raises(ValueError, match="value_network_update_interval"):
        HardUpdate(loss, value_network_update_interval=2.5)
