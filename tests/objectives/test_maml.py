"""maml_adapt / maml_adapt_tasks / maml_task_losses: the adapted parameters and the outer gradient through them
equal a hand-written two-step reference (second and first order), the vmapped task batch
equals a loop over tasks, the module is left alone, and bad input is named."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torch import nn

from streamrl.objectives.maml import maml_adapt, maml_adapt_tasks, maml_task_losses


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))


def _mse(module, data):
    x, y = data
    return ((module(x) - y) ** 2).mean()


def _data(seed, tasks=None):
    g = torch.Generator().manual_seed(seed)
    lead = () if tasks is None else (tasks,)
    return (torch.randn(*lead, 16, 3, generator=g), torch.randn(*lead, 16, 1, generator=g))


def _reference(net, support, query, lr, first_order):
    """Two inner SGD steps written out with autograd, then the query loss and its gradient
    with respect to the initial weights."""
    w0 = [p.detach().clone().requires_grad_(True) for p in net.parameters()]

    def forward(ws, x):
        h = torch.tanh(x @ ws[0].T + ws[1])
        return h @ ws[2].T + ws[3]

    ws = w0
    for _ in range(2):
        loss = ((forward(ws, support[0]) - support[1]) ** 2).mean()
        grads = torch.autograd.grad(loss, ws, create_graph=not first_order)
        ws = [w - lr * (g.detach() if first_order else g) for w, g in zip(ws, grads)]
    outer = ((forward(ws, query[0]) - query[1]) ** 2).mean()
    return ws, torch.autograd.grad(outer, w0)


@pytest.mark.parametrize("first_order", [False, True])
def test_two_inner_steps_and_the_outer_gradient_match_the_reference(first_order):
    net = _net()
    support, query = _data(1), _data(2)
    ref_weights, ref_grads = _reference(net, support, query, 0.3, first_order)
    params = TensorDict.from_module(net).clone().apply(lambda t: t.detach().requires_grad_())
    adapted = maml_adapt(net, params, _mse, support, steps=2, lr=0.3, first_order=first_order)
    names = [k for k, _ in net.named_parameters()]
    for name, ref in zip(names, ref_weights):
        torch.testing.assert_close(adapted.get(tuple(name.split("."))), ref)
    with adapted.to_module(net):
        outer = _mse(net, query)
    grads = torch.autograd.grad(outer, [params.get(tuple(n.split("."))) for n in names])
    for got, ref in zip(grads, ref_grads):
        torch.testing.assert_close(got, ref)


def test_second_order_differs_from_first_order():
    net = _net()
    support, query = _data(1), _data(2)
    _, second = _reference(net, support, query, 0.3, False)
    _, first = _reference(net, support, query, 0.3, True)
    assert not all(torch.allclose(a, b) for a, b in zip(second, first))


@pytest.mark.parametrize("steps", [0, 1, 2])
def test_the_vmapped_task_batch_equals_a_loop_over_tasks(steps):
    net = _net()
    params = TensorDict.from_module(net).clone().apply(lambda t: t.detach().requires_grad_())
    support, query = _data(3, tasks=4), _data(4, tasks=4)
    batched = maml_adapt_tasks(net, params, _mse, support, steps=steps, lr=0.2)
    assert batched["0", "weight"].shape == (4, 4, 3)
    outer = 0.0
    for k in range(4):
        single = maml_adapt(net, params, _mse, (support[0][k], support[1][k]), steps=steps,
                            lr=0.2)
        for key, value in single.items(True, True):
            torch.testing.assert_close(batched.get(key)[k], value)
        with single.to_module(net):
            outer = outer + _mse(net, (query[0][k], query[1][k]))
    if steps:  # the batched parameters carry the same outer gradient
        loop_grad = torch.autograd.grad(outer, [params["0", "weight"]])[0]
        batched_outer = sum(
            torch.func.functional_call(net, {
                ".".join(k): v[j] for k, v in batched.items(True, True)}, (query[0][j],)
            ).sub(query[1][j]).pow(2).mean() for j in range(4))
        vmap_grad = torch.autograd.grad(batched_outer, [params["0", "weight"]])[0]
        torch.testing.assert_close(vmap_grad, loop_grad)


def test_the_module_keeps_its_own_parameters():
    net = _net()
    before = [p.detach().clone() for p in net.parameters()]
    params = TensorDict.from_module(net).clone().apply(lambda t: t.detach().requires_grad_())
    maml_adapt(net, params, _mse, _data(1), steps=3, lr=0.5)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_frozen_entries_are_carried_unchanged():
    net = _net()
    params = TensorDict.from_module(net).clone().apply(lambda t: t.detach().requires_grad_())
    params.set(("2", "bias"), params.get(("2", "bias")).detach())
    adapted = maml_adapt(net, params, _mse, _data(1), steps=1, lr=0.5)
    assert torch.equal(adapted["2", "bias"], params["2", "bias"])
    assert not torch.equal(adapted["2", "weight"], params["2", "weight"])
    batched = maml_adapt_tasks(net, params, _mse, _data(1, tasks=2), steps=1, lr=0.5)
    assert torch.equal(batched["2", "bias"][1], params["2", "bias"])


def test_bad_input_is_named():
    net = _net()
    params = TensorDict.from_module(net)
    with pytest.raises(ValueError, match="steps must be an int >= 0, found -1"):
        maml_adapt(net, params, _mse, _data(1), steps=-1)
    with pytest.raises(ValueError, match="lr must be a number > 0, found 0"):
        maml_adapt(net, params, _mse, _data(1), lr=0)
    with pytest.raises(TypeError, match="params must be a TensorDict"):
        maml_adapt(net, dict(net.named_parameters()), _mse, _data(1))
    with pytest.raises(ValueError, match=r"loss_fn must return a scalar tensor, found \[16, 1\]"):
        maml_adapt(net, params, lambda m, d: m(d[0]), _data(1))
    frozen = params.clone().apply(lambda t: t.detach())
    with pytest.raises(ValueError, match="no entry of params requires grad"):
        maml_adapt(net, frozen, _mse, _data(1))


def test_task_losses_equal_each_tasks_loss_with_its_parameters():
    net = _net()
    params = TensorDict.from_module(net).clone().apply(lambda t: t.detach().requires_grad_())
    support, query = _data(5, tasks=3), _data(6, tasks=3)
    adapted = maml_adapt_tasks(net, params, _mse, support, steps=1, lr=0.2)
    losses = maml_task_losses(net, adapted, _mse, query)
    assert losses.shape == (3,)
    for k in range(3):
        with adapted[k].to_module(net):
            torch.testing.assert_close(losses[k], _mse(net, (query[0][k], query[1][k])))
    # the outer gradient reaches the initial parameters through the adapted ones
    (grad,) = torch.autograd.grad(losses.mean(), [params["0", "weight"]])
    assert grad.abs().sum() > 0


def test_task_losses_refuse_mismatched_tasks():
    net = _net()
    params = TensorDict.from_module(net).clone().apply(lambda t: t.detach().requires_grad_())
    adapted = maml_adapt_tasks(net, params, _mse, _data(5, tasks=3), steps=1, lr=0.2)
    with pytest.raises(ValueError, match="one entry per task: 3 tasks of parameters, found 2"):
        maml_task_losses(net, adapted, _mse, _data(6, tasks=2))
    with pytest.raises(TypeError, match="tasks_params must be a TensorDict, found dict"):
        maml_task_losses(net, dict(net.named_parameters()), _mse, _data(6, tasks=2))


def test_shared_parameters_give_the_plain_multi_task_losses():
    net = _net()
    query = _data(6, tasks=2)
    losses = maml_task_losses(net, TensorDict.from_module(net), _mse, query)
    for k in range(2):
        torch.testing.assert_close(losses[k], _mse(net, (query[0][k], query[1][k])))


def test_adaptation_chains_from_per_task_parameters():
    net = _net()
    params = TensorDict.from_module(net).clone().apply(lambda t: t.detach().requires_grad_())
    support, query = _data(7, tasks=3), _data(8, tasks=3)
    once = maml_adapt_tasks(net, params, _mse, support, steps=1, lr=0.2)
    assert once.batch_size == (3,)
    chained = maml_adapt_tasks(net, once, _mse, support, steps=1, lr=0.2)
    twice = maml_adapt_tasks(net, params, _mse, support, steps=2, lr=0.2)
    for key, value in twice.items(True, True):
        torch.testing.assert_close(chained.get(key), value)
    grads = [torch.autograd.grad(maml_task_losses(net, p, _mse, query).sum(),
                                 [params["0", "weight"]])[0] for p in (chained, twice)]
    torch.testing.assert_close(grads[0], grads[1])
    with pytest.raises(ValueError, match=r"shared \(batch size \[\]\) or one set per task "
                                         r"\(\[2\]\), found batch size \[3\]"):
        maml_adapt_tasks(net, once, _mse, _data(9, tasks=2))
