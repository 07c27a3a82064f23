"""pipelines/sac_her.py: a few hundred PointMaze frames end to end (run dir, resume), the
graph's hindsight buffer relabels with the env's compute_reward, her_ratio 0 is plain SAC,
and a non-goal env or a bad field is refused before any work."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from streamrl.cli import load_pipeline
from streamrl.data import HERReplayBuffer
from streamrl.train import load_checkpoint

# not imported here: gymnasium-robotics imports MuJoCo, which must not be imported before
# streamrl chooses its headless GL backend (a later render in this process would fail)
pytestmark = pytest.mark.skipif(importlib.util.find_spec("gymnasium_robotics") is None,
                                reason="needs gymnasium-robotics (the goals extra)")

ROOT = Path(__file__).resolve().parents[2]
HER = load_pipeline(ROOT / "pipelines" / "sac_her.py")

TINY = dict(frames=400, learning_starts=100, frames_per_batch=50, batch_size=16,
            minibatches_per_sample=2, hidden=16, eval_interval=400, eval_episodes=1,
            rollout_placement="inline", logger="none")


def test_tiny_run_writes_its_run_dir_and_resumes(tmp_path):
    config = HER.SACHERConfig(**TINY)
    result = HER.train(config, run_dir=tmp_path / "a")
    assert result.frames == 400 and result.updates > 0
    assert [f for f, _ in result.evaluations] == [400]
    state = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    assert state["pipeline"] == "sac_her" and state["frames"] == 400
    assert state["config"]["her_ratio"] == 0.8
    longer = dataclasses.replace(config, frames=500)
    resumed = HER.train(longer, run_dir=tmp_path / "b", resume=tmp_path / "a" / "checkpoint.pt")
    assert resumed.frames == 500 and resumed.updates > result.updates


def test_the_graph_replays_relabelled_goals_with_the_envs_reward():
    config = HER.SACHERConfig(**TINY)
    built = HER.build(config, None, False)
    built.graph.run_sync()
    buffer = built.buffer
    assert isinstance(buffer, HERReplayBuffer) and buffer.her_ratio == 0.8
    assert buffer.strategy.value == "future" and len(buffer) == 400
    batch = buffer._sample(100, limited=False)[0]  # past the limiter: the run spent its budget
    env = HER.gym_goal_env(config.env_name).unwrapped
    expected = env.compute_reward(batch["next", "achieved_goal"].numpy(),
                                  batch["desired_goal"].numpy(), {})
    torch.testing.assert_close(batch["next", "reward"][:80].squeeze(-1),
                               torch.as_tensor(expected[:80], dtype=torch.float32))
    stored = buffer.storage.get(batch["index"][:80])
    assert not (stored["desired_goal"] == batch["desired_goal"][:80]).all()
    buffer.close()


def test_her_ratio_zero_replays_the_stored_goals():
    config = HER.SACHERConfig(**{**TINY, "her_ratio": 0.0})
    buffer = config.make_buffer()
    assert buffer.her_ratio == 0.0
    built = HER.build(config, None, False)
    built.graph.run_sync()
    batch = built.buffer._sample(64, limited=False)[0]
    stored = built.buffer.storage.get(batch["index"])
    assert (batch["desired_goal"] == stored["desired_goal"]).all()
    assert (batch["next", "reward"] == stored["next", "reward"]).all()


def test_a_non_goal_env_and_bad_fields_are_refused():
    with pytest.raises(ValueError, match=r"needs a goal env \(observation, achieved_goal, "
                                         r"desired_goal\), found observation keys "
                                         r"\['observation'\] for 'Pendulum-v1'"):
        HER.build(HER.SACHERConfig(**{**TINY, "env_name": "Pendulum-v1"}), None, False)
    with pytest.raises(ValueError, match=r"her_ratio must be in \[0, 1\], found 2"):
        HER.SACHERConfig(her_ratio=2.0)
    with pytest.raises(ValueError, match=r"her_strategy must be one of \['future', 'final', "
                                         r"'episode', 'random'\], found 'later'"):
        HER.SACHERConfig(her_strategy="later")


def test_the_command_line_names_a_bad_strategy(capsys):
    with pytest.raises(SystemExit) as exit_:
        HER.main(["--her-strategy", "later", "--no-files"])
    assert exit_.value.code == 2
    assert "her_strategy must be one of" in capsys.readouterr().err


def test_goal_envs_register_after_the_headless_gl_backend_is_chosen():
    # a fresh process: GymEnv registers gymnasium-robotics' ids on first use, choosing
    # MuJoCo's headless GL before MuJoCo is imported, so a MuJoCo env renders afterwards
    code = ("import sys; from streamrl.envs import GymEnv\n"
            "GymEnv('PointMaze_UMaze-v3').close()\n"
            "assert 'mujoco' in sys.modules\n"
            "env = GymEnv('InvertedPendulum-v5', from_pixels=True, pixels_only=False)\n"
            "print(tuple(env.reset()['pixels'].shape))\n"
            "env.close()\n")
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith(", 3)")
