"""BatchSizeTransform: reshaping a batch-locked env, the batch size of a stateless env,
reset_func (with env=), the observation path outside an env, bad input."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from transform_contract import TransformContractTests
from transform_test_envs import StatelessEnv

from streamrl.envs.transforms import BatchSizeTransform, StepCounter, TransformedEnv
from streamrl.envs.utils import check_env_specs


def _unsqueeze0(td):
    return td.unsqueeze(0)


def test_reshape_a_batch_locked_env(counting_env):
    base = counting_env(batch_size=(3,), max_count=9)
    env = TransformedEnv(base, BatchSizeTransform(reshape_fn=_unsqueeze0))
    assert env.batch_size == (1, 3)
    assert env.observation_spec["observation"].shape == (1, 3, 3)
    assert env.action_spec.shape == (1, 3, 1)
    td = env.reset()
    assert td.batch_size == (1, 3)
    td["action"] = torch.tensor([[[0.1], [0.2], [0.3]]])
    out = env.step(td)
    assert base.last_action.shape == (3, 1)  # the base env got its own batch size back
    assert base.last_action.flatten().tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert out["next", "observation"].shape == (1, 3, 3)
    assert env.rollout(4).batch_size == (1, 3, 4)
    check_env_specs(env)


def test_batch_size_of_a_stateless_env():
    env = TransformedEnv(StatelessEnv(), BatchSizeTransform(batch_size=[5]))
    assert env.batch_size == (5,)
    r = env.rollout(10)
    assert r.batch_size == (5, 10) and r["next", "reward"].shape == (5, 10, 1)
    td = env.reset()
    td["action"] = torch.arange(5.0).unsqueeze(-1)
    assert env.step(td)["next", "observation"].flatten().tolist() == [0, 1, 2, 3, 4]
    check_env_specs(env)


def test_a_collector_runs_a_stateless_env_with_a_batch_size():
    from streamrl.collectors import SyncDataCollector

    env = TransformedEnv(StatelessEnv(), BatchSizeTransform(batch_size=[5]))
    collector = SyncDataCollector(env, None, frames_per_batch=10, total_frames=20)
    try:
        shapes = [batch["next", "observation"].shape for batch in collector]
    finally:
        collector.shutdown()
    assert shapes == [(5, 2, 1), (5, 2, 1)]


def test_reset_func_with_env():
    seen = []

    def reset_func(tensordict, tensordict_reset, env):
        seen.append(env)
        out = env.observation_spec.zero()
        out["observation"] = torch.arange(3.0).unsqueeze(-1)
        out.update(env.full_done_spec.zero())
        return out

    env = TransformedEnv(
        StatelessEnv(),
        BatchSizeTransform(batch_size=[3], reset_func=reset_func, env_kwarg=True),
    )
    assert env.reset()["observation"].flatten().tolist() == [0.0, 1.0, 2.0]
    assert seen == [env]


def test_in_a_compose_with_a_counter_after_it(counting_env):
    env = TransformedEnv(
        counting_env(max_count=2),
        BatchSizeTransform(reshape_fn=lambda td: td.unsqueeze(0)),
    ).append_transform(StepCounter())
    r = env.rollout(3, break_when_any_done=False)
    assert r["next", "step_count"].flatten().tolist() == [1, 2, 1]


def test_observation_path_outside_an_env():
    td = TensorDict({"x": torch.zeros(6, 2)}, [6])
    assert BatchSizeTransform(reshape_fn=lambda d: d.reshape(2, 3))(td).batch_size == (2, 3)
    t = BatchSizeTransform(batch_size=[4, 6])
    assert t(TensorDict({"x": torch.zeros(6, 2)}, [6]))["x"].shape == (4, 6, 2)


def test_bad_input(counting_env):
    with pytest.raises(ValueError, match="exactly one of batch_size and reshape_fn"):
        BatchSizeTransform()
    with pytest.raises(ValueError, match="exactly one"):
        BatchSizeTransform(batch_size=[2], reshape_fn=_unsqueeze0)
    with pytest.raises(TypeError, match="callable"):
        BatchSizeTransform(reshape_fn=3)
    with pytest.raises(TypeError, match="sequence of ints"):
        BatchSizeTransform(batch_size="ab")
    with pytest.raises(ValueError, match="needs a reset_func"):
        BatchSizeTransform(batch_size=[2], env_kwarg=True)
    with pytest.raises(TypeError, match="'env' keyword"):
        BatchSizeTransform(batch_size=[2], reset_func=lambda a, b: b, env_kwarg=True)
    with pytest.raises(TypeError):
        BatchSizeTransform([5])  # keyword-only, as in TorchRL
    env = TransformedEnv(counting_env(batch_size=(2,)), BatchSizeTransform(batch_size=[4, 2]))
    with pytest.raises(ValueError, match="batch-locked env of batch size \\[2\\]"):
        env.reset()
    env = TransformedEnv(counting_env(batch_size=(2,)), BatchSizeTransform(batch_size=[3]))
    with pytest.raises(ValueError, match="cannot be expanded to \\[3\\]"):
        _ = env.batch_size
    env = TransformedEnv(counting_env(), BatchSizeTransform(reshape_fn=lambda td: td.expand(2)))
    with pytest.raises(ValueError, match="as many rows"):
        _ = env.batch_size
    bad_reset = BatchSizeTransform(batch_size=[2], reset_func=lambda td, r: None)
    with pytest.raises(TypeError, match="must return a TensorDict"):
        TransformedEnv(StatelessEnv(), bad_reset).reset()


class TestBatchSizeReshapeContract(TransformContractTests):
    def make_transform(self):
        return BatchSizeTransform(reshape_fn=_unsqueeze0)
