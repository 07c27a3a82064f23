"""Pipelines on a local three-node Ray cluster (``ray.cluster_utils.Cluster``): PPO with its env
(``ray.cluster_utils.Cluster``), the learner in this process on the head."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest

from streamrl.cli import load_pipeline

ROOT = Path(__file__).resolve().parents[2]
ppo = load_pipeline(ROOT / "pipelines" / "ppo_cartpole.py")
_STORE = 128 * 2**20


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    # the head has no CPU for actors: each env actor (1 CPU) goes to a worker node
    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "object_store_memory": _STORE, "include_dashboard": False})
    for _ in range(2):
        c.add_node(num_cpus=1, object_store_memory=_STORE)
    ray.init(address=c.address, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    c.wait_for_nodes()
    yield ray
    ray.shutdown()
    c.shutdown()


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
    deadline = time.monotonic() + 5.0
    while cluster.util.list_named_actors():
        assert time.monotonic() < deadline, cluster.util.list_named_actors()
        time.sleep(0.05)


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
    config = dqn.DQNConfig(frames=2048, learning_starts=256, train_freq=256, gradient_steps=32,
                           minibatches_per_sample=4, eval_interval=1024, eval_episodes=2,
                           rollout_placement="ray", lockstep=lockstep, logger="csv")
    result = dqn.train(config, run_dir=tmp_path)
    assert result.frames >= 2048 and result.updates > 0
    with open(tmp_path / "metrics.csv") as f:
        versions = [float(r["collector_version"]) for r in csv.DictReader(f)
                    if r["collector_version"]]
    assert max(versions) >= 1  # later batches were collected with published weights
    deadline = time.monotonic() + 5.0
    while cluster.util.list_named_actors():
        assert time.monotonic() < deadline, cluster.util.list_named_actors()
        time.sleep(0.05)
