"""pipelines/maddpg_vmas.py: a few hundred VMAS simple_tag frames end to end (run dir and
per-group metrics), both groups training and the frozen one stopping at its iteration,
resume, what each group's replay holds, the graph's two learners, bad input refused."""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import time
from pathlib import Path

import pytest
import torch
from tensordict import TensorDict

from streamrl.cli import load_pipeline
from streamrl.modules import MultiAgentMLP
from streamrl.train import load_checkpoint

pytestmark = pytest.mark.skipif(importlib.util.find_spec("vmas") is None,
                                reason="needs vmas (the marl extra)")

ROOT = Path(__file__).resolve().parents[2]
MADDPG = load_pipeline(ROOT / "pipelines" / "maddpg_vmas.py")

# iterations of 50 frames (5 envs x 10 steps), 8 updates of 16 rows per iteration and group
TINY = dict(frames=100, frames_per_batch=50, max_steps=10, batch_size=16, learning_starts=50,
            updates_per_frame=0.16, minibatches_per_sample=2, hidden=16, eval_interval=100,
            eval_episodes=2, rollout_placement="inline", logger="none", freeze_evaders_at=0)


def _group_params(policy_state: dict, group: str) -> dict:
    """The actor parameters of ``group`` in a saved policy's state dict."""
    index = {"adversary": 0, "agent": 1}[group]
    return {k: v.clone() for k, v in policy_state.items()
            if k.startswith(f"module.{index}.") and "_sigma" not in k}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_run_writes_files_and_per_group_metrics_then_the_frozen_group_stops(tmp_path):
    config = MADDPG.MADDPGConfig(**TINY)
    initial = MADDPG.build(config, None, False).saved["policy"].state_dict()
    result = MADDPG.train(config, run_dir=tmp_path / "a")
    assert result.frames == 100 and result.updates > 0
    for name in ("config.json", "metrics.csv", "checkpoint.pt"):
        assert (tmp_path / "a" / name).stat().st_size > 0
    with open(tmp_path / "a" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    columns = set(rows[0])
    assert {"train_return/adversary", "train_return/agent", "loss_actor/agent",
            "loss_value/agent", "updates/agent", "updates/adversary"} <= columns
    returns = [r for r in rows if r["train_return/adversary"]]
    # simple_tag in VMAS: the evader loses what the chasers win, per agent
    assert returns and all(float(r["train_return/agent"]) == -float(r["train_return/adversary"])
                           for r in returns)
    first = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    # the evaders train on iteration 0 only (freeze_evaders_at=0): 8 updates of 16 rows
    assert first["agent_learner"]["updates"] == 8 and first["learner"]["updates"] >= 16
    assert first["agent_buffer"]["rate_limiter"]["inserts"] == 50  # stops storing, too
    for group in ("adversary", "agent"):  # both trained
        assert not _same(_group_params(initial, group), _group_params(first["policy"], group))
    # resumed: the chasers go on, the evaders' weights stay as they were at the freeze
    longer = dataclasses.replace(config, frames=150)
    MADDPG.train(longer, run_dir=tmp_path / "b", resume=tmp_path / "a" / "checkpoint.pt")
    second = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert second["frames"] == 150 and second["agent_learner"]["updates"] == 8
    assert second["learner"]["updates"] > first["learner"]["updates"]
    assert _same(_group_params(first["policy"], "agent"), _group_params(second["policy"], "agent"))
    assert not _same(_group_params(first["policy"], "adversary"),
                     _group_params(second["policy"], "adversary"))


def test_each_group_replays_its_own_entries_with_per_agent_done_flags():
    groups = ["adversary", "agent"]
    done = torch.tensor([[False], [True]])
    batch = TensorDict({
        "adversary": TensorDict({"observation": torch.zeros(2, 2, 3)}, [2, 2]),
        "agent": TensorDict({"observation": torch.zeros(2, 1, 3)}, [2, 1]),
        "next": {"done": done, "terminated": done.clone(),
                 "adversary": TensorDict({"reward": torch.ones(2, 2, 1)}, [2, 2]),
                 "agent": TensorDict({"reward": torch.ones(2, 1, 1)}, [2, 1])},
    }, [2])
    rows = MADDPG.GroupRows("adversary", groups)(batch)
    assert "agent" not in rows.keys() and ("next", "agent") not in rows.keys(True)
    assert rows["next", "adversary", "done"].shape == (2, 2, 1)
    assert rows["next", "adversary", "terminated"][1].all()
    assert not rows["next", "adversary", "done"][0].any()
    assert ("next", "adversary", "done") not in batch.keys(True)  # the batch is not written


def test_the_graph_has_a_learner_per_group_and_iddpg_decentralises_the_critics():
    g = MADDPG.build_graph(["--frames", "200", "--no-files", "--frames-per-batch", "50",
                            "--max-steps", "10", "--hidden", "16"])
    learners = [n for n in g.nodes if n.endswith("learner")]
    assert learners == ["learner", "agent_learner"]
    assert {"agent_replay_sink", "agent_replay_source", "agent_until_freeze"} <= set(g.nodes)
    assert "agent_learner" in g.to_mermaid()
    env = MADDPG.MADDPGConfig(**TINY).make_env()
    try:
        for iddpg in (False, True):
            config = MADDPG.MADDPGConfig(**{**TINY, "iddpg": iddpg})
            for group in env.group_map:
                critic = MADDPG.make_group_models(config, env, group).critic[1].module
                assert isinstance(critic, MultiAgentMLP) and critic.centralized is not iddpg
    finally:
        env.close()


def test_bad_input_is_refused_with_what_was_expected():
    with pytest.raises(ValueError, match=r"freeze_evaders_at must be None or an int >= 0.*-1"):
        MADDPG.MADDPGConfig(freeze_evaders_at=-1)
    config = MADDPG.MADDPGConfig(**{**TINY, "frames": 200, "freeze_group": "chasers"})
    with pytest.raises(ValueError, match=r"'chasers' is not a group .*\['adversary', 'agent'\]"):
        MADDPG.build(config, None, False)
    with pytest.raises(ValueError, match="pass --scenario"):
        MADDPG.MADDPGConfig(env_name="HalfCheetah-v5")
    with pytest.raises(SystemExit):
        MADDPG.parse_args(["--freeze-evaders-at", "-2"])


def test_the_final_publication_waits_for_every_learner():
    """Both groups train to the end: the weights published last (the rollout's and the final
    evaluation's) are every group's final parameters, not the first group's learner's end."""
    config = MADDPG.MADDPGConfig(**{**TINY, "freeze_evaders_at": 10})
    og = MADDPG.build(config, None, False)
    assert "agent_learner_end" in og.graph.nodes
    side = og.saved["agent_learner"]
    step = side.step

    def slow_step(inputs):  # the evaders' learner ends well after the chasers'
        time.sleep(0.05)
        return step(inputs)

    side.step = slow_step
    og.graph.run_sync()
    policy = og.saved["policy"]
    published = og.weights.snapshot()
    live = TensorDict.from_module(policy).detach()
    keys = [k for k in live.keys(True, True) if "_sigma" not in "".join(map(str, k))]
    assert keys and all(torch.equal(published.get(k), live.get(k)) for k in keys)
