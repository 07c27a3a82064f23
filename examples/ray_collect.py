"""Collect CartPole data with the envs on Ray actors: the same graph as with worker processes.

Each env source (a batch of CartPole envs) runs on its own Ray actor, in a feedback loop with a
policy stage on the driver's event loop; its transitions are stacked into [envs x time] batches
and every source's batches are written into one replay buffer::

    envs0 (ray) --obs--> policy0 --action--> envs0 (feedback)
    envs0 --out--> batcher0 --> replay
    envs1 (ray) ...                 --> replay

Only the placement changes between a local run and a cluster: ``--address auto`` joins a
running Ray cluster (``ray start --head`` / ``ray start --address ...`` on the other machines),
and the actors are scheduled on whichever nodes have a free CPU. ``--placement process`` runs
the same graph with worker processes, for comparison. Needs ``pip install 'streamrl[ray]'``.

    $ python examples/ray_collect.py --sources 2 --envs 16 --frames 20000
"""

from __future__ import annotations

import argparse
import functools
import time

import anyio
import torch
from tensordict import TensorDictBase
from torch import nn

from streamrl.data import LazyTensorStorage, ReplayBuffer
from streamrl.envs import SerialEnv
from streamrl.envs.libs.gym import GymEnv
from streamrl.graph import Graph, Process, Ray
from streamrl.ops import EnvSource, PolicyStage, ReplaySink, TrajectoryBatcher


class SoftmaxPolicy(nn.Module):
    """A linear softmax policy over CartPole's two actions (random weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.logits = nn.Linear(4, 2)

    def forward(self, td: TensorDictBase) -> TensorDictBase:
        logits = self.logits(td.get("observation"))
        index = torch.distributions.Categorical(logits=logits).sample()
        td.set("action", nn.functional.one_hot(index, 2))  # gym's default: one-hot actions
        return td


def build(sources: int, num_envs: int, total_frames: int, frames_per_batch: int,
          placement: str) -> tuple[Graph, ReplayBuffer]:
    """The collection graph and its replay buffer."""
    make_env = functools.partial(SerialEnv, num_envs, functools.partial(GymEnv, "CartPole-v1"))
    buffer = ReplayBuffer(storage=LazyTensorStorage(total_frames), batch_size=256)
    policy = SoftmaxPolicy()
    g = Graph("ray_collect")
    sink = g.add(ReplaySink(buffer), "replay")
    for i in range(sources):
        where = Ray(num_cpus=1) if placement == "ray" else Process()
        envs = g.add(EnvSource(make_env, total_frames=total_frames // sources, seed=i),
                     f"envs{i}", where)
        pol = g.add(PolicyStage(policy), f"policy{i}")
        batcher = g.add(TrajectoryBatcher(frames_per_batch), f"batcher{i}")
        g.connect(envs["obs"], pol).connect(pol, envs["action"], feedback=True)
        g.connect(envs["out"], batcher).connect(batcher, sink)
    return g, buffer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=2, help="env sources (one actor each)")
    parser.add_argument("--envs", type=int, default=16, help="CartPole envs per source")
    parser.add_argument("--frames", type=int, default=20_000, help="frames to collect in all")
    parser.add_argument("--frames-per-batch", type=int, default=1024)
    parser.add_argument("--placement", choices=["ray", "process"], default="ray")
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join ('auto': the running one); default: a local Ray")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    if args.placement == "ray":
        import ray

        ray.init(address=args.address, include_dashboard=False)
    g, buffer = build(args.sources, args.envs, args.frames, args.frames_per_batch,
                      args.placement)
    print(g)
    t0 = time.perf_counter()
    anyio.run(g.run)
    elapsed = time.perf_counter() - t0
    print()
    print(g.report())
    print()
    frames = sum(g.state_dict()[f"envs{i}"]["frames"] for i in range(args.sources))
    print(f"collected {len(buffer):,} frames into the buffer ({frames:,} counted by the env "
          f"sources, state copied back from the {args.placement} workers) in {elapsed:.2f} s: "
          f"{len(buffer) / elapsed:,.0f} frames/s including start-up")


if __name__ == "__main__":
    main()
