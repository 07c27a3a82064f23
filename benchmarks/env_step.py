"""Env stepping throughput (frames/s): raw gymnasium, streamrl envs, and TorchRL from the same run.

    flock /tmp/streamrl-heavy.lock python benchmarks/env_step.py [--frames 20000]
        [--peers-python /tmp/peers/bin/python]

Rows (CartPole-v1 unless said otherwise, random actions, ``break_when_any_done=False``):

- gymnasium raw loop (``action_space.sample()``): the practical limit of one process;
- ``GymEnv.rollout``: random actions, written into preallocated buffers;
- ``GymEnv.rollout(policy=env.rand_action)``: the generic per-step loop (step, step_mdp,
  partial reset), the path any policy takes;
- ``SerialEnv(8).rollout`` and ``ParallelEnv(2).rollout`` (random: the workers run the
  rollout on their own; with ``policy=`` they step in lockstep, one message per step);
- Pendulum from pixels through ``ToTensorImage`` and ``Resize(84)``.

TorchRL rows run the same workloads in a subprocess with ``--peers-python`` (or
``$STREAMRL_PEERS_PYTHON``; default ``/tmp/peers/bin/python``) and are skipped with a note
when that interpreter has no torchrl.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable

import torch

torch.set_num_threads(1)

CARTPOLE = "CartPole-v1"


def timeit(name: str, fn: Callable[[int], int], frames: int) -> None:
    fn(min(frames, 1000))  # warm-up (and worker start-up for batched envs)
    t0 = time.perf_counter()
    done = fn(frames)
    dt = time.perf_counter() - t0
    print(f"{name:58s} {done / dt:12.0f} frames/s", flush=True)


def raw_gym(frames: int) -> int:
    import gymnasium as gym

    env = gym.make(CARTPOLE)
    env.reset(seed=0)
    space = env.action_space
    for _ in range(frames):
        _, _, term, trunc, _ = env.step(space.sample())
        if term or trunc:
            env.reset()
    return frames


def rollout_rows(make: Callable[[], object], policy: bool, chunk: int) -> Callable[[int], int]:
    env = make()
    env.set_seed(0)

    def run(frames: int) -> int:
        n = env.batch_size.numel() if env.batch_size else 1
        pol = env.rand_action if policy else None
        done = 0
        while done < frames:  # rollouts of at most `chunk` steps (pixels are big)
            steps = max(1, min(chunk, (frames - done) // n))
            done += env.rollout(steps, policy=pol, break_when_any_done=False).numel()
        return done

    return run


def raw_pixels(frames: int) -> int:
    import gymnasium as gym

    env = gym.make("Pendulum-v1", render_mode="rgb_array")
    env.reset(seed=0)
    space = env.action_space
    for _ in range(frames):
        _, _, term, trunc, _ = env.step(space.sample())
        env.render()
        if term or trunc:
            env.reset()
    return frames


def streamrl_rows(frames: int) -> list:
    from streamrl.envs import Compose, ParallelEnv, Resize, SerialEnv, ToTensorImage, TransformedEnv
    from streamrl.envs.libs.gym import GymEnv

    def pixels() -> TransformedEnv:
        base = GymEnv("Pendulum-v1", from_pixels=True)
        return TransformedEnv(base, Compose(ToTensorImage(), Resize(84)))

    envs = []

    def keep(env):  # closed at the end
        envs.append(env)
        return env

    rows = [
        ("streamrl GymEnv.rollout, random", lambda: keep(GymEnv(CARTPOLE)), False, frames),
        (
            "streamrl GymEnv.rollout, policy=rand_action (per step)",
            lambda: keep(GymEnv(CARTPOLE)),
            True,
            frames // 4,
        ),
        (
            "streamrl SerialEnv(8).rollout, random",
            lambda: keep(SerialEnv(8, lambda: GymEnv(CARTPOLE))),
            False,
            frames,
        ),
        (
            "streamrl SerialEnv(8).rollout, policy=rand_action",
            lambda: keep(SerialEnv(8, lambda: GymEnv(CARTPOLE))),
            True,
            frames // 4,
        ),
        (
            "streamrl ParallelEnv(2).rollout, random",
            lambda: keep(ParallelEnv(2, lambda: GymEnv(CARTPOLE))),
            False,
            frames,
        ),
        (
            "streamrl ParallelEnv(2).rollout, policy=rand_action (lockstep)",
            lambda: keep(ParallelEnv(2, lambda: GymEnv(CARTPOLE))),
            True,
            frames // 4,
        ),
        (
            "streamrl Pendulum pixels -> ToTensorImage -> Resize(84)",
            lambda: keep(pixels()),
            False,
            max(50, frames // 100),
        ),
    ]
    return rows, envs


TORCHRL_SNIPPET = r"""
import sys, time, torch
torch.set_num_threads(1)
frames = int(sys.argv[1])
from torchrl.envs import GymEnv, SerialEnv, ParallelEnv, TransformedEnv, Compose, ToTensorImage, Resize
def row(name, make, frames):
    env = make(); env.set_seed(0)
    n = env.batch_size.numel() if env.batch_size else 1
    env.rollout(max(1, min(frames, 1000) // n), break_when_any_done=False)
    t = time.perf_counter()
    out = env.rollout(max(1, frames // n), break_when_any_done=False)
    dt = time.perf_counter() - t
    print(f"{name:58s} {out.numel() / dt:12.0f} frames/s", flush=True)
    env.close()
if __name__ == "__main__":
    row("torchrl GymEnv.rollout, random", lambda: GymEnv("CartPole-v1"), frames)
    row("torchrl SerialEnv(8).rollout, random",
        lambda: SerialEnv(8, lambda: GymEnv("CartPole-v1")), frames)
    row("torchrl ParallelEnv(2).rollout, random",
        lambda: ParallelEnv(2, lambda: GymEnv("CartPole-v1"), mp_start_method="fork"),
        frames // 4)
    try:
        row("torchrl Pendulum pixels -> ToTensorImage -> Resize(84)",
            lambda: TransformedEnv(GymEnv("Pendulum-v1", from_pixels=True),
                                   Compose(ToTensorImage(), Resize(84, 84))),
            max(50, frames // 100))
    except ImportError as err:
        print(f"(torchrl pixels row skipped: {err})")
"""


def torchrl_rows(python: str, frames: int) -> None:
    if not os.path.exists(python):
        print(f"(torchrl rows skipped: {python} not found)")
        return
    check = subprocess.run([python, "-c", "import torchrl"], capture_output=True, text=True)
    if check.returncode != 0:
        print(f"(torchrl rows skipped: {python} cannot import torchrl)")
        return
    proc = subprocess.run(
        [python, "-c", TORCHRL_SNIPPET, str(frames)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        print(f"(torchrl run failed: {proc.stderr.strip().splitlines()[-1:]})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument(
        "--peers-python",
        default=os.environ.get("STREAMRL_PEERS_PYTHON", "/tmp/peers/bin/python"),
    )
    parser.add_argument("--no-peers", action="store_true", help="skip the TorchRL rows")
    args = parser.parse_args()
    print(f"frames per row: {args.frames} (pixels row: {max(50, args.frames // 100)})")
    timeit("gymnasium raw loop, random action", raw_gym, args.frames)
    timeit(
        "gymnasium raw Pendulum loop + render() (pixels limit)",
        raw_pixels,
        max(50, args.frames // 100),
    )
    rows, envs = streamrl_rows(args.frames)
    try:
        for name, make, policy, frames in rows:
            chunk = 50 if "pixels" in name else 20000
            timeit(name, rollout_rows(make, policy, chunk), frames)
    finally:
        for env in envs:
            env.close()
    if not args.no_peers:
        torchrl_rows(args.peers_python, args.frames)


if __name__ == "__main__":
    main()
