"""Compatibility with TorchRL 0.14's ``torchrl.modules.models`` (and ``.models.models``,
``.models.multiagent``, ``.models.utils``) and the model names of ``torchrl.modules``: every
name listed here imports from the same path under ``streamrl`` and its documented constructor
and main call work. Names of these modules that streamrl does not provide are listed in
docs/torchrl_differences.md."""

import importlib

import pytest
import torch
from torch import nn

PROVIDED = {
    "torchrl.modules": [
        "BatchRenorm1d", "ConsistentDropout", "ConsistentDropoutModule", "MLP", "ConvNet", "Conv3dNet", "DdpgCnnActor", "DdpgCnnQNet", "DdpgMlpActor",
        "DdpgMlpQNet", "DuelingCnnDQNet", "MultiAgentConvNet", "MultiAgentMLP", "NoisyLazyLinear", "NoisyLinear",
        "Squeeze2dLayer", "SqueezeLayer", "reset_noise", "DecisionTransformer", "DTActor",
        "OnlineDTActor",
    ],
    "torchrl.modules.models": [
        "BatchRenorm1d", "ConsistentDropout", "ConsistentDropoutModule", "MLP", "ConvNet", "Conv2dNet", "Conv3dNet", "DdpgCnnActor", "DdpgCnnQNet",
        "DdpgMlpActor", "DdpgMlpQNet", "DuelingCnnDQNet", "DuelingMlpDQNet", "MultiAgentConvNet",
        "MultiAgentMLP",
        "NoisyLazyLinear", "NoisyLinear", "Squeeze2dLayer", "SqueezeLayer", "reset_noise",
        "DecisionTransformer", "DTActor", "OnlineDTActor",
    ],
    "torchrl.modules.models.models": [
        "MLP", "ConvNet", "Conv2dNet", "Conv3dNet", "DdpgCnnActor", "DdpgCnnQNet",
        "DdpgMlpActor", "DdpgMlpQNet", "DuelingCnnDQNet", "DuelingMlpDQNet", "NoisyLinear",
        "SquashDims", "Squeeze2dLayer", "SqueezeLayer", "ddpg_init_last_layer", "DTActor",
        "OnlineDTActor",
    ],
    "torchrl.modules.models.decision_transformer": ["DecisionTransformer"],
    "torchrl.modules.models.multiagent": ["MultiAgentConvNet", "MultiAgentMLP"],
    "torchrl.modules.models.utils": ["SquashDims", "Squeeze2dLayer", "SqueezeLayer"],
}


@pytest.mark.parametrize("path", sorted(PROVIDED))
def test_names_import_from_the_same_path(path):
    module = importlib.import_module(path.replace("torchrl", "streamrl", 1))
    models = importlib.import_module("streamrl.modules.models")
    for name in PROVIDED[path]:
        obj = getattr(module, name)
        assert obj.__doc__, f"{path}.{name} has no docstring"
        if hasattr(models, name):
            assert obj is getattr(models, name)  # one object whichever path it comes from


def test_mlp_documented_arguments():
    from streamrl.modules import MLP

    net = MLP(
        in_features=4, out_features=(2, 3), depth=2, num_cells=16, activation_class=nn.ReLU,
        activation_kwargs={"inplace": False}, norm_class=nn.LayerNorm, norm_kwargs=[{}, {}],
        dropout=0.1, bias_last_layer=True, single_bias_last_layer=True, layer_class=nn.Linear,
        layer_kwargs={"dtype": torch.float32}, activate_last_layer=False, device="cpu",
    )
    assert net(torch.randn(5, 4)).shape == (5, 2, 3)


def test_convnets_documented_arguments():
    from streamrl.modules import Conv3dNet, ConvNet
    from streamrl.modules.models.utils import SquashDims

    kwargs = dict(
        in_features=3, depth=2, num_cells=[4, 8], kernel_sizes=3, strides=1, paddings=[1, 0],
        activation_class=nn.ELU, activation_kwargs=None, norm_class=None, norm_kwargs=None,
        bias_last_layer=False, aggregator_class=SquashDims, aggregator_kwargs=None,
        squeeze_output=False, device="cpu",
    )
    assert ConvNet(**kwargs)(torch.randn(2, 3, 10, 10)).shape == (2, 8 * 8 * 8)
    assert Conv3dNet(**kwargs)(torch.randn(2, 3, 6, 10, 10)).shape == (2, 8 * 4 * 8 * 8)


def test_ddpg_nets_documented_calls():
    from streamrl.modules import DdpgCnnActor, DdpgCnnQNet, DdpgMlpActor, DdpgMlpQNet

    assert DdpgMlpActor(action_dim=4, mlp_net_kwargs=None, device="cpu")(
        torch.zeros(10, 6)).shape == (10, 4)
    assert DdpgMlpQNet(mlp_net_kwargs_net1=None, mlp_net_kwargs_net2=None)(
        torch.zeros(1, 32), torch.zeros(1, 4)).shape == (1, 1)
    action, hidden = DdpgCnnActor(4, conv_net_kwargs=None, mlp_net_kwargs=None,
                                  use_avg_pooling=False)(torch.zeros(1, 3, 64, 64))
    assert action.shape == (1, 4) and hidden.ndim == 2
    assert DdpgCnnQNet(use_avg_pooling=True)(torch.zeros(1, 3, 64, 64),
                                             torch.zeros(1, 4)).shape == (1, 1)


def test_dueling_cnn_dqnet_documented_signature():
    from streamrl.modules import DuelingCnnDQNet

    net = DuelingCnnDQNet(out_features=20, out_features_value=1, cnn_kwargs=None,
                          mlp_kwargs=None, device="cpu")
    assert net(torch.zeros(1, 3, 64, 64)).shape == (1, 20)


def test_squeeze_layers_and_multiagent_mlp():
    from streamrl.modules import MultiAgentMLP, Squeeze2dLayer, SqueezeLayer

    assert SqueezeLayer(dims=(-1,))(torch.zeros(2, 1)).shape == (2,)
    assert Squeeze2dLayer()(torch.zeros(2, 4, 1, 1)).shape == (2, 4)
    net = MultiAgentMLP(n_agent_inputs=4, n_agent_outputs=2, n_agents=3, centralized=True,
                        share_params=False, device="cpu", depth=2, num_cells=32,
                        activation_class=nn.Tanh)
    assert net(torch.randn(8, 3, 4)).shape == (8, 3, 2)


def test_batch_renorm_documented_arguments():
    from streamrl.modules import BatchRenorm1d

    norm = BatchRenorm1d(4, momentum=0.01, eps=1e-5, max_r=3.0, max_d=5.0, warmup_steps=10,
                         smooth=False)
    assert norm(torch.randn(8, 4)).shape == (8, 4)


def test_noisy_layers_documented_arguments():
    from streamrl.modules import NoisyLazyLinear, NoisyLinear

    layer = NoisyLinear(in_features=3, out_features=2, bias=True, device="cpu", dtype=None,
                        std_init=0.5)
    assert layer(torch.randn(4, 3)).shape == (4, 2)
    lazy = NoisyLazyLinear(out_features=2, bias=True, device="cpu", dtype=None, std_init=0.5)
    assert lazy(torch.randn(4, 5)).shape == (4, 2)


def test_consistent_dropout_documented_arguments():
    from tensordict import TensorDict

    from streamrl.modules import ConsistentDropout, ConsistentDropoutModule

    out, mask = ConsistentDropout(p=0.5)(torch.ones(3, 4))
    assert out.shape == mask.shape == (3, 4)
    module = ConsistentDropoutModule(p=0.1, in_keys=["x", "mask"], out_keys=None,
                                     input_shape=(4,), input_dtype=torch.float32)
    assert module(TensorDict({"x": torch.randn(3, 4)}, [3]))["mask"].shape == (3, 4)


def test_multiagent_convnet_documented_arguments():
    from streamrl.modules import MultiAgentConvNet

    net = MultiAgentConvNet(n_agents=3, centralized=True, share_params=False, in_features=2,
                            device="cpu", num_cells=[4], kernel_sizes=3, strides=2, paddings=0,
                            activation_class=nn.ELU, use_td_params=True)
    assert net(torch.zeros(5, 3, 2, 8, 8)).shape == (5, 3, 36)


def test_decision_transformer_documented_usage():
    import inspect

    from streamrl.modules import DecisionTransformer, DTActor, OnlineDTActor

    assert list(inspect.signature(DecisionTransformer).parameters) == [
        "state_dim", "action_dim", "config", "device"]
    for actor in (DTActor, OnlineDTActor):
        assert list(inspect.signature(actor).parameters) == [
            "state_dim", "action_dim", "transformer_config", "device"]
    config = DecisionTransformer.default_config()
    config.n_embd, config.n_inner = 32, 64
    model = DecisionTransformer(state_dim=4, action_dim=2, config=config)
    out = model(torch.randn(3, 2, 10, 4), torch.randn(3, 2, 10, 2), torch.randn(3, 2, 10, 1))
    assert out.shape == (3, 2, 10, 32)
    config = DecisionTransformer.DTConfig(n_embd=32, n_inner=64)
    mu, std = OnlineDTActor(state_dim=4, action_dim=2, transformer_config=config)(
        torch.randn(5, 10, 4), torch.randn(5, 10, 2), torch.randn(5, 10, 1))
    assert mu.shape == std.shape == (5, 10, 2)
