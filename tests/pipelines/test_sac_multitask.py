"""pipelines/sac_multitask.py: a tiny run on four Pendulum tasks writes per-task returns and
resumes; --task plays one task in every member; the networks see the task; bad fields are
named before any work."""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
from pathlib import Path

import pytest
import torch

from streamrl.cli import load_pipeline

ROOT = Path(__file__).resolve().parents[2]
MT = load_pipeline(ROOT / "pipelines" / "sac_multitask.py")

TINY = dict(frames=880, learning_starts=100, frames_per_batch=40, batch_size=16,
            minibatches_per_sample=2, hidden=16, updates_per_frame=0.25, eval_interval=880,
            eval_episodes=4, rollout_placement="inline", logger="none")


def test_a_tiny_run_reports_each_task_and_resumes(tmp_path):
    config = MT.SACMultiTaskConfig(**TINY)
    assert config.env_name == "Pendulum-v1"
    result = MT.train(config, run_dir=tmp_path / "a")
    assert result.frames == 880 and result.updates > 0
    with open(tmp_path / "a" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    evals = [r for r in rows if r["eval_return"]]
    assert evals and all(evals[-1][f"eval_return/task_{k}"] for k in range(4))
    assert any(r["train_return/task_0"] for r in rows)  # each member's 200-step episode ended
    longer = dataclasses.replace(config, frames=960)
    resumed = MT.train(longer, run_dir=tmp_path / "b", resume=tmp_path / "a" / "checkpoint.pt")
    assert resumed.frames == 960


def test_members_play_their_tasks_and_task_plays_one():
    config = MT.SACMultiTaskConfig(**TINY)
    table = config.task_table()
    env = config.make_env()
    td = env.reset()
    assert td["task", "id"].squeeze(-1).tolist() == [0, 1, 2, 3]
    torch.testing.assert_close(td["task", "params"], table)
    env.close()
    one = dataclasses.replace(config, task=2).make_env()
    assert one.reset()["task", "id"].squeeze(-1).tolist() == [2, 2, 2, 2]
    one.close()
    other = MT.SACMultiTaskConfig(**{**TINY, "task_seed": 1}).task_table()
    assert not torch.equal(other, table)


def test_the_networks_read_the_task():
    config = MT.SACMultiTaskConfig(**TINY)
    env = config.make_env()
    actor, qvalue = MT.make_models(config, env)
    td = env.reset()
    td["observation"] = td["observation"][:1].expand(4, 3).clone()
    from streamrl.envs.utils import ExplorationType, set_exploration_type
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        actions = actor(td.clone())["action"]
        q = qvalue(td.clone().set("action", torch.zeros(4, 1)))["state_action_value"]
    assert len({round(float(a), 6) for a in actions}) == 4  # same state, four tasks
    assert len({round(float(v), 6) for v in q}) == 4
    env.close()


def test_bad_fields_are_named():
    with pytest.raises(ValueError, match=r"family must be one of \['halfcheetah-dir', "
                                         r"'halfcheetah-vel', 'metaworld-mt1', 'metaworld-mt10', "
                                         r"'pendulum'\], found 'cartpole'"):
        MT.SACMultiTaskConfig(family="cartpole")
    with pytest.raises(ValueError, match=r"task must be None or a task in 0 .. 3, found 4"):
        MT.SACMultiTaskConfig(task=4)
    with pytest.raises(ValueError, match=r"env_name must be the pendulum family's "
                                         r"'Pendulum-v1' \(or left out\), found 'CartPole-v1'"):
        MT.SACMultiTaskConfig(env_name="CartPole-v1")
    with pytest.raises(ValueError, match="num_tasks must be at most 16, found 17"):
        MT.SACMultiTaskConfig(num_tasks=17)


@pytest.mark.skipif(importlib.util.find_spec("metaworld") is None,
                    reason="needs the optional metaworld package")
def test_metaworld_mt10_plays_one_class_per_member(tmp_path):
    config = MT.SACMultiTaskConfig(**{**TINY, "family": "metaworld-mt10", "num_tasks": 10,
                                      "frames": 400, "eval_interval": 400, "eval_episodes": 2})
    assert config.env_name == "MT10"
    family = config.make_family()
    with config.make_env() as env:
        td = env.reset()
        assert td["task", "id"].squeeze(-1).tolist() == list(range(10))
        classes = [family.class_of(row) for row in td["task", "params"]]
        assert classes == list(family.classes)  # one member per class, in MT10's order
        assert [type(e.base_env._env.unwrapped) for e in env._envs] == [
            family.classes[name] for name in classes]
    result = MT.train(config, run_dir=tmp_path)
    assert result.frames == 400 and result.updates > 0
