"""``streamrl run demo``: collect CartPole data through the runtime and say what happened.

The graph: a batch of CartPole envs in a worker process, in a feedback loop with a policy
stage on the event loop; transitions are stacked into [envs x time] batches and written into a
replay buffer::

    envs (process) --obs--> policy --action--> envs (feedback)
    envs --out--> batcher --> replay
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
from streamrl.graph import Graph, Process
from streamrl.ops import EnvSource, PolicyStage, ReplaySink, TrajectoryBatcher


class SoftmaxPolicy(nn.Module):
    """A linear softmax policy over CartPole's two actions (random weights: a demo, not a
    trained agent)."""

    def __init__(self) -> None:
        super().__init__()
        self.logits = nn.Linear(4, 2)

    def forward(self, td: TensorDictBase) -> TensorDictBase:
        logits = self.logits(td.get("observation"))
        index = torch.distributions.Categorical(logits=logits).sample()
        td.set("action", nn.functional.one_hot(index, 2))  # gym's default: one-hot actions
        return td


def build(num_envs: int, total_frames: int, frames_per_batch: int, placement: str):
    """The demo graph and its replay buffer."""
    make_env = functools.partial(SerialEnv, num_envs, functools.partial(GymEnv, "CartPole-v1"))
    buffer = ReplayBuffer(storage=LazyTensorStorage(total_frames), batch_size=256)
    g = Graph("demo")
    env_placement = Process() if placement == "process" else placement
    envs = g.add(EnvSource(make_env, total_frames=total_frames, seed=0), "envs", env_placement)
    policy = g.add(PolicyStage(SoftmaxPolicy()), "policy")
    batcher = g.add(TrajectoryBatcher(frames_per_batch), "batcher")
    sink = g.add(ReplaySink(buffer), "replay")
    g.connect(envs["obs"], policy).connect(policy, envs["action"], feedback=True)
    g.connect(envs["out"], batcher).connect(batcher, sink)
    return g, buffer


def main(argv: list[str] | None = None) -> int:
    """Run the demo graph and print the graph, its metrics and what was collected."""
    parser = argparse.ArgumentParser(prog="streamrl run demo", description=__doc__)
    parser.add_argument("--envs", type=int, default=8, help="CartPole envs in the batch")
    parser.add_argument("--frames", type=int, default=50_000, help="frames to collect")
    parser.add_argument("--frames-per-batch", type=int, default=1024)
    parser.add_argument("--placement", choices=["process", "thread", "inline"], default="process",
                        help="where the envs run")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    g, buffer = build(args.envs, args.frames, args.frames_per_batch, args.placement)
    print(g)
    t0 = time.perf_counter()
    anyio.run(g.run)
    elapsed = time.perf_counter() - t0
    data = buffer[: len(buffer)] if hasattr(buffer, "__getitem__") else buffer.sample(len(buffer))
    episodes = int(data.get(("next", "done")).sum())
    print()
    print(g.report())
    print()
    print(f"collected {len(buffer):,} frames from {args.envs} CartPole envs in {elapsed:.2f} s "
          f"({len(buffer) / elapsed:,.0f} frames/s, including process start-up)")
    print(f"episodes finished: {episodes:,}; mean reward per frame "
          f"{data.get(('next', 'reward')).mean().item():.3f}; policy versions seen: "
          f"{sorted(set(data.get(('collector', 'policy_version')).tolist()))}")
    sample = buffer.sample()
    print(f"a replay sample: batch_size={tuple(sample.batch_size)}, keys="
          f"{sorted(str(k) for k in sample.keys(True, True))}")
    return 0
