"""Benchmark: env steps and wall seconds for PPO to solve CartPole-v1, streamrl vs SB3.

Solved = the mean return of 20 deterministic evaluation episodes >= 475, checked every 8,192
env steps (evaluated when the batch that reaches the mark has been collected, before training
on it, as an SB3 callback does). Both sides use the rl-zoo hyper-parameters, one torch
thread, and a 200k-step horizon for the linear schedules. Each run is a fresh process;
the seeds alternate between the two libraries so that they see the same machine load.

streamrl runs ``pipelines/ppo_cartpole.py``; SB3 runs the shared anchor script
(``anchor_sb3_ppo.py``, or an identical copy embedded here) with the Python of a venv that
has stable-baselines3 (``--peers-python`` or ``$STREAMRL_PEERS_PYTHON``; skipped with a note
when there is none).

    flock /tmp/streamrl-heavy.lock python benchmarks/ppo_cartpole.py --seeds 0 1 2

Wall time counts from the first collected step (environment and model construction
excluded on both sides); "train" is wall minus the time spent evaluating.

"limit" is the same algorithm written by hand in plain torch and gymnasium (``_PLAIN_SCRIPT``:
``SyncVectorEnv(8)``, the same networks, SB3's init and Adam settings, epochs, minibatch and
schedules), run for the frames streamrl ran on that seed: the cost of the work itself, with
no library around it. ``--limit-solves`` also runs it to its own solve on each seed, under the
same evaluation: the frames the algorithm needs without either library.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANCHOR = Path("/work/shared/anchors/anchor_sb3_ppo.py")

# The same procedure as the shared anchor, for machines without it.
_SB3_SCRIPT = '''
import sys, time
import numpy as np, torch
import gymnasium as gym
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.callbacks import BaseCallback

torch.set_num_threads(1)
seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
lin = lambda v: (lambda p: p * v)

def evaluate(model, n=20):
    env = gym.make("CartPole-v1"); rets = []
    for i in range(n):
        obs, _ = env.reset(seed=10_000 + i); done = False; R = 0
        while not done:
            a, _ = model.predict(obs, deterministic=True)
            obs, r, term, trunc, _ = env.step(a); R += r; done = term or trunc
        rets.append(R)
    return float(np.mean(rets))

class Stop(BaseCallback):
    def __init__(self):
        super().__init__(); self.last = 0; self.solved_at = None; self.eval_time = 0.0
    def _on_step(self):
        if self.num_timesteps - self.last >= 8192:
            self.last = self.num_timesteps
            te = time.perf_counter(); m = evaluate(self.model)
            self.eval_time += time.perf_counter() - te
            if m >= 475:
                self.solved_at = self.num_timesteps; return False
        return True

env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
            ent_coef=0.0, learning_rate=lin(0.001), clip_range=lin(0.2), seed=seed, verbose=0)
cb = Stop()
t0 = time.perf_counter(); model.learn(total_timesteps=200_000, callback=cb); dt = time.perf_counter() - t0
print(f"SB3 PPO CartPole seed={seed} solved_at={cb.solved_at} wall={dt:.1f}s train_wall={dt-cb.eval_time:.1f}s")
'''

_STREAMRL_SCRIPT = '''
import json, sys
from pathlib import Path
from streamrl.cli import load_pipeline
ppo = load_pipeline(Path(sys.argv[1]))
r = ppo.train(ppo.PPOConfig(seed=int(sys.argv[2]), frames=int(sys.argv[3])), run_dir=None)
print(json.dumps({"solved_at": r.solved_at, "wall": r.wall_s, "train": r.train_s,
                  "eval": r.eval_s, "collect": r.collect_s, "update": r.update_s,
                  "frames": r.frames, "evals": r.evaluations}))
'''

# The limit: the same algorithm written by hand in plain torch and gymnasium (CleanRL's shape):
# SyncVectorEnv(8), the same 64x64 tanh actor and critic, 20 epochs of one 256-row minibatch,
# GAE(0.98, 0.8), linear lr and clip schedules over the horizon, gradient norm 0.5, one torch
# thread, SB3's init and Adam eps. It runs a given number of frames and prints its collect and
# update seconds: what the same work costs with no library around it. With ``solve`` it also
# evaluates (the benchmark's 20 deterministic episodes, every 8,192 frames unless given) before
# training on a batch, untimed, and stops once solved, printing the frames and evaluations.
_PLAIN_SCRIPT = '''
import math, sys, time, numpy as np, torch, gymnasium as gym
from torch import nn
torch.set_num_threads(1)
seed, frames, horizon = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
solve = len(sys.argv) > 4 and sys.argv[4] == "solve"  # evaluate, and stop once solved
every = int(sys.argv[5]) if len(sys.argv) > 5 else 8192  # frames between evaluations
torch.manual_seed(seed)
N, T, B, E, GAMMA, LAM = 8, 32, 256, 20, 0.98, 0.8
envs = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1") for _ in range(N)],
                                autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
def mlp(out, gain):  # SB3's init: orthogonal, sqrt(2) hidden, ``gain`` out, zero biases
    net = nn.Sequential(nn.Linear(4, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                        nn.Linear(64, out))
    for i in (0, 2, 4):
        nn.init.orthogonal_(net[i].weight, gain=gain if i == 4 else math.sqrt(2))
        nn.init.zeros_(net[i].bias)
    return net
def evaluate(n=20):  # the benchmark's criterion: 20 deterministic episodes, seeds 10,000...
    env, rets = gym.make("CartPole-v1"), []
    for i in range(n):
        o, _ = env.reset(seed=10_000 + i); done, ret = False, 0.0
        while not done:
            a = int(pi(torch.as_tensor(o, dtype=torch.float32)).argmax())
            o, r, term, trunc, _ = env.step(a); ret += r; done = term or trunc
        rets.append(ret)
    return float(np.mean(rets))
pi, vf = mlp(2, 0.01), mlp(1, 1.0)
params = [*pi.parameters(), *vf.parameters()]
opt = torch.optim.Adam(params, lr=1e-3, eps=1e-5)
obs = torch.as_tensor(envs.reset(seed=seed)[0], dtype=torch.float32)
bo, ba = torch.zeros(T, N, 4), torch.zeros(T, N, dtype=torch.long)
blp, br, bd, bv, badv = (torch.zeros(T, N) for _ in range(5))
done_frames, collect, update, solved_at, evaluated, evals = 0, 0.0, 0.0, None, 0, 0
while done_frames < frames:
    left = 1 - done_frames / horizon
    for g in opt.param_groups:
        g["lr"] = 1e-3 * left
    clip = 0.2 * left
    t0 = time.perf_counter()
    with torch.no_grad():
        for t in range(T):
            logp = torch.log_softmax(pi(obs), -1)
            a = torch.multinomial(logp.exp(), 1).squeeze(-1)
            bo[t], ba[t], bv[t] = obs, a, vf(obs).squeeze(-1)
            blp[t] = logp.gather(-1, a[:, None]).squeeze(-1)
            nxt, r, term, trunc, info = envs.step(a.numpy())
            r = torch.as_tensor(r, dtype=torch.float32)
            if trunc.any():  # a time limit bootstraps from the final observation
                final = np.stack([info["final_obs"][i] if trunc[i] else nxt[i] for i in range(N)])
                boot = vf(torch.as_tensor(final, dtype=torch.float32)).squeeze(-1)
                r = r + GAMMA * boot * torch.as_tensor(trunc & ~term, dtype=torch.float32)
            br[t], bd[t] = r, torch.as_tensor(term | trunc, dtype=torch.float32)
            obs = torch.as_tensor(nxt, dtype=torch.float32)
        last, nv = torch.zeros(N), vf(obs).squeeze(-1)
        for t in reversed(range(T)):
            after = nv if t == T - 1 else bv[t + 1]
            last = br[t] + GAMMA * after * (1 - bd[t]) - bv[t] + GAMMA * LAM * (1 - bd[t]) * last
            badv[t] = last
        collect += time.perf_counter() - t0
        done_frames += T * N
        if solve and done_frames - evaluated >= every:  # before training on the batch (untimed)
            evaluated, evals = done_frames, evals + 1
            if evaluate() >= 475:
                solved_at = done_frames
                break
    t1 = time.perf_counter()
    O, A, LP = bo.reshape(-1, 4), ba.reshape(-1), blp.reshape(-1)
    ADV, RET = badv.reshape(-1), (badv + bv).reshape(-1)
    for _ in range(E):
        idx = torch.randperm(T * N)
        for start in range(0, T * N, B):
            i = idx[start:start + B]
            adv = (ADV[i] - ADV[i].mean()) / (ADV[i].std() + 1e-8)
            lp = torch.log_softmax(pi(O[i]), -1).gather(-1, A[i][:, None]).squeeze(-1)
            w = (lp - LP[i]).exp()
            loss = -torch.min(w * adv, w.clamp(1 - clip, 1 + clip) * adv).mean()
            loss = loss + 0.5 * (vf(O[i]).squeeze(-1) - RET[i]).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 0.5)
            opt.step()
    update += time.perf_counter() - t1
print(f"plain frames={done_frames} collect={collect:.3f} update={update:.3f} "
      f"solved_at={solved_at} evals={evals}")
'''

_PLAIN_LINE = re.compile(
    r"frames=(?P<frames>\d+) collect=(?P<collect>[\d.]+) update=(?P<update>[\d.]+) "
    r"solved_at=(?P<solved>\w+) evals=(?P<evals>\d+)")

_SB3_LINE = re.compile(
    r"solved_at=(?P<solved>\w+) wall=(?P<wall>[\d.]+)s train_wall=(?P<train>[\d.]+)s")


def peers_python(arg: str | None) -> str | None:
    """The Python that has stable-baselines3, or None."""
    candidates = [arg, os.environ.get("STREAMRL_PEERS_PYTHON"), "/tmp/peers/bin/python"]
    for c in candidates:
        if c and Path(c).exists():
            probe = subprocess.run([c, "-c", "import stable_baselines3"], capture_output=True)
            if probe.returncode == 0:
                return c
            if c == arg:
                print(f"note: {c} cannot import stable_baselines3", file=sys.stderr)
    return None


def run_streamrl(seed: int, budget: int) -> dict:
    """One streamrl run in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", _STREAMRL_SCRIPT, str(ROOT / "pipelines" / "ppo_cartpole.py"),
         str(seed), str(budget)],
        capture_output=True, text=True, cwd=ROOT,
    )
    if out.returncode != 0:
        raise RuntimeError(f"streamrl seed {seed} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_sb3(python: str, seed: int, script: Path) -> dict:
    """One SB3 anchor run in a fresh process."""
    out = subprocess.run([python, str(script), str(seed)], capture_output=True, text=True)
    match = _SB3_LINE.search(out.stdout)
    if out.returncode != 0 or match is None:
        raise RuntimeError(f"SB3 seed {seed} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    solved = match["solved"]
    return {"solved_at": None if solved == "None" else int(solved),
            "wall": float(match["wall"]), "train": float(match["train"])}


def _plain(seed: int, frames: int, horizon: int, *extra: str) -> re.Match:
    out = subprocess.run([sys.executable, "-c", _PLAIN_SCRIPT, str(seed), str(frames),
                          str(horizon), *extra], capture_output=True, text=True)
    match = _PLAIN_LINE.search(out.stdout)
    if out.returncode != 0 or match is None:
        raise RuntimeError(f"the hand-written loop failed:\n{out.stderr[-3000:]}")
    return match


def run_plain(seed: int, frames: int, horizon: int) -> float:
    """Train seconds (collect + update) of the hand-written loop for ``frames`` frames."""
    match = _plain(seed, frames, horizon)
    if int(match["frames"]) != -(-frames // 256) * 256:
        raise RuntimeError(f"the hand-written loop ran {match['frames']} frames, not {frames}")
    return float(match["collect"]) + float(match["update"])


def solve_plain(seed: int, budget: int) -> int | None:
    """The frames the hand-written loop takes to solve (the benchmark's criterion), or None
    within ``budget``: the same algorithm as SB3's, without either library."""
    solved = _plain(seed, budget, budget, "solve")["solved"]
    return None if solved == "None" else int(solved)


def _fmt(r: dict | None) -> str:
    if r is None:
        return f"{'-':>9} {'-':>7} {'-':>7}"
    solved = f"{r['solved_at']:,}" if r["solved_at"] is not None else "unsolved"
    return f"{solved:>9} {r['wall']:7.2f} {r['train']:7.2f}"


def _summary(name: str, results: list[dict]) -> str:
    solved = [r for r in results if r["solved_at"] is not None]
    if not solved:
        return f"{name}: solved 0/{len(results)}"
    med = {k: statistics.median(r[k] for r in solved) for k in ("solved_at", "wall", "train")}
    mean = statistics.mean(r["solved_at"] for r in solved)
    return (f"{name}: solved {len(solved)}/{len(results)}; median over solved runs: "
            f"{med['solved_at']:,.0f} steps (mean {mean:,.0f}), wall {med['wall']:.2f} s, "
            f"train {med['train']:.2f} s "
            f"(min wall {min(r['wall'] for r in solved):.2f}, max "
            f"{max(r['wall'] for r in solved):.2f})")


def limit_solves_line(solves: list[int | None]) -> str:
    """The summary of the hand-written loop's own frames to solve."""
    solved = [f for f in solves if f is not None]
    if not solved:
        return f"limit solves: 0/{len(solves)}"
    return (f"limit solves: {len(solved)}/{len(solves)}; median {statistics.median(solved):,.0f} "
            f"steps (mean {statistics.mean(solved):,.0f})")


def micro(repeats: int = 500) -> None:
    """Per-call costs behind the split: the library's actor and loss vs the same maths in
    plain torch (same networks, same batch)."""
    import time

    import torch

    from streamrl.cli import load_pipeline
    from streamrl.train.ppo import make_loss

    ppo = load_pipeline(ROOT / "pipelines" / "ppo_cartpole.py")
    torch.set_num_threads(1)
    config = ppo.PPOConfig()
    env = config.make_env(config.num_envs)
    actor, critic = ppo.make_models(config, env)
    loss = make_loss(config, actor, critic)
    nets = [m for m in (*actor.modules(), *critic.modules()) if type(m).__name__ == "MLP"]
    policy_net, value_net = nets
    with torch.no_grad():
        batch = env.rollout(config.steps_per_env, actor, break_when_any_done=False)
        loss.value_estimator(batch)
    flat = batch.reshape(-1)
    td = env.reset()
    obs8 = td["observation"]

    def timed(fn) -> float:
        for _ in range(20):
            fn()
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        return (time.perf_counter() - t0) / repeats * 1e6

    def plain_actor():
        logp = torch.log_softmax(policy_net(obs8), -1)
        action = torch.multinomial(logp.exp(), 1)
        return logp.gather(-1, action)

    obs, act = flat["observation"], flat["action"]
    if act.ndim > 1:  # one-hot actions (gym's default encoding)
        act = act.argmax(-1)
    old_lp, adv = flat["action_log_prob"], flat["advantage"].squeeze(-1)
    target = flat["value_target"]

    def plain_loss():
        logp = torch.log_softmax(policy_net(obs), -1).gather(-1, act.unsqueeze(-1)).squeeze(-1)
        a = (adv - adv.mean()) / adv.std().clamp_min(1e-8)
        w = (logp - old_lp).exp()
        gain = torch.minimum(w * a, w.clamp(0.8, 1.2) * a)
        return -gain.mean() + 0.5 * (value_net(obs) - target).pow(2).mean()

    def lib_loss():
        out = loss(flat)
        return out["loss_objective"] + out["loss_critic"]

    state = {"td": actor(env.reset())}

    def env_step():  # one batched step (done sub-envs reset), the action kept fixed
        _, nxt = env.step_and_maybe_reset(state["td"])
        nxt.set("action", state["td"]["action"])
        state["td"] = nxt

    with torch.no_grad():
        rows = [("actor call, 8 envs: ProbabilisticActor", timed(lambda: actor(td))),
                ("actor call, 8 envs: plain torch", timed(plain_actor)),
                ("env step + reset: SerialEnv(8)", timed(env_step))]
    rows += [("loss fwd+bwd, 256 rows: ClipPPOLoss", timed(lambda: lib_loss().backward())),
             ("loss fwd+bwd, 256 rows: plain torch", timed(lambda: plain_loss().backward()))]
    env.close()
    print(f"micro-benchmarks (one torch thread, {repeats} calls each):")
    for name, us in rows:
        print(f"  {name:<42} {us:8.1f} us")


def main(argv: list[str] | None = None) -> int:
    """Run both libraries for each seed and print a table and medians."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--budget", type=int, default=200_000,
                        help="frame budget and schedule horizon (SB3's total_timesteps)")
    parser.add_argument("--peers-python", default=None,
                        help="a Python with stable-baselines3 (default: $STREAMRL_PEERS_PYTHON "
                             "or /tmp/peers/bin/python)")
    parser.add_argument("--no-sb3", action="store_true", help="run streamrl only")
    parser.add_argument("--limit-solves", action="store_true",
                        help="also run the hand-written loop (SB3's algorithm) to its own "
                             "solve on each seed: frames to solve without either library")
    parser.add_argument("--micro", action="store_true",
                        help="also time the actor and the loss against plain torch")
    args = parser.parse_args(argv)
    python = None if args.no_sb3 else peers_python(args.peers_python)
    script = ANCHOR
    if python is not None and not ANCHOR.is_file():
        tmp = tempfile.NamedTemporaryFile("w", suffix="_sb3_ppo.py", delete=False)
        tmp.write(_SB3_SCRIPT)
        tmp.close()
        script = Path(tmp.name)
    if python is None and not args.no_sb3:
        print("note: no Python with stable-baselines3 found; SB3 reference skipped "
              "(pass --peers-python or set STREAMRL_PEERS_PYTHON)")
    print("PPO CartPole-v1, solved = 20 deterministic episodes average >= 475, eval every "
          "8,192 steps")
    print(f"{'seed':>4} | {'streamrl':>9} {'wall s':>7} {'train s':>7} | "
          f"{'SB3':>9} {'wall s':>7} {'train s':>7} | {'limit s':>7} | streamrl split (s)")
    ours: list[dict] = []
    theirs: list[dict] = []
    limits: list[tuple[float, float, float | None]] = []
    solves: list[int | None] = []
    for seed in args.seeds:
        r = run_streamrl(seed, args.budget)
        ours.append(r)
        s = run_sb3(python, seed, script) if python is not None else None
        if s is not None:
            theirs.append(s)
        limit = run_plain(seed, r["frames"], args.budget)
        limits.append((limit, r["train"], s["train"] if s is not None else None))
        split = f"collect {r['collect']:.2f}, update {r['update']:.2f}, eval {r['eval']:.2f}"
        if args.limit_solves:
            solves.append(solve_plain(seed, args.budget))
            split += f"; limit solved at {solves[-1]}"
        print(f"{seed:>4} | {_fmt(r)} | {_fmt(s)} | {limit:7.2f} | {split}", flush=True)
    print(_summary("streamrl", ours))
    if theirs:
        print(_summary("SB3     ", theirs))
    limit = statistics.median(lim for lim, _, _ in limits)
    ratio = statistics.median(ours_s / lim for lim, ours_s, _ in limits)
    print(f"limit   : the hand-written loop over each seed's streamrl frames: median train "
          f"{limit:.2f} s; streamrl train / limit, median over seeds: {ratio:.2f}")
    if args.limit_solves:
        print(limit_solves_line(solves))
    if args.micro:
        micro()
    return 0


if __name__ == "__main__":
    sys.exit(main())
