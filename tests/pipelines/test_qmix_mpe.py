"""pipelines/qmix_mpe.py: QMIX / VDN / independent DQN on MPE simple_spread, a few hundred
team frames end to end (run dir, resume), the losses each mixer builds, bad input, and
`streamrl graph`."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest
import torch

pytest.importorskip("pettingzoo")
pytest.importorskip("mpe2")

from streamrl.cli import load_pipeline
from streamrl.cli import main as cli_main
from streamrl.envs.libs.pettingzoo import PettingZooEnv
from streamrl.graph import Graph
from streamrl.ops import sample_budget
from streamrl.train import load_checkpoint, read_metrics

ROOT = Path(__file__).resolve().parents[2]
qmix = load_pipeline(ROOT / "pipelines" / "qmix_mpe.py")

TINY = dict(frames=600, learning_starts=200, num_envs=2, train_freq=100, gradient_steps=10,
            batch_size=16, minibatches_per_sample=5, hidden=16, mixing_embed_dim=8,
            eval_interval=300, eval_episodes=2, rollout_placement="inline", logger="none")


def tiny(**overrides):
    return qmix.QMixConfig(**{**TINY, **overrides})


def expected_updates(config):
    limiter = config.make_buffer().rate_limiter
    frames = -(-config.frames // config.train_freq) * config.train_freq
    return sample_budget(limiter, frames, config.sample_size) * config.minibatches_per_sample


def test_tiny_run_writes_its_files_and_resumes(tmp_path):
    first = tiny(logger="tensorboard")
    result = qmix.train(first, run_dir=tmp_path / "a")
    assert result.frames == 600 and result.updates == expected_updates(first) > 0
    # an episode is 25 team frames: the team return (mean over agents) of 25 negative steps
    assert result.evaluations[-1][0] == 600
    assert all(-150 < r < 0 for _, r in result.evaluations)
    run_dir = tmp_path / "a"
    for file in ("config.json", "metrics.csv", "metrics.jsonl", "checkpoint.pt",
                 "learning_curve.png"):
        assert (run_dir / file).is_file(), file
    assert any((run_dir / "tensorboard").iterdir())
    with open(run_dir / "metrics.csv") as f:
        assert list(csv.DictReader(f).fieldnames) == qmix.COLUMNS
    rows = read_metrics(run_dir)
    assert sum(r.get("train_episodes", 0) for r in rows) == 600 // 25  # whole episodes
    assert all(-150 < r["train_return"] < 0 for r in rows if r.get("train_return"))
    state = load_checkpoint(run_dir / "checkpoint.pt")
    assert state["pipeline"] == "qmix_mpe" and state["frames"] == 600
    assert ["state"] in state["buffer"]["storage"]["keys"]  # QMIX's mixer reads it

    longer = dataclasses.replace(first, frames=1000, logger="none")
    resumed = qmix.train(longer, run_dir=tmp_path / "b", resume=run_dir / "checkpoint.pt")
    assert resumed.frames == 1000 and resumed.updates == expected_updates(longer)
    after = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert after["policy_version"] > state["policy_version"]
    assert read_metrics(tmp_path / "b")[0]["frames"] > 600  # counted on from the checkpoint
    # the env state is not saved: the resumed run started new episodes (new ids), whole ones
    storage = after["buffer"]["storage"]
    ids = storage["tensors"][storage["keys"].index(["collector", "traj_ids"])][:1000]
    assert int(ids[600:].min()) > int(ids[:600].max())
    with pytest.raises(ValueError, match="already at the budget"):
        qmix.train(longer, resume=tmp_path / "b" / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"trained with mixer='qmix' \(this run: 'vdn'\)"):
        qmix.train(dataclasses.replace(longer, mixer="vdn", frames=1400),
                   resume=tmp_path / "b" / "checkpoint.pt")


def _batch(config, steps=30):
    """Random-policy transitions of simple_spread (team reward and state included)."""
    env = qmix.make_env(config)
    try:
        data = env.rollout(steps, break_when_any_done=False)
    finally:
        env.close()
    return data.reshape(-1)


def _models(config):
    """The Q-network, the exploration policy holding it, and the mixer's loss."""
    probe = qmix.make_one_env(config)
    try:
        qnet, policy, _ = qmix.make_models(config, probe)
        return qnet, policy, qmix.make_loss(config, qnet, probe)
    finally:
        probe.close()


def test_the_mixer_picks_the_loss():
    torch.manual_seed(0)
    config = tiny(gamma=0.9)
    data = _batch(config)
    assert data["next", "agent", "reward"].shape == (60, 3, 1)  # 2 envs x 30 steps
    torch.testing.assert_close(data["next", "reward"], data["next", "agent", "reward"].mean(-2))
    losses = {}
    for mixer in qmix.MIXERS:
        torch.manual_seed(1)  # the same Q-network for every mixer
        qnet, _, loss = _models(dataclasses.replace(config, mixer=mixer))
        losses[mixer] = loss(data.clone())["loss"].detach()
        q = qnet(data.clone())["agent", "action_value"]
        chosen = q.gather(-1, data["agent", "action"].unsqueeze(-1))  # [B, 3, 1]
        best = qnet(data["next"].clone())["agent", "action_value"].max(-1, keepdim=True).values
        notdone = (~data["next", "terminated"]).float()
        if mixer == "vdn":  # the team's sum of values against the team (mean) reward
            target = data["next", "reward"] + 0.9 * notdone * best.sum(-2)
            expected = (chosen.sum(-2) - target).pow(2).mean()
        elif mixer == "none":  # each agent's value against its own reward
            target = data["next", "agent", "reward"] + 0.9 * notdone.unsqueeze(-1) * best
            expected = (chosen - target).pow(2).mean()
        else:  # the mixer reads the global state: without it, no loss
            assert type(loss).__name__ == "QMixerLoss"
            with pytest.raises(KeyError, match="state"):
                loss(data.exclude("state", ("next", "state")))
            continue
        torch.testing.assert_close(losses[mixer], expected)
    assert len({round(float(v), 6) for v in losses.values()}) == 3


def test_double_q_gives_every_mixer_double_dqn_targets():
    for mixer in qmix.MIXERS:
        for double in (False, True):
            _, _, loss = _models(tiny(mixer=mixer, double_q=double))
            assert loss.double_dqn is double and loss.delay_value


def test_bad_input_gets_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        qmix.parse_args(["--mixer", "coma"])
    assert "mixer must be one of ('qmix', 'vdn', 'none'), found 'coma'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="train_freq must be a multiple of num_envs=4"):
        qmix.QMixConfig(train_freq=102)
    with pytest.raises(ValueError, match="local_ratio must be in"):
        qmix.QMixConfig(local_ratio=1.5)
    continuous = PettingZooEnv("simple_spread_v3", parallel=True, continuous_actions=True,
                               max_cycles=25)
    try:
        with pytest.raises(ValueError, match=r"needs discrete actions .* found Bounded"):
            qmix.make_models(qmix.QMixConfig(), continuous)
    finally:
        continuous.close()
    with pytest.raises(ValueError, match="one cooperative agent group, found 2 groups"):
        qmix.make_one_env(qmix.QMixConfig(env_name="simple_adversary_v3"))


def test_build_graph_and_streamrl_graph(capsys):
    g = qmix.build_graph(["--mixer", "vdn", "--frames", "2000"])
    assert isinstance(g, Graph)
    assert {"rollout", "replay_sink", "replay_source", "learner", "weight_sync", "evaluator",
            "metrics"} <= set(g.nodes)
    assert g["rollout"].placement.name == "process" and g["learner"].placement.name == "thread"
    assert cli_main(["graph", str(ROOT / "pipelines" / "qmix_mpe.py")]) == 0
    out = capsys.readouterr().out
    assert "Graph 'qmix_mpe'" in out and "rollout [process]" in out


def test_values_learn_the_scale_of_the_returns(tmp_path):
    # the cheap learning signal: a team reward of about -1.1 per step bootstraps towards
    # about -1.1 / (1 - gamma) = -11 per agent (independent DQN; 25-step episodes outlast
    # the horizon). Measured after 425 updates, the agents' mean chosen value on random
    # states: from +0.1 to -2.8 / -3.0 (seed 0, two draws of states; seeds 1, 2: -2.7, -3.0)
    config = qmix.QMixConfig(mixer="none", frames=2000, learning_starts=500, lockstep=True,
                             eval_interval=2000, eval_episodes=2, rollout_placement="inline",
                             logger="none")
    qmix.train(config, run_dir=tmp_path)
    torch.manual_seed(100)
    data = _batch(config, steps=50)
    qnet, policy, _ = _models(config)
    with torch.no_grad():
        before = qnet(data.clone())["agent", "chosen_action_value"].mean()
        policy.load_state_dict(load_checkpoint(tmp_path / "checkpoint.pt")["policy"])
        after = qnet(data.clone())["agent", "chosen_action_value"].mean()
    assert -1.5 < data["next", "reward"].mean() < -0.7 and abs(before) < 1.0
    assert after < -1.5, (float(before), float(after))
