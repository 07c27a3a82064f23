"""LSTM / GRU / LSTMCell / GRUCell in plain PyTorch ops: the same outputs as torch's fused
modules with the same weights, vmap, and the modules' python_based path."""

import pytest
import torch
from tensordict import TensorDict
from torch import nn

from streamrl.modules import GRU, LSTM, GRUCell, GRUModule, LSTMCell, LSTMModule


def _copy(src: nn.Module, dst: nn.Module) -> nn.Module:
    dst.load_state_dict(src.state_dict())
    return dst


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_lstm_matches_nn_lstm(batch_first, bias):
    torch.manual_seed(0)
    ours = LSTM(3, 5, num_layers=2, batch_first=batch_first, bias=bias)
    ref = _copy(ours, nn.LSTM(3, 5, num_layers=2, batch_first=batch_first, bias=bias))
    x = torch.randn(4, 6, 3)
    h0, c0 = torch.randn(2, 4 if batch_first else 6, 5), torch.randn(2, 4 if batch_first else 6, 5)
    out, (h, c) = ours(x, (h0, c0))
    ref_out, (ref_h, ref_c) = ref(x, (h0, c0))
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(h, ref_h)
    torch.testing.assert_close(c, ref_c)
    torch.testing.assert_close(ours(x)[0], ref(x)[0])  # zero states by default


def test_gru_matches_nn_gru_and_gradients_flow():
    torch.manual_seed(0)
    ours = GRU(3, 5, num_layers=2)
    ref = _copy(ours, nn.GRU(3, 5, num_layers=2, batch_first=True))
    x = torch.randn(4, 6, 3, requires_grad=True)
    out, h = ours(x)
    ref_out, ref_h = ref(x)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(h, ref_h)
    out.sum().backward()
    assert ours.weight_hh_l1.grad is not None and x.grad is not None


def test_cells_match_torch_cells_batched_and_unbatched():
    torch.manual_seed(0)
    lstm, gru = LSTMCell(3, 5), GRUCell(3, 5, bias=False)
    ref_lstm, ref_gru = _copy(lstm, nn.LSTMCell(3, 5)), _copy(gru, nn.GRUCell(3, 5, bias=False))
    x, h, c = torch.randn(4, 3), torch.randn(4, 5), torch.randn(4, 5)
    for a, b in zip(lstm(x, (h, c)), ref_lstm(x, (h, c))):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(gru(x, h), ref_gru(x, h))
    torch.testing.assert_close(gru(x[0], h[0]), ref_gru(x[0], h[0]))
    assert lstm(x[0])[0].shape == (5,)


def test_hand_computed_gru_cell():
    cell = GRUCell(1, 1)
    with torch.no_grad():
        for p in cell.parameters():
            p.zero_()
    # all gates sigmoid(0) = 0.5, candidate tanh(0) = 0: h' = 0.5 * 0 + 0.5 * h
    torch.testing.assert_close(cell(torch.ones(1, 1), torch.full((1, 1), 0.8)),
                               torch.full((1, 1), 0.4))


def test_vmap_over_python_layers():
    torch.manual_seed(0)
    lstm = LSTM(3, 5)
    x = torch.randn(7, 2, 4, 3)
    out = torch.vmap(lambda xi: lstm(xi)[0])(x)
    torch.testing.assert_close(out[3], lstm(x[3])[0])
    gru = GRUCell(3, 5)
    torch.testing.assert_close(torch.vmap(gru)(x[:, :, 0])[1], gru(x[1, :, 0]))


def test_modules_python_based_build_the_python_layers():
    torch.manual_seed(0)
    fused = LSTMModule(3, 5, in_key="obs", out_key="out")
    python = LSTMModule(3, 5, in_key="obs", out_key="out", python_based=True)
    assert isinstance(python.lstm, LSTM) and not isinstance(fused.lstm, LSTM)
    python.lstm.load_state_dict(fused.lstm.state_dict())
    td = TensorDict({"obs": torch.randn(4, 3)}, [4])
    torch.testing.assert_close(python(td.clone())["out"], fused(td.clone())["out"])
    assert isinstance(GRUModule(3, 5, python_based=True).gru, GRU)


@pytest.mark.parametrize("build, exc, match", [
    (lambda: LSTM(3, 5, bidirectional=True), NotImplementedError, "bidirectional"),
    (lambda: GRU(3, 5, bidirectional=True), NotImplementedError, "bidirectional"),
    (lambda: LSTM(3, 5, proj_size=2), ValueError, "proj_size"),
])
def test_refused_configurations(build, exc, match):
    with pytest.raises(exc, match=match):
        build()


def test_bad_inputs():
    lstm, cell = LSTM(3, 5), LSTMCell(3, 5)
    with pytest.raises(ValueError, match="3D"):
        lstm(torch.randn(6, 3))
    with pytest.raises(ValueError, match="3 input features"):
        lstm(torch.randn(2, 6, 4))
    with pytest.raises(ValueError, match=r"\(1, 2, 5\)"):
        lstm(torch.randn(2, 6, 3), (torch.zeros(2, 2, 5), torch.zeros(2, 2, 5)))
    with pytest.raises(ValueError, match=r"\[batch, 3\]"):
        cell(torch.randn(2, 4))
    with pytest.raises(ValueError, match="hidden states"):
        cell(torch.randn(2, 3), (torch.zeros(2, 4), torch.zeros(2, 4)))
