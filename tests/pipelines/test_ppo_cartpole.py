"""pipelines/ppo_cartpole.py: runs end to end, writes its files, resumes, learns."""

from __future__ import annotations

import csv
import dataclasses
import multiprocessing as mp
from pathlib import Path

import pytest
import torch

from streamrl.checkpoint import CheckpointError
from streamrl.cli import load_pipeline
from streamrl.train import load_checkpoint, read_metrics, save_checkpoint

ROOT = Path(__file__).resolve().parents[2]
ppo = load_pipeline(ROOT / "pipelines" / "ppo_cartpole.py")

TINY = dict(frames=1024, eval_interval=512, eval_episodes=4, epochs=2)


def test_tiny_run_writes_metrics_config_and_checkpoint(tmp_path):
    config = ppo.PPOConfig(**TINY)
    result = ppo.train(config, run_dir=tmp_path)
    assert result.frames == 1024 and result.iterations == 4
    # evaluated at 512 frames (before training on that batch) and on the final weights
    assert [f for f, _ in result.evaluations] == [512, 1024]
    assert all(8 <= r <= 500 for _, r in result.evaluations)
    assert result.wall_s >= result.train_s > 0 and result.eval_s > 0
    assert result.solved_at is None

    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ppo.COLUMNS
    assert [r["frames"] for r in rows] == ["256", "512", "768", "1024", "1024"]
    assert rows[1]["eval_return"] != "" and rows[0]["eval_return"] == ""
    lrs = [float(r["lr"]) for r in rows[:4]]
    assert lrs == pytest.approx([1e-3 * (1 - f / 1024) for f in (256, 512, 768, 1024)])
    jsonl = read_metrics(tmp_path)
    assert len(jsonl) == 5 and jsonl[-1]["eval_return"] == result.eval_return
    assert all(r["loss_critic"] > 0 for r in jsonl[:4])

    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["progress"] == {"frames": 1024, "iteration": 4,
                                 "eval_return": result.eval_return}
    assert state["pipeline"] == "ppo_cartpole"
    assert state["checkpoint"]["metadata"]["config"] == dataclasses.asdict(config)
    assert state["config"] == ppo.run_identity(config)["config"]
    assert {"policy", "value", "optimizer", "collector", "rng", "episodes"} <= set(state)
    assert (tmp_path / "config.json").is_file()
    assert not mp.active_children()


def test_checkpoint_restores_the_trained_policy(tmp_path):
    config = ppo.PPOConfig(**TINY, seed=1)
    ppo.train(config, run_dir=tmp_path)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    env = config.make_env(3)
    try:
        actor, critic = ppo.make_models(config, env)
        actor.load_state_dict(state["policy"])
        critic.load_state_dict(state["value"])
        from streamrl.train import evaluate_episodes

        returns = evaluate_episodes(env, actor, seed=config.eval_seed)
        # the same weights and start states give the same deterministic returns
        again = evaluate_episodes(env, actor, seed=config.eval_seed)
        assert torch.equal(returns, again)
        td = critic(env.reset())
        assert td["state_value"].shape == (3, 1)
    finally:
        env.close()
    probe = config.make_env(1)
    fresh = ppo.make_models(config, probe)[0]
    probe.close()
    trained = dict(actor.named_parameters())
    assert any(not torch.equal(p, trained[n]) for n, p in fresh.named_parameters())


def test_resume_continues_from_the_checkpoint(tmp_path):
    first = tmp_path / "a"
    ppo.train(ppo.PPOConfig(**{**TINY, "frames": 512}), run_dir=first)
    second = tmp_path / "b"
    result = ppo.train(ppo.PPOConfig(**TINY), run_dir=second, resume=first / "checkpoint.pt")
    assert result.frames == 1024 and result.iterations == 4
    assert [r["frames"] for r in read_metrics(second)][:2] == [768, 1024]
    with pytest.raises(ValueError, match="already at the budget"):
        ppo.train(ppo.PPOConfig(**{**TINY, "frames": 512}), run_dir=None,
                  resume=first / "checkpoint.pt")


def test_minibatches_smaller_than_the_batch(tmp_path):
    config = ppo.PPOConfig(frames=256, num_envs=4, steps_per_env=16, minibatch_size=24,
                           epochs=1, eval_interval=10_000, eval_episodes=2)
    result = ppo.train(config, run_dir=None)
    assert result.frames == 256 and result.iterations == 4
    assert len(result.evaluations) == 1 and result.run_dir is None


def _sb3_train(config, policy_net, value_net, data, frames):
    """The maths of Stable-Baselines3 2.9's ``PPO.train`` (and the GAE of its rollout buffer)
    on one batch, written out in plain torch: linear schedules read after collection, GAE cut
    at ``done`` and bootstrapped unless ``terminated``, advantages normalised per minibatch
    (unbiased std + 1e-8), clipped surrogate, MSE value loss x 0.5, the gradient norm of both
    networks clipped at 0.5, Adam eps 1e-5; one minibatch of every row per epoch."""
    import torch.nn.functional as F

    remaining = 1 - frames / config.frames
    lr, clip = config.lr * remaining, config.clip_epsilon * remaining
    params = [*policy_net.parameters(), *value_net.parameters()]
    opt = torch.optim.Adam(params, lr=lr, eps=1e-5)
    obs, action = data["observation"], data["action"].argmax(-1)  # one-hot actions
    reward = data["next", "reward"].squeeze(-1)
    terminated = data["next", "terminated"].squeeze(-1).float()
    done = data["next", "done"].squeeze(-1).float()
    with torch.no_grad():
        value = value_net(obs).squeeze(-1)
        next_value = value_net(data["next", "observation"]).squeeze(-1)
        adv = torch.zeros_like(reward)
        last = torch.zeros(reward.shape[0])
        for t in reversed(range(reward.shape[1])):
            delta = reward[:, t] + config.gamma * next_value[:, t] * (1 - terminated[:, t]) \
                - value[:, t]
            last = delta + config.gamma * config.gae_lambda * (1 - done[:, t]) * last
            adv[:, t] = last
    returns = (adv + value).reshape(-1)
    obs, action, adv = obs.reshape(-1, obs.shape[-1]), action.reshape(-1), adv.reshape(-1)
    old_log_prob = data["action_log_prob"].reshape(-1)
    for _ in range(config.epochs):
        log_prob = torch.log_softmax(policy_net(obs), -1).gather(-1, action[:, None])[:, 0]
        a = (adv - adv.mean()) / (adv.std() + 1e-8)
        ratio = (log_prob - old_log_prob).exp()
        policy_loss = -torch.min(a * ratio, a * ratio.clamp(1 - clip, 1 + clip)).mean()
        value_loss = F.mse_loss(returns, value_net(obs).squeeze(-1))
        opt.zero_grad()
        (policy_loss + 0.5 * value_loss).backward()
        torch.nn.utils.clip_grad_norm_(params, 0.5)
        opt.step()
    return adv, returns


def test_one_batch_update_equals_the_maths_of_sb3s_train():
    """The pipeline's update on one collected batch (GAE, then 20 epochs of the clipped loss)
    moves the weights as SB3's PPO.train does from the same weights on the same batch."""
    import copy

    from streamrl.train.ppo import PPOPipeline, make_learner, make_loss

    torch.manual_seed(0)
    config = ppo.PPOConfig()
    env = config.make_env(config.num_envs)
    try:
        actor, critic = ppo.make_models(config, env)
        with torch.no_grad():
            batch = env.rollout(config.steps_per_env, actor, break_when_any_done=False)
    finally:
        env.close()
    assert batch["next", "terminated"].sum() > 0  # episodes end inside the batch
    nets = [m for m in (*actor.modules(), *critic.modules()) if type(m).__name__ == "MLP"]
    replica = [copy.deepcopy(n) for n in nets]
    initial = [copy.deepcopy(n) for n in nets]
    loss = make_loss(config, actor, critic)
    learner = make_learner(config, loss, torch.optim.Adam(loss.parameters(), lr=config.lr,
                                                           eps=1e-5))
    frames = config.frames // 2  # half-way down the linear schedules
    data = batch.clone()
    PPOPipeline.update(config, loss, learner, batch, frames)
    adv, returns = _sb3_train(config, *replica, data, frames)
    torch.testing.assert_close(batch["advantage"].reshape(-1), adv.reshape(-1))
    torch.testing.assert_close(batch["value_target"].reshape(-1), returns)
    for ours, theirs, before in zip(nets, replica, initial):
        moved = max(float((p - q).detach().abs().max()) for p, q in
                    zip(ours.parameters(), before.parameters()))
        assert moved > 1e-3  # the 20 updates changed the weights
        for p, q in zip(ours.parameters(), theirs.parameters()):
            torch.testing.assert_close(p.detach(), q.detach(), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_envs": 0}, "num_envs must be a positive int"),
        ({"gamma": 1.5}, r"gamma must be in \[0, 1\]"),
        ({"clip_epsilon": 0.0}, r"clip_epsilon must be in \(0, 1\)"),
        ({"lr": -1.0}, "lr must be > 0"),
        ({"minibatch_size": 512}, "must not exceed the batch"),
    ],
)
def test_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ppo.PPOConfig(**kwargs)


def test_non_discrete_env_is_rejected():
    config = ppo.PPOConfig(env_name="Pendulum-v1", eval_episodes=1)
    with pytest.raises(ValueError, match="needs a discrete action space"):
        ppo.train(config, run_dir=None)


@pytest.mark.slow
def test_learns_cartpole(tmp_path):
    """The SB3 hyper-parameters solve CartPole (>= 475 over 20 deterministic episodes);
    SB3 itself needs 8k-16k frames; 64k is a generous bound."""
    result = ppo.train(ppo.PPOConfig(frames=200_000), run_dir=tmp_path)
    assert result.solved_at is not None, result.evaluations
    assert result.solved_at <= 64 * 1024, result.evaluations
    assert result.eval_return >= 475


def test_failure_mid_run_releases_everything(tmp_path, monkeypatch):
    import threading

    threads_before = threading.active_count()
    torch_threads = torch.get_num_threads()
    calls = []

    def broken_update(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("learner blew up")
        return {}

    monkeypatch.setattr(ppo._pipeline, "update", broken_update)
    with pytest.raises(RuntimeError, match="learner blew up"):
        ppo.train(ppo.PPOConfig(**TINY, threads=2), run_dir=tmp_path)
    assert torch.get_num_threads() == torch_threads
    assert len(read_metrics(tmp_path)) == 1  # the first batch's row was written and flushed
    for _ in range(50):  # the collector's event-loop thread winds down
        if threading.active_count() <= threads_before:
            break
        import time

        time.sleep(0.02)
    assert threading.active_count() <= threads_before


def test_resume_rejects_a_foreign_checkpoint(tmp_path):
    from streamrl.train import save_checkpoint

    path = save_checkpoint(tmp_path / "other.pt", {"pipeline": "dqn_cartpole", "frames": 0})
    with pytest.raises(ValueError, match="is not a ppo_cartpole checkpoint"):
        ppo.train(ppo.PPOConfig(**TINY), run_dir=None, resume=path)


def test_interrupt_saves_a_checkpoint(tmp_path, monkeypatch, capsys):
    real_update = ppo._pipeline.update
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_update(*args, **kwargs)

    monkeypatch.setattr(ppo._pipeline, "update", interrupted)
    code = ppo.main(["--frames", "1024", "--eval-episodes", "2", "--epochs", "1",
                     "--no-progress", "--run-dir", str(tmp_path)])
    assert code == 130
    assert "interrupted; checkpoint:" in capsys.readouterr().err
    # interrupted while training on the third batch: the checkpoint is the last batch
    # boundary (two batches), not a half-updated third
    assert load_checkpoint(tmp_path / "checkpoint.pt")["progress"]["frames"] == 512


_TIMING = {"wall_s", "train_s", "collect_s", "update_s", "fps"}


def _rows(run_dir, up_to=None):
    return [{k: v for k, v in row.items() if k not in _TIMING} for row in read_metrics(run_dir)
            if up_to is None or row["frames"] <= up_to]


def test_interrupted_and_resumed_run_is_bit_exact(tmp_path, monkeypatch):
    config = ppo.PPOConfig(**{**TINY, "checkpoint_interval": 256})
    ppo.train(config, run_dir=tmp_path / "through")
    real_update, calls = ppo._pipeline.update, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_update(*args, **kwargs)

    monkeypatch.setattr(ppo._pipeline, "update", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ppo.train(config, run_dir=tmp_path / "stopped")
    monkeypatch.undo()
    stopped = load_checkpoint(tmp_path / "stopped" / "checkpoint.pt")
    assert stopped["progress"]["frames"] == 512
    ppo.train(config, run_dir=tmp_path / "resumed",
              resume=tmp_path / "stopped" / "checkpoint.pt")
    through = _rows(tmp_path / "through")
    assert len(through) == 5  # four batches and the final evaluation
    assert _rows(tmp_path / "stopped", up_to=512) + _rows(tmp_path / "resumed") == through
    final = [load_checkpoint(tmp_path / d / "checkpoint.pt") for d in ("through", "resumed")]
    for net in ("policy", "value"):
        for key, value in final[0][net].items():
            assert torch.equal(value, final[1][net][key]), (net, key)
    assert final[0]["progress"] == final[1]["progress"]


def test_resume_of_another_config_fails_before_any_work(tmp_path, capsys):
    first = tmp_path / "a"
    ppo.train(ppo.PPOConfig(**{**TINY, "frames": 512}), run_dir=first)
    second = tmp_path / "b"
    with pytest.raises(CheckpointError, match=r"'config' does not match this run: lr: "
                                              r"expected 0\.002, found 0\.001"):
        ppo.train(ppo.PPOConfig(**{**TINY, "lr": 2e-3}), run_dir=second,
                  resume=first / "checkpoint.pt")
    assert not second.exists()  # nothing written
    # the command line says so and exits with status 2
    code = ppo.main(["--frames", "1024", "--hidden", "32", "--no-progress", "--run-dir",
                     str(second), "--resume", str(first / "checkpoint.pt")])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "hidden: expected 32, found 64" in err
    assert not (second / "metrics.csv").exists()
    other = save_checkpoint(tmp_path / "other.pt", {"pipeline": "dqn_cartpole", "frames": 0})
    assert ppo.main(["--no-progress", "--no-files", "--resume", str(other)]) == 2
    assert "is not a ppo_cartpole checkpoint" in capsys.readouterr().err


def test_progress_bar_shows_frames_and_eval(capsys):
    ppo.train(ppo.PPOConfig(**TINY), run_dir=None, progress=True)
    err = capsys.readouterr().err
    assert "ppo_cartpole" in err and "frame" in err and "eval=" in err


def test_build_graph_is_the_collection_topology():
    g = ppo.build_graph(["--num-envs", "4", "--minibatch-size", "128"])
    assert set(g.nodes) == {"trigger", "rollout"}
    assert "frames_per_batch=128" in str(g)


def test_async_topology_runs_with_a_bounded_lag_and_resumes(tmp_path):
    config = ppo.PPOConfig(**TINY, topology="async")
    result = ppo.train(config, run_dir=tmp_path / "a")
    assert result.frames == 1024 and result.iterations == 4
    lags = [r["policy_lag"] for r in read_metrics(tmp_path / "a") if "policy_lag" in r]
    assert lags[0] == 0 and all(0 <= lag <= 1 for lag in lags) and len(lags) == 4
    assert "collector" not in load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    longer = dataclasses.replace(config, frames=1536)
    resumed = ppo.train(longer, run_dir=tmp_path / "b", resume=tmp_path / "a" / "checkpoint.pt")
    assert resumed.frames == 1536 and resumed.iterations == 6
    # the topology shapes the checkpoint (a lockstep one saves its envs): not switched on resume
    with pytest.raises(CheckpointError, match="topology"):
        ppo.train(dataclasses.replace(longer, topology="sync"),
                  resume=tmp_path / "a" / "checkpoint.pt")
    assert not mp.active_children()
