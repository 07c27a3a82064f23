"""pipelines/hiro_pointmaze.py: a few hundred PointMaze frames end to end with both levels
(run dir, goals.png, resume), what each level's replay holds, the drawing of both time
scales, flat TD3 by flag, and bad input refused before any work."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest
import torch

from streamrl.cli import load_pipeline
from streamrl.train import load_checkpoint

# not imported here: gymnasium-robotics imports MuJoCo, which must not be imported before
# streamrl chooses its headless GL backend (a later render in this process would fail)
pytestmark = pytest.mark.skipif(importlib.util.find_spec("gymnasium_robotics") is None,
                                reason="needs gymnasium-robotics (the goals extra)")

ROOT = Path(__file__).resolve().parents[2]
HIRO = load_pipeline(ROOT / "pipelines" / "hiro_pointmaze.py")

TINY = dict(frames=400, learning_starts=100, frames_per_batch=50, batch_size=16,
            minibatches_per_sample=2, hidden=16, eval_interval=400, eval_episodes=1,
            high_batch_size=8, high_learning_starts=5, goal_every=4,
            rollout_placement="inline", logger="none")


def test_tiny_run_writes_its_run_dir_and_resumes(tmp_path):
    config = HIRO.HIROConfig(**TINY)
    result = HIRO.train(config, run_dir=tmp_path / "a")
    assert result.frames == 400 and result.updates > 0
    assert (tmp_path / "a" / "goals.png").stat().st_size > 0
    state = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    assert state["pipeline"] == "hiro_pointmaze" and state["frames"] == 400
    high_updates = state["high_learner"]["updates"]
    # 100 segments of 4 steps, the last one still open (it ends at the next decision); one
    # update for each stored past high_learning_starts
    assert state["segments"]["emitted"] == 99 and len(state["segments"]["open"]) > 0
    assert high_updates == state["high_draws"]["drawn"] == 99 - 5
    longer = dataclasses.replace(config, frames=500)
    HIRO.train(longer, run_dir=tmp_path / "b", resume=tmp_path / "a" / "checkpoint.pt")
    resumed = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    # the resumed rollout starts a new episode: the open segment is dropped, 24 more end
    assert resumed["frames"] == 500 and resumed["segments"]["emitted"] == 99 + 24
    assert resumed["high_learner"]["updates"] == resumed["high_draws"]["drawn"] == 94 + 24
    columns = (tmp_path / "b" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"high_updates", "high_loss_qvalue", "relabelled"} <= set(columns)


def test_each_level_replays_its_own_transitions():
    config = HIRO.HIROConfig(**TINY)
    built = HIRO.build(config, None, False)
    built.graph.run_sync()
    low = built.buffer.storage.get(torch.arange(400))
    # the low level's reward: -||s + g - s'|| from the anchor held when it acted, and the
    # anchor carried to the next state unchanged (HIRO's goal transition)
    reached = low["next", "achieved_goal"]
    torch.testing.assert_close(low["next", "hrl", "reward"],
                               -(low["hrl", "anchor"] - reached).norm(dim=-1, keepdim=True))
    torch.testing.assert_close(low["next", "hrl", "anchor"], low["hrl", "anchor"])
    high_buffer = built.saved["high_buffer"]
    assert len(high_buffer) == 99
    stored = high_buffer.storage.get(torch.arange(99))
    assert (stored["hrl", "length"] == 4).all()
    assert stored["action"].abs().max() <= config.goal_range
    # a segment's reward is the env's rewards of its steps, summed
    rewards = low["next", "reward"].reshape(-1)[:4].sum()
    first = stored[(stored["collector", "traj_ids"] == low["collector", "traj_ids"][0])][0]
    torch.testing.assert_close(first["next", "reward"].reshape(()), rewards)
    sampled = high_buffer.sample(16)  # relabelled on the way out
    assert sampled["hrl", "relabel_index"].shape == (16, 1)
    assert ((sampled["hrl", "relabel_index"] >= 0)
            & (sampled["hrl", "relabel_index"] <= config.relabel_candidates + 1)).all()


def test_the_graph_draws_both_time_scales():
    g = HIRO.build_graph(["--frames", "400", "--no-files"])
    names = {node.name for node in g}
    assert {"rollout", "learner", "segments", "high_replay_sink", "high_replay_source",
            "high_learner"} <= names
    flat = HIRO.build_graph(["--frames", "400", "--no-files", "--flat"])
    assert "high_learner" not in {node.name for node in flat}


def test_flat_td3_reads_the_task_goal():
    config = HIRO.HIROConfig(**{**TINY, "flat": True})
    env = config.make_env()
    try:
        models = HIRO.make_models(config, env)
        assert models.high_actor is None
        td = models.policy(env.reset())
    finally:
        env.close()
    assert td["action"].shape == (2,) and ("hrl", "decision") not in td.keys(True)


def test_antmaze_runs_by_flag(tmp_path):
    config = HIRO.HIROConfig(**{**TINY, "env_name": "AntMaze_UMazeDense-v5", "frames": 200,
                                "eval_interval": 200, "goal_range": 2.0})
    result = HIRO.train(config, run_dir=tmp_path)
    assert result.frames == 200 and (tmp_path / "goals.png").is_file()
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["segments"]["emitted"] >= 40 and state["high_learner"]["updates"] > 0


def test_bad_input_is_refused_before_any_work():
    with pytest.raises(ValueError, match=r"needs a goal env \(observation, achieved_goal, "
                                         r"desired_goal\), found observation keys "
                                         r"\['observation'\] for 'Pendulum-v1'"):
        HIRO.build(HIRO.HIROConfig(**{**TINY, "env_name": "Pendulum-v1", "flat": True}),
                   None, False)
    with pytest.raises(ValueError, match=r"goal_every must be a positive int, found 0"):
        HIRO.HIROConfig(goal_every=0)
    with pytest.raises(ValueError, match=r"goal_range must be > 0, found -1.0"):
        HIRO.HIROConfig(goal_range=-1.0)
