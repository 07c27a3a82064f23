"""MLP, ConvNet, SquashDims, dueling heads and recurrent modules."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torch import nn

from streamrl.modules import (
    MLP,
    Conv3dNet,
    ConvNet,
    DuelingCnnDQNet,
    DuelingHead,
    DuelingMlpDQNet,
    GRUModule,
    LSTMModule,
)
from streamrl.modules.models.utils import SquashDims, Squeeze


class TestMLP:
    def test_repr_matches_seed(self):
        net = MLP(num_cells=[32, 64], out_features=4, activation_class=nn.ELU)
        assert repr(net) == (
            "MLP(\n"
            "  (0): LazyLinear(in_features=0, out_features=32, bias=True)\n"
            "  (1): ELU(alpha=1.0)\n"
            "  (2): Linear(in_features=32, out_features=64, bias=True)\n"
            "  (3): ELU(alpha=1.0)\n"
            "  (4): Linear(in_features=64, out_features=4, bias=True)\n"
            ")"
        )
        assert net(torch.randn(10, 3)).shape == (10, 4)

    def test_defaults_depth_and_int_cells(self):
        net = MLP(in_features=3, out_features=2)
        linears = [m for m in net if isinstance(m, nn.Linear)]
        assert [m.out_features for m in linears] == [32, 32, 32, 2]
        assert all(isinstance(m, nn.Tanh) for m in net[1::2])
        net = MLP(in_features=3, out_features=2, num_cells=16, depth=1)
        assert [m.out_features for m in net if isinstance(m, nn.Linear)] == [16, 2]
        assert MLP(in_features=3, out_features=2, depth=0)(torch.randn(4, 3)).shape == (4, 2)

    def test_several_inputs_concatenated(self):
        net = MLP(out_features=1, num_cells=[4, 5])
        out = net(torch.randn(3, 3), torch.randn(3, 4))
        assert out.shape == (3, 1)
        assert net[0].weight.shape == (4, 7)
        x, a = torch.randn(2, 3), torch.randn(2, 4)
        assert torch.equal(net(x, a), net(torch.cat([x, a], -1)))

    def test_multi_dim_output_and_batch_dims(self):
        net = MLP(in_features=3, out_features=(2, 5), num_cells=[8])
        assert net(torch.randn(4, 6, 3)).shape == (4, 6, 2, 5)

    def test_norm_dropout_activate_last(self):
        net = MLP(in_features=3, out_features=2, num_cells=[8], norm_class=nn.LayerNorm,
                  dropout=0.5, activate_last_layer=True, activation_class=nn.ReLU)
        kinds = [type(m) for m in net]
        assert kinds == [nn.Linear, nn.LayerNorm, nn.ReLU, nn.Dropout, nn.Linear, nn.ReLU]
        net.eval()
        assert (net(torch.randn(5, 3)) >= 0).all()

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="out_features"):
            MLP(num_cells=[4])
        with pytest.raises(ValueError, match="depth=2"):
            MLP(out_features=1, num_cells=[4, 4, 4], depth=2)
        with pytest.raises(ValueError, match="dropout"):
            MLP(out_features=1, dropout=1.5)
        with pytest.raises(TypeError, match="out_features"):
            MLP(out_features="a")

    def test_wrong_input_shapes_name_shapes(self):
        net = MLP(in_features=3, out_features=1, num_cells=[4])
        with pytest.raises(ValueError, match=r"3 features.*\(2, 5\)"):
            net(torch.randn(2, 5))
        with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 1\)"):
            MLP(out_features=1)(torch.randn(2, 3), torch.randn(4, 1))


class TestConvNet:
    def test_repr_matches_seed(self):
        cnn = ConvNet(num_cells=[32, 64], kernel_sizes=[8, 4], strides=[2, 1],
                      aggregator_class=SquashDims)
        assert repr(cnn) == (
            "ConvNet(\n"
            "  (0): LazyConv2d(0, 32, kernel_size=(8, 8), stride=(2, 2))\n"
            "  (1): ELU(alpha=1.0)\n"
            "  (2): Conv2d(32, 64, kernel_size=(4, 4), stride=(1, 1))\n"
            "  (3): ELU(alpha=1.0)\n"
            "  (4): SquashDims()\n"
            ")"
        )
        assert cnn(torch.randn(10, 3, 32, 32)).shape == (10, 6400)

    def test_leading_batch_dims_and_unbatched(self):
        cnn = ConvNet(in_features=3, num_cells=[4], kernel_sizes=3)
        x = torch.randn(2, 5, 3, 8, 8)
        out = cnn(x)
        assert out.shape == (2, 5, 4 * 6 * 6)
        torch.testing.assert_close(out[1, 2], cnn(x[1, 2:3])[0])
        assert cnn(torch.randn(3, 8, 8)).shape == (4 * 6 * 6,)

    def test_paddings_no_aggregator_squeeze(self):
        cnn = ConvNet(in_features=1, num_cells=[2, 3], kernel_sizes=3, paddings=[1, 0],
                      aggregator_class=None)
        assert cnn(torch.randn(4, 1, 5, 5)).shape == (4, 3, 3, 3)
        squeezed = ConvNet(in_features=1, num_cells=[2], kernel_sizes=3, aggregator_class=None,
                           squeeze_output=True)
        assert squeezed(torch.randn(4, 1, 3, 3)).shape == (4, 2)

    def test_errors(self):
        with pytest.raises(ValueError, match="depth=1 and num_cells=2 length conflict"):
            ConvNet(num_cells=[4, 4], kernel_sizes=[3])
        cnn = ConvNet(in_features=3, num_cells=[4])
        with pytest.raises(ValueError, match="3 input channels"):
            cnn(torch.randn(2, 1, 8, 8))
        with pytest.raises(ValueError, match=r"at least 3 dimensions \[\*batch, C, H, W\]"):
            cnn(torch.randn(8, 8))

    @pytest.mark.parametrize("cls", [ConvNet, Conv3dNet])
    def test_depth_from_the_list_arguments(self, cls):
        def convs(net):
            return [m for m in net if isinstance(m, (nn.Conv2d, nn.Conv3d))]

        assert len(convs(cls(in_features=2))) == 3
        assert [c.out_channels for c in convs(cls(in_features=2, depth=2))] == [32, 32]
        net = cls(in_features=2, num_cells=8, strides=[1, 2])
        assert [c.stride[0] for c in convs(net)] == [1, 2]
        assert [c.out_channels for c in convs(net)] == [8, 8]
        with pytest.raises(ValueError, match="Null depth"):
            cls(in_features=2, num_cells=8, depth=0)
        with pytest.raises(ValueError, match="depth=None requires one of"):
            cls(in_features=2, num_cells=8)
        with pytest.raises(ValueError, match="depth=2 and num_cells=1 length conflict"):
            cls(in_features=2, num_cells=[8], kernel_sizes=[3, 3])
        with pytest.raises(ValueError, match="depth=3 and paddings=2 length conflict"):
            cls(in_features=2, num_cells=8, depth=3, paddings=[0, 1])

    def test_conv3d_needs_four_dims(self):
        net = Conv3dNet(in_features=3, num_cells=[4])
        assert net(torch.randn(3, 5, 5, 5)).shape == (4 * 3 * 3 * 3,)
        with pytest.raises(ValueError, match="at least 4 dimensions"):
            net(torch.randn(3, 16, 16))


def test_squash_dims_and_squeeze():
    assert SquashDims()(torch.zeros(2, 3, 4, 5)).shape == (2, 60)
    assert SquashDims(2)(torch.zeros(2, 3, 4, 5)).shape == (2, 3, 20)
    with pytest.raises(ValueError, match="at least 3 dims"):
        SquashDims()(torch.zeros(3, 4))
    assert Squeeze(-1)(torch.zeros(4, 1)).shape == (4,)


class TestDueling:
    def test_head_decomposition(self):
        head = DuelingHead(5, mlp_kwargs={"num_cells": [8]})
        feats = torch.randn(7, 6)
        q = head(feats)
        # mean over actions of Q is exactly the value stream
        torch.testing.assert_close(q.mean(-1, keepdim=True), head.value(feats))
        adv = head.advantage(feats)
        torch.testing.assert_close(q - q.mean(-1, keepdim=True), adv - adv.mean(-1, keepdim=True))

    def test_nets(self):
        assert DuelingMlpDQNet(3)(torch.randn(4, 6)).shape == (4, 3)
        assert DuelingMlpDQNet((3, 2))(torch.randn(4, 6)).shape == (4, 3, 2)
        cnn = {"num_cells": [4], "kernel_sizes": 3, "strides": 1}
        net = DuelingCnnDQNet(2, cnn_kwargs=cnn, mlp_kwargs={"num_cells": [8]})
        assert net(torch.randn(3, 1, 6, 6)).shape == (3, 2)
        assert DuelingCnnDQNet(2, 2, cnn_kwargs=cnn)(torch.randn(3, 1, 6, 6)).shape == (3, 2)
        with pytest.raises(ValueError, match="out_features"):
            DuelingHead(0)
        with pytest.raises(ValueError, match="out_features_value"):
            DuelingCnnDQNet(3, 2)
        with pytest.raises(ValueError, match="out_features"):
            DuelingHead(3, mlp_kwargs={"out_features": 4})


def _rollout_stepwise(module, td):
    steps = td.batch_size[1]
    outs, carried, last = [], None, None
    for t in range(steps):
        step = td[:, t].clone()
        if carried is not None:
            step.update(carried)
        module(step)
        outs.append(step[module.out_keys[0]])
        carried = step["next"].clone()
        last = step
    return torch.stack(outs, 1), last


@pytest.mark.parametrize("cls", [LSTMModule, GRUModule])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_recurrent_stepwise_equals_sequence_with_resets(cls, num_layers):
    torch.manual_seed(0)
    module = cls(3, 6, num_layers=num_layers, in_key="obs", out_key="feat")
    batch, steps = 4, 9
    is_init = torch.zeros(batch, steps, 1, dtype=torch.bool)
    is_init[:, 0] = True
    is_init[0, 3] = is_init[2, 3] = is_init[1, 6] = is_init[3, 8] = True
    td = TensorDict({"obs": torch.randn(batch, steps, 3), "is_init": is_init}, [batch, steps])
    seq = module.set_recurrent_mode(True)(td.clone())
    step_out, last = _rollout_stepwise(module, td)
    torch.testing.assert_close(seq["feat"], step_out)
    for key in module.out_keys[1:]:
        torch.testing.assert_close(seq[key][:, -1], last[key])
    assert module.recurrent_mode is False  # set_recurrent_mode returned a copy


def test_recurrent_sequence_initial_state_and_reset():
    torch.manual_seed(0)
    lstm = LSTMModule(2, 4, in_key="x", out_key="y")
    h0 = torch.randn(3, 5, 1, 4)
    c0 = torch.randn(3, 5, 1, 4)
    td = TensorDict({"x": torch.randn(3, 5, 2), "recurrent_state_h": h0, "recurrent_state_c": c0,
                     "is_init": torch.zeros(3, 5, 1, dtype=torch.bool)}, [3, 5])
    seq = lstm.set_recurrent_mode()(td.clone())
    # reference: nn.LSTM from the t=0 state
    ref, _ = lstm.rnn(td["x"], (h0[:, 0].transpose(0, 1), c0[:, 0].transpose(0, 1)))
    torch.testing.assert_close(seq["y"], ref)
    # a reset at t=0 equals starting from zeros
    td["is_init"][:, 0] = True
    reset = lstm.set_recurrent_mode()(td.clone())
    ref0, _ = lstm.rnn(td["x"])
    torch.testing.assert_close(reset["y"], ref0)


def test_recurrent_missing_state_is_zero_and_initial_state_helper():
    gru = GRUModule(2, 3)
    x = torch.randn(4, 2)
    a = gru(TensorDict({"embed": x}, [4]))
    b = gru(TensorDict({"embed": x, "recurrent_state": torch.zeros(4, 1, 3)}, [4]))
    torch.testing.assert_close(a["embed"], b["embed"])
    td = gru.initial_state(TensorDict({"embed": x}, [4]))
    assert td["recurrent_state"].shape == (4, 1, 3)
    # is_init resets a non-zero state
    c = gru(TensorDict({"embed": x, "recurrent_state": torch.ones(4, 1, 3),
                        "is_init": torch.ones(4, 1, dtype=torch.bool)}, [4]))
    torch.testing.assert_close(c["embed"], a["embed"])


def test_recurrent_bad_input():
    lstm = LSTMModule(3, 4, in_key="obs")
    with pytest.raises(KeyError, match="'obs'"):
        lstm(TensorDict({"other": torch.randn(2, 3)}, [2]))
    with pytest.raises(ValueError, match=r"'obs'.*\(2, 3\).*\(2, 5\)"):
        lstm(TensorDict({"obs": torch.randn(2, 5)}, [2]))
    bad_state = TensorDict({"obs": torch.randn(2, 3), "recurrent_state_h": torch.zeros(2, 4)}, [2])
    with pytest.raises(ValueError, match=r"recurrent_state_h.*\(2, 1, 4\).*\(2, 4\)"):
        lstm(bad_state)
    with pytest.raises(ValueError, match="time dim"):
        lstm.set_recurrent_mode()(TensorDict({"obs": torch.randn(3)}, []))
    with pytest.raises(ValueError, match="in_keys"):
        LSTMModule(3, 4, in_keys=["a", "b"])
    with pytest.raises(ValueError, match="hidden_size"):
        GRUModule(3, 0)


def test_recurrent_policy_in_env_rollout_matches_sequence_mode():
    """A recurrent Q-policy rolled out in a gym env (auto-resets inside the rollout) gives
    the same features as sequence mode over the collected data."""
    from tensordict.nn import TensorDictModule, TensorDictSequential

    from streamrl.envs import TransformedEnv
    from streamrl.envs.libs.gym import GymEnv
    from streamrl.envs.transforms import InitTracker
    from streamrl.modules import QValueModule

    torch.manual_seed(0)
    env = TransformedEnv(GymEnv("CartPole-v1"), InitTracker())
    env.set_seed(0)
    lstm = LSTMModule(4, 8, in_key="observation", out_key="feat")
    head = TensorDictModule(MLP(in_features=8, out_features=2, num_cells=[8]), ["feat"],
                            ["action_value"])
    policy = TensorDictSequential(lstm, head, QValueModule(spec=env.action_spec))
    with torch.no_grad():
        rollout = env.rollout(max_steps=120, policy=policy, break_when_any_done=False)
        assert rollout["is_init"][1:].any()  # episodes restarted inside the rollout
        seq = lstm.set_recurrent_mode()(rollout.unsqueeze(0).clone())
    torch.testing.assert_close(seq["feat"][0], rollout["feat"])
    env.close()


def test_noisy_linear():
    from streamrl.modules import NoisyLinear, reset_noise

    torch.manual_seed(0)
    net = MLP(in_features=4, out_features=2, num_cells=[8], layer_class=NoisyLinear)
    assert isinstance(net[0], NoisyLinear) and isinstance(net[2], NoisyLinear)
    x = torch.randn(5, 4)
    a = net(x)
    torch.testing.assert_close(net(x), a)  # same noise until reset
    reset_noise(net)
    assert not torch.allclose(net(x), a)
    net.eval()
    layer = net[0]
    torch.testing.assert_close(layer(x), x @ layer.weight_mu.T + layer.bias_mu)
    net.train()
    loss = net(x).sum()
    loss.backward()
    assert layer.weight_sigma.grad is not None and layer.weight_mu.grad is not None
    # noise is factorised: eps_w = f(eps_out) f(eps_in)^T has rank one
    assert torch.linalg.matrix_rank(layer.weight_epsilon).item() == 1
    # without in_features the first layer is a NoisyLazyLinear (TorchRL's choice)
    from streamrl.modules import NoisyLazyLinear

    lazy = MLP(out_features=2, num_cells=[8], layer_class=NoisyLinear)
    assert isinstance(lazy[0], NoisyLazyLinear) and lazy(torch.randn(5, 3)).shape == (5, 2)
    assert lazy[0].in_features == 3
    with pytest.raises(ValueError, match="in_features"):
        MLP(out_features=2, layer_class=nn.Bilinear)


@pytest.mark.parametrize("norm_class, norm_kwargs", [
    (nn.BatchNorm1d, {"num_features": 16}),  # TorchRL's way: the kwargs give the size
    (nn.BatchNorm1d, {}),  # streamrl's shortcut: the layer width is passed
    (nn.LazyBatchNorm1d, {}),
    (nn.LayerNorm, {"normalized_shape": 16}),
    (nn.LayerNorm, {"elementwise_affine": False}),
])
def test_mlp_norm_layers(norm_class, norm_kwargs):
    net = MLP(in_features=3, out_features=2, num_cells=[16, 16], norm_class=norm_class,
              norm_kwargs=norm_kwargs)
    norms = [m for m in net if isinstance(m, norm_class)]
    assert len(norms) == 2
    assert net(torch.randn(4, 3)).shape == (4, 2)
    for m in norms:
        size = getattr(m, "num_features", None) or m.normalized_shape[0]
        assert size == 16


def test_mlp_activation_factory_may_return_a_plain_callable():
    def shifted(shift):
        return lambda x: x + shift

    net = MLP(in_features=2, out_features=2, num_cells=[2, 2], activation_class=shifted,
              activation_kwargs=[{"shift": 1.0}, {"shift": 2.0}], layer_kwargs={"bias": False})
    for layer in net:
        if isinstance(layer, nn.Linear):
            nn.init.eye_(layer.weight)
    assert net(torch.zeros(2)).tolist() == [3.0, 3.0]


def test_mlp_layer_kwargs_bias_wins_over_the_default():
    def layer(*args, **kwargs):  # a factory, not a class
        return nn.Linear(*args, **kwargs)

    net = MLP(in_features=3, out_features=2, num_cells=[4], layer_class=layer,
              layer_kwargs=[{"bias": False}, {"bias": True}], bias_last_layer=False)
    linears = [m for m in net if isinstance(m, nn.Linear)]
    assert [m.bias is None for m in linears] == [True, False]


def test_recurrent_sequence_mode_keeps_collected_next_states():
    lstm = LSTMModule(2, 3, in_key="x", out_key="y").set_recurrent_mode()
    collected = torch.randn(2, 4, 1, 3)
    td = TensorDict({"x": torch.randn(2, 4, 2),
                     "next": {"recurrent_state_h": collected.clone(),
                              "recurrent_state_c": collected.clone()}}, [2, 4])
    lstm(td)
    torch.testing.assert_close(td["next", "recurrent_state_h"], collected)
    fresh = lstm(TensorDict({"x": td["x"]}, [2, 4]))
    assert (fresh["next", "recurrent_state_h"][:, :-1] == 0).all()
    assert (fresh["next", "recurrent_state_h"][:, -1] != 0).any()
