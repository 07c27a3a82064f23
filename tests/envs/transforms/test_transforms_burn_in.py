"""BurnInTransform: recurrent states refreshed on sampled sequences (a replay-buffer transform)."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from transform_test_envs import CountingEnv

from streamrl.envs.transforms import BurnInTransform, TransformedEnv
from streamrl.modules import GRUModule


class _Cumsum(torch.nn.Module):
    def forward(self, x):
        return x.cumsum(-2)


def _cumsum_module():
    return TensorDictModule(_Cumsum(), in_keys=["x"], out_keys=[("next", "h")])


def test_hand_checked_burn_in():
    x = torch.arange(1.0, 7.0).reshape(1, 6, 1)  # 1..6
    td = TensorDict({"x": x, "h": torch.full((1, 6, 1), -1.0)}, [1, 6])
    out = BurnInTransform([_cumsum_module()], burn_in=3)(td)
    assert out.shape == (1, 3) and out.get("x").squeeze(-1).tolist() == [[4.0, 5.0, 6.0]]
    # the running sum of the burn-in steps 1 + 2 + 3 lands at the first kept step
    assert out["h"].squeeze(-1).tolist() == [[6.0, -1.0, -1.0]]
    assert td["h"].eq(-1).all()  # the input is left as it was


def test_gru_state_matches_a_step_by_step_run():
    torch.manual_seed(0)
    gru = GRUModule(
        input_size=3,
        hidden_size=4,
        in_keys=["observation", "hidden"],
        out_keys=["intermediate", ("next", "hidden")],
        default_recurrent_mode=True,
    )
    obs = torch.randn(2, 5, 3)
    td = TensorDict(
        {
            "observation": obs,
            "hidden": torch.zeros(2, 5, 1, 4),
            "is_init": torch.zeros(2, 5, 1, dtype=torch.bool),
        },
        [2, 5],
    )
    t = BurnInTransform([gru], burn_in=2)
    assert t.out_keys == ["hidden"]
    out = t(td)
    h = torch.zeros(1, 2, 4)
    for step in range(2):
        _, h = gru.gru(obs[:, step : step + 1], h)
    torch.testing.assert_close(out["hidden"][:, 0, 0], h[0])
    assert out.shape == (2, 3) and not out["hidden"].requires_grad


def test_missing_out_key_is_created_and_explicit_out_keys():
    td = TensorDict({"x": torch.ones(2, 4, 1)}, [2, 4])
    out = BurnInTransform([_cumsum_module()], burn_in=1, out_keys=["h"])(td)
    assert out["h"][:, 0].squeeze(-1).tolist() == [1.0, 1.0]
    assert out["h"][:, 1:].eq(0).all()


def test_used_as_a_replay_buffer_transform():
    from streamrl.data import LazyTensorStorage, ReplayBuffer, SliceSampler

    rb = ReplayBuffer(
        storage=LazyTensorStorage(20),
        sampler=SliceSampler(slice_len=5, traj_key="traj"),
        batch_size=10,
    )
    rb.append_transform(lambda td: td.reshape(-1, 5))  # slices come flat: [slices, time]
    rb.append_transform(BurnInTransform([_cumsum_module()], burn_in=2))
    data = {"x": torch.ones(20, 1), "h": torch.zeros(20, 1), "traj": torch.arange(20) // 10}
    rb.extend(TensorDict(data, [20]))
    sample = rb.sample()
    assert sample.shape == (2, 3) and sample["h"][:, 0].squeeze(-1).tolist() == [2.0, 2.0]


def test_bad_input():
    with pytest.raises(TypeError, match="non-empty list"):
        BurnInTransform([], burn_in=1)
    with pytest.raises(TypeError, match="TensorDict module"):
        BurnInTransform([torch.nn.Linear(1, 1)], burn_in=1)
    with pytest.raises(ValueError, match="burn_in"):
        BurnInTransform([_cumsum_module()], burn_in=0)
    no_next = TensorDictModule(_Cumsum(), in_keys=["x"], out_keys=["y"])
    with pytest.raises(ValueError, match="no out_keys"):
        BurnInTransform([no_next], burn_in=1)
    t = BurnInTransform([_cumsum_module()], burn_in=3)
    with pytest.raises(ValueError, match="leaves no step"):
        t(TensorDict({"x": torch.ones(1, 3, 1)}, [1, 3]))
    with pytest.raises(ValueError, match="time dim"):
        t(TensorDict({"x": torch.ones(1)}, []))
    with pytest.raises(KeyError, match="wrote no"):
        BurnInTransform([_cumsum_module()], burn_in=1, out_keys=["z"])(
            TensorDict({"x": torch.ones(1, 3, 1)}, [1, 3])
        )
    env = TransformedEnv(CountingEnv(), BurnInTransform([_cumsum_module()], burn_in=1))
    with pytest.raises(RuntimeError, match="replay buffer"):
        env.reset()
    env.close()
