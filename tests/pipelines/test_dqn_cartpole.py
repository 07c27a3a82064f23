"""pipelines/dqn_cartpole.py: one concurrent graph that collects, learns, evaluates and logs."""

from __future__ import annotations

import csv
import dataclasses
import multiprocessing as mp
import os
import signal
import threading
from pathlib import Path

import pytest
import torch

from streamrl.cli import load_pipeline
from streamrl.graph import Graph
from streamrl.ops import sample_budget
from streamrl.train import load_checkpoint, read_metrics

ROOT = Path(__file__).resolve().parents[2]
dqn = load_pipeline(ROOT / "pipelines" / "dqn_cartpole.py")

TINY = dict(frames=1024, learning_starts=256, train_freq=128, gradient_steps=16, batch_size=32,
            minibatches_per_sample=2, hidden=32, eval_interval=512, eval_episodes=2)


def expected_updates(config):
    limiter = dqn.make_buffer(config).rate_limiter
    batches = sample_budget(limiter, dqn.collected_frames(config), config.sample_size)
    return batches * config.minibatches_per_sample


def test_tiny_inline_run_drains_and_writes_its_files(tmp_path):
    config = dqn.DQNConfig(**TINY, rollout_placement="inline")
    result = dqn.train(config, run_dir=tmp_path)
    assert result.frames == 1024
    # the replay source drew exactly what the limiter grants for the budget, then ended
    assert result.updates == expected_updates(config) > 0
    # SB3's ratio: gradient_steps per train_freq frames after learning_starts (+ the slack)
    assert (1024 - 256) * 16 / 128 <= result.updates <= (1024 - 256) * 16 / 128 + 64
    # evaluations every 512 frames' worth of updates (64 updates) and on the final weights
    assert len(result.evaluations) >= 2
    assert all(8 <= r <= 500 for _, r in result.evaluations)
    assert result.evaluations[-1][0] == 1024 and result.eval_return == result.evaluations[-1][1]
    assert "bottleneck" in result.report and "learner" in result.report

    rows = read_metrics(tmp_path)
    learner_rows = [r for r in rows if r.get("loss") is not None]
    assert learner_rows[-1]["updates"] == result.updates
    assert all(r["staleness"] >= 0 and r["policy_version"] >= 1 for r in learner_rows)
    assert all(0.04 - 1e-6 <= r["epsilon"] <= 1.0 for r in learner_rows)
    assert learner_rows[-1]["epsilon"] == pytest.approx(0.04)  # annealed over 16% of 1024
    with open(tmp_path / "metrics.csv") as f:
        assert list(csv.DictReader(f).fieldnames) == dqn.COLUMNS
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["pipeline"] == "dqn_cartpole" and state["frames"] == 1024
    assert state["updates"] == result.updates and state["buffer"]["storage"]["len"] == 1024
    _, policy, explore = dqn.make_models(config, dqn.GymEnv("CartPole-v1"))
    policy.load_state_dict(state["policy"])
    assert float(explore.eps) == pytest.approx(0.04)
    assert (tmp_path / "config.json").exists() and (tmp_path / "learning_curve.png").exists()


def test_process_rollout_reads_published_weights(tmp_path):
    config = dqn.DQNConfig(**TINY)
    result = dqn.train(config, run_dir=tmp_path)
    assert result.frames == 1024 and result.updates == expected_updates(config)
    rows = [r for r in read_metrics(tmp_path) if r.get("batch_policy_version") is not None]
    # batches collected after the first publications carry newer versions: the worker process
    # saw the learner's weights (and their version) through shared memory
    assert max(r["batch_policy_version"] for r in rows) > 0
    collector = [r["collector_version"] for r in rows]
    assert collector == sorted(collector) and collector[-1] > 0
    assert not mp.active_children()  # the rollout's worker process is gone
    assert result.mean_staleness is not None and result.mean_staleness >= 0


def test_resume_continues_the_budget(tmp_path):
    first = dqn.DQNConfig(**TINY, rollout_placement="inline")
    dqn.train(first, run_dir=tmp_path / "a")
    longer = dataclasses.replace(first, frames=2048)
    result = dqn.train(longer, run_dir=tmp_path / "b", resume=tmp_path / "a" / "checkpoint.pt")
    assert result.frames == 2048
    # the buffer and its limiter counters came back: together the two runs made exactly the
    # updates that one 2048-frame run would make
    assert result.updates == expected_updates(longer)
    state = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert state["frames"] == 2048 and state["buffer"]["rate_limiter"]["inserts"] == 2048
    rows = read_metrics(tmp_path / "b")
    assert rows[0]["frames"] > 1024  # counted on from the checkpoint
    with pytest.raises(ValueError, match="already at the budget"):
        dqn.train(first, resume=tmp_path / "b" / "checkpoint.pt")
    torch.save({"pipeline": "ppo_cartpole"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a dqn_cartpole checkpoint"):
        dqn.train(first, resume=tmp_path / "other.pt")


def test_main_prints_summary_and_report(tmp_path, capsys):
    argv = ["--run-dir", str(tmp_path), "--no-progress", "--rollout-placement", "inline"]
    for key, value in TINY.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    assert dqn.main(argv) == 0
    out = capsys.readouterr().out
    assert "dqn_cartpole: final eval return" in out and "bottleneck:" in out
    assert "staleness" in out and str(tmp_path) in out


def test_progress_bar_shows_frames_and_eval(capsys):
    dqn.train(dqn.DQNConfig(**TINY, rollout_placement="inline"), progress=True)
    err = capsys.readouterr().err
    assert "dqn_cartpole" in err and "frame" in err and "eval=" in err


# threads blocked in the rate limiter when the graph is cancelled may be abandoned (warning)
@pytest.mark.filterwarnings("ignore::streamrl.StreamRLWarning")
def test_ctrl_c_saves_a_checkpoint_and_exits_130(tmp_path, capsys):
    argv = ["--run-dir", str(tmp_path), "--no-progress", "--rollout-placement", "inline"]
    for key, value in {**TINY, "frames": 1_000_000}.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    timer = threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        code = dqn.main(argv)
    finally:
        timer.cancel()
    assert code == 130
    assert "interrupted; checkpoint:" in capsys.readouterr().err
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert 0 < state["frames"] < 1_000_000 and state["frames"] == state["buffer"]["storage"]["len"]


def test_build_graph_and_config_errors():
    g = dqn.build_graph(["--frames", "2048"])
    assert isinstance(g, Graph)
    assert {"rollout", "replay_sink", "replay_source", "learner", "weight_sync", "evaluator",
            "metrics"} <= set(g.nodes)
    assert g["rollout"].placement.name == "process" and g["learner"].placement.name == "thread"
    with pytest.raises(ValueError, match="batch_size"):
        dqn.DQNConfig(batch_size=0)
    with pytest.raises(ValueError, match="rollout_placement"):
        dqn.DQNConfig(rollout_placement="thread")
    with pytest.raises(ValueError, match="exploration_fraction"):
        dqn.DQNConfig(exploration_fraction=0.0)
    with pytest.raises(SystemExit):
        dqn.parse_args(["--gamma", "2"])


@pytest.mark.slow
def test_dqn_solves_cartpole(tmp_path):
    # rl-zoo's settings (lr 2.3e-3, batch 64, Huber loss, train_freq 256, exploration over the
    # first 16% to eps 0.04) on a smaller budget: 30,000 frames, 64x64 Q-network, 64 updates
    # per 256 frames with the target copied every 64 updates (rl-zoo's 50,000 frames, 256x256
    # and 128 updates cost 3x more). In lockstep (each batch collected after the updates the
    # frames before it grant): training is then the same run after run, whatever the thread
    # timing, so its outcome can be asserted. Intermediate evaluations may still evaluate a
    # later publication when the evaluator is busy, so only the final one is asserted.
    # Measured here (seed 0): 110 to 366 up to 20,000 frames, then 500 at 23,808, 27,904 and
    # on the final weights; a random policy scores about 20. Neither budget solves every
    # seed (DQN on CartPole forgets and relearns): rl-zoo's final weights score 500 / 85 /
    # 108 on seeds 0 / 1 / 2, this budget's 500 / 142 / 135 / 500 on seeds 0 to 3.
    # (no TensorBoard logger: this measures learning, under the timing it was calibrated on)
    config = dataclasses.replace(dqn.DQNConfig(), frames=30_000, hidden=64, gradient_steps=64,
                                 target_update_interval=64, seed=0, eval_interval=4000,
                                 logger="none", lockstep=True)
    assert config.target_return == 475
    result = dqn.train(config, run_dir=tmp_path)
    print(result.report, result.evaluations, "solved at", result.solved_at)
    assert result.evaluations[-1][0] == dqn.collected_frames(config)  # the final weights
    assert result.evaluations[-1][1] >= config.target_return, result.evaluations
    assert result.updates == expected_updates(config)


def test_policy_lag_bound_holds_on_every_batch(tmp_path, capsys):
    with pytest.raises(ValueError, match="pass max_policy_lag >= ") as info:
        dqn.train(dqn.DQNConfig(**TINY, rollout_placement="inline", lockstep=True,
                                max_policy_lag=0))
    lag = int(str(info.value).rsplit(">= ", 1)[1])
    config = dqn.DQNConfig(**TINY, rollout_placement="inline", lockstep=True,
                           max_policy_lag=lag, logger="none")
    result = dqn.train(config, run_dir=tmp_path)
    assert result.updates == expected_updates(config)  # the bound stalls nothing
    rows = [r for r in read_metrics(tmp_path) if r.get("loss") is not None]
    assert rows and all(0 <= r["staleness"] <= r["staleness_max"] <= lag for r in rows)
    assert result.max_staleness == max(r["staleness_max"] for r in rows) > 0
    dqn.driver.print_offpolicy_summary("dqn_cartpole", config, result)
    assert f"(bound: max_policy_lag={lag})" in capsys.readouterr().out
    with pytest.raises(ValueError, match="max_policy_lag must be None or an int >= 0"):
        dqn.DQNConfig(max_policy_lag=-2)
