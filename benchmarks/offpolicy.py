"""Off-policy learners beside Stable-Baselines3 2.9.2, in one run.

    flock /tmp/streamrl-heavy.lock python benchmarks/offpolicy.py [--parts sac,compile,dqn]
        [--seeds 0 1 2 3 4] [--sac-steps 3000] [--peers-python PATH] [--lockstep]
        [--dqn-systems streamrl,sb3]

Part ``sac``: gradient updates per second of SAC on Pendulum-v1 with rl-zoo's hyper-parameters
(256x256 actor and critics, batch 256, lr 1e-3, one update per env step, torch on 1 thread):
``pipelines/sac_pendulum.py``'s graph in lockstep (SB3's order: each batch of frames collected
after the updates the frames before it grant) and concurrent (its default), timed between its
first and last learner messages; SB3's ``SAC`` learns ``learning_starts`` steps untimed, then
``--sac-steps`` timed ones.

Part ``compile``: one SAC update of ``pipelines/sac_pendulum.py``'s loss (forward, backward,
fused Adam, soft update; batch 256, 1 thread) in eager mode and with the loss's forward under
:func:`torch.compile` (default inductor backend): milliseconds per update and the seconds the
first compiled calls take. Eager stays the default where compiling does not pay.

Part ``dqn``: env steps and wall seconds until DQN solves CartPole-v1 (rl-zoo's
hyper-parameters; solved = the mean of 20 deterministic evaluation episodes (seeds 10,000 ...)
>= 475, checked every 5,000 steps, within 50k steps; streamrl evaluates the weights after
the updates SB3 has made at those steps, reported at the frames it collected for them), for
each seed (``--lockstep``: streamrl in SB3's order of collection; ``--dqn-systems``: which of
the two to run): SB3 runs the shared
anchor script (``../shared/anchors/anchor_sb3_dqn.py``) with the Python of a venv that has
stable-baselines3 (``--peers-python``, ``$STREAMRL_PEERS_PYTHON``, ``/tmp/peers/bin/python``,
else this one); streamrl runs ``pipelines/dqn_cartpole.py`` with the same evaluation, and its
wall time to the solving evaluation is read from the run's metrics. Each run is a fresh
process and the two libraries alternate, so both see the same machine load. The medians over
solved runs are printed with every seed's figures.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ppo_cartpole import peers_python  # noqa: E402

ANCHOR_DQN = Path("/work/shared/anchors/anchor_sb3_dqn.py")
PENDULUM = "Pendulum-v1"

_STREAMRL_DQN = '''
import json, sys
from pathlib import Path
from streamrl.cli import load_pipeline
dqn = load_pipeline(Path(sys.argv[1]))
run_dir = Path(sys.argv[3])
config, _ = dqn.parse_args(["--seed", sys.argv[2], "--eval-episodes", "20",
                            "--eval-interval", "5000", "--target-return", "475",
                            "--frames", "50000", "--logger", "none", "--threads", "1",
                            *sys.argv[4:]])
dqn.train(config, run_dir=run_dir)
rows = [json.loads(line) for line in open(run_dir / "metrics.jsonl")]
evals = [r for r in rows if r.get("eval_return") is not None]
solved = next((r for r in evals if r["eval_return"] >= 475), None)
last = rows[-1]
print(json.dumps({"solved_at": solved and solved.get("eval_frames", solved["frames"]),
                  "wall": (solved or last)["wall_s"],
                  "best": max((r["eval_return"] for r in evals), default=None)}))
'''

_SB3_LINE = re.compile(r"solved_at=(?P<solved>\w+) best=(?P<best>[-\d.]+) wall=(?P<wall>[\d.]+)s")


# ------------------------------------------------------------------------------------ SAC
def sac_rows(steps: int, learning_starts: int) -> list[tuple[str, float, float]]:
    """(system, env steps/s, updates/s) for SB3 and both streamrl topologies."""
    import suites_training as st

    rows = []
    sb3 = st.sb3_updates("SAC", steps, learning_starts, env_name=PENDULUM, learning_rate=1e-3)
    rows.append(("SB3 2.9.2 SAC", *sb3))
    for lockstep in (True, False):
        mode = "lockstep" if lockstep else "concurrent"
        figures = st.streamrl_updates("sac_pendulum", steps, learning_starts, lockstep)
        rows.append((f"streamrl sac_pendulum ({mode})", *figures))
    return rows


def sac_medians(rounds: list[list[tuple[str, float, float]]]) -> str:
    """Each system's median updates/s and median ratio to SB3 (the first row) over rounds.

    >>> print(sac_medians([[("SB3", 1.0, 100.0), ("ours", 1.0, 130.0)],
    ...                    [("SB3", 1.0, 80.0), ("ours", 1.0, 100.0)],
    ...                    [("SB3", 1.0, 90.0), ("ours", 1.0, 126.0)]]))
    medians over 3 rounds (updates/s, ratio to SB3 per round):
      SB3                                       90.0   1.00
      ours                                     126.0   1.30
    """
    lines = [f"medians over {len(rounds)} rounds (updates/s, ratio to SB3 per round):"]
    for i, (name, _, _) in enumerate(rounds[0]):
        updates = statistics.median(r[i][2] for r in rounds)
        ratio = statistics.median(r[i][2] / r[0][2] for r in rounds)
        lines.append(f"  {name:<36} {updates:9.1f} {ratio:6.2f}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ compile
def compile_rows(updates: int = 300) -> list[tuple[str, float, float]]:
    """(mode, ms per SAC update, seconds of the first three updates) eager and compiled."""
    return [(mode, *_time_sac_update(mode == "torch.compile", updates))
            for mode in ("eager", "torch.compile")]


def _time_sac_update(compiled: bool, updates: int) -> tuple[float, float]:
    import time

    import torch
    from tensordict import TensorDict

    from streamrl.cli import load_pipeline

    sac = load_pipeline(ROOT / "pipelines" / "sac_pendulum.py")
    torch.set_num_threads(1)
    config = sac.SACConfig()
    torch.manual_seed(0)
    env = config.make_env()
    actor, qvalue = sac.make_models(config, env)
    with torch.no_grad():
        actor(env.reset())
    env.close()
    loss, optim, soft = sac.make_update(config, actor, qvalue)
    n = config.batch_size
    batch = TensorDict({
        "observation": torch.randn(n, 3), "action": torch.rand(n, 1) * 4 - 2,
        "next": {"observation": torch.randn(n, 3), "reward": torch.randn(n, 1),
                 "done": torch.zeros(n, 1, dtype=torch.bool),
                 "terminated": torch.zeros(n, 1, dtype=torch.bool)}}, [n])
    forward = torch.compile(loss) if compiled else loss

    def update() -> None:
        out = forward(batch)
        optim.zero_grad(set_to_none=True)
        (out["loss_actor"] + out["loss_qvalue"] + out["loss_alpha"]).backward()
        optim.step()
        soft.step()

    t0 = time.perf_counter()
    for _ in range(3):
        update()
    first = time.perf_counter() - t0
    for _ in range(20):
        update()
    t0 = time.perf_counter()
    for _ in range(updates):
        update()
    return (time.perf_counter() - t0) / updates * 1e3, first


# ------------------------------------------------------------------------------------ DQN
def run_streamrl_dqn(seed: int, lockstep: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, "-c", _STREAMRL_DQN, str(ROOT / "pipelines" / "dqn_cartpole.py"),
             str(seed), str(Path(tmp) / "run"), *(["--lockstep"] if lockstep else [])],
            capture_output=True, text=True, cwd=ROOT,
        )
    if out.returncode != 0:
        raise RuntimeError(f"streamrl seed {seed} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_sb3_dqn(python: str, seed: int) -> dict:
    out = subprocess.run([python, str(ANCHOR_DQN), str(seed)], capture_output=True, text=True)
    match = _SB3_LINE.search(out.stdout)
    if out.returncode != 0 or match is None:
        raise RuntimeError(f"SB3 seed {seed} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    solved = match["solved"]
    return {"solved_at": None if solved == "None" else int(solved), "wall": float(match["wall"]),
            "best": float(match["best"])}


def dqn_summary(name: str, results: list[dict]) -> str:
    solved = [r for r in results if r["solved_at"] is not None]
    if not solved:
        return f"{name}: solved 0/{len(results)}"
    frames = statistics.median(r["solved_at"] for r in solved)
    wall = statistics.median(r["wall"] for r in solved)
    return (f"{name}: solved {len(solved)}/{len(results)}; median over solved runs: "
            f"{frames:,.0f} steps, wall {wall:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="sac,dqn",
                        help="comma-separated: sac, compile, dqn")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--sac-steps", type=int, default=3000, help="timed SAC steps")
    parser.add_argument("--sac-learning-starts", type=int, default=1000)
    parser.add_argument("--sac-rounds", type=int, default=1,
                        help="sac: rounds, each running SB3 and both topologies in turn; "
                             "the ratios to SB3 are reported as medians over the rounds")
    parser.add_argument("--peers-python", default=None)
    parser.add_argument("--lockstep", action="store_true",
                        help="dqn: run dqn_cartpole in lockstep (SB3's order of collection)")
    parser.add_argument("--dqn-systems", default="streamrl,sb3",
                        help="dqn: comma-separated systems to run: streamrl, sb3")
    args = parser.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(parts) - {"sac", "compile", "dqn"})
    if unknown:
        parser.error(f"unknown parts {unknown}; expected sac, compile and/or dqn")
    if "sac" in parts:
        if args.sac_rounds < 1:
            parser.error(f"--sac-rounds: expected >= 1, found {args.sac_rounds}")
        print(f"SAC {PENDULUM}: {args.sac_steps} timed steps after {args.sac_learning_starts} "
              f"(learning_starts), 1 thread, {args.sac_rounds} round(s)", flush=True)
        rounds = []
        for k in range(args.sac_rounds):
            rows = sac_rows(args.sac_steps, args.sac_learning_starts)
            rounds.append(rows)
            base = rows[0][2]
            print(f"{'round ' + str(k + 1) + ': system':<36} {'env steps/s':>12} "
                  f"{'updates/s':>10} {'vs SB3':>7}")
            for name, steps, updates in rows:
                print(f"{name:<36} {steps:12.1f} {updates:10.1f} {updates / base:7.2f}",
                      flush=True)
        if len(rounds) > 1:
            print(sac_medians(rounds))
    if "compile" in parts:
        print(f"\nSAC update ({PENDULUM} networks, batch 256, 1 thread), eager vs torch.compile",
              flush=True)
        print(f"{'mode':<16} {'ms/update':>10} {'first 3 updates s':>18}")
        for mode, ms, first in compile_rows():
            print(f"{mode:<16} {ms:10.2f} {first:18.1f}")
    if "dqn" in parts:
        python = peers_python(args.peers_python) or sys.executable
        systems = set(args.dqn_systems.split(","))
        mode = " --lockstep" if args.lockstep else ""
        print(f"\nDQN CartPole-v1 to 475 (streamrl{mode}; SB3 with {python})", flush=True)
        ours, theirs = [], []
        none = {"solved_at": "n/a", "wall": float("nan")}
        print(f"{'seed':>4} {'streamrl steps':>14} {'wall s':>7} {'SB3 steps':>10} {'wall s':>7}")
        for seed in args.seeds:
            a = run_streamrl_dqn(seed, args.lockstep) if "streamrl" in systems else none
            b = run_sb3_dqn(python, seed) if "sb3" in systems else none
            ours += [a] if a is not none else []
            theirs += [b] if b is not none else []
            print(f"{seed:>4} {a['solved_at'] or '-':>14} {a['wall']:7.1f} "
                  f"{b['solved_at'] or '-':>10} {b['wall']:7.1f}", flush=True)
        if ours:
            print(dqn_summary(f"streamrl dqn_cartpole{mode}", ours))
        if theirs:
            print(dqn_summary("SB3 2.9.2 DQN", theirs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
