"""Evaluations of an off-policy graph play one set of weights, at known update counts, and
are reported at the frames collected for those weights (issue 15)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from streamrl.cli import load_pipeline
from streamrl.envs import SerialEnv
from streamrl.envs.libs.gym import GymEnv
from streamrl.ops import Evaluator, PolicyWeights, WeightSync, ratio_buffer, sample_budget
from streamrl.ops._eval_points import EvalPoints
from streamrl.ops.offpolicy import _FramesFor
from streamrl.train.dqn_config import DQNConfig

PLAYED: list[float] = []  # the sign each policy call saw (module level: deepcopy keeps it)


class SignPolicy(nn.Module):
    """Pushes right when its parameter is positive, and records the parameter it played."""

    def __init__(self) -> None:
        super().__init__()
        self.side = nn.Parameter(torch.ones(()))

    def forward(self, td):
        PLAYED.append(float(self.side))
        right = int(self.side > 0)
        td.set("action", torch.full(td.batch_size, right, dtype=torch.int64))
        return td


def eval_env():
    return SerialEnv(2, lambda: GymEnv("CartPole-v1", categorical_action_encoding=True))


def test_weight_sync_snapshots_at_its_points_and_at_the_end():
    net = nn.Linear(2, 1)
    weights = PolicyWeights(net)
    sync = WeightSync(weights, net, snapshot_at=EvalPoints(10, 0))
    assert sync.outputs == ("out", "snapshot")
    assert set(sync.step({"in": {"updates": 4}})) == {"out"}
    with torch.no_grad():
        net.weight.fill_(2.0)
    out = sync.step({"in": {"updates": 12}})  # the first publication at or after 10
    snap = out["snapshot"]
    assert snap["updates"] == 12 and snap["policy_version"] == 2 == weights.version
    assert "weights" not in out["out"]  # the metrics stream stays scalar
    with torch.no_grad():
        net.weight.fill_(-1.0)
    assert set(sync.step({"in": {"updates": 16}})) == {"out"}
    # a later publication changed the shared copy, not the snapshot
    assert bool((weights.policy.weight == -1.0).all())
    assert bool((snap["weights"]["weight"] == 2.0).all())
    final = sync.finish()["snapshot"]  # the final weights, their count not yet sent
    assert final["updates"] == 16 and final["policy_version"] == 3
    assert bool((final["weights"]["weight"] == -1.0).all())
    # no snapshot_at: one output, nothing at the end
    plain = WeightSync(weights, net)
    assert plain.outputs == ("out",) and plain.finish() is None
    with pytest.raises(TypeError, match="snapshot_at must be callable"):
        WeightSync(weights, net, snapshot_at=3)


def test_eval_points_every_interval_or_listed_and_after_a_resume():
    every = EvalPoints(10, 0)
    assert [u for u in (4, 8, 12, 16, 20, 44) if every(u)] == [12, 20, 44]
    listed = EvalPoints([25, 5, 30], 0)  # sorted; one publication may pass two points
    assert [u for u in (4, 8, 12, 28, 31, 40) if listed(u)] == [8, 28, 31]
    resumed = EvalPoints(10, 20)  # a run resumed at 20 updates: the next point is 30
    assert [u for u in (24, 32) if resumed(u)] == [32]
    with pytest.raises(ValueError, match="eval_interval"):
        EvalPoints([0, 5], 0)
    with pytest.raises(ValueError, match="eval_interval"):
        EvalPoints(0, 0)


def test_evaluator_plays_the_snapshot_not_the_weights_published_since():
    policy = SignPolicy()
    weights = PolicyWeights(policy)
    weights.publish(policy)
    snap = weights.snapshot()  # side = +1, version 1
    with torch.no_grad():
        policy.side.fill_(-1.0)
    weights.publish(policy)  # the shared copy now pushes left
    ev = Evaluator(eval_env, weights, interval=None, frames=lambda u: 100 * u)
    ev.open()
    try:
        PLAYED.clear()
        out = ev.step({"in": {"updates": 7, "policy_version": 1, "weights": snap}})["out"]
        assert PLAYED and set(PLAYED) == {1.0}
        assert out["policy_version"] == 1 and out["updates"] == 7 and out["eval_frames"] == 700
        assert float(weights.policy.side.detach()) == -1.0  # the shared copy was not touched
        # interval=None: a count without weights is not a point; the end evaluates it, with
        # the shared (final) weights
        assert ev.step({"in": {"updates": 9}}) is None
        PLAYED.clear()
        final = ev.finish()["out"]
        assert set(PLAYED) == {-1.0} and final["updates"] == 9 and final["policy_version"] == 2
    finally:
        ev.close()


@pytest.mark.parametrize("starts,frames_per_batch,sample_size,per_message", [
    (1000, 256, 1024, 16), (256, 128, 64, 2), (100, 32, 96, 3)])
def test_frames_for_is_the_fewest_batches_whose_grant_makes_the_updates(
        starts, frames_per_batch, sample_size, per_message):
    rb = ratio_buffer(100_000, 2.0 * per_message * 64 / frames_per_batch / 2,
                      learning_starts=starts, sample_size=sample_size,
                      frames_per_batch=frames_per_batch)
    limiter, batches = rb.rate_limiter, 60
    frames_for = _FramesFor(limiter, done=0, batches=batches, frames_per_batch=frames_per_batch,
                            sample_size=sample_size, updates=0,
                            updates_per_message=per_message)
    grants = [sample_budget(limiter, b * frames_per_batch, sample_size) * per_message
              for b in range(batches + 1)]
    for updates in range(0, grants[-1] + 3 * per_message, max(1, per_message // 2)):
        fewest = next((b for b, g in enumerate(grants) if g >= updates), batches)
        assert frames_for(updates) == fewest * frames_per_batch, updates
    rb.close()


def sb3_updates_at_evaluations(config):
    """SB3's loop, step by step: the callback (which evaluates every eval_interval steps)
    runs after each env step; a round of gradient_steps follows every train_freq steps
    once more than learning_starts steps were taken."""
    updates, seen = 0, []
    for step in range(1, config.frames + 1):
        if step % config.eval_interval == 0:
            seen.append(updates)
        if step % config.train_freq == 0 and step > config.learning_starts:
            updates += config.gradient_steps
    return [u for u in seen if u > 0]


@pytest.mark.parametrize("kw", [{}, dict(train_freq=4, gradient_steps=1, eval_interval=2500),
                                dict(learning_starts=1024, eval_interval=1280, frames=9000)])
def test_dqn_eval_points_are_sb3s_update_counts(kw):
    config = DQNConfig(**kw)
    assert config.eval_points() == sb3_updates_at_evaluations(config)


def test_dqn_cartpole_evaluates_snapshots_at_the_frames_collected_for_them(tmp_path):
    from pathlib import Path

    dqn = load_pipeline(Path(__file__).resolve().parents[2] / "pipelines" / "dqn_cartpole.py")
    config = dqn.DQNConfig(frames=2048, learning_starts=256, train_freq=128, gradient_steps=16,
                           batch_size=32, minibatches_per_sample=2, hidden=32,
                           eval_interval=512, eval_episodes=2, lockstep=True,
                           rollout_placement="inline", logger="none")
    result = dqn.train(config, run_dir=tmp_path)
    points = config.eval_points()
    assert points == [16 * (511 // 128 - 2), 16 * (1023 // 128 - 2), 16 * (1535 // 128 - 2),
                      16 * (2047 // 128 - 2)]
    rb = dqn.make_buffer(config)
    frames_for = _FramesFor(rb.rate_limiter, done=0, batches=16, frames_per_batch=128,
                            sample_size=64, updates=0, updates_per_message=2)
    rb.close()
    evals = [r for r in result.run_dir.joinpath("metrics.jsonl").read_text().splitlines()
             if '"eval_return"' in r]
    import json

    rows = [json.loads(r) for r in evals]
    # one evaluation per point (none skipped) and one of the final weights
    assert [r["updates"] for r in rows] == [*points, result.updates]
    # each at the frames collected for its weights, not the frames counted when it ran
    assert [f for f, _ in result.evaluations] == [frames_for(p) for p in points] + [2048]
    assert [r["eval_frames"] for r in rows] == [f for f, _ in result.evaluations]
    # the rows' own frames stay the frames counted when they were written (monotone)
    frames = [r["frames"] for r in map(json.loads, result.run_dir.joinpath(
        "metrics.jsonl").read_text().splitlines())]
    assert frames == sorted(frames)
    # each played the publication at its point (2 updates per message, one per publication)
    assert [r["policy_version"] for r in rows] == [r["updates"] // 2 for r in rows]
