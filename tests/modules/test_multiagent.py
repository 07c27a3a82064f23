"""MultiAgentMLP: agent dim, share_params, centralized, lazy inputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from streamrl.modules.models.multiagent import MultiAgentConvNet, MultiAgentMLP


def _net(centralized, share_params, n_in=4, **kwargs):
    return MultiAgentMLP(n_in, 2, n_agents=3, centralized=centralized,
                         share_params=share_params, num_cells=[8], **kwargs)


@pytest.mark.parametrize("centralized", [True, False])
@pytest.mark.parametrize("share_params", [True, False])
def test_shapes_and_parameter_layout(centralized, share_params):
    net = _net(centralized, share_params)
    assert net(torch.randn(5, 7, 3, 4)).shape == (5, 7, 3, 2)
    weight = net.params["0", "weight"]
    in_features = 12 if centralized else 4
    assert weight.shape == ((8, in_features) if share_params else (3, 8, in_features))
    # the template holds no parameters: parameters() are exactly the .params leaves
    assert {id(p) for p in net.parameters()} == {id(t) for t in net.params.values(True, True)}


def test_decentralized_agents_see_only_their_input():
    net = _net(False, False)
    x = torch.randn(2, 3, 4)
    y = x.clone()
    y[:, 0] += 1.0  # change agent 0 only
    out_x, out_y = net(x), net(y)
    assert not torch.allclose(out_x[:, 0], out_y[:, 0])
    torch.testing.assert_close(out_x[:, 1:], out_y[:, 1:])


def test_centralized_agents_see_everyone():
    net = _net(True, False)
    x = torch.randn(2, 3, 4)
    y = x.clone()
    y[:, 0] += 1.0
    assert not torch.allclose(net(x)[:, 2], net(y)[:, 2])
    shared = _net(True, True)
    out = shared(x)
    torch.testing.assert_close(out[:, 0], out[:, 2])  # one network, one joint input


def test_shared_params_is_one_network_and_heterogeneous_differ():
    shared = _net(False, True)
    x = torch.randn(1, 3, 4)
    x[:, 1] = x[:, 0]
    out = shared(x)
    torch.testing.assert_close(out[:, 0], out[:, 1])
    hetero = _net(False, False)
    out = hetero(x)
    assert not torch.allclose(out[:, 0], out[:, 1])  # independently initialised agents


def test_gradients_reach_params_and_several_inputs_concatenate():
    net = MultiAgentMLP(5, 1, n_agents=3, centralized=False, share_params=False, num_cells=[4])
    net(torch.randn(2, 3, 3), torch.randn(2, 3, 2)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_lazy_inputs_and_mlp_kwargs():
    net = MultiAgentMLP(None, 2, n_agents=3, centralized=False, share_params=False,
                        num_cells=[8], activation_class=nn.ReLU, activate_last_layer=True)
    assert net.params is None
    out = net(torch.randn(4, 3, 6))
    assert out.shape == (4, 3, 2) and (out >= 0).all()
    assert net.n_agent_inputs == 6 and net.params["0", "weight"].shape == (3, 8, 6)


def test_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="centralized"):
        MultiAgentMLP(4, 2, 3, share_params=True)
    with pytest.raises(ValueError, match="use_td_params"):
        _net(False, True, use_td_params=False)
    with pytest.raises(ValueError, match="n_agents"):
        MultiAgentMLP(4, 2, 0, centralized=False, share_params=True)
    with pytest.raises(ValueError, match="out_features"):
        _net(False, True, out_features=3)
    net = _net(False, False)
    with pytest.raises(ValueError, match="n_agents=3"):
        net(torch.randn(2, 4, 4))
    with pytest.raises(ValueError, match="features per agent"):
        net(torch.randn(2, 3, 5))


@pytest.mark.parametrize("centralized", [True, False])
@pytest.mark.parametrize("share_params", [True, False])
def test_conv_net_shapes_and_layout(centralized, share_params):
    net = MultiAgentConvNet(3, centralized, share_params, in_features=2, num_cells=[4],
                            kernel_sizes=3)
    assert net(torch.randn(5, 3, 2, 8, 8)).shape == (5, 3, 36)
    assert net(torch.randn(2, 5, 3, 2, 8, 8)).shape == (2, 5, 3, 36)
    weight = net.params["0", "weight"]
    channels = 6 if centralized else 2
    assert weight.shape == ((4, channels, 3, 3) if share_params else (3, 4, channels, 3, 3))


def test_conv_net_agents_and_lazy_channels():
    net = MultiAgentConvNet(2, centralized=False, share_params=False, num_cells=[4],
                            kernel_sizes=3, strides=1)
    x = torch.randn(1, 2, 3, 5, 5)
    out = net(x)
    assert net.n_agent_inputs == 3 and out.shape == (1, 2, 4 * 3 * 3)
    y = x.clone()
    y[:, 0] += 1.0
    torch.testing.assert_close(net(y)[:, 1], out[:, 1])  # agent 1 does not see agent 0
    with pytest.raises(ValueError, match="C, H, W"):
        net(torch.randn(1, 3, 3, 5, 5))


# ------------------------------------------------------- the direct chain of a shared MLP
@pytest.mark.parametrize("activation", [nn.Tanh, nn.ReLU, lambda: nn.ELU(alpha=0.3)],
                         ids=["tanh", "relu", "elu-alpha"])
@pytest.mark.parametrize("centralized", [False, True])
def test_the_direct_chain_computes_what_the_template_call_does(activation, centralized):
    torch.manual_seed(0)
    net = MultiAgentMLP(n_agent_inputs=4, n_agent_outputs=3, n_agents=2, centralized=centralized,
                        share_params=True, depth=2, num_cells=8, activation_class=activation)
    assert net._direct is not None
    x = torch.randn(5, 2, 4)
    direct = net(x)
    joint = x.flatten(-2, -1).unsqueeze(-2) if centralized else x
    reference = net._call(net.params, joint)
    if centralized:
        reference = reference.expand(5, 2, 3)
    assert torch.equal(direct, reference)
    grads = torch.autograd.grad(direct.square().sum(), list(net.params.values(True, True)))
    refs = torch.autograd.grad(reference.square().sum(), list(net.params.values(True, True)))
    for got, want in zip(grads, refs, strict=True):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("kwargs", [{"dropout": 0.1}, {"norm_class": nn.LayerNorm},
                                    {"activation_class": lambda: torch.tanh}],
                         ids=["dropout", "norm", "callable"])
def test_other_layers_keep_the_template_call(kwargs):
    net = MultiAgentMLP(n_agent_inputs=4, n_agent_outputs=3, n_agents=2, centralized=False,
                        share_params=True, depth=2, num_cells=8, **kwargs)
    assert net._direct is None
    assert net(torch.randn(5, 2, 4)).shape == (5, 2, 3)


def test_a_global_hook_sees_the_layers_again():
    net = MultiAgentMLP(n_agent_inputs=4, n_agent_outputs=3, n_agents=2, centralized=False,
                        share_params=True, depth=1, num_cells=8)
    seen = []
    handle = nn.modules.module.register_module_forward_hook(
        lambda m, i, o: seen.append(type(m).__name__))
    try:
        net(torch.randn(2, 4))
    finally:
        handle.remove()
    assert "Linear" in seen
