"""build_offpolicy_graph and ratio_buffer: a small off-policy run end to end, its checkpoint
and resume, and argument errors."""

from __future__ import annotations

import dataclasses
import functools

import pytest
import torch

from streamrl.data import LazyTensorStorage, SampleToInsertRatio, TensorDictReplayBuffer
from streamrl.envs import GymEnv, SerialEnv
from streamrl.modules import MLP, QValueActor
from streamrl.objectives import DQNLoss
from streamrl.ops import (
    Learner,
    OffPolicyGraph,
    build_offpolicy_graph,
    min_policy_lag,
    ratio_buffer,
    sample_budget,
)

FRAMES_PER_BATCH, SAMPLE, MINIBATCH = 32, 32, 16


@dataclasses.dataclass
class Config:
    frames: int = 256


class FrameSteps:
    """An exploration module: records the frames it is stepped by."""

    def __init__(self):
        self.frames: list[int] = []

    def step(self, frames):
        self.frames.append(frames)


def make_env():
    return SerialEnv(1, functools.partial(GymEnv, "CartPole-v1"))


def make_eval_env():
    return SerialEnv(2, functools.partial(GymEnv, "CartPole-v1"))


def build(frames=256, state=None, max_policy_lag=None, **kwargs):
    torch.manual_seed(0)
    probe = GymEnv("CartPole-v1")
    actor = QValueActor(MLP(in_features=4, out_features=2, num_cells=[16]), spec=probe.action_spec)
    probe.close()
    loss = DQNLoss(actor, delay_value=True)
    loss.make_value_estimator(gamma=0.99)
    optim = torch.optim.Adam(loss.parameters(), lr=1e-3)
    learner = Learner(loss, optim, minibatch_size=MINIBATCH)
    buffer = ratio_buffer(1000, 2.0, learning_starts=64, sample_size=SAMPLE,
                          frames_per_batch=FRAMES_PER_BATCH, max_policy_lag=max_policy_lag)
    steps = FrameSteps()
    options = dict(frames=frames, frames_per_batch=FRAMES_PER_BATCH, sample_size=SAMPLE,
                   make_eval_env=make_eval_env, eval_interval=8, eval_seed=0, seed=0,
                   saved={"policy": actor, "loss": loss, "optimizer": optim}, state=state,
                   exploration=[steps], extra_metrics={"tag": lambda: 7.0},
                   rollout_placement="inline")
    options.update(kwargs)
    return build_offpolicy_graph("tiny", make_env, actor, learner, buffer, **options), steps


REQUIRED = dict(frames=64, frames_per_batch=8, sample_size=8, make_eval_env=make_eval_env,
                eval_interval=1, eval_seed=0, seed=0)


def built_learner():
    net = torch.nn.Linear(2, 1)
    return Learner(net, torch.optim.SGD(net.parameters(), lr=0.1))


def run(built: OffPolicyGraph) -> None:
    try:
        built.graph.run_sync()
    finally:
        built.buffer.close()


def expected_updates(frames):
    limiter = ratio_buffer(1000, 2.0, learning_starts=64, sample_size=SAMPLE,
                           frames_per_batch=FRAMES_PER_BATCH).rate_limiter
    return sample_budget(limiter, frames, SAMPLE) * (SAMPLE // MINIBATCH)


def test_small_run_collects_learns_publishes_and_evaluates(tmp_path):
    built, steps = build(run_dir=tmp_path, columns=["frames", "updates", "tag", "eval_return"])
    assert list(built.graph.nodes) == ["rollout", "replay_sink", "replay_source", "learner",
                                       "weight_sync", "tag", "evaluator", "metrics"]
    run(built)
    assert built.metrics.frames == 256 == built.buffer.rate_limiter.inserts
    # the replay source drew what the limiter grants for the budget, then the graph ended
    assert built.learner.updates == expected_updates(256) > 0
    assert built.weights.version >= 1
    evaluations = built.metrics.evaluations
    assert evaluations and evaluations[-1][0] == 256  # the final weights are evaluated
    learner_rows = [r for r in built.metrics.rows if "tag" in r]
    assert learner_rows and all(r["tag"] == 7.0 for r in learner_rows)
    assert learner_rows[-1]["updates"] == built.learner.updates
    # stepped before each publication by the frames inserted since the previous one
    assert steps.frames and all(n % FRAMES_PER_BATCH == 0 for n in steps.frames)
    assert 0 < sum(steps.frames) <= 256
    assert (tmp_path / "metrics.csv").is_file()

    state = built.checkpoint(Config())
    assert list(state) == ["pipeline", "policy", "loss", "optimizer", "learner", "buffer",
                           "config", "frames", "updates", "policy_version"]
    assert state["pipeline"] == "tiny" and state["config"] == {"frames": 256}
    assert state["policy_version"] == built.weights.version > 0
    assert state["frames"] == 256 and state["updates"] == built.learner.updates


def test_resume_continues_from_the_checkpoint():
    first, _ = build()
    run(first)
    state = first.checkpoint(Config())
    second, steps = build(frames=384, state=state)
    assert second.metrics.frames == 256 and second.learner.updates == state["updates"]
    # versions count on: the restored rows' versions stay comparable with new ones
    assert second.weights.version == state["policy_version"] > 0
    policy = second.saved["policy"]
    assert all(torch.equal(p, first.saved["policy"].state_dict()[k])
               for k, p in policy.state_dict().items())
    assert "total_frames=128" in str(second.graph)  # only what is left of the budget
    run(second)
    assert second.metrics.frames == 384
    # together the two runs made exactly the updates of one 384-frame run
    assert second.learner.updates == expected_updates(384)
    assert sum(steps.frames) <= 128  # counted from the restored buffer, not from 0
    with pytest.raises(ValueError, match="already at the budget frames=256"):
        build(frames=256, state=state)


def test_init_random_frames_count_from_the_start_of_the_run():
    first, _ = build(init_random_frames=64)
    assert "init_random_frames=64" in str(first.graph)
    run(first)
    state = first.checkpoint(Config())
    # a resumed run takes random actions only for what is left of them
    second, _ = build(frames=384, state=state, init_random_frames=300)
    assert "init_random_frames=44" in str(second.graph)
    second.buffer.close()
    third, _ = build(frames=384, state=state, init_random_frames=64)
    assert "init_random_frames" not in str(third.graph)
    third.buffer.close()
    with pytest.raises(ValueError, match="init_random_frames must be an int >= 0, found -1"):
        build(init_random_frames=-1)


def lockstep_run(placement):
    built, steps = build(frames=320, lockstep=True, rollout_placement=placement)
    assert "pacer" in built.graph.nodes
    run(built)
    return built, steps


@pytest.mark.parametrize("placement", ["inline", "process"])
def test_lockstep_collects_each_batch_with_the_updates_before_it(placement):
    built, steps = lockstep_run(placement)
    assert built.metrics.frames == 320 and built.learner.updates == expected_updates(320)
    # batch b was played by exactly the publications the limiter grants for b batches
    limiter = ratio_buffer(1000, 2.0, learning_starts=64, sample_size=SAMPLE,
                           frames_per_batch=FRAMES_PER_BATCH).rate_limiter
    stored = built.buffer[:320]
    versions = stored.get(("collector", "policy_version")).reshape(-1, FRAMES_PER_BATCH)
    assert versions.unique(dim=1).shape[1] == 1  # one version per batch
    assert versions[:, 0].tolist() == [sample_budget(limiter, b * FRAMES_PER_BATCH, SAMPLE)
                                       for b in range(10)]
    # the exploration schedule moves by whole batches, at the same publications every run
    assert steps.frames == [64, 0, 0] + [32, 0] * 8


def test_lockstep_runs_repeat_exactly():
    first, _ = lockstep_run("inline")
    second, _ = lockstep_run("inline")
    assert torch.equal(first.buffer[:320].get("action"), second.buffer[:320].get("action"))
    for key, value in first.saved["policy"].state_dict().items():
        assert torch.equal(value, second.saved["policy"].state_dict()[key]), key
    assert first.metrics.evaluations[-1] == second.metrics.evaluations[-1]


def test_argument_errors():
    with pytest.raises(ValueError, match=r"rollout_placement must be one of \('process', "
                                         r"'inline', 'ray'\), found 'thread'"):
        build(rollout_placement="thread")
    with pytest.raises(TypeError, match=r"exploration modules need step\(frames\), found object"):
        build(exploration=[object()])
    with pytest.raises(ValueError, match=r"buffer must have a rate limiter .*, found "
                                         r"TensorDictReplayBuffer without one"):
        build_offpolicy_graph("x", make_env, torch.nn.Identity(), built_learner(),
                              TensorDictReplayBuffer(storage=LazyTensorStorage(10)),
                              **REQUIRED)
    with pytest.raises(TypeError, match="learner must be a Learner, found function"):
        build_offpolicy_graph("x", make_env, torch.nn.Identity(), lambda td: td,
                              ratio_buffer(10, 1.0, learning_starts=1, sample_size=1,
                                           frames_per_batch=1), **REQUIRED)
    built, _ = build(exploration=(), extra_metrics=None, rollout_placement="process")
    assert "tag" not in built.graph and built.graph["rollout"].placement.name == "process"
    assert built.graph["weight_sync"].op.before_publish is None
    built.buffer.close()


def test_ratio_buffer_limiter_and_storage():
    rb = ratio_buffer(500, 4.0, learning_starts=10, sample_size=64, frames_per_batch=8,
                      timeout=3.0)
    lim = rb.rate_limiter
    assert isinstance(lim, SampleToInsertRatio) and lim.samples_per_insert == 4.0
    # slack: one sampled message plus one collected batch either way of the target
    assert (lim.min_diff, lim.max_diff) == (10 * 4.0 - 96, 10 * 4.0 + 96)
    assert lim.max_sample_batch == 64 and lim.max_insert_batch == 8
    assert rb.storage.max_size == 500
    with pytest.raises(ValueError, match="samples_per_insert"):
        ratio_buffer(500, 0.0, learning_starts=10, sample_size=64, frames_per_batch=8)


def least_lag(**kwargs) -> int:
    """The bound build_offpolicy_graph asks for (read from its refusal of a bound of 0)."""
    with pytest.raises(ValueError, match="max_policy_lag=0 is below") as info:
        build(max_policy_lag=0, **kwargs)
    return int(str(info.value).rsplit(">= ", 1)[1])


@pytest.mark.parametrize("lockstep", [True, False], ids=["lockstep", "async"])
def test_policy_lag_bound_holds_on_every_batch(lockstep):
    lag = least_lag(lockstep=lockstep)
    if not lockstep:  # the worst case over thread timing is min_policy_lag's
        limiter = ratio_buffer(1000, 2.0, learning_starts=64, sample_size=SAMPLE,
                               frames_per_batch=FRAMES_PER_BATCH).rate_limiter
        assert lag == min_policy_lag(limiter, frames_per_batch=FRAMES_PER_BATCH,
                                     sample_size=SAMPLE)
    built, _ = build(frames=640, max_policy_lag=lag, lockstep=lockstep)
    run(built)
    rows = [r for r in built.metrics.rows if "staleness_max" in r]
    assert built.learner.updates == expected_updates(640)  # the bound stalls nothing
    assert rows and all(0 <= r["staleness"] <= r["staleness_max"] <= lag for r in rows)
    assert max(r["staleness_max"] for r in rows) > 0


def test_policy_lag_bound_is_kept_across_a_resume():
    lag = least_lag(lockstep=True)
    first, _ = build(frames=320, max_policy_lag=lag, lockstep=True)
    run(first)
    state = first.checkpoint(Config())
    second, _ = build(frames=640, state=state, max_policy_lag=lag, lockstep=True)
    assert second.weights.version == state["policy_version"]
    run(second)
    rows = [r for r in second.metrics.rows if "staleness_max" in r]
    assert rows and all(0 <= r["staleness_max"] <= lag for r in rows)


def test_policy_lag_errors():
    with pytest.raises(ValueError, match="max_policy_lag must be an int >= 0"):
        ratio_buffer(100, 1.0, learning_starts=8, sample_size=8, frames_per_batch=8,
                     max_policy_lag=-1)
    with pytest.raises(TypeError, match="needs a SampleToInsertRatio"):
        min_policy_lag(object(), frames_per_batch=8, sample_size=8)
    assert min_policy_lag(None, frames_per_batch=8, sample_size=8, schedule=[0]) == 0
