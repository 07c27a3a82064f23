"""RandomCropTensorDict: windows of consecutive steps, every start reachable, other sample
dims, masks, replay buffer use, bad input."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from streamrl.data.replay_buffers import ReplayBuffer
from streamrl.envs.transforms import RandomCropTensorDict, TransformedEnv


def _traj(b=4, t=6):
    x = torch.arange(t).expand(b, t) + 100 * torch.arange(b).unsqueeze(-1)
    return TensorDict({"x": x, "nested": {"y": x.unsqueeze(-1).float()}}, [b, t])


def test_windows_are_consecutive_and_cover_every_start():
    td = _traj()
    starts = set()
    for _ in range(60):
        out = RandomCropTensorDict(3)(td)
        assert out.batch_size == (4, 3)
        assert (out["x"].diff(dim=-1) == 1).all()
        assert (out["x"][:, 0] // 100).tolist() == [0, 1, 2, 3]  # rows keep their trajectory
        assert torch.equal(out["nested", "y"].squeeze(-1), out["x"].float())
        starts.update((out["x"][:, 0] % 100).tolist())
    assert starts == {0, 1, 2, 3}
    assert td.batch_size == (4, 6)  # input untouched


def test_other_sample_dim_and_mask():
    td = _traj().transpose(0, 1).contiguous()  # time first: [6, 4]
    out = RandomCropTensorDict(2, sample_dim=0)(td)
    assert out.batch_size == (2, 4) and (out["x"].diff(dim=0) == 1).all()
    mask = torch.zeros(4, 6, dtype=torch.bool)
    mask[:, :3] = True
    masked = _traj().set("m", mask)
    for _ in range(20):
        out = RandomCropTensorDict(2, mask_key="m")(masked)
        assert out["m"].all() and (out["x"] % 100).max() <= 2


def test_in_a_replay_buffer_sample():
    rb = ReplayBuffer(transform=RandomCropTensorDict(2))
    rb.extend(_traj(3, 5))
    assert rb.sample(2).batch_size == (2, 2)


def test_bad_input(counting_env):
    with pytest.raises(ValueError, match="positive int"):
        RandomCropTensorDict(0)
    with pytest.raises(TypeError, match="sample_dim"):
        RandomCropTensorDict(2, sample_dim=1.0)
    with pytest.raises(ValueError, match="shorter than sub_seq_len=7"):
        RandomCropTensorDict(7)(_traj())
    with pytest.raises(ValueError, match="not a batch dim"):
        RandomCropTensorDict(2, sample_dim=2)(_traj())
    env = TransformedEnv(counting_env(), RandomCropTensorDict(2))
    with pytest.raises(ValueError, match="cannot be put in an env"):
        env.reset()
