"""pipelines/sac_pendulum.py: one concurrent graph that collects, learns, evaluates and logs."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest

from streamrl.cli import load_pipeline
from streamrl.envs import GymEnv
from streamrl.graph import Graph
from streamrl.ops import sample_budget
from streamrl.train import load_checkpoint, read_metrics

ROOT = Path(__file__).resolve().parents[2]
sac = load_pipeline(ROOT / "pipelines" / "sac_pendulum.py")

TINY = dict(frames=600, learning_starts=100, frames_per_batch=50, batch_size=32,
            minibatches_per_sample=4, updates_per_frame=0.25, hidden=32, eval_interval=200,
            eval_episodes=2)


def expected_updates(config):
    limiter = config.make_buffer().rate_limiter
    batches = sample_budget(limiter, config.collected_frames(), config.sample_size)
    return batches * config.minibatches_per_sample


def test_tiny_inline_run_drains_and_writes_its_files(tmp_path):
    config = sac.SACConfig(**TINY, rollout_placement="inline")
    result = sac.train(config, run_dir=tmp_path)
    assert result.frames == 600
    assert result.updates == expected_updates(config) > 0
    # updates_per_frame after learning_starts, within the limiter's slack
    assert (600 - 100) * 0.25 - 8 <= result.updates <= (600 - 100) * 0.25 + 20
    assert len(result.evaluations) >= 2 and result.evaluations[-1][0] == 600
    # Pendulum returns over 200 steps lie in [-16.3 * 200, 0]
    assert all(-3300 <= r <= 0 for _, r in result.evaluations)
    assert "bottleneck" in result.report

    rows = read_metrics(tmp_path)
    learner_rows = [r for r in rows if r.get("loss_qvalue") is not None]
    assert learner_rows[-1]["updates"] == result.updates
    assert all(r["alpha"] > 0 and r["staleness"] >= 0 for r in learner_rows)
    # automatic temperature: alpha moves away from its initial value
    assert learner_rows[-1]["alpha"] != pytest.approx(1.0)
    train_rows = [r for r in rows if r.get("train_return") is not None]
    assert train_rows and all(r["train_episodes"] >= 1 for r in train_rows)
    with open(tmp_path / "metrics.csv") as f:
        assert list(csv.DictReader(f).fieldnames) == sac.COLUMNS
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["pipeline"] == "sac_pendulum" and state["updates"] == result.updates
    actor, _ = sac.make_models(config, GymEnv("Pendulum-v1"))
    actor.load_state_dict(state["policy"])
    assert (tmp_path / "learning_curve.png").exists()


def test_resume_continues_the_budget(tmp_path):
    first = sac.SACConfig(**TINY, rollout_placement="inline")
    sac.train(first, run_dir=tmp_path / "a")
    longer = dataclasses.replace(first, frames=1000)
    result = sac.train(longer, run_dir=tmp_path / "b", resume=tmp_path / "a" / "checkpoint.pt")
    assert result.frames == 1000 and result.updates == expected_updates(longer)
    state = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert state["frames"] == 1000 and state["learner"]["updates"] == result.updates
    with pytest.raises(ValueError, match="already at the budget"):
        sac.train(first, resume=tmp_path / "b" / "checkpoint.pt")


def test_process_rollout_reads_published_weights(tmp_path):
    config = sac.SACConfig(**TINY)
    result = sac.train(config, run_dir=tmp_path)
    assert result.frames == 600 and result.updates == expected_updates(config)
    rows = [r for r in read_metrics(tmp_path) if r.get("batch_policy_version") is not None]
    assert max(r["batch_policy_version"] for r in rows) > 0


def test_main_and_build_graph(tmp_path, capsys):
    argv = ["--no-files", "--no-progress", "--rollout-placement", "inline"]
    for key, value in TINY.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    assert sac.main(argv) == 0
    out = capsys.readouterr().out
    assert "sac_pendulum: final eval return" in out and "bottleneck:" in out
    g = sac.build_graph(["--frames", "1000"])
    assert isinstance(g, Graph) and {"rollout", "learner", "evaluator", "metrics"} <= set(g.nodes)
    with pytest.raises(ValueError, match="tau"):
        sac.SACConfig(tau=0.0)
    with pytest.raises(ValueError, match="updates_per_frame"):
        sac.SACConfig(updates_per_frame=0)
    with pytest.raises(ValueError, match="bounded continuous"):
        sac.make_models(sac.SACConfig(), GymEnv("CartPole-v1"))


@pytest.mark.slow
def test_sac_solves_pendulum(tmp_path):
    # rl-zoo's settings but 64x64 networks (the 256x256 ones cost ~3x more per update here)
    # and lr 2e-3 (rl-zoo's 1e-3 first reaches -200 at 4,500 frames, a single evaluation of
    # -112 among -231 and -677; 2e-3 reaches it at 2,500 and stays there: -180, -153, -147
    # at 2,500, 3,000 and 3,500 frames, measured here). In lockstep, so that training is the
    # same run after run (free-running, thread timing makes the same seed vary). The
    # untrained policy's evaluations (500, 1,000 frames) score -1,750 and -1,500.
    config = dataclasses.replace(sac.SACConfig(), frames=3500, hidden=64, lr=2e-3,
                                 eval_interval=500, lockstep=True, target_return=-200.0)
    result = sac.train(config, run_dir=tmp_path)
    print(result.report, result.evaluations)
    # solved: an evaluation reached -200 within the budget (the final weights' single
    # evaluation swings by hundreds between runs that differ only in float rounding)
    assert result.solved_at is not None and result.solved_at <= 3500, result.evaluations
