"""BatchRenorm1d, VmapModule and WorldModelWrapper."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.modules import BatchRenorm1d, VmapModule, WorldModelWrapper


class TestBatchRenorm1d:
    def test_warmup_is_batch_norm_then_running_stats_correct(self):
        torch.manual_seed(0)
        norm = BatchRenorm1d(2, warmup_steps=3, momentum=0.5)
        bn = nn.BatchNorm1d(2, momentum=0.5, affine=False)
        for _ in range(3):
            x = torch.randn(32, 2) * 3 + 1
            torch.testing.assert_close(norm(x), bn(x))
        torch.testing.assert_close(norm.running_mean, bn.running_mean)
        torch.testing.assert_close(norm.running_var, bn.running_var)
        # after warm-up a shifted batch keeps (part of) its offset w.r.t. the running stats
        x = torch.randn(32, 2) + 4
        out = norm(x)
        assert out.mean() > 0.5
        assert int(norm.steps) == 4

    def test_smooth_ramp(self):
        norm = BatchRenorm1d(1, warmup_steps=4, smooth=True)
        assert norm._progress() == 0.0
        norm.steps.fill_(2)
        assert norm._progress() == 0.5
        norm.steps.fill_(9)
        assert norm._progress() == 1.0

    def test_eval_uses_running_stats_and_leading_dims(self):
        norm = BatchRenorm1d(3)
        norm.running_mean.fill_(1.0)
        norm.running_var.fill_(4.0)
        norm.eval()
        x = torch.full((2, 5, 3), 3.0)
        torch.testing.assert_close(norm(x), torch.full((2, 5, 3), 2.0 / (4.0 + 1e-5) ** 0.5))

    def test_gradients_and_errors(self):
        norm = BatchRenorm1d(3, warmup_steps=0)
        norm(torch.randn(8, 3)).sum().backward()
        assert norm.weight.grad is not None and norm.bias.grad is not None
        with pytest.raises(ValueError, match=r"\[\*B, 3\]"):
            norm(torch.randn(8, 4))
        with pytest.raises(ValueError, match="more than one sample"):
            norm(torch.randn(1, 3))
        with pytest.raises(ValueError, match="momentum"):
            BatchRenorm1d(3, momentum=0.0)
        with pytest.raises(ValueError, match="num_features"):
            BatchRenorm1d(0)


class TestVmapModule:
    def test_hides_a_batch_dim(self):
        first = TensorDictModule(lambda x: x[0], in_keys=["x"], out_keys=["y"])
        td = TensorDict({"x": torch.randn(10, 3, 2)}, batch_size=[10])
        out = VmapModule(first, 0)(td)
        assert out is td
        torch.testing.assert_close(td["y"], td["x"][:, 0])

    @pytest.mark.parametrize("mock", [False, True])
    def test_default_dim_is_last_and_mock_matches(self, mock):
        lin = TensorDictModule(nn.Linear(2, 3), in_keys=["x"], out_keys=["y"])
        td = TensorDict({"x": torch.randn(4, 5, 2)}, [4, 5])
        out = VmapModule(lin, mock=mock)(td.clone())
        torch.testing.assert_close(out["y"], lin(td.clone())["y"])

    def test_errors(self):
        lin = TensorDictModule(nn.Linear(2, 3), in_keys=["x"], out_keys=["y"])
        with pytest.raises(TypeError, match="TensorDict module"):
            VmapModule(nn.Linear(2, 3))
        with pytest.raises(ValueError, match="vmap_dim=3"):
            VmapModule(lin, 3)(TensorDict({"x": torch.randn(4, 2)}, [4]))
        with pytest.raises(ValueError, match="at least one batch dim"):
            VmapModule(lin)(TensorDict({"x": torch.randn(2)}, []))


class TestWorldModelWrapper:
    def test_transition_then_reward(self):
        transition = TensorDictModule(nn.Linear(5, 4), ["state"], [("next", "state")])
        reward = TensorDictModule(nn.Linear(4, 1), [("next", "state")], [("next", "reward")])
        world = WorldModelWrapper(transition, reward)
        td = world(TensorDict({"state": torch.randn(3, 5)}, [3]))
        torch.testing.assert_close(td["next", "reward"], reward.module(td["next", "state"]))
        assert world.get_transition_model_operator() is transition
        assert world.get_reward_operator() is reward
        with pytest.raises(TypeError, match="reward_model"):
            WorldModelWrapper(transition, nn.Linear(4, 1))
