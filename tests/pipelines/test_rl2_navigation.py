"""pipelines/rl2_navigation.py and recurrent PPO: the hidden state runs through a trial in
collection and in training, the recurrent loss equals a step-by-step evaluation of the same
GRU, GAE runs across the episode ends inside a trial and stops at its end, a few hundred
frames end to end (run dir, resume), and bad input named."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from tensordict import TensorDict

from streamrl.cli import available_pipelines, load_pipeline
from streamrl.collectors import SyncDataCollector
from streamrl.modules import set_recurrent_mode
from streamrl.train import load_checkpoint
from streamrl.train.ppo import PPOPipeline, make_loss

ROOT = Path(__file__).resolve().parents[2]
RL2 = load_pipeline(ROOT / "pipelines" / "rl2_navigation.py")

TINY = dict(num_envs=4, steps_per_env=30, minibatch_size=60, epochs=2, hidden=16,
            max_steps=5, episodes_per_trial=3, frames=360, eval_interval=240,
            eval_episodes=3, logger="none")


def _models(config):
    env = config.make_env(config.num_envs)
    torch.manual_seed(0)
    actor, critic = RL2.make_models(config, env)
    return env, actor, critic


def _batch(config, seed=0):
    env, actor, critic = _models(config)
    collector = SyncDataCollector(env, actor, frames_per_batch=config.frames_per_batch,
                                  total_frames=config.frames_per_batch)
    collector.set_seed(seed)
    batch = next(iter(collector))
    collector.shutdown()
    return batch, actor, critic


def _loss(config, actor, critic):
    loss = make_loss(config, actor, critic, functional=False)
    RL2._trial_as_the_unit(loss)
    return loss


def test_the_hidden_state_runs_through_a_trial_in_collection_and_training():
    config = RL2.RL2Config(**TINY)
    batch, actor, _ = _batch(config)
    first = batch["step"].squeeze(-1) == 0
    new = batch["task", "new"].squeeze(-1)
    inner = first & ~new  # the resets that start the 2nd and 3rd episodes of a trial
    assert inner.sum() > 0 and new.sum() > 0
    state = batch["recurrent_state"].flatten(-2).abs().sum(-1)
    assert (state[inner] > 0).all()  # the primer kept the state at these resets
    # recurrent mode over whole rows, from each row's stored first state, gives the actions'
    # distribution the collector used step by step
    with torch.no_grad(), set_recurrent_mode(True):
        replay = actor(batch.clone().exclude("loc", "scale", "features"))
    torch.testing.assert_close(replay["loc"], batch["loc"])
    # and a GRU that forgot at every episode's reset would not
    with torch.no_grad(), set_recurrent_mode(True):
        forgetful = batch.clone().exclude("loc", "scale", "features")
        forgetful.set(("task", "new"), first.unsqueeze(-1))
        assert not torch.allclose(actor(forgetful)["loc"], batch["loc"])


def _stepwise(actor, critic, seqs):
    """Each sequence stepped one step at a time from its stored first state (reset at a new
    task): the states written into every step, so that sequential mode reads them."""
    out = seqs.clone()
    h = seqs["recurrent_state"][:, 0]
    for t in range(seqs.shape[1]):
        step = seqs[:, t].clone()
        h = torch.where(step["task", "new"].view(-1, 1, 1), torch.zeros_like(h), h)
        step.set("recurrent_state", h)
        out["recurrent_state"][:, t] = h
        with torch.no_grad():
            h = actor(step)["next", "recurrent_state"]
    return out.reshape(-1)


def test_the_recurrent_loss_equals_a_step_by_step_evaluation():
    config = RL2.RL2Config(**TINY)
    batch, actor, critic = _batch(config)
    loss = _loss(config, actor, critic)
    with torch.no_grad(), set_recurrent_mode(True):
        loss.value_estimator(batch)
    # perturb the weights so that the stored states (of the collecting weights) are not the
    # ones the current GRU computes: only the first step's may be used
    with torch.no_grad():
        for p in actor.parameters():
            p.add_(0.05 * torch.randn_like(p))
    seqs = batch.reshape(-1, 10)  # the learner's cut: sequences of 10 steps
    with set_recurrent_mode(True):
        recurrent = loss(seqs.clone())
    flat = _stepwise(actor, critic, seqs)
    stepwise = loss(flat)
    for key in ("loss_objective", "loss_critic", "kl_approx"):
        torch.testing.assert_close(recurrent[key], stepwise[key], rtol=1e-4, atol=1e-6)
    # not a tautology: each step from its own stored state gives another loss
    stored = loss(seqs.reshape(-1).clone())
    assert not torch.allclose(stored["loss_critic"], recurrent["loss_critic"])


class _Values(torch.nn.Module):
    """A critic that reads its value from the data (``v``)."""

    in_keys = ["v"]

    def forward(self, td):
        return td.set("state_value", td["v"])


def test_gae_runs_across_episode_ends_inside_a_trial_and_stops_at_its_end():
    config = RL2.RL2Config(**TINY, gamma=0.5, gae_lambda=1.0)
    actor = _models(config)[1]
    loss = _loss(config, actor, _Values())
    T = 6
    done = torch.zeros(1, T, 1, dtype=torch.bool)
    end = done.clone()
    done[0, 1] = True  # an episode ends inside the trial
    done[0, 3] = end[0, 3] = True  # the trial ends
    td = TensorDict({"v": torch.zeros(1, T, 1), "next": {
        "v": torch.zeros(1, T, 1), "reward": torch.ones(1, T, 1), "done": done,
        "terminated": done.clone(), "task": {"end": end}}}, [1, T])
    with torch.no_grad():
        loss.value_estimator(td)
    # zero values, rewards 1, gamma 0.5, lambda 1: returns 1 + 0.5 + 0.25 + 0.125 to the
    # trial's end at step 3, whatever the episode end at step 1; a new start after it
    expected = [1.875, 1.75, 1.5, 1.0, 1.5, 1.0]
    assert td["advantage"].flatten().tolist() == pytest.approx(expected)


def test_gae_with_the_env_done_would_cut_the_trial():
    config = RL2.RL2Config(**TINY, gamma=0.5, gae_lambda=1.0)
    actor = _models(config)[1]
    plain = make_loss(config, actor, _Values(), functional=False)
    done = torch.zeros(1, 4, 1, dtype=torch.bool)
    done[0, 1] = done[0, 3] = True
    td = TensorDict({"v": torch.zeros(1, 4, 1), "next": {
        "v": torch.zeros(1, 4, 1), "reward": torch.ones(1, 4, 1), "done": done,
        "terminated": done.clone()}}, [1, 4])
    with torch.no_grad():
        plain.value_estimator(td)
    assert td["advantage"].flatten().tolist() == pytest.approx([1.5, 1.0, 1.5, 1.0])


def test_a_few_hundred_frames_end_to_end_write_the_run_dir_and_resume(tmp_path):
    config = RL2.RL2Config(**TINY)
    result = RL2.train(config, run_dir=tmp_path / "a")
    assert result.frames == 360 and [f for f, _ in result.evaluations] == [240, 360]
    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text()
            .splitlines()]
    evaluated = [r for r in rows if r.get("eval_return") is not None]
    assert len(evaluated) == 2
    for row in evaluated:  # every episode of a held-out trial finished
        assert row["eval_first_return"] < 0 and row["eval_last_return"] < 0
    assert "eval_first_return" in RL2.COLUMNS and "loss_critic" in rows[0]
    state = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    assert state["pipeline"] == "rl2_navigation" and state["progress"]["frames"] == 360
    assert "collector" not in state  # new trials on resume
    resumed = RL2.train(dataclasses.replace(config, frames=480), run_dir=tmp_path / "b",
                        resume=tmp_path / "a" / "checkpoint.pt")
    assert resumed.frames == 480 and resumed.iterations == 4
    assert "rl2_navigation" in available_pipelines()


def test_held_out_trials_split_episodes_and_repeat():
    config = RL2.RL2Config(**TINY)
    env = config.make_eval_env(3)
    torch.manual_seed(0)
    actor, _ = RL2.make_models(config, env)
    first = RL2.evaluate_trials(config, env, actor)
    again = RL2.evaluate_trials(config, env, actor)
    assert first == again  # the same held-out tasks, from a fresh trial, each time
    env.set_seed(config.eval_seed)  # as evaluate_trials does: member i on held-out task i
    assert torch.equal(env.reset()["task", "params"], RL2.held_out_tasks(3, config.eval_seed))
    env.close()
    rollout = TensorDict({"next": {
        "reward": -torch.ones(2, 7, 1),
        "done": torch.tensor([[0, 1, 0, 0, 1, 0, 1], [0, 0, 0, 1, 0, 0, 0]]).bool().unsqueeze(-1)}},
        [2, 7])
    returns = RL2.trial_returns(rollout, 3)
    assert returns[0].tolist() == [-2.0, -3.0, -2.0]
    assert returns[1, 0] == -4.0 and returns[1, 1:].isnan().all()


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"RL2Config.steps_per_env must be a multiple of "
                                         r"sequence_length \(20\).*found steps_per_env=30"):
        RL2.RL2Config(**{**TINY, "sequence_length": 20})
    with pytest.raises(ValueError, match=r"RL2Config.minibatch_size must be a multiple of "
                                         r"sequence_length \(30\).*found minibatch_size=45"):
        RL2.RL2Config(**{**TINY, "minibatch_size": 45})
    with pytest.raises(ValueError, match="takes value_estimator='gae', found 'vtrace'"):
        RL2.RL2Config(**TINY, value_estimator="vtrace")
    ppo_cartpole = load_pipeline(ROOT / "pipelines" / "ppo_cartpole.py")
    config = ppo_cartpole.PPOConfig(num_envs=1, steps_per_env=32, minibatch_size=32,
                                    frames=64, sequence_length=16, logger="none")
    with pytest.raises(ValueError, match=r"sequence_length=16 trains a recurrent actor: "
                                         r"expected a GRUModule or LSTMModule in it, found "
                                         r"ProbabilisticActor with none"):
        ppo_cartpole.train(config)
    no_sequences = PPOPipeline("rl2_plain", RL2.RL2Config, RL2.make_models, None,
                               loss_kwargs={"functional": False})
    config = RL2.RL2Config(**TINY)
    config.sequence_length = None
    with pytest.raises(ValueError, match=r"the actor holds a GRUModule: set "
                                         r"RL2Config.sequence_length .* found None"):
        no_sequences.train(config)
