"""streamrl.train.LaggedCollector: batches collected ahead in a worker process, the policy lag
bounded, the budget kept, nothing left running."""

from __future__ import annotations

import functools
import multiprocessing as mp
import time
from pathlib import Path

import pytest
from torch import nn

from streamrl.cli import load_pipeline
from streamrl.envs import GymEnv, SerialEnv
from streamrl.train import LaggedCollector

ROOT = Path(__file__).resolve().parents[2]
cartpole = load_pipeline(ROOT / "pipelines" / "ppo_cartpole.py")


def make_env():
    return SerialEnv(2, functools.partial(GymEnv, "CartPole-v1"))


@pytest.mark.parametrize("lag", [1, 2])
def test_lag_is_bounded_and_the_budget_kept(lag):
    config = cartpole.PPOConfig(hidden=8)
    probe = make_env()
    actor, _ = cartpole.make_models(config, probe)
    probe.close()
    collector = LaggedCollector(make_env, actor, frames_per_batch=16, total_frames=70,
                                max_policy_lag=lag)
    lags = []
    for batch in collector:
        assert batch.batch_size == (2, 8)
        lags.append(collector.policy_version - int(batch["collector", "policy_version"].min()))
        time.sleep(0.1)  # "training": the worker collects ahead meanwhile
        collector.update_policy_weights_()
    assert len(lags) == 5 and collector.frames == 80  # ceil(70 / 16) whole batches
    assert lags[0] == 0 and max(lags) == lag  # slow "training": batches collected ahead
    collector.shutdown()
    assert not mp.active_children()


def test_bad_arguments_say_what_was_expected():
    with pytest.raises(ValueError, match="max_policy_lag must be an int >= 1, found 0"):
        LaggedCollector(make_env, nn.Linear(4, 2), frames_per_batch=8, total_frames=8,
                        max_policy_lag=0)
    with pytest.raises(TypeError, match=r"policy must be a torch\.nn\.Module"):
        LaggedCollector(make_env, lambda td: td, frames_per_batch=8, total_frames=8)
