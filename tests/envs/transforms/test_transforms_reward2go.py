"""Reward2GoTransform on hand-computed cases: episodes ending mid-sequence, gamma != 1,
truncation, leading batch dims, and a replay buffer that writes the rewards-to-go; and
TargetReturn feeding a reward-conditioned policy its remaining return."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from streamrl.data import LazyTensorStorage, ReplayBuffer
from streamrl.envs.transforms import Reward2GoTransform, TargetReturn, TransformedEnv

REWARD = [1.0, 2.0, 3.0, 4.0, 5.0]
# gamma 0.9, an episode ends after step 1 and after step 4:
#   t1: 2; t0: 1 + 0.9 * 2; t4: 5; t3: 4 + 0.9 * 5; t2: 3 + 0.9 * 8.5
SPLIT_09 = [2.8, 2.0, 10.65, 8.5, 5.0]
# gamma 0.9, one episode: sum_k 0.9^k r_{t+k}
WHOLE_09 = [11.4265, 11.585, 10.65, 8.5, 5.0]


def _td(done_at=(1, 4), truncated_at=(), reward=REWARD):
    n = len(reward)
    done = torch.zeros(n, 1, dtype=torch.bool)
    truncated = torch.zeros(n, 1, dtype=torch.bool)
    done[list(done_at)] = True
    truncated[list(truncated_at)] = True
    return TensorDict({"next": {"reward": torch.tensor(reward).unsqueeze(-1), "done": done,
                                "truncated": truncated}}, [n])


def _r2g(td, **kwargs):
    return Reward2GoTransform(out_keys=["r2g"], **kwargs).inv(td)["r2g"].squeeze(-1).tolist()


def test_episode_ends_mid_sequence_with_discount():
    assert _r2g(_td(), gamma=0.9) == pytest.approx(SPLIT_09)
    assert _r2g(_td(done_at=(4,)), gamma=0.9) == pytest.approx(WHOLE_09)
    assert _r2g(_td(), gamma=1.0) == pytest.approx([3.0, 2.0, 12.0, 9.0, 5.0])
    assert _r2g(_td(), gamma=0.0) == pytest.approx(REWARD)  # only the step's own reward


def test_unfinished_tail_gets_the_partial_sum():
    # the last episode has not ended within the data: its steps get the rewards seen so far
    assert _r2g(_td(done_at=(1,)), gamma=0.9) == pytest.approx(SPLIT_09)


def test_truncation_restarts_the_sum():
    # done marks terminations only here; the truncated flag still ends the episode
    only_truncated = _td(done_at=(4,), truncated_at=(1,))
    assert _r2g(only_truncated, gamma=0.9) == pytest.approx(SPLIT_09)
    assert _r2g(only_truncated, gamma=0.9, truncated_key=None) == pytest.approx(WHOLE_09)
    # the usual data: done already covers the truncation
    assert _r2g(_td(done_at=(1, 4), truncated_at=(1,)), gamma=0.9) == pytest.approx(SPLIT_09)
    bad = _td().to_dict()
    bad["next"]["truncated"] = torch.zeros(2, 1, dtype=torch.bool)
    bad = TensorDict(bad, [])
    with pytest.raises(ValueError, match="truncated flags"):
        _r2g(bad)


def test_leading_batch_dims_are_independent_sequences():
    rows = [_td(), _td(done_at=(4,)), _td(reward=[2 * r for r in REWARD])]
    rows += [_td(done_at=(0, 1, 2, 3, 4)), _td(done_at=(1,), truncated_at=(3,)), _td()]
    batch = torch.stack(rows).reshape(2, 3, 5)  # [2, 3, T=5]
    out = Reward2GoTransform(gamma=0.9, out_keys=["r2g"]).inv(batch)["r2g"]
    assert out.shape == (2, 3, 5, 1)
    expected = [SPLIT_09, WHOLE_09, [2 * v for v in SPLIT_09], REWARD,
                [2.8, 2.0, 6.6, 4.0, 5.0], SPLIT_09]
    assert out.reshape(6, 5).tolist() == [pytest.approx(e) for e in expected]


def test_replay_buffer_writes_rewards_to_go_on_extend():
    rb = ReplayBuffer(storage=LazyTensorStorage(8),
                      transform=Reward2GoTransform(gamma=0.9, out_keys=["reward_to_go"]))
    data = torch.stack([_td(), _td(done_at=(4,))])
    data.batch_size = [2]  # two items, each a 5-step trajectory (time: the reward's dim -2)
    rb.extend(data)
    stored = rb[:]  # the write path computed them once; samples read them back unchanged
    assert stored["reward_to_go"].squeeze(-1).tolist() == [pytest.approx(SPLIT_09),
                                                           pytest.approx(WHOLE_09)]
    sample = rb.sample(4)
    assert sample["reward_to_go"].shape == (4, 5, 1)
    for row in sample["reward_to_go"].squeeze(-1).tolist():
        assert row in (pytest.approx(SPLIT_09), pytest.approx(WHOLE_09))
    assert (sample["next", "reward"].squeeze(-1) == torch.tensor(REWARD)).all()
    assert "reward_to_go" not in data.keys()  # the data given is not modified


def test_target_return_is_the_return_still_to_collect(counting_env):
    # CountingEnv's rewards are 1, 2, 3 and its episodes end after max_count steps
    env = TransformedEnv(counting_env(max_count=3), TargetReturn(10.0))
    roll = env.rollout(3)
    assert roll["target_return"].squeeze(-1).tolist() == [10.0, 9.0, 7.0]
    assert roll["next", "target_return"].squeeze(-1).tolist() == [9.0, 7.0, 4.0]
    # the target seen at each step is the reward-to-go (gamma 1) plus what is left over
    r2g = Reward2GoTransform(out_keys=["r2g"]).inv(roll)["r2g"].squeeze(-1)
    leftover = roll["target_return"].squeeze(-1) - r2g
    assert leftover.tolist() == [4.0, 4.0, 4.0]
    const = TransformedEnv(counting_env(max_count=3), TargetReturn(10.0, mode="constant"))
    assert const.rollout(3)["next", "target_return"].squeeze(-1).tolist() == [10.0] * 3
