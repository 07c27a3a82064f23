"""RandomTruncationTransform: random horizons after a StepCounter."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from transform_contract import TransformContractTests

from streamrl.envs.transforms import (
    Compose,
    RandomTruncationTransform,
    StepCounter,
    TransformedEnv,
)


class TestRandomTruncationContract(TransformContractTests):
    def make_transform(self):
        return Compose(StepCounter(), RandomTruncationTransform(1, 2, prob=0.5))


def _lengths(env, steps):
    """Episode lengths (per sub-env) ended by truncation within ``steps`` steps."""
    td = env.reset()
    lengths = [[] for _ in range(env.batch_size[0])]
    for _ in range(steps):
        td = env.rand_action(td)
        td, td_next = env.step_and_maybe_reset(td)
        for i in range(len(lengths)):
            if td["next", "truncated"][i].item():
                lengths[i].append(int(td["next", "step_count"][i].item()))
        td = td_next
    return lengths


def _env(counting_env, n, *args, **kwargs):
    return TransformedEnv(
        counting_env(batch_size=(n,), max_count=1000),
        Compose(StepCounter(), RandomTruncationTransform(*args, **kwargs)),
    )


def test_initial_spread_then_full_horizon_with_prob_zero(counting_env):
    torch.manual_seed(0)
    lengths = _lengths(_env(counting_env, 64, 3, 6), 14)
    firsts = [runs[0] for runs in lengths]
    assert all(1 <= f <= 6 for f in firsts) and len(set(firsts)) > 1  # spread over envs
    # prob=0: every later episode runs the full max_horizon
    assert all(later == 6 for runs in lengths for later in runs[1:])
    assert all(len(runs) >= 2 for runs in lengths)


def test_random_horizons_within_bounds_with_prob_one(counting_env):
    torch.manual_seed(0)
    lengths = _lengths(_env(counting_env, 64, 3, 6, prob=1.0), 20)
    later = [x for runs in lengths for x in runs[1:]]
    assert later and all(3 <= x <= 6 for x in later) and len(set(later)) > 1


def test_first_episode_prob_applies_to_the_first_episode_only(counting_env):
    torch.manual_seed(0)
    lengths = _lengths(_env(counting_env, 32, 2, 4, prob=0.0, first_episode_prob=1.0), 16)
    assert all(len(runs) >= 3 for runs in lengths)
    assert all(2 <= runs[1] <= 4 for runs in lengths) and len({r[1] for r in lengths}) > 1
    assert all(x == 4 for runs in lengths for x in runs[2:])


def test_min_equals_max_truncates_exactly(counting_env):
    env = TransformedEnv(
        counting_env(max_count=100),
        Compose(StepCounter(), RandomTruncationTransform(3, 3, prob=1.0)),
    )
    env.rollout(10)  # after the first (spread) episode, every episode lasts exactly 3
    roll = env.rollout(10)
    assert roll.shape == (3,) and roll["next", "done"][-1].item()


def test_nested_step_count_key_writes_flags_next_to_it():
    t = RandomTruncationTransform(1, 1, step_count_key="step_count")
    reset = TensorDict({"agent": {"step_count": torch.zeros(2, 1, dtype=torch.int64)}}, [])
    t._reset(None, reset)
    assert reset["agent", "truncated"].shape == (2, 1) and not reset["agent", "done"].any()
    nxt = TensorDict({"agent": {"step_count": torch.ones(2, 1, dtype=torch.int64)}}, [])
    t._step(reset, nxt)
    assert nxt["agent", "truncated"].all() and nxt["agent", "done"].all()


def test_bad_input(counting_env):
    with pytest.raises(ValueError, match="min_horizon must be <= max_horizon"):
        RandomTruncationTransform(5, 3)
    with pytest.raises(ValueError, match="min_horizon"):
        RandomTruncationTransform(0, 3)
    with pytest.raises(ValueError, match="prob"):
        RandomTruncationTransform(1, 3, prob=1.5)
    with pytest.raises(ValueError, match="first_episode_prob"):
        RandomTruncationTransform(1, 3, first_episode_prob=-0.1)
    with pytest.raises(KeyError, match="StepCounter"):
        TransformedEnv(counting_env(), RandomTruncationTransform(1, 3)).reset()
    with pytest.raises(NotImplementedError, match="TransformedEnv"):
        RandomTruncationTransform(1, 3)(TensorDict({"step_count": torch.zeros(1)}))
