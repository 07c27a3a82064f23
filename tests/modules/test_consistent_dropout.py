"""ConsistentDropout and ConsistentDropoutModule."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from streamrl.modules import ConsistentDropout, ConsistentDropoutModule


def test_mask_is_scaled_and_reused():
    torch.manual_seed(0)
    drop = ConsistentDropout(0.25)
    x = torch.randn(64, 8)
    out, mask = drop(x)
    assert ((mask == 0) | torch.isclose(mask, torch.tensor(1 / 0.75))).all()
    torch.testing.assert_close(out, x * mask)
    again, same = drop(x, mask)
    torch.testing.assert_close(again, out)
    assert same is mask
    # a bool mask is applied as given (no rescaling), as in TorchRL
    bool_mask = torch.rand(64, 8) > 0.5
    torch.testing.assert_close(drop(x, bool_mask)[0], x * bool_mask)


def test_eval_is_identity_and_make_mask():
    drop = ConsistentDropout(0.5).eval()
    x = torch.randn(3, 4)
    assert drop(x) is x
    assert drop.make_mask(shape=torch.Size([5, 2])).shape == (5, 2)
    assert drop.make_mask(input=x).shape == (3, 4)


def test_errors():
    with pytest.raises(ValueError, match="p must"):
        ConsistentDropout(1.0)
    with pytest.raises(ValueError, match="exactly one"):
        ConsistentDropout().make_mask()
    with pytest.raises(ValueError, match="does not match"):
        ConsistentDropout()(torch.ones(3, 4), torch.ones(3, 5))
    with pytest.raises(ValueError, match="length 2"):
        ConsistentDropoutModule(0.5, in_keys=["x"])


def test_module_draws_then_replays_and_writes_out_keys():
    module = ConsistentDropoutModule(0.5, in_keys=["x", "mask"], out_keys=["y", "mask"])
    td = module(TensorDict({"x": torch.randn(6, 4)}, [6]))
    assert td["mask"].shape == (6, 4)
    replay = TensorDict({"x": td["x"], "mask": td["mask"]}, [6])
    torch.testing.assert_close(module(replay)["y"], td["y"])
    module.eval()
    plain = module(TensorDict({"x": torch.ones(2, 4)}, [2]))
    assert torch.equal(plain["y"], torch.ones(2, 4)) and "mask" not in plain.keys()
    with pytest.raises(KeyError, match="x"):
        module(TensorDict({}, [2]))
