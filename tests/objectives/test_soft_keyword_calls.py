"""The soft actor-critic losses' (SAC, CrossQ, TD3) ``in_keys`` / ``out_keys`` and keyword
calls (``loss(observation=..., next_reward=...)`` returning the ``out_keys`` in order)."""

import pytest
import torch
from _sac_fixtures import seeded_nets, transitions
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.data import Bounded
from streamrl.objectives import CrossQLoss, SACLoss, TD3Loss


def _kwargs(td):
    return {("next_" + k[1] if isinstance(k, tuple) else k): v
            for k, v in td.items(True, True)}


def _build(name):
    _, actor, qvalue = seeded_nets()
    if name == "sac":
        return SACLoss(actor, qvalue)
    if name == "crossq":
        return CrossQLoss(actor, qvalue)
    det = TensorDictModule(nn.Sequential(nn.Linear(3, 2), nn.Tanh()), ["observation"], ["action"])
    return TD3Loss(det, qvalue, action_spec=Bounded(-1.0, 1.0, (2,)))


@pytest.mark.parametrize("name", ["sac", "crossq", "td3"])
def test_keyword_call_matches_the_tensordict_call(name):
    loss = _build(name)
    td = transitions(clamp_action=True)
    assert set(loss.in_keys) == set(td.keys(True, True))
    torch.manual_seed(0)
    values = loss(**_kwargs(td))
    torch.manual_seed(0)
    out = loss(td.clone())
    assert len(values) == len(loss.out_keys) and set(loss.out_keys) <= set(out.keys())
    for key, value in zip(loss.out_keys, values):
        torch.testing.assert_close(value, out[key], msg=key)
    loss.select_out_keys("loss_qvalue", "loss_actor")
    torch.manual_seed(0)
    qvalue_loss, actor_loss = loss(**_kwargs(td))
    torch.testing.assert_close(qvalue_loss, out["loss_qvalue"])
    torch.testing.assert_close(actor_loss, out["loss_actor"])
    torch.manual_seed(0)
    assert set(loss(td.clone()).keys()) == {"loss_qvalue", "loss_actor"}


def test_sac_out_keys_follow_the_options():
    _, actor, qvalue = seeded_nets()
    assert SACLoss(actor, qvalue).out_keys == ["loss_actor", "loss_qvalue", "loss_alpha",
                                               "alpha", "entropy"]
    loss = SACLoss(actor, qvalue, reduction="none", scalar_output_mode="exclude")
    assert loss.out_keys == ["loss_actor", "loss_qvalue", "loss_alpha"]
    value = TensorDictModule(nn.Linear(3, 1), ["observation"], ["state_value"])
    assert SACLoss(actor, qvalue, value_network=value).out_keys[-1] == "loss_value"
    with pytest.raises(TypeError, match="unexpected keyword inputs"):
        SACLoss(actor, qvalue)(observation=torch.zeros(4, 3), bogus=torch.zeros(4))


def test_discrete_sac_keyword_call():
    from _sac_fixtures import categorical_actor

    from streamrl.objectives import DiscreteSACLoss

    torch.manual_seed(0)
    actor = categorical_actor(nn.Linear(3, 4))
    qnet = TensorDictModule(nn.Linear(3, 4), in_keys=["observation"], out_keys=["action_value"])
    loss = DiscreteSACLoss(actor, qnet, num_actions=4)
    td = transitions()
    td["action"] = torch.tensor([0, 1, 2, 3])
    assert set(loss.in_keys) == set(td.keys(True, True))
    torch.manual_seed(0)
    values = loss(**_kwargs(td))
    torch.manual_seed(0)
    out = loss(td.clone())
    assert loss.out_keys == ["loss_actor", "loss_qvalue", "loss_alpha", "alpha", "entropy"]
    for key, value in zip(loss.out_keys, values):
        torch.testing.assert_close(value, out[key], msg=key)
