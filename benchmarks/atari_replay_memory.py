"""Bytes per transition of make_atari_env's data in a TensorDictReplayBuffer: stacks stored
as they come (4 frames in "pixels" and 4 in ("next", "pixels")) vs each frame stored once
(the newest frame of each stack; CatFrames.make_rb_transform_and_sampler rebuilds the stacks
at sampling), and the sampling cost of the rebuild.

Usage: python benchmarks/atari_replay_memory.py [--steps 256] [--game PongNoFrameskip-v4]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from streamrl.data import LazyTensorStorage, TensorDictReplayBuffer
from streamrl.envs import make_atari_env
from streamrl.envs.transforms import CatFrames

KEYS = ["pixels", ("next", "pixels")]


def item_bytes(rb: TensorDictReplayBuffer) -> int:
    """Bytes one stored item takes in the buffer's storage (its schema: shape and dtype of
    each entry; the "index" and sampler entries of a sample are not stored)."""
    total = 0
    for shape, dtype in rb.storage.schema().values():
        total += math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--game", default="PongNoFrameskip-v4")
    args = parser.parse_args()
    torch.set_num_threads(1)
    env = make_atari_env(args.game, num_envs=1, seed=0)
    try:
        data = env.rollout(args.steps, break_when_any_done=False)[0]
    finally:
        env.close()
    n = data.batch_size[0]

    full = TensorDictReplayBuffer(storage=LazyTensorStorage(n), batch_size=32)
    full.extend(data)
    single = data.clone()
    for key in KEYS:
        single.set(key, single.get(key)[:, -1:].clone())
    cat = CatFrames(4, -3, in_keys=KEYS, padding="constant")
    transform, sampler = cat.make_rb_transform_and_sampler(batch_size=32)
    once = TensorDictReplayBuffer(
        storage=LazyTensorStorage(n), sampler=sampler, transform=transform, batch_size=32 * 4
    )
    once.extend(single)

    for name, rb in (("stacks stored", full), ("frames stored once", once)):
        per = item_bytes(rb)
        rb.sample()
        t = time.perf_counter()
        for _ in range(50):
            rb.sample()
        ms = (time.perf_counter() - t) / 50 * 1e3
        print(f"{name:>20}: {per:>8.0f} bytes/transition, sample(32) {ms:.2f} ms")
        gib = per * 1_000_000 / 2**30
        print(f"{'':>20}  1M transitions: {gib:.1f} GiB")


if __name__ == "__main__":
    main()
