"""ParamSlots (streamrl._utils.swap): a template module called with a TensorDict's tensors."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict, TensorDictParams
from torch import nn
from torch.func import functional_call

from streamrl._utils.swap import ParamSlots


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Sequential(nn.Linear(4, 2)))


def other_params(template):
    params = TensorDict.from_module(template).data.clone()
    return params.apply(lambda t: torch.randn_like(t))


@pytest.mark.parametrize("wrap", ["TensorDict", "TensorDictParams", "locked"])
def test_runs_the_template_with_the_given_tensors_and_puts_its_own_back(wrap):
    template = net()
    own = {k: v.clone() for k, v in template.state_dict().items()}
    params = other_params(template)
    given = {".".join(k): v for k, v in params.items(True, True)}
    if wrap == "TensorDictParams":
        params = TensorDictParams(params)
    elif wrap == "locked":
        params = params.lock_()
    x = torch.randn(5, 3)
    out = ParamSlots(template, params.keys(True, True))(params, x)
    torch.testing.assert_close(out, functional_call(template, given, (x,)))
    for k, v in template.state_dict().items():
        assert torch.equal(v, own[k]), k


def test_a_leaf_replaced_after_construction_is_the_one_used():
    template = net()
    params = other_params(template)
    call = ParamSlots(template, params.keys(True, True))
    params.set(("2", "0", "bias"), torch.full((2,), 100.0))
    assert (call(params, torch.zeros(1, 3)) > 50).all()


def test_a_missing_leaf_raises_and_restores_the_template():
    template = net()
    params = other_params(template)
    call = ParamSlots(template, params.keys(True, True))
    del params["2"]
    with pytest.raises(KeyError, match=r"no entry \('2', '0', 'weight'\)"):
        call(params, torch.zeros(1, 3))
    with pytest.raises(KeyError, match="no entry"):  # the get path
        call(TensorDictParams(params), torch.zeros(1, 3))
    assert all(type(p) is nn.Parameter for p in template.parameters())


def test_gradients_reach_the_given_tensors_and_vmap_batches_them():
    template = net()
    params = other_params(template).requires_grad_()
    call = ParamSlots(template, params.keys(True, True))
    call(params, torch.randn(5, 3)).sum().backward()
    assert params.get(("0", "weight")).grad is not None
    stacked = torch.stack([other_params(template) for _ in range(3)])
    x = torch.randn(5, 3)
    outs = torch.vmap(call, (0, None))(stacked, x)
    assert outs.shape == (3, 5, 2)
    torch.testing.assert_close(outs[1], call(stacked[1], x))
