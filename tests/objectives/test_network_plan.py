"""Network plans (streamrl/objectives/_network_plan.py): a loss calls its plain TensorDict
networks on tensors; nothing it computes may change.

Every case of the loss contract runs twice from the same seed, with plans and with the
general TensorDict path (``_network_calls.network_plan`` patched to return None), and must give the same
outputs and the same gradients. The other tests pin what a plan must keep: the template's
own (meta) tensors after any call, hooks, the error for a missing input, parameters in
another key order.
"""

from __future__ import annotations

import pytest
import torch
from _sac_fixtures import gaussian_actor, qvalue, transitions
from tensordict import TensorDict
from tensordict.nn import TensorDictModule, TensorDictSequential
from test_loss_contract import CASES
from torch import nn

from streamrl.modules import (
    MLP,
    NormalParamExtractor,
    ProbabilisticActor,
    TanhNormal,
    ValueOperator,
)
from streamrl.objectives import ClipPPOLoss, DQNLoss, LossModule, SACLoss, TD3Loss, total_loss
from streamrl.objectives import _network_calls as network_calls


def _no_plans(patch):
    """Every network call of a loss takes the general TensorDict path."""
    patch.setattr(network_calls, "network_plan", lambda loss, name: None)


def _run(case, seed=0):
    torch.manual_seed(seed)
    loss = case.build()
    data = case.data()
    torch.manual_seed(seed + 1)
    out = loss(data)
    total_loss(out).backward()
    grads = {n: None if p.grad is None else p.grad.clone() for n, p in loss.named_parameters()}
    return out, grads, loss


@pytest.mark.parametrize("name", sorted(CASES))
def test_plans_give_the_general_paths_outputs_and_gradients(name, monkeypatch):
    out, grads, _ = _run(CASES[name])
    with monkeypatch.context() as m:
        _no_plans(m)
        ref_out, ref_grads, _ = _run(CASES[name])
    assert sorted(out.keys(True, True)) == sorted(ref_out.keys(True, True))
    for key in ref_out.keys(True, True):
        torch.testing.assert_close(out.get(key), ref_out.get(key), rtol=1e-5, atol=1e-6,
                                   msg=lambda m, k=key: f"{name} {k}: {m}")
    assert grads.keys() == ref_grads.keys()
    for key, ref in ref_grads.items():
        if ref is None:
            assert grads[key] is None, f"{name}: {key} got a gradient only with plans"
        else:
            torch.testing.assert_close(grads[key], ref, rtol=1e-5, atol=1e-6,
                                       msg=lambda m, k=key: f"{name} grad {k}: {m}")


def _sac():
    torch.manual_seed(0)
    _, actor = gaussian_actor()
    return SACLoss(actor, qvalue())


@pytest.mark.parametrize("build, networks", [
    (_sac, {"actor_network", "qvalue_network"}),
    (lambda: TD3Loss(TensorDictModule(nn.Linear(3, 2), ["observation"], ["action"]), qvalue(),
                     action_low=-1.0, action_high=1.0), {"actor_network", "qvalue_network"}),
    (lambda: DQNLoss(TensorDictModule(nn.Linear(3, 2), ["observation"], ["action_value"]),
                     action_space="one-hot"), {"value_network"}),
])
def test_plain_networks_get_a_plan(build, networks):
    loss = build()
    data = transitions(clamp_action=True)
    if isinstance(loss, DQNLoss):
        data.set("action", nn.functional.one_hot(torch.tensor([0, 1, 1, 0]), 2))
    loss(data)
    planned = {name for name, plan in loss._plans.items() if plan is not None}
    assert networks <= planned


def test_template_keeps_its_own_tensors_after_calls_and_errors():
    loss = _sac()
    template = loss.network_template("qvalue_network")
    before = {n: t for n, t in template.named_parameters()}
    loss(transitions())
    assert all(t.device.type == "meta" for _, t in template.named_parameters())
    assert {n: t for n, t in template.named_parameters()} == before
    bad = transitions()
    bad.set("action", torch.zeros(4, 7))  # the critic's Linear(5, 1) cannot take 3 + 7
    with pytest.raises(RuntimeError):
        loss(bad)
    assert {n: t for n, t in template.named_parameters()} == before


def test_missing_input_names_the_loss_network_and_key():
    loss = _sac()
    data = transitions()
    del data["next", "observation"]
    with pytest.raises(KeyError, match=r"SACLoss: actor_network could not read.*observation"):
        loss(data)


def test_hooks_of_the_wrapped_module_still_run():
    loss = _sac()
    template = loss.network_template("qvalue_network")
    calls = []
    template.module.register_forward_hook(lambda *a: calls.append(1))
    loss(transitions())
    assert calls, "the critic's forward hook did not run"


def test_a_global_hook_turns_plans_off_and_sees_every_call():
    loss = _sac()
    seen = []
    handle = nn.modules.module.register_module_forward_hook(
        lambda m, i, o: seen.append(type(m).__name__))
    try:
        loss(transitions())
    finally:
        handle.remove()
    assert "TensorDictModule" in seen  # the general path ran, through the TensorDict modules


def test_parameters_in_another_key_order():
    loss = _sac()
    params = loss.network_params("qvalue_network")
    shuffled = TensorDict({k: params.get(k) for k in reversed(list(params.keys(True, True)))},
                          batch_size=params.batch_size)
    data = transitions()
    action = torch.zeros(4, 2)
    planned = loss.ensemble_output("qvalue_network", data, "state_action_value", shuffled,
                                   overrides={"action": action})
    loss._plans["qvalue_network"] = None  # the general path, once
    general = loss.ensemble_output("qvalue_network", data, "state_action_value", params,
                                   overrides={"action": action})
    torch.testing.assert_close(planned, general)
    assert "state_action_value" not in data.keys()  # the input is left untouched


def test_pipeline_style_networks_match_the_general_path(monkeypatch):
    """The networks the SAC and PPO pipelines build (MLP, NormalParamExtractor,
    ProbabilisticActor with TanhNormal bounds, ValueOperator)."""
    def build():
        torch.manual_seed(0)
        net = nn.Sequential(MLP(in_features=3, out_features=2, num_cells=[8, 8]),
                            NormalParamExtractor())
        actor = ProbabilisticActor(
            TensorDictModule(net, in_keys=["observation"], out_keys=["loc", "scale"]),
            in_keys=["loc", "scale"], distribution_class=TanhNormal,
            distribution_kwargs={"low": torch.tensor([-2.0]), "high": torch.tensor([2.0])},
            return_log_prob=True)
        critic = ValueOperator(MLP(in_features=4, out_features=1, num_cells=[8, 8]),
                               in_keys=["observation", "action"])
        value = ValueOperator(MLP(in_features=3, out_features=1, num_cells=[8]),
                              in_keys=["observation"])
        return actor, critic, value

    def run():
        actor, critic, value = build()
        data = transitions(clamp_action=True)
        data.set("action", data["action"][:, :1] * 1.5)
        sac = SACLoss(actor, critic)
        torch.manual_seed(3)
        out = sac(data)
        with torch.no_grad():
            data.set("action_log_prob", actor.get_dist(data.copy()).log_prob(data["action"]))
        ppo = ClipPPOLoss(actor, value)
        out2 = ppo(data)
        (total_loss(out) + total_loss(out2)).backward()
        return out, out2, [p.grad.clone() for p in actor.parameters()]

    a = run()
    with monkeypatch.context() as m:
        _no_plans(m)
        b = run()
    for x, y in zip(a[:2], b[:2]):
        for key in y.keys(True, True):
            torch.testing.assert_close(x.get(key), y.get(key), rtol=1e-5, atol=1e-6)
    for x, y in zip(a[2], b[2]):
        torch.testing.assert_close(x, y)


def test_a_probabilistic_module_before_the_last_keeps_the_general_path():
    """It would sample under the sequence's interaction type, which a plan does not set."""
    from tensordict.nn import ProbabilisticTensorDictModule, ProbabilisticTensorDictSequential
    from torch.distributions import Categorical, Normal

    mode = ProbabilisticTensorDictSequential(  # a nested sequence that draws a mode
        TensorDictModule(nn.Linear(3, 2), ["observation"], ["logits"]),
        ProbabilisticTensorDictModule(in_keys=["logits"], out_keys=["mode_index"],
                                      distribution_class=Categorical),
    )
    actor = ProbabilisticTensorDictSequential(
        mode,
        TensorDictModule(lambda i: (i.float().unsqueeze(-1), torch.ones((*i.shape, 1))),
                         ["mode_index"], ["loc", "scale"]),
        ProbabilisticTensorDictModule(in_keys=["loc", "scale"], out_keys=["action"],
                                      distribution_class=Normal),
    )
    loss = LossModule()
    loss.register_network("actor_network", actor)
    assert loss._plan("actor_network") is None
    data = transitions()
    loss.network_dist("actor_network", data).sample()
    assert "mode_index" in data.keys()  # the nested sequence drew its mode


def test_the_no_plan_patch_reaches_every_network_call(monkeypatch):
    # what test_plans_give_the_general_paths_outputs_and_gradients compares against must not
    # run a plan anywhere
    from streamrl.objectives._network_plan import NetworkPlan

    def refuse(*args, **kwargs):
        raise AssertionError("a plan ran")

    monkeypatch.setattr(NetworkPlan, "run", refuse)
    with pytest.raises(AssertionError, match="a plan ran"):
        _sac()(transitions())
    _no_plans(monkeypatch)
    for name in sorted(CASES):
        case = CASES[name]
        torch.manual_seed(0)
        case.build()(case.data())


def _qvalue_loss():
    from streamrl.modules import QValueModule

    torch.manual_seed(0)
    net = TensorDictSequential(
        TensorDictModule(nn.Linear(3, 2), ["observation"], ["action_value"]),
        QValueModule(action_space="one-hot"))
    return DQNLoss(net, action_space="one-hot")


def test_network_output_runs_only_the_steps_its_key_needs(monkeypatch):
    loss = _qvalue_loss()
    data = transitions(clamp_action=True)
    params = loss.network_params("value_network")
    values = loss.network_output("value_network", data, "action_value", params)
    plan = loss._plans["value_network"]
    steps, in_keys = plan.steps_for("action_value")
    assert len(plan.plan) == 2 and len(steps) == 1 and in_keys == ("observation",)
    assert "action_value" not in data.keys()  # the input is left untouched
    _no_plans(monkeypatch)
    general = loss.network_output("value_network", data, "action_value", params)
    torch.testing.assert_close(values, general, rtol=0, atol=0)
    with_action = loss.call_network("value_network", data.copy(), params)
    torch.testing.assert_close(with_action["action_value"], values, rtol=0, atol=0)


def test_network_output_of_a_key_the_network_does_not_write_names_it():
    loss = _qvalue_loss()
    loss.set_keys(action_value="q")
    with pytest.raises(KeyError, match=r"DQNLoss needs the key ..?q..? \(action_value\)"):
        loss.network_output("value_network", transitions(), "action_value")


def test_leaves_of_plain_and_wrapped_parameters_are_the_same_tensors():
    loss = _sac()
    plan = loss._plan("qvalue_network")
    params = loss.network_params("qvalue_network")
    expected = [params.get(k) for k in plan.keys]
    for given in (params, params.detach(), params.clone()):
        leaves = plan.leaves(given)
        assert all(torch.equal(a, b) for a, b in zip(leaves, expected, strict=True))
    assert all(a is b for a, b in zip(plan.leaves(params), expected, strict=True))
    # a params TensorDict missing an entry falls back to get, which names it
    broken = params.detach().clone()
    del broken[plan.keys[0]]
    with pytest.raises(KeyError, match="parameters have no entry"):
        plan.leaves(broken)
