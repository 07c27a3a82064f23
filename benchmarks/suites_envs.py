"""Random-action collection on the benchmark suites (frames/s), beside each simulator's own loop.

    flock /tmp/streamrl-heavy.lock python benchmarks/suites_envs.py [--frames 5000]
        [--only cheetah,dmc,pong]

Rows (random actions; env creation, worker start-up and a warm-up of up to 1000 frames are
not timed; collectors take 1000 frames per batch):

- ``cheetah``: gymnasium HalfCheetah-v5: the raw gymnasium loop (actions drawn with numpy a
  block at a time: the practical limit of one process), then ``SyncDataCollector`` over ``GymEnv``,
  ``SerialEnv(8)`` and ``ParallelEnv(2)``;
- ``dmc``: dm_control cheetah-run: the raw dm_control loop (``env.step``, actions drawn so),
  then ``SyncDataCollector(DMControlEnv("cheetah", "run"))``;
- ``pong``: gymnasium ALE/Pong-v5 (frame skip 4, 210x160 RGB frames): the raw loop, then
  ``SyncDataCollector(GymEnv("ALE/Pong-v5"))`` (frames are env steps).

Each row is the best of 3 timed runs; each streamrl row prints its share of the raw loop.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

torch.set_num_threads(1)


# A row is built by a setup function returning ``(run, close)``: ``run(n)`` takes at least
# ``n`` frames and returns how many it took; the setup (env creation, first resets, worker
# start-up) and a warm-up run are not timed.
Row = Callable[[], tuple[Callable[[int], int], Callable[[], None]]]


def rate(setup: Row, frames: int, repeats: int = 3) -> float:
    """The best of ``repeats`` timed runs (the machine is shared: the best is the least
    disturbed)."""
    run, close = setup()
    try:
        run(min(frames, 1000))
        best = 0.0
        for _ in range(repeats):
            t0 = time.perf_counter()
            done = run(frames)
            best = max(best, done / (time.perf_counter() - t0))
        return best
    finally:
        close()


def random_actions(low: np.ndarray | None, high: np.ndarray | None, n: int | None,
                   dtype: np.dtype) -> Callable[[int], np.ndarray]:
    """Uniform random actions drawn a block at a time (gymnasium's ``space.sample()`` costs
    ~50 us a call, more than a MuJoCo step: drawing per step would understate the limit)."""
    rng = np.random.default_rng(0)
    if n is not None:
        return lambda k: rng.integers(0, n, k)
    return lambda k: rng.uniform(low, high, (k, *np.shape(low))).astype(dtype)


def raw_gym(env_id: str) -> Row:
    def setup() -> tuple[Callable[[int], int], Callable[[], None]]:
        import ale_py
        import gymnasium as gym

        gym.register_envs(ale_py)
        env = gym.make(env_id)
        env.reset(seed=0)
        space = env.action_space
        if isinstance(space, gym.spaces.Discrete):
            draw = random_actions(None, None, int(space.n), space.dtype)
        else:
            draw = random_actions(space.low, space.high, None, space.dtype)

        def run(frames: int) -> int:
            for action in draw(frames):
                _, _, term, trunc, _ = env.step(action)
                if term or trunc:
                    env.reset()
            return frames

        return run, env.close

    return setup


def raw_dm_control() -> tuple[Callable[[int], int], Callable[[], None]]:
    from dm_control import suite

    env = suite.load("cheetah", "run", task_kwargs={"random": 0})
    spec = env.action_spec()
    draw = random_actions(spec.minimum, spec.maximum, None, spec.dtype)
    env.reset()

    def run(frames: int) -> int:
        for action in draw(frames):
            if env.step(action).last():
                env.reset()
        return frames

    return run, env.close


def batches(collector: object) -> tuple[Callable[[int], int], Callable[[], None]]:
    """``run``/``close`` over a collector's batches (their ``numel()`` counts the steps)."""
    it = iter(collector)  # type: ignore[call-overload]

    def run(frames: int) -> int:
        done = 0
        while done < frames:
            done += next(it).numel()
        return done

    return run, collector.shutdown  # type: ignore[attr-defined]


def collect(make_env: Callable[[], object]) -> Row:
    def setup() -> tuple[Callable[[int], int], Callable[[], None]]:
        from streamrl.collectors import SyncDataCollector

        return batches(SyncDataCollector(make_env, None, frames_per_batch=1000,
                                         total_frames=-1))

    return setup


def cheetah_rows() -> list[tuple[str, Row]]:
    from streamrl.envs import GymEnv, ParallelEnv, SerialEnv

    def make() -> GymEnv:
        return GymEnv("HalfCheetah-v5")

    return [
        ("HalfCheetah-v5 raw gymnasium loop", raw_gym("HalfCheetah-v5")),
        ("HalfCheetah-v5 SyncDataCollector(GymEnv)", collect(make)),
        ("HalfCheetah-v5 SyncDataCollector(SerialEnv(8))", collect(lambda: SerialEnv(8, make))),
        ("HalfCheetah-v5 SyncDataCollector(ParallelEnv(2))",
         collect(lambda: ParallelEnv(2, make))),
    ]


def dmc_rows() -> list[tuple[str, Row]]:
    from streamrl.envs import DMControlEnv

    return [
        ("dm_control cheetah-run raw dm_control loop", raw_dm_control),
        ("dm_control cheetah-run SyncDataCollector(DMControlEnv)",
         collect(lambda: DMControlEnv("cheetah", "run"))),
    ]


def pong_rows() -> list[tuple[str, Row]]:
    from streamrl.envs import GymEnv

    return [
        ("ALE/Pong-v5 raw gymnasium loop", raw_gym("ALE/Pong-v5")),
        ("ALE/Pong-v5 SyncDataCollector(GymEnv)", collect(lambda: GymEnv("ALE/Pong-v5"))),
    ]


GROUPS = {"cheetah": cheetah_rows, "dmc": dmc_rows, "pong": pong_rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5000, help="timed frames per row")
    parser.add_argument("--only", default=",".join(GROUPS),
                        help=f"comma-separated groups among {sorted(GROUPS)}")
    args = parser.parse_args()
    only = [g for g in args.only.split(",") if g]
    unknown = sorted(set(only) - set(GROUPS))
    if unknown:
        parser.error(f"unknown groups {unknown}: expected some of {sorted(GROUPS)}")
    for group in only:
        limit = None
        for name, setup in GROUPS[group]():
            fps = rate(setup, args.frames)
            share = "" if limit is None else f"  ({fps / limit:.2f} of the raw loop)"
            limit = fps if limit is None else limit
            print(f"{name:58s} {fps:9.0f} frames/s{share}", flush=True)


if __name__ == "__main__":
    main()
