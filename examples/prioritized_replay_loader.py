"""A prioritized replay buffer filled by a collector and read through a torch DataLoader.

Collects Pendulum transitions, then "trains" by reading prioritized batches from a
``DataLoader`` and writing new priorities (here: the absolute reward, a stand-in for a TD error)
back into the buffer, as a DQN/DDPG learner would.

    $ python examples/prioritized_replay_loader.py --frames 2000 --batches 20
"""

from __future__ import annotations

import argparse

import torch

from streamrl.collectors import SyncDataCollector
from streamrl.data import LazyTensorStorage, TensorDictPrioritizedReplayBuffer
from streamrl.envs.libs.gym import GymEnv


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args(argv)

    buffer = TensorDictPrioritizedReplayBuffer(
        alpha=0.7, beta=0.5, priority_key="td_error",
        storage=LazyTensorStorage(args.frames), batch_size=64,
    )
    collector = SyncDataCollector(
        lambda: GymEnv("Pendulum-v1"), None, frames_per_batch=200, total_frames=args.frames
    )
    for batch in collector:
        buffer.extend(batch)
    collector.shutdown()

    loader = torch.utils.data.DataLoader(buffer, batch_size=None)
    weights = []
    for i, sample in enumerate(loader):
        if i == args.batches:
            break
        sample.set("td_error", sample.get(("next", "reward")).abs().squeeze(-1))
        buffer.update_tensordict_priority(sample)
        weights.append(sample.get("_weight").mean().item())
    print(f"{len(buffer)} transitions; {len(weights)} prioritized batches of 64; "
          f"mean importance weight {sum(weights) / len(weights):.3f}")


if __name__ == "__main__":
    main()
