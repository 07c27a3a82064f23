"""pipelines/ppo_atari.py and the async topology of streamrl.train.ppo: each topology a few
hundred agent steps end to end on Pong (2 envs x 32 steps, one epoch), its run dir, a resume
that goes on, the policy lag of the async runs, the game-score returns, bad flags and
`streamrl graph`."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest
import torch
from tensordict import TensorDict

from streamrl.cli import load_pipeline
from streamrl.cli import main as cli_main
from streamrl.train import load_checkpoint, read_metrics
from streamrl.train.ppo import _EpisodeReturns, make_loss

ROOT = Path(__file__).resolve().parents[2]
ppo = load_pipeline(ROOT / "pipelines" / "ppo_atari.py")

# evaluation games cut at 20 agent steps: a Pong game lasts thousands
TINY = dict(frames=128, num_envs=2, steps_per_env=32, minibatch_size=32, epochs=1, hidden=32,
            eval_interval=10**6, eval_episodes=1, eval_max_steps=20, logger="none")


@pytest.mark.parametrize("topology", ["sync", "async"])
def test_tiny_run_writes_its_run_dir_and_resumes(tmp_path, topology):
    first = ppo.PPOAtariConfig(**TINY, topology=topology)
    result = ppo.train(first, run_dir=tmp_path / "a")
    assert result.frames == 128 and result.iterations == 2
    assert [f for f, _ in result.evaluations] == [128]
    for file in ("config.json", "metrics.csv", "metrics.jsonl", "checkpoint.pt"):
        assert (tmp_path / "a" / file).is_file(), file
    with open(tmp_path / "a" / "metrics.csv") as f:
        assert list(csv.DictReader(f).fieldnames) == ppo.COLUMNS
    state = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    assert state["pipeline"] == "ppo_atari" and "collector" not in state
    assert state["progress"]["frames"] == 128

    longer = dataclasses.replace(first, frames=256)
    resumed = ppo.train(longer, run_dir=tmp_path / "b", resume=tmp_path / "a" / "checkpoint.pt")
    assert resumed.frames == 256 and resumed.iterations == 4
    rows = [r for r in read_metrics(tmp_path / "b") if "loss_objective" in r]
    assert [r["iteration"] for r in rows] == [3, 4]
    lags = [r["policy_lag"] for r in read_metrics(tmp_path / "a") + rows if "policy_lag" in r]
    assert len(lags) == 4
    if topology == "sync":
        assert lags == [0, 0, 0, 0]
    else:  # the first batch of a run (or resume) is collected by the weights it trains
        assert lags[0] == lags[2] == 0 and all(0 <= lag <= first.max_policy_lag for lag in lags)
    with pytest.raises(ValueError, match="already at the budget"):
        ppo.train(longer, resume=tmp_path / "b" / "checkpoint.pt")


def test_async_lag_stays_within_a_larger_bound_with_vtrace(tmp_path):
    config = ppo.PPOAtariConfig(**{**TINY, "frames": 384}, topology="async", max_policy_lag=2,
                                value_estimator="vtrace")
    ppo.train(config, run_dir=tmp_path)
    rows = read_metrics(tmp_path)
    lags = [r["policy_lag"] for r in rows if "policy_lag" in r]
    assert len(lags) == 6 and lags[0] == 0 and max(lags) <= 2
    assert all(torch.isfinite(torch.tensor(r["loss_critic"])) for r in rows if "loss_critic" in r)


def test_vtrace_estimator_ends_episodes_at_lost_lives():
    config = ppo.PPOAtariConfig(**TINY, value_estimator="vtrace")
    env = config.make_env(1)
    try:
        actor, critic = ppo.make_models(config, env)
    finally:
        env.close()
    loss = make_loss(config, actor, critic, functional=False)
    ppo.end_episodes_at_lost_lives(loss)
    keys = loss.value_estimator.tensor_keys
    assert type(loss.value_estimator).__name__ == "VTrace"
    assert keys["done"] == keys["terminated"] == "end-of-life"


def test_train_returns_are_game_scores_read_at_episode_ends():
    # 2 envs x 3 steps; env 0 ends at step 1 with score -21, env 1 at step 2 with score 3
    done = torch.tensor([[False, True, False], [False, False, True]]).unsqueeze(-1)
    score = torch.tensor([[-20.0, -21.0, 0.0], [1.0, 2.0, 3.0]]).unsqueeze(-1)
    batch = TensorDict({"next": {"done": done, "episode_reward": score,
                                 "reward": score.sign()}}, batch_size=[2, 3])
    assert _EpisodeReturns(2, "episode_reward").update(batch) == [-21.0, 3.0]
    assert _EpisodeReturns(2).update(batch) == [-2.0, 3.0]  # summed clipped rewards


def test_models_share_the_trunk():
    config = ppo.PPOAtariConfig(**TINY)
    env = config.make_env(2)
    try:
        actor, critic = ppo.make_models(config, env)
        trunks = [m for m in actor.modules() if isinstance(m, ppo.NatureCNN)]
        assert len(trunks) == 1 and any(m is trunks[0] for m in critic.modules())
        td = critic(actor(env.reset()))
        assert td["action"].shape == (2, 6) and td["state_value"].shape == (2, 1)
        assert td["pixels"].dtype == torch.uint8  # divided by 255 inside the network only
    finally:
        env.close()


def test_only_the_training_env_clips_rewards(monkeypatch):
    made = []
    monkeypatch.setattr(ppo, "make_atari_env", lambda *args, **kwargs: made.append(kwargs))
    config = ppo.PPOAtariConfig(**TINY)
    config.make_env(2), config.make_eval_env(1)
    assert [m.get("clip_reward", True) for m in made] == [True, False]


@pytest.mark.parametrize("flags, message", [
    (["--topology", "parallel"], "topology must be one of ('sync', 'async'), found 'parallel'"),
    (["--max-policy-lag", "0"], "max_policy_lag must be a positive int"),
    (["--value-estimator", "td0"], "value_estimator must be one of ('gae', 'vtrace')"),
])
def test_bad_flags_are_refused_with_the_field(flags, message, capsys):
    with pytest.raises(SystemExit):
        ppo.parse_args(flags)
    assert message in capsys.readouterr().err


def test_graph_of_each_topology(capsys):
    assert cli_main(["graph", "ppo_atari"]) == 0
    out = capsys.readouterr().out
    assert "Graph 'sync-collector'" in out and "rollout" in out
    assert cli_main(["graph", "ppo_atari", "--topology", "async", "--max-policy-lag", "2"]) == 0
    out = capsys.readouterr().out
    assert "Graph 'lagged-collector'" in out and "process" in out and "trigger" in out


def test_loss_runs_the_shared_trunk_once_per_minibatch_with_the_same_gradients(monkeypatch):
    config = ppo.PPOAtariConfig(**TINY)
    env = config.make_env(2)
    try:
        torch.manual_seed(0)
        actor, critic = ppo.make_models(config, env)
        with torch.no_grad():
            batch = env.rollout(8, actor, break_when_any_done=False)
    finally:
        env.close()
    runs = []
    forward = ppo.NatureCNN._forward
    monkeypatch.setattr(ppo.NatureCNN, "_forward", lambda self, x: runs.append(1) or forward(self, x))
    grads = []
    for reuse in (True, False):
        for m in actor.modules():
            if isinstance(m, ppo.NatureCNN):
                m.reuse = reuse
        loss = make_loss(config, actor, critic, functional=False)
        ppo.end_episodes_at_lost_lives(loss)
        with torch.no_grad():
            loss.value_estimator(batch)
        runs.clear()
        out = loss(batch)
        assert len(runs) == (1 if reuse else 2)
        loss.zero_grad()
        (out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]).backward()
        grads.append([p.grad.clone() for p in loss.parameters()])
    for cached, plain in zip(*grads, strict=True):
        torch.testing.assert_close(cached, plain)
