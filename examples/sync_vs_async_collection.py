"""Synchronous and asynchronous collection are two topologies of the same operators.

Collects CartPole frames with a small policy three ways and prints frames/s and the staleness
of the data (learner version minus the policy version that collected each batch):

* ``SyncDataCollector``: trigger -> rollout, lockstep with the loop (staleness 0);
* ``MultiSyncDataCollector``: trigger -> 2 rollouts in worker processes -> stack;
* ``MultiaSyncDataCollector``: 2 free-running rollouts in worker processes, fanned in.

The "learner" here sleeps a little per batch, standing in for a gradient step, so the
asynchronous topology can collect while it "trains".

    $ python examples/sync_vs_async_collection.py --frames 20000
"""

from __future__ import annotations

import argparse
import functools
import time

import torch
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.collectors import (
    MultiaSyncDataCollector,
    MultiSyncDataCollector,
    SyncDataCollector,
)
from streamrl.envs import SerialEnv
from streamrl.envs.libs.gym import GymEnv


class Greedy(nn.Module):
    """argmax over a linear layer: CartPole's action (one-hot, gym's default encoding)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(self.linear(observation).argmax(-1), 2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--frames-per-batch", type=int, default=1000)
    parser.add_argument("--train-ms", type=float, default=5.0, help="simulated learner time per batch")
    args = parser.parse_args(argv)

    policy = TensorDictModule(Greedy(), in_keys=["observation"], out_keys=["action"])
    make_env = functools.partial(SerialEnv, 4, functools.partial(GymEnv, "CartPole-v1"))
    collectors = {
        "SyncDataCollector": SyncDataCollector(
            make_env, policy, frames_per_batch=args.frames_per_batch, total_frames=args.frames
        ),
        "MultiSyncDataCollector(2)": MultiSyncDataCollector(
            [make_env, make_env], policy, frames_per_batch=args.frames_per_batch,
            total_frames=args.frames,
        ),
        "MultiaSyncDataCollector(2)": MultiaSyncDataCollector(
            [make_env, make_env], policy, frames_per_batch=args.frames_per_batch,
            total_frames=args.frames,
        ),
    }
    print(f"{'topology':28s} {'frames/s':>10s} {'max staleness':>14s}")
    for name, collector in collectors.items():
        t0, frames, staleness, version = time.perf_counter(), 0, 0, 0
        for batch in collector:
            frames += batch.numel()
            batch_version = int(batch.get(("collector", "policy_version")).min())
            staleness = max(staleness, version - batch_version)
            time.sleep(args.train_ms / 1000)  # the learner's turn
            version += 1
            collector.update_policy_weights_()
        elapsed = time.perf_counter() - t0
        collector.shutdown()
        print(f"{name:28s} {frames / elapsed:10,.0f} {staleness:14d}")


if __name__ == "__main__":
    main()
