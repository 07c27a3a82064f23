"""pipelines/optioncritic_fourrooms.py: a tiny run writes its run dir (metrics, checkpoint,
pictures), moves the goal when told and resumes; options are held between decisions; the
flat baseline runs; bad fields are named."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from streamrl.cli import load_pipeline
from streamrl.train import read_metrics

ROOT = Path(__file__).resolve().parents[2]
OC = load_pipeline(ROOT / "pipelines" / "optioncritic_fourrooms.py")

TINY = dict(num_envs=4, steps_per_env=8, frames=640, goal_move_at=320, eval_interval=320,
            eval_episodes=2, max_steps=50, logger="none")


def test_a_tiny_run_writes_its_run_dir_moves_the_goal_and_resumes(tmp_path):
    config = OC.OptionCriticConfig(**TINY)
    result = OC.train(config, run_dir=tmp_path)
    assert result.frames == 640 and result.goal_moved_at == 320
    rows = read_metrics(tmp_path)
    assert [r["goal_moved"] for r in rows] == [0] * 10 + [1] * 10
    assert [r["frames"] for r in rows if r.get("eval_steps") is not None] == [320, 640]
    assert all(r["loss_critic"] is not None for r in rows)
    assert (tmp_path / "checkpoint.pt").is_file() and (tmp_path / "config.json").is_file()
    pytest.importorskip("matplotlib")
    assert (tmp_path / "options.png").is_file() and (tmp_path / "learning_curve.png").is_file()
    longer = dataclasses.replace(config, frames=960)
    resumed = OC.train(longer, run_dir=tmp_path, resume=tmp_path / "checkpoint.pt")
    assert resumed.frames == 960 and resumed.goal_moved_at == 320  # moved before the resume
    assert [r["frames"] for r in read_metrics(tmp_path)][-1] == 960


def test_options_are_held_between_decisions():
    config = OC.OptionCriticConfig(**TINY)
    torch.manual_seed(0)
    heads, held, policy = OC.make_agent(config)
    with torch.no_grad():  # make options end often and differ
        heads.head.bias.uniform_(-2, 2)
    env = OC.make_env(config, held, 4, seed=0)
    rollout = env.rollout(40, policy, break_when_any_done=False)
    option = rollout["hrl", "decision"].squeeze(-1)
    new = rollout["hrl", "new"].squeeze(-1)
    changed = option[:, 1:] != option[:, :-1]
    assert not (changed & ~new[:, 1:]).any()  # an option changes only at a decision
    assert new[:, 1:].any() and (~new[:, 1:]).any()
    assert rollout["action"].max() < 4


def test_the_flat_baseline_runs(tmp_path):
    flat = OC.OptionCriticConfig(**{**TINY, "num_options": 1, "frames": 320,
                                    "goal_move_at": None, "eval_interval": 320})
    result = OC.train(flat)
    assert result.frames == 320 and result.goal_moved_at is None and result.evaluations


def test_bad_fields_are_named():
    with pytest.raises(ValueError, match=r"goal_move_at must be None or in \(0, frames=640\), "
                                         r"found 640"):
        OC.OptionCriticConfig(**{**TINY, "goal_move_at": 640})
    with pytest.raises(ValueError, match=r"epsilon must be in \[0, 1\], found 2"):
        OC.OptionCriticConfig(epsilon=2)
    with pytest.raises(ValueError, match="hidden must be an int >= 0, found -1"):
        OC.OptionCriticConfig(hidden=-1)


def test_the_moved_goal_is_in_the_lower_right_room_and_seeded():
    a, b = OC.OptionCriticConfig(seed=3), OC.OptionCriticConfig(seed=3)
    assert a.moved_goal() == b.moved_goal() and a.moved_goal() in OC.LOWER_RIGHT
    from streamrl.envs import FourRoomsEnv
    assert all(FourRoomsEnv().free[cell] for cell in OC.LOWER_RIGHT)


def test_the_graph_draws():
    graph = OC.build_graph(["--num-envs", "2"])
    assert "rollout" in set(graph.nodes)
