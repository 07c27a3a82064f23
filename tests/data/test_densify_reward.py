"""DensifyReward: rewards-to-go inside each trajectory, written in place."""

import pytest
import torch
from tensordict import TensorDict

from streamrl.data import DensifyReward
from streamrl.data.postprocs import DensifyReward as FromModule


def _batch(rewards, dones, shape=None):
    n = len(rewards)
    td = TensorDict({"obs": torch.arange(float(n)), "next": {
        "reward": torch.tensor(rewards, dtype=torch.float32)[:, None],
        "done": torch.tensor(dones, dtype=torch.bool)[:, None]}}, [n])
    return td.reshape(*shape) if shape else td


def _reference(rewards, dones, discount):
    out, later = [0.0] * len(rewards), 0.0
    for t in range(len(rewards) - 1, -1, -1):
        if dones[t] or t == len(rewards) - 1:
            later = 0.0
        later = rewards[t] + discount * later
        out[t] = later
    return out


@pytest.mark.parametrize("discount", [1.0, 0.5, 0.0])
def test_matches_a_per_step_reference(discount):
    rewards = [0.0, 1.0, 3.0, 0.0, 0.0, 6.0, 2.0]
    dones = [0, 0, 1, 0, 0, 1, 0]
    td = _batch(rewards, dones)
    out = DensifyReward(discount=discount)(td)
    assert out is td  # in place, as TorchRL
    got = out["next", "reward"].reshape(-1).tolist()
    assert got == pytest.approx(_reference(rewards, dones, discount))


def test_time_is_the_last_batch_dim_and_key_out():
    td = _batch([0.0, 0.0, 3.0, 0.0, 1.0, 6.0], [0, 0, 1, 0, 0, 0], shape=(2, 3))
    out = DensifyReward(reward_key_out="dense")(td)
    assert out["next", "dense"].reshape(2, 3).tolist() == [[3.0, 3.0, 3.0], [7.0, 7.0, 6.0]]
    assert out["next", "reward"].reshape(2, 3).tolist() == [[0.0, 0.0, 3.0], [0.0, 1.0, 6.0]]
    assert FromModule is DensifyReward


def test_nested_keys():
    td = TensorDict({"next": {"agent": {"r": torch.tensor([1.0, 1.0])},
                              "d": torch.tensor([False, False])}}, [2])
    out = DensifyReward(reward_key=("agent", "r"), done_key="d")(td)
    assert out["next", "agent", "r"].tolist() == [2.0, 1.0]


def test_bad_input():
    for bad in (-0.1, 1.5, True, "1"):
        with pytest.raises(ValueError, match="discount must be a number in"):
            DensifyReward(discount=bad)
    with pytest.raises(TypeError, match="expects a TensorDict"):
        DensifyReward()(torch.zeros(3))
    with pytest.raises(ValueError, match="time dim"):
        DensifyReward()(TensorDict({"next": {"reward": torch.zeros(())}}, []))
    with pytest.raises(KeyError, match="'next', 'done'"):
        DensifyReward()(TensorDict({"next": {"reward": torch.zeros(3)}}, [3]))
    with pytest.raises(TypeError):
        DensifyReward(time_dim=2)
