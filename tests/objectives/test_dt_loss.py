"""DTLoss and OnlineDTLoss: the maths on hand-computed cases, keys, options, and a small
Decision Transformer that learns a synthetic return-conditioned task."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.data import Bounded
from streamrl.modules import (
    DTActor,
    IndependentNormal,
    OnlineDTActor,
    ProbabilisticActor,
    TanhNormal,
)
from streamrl.objectives import DTLoss, OnlineDTLoss


class _Double(nn.Module):
    """pred = scale * observation (observation and action have the same size)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, observation, action, return_to_go):
        return self.scale * observation


class _FixedGaussian(nn.Module):
    """loc = observation * w, scale = s (learned scalars)."""

    def __init__(self, w=1.0, s=0.5):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))
        self.log_s = nn.Parameter(torch.tensor(math.log(s)))

    def forward(self, observation, action, return_to_go):
        return self.w * observation, self.log_s.exp().expand_as(observation)


def _td():
    obs = torch.tensor([[[1.0, 0.0], [0.5, -1.0]], [[2.0, 1.0], [0.0, 0.0]]])  # [2, 2, 2]
    act = torch.tensor([[[1.0, 1.0], [0.0, 0.0]], [[3.0, 2.0], [1.0, -1.0]]])
    return TensorDict({"observation": obs, "action": act, "return_to_go": torch.zeros(2, 2, 1)},
                      [2])


def _dt_actor(module=None, out_key="action"):
    return TensorDictModule(module or _Double(), ["observation", "action", "return_to_go"],
                            [out_key])


def test_dt_loss_is_the_distance_between_predicted_and_dataset_actions():
    td = _td()
    pred = 2 * td["observation"]
    diff = pred - td["action"]  # [[1,-1],[1,-2]], [[1,0],[-1,1]]
    assert diff.flatten().tolist() == [1.0, -1.0, 1.0, -2.0, 1.0, 0.0, -1.0, 1.0]
    out = DTLoss(_dt_actor())(td)
    assert set(out.keys()) == {"loss"}
    assert out["loss"].item() == pytest.approx(10.0 / 8)  # squared errors 1,1,1,4,1,0,1,1
    assert DTLoss(_dt_actor(), loss_function="l1")(td)["loss"].item() == pytest.approx(8.0 / 8)
    assert DTLoss(_dt_actor(), reduction="sum")(td)["loss"].item() == pytest.approx(10.0)
    # smooth_l1 (beta=1): 0.5 d^2 below 1, |d| - 0.5 above -> 0.5*6 (|d|=1) + 1.5 (|d|=2)
    assert DTLoss(_dt_actor(), loss_function="smooth_l1")(td)["loss"].item() == pytest.approx(
        4.5 / 8)
    none = DTLoss(_dt_actor(), reduction="none")(td)
    assert none["loss"].shape == (2, 2, 2) and none.batch_size == (2,)
    assert td["action"][1, 0].tolist() == [3.0, 2.0]  # the input keeps the dataset's actions


def test_dt_loss_gradient_and_keys():
    module = _Double()
    loss = DTLoss(_dt_actor(module))
    out = loss(_td())
    out["loss"].backward()
    # d/dscale mean((scale*obs - a)^2) = mean(2 * diff * obs)
    td = _td()
    expected = (2 * (2 * td["observation"] - td["action"]) * td["observation"]).mean()
    assert module.scale.grad.item() == pytest.approx(expected.item())
    assert loss.in_keys == ["observation", "action", "return_to_go"]
    assert loss.out_keys == ["loss"]
    renamed = DTLoss(_dt_actor(out_key="pred")).set_keys(action_target="expert",
                                                          action_pred="pred")
    td2 = _td()
    td2["expert"] = td2["action"].clone()
    assert renamed(td2)["loss"].item() == pytest.approx(10.0 / 8)
    assert "expert" in renamed.in_keys
    with pytest.raises(KeyError, match="expert"):
        renamed(_td())
    with pytest.raises(ValueError, match="loss_function"):
        DTLoss(_dt_actor(), loss_function="huber")
    with pytest.raises(TypeError, match="TensorDict module"):
        DTLoss(_Double())
    with pytest.raises(RuntimeError, match="graph"):
        td3 = _td()
        td3["action"] = td3["action"].requires_grad_()
        DTLoss(_dt_actor())(td3)
    shape_bad = _dt_actor(out_key="pred")
    with pytest.raises(ValueError, match="target's shape"):
        bad = DTLoss(shape_bad).set_keys(action_pred="pred")
        td4 = _td()
        td4["action"] = torch.zeros(2, 2, 3)
        td4["observation"] = torch.zeros(2, 2, 2)
        bad(td4)


def _gaussian_actor(w=1.0, s=0.5, spec=None, dist=IndependentNormal):
    module = TensorDictModule(_FixedGaussian(w, s), ["observation", "action", "return_to_go"],
                              ["loc", "scale"])
    return ProbabilisticActor(module, in_keys=["loc", "scale"], out_keys=["action"],
                              distribution_class=dist, spec=spec)


def _normal_nll(a, mu, s):
    return (0.5 * ((a - mu) / s) ** 2 + math.log(s) + 0.5 * math.log(2 * math.pi)).sum(-1)


def test_online_dt_loss_terms_by_hand():
    torch.manual_seed(0)
    td = _td()
    loss = OnlineDTLoss(_gaussian_actor(w=1.0, s=0.5), alpha_init=0.3, target_entropy=-1.0,
                        samples_mc_entropy=20000)
    out = loss(td)
    assert set(out.keys()) == {"loss_log_likelihood", "loss_entropy", "loss_alpha", "alpha",
                               "entropy"}
    nll = _normal_nll(td["action"], td["observation"], 0.5).mean()
    assert out["loss_log_likelihood"].item() == pytest.approx(nll.item(), rel=1e-5)
    # Monte-Carlo entropy of N(., 0.5^2) in 2 dims: 2 * 0.5 * log(2 pi e 0.25)
    exact_h = math.log(2 * math.pi * math.e * 0.25)
    assert out["entropy"].item() == pytest.approx(exact_h, abs=0.03)
    assert out["alpha"].item() == pytest.approx(0.3)
    assert out["loss_entropy"].item() == pytest.approx(-0.3 * out["entropy"].item(), rel=1e-5)
    assert out["loss_alpha"].item() == pytest.approx(0.3 * (out["entropy"].item() + 1.0),
                                                     rel=1e-5)
    # d loss_alpha / d log_alpha = alpha * (H - target) > 0: alpha falls (H above target)
    (grad,) = torch.autograd.grad(out["loss_alpha"], loss.log_alpha)
    assert grad.item() == pytest.approx(out["loss_alpha"].item(), rel=1e-5)
    assert grad.item() > 0
    # the entropy term trains the scale: a larger scale lowers -alpha * H
    log_s = next(p for n, p in loss.named_parameters() if n.endswith("log_s"))
    (g_scale,) = torch.autograd.grad(out["loss_entropy"], log_s)
    assert g_scale.item() == pytest.approx(-0.3 * 2, rel=0.05)  # dH/dlog_s = 2 (two dims)


def test_online_dt_loss_alpha_options_and_target_entropy():
    td = _td()
    fixed = OnlineDTLoss(_gaussian_actor(), fixed_alpha=True, alpha_init=0.5)
    assert "log_alpha" not in {n.split(".")[-1] for n, _ in fixed.named_parameters()}
    out = fixed(td)
    assert not out["loss_alpha"].requires_grad and out["alpha"].item() == pytest.approx(0.5)
    bounded = OnlineDTLoss(_gaussian_actor(), alpha_init=1.0, min_alpha=0.1, max_alpha=2.0)
    with torch.no_grad():
        bounded.log_alpha.fill_(5.0)
    assert bounded.alpha.item() == pytest.approx(2.0)
    assert bounded(td)["alpha"].item() == pytest.approx(2.0)
    with torch.no_grad():
        bounded.log_alpha.fill_(-5.0)
    assert bounded.alpha.item() == pytest.approx(0.1)
    with pytest.raises(ValueError, match="max_alpha"):
        OnlineDTLoss(_gaussian_actor(), max_alpha=0.0)
    with pytest.raises(ValueError, match="samples_mc_entropy"):
        OnlineDTLoss(_gaussian_actor(), samples_mc_entropy=0)
    with pytest.raises(TypeError, match="probabilistic"):
        OnlineDTLoss(_dt_actor())
    # "auto": minus the action size, from the actor's spec or else from the first action
    spec = Bounded(-1.0, 1.0, shape=(2,))
    assert OnlineDTLoss(_gaussian_actor(spec=spec, dist=TanhNormal)).target_entropy.item() == -2
    auto = OnlineDTLoss(_gaussian_actor())
    auto(td)
    assert auto.target_entropy.item() == -2.0


def test_online_dt_loss_reduction_none():
    td = _td()
    with pytest.warns(UserWarning, match="scalar_output_mode"):
        loss = OnlineDTLoss(_gaussian_actor(), reduction="none")
    out = loss(td)
    assert out.batch_size == (2,)
    assert set(out.keys()) == {"loss_log_likelihood", "loss_entropy", "loss_alpha"}
    expected = _normal_nll(td["action"], td["observation"], 0.5)
    torch.testing.assert_close(out["loss_log_likelihood"], expected)
    kept = OnlineDTLoss(_gaussian_actor(), reduction="none", scalar_output_mode="non_tensor")
    assert set(kept.out_keys) >= {"alpha", "entropy"}
    summed = OnlineDTLoss(_gaussian_actor(), reduction="sum")(td)
    assert summed["loss_log_likelihood"].item() == pytest.approx(expected.sum().item(), rel=1e-5)


def test_decision_transformer_fits_a_return_conditioned_task():
    # a_t = tanh(s_t * R_t): the action depends on the state *and* the return-to-go, so the
    # model must read both tokens of step t
    torch.manual_seed(0)
    n, t = 256, 4
    obs = torch.randn(n, t, 1)
    rtg = torch.rand(n, 1, 1).expand(n, t, 1) * 2 - 1
    act = torch.tanh(2 * obs * rtg)
    data = TensorDict({"observation": obs, "action": act, "return_to_go": rtg.clone()}, [n])
    cfg = {"n_embd": 32, "n_layer": 1, "n_head": 2, "n_inner": 64, "resid_pdrop": 0.0,
           "attn_pdrop": 0.0, "embd_pdrop": 0.0}
    actor = TensorDictModule(DTActor(1, 1, cfg), ["observation", "action", "return_to_go"],
                             ["action"])
    loss = DTLoss(actor)
    opt = torch.optim.Adam(loss.parameters(), lr=3e-3)
    first = loss(data)["loss"].item()
    for _ in range(300):
        batch = data[torch.randint(n, (64,))]
        value = loss(batch)["loss"]
        opt.zero_grad()
        value.backward()
        opt.step()
    last = loss(data)["loss"].item()
    # ignoring the return-to-go, the best fit leaves a squared error of about 0.3: well under
    # it, the model reads the return token
    assert last < first / 100 and last < 0.05, (first, last)


def test_online_dt_actor_trains_with_its_loss():
    torch.manual_seed(0)
    cfg = {"n_embd": 16, "n_layer": 1, "n_head": 2, "n_inner": 32}
    module = TensorDictModule(OnlineDTActor(2, 2, cfg), ["observation", "action", "return_to_go"],
                              ["loc", "scale"])
    actor = ProbabilisticActor(module, in_keys=["loc", "scale"], out_keys=["action"],
                               distribution_class=TanhNormal, spec=Bounded(-1.0, 1.0, shape=(2,)))
    td = _td()
    td["action"] = td["action"].clamp(-0.9, 0.9)
    loss = OnlineDTLoss(actor)
    out = loss(td)
    total = out["loss_log_likelihood"] + out["loss_entropy"] + out["loss_alpha"]
    total.backward()
    assert loss.log_alpha.grad is not None
    assert all(p.grad is not None for p in module.parameters())
