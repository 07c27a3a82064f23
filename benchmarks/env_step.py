"""Env stepping throughput (frames/s): raw gymnasium, streamrl envs, and TorchRL from the same run.

    flock /tmp/streamrl-heavy.lock python benchmarks/env_step.py [--frames 20000]
        [--peers-python /tmp/peers/bin/python]

Rows (CartPole-v1 unless said otherwise, random actions, ``break_when_any_done=False``):

- gymnasium raw loop (``action_space.sample()``): the practical limit of one process;
- ``GymEnv.rollout``: random actions, written into preallocated buffers;
- ``GymEnv.rollout(policy=env.rand_action)``: the generic per-step loop (step, step_mdp,
  partial reset), the path any policy takes;
- ``SerialEnv(8).rollout`` and ``ParallelEnv(2).rollout`` (random: the workers run the
  rollout on their own; with ``policy=`` they step in lockstep, one command per step);
- ``ParallelEnv(2)`` stepped in lockstep with a small torch policy (``Linear(4, 2)`` + argmax
  in a ``TensorDictModule``), through ``rollout(policy=...)``, next to TorchRL's
  ``ParallelEnv(2).rollout(policy=...)`` and ``Collector(ParallelEnv(2))`` with the same
  policy (the ratio against the latter is printed at the end);
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
import tempfile
import time
from collections.abc import Callable

import torch

torch.set_num_threads(1)

CARTPOLE = "CartPole-v1"


def timeit(name: str, fn: Callable[[int], int], frames: int) -> float:
    fn(min(frames, 1000))  # warm-up (and worker start-up for batched envs)
    t0 = time.perf_counter()
    done = fn(frames)
    dt = time.perf_counter() - t0
    print(f"{name:58s} {done / dt:12.0f} frames/s", flush=True)
    return done / dt


def torch_policy():
    """``Linear(4, 2)`` then argmax, in a TensorDictModule (same in the TorchRL snippet)."""
    from tensordict.nn import TensorDictModule
    from torch import nn

    class ArgmaxLinear(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.lin = nn.Linear(4, 2)

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return self.lin(obs).argmax(-1)

    return TensorDictModule(ArgmaxLinear(), in_keys=["observation"], out_keys=["action"])


PARALLEL_POLICY_ROW = "streamrl ParallelEnv(2).rollout, torch policy (lockstep)"


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


def rollout_rows(make: Callable[[], object], policy: object, chunk: int) -> Callable[[int], int]:
    env = make()
    env.set_seed(0)

    def run(frames: int) -> int:
        n = env.batch_size.numel() if env.batch_size else 1
        pol = env.rand_action if policy is True else (policy or None)
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
        ("streamrl GymEnv.rollout, random", lambda: keep(GymEnv(CARTPOLE, categorical_action_encoding=True)), False, frames),
        (
            "streamrl GymEnv.rollout, policy=rand_action (per step)",
            lambda: keep(GymEnv(CARTPOLE, categorical_action_encoding=True)),
            True,
            frames // 4,
        ),
        (
            "streamrl SerialEnv(8).rollout, random",
            lambda: keep(SerialEnv(8, lambda: GymEnv(CARTPOLE, categorical_action_encoding=True))),
            False,
            frames,
        ),
        (
            "streamrl SerialEnv(8).rollout, policy=rand_action",
            lambda: keep(SerialEnv(8, lambda: GymEnv(CARTPOLE, categorical_action_encoding=True))),
            True,
            frames // 4,
        ),
        (
            "streamrl ParallelEnv(2).rollout, random",
            lambda: keep(ParallelEnv(2, lambda: GymEnv(CARTPOLE, categorical_action_encoding=True))),
            False,
            frames,
        ),
        (
            "streamrl ParallelEnv(2).rollout, policy=rand_action (lockstep)",
            lambda: keep(ParallelEnv(2, lambda: GymEnv(CARTPOLE, categorical_action_encoding=True))),
            True,
            frames // 4,
        ),
        (
            PARALLEL_POLICY_ROW,
            lambda: keep(ParallelEnv(2, lambda: GymEnv(CARTPOLE, categorical_action_encoding=True))),
            torch_policy(),
            frames // 2,
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
def torch_policy():
    from tensordict.nn import TensorDictModule
    from torch import nn
    class ArgmaxLinear(nn.Module):
        def __init__(self):
            super().__init__(); torch.manual_seed(0); self.lin = nn.Linear(4, 2)
        def forward(self, obs):
            return self.lin(obs).argmax(-1)
    return TensorDictModule(ArgmaxLinear(), in_keys=["observation"], out_keys=["action"])
def policy_rows(frames):
    env = ParallelEnv(2, lambda: GymEnv("CartPole-v1"), mp_start_method="fork")
    env.set_seed(0); pol = torch_policy()
    env.rollout(200, pol, break_when_any_done=False)
    t = time.perf_counter()
    out = env.rollout(max(1, frames // 2), pol, break_when_any_done=False)
    dt = time.perf_counter() - t
    print(f"{'torchrl ParallelEnv(2).rollout, torch policy (lockstep)':58s} "
          f"{out.numel() / dt:12.0f} frames/s", flush=True)
    env.close()
    from torchrl.collectors import Collector
    c = Collector(lambda: ParallelEnv(2, lambda: GymEnv("CartPole-v1")), torch_policy(),
                  frames_per_batch=1000, total_frames=frames + 1000)
    it = iter(c); next(it)
    t = time.perf_counter(); n = 0
    for b in it:
        n += b.numel()
    dt = time.perf_counter() - t
    print(f"{'torchrl Collector(ParallelEnv(2)), torch policy':58s} {n / dt:12.0f} frames/s",
          flush=True)
    c.shutdown()
if __name__ == "__main__":
    policy_rows(max(2000, frames // 8))
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


def torchrl_rows(python: str, frames: int) -> dict[str, float]:
    """Runs and prints the TorchRL rows; returns frames/s by row name."""
    if not os.path.exists(python):
        print(f"(torchrl rows skipped: {python} not found)")
        return {}
    check = subprocess.run([python, "-c", "import torchrl"], capture_output=True, text=True)
    if check.returncode != 0:
        print(f"(torchrl rows skipped: {python} cannot import torchrl)")
        return {}
    # a file, not ``-c``: TorchRL's collector may start processes that re-import __main__
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "torchrl_env_step.py")
        with open(script, "w") as f:
            f.write(TORCHRL_SNIPPET)
        proc = subprocess.run(
            [python, script, str(frames)], capture_output=True, text=True, timeout=1800
        )
    sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        print(f"(torchrl run failed: {proc.stderr.strip().splitlines()[-1:]})")
    out = {}
    for line in proc.stdout.splitlines():
        if line.endswith("frames/s"):
            name, value = line[:58].strip(), line[58:].split()[0]
            out[name] = float(value)
    return out


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
    ours = {}
    try:
        for name, make, policy, frames in rows:
            chunk = 50 if "pixels" in name else 20000
            ours[name] = timeit(name, rollout_rows(make, policy, chunk), frames)
    finally:
        for env in envs:
            env.close()
    if args.no_peers:
        return
    theirs = torchrl_rows(args.peers_python, args.frames)
    mine = ours[PARALLEL_POLICY_ROW]
    for name in (
        "torchrl ParallelEnv(2).rollout, torch policy (lockstep)",
        "torchrl Collector(ParallelEnv(2)), torch policy",
    ):
        if name in theirs:
            print(f"ParallelEnv(2) lockstep with a torch policy: {mine:.0f} frames/s = "
                  f"{mine / theirs[name]:.1f}x {name}")


if __name__ == "__main__":
    main()
