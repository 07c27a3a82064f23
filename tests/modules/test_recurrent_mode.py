"""set_recurrent_mode / recurrent_mode and the TorchRL arguments of LSTMModule / GRUModule."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torch import nn

from streamrl.modules import GRUModule, LSTMModule
from streamrl.modules.tensordict_module import recurrent_mode, set_recurrent_mode


def _seq_td(batch=2, steps=4, features=3):
    return TensorDict({"obs": torch.randn(batch, steps, features)}, [batch, steps])


class TestRecurrentModeContext:
    def test_default_is_none_and_contexts_nest(self):
        assert recurrent_mode() is None
        with set_recurrent_mode(True):
            assert recurrent_mode() is True
            with set_recurrent_mode("sequential"):
                assert recurrent_mode() is False
            with set_recurrent_mode(None):
                assert recurrent_mode() is None
            assert recurrent_mode() is True
        assert recurrent_mode() is None

    def test_restored_after_an_error(self):
        with pytest.raises(RuntimeError), set_recurrent_mode("recurrent"):
            raise RuntimeError("boom")
        assert recurrent_mode() is None

    def test_decorator(self):
        @set_recurrent_mode(True)
        def inside():
            return recurrent_mode()

        assert inside() is True and recurrent_mode() is None

    def test_bad_mode(self):
        with pytest.raises(ValueError, match="recurrent"):
            set_recurrent_mode("yes")

    def test_context_switches_module_mode(self):
        gru = GRUModule(3, 5, in_key="obs", out_key="y")
        assert gru.recurrent_mode is False
        td = _seq_td()
        with set_recurrent_mode(True):
            assert gru.recurrent_mode is True
            seq = gru(td.clone())
        stepwise = []
        state = None
        for t in range(4):
            step = TensorDict({"obs": td["obs"][:, t]}, [2])
            if state is not None:
                step["recurrent_state"] = state
            out = gru(step)
            stepwise.append(out["y"])
            state = out["next", "recurrent_state"]
        torch.testing.assert_close(seq["y"], torch.stack(stepwise, 1))

    def test_default_recurrent_mode_and_context_override(self):
        lstm = LSTMModule(3, 5, in_key="obs", out_key="y", default_recurrent_mode=True)
        assert lstm.recurrent_mode is True
        assert lstm(_seq_td())["y"].shape == (2, 4, 5)
        with set_recurrent_mode(False):
            assert lstm.recurrent_mode is False
            # stepwise: [2, 4] is a batch of independent steps, each from a zero state
            td = _seq_td()
            out = lstm(td.clone())["y"]
            first = lstm(TensorDict({"obs": td["obs"][:, :1]}, [2, 1]))["y"]
            torch.testing.assert_close(out[:, :1], first)


class TestTorchRLArguments:
    @pytest.mark.parametrize("cls", [LSTMModule, GRUModule])
    def test_python_based_matches_fused(self, cls):
        torch.manual_seed(0)
        fused = cls(3, 4, num_layers=2, in_key="obs", out_key="y")
        python = cls(3, 4, num_layers=2, in_key="obs", out_key="y", python_based=True)
        python.load_state_dict(fused.state_dict())
        td = _seq_td()
        td["is_init"] = torch.zeros(2, 4, 1, dtype=torch.bool)
        td["is_init"][1, 2] = True
        with set_recurrent_mode(True):
            torch.testing.assert_close(python(td.clone())["y"], fused(td.clone())["y"])

    def test_wrap_built_rnn(self):
        lstm = nn.LSTM(3, 6, batch_first=True)
        module = LSTMModule(lstm=lstm, in_key="obs", out_key="y")
        assert module.lstm is lstm
        assert module(TensorDict({"obs": torch.randn(2, 3)}, [2]))["y"].shape == (2, 6)
        gru = GRUModule(gru=nn.GRU(3, 2, batch_first=True), in_key="obs", out_key="y")
        assert isinstance(gru.gru, nn.GRU)

    def test_refused_arguments(self):
        with pytest.raises(ValueError, match="batch_first"):
            LSTMModule(3, 4, batch_first=False)
        with pytest.raises(ValueError, match="bidirectional"):
            GRUModule(3, 4, bidirectional=True)
        with pytest.raises(ValueError, match="proj_size"):
            LSTMModule(3, 4, proj_size=2)
        with pytest.raises(ValueError, match="batch_first"):
            LSTMModule(lstm=nn.LSTM(3, 4))
        with pytest.raises(ValueError, match="either"):
            LSTMModule(3, 4, lstm=nn.LSTM(3, 4, batch_first=True))
        with pytest.raises(TypeError, match="LSTM"):
            LSTMModule(lstm=nn.GRU(3, 4, batch_first=True))
        with pytest.raises(ValueError, match="input_size"):
            GRUModule(hidden_size=4)


def test_the_mode_is_the_calling_threads():
    import threading

    from streamrl.modules.models.recurrent_mode import recurrent_mode, set_recurrent_mode

    inside, seen = threading.Event(), []
    release = threading.Event()

    def learner() -> None:
        with set_recurrent_mode(True):
            inside.set()
            release.wait(5)
            seen.append(recurrent_mode())

    thread = threading.Thread(target=learner)
    thread.start()
    assert inside.wait(5)
    assert recurrent_mode() is None  # this thread (a rollout) keeps its own
    with set_recurrent_mode(False):
        release.set()
        thread.join(5)
        assert recurrent_mode() is False  # the other thread's exit popped its own stack
    assert seen == [True] and recurrent_mode() is None
