"""Collector throughput (frames/s), streamrl next to TorchRL from the same run.

    flock /tmp/streamrl-heavy.lock python benchmarks/collectors.py [--frames 20000]
        [--rounds 3] [--peers-python /tmp/peers/bin/python] [--no-peers] [--only sync-gym,...]

Every row collects CartPole-v1 with the same small torch policy (``Linear(4, 2)`` then
argmax, in a ``TensorDictModule``), 1000 frames per batch. The first batch (start-up of
envs and worker processes) is not timed. Rows:

- ``sync-gym``: SyncDataCollector(GymEnv) vs TorchRL Collector(GymEnv);
- ``sync-serial``: SyncDataCollector(SerialEnv(8)) vs Collector(SerialEnv(8));
- ``sync-parallel``: SyncDataCollector(ParallelEnv(2)) vs Collector(ParallelEnv(2));
  ``sync-parallel4`` / ``sync-parallel8``: the same with 4 and 8 worker processes (on a
  2-core machine: how lockstep collection degrades as workers outnumber cores);
- ``multisync``: MultiSyncDataCollector(2 x GymEnv) vs MultiSyncCollector(2 x GymEnv);
- ``multiasync``: MultiaSyncDataCollector(2 x GymEnv) vs MultiAsyncCollector(2 x GymEnv);
- ``sync-split``: ``sync-gym`` with ``split_trajs=True`` (frames counted from the mask);
- ``sync-rb``: ``sync-gym`` with ``replay_buffer=`` a ``LazyTensorStorage`` buffer (the
  collector extends it and yields None: each None counts as one batch of frames; TorchRL's
  env uses integer actions here, as the argmax policy writes them and its buffer allocates
  from the action spec);
- ``multisync-rb``: ``multisync`` with ``replay_buffer=`` (TorchRL's buffer ``shared=True``).

Beside each row with one, the hand-written limit from the same run: ``gym-loop`` (a
``gymnasium`` loop calling the same ``Linear(4, 2)`` + argmax on each observation, for the
single-env rows) and ``vector-loop`` (``gymnasium.vector.SyncVectorEnv(8)`` with the policy on
the batch of 8, for ``sync-serial``); the share is the row's frames/s over its limit's.

TorchRL rows run in a subprocess with ``--peers-python`` (or ``$STREAMRL_PEERS_PYTHON``;
default ``/tmp/peers/bin/python``) and are skipped with a note when it has no torchrl.

``--rounds`` rounds each measure the limits, streamrl's rows and TorchRL's rows, in turn, so
that the machine's slower phases fall on all of them; the table gives each figure's best
round, the share of the limit and the ratio to TorchRL as medians of the rounds' (and the
ratio of the bests).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

# the script's folder is on sys.path when it runs
from _peers import default_peers_python, round_ratios, run_torchrl_script, selected_rows
from torch import nn

torch.set_num_threads(1)

CARTPOLE = "CartPole-v1"
FRAMES_PER_BATCH = 1000
ROWS = ("sync-gym", "sync-serial", "sync-parallel", "sync-parallel4", "sync-parallel8", "multisync", "multiasync", "sync-split",
        "sync-rb", "multisync-rb")
BUFFER_SIZE = 200_000


class ArgmaxLinear(nn.Module):
    """observation -> argmax(Linear(observation)): a small deterministic torch policy."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(4, 2)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.lin(obs).argmax(-1)


def make_policy() -> nn.Module:
    from tensordict.nn import TensorDictModule

    return TensorDictModule(ArgmaxLinear(), in_keys=["observation"], out_keys=["action"])


def count_frames(batch) -> int:
    """Frames in a yielded batch: ``None`` (replay buffer) is one batch, a split batch counts
    its mask."""
    if batch is None:
        return FRAMES_PER_BATCH
    mask = batch.get(("collector", "mask"), None)
    return int(mask.sum()) if mask is not None else batch.numel()


def time_collector(make: Callable[[], object], frames: int) -> float:
    """frames/s over ``frames`` frames after a first (untimed) batch."""
    collector = make(frames + FRAMES_PER_BATCH)
    try:
        it = iter(collector)
        next(it)  # start-up
        t0 = time.perf_counter()
        n = 0
        for batch in it:
            n += count_frames(batch)
        return n / (time.perf_counter() - t0)
    finally:
        collector.shutdown()


def limit_gym_loop(frames: int) -> float:
    """frames/s of a plain gymnasium loop calling the policy module on every observation."""
    import gymnasium as gym

    env, policy = gym.make(CARTPOLE), ArgmaxLinear()
    obs, _ = env.reset(seed=0)
    with torch.no_grad():
        for _ in range(FRAMES_PER_BATCH):  # warm-up, as the collectors' first batch
            obs, _, term, trunc, _ = env.step(policy(torch.as_tensor(obs)).item())
            if term or trunc:
                obs, _ = env.reset()
        t0 = time.perf_counter()
        for _ in range(frames):
            obs, _, term, trunc, _ = env.step(policy(torch.as_tensor(obs)).item())
            if term or trunc:
                obs, _ = env.reset()
    return frames / (time.perf_counter() - t0)


def limit_vector_loop(frames: int, n: int = 8) -> float:
    """frames/s of ``SyncVectorEnv(n)`` (same-step autoreset) with the policy on the batch."""
    import gymnasium as gym

    env = gym.vector.SyncVectorEnv([lambda: gym.make(CARTPOLE)] * n,
                                   autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    policy = ArgmaxLinear()
    obs, _ = env.reset(seed=0)
    with torch.no_grad():
        for _ in range(FRAMES_PER_BATCH // n):
            obs, *_ = env.step(policy(torch.as_tensor(obs)).numpy())
        t0 = time.perf_counter()
        for _ in range(frames // n):
            obs, *_ = env.step(policy(torch.as_tensor(obs)).numpy())
    env.close()
    return (frames // n) * n / (time.perf_counter() - t0)


LIMITS = {"gym-loop": limit_gym_loop, "vector-loop": limit_vector_loop}
ROW_LIMIT = {"sync-gym": "gym-loop", "sync-split": "gym-loop", "sync-rb": "gym-loop",
             "sync-serial": "vector-loop"}


def gym_env():
    from streamrl.envs.libs.gym import GymEnv

    return GymEnv(CARTPOLE, categorical_action_encoding=True)


def serial_env():
    from streamrl.envs import SerialEnv

    return SerialEnv(8, gym_env)


def parallel_env(n: int = 2):
    from streamrl.envs import ParallelEnv

    return ParallelEnv(n, gym_env)


def streamrl_makers() -> dict[str, tuple[str, Callable[[int], object]]]:
    from streamrl.collectors import (
        MultiaSyncDataCollector,
        MultiSyncDataCollector,
        SyncDataCollector,
    )
    from streamrl.data import LazyTensorStorage, ReplayBuffer

    def buffer():
        return {"replay_buffer": ReplayBuffer(storage=LazyTensorStorage(BUFFER_SIZE))}

    def sync(env_fn, extra=dict):
        return lambda total: SyncDataCollector(
            env_fn, make_policy(), frames_per_batch=FRAMES_PER_BATCH, total_frames=total,
            **extra()
        )

    def multi(cls, extra=dict):
        return lambda total: cls(
            [gym_env, gym_env],
            make_policy(),
            frames_per_batch=FRAMES_PER_BATCH,
            total_frames=total,
            **extra(),
        )

    return {
        "sync-gym": ("streamrl SyncDataCollector(GymEnv)", sync(gym_env)),
        "sync-serial": ("streamrl SyncDataCollector(SerialEnv(8))", sync(serial_env)),
        "sync-parallel": ("streamrl SyncDataCollector(ParallelEnv(2))", sync(parallel_env)),
        "sync-parallel4": ("streamrl SyncDataCollector(ParallelEnv(4))",
                           sync(lambda: parallel_env(4))),
        "sync-parallel8": ("streamrl SyncDataCollector(ParallelEnv(8))",
                           sync(lambda: parallel_env(8))),
        "multisync": (
            "streamrl MultiSyncDataCollector(2 x GymEnv)",
            multi(MultiSyncDataCollector),
        ),
        "multiasync": (
            "streamrl MultiaSyncDataCollector(2 x GymEnv)",
            multi(MultiaSyncDataCollector),
        ),
        "sync-split": (
            "streamrl SyncDataCollector(GymEnv, split_trajs)",
            sync(gym_env, lambda: {"split_trajs": True}),
        ),
        "sync-rb": ("streamrl SyncDataCollector(GymEnv, replay_buffer)", sync(gym_env, buffer)),
        "multisync-rb": (
            "streamrl MultiSyncDataCollector(2 x GymEnv, replay_buffer)",
            multi(MultiSyncDataCollector, buffer),
        ),
    }


TORCHRL_SNIPPET = r"""
import sys, time, torch
from torch import nn
torch.set_num_threads(1)
frames, fpb, rows = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(",")
from tensordict.nn import TensorDictModule
from torchrl.envs import GymEnv, SerialEnv, ParallelEnv
from torchrl.collectors import Collector, MultiSyncCollector, MultiAsyncCollector
from torchrl.data import LazyTensorStorage, ReplayBuffer

class ArgmaxLinear(nn.Module):
    def __init__(self):
        super().__init__(); torch.manual_seed(0); self.lin = nn.Linear(4, 2)
    def forward(self, obs):
        return self.lin(obs).argmax(-1)

def policy():
    return TensorDictModule(ArgmaxLinear(), in_keys=["observation"], out_keys=["action"])

def gym():
    return GymEnv("CartPole-v1")

def gym_int():
    # integer actions, as the argmax policy writes: TorchRL's buffers allocate from the spec
    return GymEnv("CartPole-v1", categorical_action_encoding=True)

def count(b):
    if b is None:
        return fpb
    mask = b.get(("collector", "mask"), None)
    return int(mask.sum()) if mask is not None else b.numel()

def rb(shared=False):
    # shared: TorchRL's multi-process collectors write from their workers
    return ReplayBuffer(storage=LazyTensorStorage(200_000), shared=shared)

def run(key, make):
    c = make(frames + fpb)
    try:
        it = iter(c); next(it)
        t0 = time.perf_counter(); n = 0
        for b in it:
            n += count(b)
        print(f"RESULT {key} {n / (time.perf_counter() - t0):.1f}", flush=True)
    finally:
        c.shutdown()

makers = {
    "sync-gym": lambda t: Collector(gym, policy(), frames_per_batch=fpb, total_frames=t),
    "sync-serial": lambda t: Collector(lambda: SerialEnv(8, gym), policy(),
                                       frames_per_batch=fpb, total_frames=t),
    "sync-parallel": lambda t: Collector(lambda: ParallelEnv(2, gym), policy(),
                                         frames_per_batch=fpb, total_frames=t),
    "sync-parallel4": lambda t: Collector(lambda: ParallelEnv(4, gym), policy(),
                                          frames_per_batch=fpb, total_frames=t),
    "sync-parallel8": lambda t: Collector(lambda: ParallelEnv(8, gym), policy(),
                                          frames_per_batch=fpb, total_frames=t),
    "multisync": lambda t: MultiSyncCollector([gym, gym], policy(), frames_per_batch=fpb,
                                              total_frames=t),
    "multiasync": lambda t: MultiAsyncCollector([gym, gym], policy(), frames_per_batch=fpb,
                                                total_frames=t),
    "sync-split": lambda t: Collector(gym, policy(), frames_per_batch=fpb, total_frames=t,
                                      split_trajs=True),
    "sync-rb": lambda t: Collector(gym_int, policy(), frames_per_batch=fpb, total_frames=t,
                                   replay_buffer=rb()),
    "multisync-rb": lambda t: MultiSyncCollector([gym_int, gym_int], policy(), frames_per_batch=fpb,
                                                 total_frames=t, replay_buffer=rb(True)),
}


if __name__ == "__main__":
    for key in rows:
        try:
            run(key, makers[key])
        except Exception as err:
            print(f"SKIP {key} {type(err).__name__}: {err}", flush=True)
"""


def torchrl_figures(python: str, frames: int, rows: list[str]) -> tuple[dict, str | None]:
    """TorchRL frames/s by row key, or a note saying why there are none."""
    return run_torchrl_script(python, TORCHRL_SNIPPET, "torchrl_collectors.py",
                              [str(frames), str(FRAMES_PER_BATCH), ",".join(rows)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=20000, help="timed frames per row")
    parser.add_argument(
        "--torchrl-frames",
        type=int,
        default=None,
        help="timed frames per TorchRL row (default: --frames)",
    )
    parser.add_argument(
        "--peers-python",
        default=default_peers_python(),
    )
    parser.add_argument("--no-peers", action="store_true", help="skip the TorchRL rows")
    parser.add_argument("--only", default=",".join(ROWS), help=f"comma-separated of {ROWS}")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds, each measuring the limits, streamrl and TorchRL in turn")
    args = parser.parse_args()
    rows = selected_rows(parser, args.only, ROWS)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    print(f"CartPole-v1, Linear(4,2)+argmax policy, {FRAMES_PER_BATCH} frames/batch, "
          f"{args.frames} timed frames per row, {args.rounds} round(s)", flush=True)
    limit_keys = sorted({ROW_LIMIT[r] for r in rows if r in ROW_LIMIT})
    limits: dict[str, list[float]] = {key: [] for key in limit_keys}
    ours: dict[str, list[float]] = {key: [] for key in rows}
    theirs: dict[str, list[float]] = {key: [] for key in rows}
    makers = streamrl_makers()
    for r in range(1, args.rounds + 1):
        for key in limit_keys:
            limits[key].append(LIMITS[key](args.frames))
            print(f"round {r} {'limit: ' + key:48s} {limits[key][-1]:10.0f} frames/s", flush=True)
        for key in rows:
            name, make = makers[key]
            ours[key].append(time_collector(make, args.frames))
            print(f"round {r} {name:48s} {ours[key][-1]:10.0f} frames/s", flush=True)
        if args.no_peers:
            continue
        got, note = torchrl_figures(args.peers_python, args.torchrl_frames or args.frames, rows)
        if note:
            print(f"(torchrl: {note})")
        for key, value in got.items():
            theirs[key].append(value)
            print(f"round {r} {'torchrl ' + key:48s} {value:10.0f} frames/s", flush=True)
    print(f"\n{'row':16s} {'streamrl':>10s} {'limit':>10s} {'share':>6s} {'torchrl':>10s} "
          f"{'ratio':>8s} {'rounds':>8s}")
    for key in rows:
        limit = limits.get(ROW_LIMIT.get(key, ""))
        lim = (f"{max(limit):10.0f} {statistics.median(a / b for a, b in zip(ours[key], limit)):6.2f}"
               if limit else f"{'-':>10s} {'':>6s}")
        if len(theirs[key]) == len(ours[key]):
            best, median = round_ratios(ours[key], theirs[key])
            peer = f"{max(theirs[key]):10.0f} {best:7.1f}x {median:7.1f}x"
        else:
            peer = f"{'n/a':>10s} {'':>8s} {'':>8s}"
        print(f"{key:16s} {max(ours[key]):10.0f} {lim} {peer}")


if __name__ == "__main__":
    main()
