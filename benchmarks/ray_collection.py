"""Collection on Ray actors, for ``graph_ray.py``: frames/s of CartPole-v1 and Pong with 1, 2
and 4 env actors feeding one learner stand-in on the driver (it takes the batches and does
nothing else), beside local process placement and TorchRL 0.14's ``RayCollector``; and the
per-actor overhead that decides how collection scales on a cluster.

Every row uses the same frames per batch and counts the frames after the first batch, from
its arrival to the last batch's (actor start-up and shutdown are not in frames/s; start-up is
reported apart). CartPole runs ``collectors.py``'s ``Linear(4, 2)`` + argmax policy; Pong
takes random actions. Rows:

- ``streamrl ray``: ``RayCollector(sync=False, num_collectors=N)``, each actor with
  ``num_cpus=CPUS_PER_ACTOR`` (so 4 fit in the 2 CPUs Ray is given);
- ``local procs``: ``MultiaSyncDataCollector`` with N worker processes;
- ``torchrl ray``: TorchRL's ``RayCollector(sync=False)``, same env, policy, frames per batch,
  collectors and actor options, run with the peers' python after our Ray has shut down.

Pong is ``make_atari_env("PongNoFrameskip-v4")`` (DQN preprocessing, 4 stacked 84x84 frames)
for streamrl; TorchRL has no such constructor, so its row wraps gymnasium's
``AtariPreprocessing`` + ``FrameStackObservation(4)`` (the same preprocessing) in ``GymWrapper``.

Per-actor overhead: ``N x Rollout`` on ``Ray(direct=True)`` actors into one driver sink, the
topology RayCollector builds, run to its frame budget so that the actors' operator stats come
back (:meth:`Graph.stats`): per batch, the rollout's time inside its step (env + policy), the
actor's time outside it (packing, answering the driver's pull, the runner), and the driver
process's CPU time.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any

from streamrl.graph import Graph, Operator, Ray

CPUS_PER_ACTOR = 0.5
PONG = "PongNoFrameskip-v4"


def cartpole_env():
    from streamrl.envs.libs.gym import GymEnv

    return GymEnv("CartPole-v1", categorical_action_encoding=True)


def pong_env():
    from streamrl.envs import make_atari_env

    return make_atari_env(PONG, categorical_action_encoding=True)


def cartpole_policy() -> Any:
    from collectors import make_policy  # the policy of benchmarks/collectors.py

    return make_policy()


#: env name -> (env constructor, policy constructor: None for random actions)
ENVS: dict[str, tuple[Callable[[], Any], Callable[[], Any] | None]] = {
    "CartPole": (cartpole_env, cartpole_policy),
    "Pong": (pong_env, None),
}


# ------------------------------------------------------------------------------ timing
def time_batches(batches: Any, frames: int, t_start: float) -> dict[str, float]:
    """Consume ``batches`` until ``frames`` frames after the first batch have arrived:
    frames/s from the first batch's arrival to the last's, start-up (``t_start`` to the first
    batch) and the driver process's CPU ms per batch over the timed batches."""
    it = iter(batches)
    next(it)
    t0, c0 = time.perf_counter(), time.process_time()
    startup = t0 - t_start
    n = k = 0
    t1, c1 = t0, c0
    for batch in it:
        n += batch.numel()
        k += 1
        t1, c1 = time.perf_counter(), time.process_time()
        if n >= frames:
            break
    if k == 0:
        raise RuntimeError(f"expected batches after the first, found {k}")
    return {"fps": n / (t1 - t0), "startup_s": startup, "driver_cpu_ms": (c1 - c0) / k * 1e3}


def _run_collector(make: Callable[[int], Any], frames: int, fpb: int) -> dict[str, float]:
    t_start = time.perf_counter()
    collector = make(frames + 4 * fpb)  # slack: async collectors may stop a batch early
    try:
        return time_batches(collector, frames, t_start)
    finally:
        collector.shutdown()


def streamrl_ray(env: str, actors: int, frames: int, fpb: int) -> dict[str, float]:
    from streamrl.collectors.distributed import RayCollector

    env_fn, policy_fn = ENVS[env]
    return _run_collector(lambda total: RayCollector(
        env_fn, policy_fn() if policy_fn else None, num_collectors=actors, sync=False,
        frames_per_batch=fpb, total_frames=total,
        remote_configs={"num_cpus": CPUS_PER_ACTOR}), frames, fpb)


def streamrl_local(env: str, actors: int, frames: int, fpb: int) -> dict[str, float]:
    from streamrl.collectors import MultiaSyncDataCollector

    env_fn, policy_fn = ENVS[env]
    return _run_collector(lambda total: MultiaSyncDataCollector(
        [env_fn] * actors, policy_fn() if policy_fn else None, frames_per_batch=fpb,
        total_frames=total), frames, fpb)


# ------------------------------------------------------------------------------ overhead
class _Learner(Operator):
    """The learner stand-in: counts frames and stamps wall and process CPU time per batch."""

    outputs = ()

    def __init__(self) -> None:
        self.batches = self.frames = 0
        self.first = self.last = (0.0, 0.0)

    def step(self, inputs: dict[str, Any]) -> None:
        now = (time.perf_counter(), time.process_time())
        if self.batches == 0:
            self.first = now
        else:
            self.frames += inputs["in"].numel()
        self.last = now
        self.batches += 1


def actor_overhead(env: str, actors: int, batches: int, fpb: int) -> dict[str, float]:
    """Per batch (ms), averaged over the actors: the rollout's step (env + policy), the
    actor's time outside it, the driver's CPU; and the frames/s the driver received."""
    from streamrl.ops import Rollout

    env_fn, policy_fn = ENVS[env]
    g = Graph(name="overhead")
    sink = g.add(_Learner(), name="learner")
    for i in range(actors):
        r = g.add(Rollout(env_fn, policy_fn() if policy_fn else None, frames_per_batch=fpb,
                          total_frames=batches * fpb, worker_index=i, num_workers=actors),
                  name=f"rollout{i}", placement=Ray(num_cpus=CPUS_PER_ACTOR, direct=True))
        g.connect(r, sink)
    g.run_sync(watchdog_timeout=None)
    learner: _Learner = sink.op
    stats = g.stats().operators
    rollouts = [stats[f"rollout{i}"] for i in range(actors)]
    if any(s.placement != "ray" or s.batches_out != batches for s in rollouts):
        raise RuntimeError(f"expected {batches} batches from each ray rollout, found "
                           f"{[(s.placement, s.batches_out) for s in rollouts]}")
    n_out = sum(s.batches_out for s in rollouts)
    return {
        "step_ms": sum(s.busy_s for s in rollouts) / n_out * 1e3,
        "outside_ms": sum(s.wall_s - s.busy_s for s in rollouts) / n_out * 1e3,
        "driver_cpu_ms": (learner.last[1] - learner.first[1]) / (learner.batches - 1) * 1e3,
        "fps": learner.frames / (learner.last[0] - learner.first[0]),
    }


# ------------------------------------------------------------------------------ TorchRL
TORCHRL_SNIPPET = r"""
import sys, time, torch
from torch import nn
torch.set_num_threads(1)
env_name, fpb, frames, cpus = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
counts = [int(a) for a in sys.argv[5].split(",")]
import ray
# "local": a new Ray even when another one runs on this machine
ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
         configure_logging=False)
from tensordict.nn import TensorDictModule
from torchrl.collectors.distributed import RayCollector

class ArgmaxLinear(nn.Module):
    def __init__(self):
        super().__init__(); torch.manual_seed(0); self.lin = nn.Linear(4, 2)
    def forward(self, obs):
        return self.lin(obs).argmax(-1)

def cartpole():
    from torchrl.envs import GymEnv
    return GymEnv("CartPole-v1", categorical_action_encoding=True)

def pong():
    import gymnasium as gym, ale_py
    from torchrl.envs import GymWrapper, RewardSum, TransformedEnv
    gym.register_envs(ale_py)
    e = gym.make("PongNoFrameskip-v4")
    e = gym.wrappers.AtariPreprocessing(e, noop_max=30, frame_skip=4, screen_size=84)
    e = gym.wrappers.FrameStackObservation(e, 4)
    return TransformedEnv(GymWrapper(e, categorical_action_encoding=True), RewardSum())

for n in counts:
    try:
        policy = (TensorDictModule(ArgmaxLinear(), in_keys=["observation"], out_keys=["action"])
                  if env_name == "CartPole" else None)
        t_start = time.perf_counter()
        c = RayCollector([cartpole if env_name == "CartPole" else pong] * n, policy,
                         frames_per_batch=fpb, total_frames=frames + 4 * fpb, sync=False,
                         remote_configs={"num_cpus": cpus})
        try:
            it = iter(c); next(it)
            t0, c0 = time.perf_counter(), time.process_time()
            got = k = 0; t1, c1 = t0, c0
            for b in it:
                got += b.numel(); k += 1
                t1, c1 = time.perf_counter(), time.process_time()
                if got >= frames:
                    break
            print(f"RESULT {n} {got / (t1 - t0):.1f} {t0 - t_start:.3f} "
                  f"{(c1 - c0) / k * 1e3:.3f}", flush=True)
        finally:
            c.shutdown()
    except Exception as err:
        print(f"SKIP {n} {type(err).__name__}: {err}", flush=True)
ray.shutdown()
"""


def torchrl_ray(python: str, env: str, counts: list[int], frames: int, fpb: int
                ) -> tuple[dict[int, dict[str, float]], str | None]:
    """TorchRL RayCollector rows by actor count, or a note saying why some are missing."""
    if not os.path.exists(python):
        return {}, f"{python} not found"
    check = subprocess.run([python, "-c", "import torchrl, ray"], capture_output=True, text=True)
    if check.returncode != 0:
        last = (check.stderr.strip().splitlines() or ["?"])[-1]
        return {}, f"{python} cannot import torchrl and ray ({last})"
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "torchrl_ray_collector.py")
        with open(script, "w") as f:
            f.write(TORCHRL_SNIPPET)
        try:
            proc = subprocess.run(
                [python, script, env, str(fpb), str(frames), str(CPUS_PER_ACTOR),
                 ",".join(map(str, counts))],
                capture_output=True, text=True, timeout=1200, cwd=tmp)
        except subprocess.TimeoutExpired:
            return {}, "torchrl run timed out after 1200 s"
    out: dict[int, dict[str, float]] = {}
    notes = []
    for line in proc.stdout.splitlines():
        parts = line.split(" ")
        if parts[0] == "RESULT":
            out[int(parts[1])] = {"fps": float(parts[2]), "startup_s": float(parts[3]),
                                  "driver_cpu_ms": float(parts[4])}
        elif parts[0] == "SKIP":
            notes.append(line)
    if proc.returncode != 0:
        notes.append(f"torchrl run failed: {proc.stderr.strip().splitlines()[-1:]}")
    return out, "; ".join(notes) or None


# ------------------------------------------------------------------------------ tables
def _cell(r: dict[str, float] | None) -> str:
    return f"{r['fps']:>9.0f} {r['startup_s']:>6.1f}s" if r else f"{'n/a':>9} {'':>7}"


def print_collection(results: dict[str, dict[tuple[str, int], dict[str, float]]],
                     envs: list[str], counts: list[int], fpb: int,
                     frames: dict[str, int]) -> None:
    """One table: a row per (env, actors), frames/s and start-up per system."""
    systems = ("streamrl ray", "local procs", "torchrl ray")
    print(f"collection frames/s, {fpb} frames per batch, one learner stand-in on the driver "
          f"(timed frames: {', '.join(f'{e} {frames[e]}' for e in envs)}; start-up apart)")
    print(f"{'env':<9} {'actors':>6}  " + "  ".join(f"{s:>17}" for s in systems))
    for env in envs:
        for n in counts:
            print(f"{env:<9} {n:>6}  " + "  ".join(
                f"{_cell(results.get(s, {}).get((env, n))):>17}" for s in systems))


def scaling_line(results: dict[tuple[str, int], dict[str, float]], env: str,
                 counts: list[int]) -> str:
    """frames/s with N actors relative to 1, for one system."""
    base = results.get((env, counts[0]))
    if base is None:
        return f"{env}: no figures"
    parts = [f"{n}: x{results[(env, n)]['fps'] / base['fps']:.2f}" for n in counts[1:]
             if (env, n) in results]
    return f"{env} relative to {counts[0]} actor(s): " + ", ".join(parts)


def print_overhead(rows: dict[str, dict[str, float]], fpb: int, cores: int,
                   collector_cpu: dict[str, float] | None = None) -> None:
    """The per-actor overhead and what it means for a cluster; ``collector_cpu``: the driver's
    CPU ms per batch measured with RayCollector and 1 actor, by env, when there is one."""
    print(f"per-actor overhead (1 actor, {fpb} frames per batch; ms per batch): "
          f"N x Rollout on Ray(direct=True) -> driver sink, from the actors' operator stats")
    print(f"{'env':<9} {'env+policy':>10} {'actor outside':>13} {'driver CPU':>10} "
          f"{'frames/s':>9}")
    for env, r in rows.items():
        print(f"{env:<9} {r['step_ms']:>10.2f} {r['outside_ms']:>13.2f} "
              f"{r['driver_cpu_ms']:>10.2f} {r['fps']:>9.0f}")
    print(f"on {cores} cores scaling flattens at {cores} actors (the actors share the "
          f"cores); on a cluster, N actors give about N x frames_per_batch / (step time + "
          f"this overhead) until the learner is the bottleneck:")
    for env, r in rows.items():
        per_actor = fpb / (r["step_ms"] + r["outside_ms"]) * 1e3
        limit = fpb / r["driver_cpu_ms"] * 1e3
        print(f"  {env}: N x {fpb} / ({r['step_ms']:.2f} + {r['outside_ms']:.2f} ms) = "
              f"N x {per_actor:,.0f} frames/s; the driver's {r['driver_cpu_ms']:.2f} ms CPU "
              f"per batch caps it at about {limit:,.0f} frames/s (N ~ "
              f"{limit / per_actor:.0f}) before any learning work")
        if collector_cpu and env in collector_cpu:
            cap = fpb / collector_cpu[env] * 1e3
            print(f"    (through RayCollector the driver spends {collector_cpu[env]:.2f} ms CPU "
                  f"per batch: about {cap:,.0f} frames/s, N ~ {cap / per_actor:.0f})")


def run_ours(ray_up: bool, envs: list[str], counts: list[int], frames: dict[str, int],
             fpb: int) -> dict[str, dict[tuple[str, int], dict[str, float]]]:
    """The streamrl rows: Ray ones (Ray must be up) or local ones (``ray_up=False``)."""
    measure = streamrl_ray if ray_up else streamrl_local
    label = "streamrl ray" if ray_up else "local procs"
    out: dict[tuple[str, int], dict[str, float]] = {}
    for env in envs:
        for n in counts:
            out[(env, n)] = r = measure(env, n, frames[env], fpb)
            print(f"  {label} {env} x{n}: {r['fps']:.0f} frames/s, start-up "
                  f"{r['startup_s']:.1f} s, driver CPU {r['driver_cpu_ms']:.2f} ms/batch",
                  flush=True)
    return {label: out}


def run_torchrl(python: str, envs: list[str], counts: list[int], frames: dict[str, int],
                fpb: int) -> dict[str, dict[tuple[str, int], dict[str, float]]]:
    out: dict[tuple[str, int], dict[str, float]] = {}
    for env in envs:
        rows, note = torchrl_ray(python, env, counts, frames[env], fpb)
        if note:
            print(f"  (torchrl ray {env}: {note})", flush=True)
        for n, r in rows.items():
            out[(env, n)] = r
            print(f"  torchrl ray {env} x{n}: {r['fps']:.0f} frames/s, start-up "
                  f"{r['startup_s']:.1f} s, driver CPU {r['driver_cpu_ms']:.2f} ms/batch",
                  flush=True)
    return {"torchrl ray": out}

