"""pipelines/dqn_atari.py: DQN on preprocessed Atari frames, each frame stored once in
replay, lost lives terminal for the loss only."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from tensordict import TensorDict

from streamrl.cli import load_pipeline, main
from streamrl.envs import make_atari_env
from streamrl.graph import Graph
from streamrl.ops import sample_budget
from streamrl.train import load_checkpoint, read_metrics

pytest.importorskip("ale_py")

ROOT = Path(__file__).resolve().parents[2]
dqn = load_pipeline(ROOT / "pipelines" / "dqn_atari.py")

TINY = dict(frames=256, learning_starts=64, batch_size=8, minibatches_per_sample=2,
            buffer_size=512, target_update_interval=64, eval_interval=10_000, eval_episodes=1,
            eval_max_steps=20, logger="none")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def expected_updates(config):
    buffer = dqn.make_buffer(config)
    batches = sample_budget(buffer.rate_limiter, config.frames,
                            config.sample_size * config.frame_stack)
    return batches * config.minibatches_per_sample


def _storage(state):
    """{key: tensor} of a checkpoint's replay storage."""
    storage = state["buffer"]["storage"]
    return {tuple(k): t for k, t in zip(storage["keys"], storage["tensors"])}


def test_tiny_run_writes_its_run_dir_and_resumes(tmp_path):
    config = dqn.DQNAtariConfig(**TINY)  # rollout in a worker process, as by default
    result = dqn.train(config, run_dir=tmp_path / "a")
    assert result.frames == 256 and result.updates == expected_updates(config) > 0
    for name in ("config.json", "metrics.csv", "metrics.jsonl", "checkpoint.pt"):
        assert (tmp_path / "a" / name).exists(), name
    rows = [r for r in read_metrics(tmp_path / "a") if r.get("loss") is not None]
    assert rows and all(0 <= r["staleness"] <= r["staleness_max"] for r in rows)
    assert rows[-1]["epsilon"] == pytest.approx(0.01)  # annealed over 10% of 256 steps
    state = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    assert state["pipeline"] == "dqn_atari" and state["frames"] == 256
    # each replay row holds one 84x84 frame (root and next), not the 4-frame stacks
    stored = _storage(state)
    assert stored[("pixels",)].shape == (256, 1, 84, 84)
    assert stored[("next", "pixels")].shape == (256, 1, 84, 84)
    assert stored[("pixels",)].dtype == torch.uint8

    longer = dataclasses.replace(config, frames=384, rollout_placement="inline")
    again = dqn.train(longer, run_dir=tmp_path / "b", resume=tmp_path / "a" / "checkpoint.pt")
    assert again.frames == 384 and again.updates == expected_updates(longer)
    state = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    # one publication per learner message, counted on from the checkpoint
    assert state["frames"] == 384
    assert state["policy_version"] == again.updates // config.minibatches_per_sample
    ids = _storage(state)[("collector", "traj_ids")]
    # the resumed run's new episodes never continue a stored trajectory id
    assert ids[256] > ids[255]
    assert read_metrics(tmp_path / "b")[0]["frames"] > 256  # counted on from the checkpoint


def test_replay_rebuilds_the_stacks_the_env_made():
    config = dqn.DQNAtariConfig(**{**TINY, "learning_starts": 8}, max_policy_lag=2)
    rb = dqn.make_buffer(config)
    env = make_atari_env(config.env_name, num_envs=1, seed=0, noop_max=3)
    try:
        data = env.rollout(40, break_when_any_done=False).reshape(-1)
    finally:
        env.close()
    # two trajectories (ids 0 and 1), policy versions 0..9 (4 steps each)
    data["collector", "traj_ids"] = (torch.arange(40) >= 20).long()
    data["collector", "policy_version"] = torch.arange(40) // 4
    # the stacks of trajectory 1 start from zero padding, as after a reset
    root, nxt = data["pixels"].clone(), data["next", "pixels"].clone()
    for k in range(3):
        root[20 + k, : 3 - k] = 0
        nxt[20 + k, : max(0, 2 - k)] = 0
    rows, samples = config.sample_size * 4, 0
    for start in range(0, 40, 4):  # the rollout's batches, sampled as the limiter allows
        rb.extend(data[start:start + 4])
        version = start // 4
        rb.sampler.consumer_version = version
        while rb.rate_limiter.can_sample(rows):
            sample = rb.sample(rows)
            samples += 1
            assert sample.batch_size == (config.sample_size,)
            assert sample["pixels"].shape == (config.sample_size, 4, 84, 84)
            index = sample["index"]
            # transitions at most max_policy_lag versions old; their frame history any age
            assert bool((data["collector", "policy_version"][index] >= version - 2).all())
            assert torch.equal(sample["pixels"], root[index])
            assert torch.equal(sample["next", "pixels"], nxt[index])
    assert samples >= 3


def test_a_lost_life_is_terminal_for_the_loss_only():
    config = dqn.DQNAtariConfig(**TINY)
    built = dqn._build(config, None, False)
    loss = built.saved["loss"]
    built.buffer.close()
    n = 4
    td = TensorDict({
        "pixels": torch.zeros(n, 4, 84, 84, dtype=torch.uint8),
        "action": torch.nn.functional.one_hot(torch.zeros(n, dtype=torch.long), 6),
        "next": {
            "pixels": torch.full((n, 4, 84, 84), 255, dtype=torch.uint8),
            "reward": torch.ones(n, 1),
            "done": torch.zeros(n, 1, dtype=torch.bool),
            "terminated": torch.zeros(n, 1, dtype=torch.bool),
            "end-of-life": torch.tensor([[True], [False], [True], [False]]),
        },
    }, [n])
    target = loss.target_value(td).squeeze(-1)
    assert torch.allclose(target[[0, 2]], torch.ones(2))  # no bootstrap after a lost life
    assert not torch.allclose(target[[1, 3]], torch.ones(2))  # bootstrapped otherwise


def test_graph_and_bad_flags(capsys):
    g = dqn.build_graph(["--frames", "2048"])
    assert isinstance(g, Graph)
    assert {"rollout", "replay_sink", "replay_source", "learner", "weight_sync", "evaluator",
            "metrics"} <= set(g.nodes)
    assert g["rollout"].placement.name == "process"
    assert main(["graph", "dqn_atari", "--env-name", "BreakoutNoFrameskip-v4"]) == 0
    out = capsys.readouterr().out
    assert "Graph 'dqn_atari'" in out and "replay_source" in out
    config, _ = dqn.parse_args(["--env-name", "BreakoutNoFrameskip-v4"])
    assert config.env_name == "BreakoutNoFrameskip-v4" and config.target_period == 250
    for flags, message in [
        (["--env-name", "Pong-v4"], "NoFrameskip-v4"),
        (["--frames", "0"], "frames"),
        (["--max-policy-lag", "-1"], "max_policy_lag"),
        (["--exploration-final-eps", "2"], "exploration_final_eps"),
        (["--eval-max-steps", "0"], "eval_max_steps"),
    ]:
        with pytest.raises(SystemExit) as info:
            dqn.parse_args(flags)
        assert info.value.code == 2
        assert message in capsys.readouterr().err, flags


def test_policy_lag_bound_holds(tmp_path):
    with pytest.raises(ValueError, match="pass max_policy_lag >= "):
        dqn.train(dqn.DQNAtariConfig(**TINY, max_policy_lag=0))  # free-running: too tight
    # in lockstep each batch waits for the updates the frames before it grant: a transition
    # can be drawn by the very policy that collected it (lag 0) without stalling
    config = dqn.DQNAtariConfig(**TINY, rollout_placement="inline", lockstep=True,
                                max_policy_lag=0)
    result = dqn.train(config, run_dir=tmp_path)
    assert result.updates == expected_updates(config)  # the bound stalls nothing
    rows = [r for r in read_metrics(tmp_path) if r.get("loss") is not None]
    assert rows and all(r["staleness"] == r["staleness_max"] == 0 for r in rows)
