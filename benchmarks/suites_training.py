"""The training parts of ``benchmarks/suites.py``: gradient-update throughput (part 2) and the
learning runs (``--learning``), streamrl's pipelines beside Stable-Baselines3 2.9.2.

Update rows (SAC, TD3 on HalfCheetah-v5; 256x256 networks, batch 256, one update per step,
buffer 1M, lr 3e-4, torch on 1 thread): streamrl's ``pipelines/sac_mujoco.py`` and
``td3_mujoco.py`` graphs, built with ``build(config, ...)`` and run once, in ``lockstep``
(each batch of 50 frames collected after the updates the frames before it grant: SB3's
order) and in their concurrent default (rollout process and learner thread overlap); the
rates are read from the metrics rows between the first learner message and the last (so
start-up, ``learning_starts`` and the closing evaluation are not timed). SB3's ``SAC`` / ``TD3`` (``train_freq=1``,
``gradient_steps=1``; TD3 with the pipeline's noise: Gaussian 0.1, target noise 0.2 clipped
at 0.5, policy delay 2) learn ``learning_starts`` steps untimed, then ``steps`` timed.

Learning rows: SAC HalfCheetah-v5 (rl-zoo: ``learning_starts`` 10k, SB3's SAC defaults) for
50k steps per seed; PPO HalfCheetah-v5 for 200k steps with CleanRL's hyper-parameters (the
``ppo_mujoco`` pipeline's; SB3 gets them as ``PPO`` arguments plus ``VecNormalize``); PPO on
PongNoFrameskip-v4 for 200k agent steps with CleanRL's Atari hyper-parameters (streamrl's
``pipelines/ppo_atari.py`` when the checkout has it, through its command line; SB3's ``PPO``
with the same). Returns: the final evaluation (MuJoCo: 5 deterministic episodes; Pong: 4
games with sampled actions; SB3 through ``EvalCallback`` / ``evaluate_policy``, streamrl
through the pipeline's evaluator). Each learning row runs torch on 1 thread; wall-clock
includes the evaluations on both sides (and streamrl's graph start-up).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHEETAH = "HalfCheetah-v5"
PONG = "PongNoFrameskip-v4"
PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"


@dataclasses.dataclass
class UpdateFigure:
    """Env steps/s and updates/s of one update row (None with ``note`` when not measured)."""

    algorithm: str
    system: str
    steps_per_s: float | None
    updates_per_s: float | None
    note: str = ""


def format_update_table(figures: list[UpdateFigure]) -> str:
    """The update rows with each one's ratio to SB3's row of the same algorithm.

    >>> print(format_update_table([UpdateFigure("SAC", "SB3 2.9.2", 50.0, 50.0),
    ...                            UpdateFigure("SAC", "streamrl (lockstep)", 55.0, 54.0)]))
    algorithm  system               env steps/s  updates/s  updates / SB3
    SAC        SB3 2.9.2                   50.0       50.0           1.00
    SAC        streamrl (lockstep)         55.0       54.0           1.08
    """
    sb3 = {f.algorithm: f.updates_per_s for f in figures if f.system.startswith("SB3")}
    header = ("algorithm", "system", "env steps/s", "updates/s", "updates / SB3")
    rows = []
    for f in figures:
        if f.steps_per_s is None or f.updates_per_s is None:
            rows.append((f.algorithm, f.system, "-", "-", f"not measured ({f.note})"))
            continue
        ref = sb3.get(f.algorithm)
        ratio = "" if not ref else f"{f.updates_per_s / ref:.2f}"
        rows.append((f.algorithm, f.system, f"{f.steps_per_s:.1f}", f"{f.updates_per_s:.1f}",
                     ratio))
    w = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    return "\n".join(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:>{w[2]}}  {r[3]:>{w[3]}}  "
                     f"{r[4]:>{w[4]}}".rstrip() for r in [header, *rows])


def load(name: str) -> Any:
    """The pipeline module ``pipelines/<name>.py`` of this checkout."""
    from streamrl.cli import load_pipeline

    path = PIPELINES / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"no pipeline {name!r}: {path} does not exist")
    return load_pipeline(path)


def _config(module: Any, **changes: Any) -> Any:
    """The pipeline's default config (from its command line, no flags) with ``changes``."""
    config, _ = module.parse_args([])
    return dataclasses.replace(config, **changes)


# ---------------------------------------------------------------------------------- updates
def streamrl_updates(pipeline: str, steps: int, learning_starts: int,
                     lockstep: bool) -> tuple[float, float]:
    """(env steps/s, updates/s) of ``pipeline``'s graph between its first and last learner
    messages, over ``learning_starts + steps`` frames."""
    module = load(pipeline)
    frames = learning_starts + steps
    config = _config(module, frames=frames, learning_starts=learning_starts,
                     eval_interval=100 * frames, lockstep=lockstep, logger="none", threads=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        parts = module.build(config, None, False, None)
        try:
            parts.graph.run_sync()
        finally:
            parts.buffer.close()
    finally:
        torch.set_num_threads(threads)
    # learner rows (an evaluation closes the run: its row is left out)
    rows = [r for r in parts.metrics.rows if r.get("updates") and "eval_return" not in r]
    if len(rows) < 2:
        raise RuntimeError(f"{pipeline}: {len(rows)} learner rows in the metrics, need 2")
    first, last = rows[0], rows[-1]
    dt = last["wall_s"] - first["wall_s"]
    return (last["frames"] - first["frames"]) / dt, (last["updates"] - first["updates"]) / dt


def sb3_model(algorithm: str, env: Any, learning_starts: int, seed: int, **extra: Any) -> Any:
    """SB3's SAC or TD3 with the pipelines' hyper-parameters (256x256, batch 256, lr 3e-4,
    buffer 1M, one update per step; TD3 with Gaussian exploration noise 0.1); ``extra``
    overrides them."""
    from stable_baselines3 import SAC, TD3
    from stable_baselines3.common.noise import NormalActionNoise

    common = dict(learning_rate=3e-4, buffer_size=1_000_000, learning_starts=learning_starts,
                  batch_size=256, tau=0.005, gamma=0.99, train_freq=1, gradient_steps=1,
                  policy_kwargs=dict(net_arch=[256, 256]), seed=seed, device="cpu")
    common.update(extra)
    if algorithm == "SAC":
        return SAC("MlpPolicy", env, **common)
    dim = env.action_space.shape[-1]
    return TD3("MlpPolicy", env, action_noise=NormalActionNoise(np.zeros(dim), 0.1 * np.ones(dim)),
               policy_delay=2, target_policy_noise=0.2, target_noise_clip=0.5, **common)


def sb3_updates(algorithm: str, steps: int, learning_starts: int, env_name: str = CHEETAH,
                **extra: Any) -> tuple[float, float]:
    """(env steps/s, updates/s) of SB3 on ``env_name`` over ``steps`` steps after
    ``learning_starts`` (``extra``: :func:`sb3_model`'s overrides)."""
    import gymnasium as gym

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = sb3_model(algorithm, gym.make(env_name), learning_starts, seed=0, **extra)
        model.learn(learning_starts)
        n0, t0 = model._n_updates, time.perf_counter()
        model.learn(steps, reset_num_timesteps=False)
        dt = time.perf_counter() - t0
        return steps / dt, (model._n_updates - n0) / dt
    finally:
        torch.set_num_threads(threads)


def run_updates(args: argparse.Namespace) -> list[UpdateFigure]:
    print(f"Part 2: gradient updates on {CHEETAH}, {args.steps} timed steps after "
          f"{args.learning_starts} untimed (learning_starts)", flush=True)
    rows: list[tuple[str, str, Callable[[], tuple[float, float]]]] = []
    for algorithm, pipeline in (("SAC", "sac_mujoco"), ("TD3", "td3_mujoco")):
        rows.append((algorithm, "SB3 2.9.2",
                     lambda a=algorithm: sb3_updates(a, args.steps, args.learning_starts)))
        for lockstep in (True, False):
            mode = "lockstep" if lockstep else "concurrent"
            rows.append((algorithm, f"streamrl {pipeline} ({mode})",
                         lambda p=pipeline, ls=lockstep: streamrl_updates(
                             p, args.steps, args.learning_starts, ls)))
    figures = []
    for algorithm, system, measure in rows:
        try:
            steps, updates = measure()
            figure = UpdateFigure(algorithm, system, steps, updates)
        except Exception as err:  # a broken row must not stop the others
            figure = UpdateFigure(algorithm, system, None, None,
                                  f"{type(err).__name__}: {err}"[:160])
        print(f"  {algorithm} | {system}: {figure.steps_per_s} steps/s, "
              f"{figure.updates_per_s} updates/s {figure.note}", flush=True)
        figures.append(figure)
    print()
    print(format_update_table(figures))
    return figures


# ---------------------------------------------------------------------------------- learning
@dataclasses.dataclass
class LearningFigure:
    """One learning run: the final return (None: not measured, ``note`` says why)."""

    task: str
    system: str
    seed: int
    steps: int
    final_return: float | None
    wall_s: float | None
    note: str = ""


def scaled(budget: int, scale: float, multiple: int = 1) -> int:
    """``budget * scale`` rounded to a positive multiple of ``multiple``.

    >>> scaled(50_000, 0.01), scaled(200_000, 0.01, 2048), scaled(10, 0.001)
    (500, 2048, 1)
    """
    return max(1, round(budget * scale / multiple)) * multiple


def sac_learning(seed: int, scale: float) -> list[LearningFigure]:
    import gymnasium as gym
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.monitor import Monitor

    frames, starts = scaled(50_000, scale), scaled(10_000, scale)
    interval = scaled(10_000, scale)
    module = load("sac_mujoco")
    config = _config(module, frames=frames, learning_starts=starts, eval_interval=interval,
                     seed=seed, logger="none")
    result = module.train(config)
    ours = LearningFigure("SAC " + CHEETAH, "streamrl sac_mujoco", seed, result.frames,
                          result.eval_return, result.wall_s,
                          "" if not result.evaluations else f"eval at {result.evaluations[-1][0]:,} frames")
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    model = sb3_model("SAC", gym.make(CHEETAH), starts, seed)
    # evaluations on the pipeline's schedule (every ``interval`` steps, 5 deterministic
    # episodes), inside the wall-clock as the pipeline's evaluator is
    evaluation = EvalCallback(Monitor(gym.make(CHEETAH)), n_eval_episodes=5,
                              eval_freq=interval, deterministic=True, verbose=0)
    model.learn(frames, callback=evaluation)
    wall = time.perf_counter() - t0
    last = frames // interval * interval  # one env: the callback runs every interval steps
    return [ours, LearningFigure("SAC " + CHEETAH, "SB3 2.9.2 SAC", seed, frames,
                                 float(evaluation.last_mean_reward) if last else None, wall,
                                 f"eval at {last:,} frames" if last else "no evaluation")]


def ppo_mujoco_learning(seed: int, scale: float) -> list[LearningFigure]:
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    module = load("ppo_mujoco")
    config = _config(module, seed=seed, logger="none")
    frames = scaled(200_000, scale, config.frames_per_batch)
    config = dataclasses.replace(config, frames=frames, eval_interval=frames)
    result = module.train(config)
    ours = LearningFigure("PPO " + CHEETAH, "streamrl ppo_mujoco", seed, result.frames,
                          result.eval_return, result.wall_s)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    env = VecNormalize(DummyVecEnv([lambda: gym.make(CHEETAH)]), gamma=config.gamma,
                       clip_obs=10.0, clip_reward=10.0)
    model = PPO("MlpPolicy", env, learning_rate=lambda left: 3e-4 * left, n_steps=2048,
                batch_size=64, n_epochs=10, gamma=0.99, gae_lambda=0.95, clip_range=0.2,
                ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5, seed=seed, device="cpu",
                policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64])))
    model.learn(frames)
    evaluation = VecNormalize(DummyVecEnv([lambda: Monitor(gym.make(CHEETAH))]),
                              training=False, norm_reward=False)
    evaluation.obs_rms = env.obs_rms
    mean, _ = evaluate_policy(model, evaluation, n_eval_episodes=5, deterministic=True)
    wall = time.perf_counter() - t0
    return [ours, LearningFigure("PPO " + CHEETAH, "SB3 2.9.2 PPO", seed, frames, float(mean),
                                 wall)]


def pong_learning(seed: int, scale: float) -> list[LearningFigure]:
    """PPO on Pong: streamrl's ``ppo_atari`` (when this checkout has it) and SB3's PPO with
    its hyper-parameters (CleanRL's: 8 envs x 128 steps, 4 epochs of 256, lr 2.5e-4
    annealed, clip 0.1 on the ratio and the value, entropy 0.01, SB3's ``vf_coef`` 0.25 =
    CleanRL's 0.5 x its halved squared error); both evaluated on 4 games with sampled
    actions at the end."""
    import ale_py
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)
    steps = scaled(200_000, scale, 8 * 128)
    if (PIPELINES / "ppo_atari.py").is_file():
        module = load("ppo_atari")
        config, _ = module.parse_args(["--frames", str(steps), "--seed", str(seed),
                                       "--eval-interval", str(steps), "--logger", "none"])
        result = module.train(config)
        ours = LearningFigure("PPO Pong", "streamrl ppo_atari", seed, result.frames,
                              result.eval_return, result.wall_s, "4 games, sampled actions")
    else:
        ours = LearningFigure("PPO Pong", "streamrl", seed, steps, None, None,
                              "no pipelines/ppo_atari.py in this checkout")
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    env = VecFrameStack(make_atari_env(PONG, n_envs=8, seed=seed), 4)
    model = PPO("CnnPolicy", env, n_steps=128, n_epochs=4, batch_size=256,
                learning_rate=lambda left: 2.5e-4 * left, clip_range=0.1, clip_range_vf=0.1,
                vf_coef=0.25, ent_coef=0.01, max_grad_norm=0.5, gamma=0.99, gae_lambda=0.95,
                seed=seed, device="cpu")
    model.learn(steps)
    env.close()
    evaluation = VecFrameStack(make_atari_env(PONG, n_envs=1, seed=10_000 + seed), 4)
    mean, _ = evaluate_policy(model, evaluation, n_eval_episodes=4, deterministic=False)
    evaluation.close()
    wall = time.perf_counter() - t0
    return [ours, LearningFigure("PPO Pong", "SB3 2.9.2 PPO", seed, steps, float(mean), wall,
                                 "4 games, sampled actions")]


def format_learning_table(figures: list[LearningFigure]) -> str:
    """One line per run.

    >>> print(format_learning_table([LearningFigure("SAC", "SB3", 0, 500, -1.5, 12.0),
    ...                              LearningFigure("Pong", "streamrl", 0, 2048, None, None,
    ...                                             "no pipeline")]))
    task  system    seed  steps  return  wall s
    SAC   SB3          0    500    -1.5    12.0
    Pong  streamrl     0  2,048       -       -  not measured (no pipeline)
    """
    header = ("task", "system", "seed", "steps", "return", "wall s", "")
    rows = [(f.task, f.system, str(f.seed), f"{f.steps:,}",
             "-" if f.final_return is None else f"{f.final_return:.1f}",
             "-" if f.wall_s is None else f"{f.wall_s:.1f}",
             f"not measured ({f.note})" if f.final_return is None else f.note)
            for f in figures]
    w = [max(len(r[i]) for r in [header, *rows]) for i in range(6)]
    return "\n".join(
        f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:>{w[2]}}  {r[3]:>{w[3]}}  {r[4]:>{w[4]}}  "
        f"{r[5]:>{w[5]}}  {r[6]}".rstrip() for r in [header, *rows])


def run_learning(args: argparse.Namespace) -> list[LearningFigure]:
    print(f"Learning runs (budget scale {args.budget_scale}; seeds {args.seeds} for SAC, "
          f"{args.seeds[0]} for PPO)", flush=True)
    runs: list[tuple[str, Callable[[], list[LearningFigure]]]] = [
        (f"SAC seed {s}", lambda s=s: sac_learning(s, args.budget_scale)) for s in args.seeds]
    runs += [("PPO HalfCheetah", lambda: ppo_mujoco_learning(args.seeds[0], args.budget_scale)),
             ("PPO Pong", lambda: pong_learning(args.seeds[0], args.budget_scale))]
    figures: list[LearningFigure] = []
    for name, run in runs:
        threads = torch.get_num_threads()
        try:
            done = run()
        except Exception as err:  # a broken run must not stop the others
            done = [LearningFigure(name, "?", -1, 0, None, None,
                                   f"{type(err).__name__}: {err}"[:160])]
        finally:
            torch.set_num_threads(threads)
        for f in done:
            print(f"  {f}", flush=True)
        figures += done
    print()
    print(format_learning_table(figures))
    return figures
