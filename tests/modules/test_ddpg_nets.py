"""DDPG networks, SqueezeLayer / Squeeze2dLayer, Conv3dNet and the TorchRL MLP/ConvNet args."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from streamrl.modules import (
    MLP,
    Conv3dNet,
    ConvNet,
    DdpgCnnActor,
    DdpgCnnQNet,
    DdpgMlpActor,
    DdpgMlpQNet,
    NoisyLinear,
    Squeeze2dLayer,
    SqueezeLayer,
)
from streamrl.modules.models import ddpg_init_last_layer


class TestDdpgMlp:
    def test_actor_shapes_and_small_last_layer(self):
        actor = DdpgMlpActor(action_dim=4)
        assert actor(torch.zeros(10, 6)).shape == (10, 4)
        assert [m.out_features for m in actor.mlp if isinstance(m, nn.Linear)] == [400, 300, 4]
        assert actor.mlp[-1].weight.abs().max() <= 3e-3
        assert actor.mlp[-1].bias.abs().max() <= 3e-3
        assert any(isinstance(m, nn.ELU) for m in actor.mlp)

    def test_actor_overrides(self):
        actor = DdpgMlpActor(2, mlp_net_kwargs={"num_cells": [8], "depth": 1, "in_features": 3})
        assert actor(torch.zeros(5, 3)).shape == (5, 2)
        with pytest.raises(ValueError, match="device"):
            DdpgMlpActor(2, mlp_net_kwargs={"device": "cpu"})

    def test_qnet_reads_observation_then_action(self):
        net = DdpgMlpQNet()
        assert net(torch.zeros(1, 32), torch.zeros(1, 4)).shape == (1, 1)
        assert net.mlp1[0].out_features == 400 and isinstance(net.mlp1[-1], nn.ELU)
        # the action joins after mlp1: mlp2's first layer reads 400 + action_dim features
        assert net.mlp2[0].weight.shape[1] == 404
        assert net.mlp2[-1].weight.abs().max() <= 3e-3

    def test_init_lazy_last_layer_after_materialization(self):
        net = DdpgMlpQNet(mlp_net_kwargs_net2={"num_cells": [], "depth": 0})
        net(torch.zeros(3, 5), torch.zeros(3, 2))
        assert net.mlp2[-1].weight.abs().max() <= 3e-3

    def test_init_errors(self):
        with pytest.raises(ValueError, match="no linear layer"):
            ddpg_init_last_layer(nn.Sequential(nn.ReLU()))
        with pytest.raises(ValueError, match="scale"):
            ddpg_init_last_layer(MLP(in_features=2, out_features=1), scale=0)


class TestDdpgCnn:
    def test_actor_returns_action_and_hidden(self):
        actor = DdpgCnnActor(action_dim=4)
        action, hidden = actor(torch.zeros(2, 3, 64, 64))
        assert action.shape == (2, 4) and hidden.shape == (2, 64 * 6 * 6)
        assert actor.mlp[-1].weight.abs().max() <= 3e-4

    def test_actor_avg_pooling(self):
        actor = DdpgCnnActor(action_dim=2, use_avg_pooling=True)
        action, hidden = actor(torch.zeros(2, 3, 64, 64))
        assert hidden.shape == (2, 64) and action.shape == (2, 2)
        assert isinstance(actor.convnet[-1], Squeeze2dLayer)

    def test_qnet(self):
        net = DdpgCnnQNet()
        assert net(torch.zeros(2, 3, 64, 64), torch.zeros(2, 4)).shape == (2, 1)
        assert isinstance(net.convnet[-2], nn.AdaptiveAvgPool2d)
        flat = DdpgCnnQNet(use_avg_pooling=False)
        assert flat(torch.zeros(2, 3, 64, 64), torch.zeros(2, 4)).shape == (2, 1)
        assert flat.mlp[0].weight.shape[1] == 128 * 6 * 6 + 4


class TestSqueezeLayers:
    def test_squeeze_in_order(self):
        assert SqueezeLayer((-1, -2))(torch.zeros(3, 1, 1, 1)).shape == (3, 1)
        assert SqueezeLayer((-2,))(torch.zeros(3, 1, 4)).shape == (3, 4)
        assert SqueezeLayer()(torch.zeros(3, 1)).shape == (3,)
        assert Squeeze2dLayer()(torch.zeros(2, 5, 1, 1)).shape == (2, 5)

    def test_non_singleton_is_an_error(self):
        with pytest.raises(ValueError, match="singleton"):
            SqueezeLayer()(torch.zeros(3, 2))
        with pytest.raises(ValueError, match="singleton"):
            Squeeze2dLayer()(torch.zeros(2, 5, 2, 1))
        with pytest.raises(ValueError, match="dims"):
            SqueezeLayer(())


class TestTorchRLArgs:
    def test_single_bias_last_layer(self):
        net = MLP(in_features=3, out_features=4, num_cells=[5], single_bias_last_layer=True)
        biases = [p for n, p in net.named_parameters() if n.endswith("bias")]
        assert biases[-1].shape == (1,)
        with torch.no_grad():
            biases[-1].fill_(2.0)
        x = torch.randn(6, 3)
        linear_only = net[:-1](x)
        torch.testing.assert_close(net(x), linear_only + 2.0)
        with pytest.raises(ValueError, match="noisy"):
            MLP(3, 4, num_cells=[5], layer_class=NoisyLinear, single_bias_last_layer=True)
        with pytest.raises(ValueError, match="bias_last_layer"):
            MLP(3, 4, bias_last_layer=False, single_bias_last_layer=True)

    def test_per_layer_kwargs(self):
        net = MLP(
            in_features=2, out_features=1, num_cells=[4, 4], activation_class=nn.LeakyReLU,
            activation_kwargs=[{"negative_slope": 0.1}, {"negative_slope": 0.2}],
            layer_kwargs={"dtype": torch.float64},
        )
        slopes = [m.negative_slope for m in net if isinstance(m, nn.LeakyReLU)]
        assert slopes == [0.1, 0.2]
        assert all(m.weight.dtype == torch.float64 for m in net if isinstance(m, nn.Linear))
        with pytest.raises(ValueError, match="activation_kwargs"):
            MLP(2, 1, num_cells=[4, 4], activation_kwargs=[{}])
        with pytest.raises(ValueError, match="layer_kwargs"):
            MLP(2, 1, num_cells=[4], layer_kwargs=[{}])

    def test_convnet_bias_last_layer(self):
        cnn = ConvNet(in_features=1, num_cells=[2, 3], bias_last_layer=False)
        convs = [m for m in cnn if isinstance(m, nn.Conv2d)]
        assert convs[0].bias is not None and convs[1].bias is None

    def test_conv3dnet(self):
        net = Conv3dNet(num_cells=[8, 8])
        assert isinstance(net[0], nn.LazyConv3d)
        assert net(torch.randn(2, 3, 8, 16, 16)).shape == (2, 8 * 4 * 12 * 12)
        assert net(torch.randn(4, 2, 3, 8, 16, 16)).shape == (4, 2, 8 * 4 * 12 * 12)
        with pytest.raises(ValueError, match="C, D, H, W"):
            net(torch.randn(3, 8, 8))
