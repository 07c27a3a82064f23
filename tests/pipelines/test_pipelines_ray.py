"""Pipelines on a local three-node Ray cluster (``ray.cluster_utils.Cluster``): PPO with its env
(``ray.cluster_utils.Cluster``), the learner in this process on the head."""

from __future__ import annotations

import csv
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from streamrl.cli import load_pipeline
from tests.ray_support import assert_no_actors, local_cluster

ROOT = Path(__file__).resolve().parents[2]
ppo = load_pipeline(ROOT / "pipelines" / "ppo_cartpole.py")


@pytest.fixture(scope="module")
def cluster():
    # the head has no CPU for actors: each env actor (1 CPU) goes to a worker node
    with local_cluster(head={"num_cpus": 0}, workers=[{"num_cpus": 1}] * 2,
                       state_api=True) as ray:
        yield ray


@pytest.mark.slow
def test_ppo_collects_on_two_worker_nodes_and_learns_in_order(cluster, tmp_path):
    config = ppo.PPOConfig(frames=1024, num_envs=2, steps_per_env=128, minibatch_size=64,
                           eval_interval=512, eval_episodes=2, epochs=1, ray="auto",
                           ray_actors=2, logger="csv")
    # two env actors of 1 CPU each, on nodes of 1 CPU each (the head has none): one per node
    result = ppo.train(config, run_dir=tmp_path)
    assert result.frames == 1024 and result.iterations == 4
    with open(tmp_path / "metrics.csv") as f:
        lags = [r["policy_lag"] for r in csv.DictReader(f) if r["policy_lag"]]
    assert lags == ["0"] * 4  # lockstep: each batch was collected with the newest weights
    assert_no_actors(cluster)


def test_ray_options_are_checked():
    with pytest.raises(ValueError, match="ray_actors"):
        ppo.PPOConfig(ray_actors=2)
    with pytest.raises(ValueError, match="ray://"):
        ppo.PPOConfig(ray="ray://head:10001")
    with pytest.raises(ValueError, match="topology='sync'"):
        ppo.PPOConfig(ray="auto", topology="async")
    with pytest.raises(ValueError, match="divide"):
        ppo.PPOConfig(ray="auto", num_envs=3, ray_actors=2)


dqn = load_pipeline(ROOT / "pipelines" / "dqn_cartpole.py")


@pytest.mark.slow
@pytest.mark.parametrize("lockstep", [False, True])
def test_dqn_rollout_on_a_worker_node(cluster, lockstep, tmp_path):
    """The off-policy graph with its rollout on a Ray actor: batches come into the driver's
    replay sink, weights go out (a latest-value edge free-running; with each token in
    lockstep), the run ends at its budget and leaves no actor."""
    # free-running, the rollout does not wait for the learner: its budget must outlast the
    # first weights' trip (2,048 frames did not, once, on a loaded CI machine)
    config = dqn.DQNConfig(frames=2048 if lockstep else 6144, learning_starts=256,
                           train_freq=256, gradient_steps=32,
                           minibatches_per_sample=4, eval_interval=1024, eval_episodes=2,
                           rollout_placement="ray", lockstep=lockstep, logger="csv")
    result = dqn.train(config, run_dir=tmp_path)
    assert result.frames >= 2048 and result.updates > 0
    with open(tmp_path / "metrics.csv") as f:
        versions = [float(r["collector_version"]) for r in csv.DictReader(f)
                    if r["collector_version"]]
    assert max(versions) >= 1  # later batches were collected with published weights
    assert_no_actors(cluster)


def _frames_logged(run_dir: Path) -> int:
    try:
        with open(run_dir / "metrics.csv") as f:
            return max((int(float(r["frames"])) for r in csv.DictReader(f) if r["frames"]),
                       default=0)
    except (OSError, KeyError, ValueError):
        return 0


def _kill_rollout_midway(ray, run_dir: Path, at_frames: int, seen: list[str]
                         ) -> threading.Thread:
    """A thread that SIGKILLs the rollout's actor once the run has logged ``at_frames``
    frames, then records the names of the rollout actors it sees until one replaces it."""

    def rollouts() -> list[dict]:
        return [a for a in ray.util.list_named_actors(all_namespaces=True)
                if ":rollout:" in a["name"]]

    def run() -> None:
        deadline = time.monotonic() + 120
        while _frames_logged(run_dir) < at_frames and time.monotonic() < deadline:
            time.sleep(0.02)
        (entry,) = rollouts()
        actor = ray.get_actor(entry["name"], namespace=entry["namespace"])
        _node, _ip, pid = ray.get(actor.ready.remote())
        os.kill(pid, signal.SIGKILL)
        seen.append(entry["name"])
        while time.monotonic() < deadline:
            names = [a["name"] for a in rollouts() if a["name"] != entry["name"]]
            if names:
                seen.extend(names)
                return
            time.sleep(0.02)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.slow
def test_dqn_survives_its_rollout_actor_killed(cluster, tmp_path):
    """The free-running rollout's actor is SIGKILLed mid-run: another actor takes over from
    the rollout's state after the last batch received, with the newest weights, and the run
    reaches its budget (the learner in this process never sees the death)."""
    config = dqn.DQNConfig(frames=4096, learning_starts=256, train_freq=256, gradient_steps=32,
                           minibatches_per_sample=4, eval_interval=2048, eval_episodes=2,
                           ray="auto", logger="csv")
    assert config.rollout_placement == "ray"
    seen: list[str] = []
    killer = _kill_rollout_midway(cluster, tmp_path, 1024, seen)
    result = dqn.train(config, run_dir=tmp_path)
    killer.join(timeout=30)
    assert len(seen) == 2 and seen[1].endswith(":restart1"), seen
    assert result.frames >= 4096 and result.updates > 0
    with open(tmp_path / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["collector_version"]]
    frames = [int(float(r["frames"])) for r in rows]
    assert frames == sorted(frames) and frames[-1] >= 4096
    assert_no_actors(cluster)


def test_offpolicy_ray_flag_puts_the_rollout_on_ray():
    """``--ray ADDRESS`` on an off-policy pipeline: the rollout goes to a Ray actor; a Ray
    Client address or an inline rollout with it is refused with the flag named."""
    from streamrl.train.driver import parse_args

    config, _ = parse_args("dqn_cartpole", None, dqn.DQNConfig, ["--ray", "auto"])
    assert config.ray == "auto" and config.rollout_placement == "ray"
    sac = load_pipeline(ROOT / "pipelines" / "sac_pendulum.py")
    assert sac.SACConfig(ray="local").rollout_placement == "ray"
    with pytest.raises(ValueError, match="ray://"):
        dqn.DQNConfig(ray="ray://head:10001")
    with pytest.raises(ValueError, match="rollout_placement='inline'"):
        dqn.DQNConfig(ray="auto", rollout_placement="inline")


@pytest.mark.slow
def test_dqn_collects_with_two_actors_on_the_two_worker_nodes(cluster, tmp_path):
    """``--ray auto --ray-actors 2``: two rollouts, each on its own actor (one per worker
    node: the head has no CPU), feed the replay buffer of the learner in this process; the
    budget is met and nothing is left."""
    config = dqn.DQNConfig(frames=2048, learning_starts=256, train_freq=256, gradient_steps=32,
                           minibatches_per_sample=4, eval_interval=1024, eval_episodes=2,
                           ray="auto", ray_actors=2, logger="csv")
    nodes: set[str] = set()

    def watch():  # the nodes the rollout actors run on
        deadline = time.monotonic() + 60
        while len(nodes) < 2 and time.monotonic() < deadline:
            for a in cluster.util.list_named_actors(all_namespaces=True):
                if ":rollout" in a["name"]:
                    actor = cluster.get_actor(a["name"], namespace=a["namespace"])
                    nodes.add(cluster.get(actor.ready.remote())[0])
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    result = dqn.train(config, run_dir=tmp_path)
    watcher.join(timeout=10)
    assert result.frames >= 2048 and result.updates > 0
    assert len(nodes) == 2  # one actor per worker node
    with open(tmp_path / "metrics.csv") as f:
        frames = [int(float(r["frames"])) for r in csv.DictReader(f) if r["frames"]]
    assert frames[-1] >= 2048
    assert_no_actors(cluster)


def test_offpolicy_ray_actors_are_checked():
    with pytest.raises(ValueError, match="ray_actors"):
        dqn.DQNConfig(ray_actors=2)
    with pytest.raises(ValueError, match="lockstep=True"):
        dqn.DQNConfig(ray="auto", ray_actors=2, lockstep=True)
    with pytest.raises(ValueError, match="a positive int"):
        dqn.DQNConfig(ray="auto", ray_actors=0)
