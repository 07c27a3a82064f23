"""pipelines/sac_mujoco.py and td3_mujoco.py: a few hundred MuJoCo frames end to end, the run
dir, resume, the --env flag, the policy-lag bound and `streamrl graph`.

The tiny runs play InvertedPendulum-v5 (a -v5 MuJoCo task whose random episodes end in a
few steps, so evaluations cost little); the defaults (HalfCheetah-v5) are built, not run.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest

from streamrl.cli import load_pipeline
from streamrl.cli import main as cli_main
from streamrl.ops import sample_budget
from streamrl.train import load_checkpoint, read_metrics

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = {name: load_pipeline(ROOT / "pipelines" / f"{name}.py")
             for name in ("sac_mujoco", "td3_mujoco")}
CONFIGS = {"sac_mujoco": "SACMujocoConfig", "td3_mujoco": "TD3Config"}

TINY = dict(env_name="InvertedPendulum-v5", frames=300, learning_starts=100,
            frames_per_batch=50, batch_size=16, minibatches_per_sample=2, hidden=16,
            eval_interval=200, eval_episodes=2, rollout_placement="inline")


def tiny(name, **overrides):
    return getattr(PIPELINES[name], CONFIGS[name])(**{**TINY, **overrides})


def expected_updates(config):
    limiter = config.make_buffer().rate_limiter
    return sample_budget(limiter, config.collected_frames(), config.sample_size) * (
        config.minibatches_per_sample)


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_tiny_run_writes_its_run_dir_and_resumes(name, tmp_path):
    pipeline = PIPELINES[name]
    first = tiny(name, logger="tensorboard")
    result = pipeline.train(first, run_dir=tmp_path / "a")
    assert result.frames == 300 and result.updates == expected_updates(first) > 0
    assert result.evaluations and result.evaluations[-1][0] == 300
    run_dir = tmp_path / "a"
    for file in ("config.json", "metrics.csv", "metrics.jsonl", "checkpoint.pt"):
        assert (run_dir / file).is_file(), file
    assert any((run_dir / "tensorboard").iterdir())
    with open(run_dir / "metrics.csv") as f:
        assert list(csv.DictReader(f).fieldnames) == pipeline.COLUMNS
    rows = [r for r in read_metrics(run_dir) if r.get("loss_qvalue") is not None]
    assert rows[-1]["updates"] == result.updates
    assert all(0 <= r["staleness"] <= r["staleness_max"] for r in rows)
    state = load_checkpoint(run_dir / "checkpoint.pt")
    assert state["pipeline"] == name and state["frames"] == 300
    assert state["policy_version"] >= 1

    longer = dataclasses.replace(first, frames=500, logger="none")
    resumed = pipeline.train(longer, run_dir=tmp_path / "b", resume=run_dir / "checkpoint.pt")
    assert resumed.frames == 500 and resumed.updates == expected_updates(longer)
    after = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert after["learner"]["updates"] == resumed.updates
    assert after["policy_version"] > state["policy_version"]  # versions count on
    with pytest.raises(ValueError, match="already at the budget"):
        pipeline.train(longer, resume=tmp_path / "b" / "checkpoint.pt")


def test_td3_trains_the_actor_every_policy_delay_updates(tmp_path):
    td3 = PIPELINES["td3_mujoco"]
    config = tiny("td3_mujoco", policy_delay=3, logger="none")
    built = td3.build(config, None, False)
    learner = built.learner
    assert learner.policy_delay == 3 and learner.actor_optimizer is not None
    actor_params = {id(p) for g in learner.actor_optimizer.param_groups for p in g["params"]}
    # the rollout plays the published policy: actor + exploration noise
    assert actor_params <= {id(p) for p in built.saved["loss"].actor_network_params.values(
        True, True)}
    built.buffer.close()
    result = td3.train(config, run_dir=tmp_path)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    # the actor's Adam stepped once per 3 updates, the critics' at every update
    actor_steps = int(next(iter(state["actor_optimizer"]["state"].values()))["step"])
    critic_steps = int(next(iter(state["optimizer"]["state"].values()))["step"])
    assert critic_steps == result.updates and actor_steps == result.updates // 3


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_policy_lag_bound_holds_in_the_pipeline(name, tmp_path):
    pipeline = PIPELINES[name]
    with pytest.raises(ValueError, match="pass max_policy_lag >= ") as info:
        pipeline.train(tiny(name, lockstep=True, max_policy_lag=0, logger="none"))
    lag = int(str(info.value).rsplit(">= ", 1)[1])
    config = tiny(name, lockstep=True, max_policy_lag=lag, frames=400, logger="none")
    result = pipeline.train(config, run_dir=tmp_path)
    assert result.updates == expected_updates(config)
    rows = [r for r in read_metrics(tmp_path) if r.get("staleness_max") is not None]
    assert rows and all(r["staleness_max"] <= lag for r in rows)


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_env_flag_defaults_and_graph(name, capsys):
    pipeline = PIPELINES[name]
    config, _ = pipeline.parse_args(["--env", "Hopper-v5", "--max-policy-lag", "64"])
    assert config.env_name == "Hopper-v5" and config.max_policy_lag == 64
    default = getattr(pipeline, CONFIGS[name])()
    assert default.env_name == "HalfCheetah-v5" and default.learning_starts >= 10_000
    assert cli_main(["graph", str(ROOT / "pipelines" / f"{name}.py")]) == 0
    out = capsys.readouterr().out
    assert f"Graph '{name}'" in out and "learner" in out and "rollout [process]" in out
    with pytest.raises(ValueError, match="bounded continuous"):
        pipeline.build(getattr(pipeline, CONFIGS[name])(env_name="CartPole-v1"), None, False)
    with pytest.raises(ValueError, match="max_policy_lag must be None or an int"):
        getattr(pipeline, CONFIGS[name])(max_policy_lag=-1)
