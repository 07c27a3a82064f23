"""streamrl beside TorchRL 0.14.1 and Stable-Baselines3 2.9.2 on the standard suites, one run.

    flock /tmp/streamrl-heavy.lock python benchmarks/suites.py [--frames 3000] [--steps 2000]
        [--parts collect,updates] [--full] [--peers-python /tmp/peers/bin/python] [--no-peers]
    flock /tmp/streamrl-heavy.lock python benchmarks/suites.py --learning [--budget-scale 1.0]
        [--seeds 0 1 2]

Part ``collect`` (frames/s, agent steps; env creation, worker start-up and a warm-up of up to
1000 steps are not timed; each row is the best of ``--repeats`` timed runs):

- HalfCheetah-v5 with the same 64x64 tanh MLP torch policy (seeded, so every row plays the
  same weights; float64 observations cast to float32): the raw gymnasium loop (the limit of
  one process), streamrl ``SyncDataCollector`` and TorchRL's ``Collector`` over ``GymEnv``,
  ``SerialEnv(8)`` and ``ParallelEnv(2)`` (1000 frames per batch), and SB3's vectorized envs
  stepped by the same policy (``DummyVecEnv(1)``, ``DummyVecEnv(8)``, ``SubprocVecEnv(2)``:
  the loop of SB3's ``collect_rollouts`` without its buffer);
- PongNoFrameskip-v4 (``ALE/Pong-v5`` skips 4 frames itself: SB3's skip would make it 16)
  with the DQN preprocessing (no-op starts 30, skip 4 with max-pooling where the library
  does it, gray 84x84, 4 stacked frames) and a tiny CNN (one 8x8/4 convolution to 8
  channels, a linear layer to the 6 actions, argmax): the raw gymnasium loop
  (``AtariPreprocessing`` + ``FrameStackObservation``), ``streamrl.envs.make_atari_env`` with
  1 env and 2 worker processes (``parallel=True``), SB3's ``make_atari_env`` +
  ``VecFrameStack`` (``DummyVecEnv(1)``, ``SubprocVecEnv(2)``) and TorchRL's ``GymEnv``
  (``frame_skip=4``) + ``NoopResetEnv``, ``ToTensorImage``, ``GrayScale``, ``Resize``,
  ``CatFrames`` (1 env, ``ParallelEnv(2)``).

Part ``updates`` (``benchmarks/suites_training.py``): SAC and TD3 on HalfCheetah-v5, env
steps/s and gradient updates/s over ``--steps`` steps after ``learning_starts`` (1000 here;
``--full``: 20k steps), 256x256 networks, batch 256, one update per step: streamrl's
``sac_mujoco`` / ``td3_mujoco`` graphs in lockstep (SB3's order) and in their concurrent
default, beside SB3's SAC / TD3 with the same hyper-parameters.

``--learning`` (not run by default): SAC HalfCheetah-v5 at 50k steps (rl-zoo), PPO
HalfCheetah-v5 at 200k (CleanRL's, streamrl's ``ppo_mujoco``) and PPO Pong at 200k agent
steps, each beside SB3 with the same budget and hyper-parameters; ``--budget-scale 0.01``
is a smoke run.

TorchRL runs in a subprocess (``--peers-python``, or ``$STREAMRL_PEERS_PYTHON``; default
``/tmp/peers/bin/python``: TorchRL 0.14.1 pins tensordict below 0.15, so it cannot share
streamrl's venv); SB3 and the raw loops run here. A row that could not run says why.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

# a row's setup (``setup() -> (run, close)``: ``run(n)`` takes at least ``n`` steps and returns
# how many), its timing and the collector runner are the random-action rows' (suites_envs.py,
# this folder; it needs only numpy and torch, so the peers' venv imports it too)
from suites_envs import Row as Setup
from suites_envs import batches, rate
from torch import nn

torch.set_num_threads(1)

CHEETAH = "HalfCheetah-v5"
PONG = "PongNoFrameskip-v4"
FRAMES_PER_BATCH = 1000
PARTS = ("collect", "updates")

SYSTEMS = ("streamrl", "TorchRL 0.14.1", "SB3 2.9.2", "raw gymnasium")
# (suite, layout) -> what streamrl must reach against each other system's row of that layout
TARGETS = {"TorchRL 0.14.1": 5.0, "SB3 2.9.2": 1.0, "raw gymnasium": 0.5}


@dataclass
class Figure:
    """One measured (or not measured) row: ``value`` is None with ``note`` saying why."""

    suite: str
    layout: str
    system: str
    value: float | None
    note: str = ""

    @property
    def key(self) -> str:
        return f"{self.suite}|{self.layout}|{self.system}"


# ---------------------------------------------------------------------------------- tables
def format_table(title: str, unit: str, figures: Sequence[Figure], reference: str) -> str:
    """A text table of ``figures`` (grouped by suite) with a ratio column: each row over
    the row of system ``reference`` in the same suite and layout (or, for the raw loop
    which has one layout, the suite's only ``reference`` row).

    >>> rows = [Figure("Cheetah", "1 env", "raw gymnasium", 10000.0),
    ...         Figure("Cheetah", "1 env", "streamrl", 8000.0, "a note"),
    ...         Figure("Cheetah", "1 env", "TorchRL 0.14.1", None, "no torchrl")]
    >>> print(format_table("Collection", "frames/s", rows, "raw gymnasium"))
    Collection (frames/s; ratio: row / raw gymnasium)
    suite    layout  system          frames/s  ratio
    Cheetah  1 env   raw gymnasium     10,000   1.00
    Cheetah  1 env   streamrl           8,000   0.80  a note
    Cheetah  1 env   TorchRL 0.14.1         -         not measured (no torchrl)
    """
    refs: dict[tuple[str, str], float] = {}
    for f in figures:
        if f.system == reference and f.value is not None:
            refs[(f.suite, f.layout)] = f.value
            refs.setdefault((f.suite, ""), f.value)
    header = ("suite", "layout", "system", unit, "ratio", "")
    lines = []
    for f in figures:
        if f.value is None:
            lines.append((f.suite, f.layout, f.system, "-", "", f"not measured ({f.note})"))
            continue
        ref = refs.get((f.suite, f.layout), refs.get((f.suite, "")))
        ratio = "" if ref is None else f"{f.value / ref:.2f}"
        value = f"{f.value:,.0f}" if f.value >= 100 else f"{f.value:.1f}"
        lines.append((f.suite, f.layout, f.system, value, ratio, f.note))
    widths = [max(len(str(r[i])) for r in [header, *lines]) for i in range(3)]
    vw = max(len(unit), *(len(r[3]) for r in lines)) if lines else len(unit)

    def fmt(r: tuple[str, ...]) -> str:
        left = "  ".join(str(r[i]).ljust(widths[i]) for i in range(3))
        return f"{left}  {r[3]:>{vw}}  {r[4]:>5}  {r[5]}".rstrip()

    return "\n".join([f"{title} ({unit}; ratio: row / {reference})", fmt(header),
                      *(fmt(r) for r in lines)])


def format_targets(figures: Sequence[Figure], targets: dict[str, float] = TARGETS) -> str:
    """For each streamrl row, its ratio to every other system's row of the same suite and
    layout (the raw loop: the suite's one row), against the target.

    >>> rows = [Figure("Cheetah", "1 env", "raw gymnasium", 100.0),
    ...         Figure("Cheetah", "8 envs", "streamrl", 80.0),
    ...         Figure("Cheetah", "8 envs", "TorchRL 0.14.1", 10.0)]
    >>> print(format_targets(rows))
    Cheetah  8 envs  streamrl / TorchRL 0.14.1: 8.00x (target >= 5x: met)
    Cheetah  8 envs  streamrl / raw gymnasium: 0.80x (target >= 0.5x: met)
    """
    by_key = {f.key: f for f in figures}
    raw = {f.suite: f for f in figures if f.system == "raw gymnasium" and f.value is not None}
    lines = []
    for f in figures:
        if f.system != "streamrl" or f.value is None:
            continue
        for system, target in targets.items():
            other = raw.get(f.suite) if system == "raw gymnasium" else by_key.get(
                f"{f.suite}|{f.layout}|{system}")
            if other is None or other.value is None:
                continue
            ratio = f.value / other.value
            verdict = "met" if ratio >= target else "missed"
            lines.append(f"{f.suite}  {f.layout}  streamrl / {system}: {ratio:.2f}x "
                         f"(target >= {target:g}x: {verdict})")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- policies
def cheetah_mlp() -> nn.Module:
    """The 64x64 tanh MLP every HalfCheetah row plays (seeded: the same weights everywhere)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(17, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                         nn.Linear(64, 6), nn.Tanh())


class TinyCNN(nn.Module):
    """Stacked frames ``[..., 4, 84, 84]`` (uint8, or float in [0, 1]) -> the argmax of 6
    action logits (an int64 index)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(4, 8, 8, stride=4)
        self.head = nn.Linear(8 * 20 * 20, 6)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.float() / 255 if frames.dtype == torch.uint8 else frames.float()
        batch = x.shape[:-3]
        x = torch.relu(self.conv(x.reshape(-1, 4, 84, 84)))
        return self.head(x.flatten(1)).argmax(-1).reshape(batch)


# ---------------------------------------------------------------------------------- timing
# A row's setup returns ``(run, close)``: ``run(n)`` takes at least ``n`` agent steps and
# returns how many it took; the setup and a warm-up run are not timed.
# ---------------------------------------------------------------------------------- raw loops
def _gym() -> object:
    import ale_py
    import gymnasium as gym

    gym.register_envs(ale_py)
    return gym


def _policy_loop(env: Any, act: Callable[[Any], Any]) -> tuple[Callable[[int], int],
                                                                Callable[[], None]]:
    """The raw gymnasium loop: ``env.step(act(observation))``, resetting at episode ends."""
    obs = [env.reset(seed=0)[0]]

    @torch.no_grad()
    def run(frames: int) -> int:
        o = obs[0]
        for _ in range(frames):
            o, _, term, trunc, _ = env.step(act(o))
            if term or trunc:
                o, _ = env.reset()
        obs[0] = o
        return frames

    return run, env.close


def raw_cheetah() -> tuple[Callable[[int], int], Callable[[], None]]:
    mlp = cheetah_mlp()
    return _policy_loop(_gym().make(CHEETAH),  # type: ignore[attr-defined]
                        lambda o: mlp(torch.as_tensor(o, dtype=torch.float32)).numpy())


def raw_pong() -> tuple[Callable[[int], int], Callable[[], None]]:
    gym = _gym()
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    env = FrameStackObservation(AtariPreprocessing(gym.make(PONG), noop_max=30, frame_skip=4,  # type: ignore[attr-defined]
                                                   screen_size=84), 4)
    cnn = TinyCNN()
    return _policy_loop(env, lambda o: int(cnn(torch.as_tensor(o))))


# ---------------------------------------------------------------------------------- SB3
def _gym_pong(**kwargs: object) -> object:
    return _gym().make(PONG, **kwargs)  # type: ignore[attr-defined]


def sb3_steps(make_vec: Callable[[], object], policy: Callable[[np.ndarray], np.ndarray]) -> Setup:
    """An SB3 VecEnv stepped by ``policy`` (numpy observations in, numpy actions out)."""

    def setup() -> tuple[Callable[[int], int], Callable[[], None]]:
        vec = make_vec()
        obs = [vec.reset()]  # type: ignore[attr-defined]
        n = vec.num_envs  # type: ignore[attr-defined]

        @torch.no_grad()
        def run(frames: int) -> int:
            o, done = obs[0], 0
            while done < frames:
                o, _, _, _ = vec.step(policy(o))  # type: ignore[attr-defined]
                done += n
            obs[0] = o
            return done

        return run, vec.close  # type: ignore[attr-defined]

    return setup


def sb3_cheetah(n: int, subproc: bool) -> Setup:
    gym = _gym()
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    mlp = cheetah_mlp()
    fns = [functools.partial(gym.make, CHEETAH)] * n  # type: ignore[attr-defined]
    return sb3_steps(lambda: SubprocVecEnv(fns) if subproc else DummyVecEnv(fns),
                     lambda o: mlp(torch.as_tensor(o, dtype=torch.float32)).numpy())


def sb3_pong(n: int, subproc: bool) -> Setup:
    _gym()
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecFrameStack

    cnn = TinyCNN()
    cls = SubprocVecEnv if subproc else DummyVecEnv
    # SB3's frames are channel-last [n, 84, 84, 4]; a callable env id: SB3's worker processes
    # do not register ale-py's ids themselves
    return sb3_steps(lambda: VecFrameStack(make_atari_env(_gym_pong, n_envs=n, seed=0,
                                                          vec_env_cls=cls), 4),
                     lambda o: cnn(torch.as_tensor(o).permute(0, 3, 1, 2)).numpy())


# ---------------------------------------------------------------------------------- streamrl
def streamrl_cheetah(layout: str) -> Setup:
    def setup() -> tuple[Callable[[int], int], Callable[[], None]]:
        from tensordict.nn import TensorDictModule

        from streamrl.collectors import SyncDataCollector
        from streamrl.envs import DoubleToFloat, GymEnv, ParallelEnv, SerialEnv, TransformedEnv

        def one() -> TransformedEnv:
            return TransformedEnv(GymEnv(CHEETAH), DoubleToFloat())

        make = {"1 env": one, "8 envs, 1 process": lambda: SerialEnv(8, one),
                "2 envs, 2 processes": lambda: ParallelEnv(2, one)}[layout]
        policy = TensorDictModule(cheetah_mlp(), in_keys=["observation"], out_keys=["action"])
        return batches(SyncDataCollector(make, policy, frames_per_batch=FRAMES_PER_BATCH,
                                         total_frames=-1))

    return setup


def streamrl_pong(num_envs: int) -> Setup:
    def setup() -> tuple[Callable[[int], int], Callable[[], None]]:
        from tensordict.nn import TensorDictModule

        from streamrl.collectors import SyncDataCollector
        from streamrl.envs import make_atari_env

        policy = TensorDictModule(TinyCNN(), in_keys=["pixels"], out_keys=["action"])
        return batches(SyncDataCollector(
            lambda: make_atari_env(PONG, num_envs, seed=0, parallel=num_envs > 1,
                                   categorical_action_encoding=True),
            policy, frames_per_batch=FRAMES_PER_BATCH, total_frames=-1))

    return setup


# ---------------------------------------------------------------------------------- TorchRL
def torchrl_cheetah(layout: str) -> Setup:
    def setup() -> tuple[Callable[[int], int], Callable[[], None]]:
        from tensordict.nn import TensorDictModule
        from torchrl.collectors import Collector
        from torchrl.envs import DoubleToFloat, GymEnv, ParallelEnv, SerialEnv, TransformedEnv

        one = functools.partial(_torchrl_cheetah_env, TransformedEnv, GymEnv, DoubleToFloat)
        make = {"1 env": one, "8 envs, 1 process": lambda: SerialEnv(8, one),
                "2 envs, 2 processes": lambda: ParallelEnv(2, one)}[layout]
        policy = TensorDictModule(cheetah_mlp(), in_keys=["observation"], out_keys=["action"])
        return batches(Collector(make, policy, frames_per_batch=FRAMES_PER_BATCH,
                                 total_frames=-1))

    return setup


def _torchrl_cheetah_env(transformed: type, gym_env: type, to_float: type) -> object:
    return transformed(gym_env(CHEETAH), to_float())


def torchvision_missing() -> str | None:
    """Why TorchRL's ``Resize`` cannot run here (it needs torchvision), or None."""
    try:
        import torchvision  # noqa: F401
    except (ImportError, RuntimeError) as err:  # a wheel built for another torch raises
        return f"{type(err).__name__}: {err}"[:80]
    return None


def _torchrl_pong_env() -> object:
    """TorchRL's Atari stack without the frame stack: ``GymEnv(frame_skip=4)`` +
    ``NoopResetEnv``, ``ToTensorImage``, ``GrayScale``, ``Resize``. Without torchvision
    (``Resize`` needs it), gymnasium's ``AtariPreprocessing`` inside a ``GymWrapper``, with an
    ``UnsqueezeTransform`` giving the frame its channel."""
    from torchrl.envs import (
        Compose,
        GrayScale,
        GymEnv,
        GymWrapper,
        NoopResetEnv,
        Resize,
        ToTensorImage,
        TransformedEnv,
        UnsqueezeTransform,
    )

    if torchvision_missing() is None:
        return TransformedEnv(GymEnv(PONG, frame_skip=4, categorical_action_encoding=True),
                              Compose(NoopResetEnv(30, random=True), ToTensorImage(),
                                      GrayScale(), Resize(84, 84)))
    from gymnasium.wrappers import AtariPreprocessing

    gym = _gym()
    env = AtariPreprocessing(gym.make(PONG), noop_max=30, frame_skip=4, screen_size=84)  # type: ignore[attr-defined]
    wrapped = GymWrapper(env, categorical_action_encoding=True)
    key = next(iter(wrapped.observation_spec.keys()))
    return TransformedEnv(wrapped, UnsqueezeTransform(-3, in_keys=[key], out_keys=["pixels"]))


def torchrl_pong(num_envs: int) -> Setup:
    def setup() -> tuple[Callable[[int], int], Callable[[], None]]:
        from tensordict.nn import TensorDictModule
        from torchrl.collectors import Collector
        from torchrl.envs import CatFrames, ParallelEnv, TransformedEnv

        def make() -> object:
            base = _torchrl_pong_env() if num_envs == 1 else ParallelEnv(num_envs, _torchrl_pong_env)
            return TransformedEnv(base, CatFrames(4, dim=-3, in_keys=["pixels"]))

        policy = TensorDictModule(TinyCNN(), in_keys=["pixels"], out_keys=["action"])
        return batches(Collector(make, policy, frames_per_batch=FRAMES_PER_BATCH,
                                 total_frames=-1))

    return setup


# ---------------------------------------------------------------------------------- rows
CHEETAH_LAYOUTS = ("1 env", "8 envs, 1 process", "2 envs, 2 processes")
PONG_LAYOUTS = ("1 env", "2 envs, 2 processes")
SB3_CHEETAH = {"1 env": (1, False), "8 envs, 1 process": (8, False),
               "2 envs, 2 processes": (2, True)}


def collection_rows(system: str) -> list[tuple[Figure, Setup]]:
    """The collection rows of ``system`` (one of :data:`SYSTEMS`), not yet measured."""
    rows: list[tuple[str, str, Setup]] = []
    if system == "raw gymnasium":
        rows = [(CHEETAH, "1 env", raw_cheetah), (PONG, "1 env", raw_pong)]
    elif system == "streamrl":
        rows = [(CHEETAH, lay, streamrl_cheetah(lay)) for lay in CHEETAH_LAYOUTS]
        rows += [(PONG, lay, streamrl_pong(n)) for lay, n in zip(PONG_LAYOUTS, (1, 2))]
    elif system == "SB3 2.9.2":
        rows = [(CHEETAH, lay, functools.partial(_lazy, sb3_cheetah, *SB3_CHEETAH[lay]))
                for lay in CHEETAH_LAYOUTS]
        rows += [(PONG, lay, functools.partial(_lazy, sb3_pong, n, n > 1))
                 for lay, n in zip(PONG_LAYOUTS, (1, 2))]
    elif system == "TorchRL 0.14.1":
        rows = [(CHEETAH, lay, torchrl_cheetah(lay)) for lay in CHEETAH_LAYOUTS]
        rows += [(PONG, lay, torchrl_pong(n)) for lay, n in zip(PONG_LAYOUTS, (1, 2))]
    else:
        raise ValueError(f"unknown system {system!r}: expected one of {SYSTEMS}")
    return [(Figure(suite, layout, system, None), setup) for suite, layout, setup in rows]


def _lazy(make: Callable[..., Setup], *args: object) -> tuple[Callable[[int], int],
                                                               Callable[[], None]]:
    """Build the setup only when the row runs (SB3 imports stay out of the row list)."""
    return make(*args)()


def measure(rows: list[tuple[Figure, Setup]], frames: int, repeats: int,
            emit: Callable[[Figure], None]) -> list[Figure]:
    """Time each row; a row that fails is kept with the error as its note."""
    out = []
    for figure, setup in rows:
        try:
            figure.value = rate(setup, frames, repeats)
        except Exception as err:  # a broken row must not stop the others
            figure.note = f"{type(err).__name__}: {err}"[:160]
        emit(figure)
        out.append(figure)
    return out


def peer_figures(python: str, frames: int, repeats: int) -> tuple[list[Figure], str | None]:
    """TorchRL's collection rows, measured by this script in ``python`` (``--peer-rows``)."""
    if not os.path.exists(python):
        return [], f"{python} not found"
    check = subprocess.run([python, "-c", "import torchrl"], capture_output=True, text=True)
    if check.returncode != 0:
        return [], f"{python} cannot import torchrl"
    proc = subprocess.run([python, os.path.abspath(__file__), "--peer-rows", "--frames",
                           str(frames), "--repeats", str(repeats)],
                          capture_output=True, text=True, timeout=3600)
    figures = [Figure(**json.loads(line[len("FIGURE "):]))
               for line in proc.stdout.splitlines() if line.startswith("FIGURE ")]
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return figures, f"the TorchRL run failed: {tail}"
    return figures, None


def run_collection(args: argparse.Namespace) -> list[Figure]:
    def show(f: Figure) -> None:
        value = "-" if f.value is None else f"{f.value:,.0f}"
        print(f"  {f.suite} | {f.layout} | {f.system}: {value} {f.note}", flush=True)

    print(f"Part 1: collection, {args.frames} timed agent steps per row, best of "
          f"{args.repeats}", flush=True)
    figures = []
    for system in ("raw gymnasium", "streamrl", "SB3 2.9.2"):
        figures += measure(collection_rows(system), args.frames, args.repeats, show)
    torchrl = [f for f, _ in collection_rows("TorchRL 0.14.1")]
    note = "--no-peers"
    if not args.no_peers:
        measured, note = peer_figures(args.peers_python, args.frames, args.repeats)
        found = {f.key: f for f in measured}
        torchrl = [found.get(f.key, f) for f in torchrl]
        for f in torchrl:
            show(f)
    for f in torchrl:
        if f.value is None and not f.note:
            f.note = note or "no figure came back"
    figures += torchrl
    order = {(s, lay): i for i, (s, lay) in enumerate(
        [(CHEETAH, lay) for lay in CHEETAH_LAYOUTS] + [(PONG, lay) for lay in PONG_LAYOUTS])}
    figures.sort(key=lambda f: (order[(f.suite, f.layout)], SYSTEMS.index(f.system)))
    print()
    print(format_table("Collection", "steps/s", figures, "raw gymnasium"))
    print("\nTargets:")
    print(format_targets(figures))
    return figures


# ---------------------------------------------------------------------------------- CLI
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring).

    >>> args = parse_args(["--parts", "updates", "--full"])
    >>> args.parts, args.steps
    (['updates'], 20000)
    >>> parse_args(["--learning", "--budget-scale", "0.01"]).budget_scale
    0.01
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated parts among {list(PARTS)}")
    parser.add_argument("--frames", type=int, default=3000, help="timed steps per collection row")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per collection row")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed env steps after learning_starts per update row "
                             "(default 2000; 20000 with --full)")
    parser.add_argument("--learning-starts", type=int, default=1000,
                        help="untimed steps before the update rows' timed steps")
    parser.add_argument("--full", action="store_true", help="the issue's 20k update steps")
    parser.add_argument("--peers-python",
                        default=os.environ.get("STREAMRL_PEERS_PYTHON", "/tmp/peers/bin/python"))
    parser.add_argument("--no-peers", action="store_true", help="no TorchRL rows")
    parser.add_argument("--learning", action="store_true",
                        help="run the learning comparisons instead of parts 1 and 2")
    parser.add_argument("--budget-scale", type=float, default=1.0,
                        help="--learning: scale every budget (0.01: a smoke run)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="--learning: seeds of the SAC runs")
    parser.add_argument("--peer-rows", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.parts = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}: expected some of {list(PARTS)}")
    for name in ("frames", "repeats", "learning_starts"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, found {getattr(args, name)}")
    if args.steps is None:
        args.steps = 20_000 if args.full else 2000
    if not args.budget_scale > 0:
        parser.error(f"--budget-scale must be > 0, found {args.budget_scale}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.peer_rows:  # in the peers' venv: print TorchRL's rows for the parent
        def emit(f: Figure) -> None:
            print("FIGURE " + json.dumps(f.__dict__), flush=True)

        rows = collection_rows("TorchRL 0.14.1")
        missing = torchvision_missing()
        for figure, _ in rows:
            if figure.suite == PONG and missing is not None:
                # TorchRL's Resize needs torchvision (e.g. no wheel loads with torch +cpu)
                figure.note = "gymnasium AtariPreprocessing in GymWrapper: no torchvision"
        measure(rows, args.frames, args.repeats, emit)
        return
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import suites_training

    if args.learning:
        suites_training.run_learning(args)
        return
    if "collect" in args.parts:
        run_collection(args)
    if "updates" in args.parts:
        print()
        suites_training.run_updates(args)


if __name__ == "__main__":
    main()
