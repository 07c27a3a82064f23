"""pipelines/mappo_vmas.py and ippo_vmas.py (multi-agent PPO on VMAS Navigation) and the
PPOPipeline hooks they use (``reward_key``: per-agent training returns; ``prepare_batch``):
a few hundred team frames end to end, the run dir and resume, the centralised and
decentralised critics, the done expansion, bad input and ``streamrl graph``."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from pathlib import Path

import pytest
import torch
from tensordict import TensorDict

from streamrl.cli import load_pipeline
from streamrl.cli import main as cli_main
from streamrl.train import load_checkpoint, read_metrics
from streamrl.train.ppo import PPOConfig, PPOPipeline, _EpisodeReturns

pytestmark = pytest.mark.skipif(importlib.util.find_spec("vmas") is None,
                                reason="needs vmas (the marl extra)")

ROOT = Path(__file__).resolve().parents[2]
mappo = load_pipeline(ROOT / "pipelines" / "mappo_vmas.py")
ippo = load_pipeline(ROOT / "pipelines" / "ippo_vmas.py")

# 4 envs x 20 steps, episodes of 10 steps: two episodes per env and batch
TINY = dict(frames=160, num_envs=4, steps_per_env=20, max_steps=10, minibatch_size=40,
            epochs=2, hidden=16, eval_interval=80, eval_episodes=2, logger="none")


def test_tiny_run_writes_per_agent_returns_and_resumes(tmp_path):
    config = mappo.MAPPOConfig(**TINY)
    result = mappo.train(config, run_dir=tmp_path / "a")
    assert result.frames == 160 and result.iterations == 2
    assert [f for f, _ in result.evaluations] == [80, 160]
    assert all(math.isfinite(r) for _, r in result.evaluations)
    rows = read_metrics(tmp_path / "a")
    trained = [r for r in rows if "loss_objective" in r]
    assert [r["iteration"] for r in trained] == [1, 2]
    # every env ends two 10-step episodes per batch
    assert all(r["train_episodes"] == 8 and math.isfinite(r["train_return"]) for r in trained)
    state = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    assert state["pipeline"] == "mappo_vmas"
    # Navigation's state is captured: the envs are saved mid-episode
    assert "env" in state["collector"]["rollout"]["env_state"]

    longer = dataclasses.replace(config, frames=320)
    resumed = mappo.train(longer, run_dir=tmp_path / "b", resume=tmp_path / "a" / "checkpoint.pt")
    assert resumed.frames == 320 and resumed.iterations == 4
    assert [r["iteration"] for r in read_metrics(tmp_path / "b") if "loss_objective" in r] == [3, 4]
    # IPPO's checkpoint is another run's
    with pytest.raises(ValueError):
        ippo.train(ippo.IPPOConfig(**{**TINY, "frames": 320}),
                   resume=tmp_path / "a" / "checkpoint.pt")


def _value_of_agent_0(critic, obs):
    return critic(TensorDict({("agents", "observation"): obs}, [obs.shape[0]]))[
        "agents", "state_value"][:, 0]


@pytest.mark.parametrize("module, centralised", [(mappo, True), (ippo, False)])
def test_the_critic_reads_every_agent_only_when_centralised(module, centralised):
    config = (module.MAPPOConfig if module is mappo else module.IPPOConfig)(**TINY)
    assert config.centralized_critic is centralised
    env = config.make_env(3)
    try:
        actor, critic = mappo.make_models(config, env)
        td = actor(env.reset())
        assert td["agents", "action"].shape == (3, 3, 2)
        assert bool((td["agents", "action"].abs() <= 1.0).all())
        assert td["agents", "action_log_prob"].shape == (3, 3)
        obs = td["agents", "observation"].clone()
        before = _value_of_agent_0(critic, obs)
        obs[:, 1] += 1.0  # another agent's observation
        after = _value_of_agent_0(critic, obs)
        assert (not torch.allclose(before, after)) is centralised
    finally:
        env.close()


def test_the_shared_done_is_expanded_to_every_agent():
    batch = TensorDict({("next", "agents", "reward"): torch.zeros(2, 5, 3, 1),
                        ("next", "done"): torch.zeros(2, 5, 1, dtype=torch.bool),
                        ("next", "terminated"): torch.zeros(2, 5, 1, dtype=torch.bool)}, [2, 5])
    batch["next", "done"][1, 3] = True
    batch["next", "terminated"][0, 4] = True
    mappo.expand_done(batch)
    done, terminated = batch["next", "agents", "done"], batch["next", "agents", "terminated"]
    assert done.shape == terminated.shape == (2, 5, 3, 1)
    assert done.sum() == 3 and bool(done[1, 3].all())
    assert terminated.sum() == 3 and bool(terminated[0, 4].all())


def test_group_returns_are_the_mean_return_per_agent():
    returns = _EpisodeReturns(2, reward_key=("agents", "reward"))
    reward = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 6.0]]).reshape(2, 1, 3, 1).expand(2, 3, 3, 1)
    done = torch.zeros(2, 3, 1, dtype=torch.bool)
    done[0, 1] = done[1, 2] = True
    batch = TensorDict({("next", "agents", "reward"): reward, ("next", "done"): done}, [2, 3])
    # env 0: 2 steps of mean reward 2; env 1: 3 steps of mean reward 2
    assert returns.update(batch) == [4.0, 6.0]
    assert returns.running.tolist() == [2.0, 0.0]  # env 0's next episode has begun


def test_bad_input_is_refused_with_what_was_expected():
    with pytest.raises(ValueError, match=r"normalize_reward.*\('next', 'agents', 'reward'\)"):
        mappo.train(mappo.MAPPOConfig(**TINY, normalize_reward=True))
    with pytest.raises(ValueError, match="different observation spaces"):
        mappo.MAPPOConfig(**TINY, env_name="simple_tag").make_env(2)
    with pytest.raises(ValueError, match="n_agents"):
        mappo.MAPPOConfig(**TINY, n_agents=0)
    with pytest.raises(TypeError, match="prepare_batch must be callable"):
        PPOPipeline("x", PPOConfig, mappo.make_models, None, prepare_batch=3)


def test_graph_and_help(capsys):
    graph = ippo.build_graph(["--num-envs", "2", "--steps-per-env", "10",
                              "--minibatch-size", "10", "--hidden", "8"])
    assert set(graph.nodes) == {"trigger", "rollout"} and "frames_per_batch=20" in str(graph)
    with pytest.raises(SystemExit) as exit_:
        cli_main(["run", "mappo_vmas", "--help"])
    assert exit_.value.code == 0
    assert "--no-centralized-critic" in capsys.readouterr().out
