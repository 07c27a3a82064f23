"""build_offline_graph: behaviour cloning from a fixed dataset of an expert's CartPole play,
evaluated online; an exact resume from a checkpoint; bad input."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.collectors import Collector
from streamrl.data import LazyTensorStorage, ReplayBuffer
from streamrl.envs import GymEnv
from streamrl.modules import OneHotCategorical, ProbabilisticActor
from streamrl.objectives import BCLoss
from streamrl.ops import Learner, build_offline_graph


@dataclasses.dataclass
class _Config:
    """A stand-in for a pipeline's config."""


class _Expert(nn.Module):
    """A hand-written CartPole controller (500 steps on every seed tried)."""

    def forward(self, obs):
        x, xd, th, thd = obs.unbind(-1)
        a = (th + 0.3 * thd + 0.01 * x + 0.1 * xd > 0).long()
        return nn.functional.one_hot(a, 2)


@pytest.fixture(scope="module")
def expert_data():
    env = GymEnv("CartPole-v1")
    policy = TensorDictModule(_Expert(), ["observation"], ["action"])
    buffer = ReplayBuffer(storage=LazyTensorStorage(2000))
    collector = Collector(env, policy, frames_per_batch=500, total_frames=2000)
    for batch in collector:
        buffer.extend(batch.reshape(-1))
    collector.shutdown()
    return buffer


def _dataset(expert_data, seed=0):
    """The expert's rows in a buffer of its own (each run draws with its own sampler)."""
    buffer = ReplayBuffer(storage=LazyTensorStorage(len(expert_data)))
    buffer.extend(expert_data.storage.get(torch.arange(len(expert_data))))
    buffer.sampler.manual_seed(seed)
    return buffer


def _bc(seed=0):
    torch.manual_seed(seed)
    net = TensorDictModule(nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 2)),
                           ["observation"], ["logits"])
    actor = ProbabilisticActor(net, in_keys=["logits"], distribution_class=OneHotCategorical,
                               return_log_prob=False)
    loss = BCLoss(actor)
    return actor, loss, Learner(loss, torch.optim.Adam(loss.parameters(), lr=1e-2))


def _graph(expert_data, actor, learner, updates, **kwargs):
    return build_offline_graph("bc_test", _dataset(expert_data), actor, learner,
                               updates=updates, sample_size=128,
                               make_eval_env=lambda: GymEnv("CartPole-v1"),
                               eval_seed=7, **kwargs)


def test_behaviour_cloning_from_a_dataset_reaches_the_expert(expert_data):
    actor, _, learner = _bc()
    og = _graph(expert_data, actor, learner, updates=300, eval_interval=100)
    og.graph.run_sync()
    assert learner.updates == 300
    updates = [u for u, _ in og.evaluations]
    assert updates == [100, 200, 300]  # each point, the last one being the final weights
    assert og.evaluations[-1][1] >= 400, og.evaluations  # the expert plays 500 steps
    assert og.evaluations[0][1] < og.evaluations[-1][1] or og.evaluations[0][1] >= 400
    assert og.weights.version == og.source.sampled  # one publication per learner message


def test_a_resumed_run_makes_the_same_updates(expert_data, tmp_path):
    actor, loss, learner = _bc()
    straight = _graph(expert_data, actor, learner, updates=40, eval_interval=40)
    straight.graph.run_sync()

    actor2, loss2, learner2 = _bc()
    first = _graph(expert_data, actor2, learner2, updates=20, eval_interval=40,
                   saved={"loss": loss2, "optim": learner2.optimizer})
    first.graph.run_sync()
    state = first.checkpoint(config=_Config())
    torch.save(state, tmp_path / "ckpt.pt")
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert state["updates"] == 20 and "storage" not in str(state.keys())

    actor3, loss3, learner3 = _bc(seed=1)  # other initial weights: all comes from the state
    second = _graph(expert_data, actor3, learner3, updates=40, eval_interval=40,
                    saved={"loss": loss3, "optim": learner3.optimizer}, state=state)
    second.graph.run_sync()
    assert learner3.updates == 40
    for a, b in zip(loss.parameters(), loss3.parameters()):
        assert torch.equal(a, b)


def test_a_checkpoint_at_the_budget_is_refused(expert_data):
    actor, loss, learner = _bc()
    og = _graph(expert_data, actor, learner, updates=5, eval_interval=5, saved={"loss": loss})
    og.graph.run_sync()
    state = og.checkpoint(config=_Config())
    actor2, loss2, learner2 = _bc()
    with pytest.raises(ValueError, match="already at the budget updates=5"):
        _graph(expert_data, actor2, learner2, updates=5, eval_interval=5,
               saved={"loss": loss2}, state=state)


def test_bad_input_is_named(expert_data):
    actor, loss, learner = _bc()
    env = lambda: GymEnv("CartPole-v1")  # noqa: E731
    with pytest.raises(ValueError, match="dataset is empty"):
        build_offline_graph("x", ReplayBuffer(storage=LazyTensorStorage(10)), actor, learner,
                            updates=5, sample_size=4, make_eval_env=env, eval_interval=5,
                            eval_seed=0)
    with pytest.raises(TypeError, match=r"dataset must be a replay buffer.*list"):
        build_offline_graph("x", [], actor, learner, updates=5, sample_size=4,
                            make_eval_env=env, eval_interval=5, eval_seed=0)
    with pytest.raises(ValueError, match="updates must be a positive int, found 0"):
        build_offline_graph("x", _dataset(expert_data), actor, learner, updates=0,
                            sample_size=4, make_eval_env=env, eval_interval=5, eval_seed=0)
    with pytest.raises(TypeError, match="learner must be a Learner"):
        build_offline_graph("x", _dataset(expert_data), actor, loss, updates=5,
                            sample_size=4, make_eval_env=env, eval_interval=5, eval_seed=0)
