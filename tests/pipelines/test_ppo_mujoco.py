"""pipelines/ppo_mujoco.py and streamrl.train.ppo's MuJoCo pieces: a few hundred frames end
to end (InvertedPendulum-v5: short episodes), the run dir, resume with the normalisation
statistics, reward normalisation, the --env flag and `streamrl graph`."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest
import torch
from tensordict import TensorDict

from streamrl.cli import load_pipeline
from streamrl.cli import main as cli_main
from streamrl.envs import GymEnv
from streamrl.train import load_checkpoint, read_metrics
from streamrl.train.ppo import PPOConfig, PPOPipeline, _ReturnScaler

ROOT = Path(__file__).resolve().parents[2]
ppo = load_pipeline(ROOT / "pipelines" / "ppo_mujoco.py")

TINY = dict(env_name="InvertedPendulum-v5", frames=256, num_envs=2, steps_per_env=64,
            minibatch_size=32, epochs=2, hidden=16, eval_interval=128, eval_episodes=2)


def stats_of(state):
    return {k.rsplit(".", 1)[1]: v for k, v in state["policy"].items() if ".stats." in k}


def test_tiny_run_writes_its_run_dir_and_resumes(tmp_path):
    first = ppo.PPOMujocoConfig(**TINY, logger="tensorboard")
    result = ppo.train(first, run_dir=tmp_path / "a")
    assert result.frames == 256 and result.iterations == 2
    assert [f for f, _ in result.evaluations] == [128, 256]
    run_dir = tmp_path / "a"
    for file in ("config.json", "metrics.csv", "metrics.jsonl", "checkpoint.pt"):
        assert (run_dir / file).is_file(), file
    assert any((run_dir / "tensorboard").iterdir())
    with open(run_dir / "metrics.csv") as f:
        assert list(csv.DictReader(f).fieldnames) == ppo.COLUMNS
    state = load_checkpoint(run_dir / "checkpoint.pt")
    assert state["pipeline"] == "ppo_mujoco" and "collector" not in state
    stats = stats_of(state)
    # folded in after each batch's update: both batches' 128 observations
    assert float(stats["count"]) == pytest.approx(256, abs=1e-3)
    assert float(state["reward_scaler"]["stats"]["count"]) == pytest.approx(256, abs=1e-3)

    longer = dataclasses.replace(first, frames=512, logger="none")
    resumed = ppo.train(longer, run_dir=tmp_path / "b", resume=run_dir / "checkpoint.pt")
    assert resumed.frames == 512 and resumed.iterations == 4
    after = stats_of(load_checkpoint(tmp_path / "b" / "checkpoint.pt"))
    assert float(after["count"]) == pytest.approx(512, abs=1e-3)  # the restored ones go on
    rows = read_metrics(tmp_path / "b")
    assert [r["iteration"] for r in rows if "loss_objective" in r] == [3, 4]
    with pytest.raises(ValueError, match="already at the budget"):
        ppo.train(longer, resume=tmp_path / "b" / "checkpoint.pt")


def test_networks_share_one_normaliser_and_actions_stay_in_bounds():
    config = ppo.PPOMujocoConfig(**TINY)
    env = config.make_env(3)
    try:
        actor, critic = ppo.make_models(config, env)
        norms = [m for m in actor.modules() if isinstance(m, ppo.Normalize)]
        assert len(norms) == 1 and any(m is norms[0] for m in critic.modules())
        td = actor(env.reset())
        assert td["action"].shape == (3, 1) and bool((td["action"].abs() <= 3.0).all())
        assert td["action_log_prob"].shape == (3,)
    finally:
        env.close()
    plain = ppo.make_models(dataclasses.replace(config, normalize_observation=False),
                            GymEnv("InvertedPendulum-v5"))[0]
    assert not any(isinstance(m, ppo.Normalize) for m in plain.modules())


def test_reward_scaler_divides_by_the_discounted_return_std():
    torch.manual_seed(0)
    scaler = _ReturnScaler(num_envs=2, gamma=0.0, clip=100.0)  # gamma 0: returns = rewards
    reward = torch.randn(2, 500, 1) * 5.0
    batch = TensorDict({("next", "reward"): reward.clone(),
                        ("next", "done"): torch.zeros(2, 500, 1, dtype=torch.bool)}, [2, 500])
    scaler.scale(batch)
    assert float(batch["next", "reward"].std()) == pytest.approx(1.0, rel=0.05)
    clipped = _ReturnScaler(num_envs=2, gamma=0.0, clip=0.5)
    batch.set(("next", "reward"), reward.clone())
    clipped.scale(batch)
    assert float(batch["next", "reward"].abs().max()) == 0.5
    # episode ends reset the running discounted return
    ends = _ReturnScaler(num_envs=1, gamma=0.5, clip=10.0)
    ends.scale(TensorDict({("next", "reward"): torch.ones(1, 3, 1),
                           ("next", "done"): torch.tensor([[[False], [False], [True]]])},
                          [1, 3]))
    assert ends.returns.tolist() == [0.0]
    with pytest.raises(ValueError, match="expected"):
        ends.check_state_dict({"returns": torch.zeros(3)})


def test_env_flag_graph_and_errors(capsys):
    config, _ = ppo.parse_args(["--env", "Walker2d-v5"])
    assert config.env_name == "Walker2d-v5" and config.normalize_observation
    default = ppo.PPOMujocoConfig()
    assert (default.env_name, default.frames_per_batch, default.minibatch_size) == (
        "HalfCheetah-v5", 2048, 64)
    assert cli_main(["graph", str(ROOT / "pipelines" / "ppo_mujoco.py")]) == 0
    assert "rollout" in capsys.readouterr().out
    with pytest.raises(ValueError, match="bounded continuous"):
        ppo.train(ppo.PPOMujocoConfig(**{**TINY, "env_name": "CartPole-v1"}))
    with pytest.raises(ValueError, match="clip_observation must be > 0"):
        ppo.PPOMujocoConfig(clip_observation=0)
    with pytest.raises(TypeError, match="PPOConfig subclass"):
        PPOPipeline("x", dict, ppo.make_models, None)
    with pytest.raises(ValueError, match="clip_reward must be > 0"):
        PPOConfig(clip_reward=0)
