"""direct_call: stand-ins that compute exactly what the modules' calls compute."""

import pytest
import torch
from tensordict.nn.distributions import NormalParamExtractor
from torch import nn

from streamrl._utils.direct_modules import _NormalParams, _Sequential, direct_call


def _same(a, b):
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(map(_same, a, b))
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)


MAPPINGS = ["biased_softplus_1.0", "biased_softplus_0.5_0.05", "softplus"]


@pytest.mark.parametrize("mapping", MAPPINGS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale_lb", [1e-4, 0.3])
def test_normal_params_are_the_module_s_bit_for_bit(mapping, dtype, scale_lb):
    module = NormalParamExtractor(scale_mapping=mapping, scale_lb=scale_lb)
    fast = direct_call(module)
    assert isinstance(fast, _NormalParams)
    torch.manual_seed(0)
    x = (torch.randn(64, 3, 10, dtype=dtype) * 30).requires_grad_()
    got, want = fast(x), module(x)
    assert _same(got, want)
    # large inputs (softplus's linear branch) are hit, and the clamp where it is above the
    # mapping's minimum
    assert (x > 20).any() and (scale_lb < 0.3 or (want[1] == scale_lb).any())
    g1 = torch.autograd.grad(sum(t.sum() for t in got), x)
    g2 = torch.autograd.grad(sum(t.sum() for t in want), x)
    assert torch.equal(g1[0], g2[0])


def test_normal_params_follow_changed_attributes():
    module = NormalParamExtractor()
    fast = direct_call(module)
    x = torch.randn(4, 6)
    module.scale_lb = 2.0
    assert _same(fast(x), module(x)) and (fast(x)[1] >= 2.0).all()
    module.scale_mapping.min_val = 0.5
    assert _same(fast(x), module(x))
    module.scale_mapping = nn.Softplus(beta=2.0)  # another mapping: the module's own call
    assert _same(fast(x), module(x))


def test_normal_params_fall_back_where_tensors_would_round_differently():
    module = NormalParamExtractor()
    fast = direct_call(module)
    x = torch.randn(4, 6, dtype=torch.bfloat16)
    assert _same(fast(x), module(x))
    # more inputs are passed through, as the module does
    extra = torch.ones(2)
    out = fast(torch.randn(4, 6), extra)
    assert len(out) == 3 and out[2] is extra


def test_other_modules_are_called_themselves():
    assert direct_call(nn.Tanh()).__class__ is nn.Tanh
    custom = NormalParamExtractor(scale_mapping="exp")
    assert direct_call(custom) is custom
    assert direct_call(nn.Sequential()) .__class__ is nn.Sequential


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(),
                         nn.Sequential(nn.Linear(8, 6), NormalParamExtractor()))


def test_a_sequential_is_its_children_s_calls():
    net = _net()
    fast = direct_call(net)
    assert isinstance(fast, _Sequential)
    assert isinstance(fast.calls[2], _Sequential) and isinstance(fast.calls[2].calls[1], _NormalParams)
    x = torch.randn(7, 5)
    assert _same(fast(x), net(x))


@pytest.mark.parametrize("where", ["outer", "inner", "leaf", "global", "pre"])
def test_hooks_see_every_call(where):
    net = _net()
    fast = direct_call(net)
    seen = []

    def hook(module, args, out=None):
        seen.append(type(module).__name__)

    if where == "outer":
        handle = net.register_forward_hook(hook)
    elif where == "inner":
        handle = net[2].register_forward_hook(hook)
    elif where == "leaf":
        handle = net[2][1].register_forward_hook(hook)
    elif where == "pre":
        handle = net[2][1].scale_mapping.register_forward_pre_hook(hook)
    else:
        handle = nn.modules.module.register_module_forward_hook(hook)
    try:
        x = torch.randn(3, 5)
        assert _same(fast(x), net(x))
        assert seen and len(seen) % 2 == 0  # once per call, the stand-in's and the module's
    finally:
        handle.remove()
    seen.clear()
    fast(torch.randn(3, 5))
    assert not seen


def test_a_sequential_changed_after_the_stand_in_was_made_is_called_itself():
    net = _net()
    fast = direct_call(net)
    net[1] = nn.ReLU()
    x = torch.randn(3, 5)
    assert _same(fast(x), net(x))
    net.append(nn.Identity())
    assert _same(fast(x), net(x))


def _mlp(**kwargs):
    from streamrl.modules import MLP

    torch.manual_seed(0)
    return MLP(in_features=5, out_features=3, num_cells=[8, 8], **kwargs)


@pytest.mark.parametrize("activation", [nn.ReLU, nn.Tanh, nn.ELU])
def test_an_mlp_is_its_layers_ops_bit_for_bit_with_gradients(activation):
    net = _mlp(activation_class=activation)
    fast = direct_call(net)
    assert isinstance(fast, _Sequential)
    # Linear, ReLU and Tanh run as their ops; other layers (ELU) are called
    n_ops = sum(type(m) in (nn.Linear, nn.ReLU, nn.Tanh) for m in net)
    assert len(fast.skipped) == 1 + n_ops and n_ops >= 3
    x = torch.randn(6, 5, requires_grad=True)
    got, want = fast(x), net(x)
    assert _same(got, want)
    g1 = torch.autograd.grad(got.sum(), [x, *net.parameters()])
    g2 = torch.autograd.grad(want.sum(), [x, *net.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(g1, g2))


def test_an_mlp_stand_in_leaves_checks_and_other_layouts_to_the_mlp():
    net = _mlp()
    fast = direct_call(net)
    with pytest.raises(ValueError, match="expected inputs with 5 features"):
        fast(torch.randn(2, 4))  # the MLP's own error
    a, b = torch.randn(2, 2), torch.randn(2, 3)
    assert _same(fast(a, b), net(a, b))  # two inputs: concatenated by the MLP itself
    from streamrl.modules import MLP

    shaped = MLP(in_features=5, out_features=(2, 3), num_cells=[4])
    assert direct_call(shaped) is shaped


def test_an_mlp_stand_in_concatenates_several_inputs_as_the_mlp_does(monkeypatch):
    net = _mlp()
    fast = direct_call(net)
    obs = torch.randn(4, 3, 2, requires_grad=True)
    act = torch.randn(4, 3, 3, requires_grad=True)
    want = net(obs, act)
    layer_calls = []
    forward = nn.Linear.forward
    monkeypatch.setattr(nn.Linear, "forward",
                        lambda self, x: layer_calls.append(1) or forward(self, x))
    got = fast(obs, act)
    assert not layer_calls  # the layers ran as their ops, not as module calls
    assert _same(got, want)
    g1 = torch.autograd.grad(got.sum(), [obs, act, *net.parameters()])
    g2 = torch.autograd.grad(want.sum(), [obs, act, *net.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(g1, g2))
    # what the MLP refuses it still refuses, with its own errors
    with pytest.raises(ValueError, match="same leading dims"):
        fast(torch.randn(4, 2), torch.randn(5, 3))
    with pytest.raises(ValueError, match="5 features in total"):
        fast(torch.randn(4, 2), torch.randn(4, 2))
    with pytest.raises(TypeError, match="at least one input"):
        fast()
    with pytest.raises(ValueError, match=r"5 features in total.*shape \(\)"):
        fast(torch.tensor(1.0))  # a 0-d input, refused with the same error (no IndexError)
    assert layer_calls == []  # (the refused calls raised before any layer)


def test_a_leaf_s_hook_and_swapped_weights_are_seen():
    net = _mlp()
    fast = direct_call(net)
    x = torch.randn(3, 5)
    with torch.no_grad():
        net[0].weight = nn.Parameter(torch.zeros(8, 5))  # a new parameter object
    assert _same(fast(x), net(x))
    seen = []
    handle = net[2].register_forward_hook(lambda m, args, out: seen.append(m))
    try:
        assert _same(fast(x), net(x)) and len(seen) == 2
    finally:
        handle.remove()
    net[1].inplace = True  # read at each call
    assert _same(fast(x.clone()), net(x.clone()))


def test_a_subclass_s_own_forward_is_never_skipped():
    from streamrl.modules import MLP

    class Doubled(MLP):
        def forward(self, *inputs):
            return 2 * super().forward(*inputs)

    torch.manual_seed(0)
    net = Doubled(in_features=5, out_features=3, num_cells=[8])
    x = torch.randn(2, 5)
    assert _same(direct_call(net)(x), net(x))
    plain = _mlp()
    fast = direct_call(plain)
    plain.__class__ = Doubled  # its class's forward changed after the stand-in was made
    assert _same(fast(x), plain(x))
