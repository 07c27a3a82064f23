"""SAC with a composite (multi-head) action distribution and a ``Composite`` action_spec;
``target_entropy`` held as a buffer; the soft losses without a target actor."""

import functools

import pytest
import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import (
    CompositeDistribution,
    NormalParamExtractor,
    TensorDictModule,
    TensorDictSequential,
    set_composite_lp_aggregate,
)
from torch import nn

from streamrl.data import Bounded, Composite
from streamrl.modules import ProbabilisticActor, TanhNormal
from streamrl.objectives import DiscreteSACLoss, REDQLoss, SACLoss
from streamrl.objectives.value._composite import can_rsample, joint, log_prob_of


class _Q(nn.Module):
    def __init__(self, n_act=3):
        super().__init__()
        self.linear = nn.Linear(3 + n_act, 1)

    def forward(self, obs, act):
        if isinstance(act, TensorDictBase):  # one entry per head
            act = torch.cat([act["arm"], act["grip"]], -1)
        return self.linear(torch.cat([obs, act], -1))


def _composite_actor():
    net = nn.Sequential(nn.Linear(3, 6), NormalParamExtractor())
    split = TensorDictModule(
        lambda loc, scale: (loc[..., :2], scale[..., :2], loc[..., 2:], scale[..., 2:]),
        in_keys=["loc", "scale"],
        out_keys=[("params", "arm", "loc"), ("params", "arm", "scale"),
                  ("params", "grip", "loc"), ("params", "grip", "scale")])
    body = TensorDictModule(net, ["observation"], ["loc", "scale"])
    spec = Composite(action=Composite(arm=Bounded(-1.0, 1.0, (2,)),
                                      grip=Bounded(-1.0, 1.0, (1,))))
    return ProbabilisticActor(
        TensorDictSequential(body, split), in_keys=["params"], out_keys=["action"],
        distribution_class=functools.partial(
            CompositeDistribution, distribution_map={"arm": TanhNormal, "grip": TanhNormal})
    ), spec


def _data(n=6):
    g = torch.Generator().manual_seed(0)
    return TensorDict({
        "observation": torch.randn(n, 3, generator=g),
        "action": {"arm": torch.rand(n, 2, generator=g) - 0.5,
                   "grip": torch.rand(n, 1, generator=g) - 0.5},
        "next": {"observation": torch.randn(n, 3, generator=g),
                 "reward": torch.randn(n, 1, generator=g),
                 "done": torch.zeros(n, 1, dtype=torch.bool),
                 "terminated": torch.zeros(n, 1, dtype=torch.bool)},
    }, [n])


@pytest.mark.parametrize("aggregate", [False, True])
def test_sac_with_composite_action_distribution(aggregate):
    torch.manual_seed(0)
    actor, spec = _composite_actor()
    qvalue = TensorDictModule(_Q(), ["observation", "action"], ["state_action_value"])
    with set_composite_lp_aggregate(aggregate):
        loss = SACLoss(actor, qvalue, action_spec=spec)
        # "auto": minus the dims of every head of the composite action
        assert isinstance(loss.target_entropy, torch.Tensor)
        assert loss.target_entropy.item() == -3.0
        out = loss(_data())
    for key in ("loss_actor", "loss_qvalue", "loss_alpha"):
        assert out[key].shape == () and torch.isfinite(out[key]), key
    out["loss_actor"].backward()
    assert all(p.grad is not None for p in actor.parameters())


def test_composite_spec_without_the_action_key_is_refused():
    actor, _ = _composite_actor()
    qvalue = TensorDictModule(_Q(), ["observation", "action"], ["state_action_value"])
    # refused at the first batch: set_keys may still name the action inside the spec
    loss = SACLoss(actor, qvalue, action_spec=Composite(other=Bounded(-1.0, 1.0, (2,))))
    with pytest.raises(KeyError, match="without the action key 'action'"):
        loss(_data())
    with pytest.raises(TypeError, match="action_spec must be a TensorSpec, a Composite"):
        SACLoss(actor, qvalue, action_spec=(2,))


def test_joint_log_prob_sums_the_heads():
    actor, _ = _composite_actor()
    td = _data()
    with set_composite_lp_aggregate(False):
        dist = actor.get_dist(td.copy())
        assert can_rsample(dist) and not dist.has_rsample
        total = log_prob_of(dist, td["action"], 1)
        heads = [d.log_prob(td["action", k]) for k, d in dist.dists.items()]
    torch.testing.assert_close(total, heads[0] + heads[1])
    with pytest.raises(TypeError, match="TensorDict of per-head actions"):
        log_prob_of(dist, torch.zeros(6, 3), 1)
    with pytest.raises(ValueError, match="no entries"):
        joint(TensorDict({}, [6]), 1)


def test_target_entropy_is_a_buffer_that_follows_the_loss():
    net = TensorDictModule(nn.Sequential(nn.Linear(3, 4), NormalParamExtractor()),
                           ["observation"], ["loc", "scale"])
    actor = ProbabilisticActor(net, in_keys=["loc", "scale"], distribution_class=TanhNormal)
    qvalue = TensorDictModule(_Q(n_act=2), ["observation", "action"], ["state_action_value"])
    loss = SACLoss(actor, qvalue, target_entropy=-1.5)
    assert "target_entropy" in loss.state_dict() and loss.target_entropy.item() == -1.5
    auto = SACLoss(actor, qvalue)  # no spec anywhere: resolved from the first action
    assert auto.target_entropy == "auto"
    td = _data()
    td["action"] = torch.rand(6, 2) - 0.5
    auto(td)
    assert auto.target_entropy.item() == -2.0 and "target_entropy" in auto._buffers


def test_losses_without_a_target_actor_say_so():
    assert DiscreteSACLoss.delay_actor is False and REDQLoss.delay_actor is False
