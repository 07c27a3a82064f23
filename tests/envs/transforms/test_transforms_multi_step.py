"""MultiStepTransform: n-step transitions that do not depend on how the data was split into
batches, the postproc's values, done keys left alone, several rewards, masks, a replay
buffer, bad input."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from transform_contract import TransformContractTests

from streamrl.data import LazyTensorStorage, ReplayBuffer
from streamrl.data.postprocs import MultiStep
from streamrl.envs.transforms import MultiStepTransform


def _traj(T=10, done_at=(5,), lead=()):
    """Steps 0..T-1 of a trajectory: obs = t, reward = t + 1, done at the listed steps."""
    t = torch.arange(T, dtype=torch.float32).expand(*lead, T).unsqueeze(-1)
    done = torch.zeros(*lead, T, 1, dtype=torch.bool)
    for d in done_at:
        done[..., d, :] = True
    return TensorDict(
        {"observation": t, "next": {"observation": t + 1, "reward": t + 1, "done": done,
                                    "terminated": done.clone(),
                                    "truncated": torch.zeros_like(done)}},
        [*lead, T],
    )


def test_the_split_into_batches_does_not_matter():
    whole = MultiStepTransform(3, 0.9).inv(_traj())
    t = MultiStepTransform(3, 0.9)
    parts = [t.inv(_traj()[a:b]) for a, b in ((0, 4), (4, 6), (6, 10))]
    assert [p.batch_size[0] for p in parts] == [1, 2, 4]  # 3 steps held back at the end
    split = torch.cat(parts, 0)
    assert whole.batch_size == (7,)
    assert torch.equal(split["next", "reward"], whole["next", "reward"])
    assert torch.equal(split["next", "observation"], whole["next", "observation"])


def test_values_are_the_postproc_ones_with_done_keys_left_alone():
    data = _traj()
    out = MultiStepTransform(2, 0.5).inv(data)
    ref = MultiStep(0.5, 2)(data)[:8]
    assert torch.equal(out["next", "reward"], ref["next", "reward"])
    assert torch.equal(out["next", "observation"], ref["next", "observation"])
    assert torch.equal(out["steps_to_next_obs"], ref["steps_to_next_obs"])
    assert torch.equal(out["nonterminal"], ref["nonterminal"])
    # hand-checked: reward_t = (t + 1) + 0.5 (t + 2) until the done at step 5
    assert out["next", "reward"].flatten().tolist() == [2, 3.5, 5, 6.5, 8, 6, 11, 12.5]
    assert out["next", "reward_orig"].flatten().tolist() == list(range(1, 9))
    assert out["steps_to_next_obs"].tolist() == [2, 2, 2, 2, 2, 1, 2, 2]
    assert torch.equal(out["next", "done"], data["next", "done"][:8])  # step t's flags
    assert "original_reward" not in out["next"].keys()


def test_several_rewards_custom_done_key_mask_and_n_steps_change():
    data = _traj(6, done_at=())
    data["next", "bonus"] = torch.ones(6, 1)
    data["next", "end"] = data["next", "done"].clone()
    data["mask"] = torch.tensor([True, False, True, True, True, True])
    t = MultiStepTransform(2, 1.0, reward_keys=["reward", "bonus"], done_key="end")
    out = t.inv(data)
    assert out.batch_size == (3,)  # 4 steps emitted, one masked out
    assert out["next", "bonus"].flatten().tolist() == [2.0, 2.0, 2.0]
    assert out["next", "reward"].flatten().tolist() == [3.0, 7.0, 9.0]
    t.n_steps = 1
    assert t.n_steps == 1


def test_batches_of_two_envs_into_a_replay_buffer():
    rb = ReplayBuffer(storage=LazyTensorStorage(100))
    t = MultiStepTransform(n_steps=2, gamma=1.0)
    for start in (0, 5):  # two envs, five steps per batch
        rb.extend(t.inv(_traj(done_at=())[start:start + 5].expand(2, 5).clone()).reshape(-1))
    stored = rb[:]
    assert stored.batch_size == (16,)  # 2 x 3 steps, then 2 x 5
    assert stored["next", "observation"][:3].flatten().tolist() == [2.0, 3.0, 4.0]
    assert stored["next", "observation"][6:11].flatten().tolist() == [5.0, 6, 7, 8, 9]


def test_the_sample_path_and_an_env_leave_data_alone():
    data = _traj()
    assert MultiStepTransform(2, 0.9)(data.clone())["next", "reward"].equal(
        data["next", "reward"]
    )


def test_bad_input():
    with pytest.raises(ValueError, match="n_steps"):
        MultiStepTransform(0, 0.9)
    with pytest.raises(ValueError, match="gamma"):
        MultiStepTransform(2, 1.5)
    with pytest.raises(ValueError, match="at least one"):
        MultiStepTransform(2, 0.9, reward_keys=[])
    t = MultiStepTransform(2, 0.9)
    with pytest.raises(ValueError, match="time dim"):
        t.inv(TensorDict({"x": torch.zeros(1)}))
    with pytest.raises(KeyError, match="reward"):
        t.inv(_traj().exclude(("next", "reward")))
    t.inv(_traj(lead=(2,)))
    with pytest.raises(ValueError, match="does not continue"):
        t.inv(_traj(lead=(3,)))


class TestMultiStepContract(TransformContractTests):
    def make_transform(self):
        return MultiStepTransform(3, 0.99)
