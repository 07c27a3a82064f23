"""GAE on [64 envs x 1024 steps]: streamrl's scan vs a per-step loop vs TorchRL's GAE.

A second table times TD(lambda) returns on the same data (streamrl vs TorchRL).

Usage::

    flock /tmp/streamrl-heavy.lock python benchmarks/value_estimators.py \
        [--peers-python /path/to/python-with-torchrl] [--envs 64] [--steps 1024]

The TorchRL row runs in a subprocess with another interpreter (``--peers-python`` or the
``STREAMRL_PEERS_PYTHON`` environment variable) on the *same* data (saved to a temporary
file), and its output is checked against streamrl's. Without that interpreter, or when it
cannot import torchrl, the row is skipped with a note. All rows use the same number of
torch threads (``--threads``, default 1).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from streamrl.objectives.value.functional import (
    generalized_advantage_estimate,
    td_lambda_return_estimate,
)

_PEER_SCRIPT = r"""
import json, statistics, sys, time
import torch
from torchrl.objectives.value.functional import (
    generalized_advantage_estimate, td_lambda_return_estimate,
    vec_generalized_advantage_estimate)
path, repeats, threads, out_path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(threads)
d = torch.load(path)
args = (d["gamma"], d["lmbda"], d["value"], d["next_value"], d["reward"], d["done"],
        d["terminated"])
td_args = (d["gamma"], d["lmbda"], d["next_value"], d["reward"], d["done"], d["terminated"])
result = {}
for name, fn, fargs in [
        ("torchrl_gae", lambda *a: generalized_advantage_estimate(*a)[0], args),
        ("torchrl_vec_gae", lambda *a: vec_generalized_advantage_estimate(*a)[0], args),
        ("torchrl_td_lambda", td_lambda_return_estimate, td_args)]:
    for _ in range(3):
        out = fn(*fargs)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter(); out = fn(*fargs); times.append(time.perf_counter() - t0)
    result[name] = {"median_s": statistics.median(times), "min_s": min(times)}
    torch.save(out, out_path + "." + name)
result["torchrl_version"] = __import__("torchrl").__version__
print(json.dumps(result))
"""


def per_step_reference(gamma, lmbda, value, next_value, reward, done, terminated):
    """The textbook loop: one step of the backward recursion per Python iteration."""
    not_done = 1.0 - done.float()
    not_term = 1.0 - terminated.float()
    adv = torch.empty_like(reward)
    running = torch.zeros_like(reward[:, 0])
    for t in reversed(range(reward.shape[1])):
        delta = reward[:, t] + gamma * not_term[:, t] * next_value[:, t] - value[:, t]
        running = delta + gamma * lmbda * not_done[:, t] * running
        adv[:, t] = running
    return adv


def _time(fn, repeats):
    for _ in range(3):
        out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), out


def _make_data(envs, steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (envs, steps, 1)
    done = torch.rand(shape, generator=g) < 0.01
    terminated = done & (torch.rand(shape, generator=g) < 0.5)
    return {
        "gamma": 0.99,
        "lmbda": 0.95,
        "value": torch.randn(shape, generator=g),
        "next_value": torch.randn(shape, generator=g),
        "reward": torch.randn(shape, generator=g),
        "done": done,
        "terminated": terminated,
    }


def _run_peer(python, data, repeats, threads):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.pt")
        out_path = os.path.join(tmp, "adv")
        torch.save(data, path)
        proc = subprocess.run(
            [python, "-c", _PEER_SCRIPT, path, str(repeats), str(threads), out_path],
            capture_output=True, text=True, timeout=600,
        )
        if proc.returncode != 0:
            return None, f"peer interpreter failed: {proc.stderr.strip().splitlines()[-1:]}"
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        for name in ("torchrl_gae", "torchrl_vec_gae", "torchrl_td_lambda"):
            result[name]["out"] = torch.load(out_path + "." + name)
        return result, None


def _table(rows, base):
    print(f"{'implementation':<58} {'median ms':>10} {'min ms':>9} {'vs streamrl':>12}")
    for label, m, b in rows:
        print(f"{label:<58} {m * 1e3:>10.3f} {b * 1e3:>9.3f} {m / base:>11.1f}x")


def main(argv=None):
    """Run the benchmark and print a table of times and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--peers-python", default=os.environ.get("STREAMRL_PEERS_PYTHON"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = _make_data(args.envs, args.steps)
    gae_args = (data["gamma"], data["lmbda"], data["value"], data["next_value"], data["reward"],
                data["done"], data["terminated"])

    rows = []
    med, best, (adv, _) = _time(lambda: generalized_advantage_estimate(*gae_args), args.repeats)
    rows.append(("streamrl GAE (parallel scan)", med, best))
    med_ref, best_ref, adv_ref = _time(lambda: per_step_reference(*gae_args),
                                       max(3, args.repeats // 3))
    rows.append(("per-step Python loop (reference)", med_ref, best_ref))
    err_ref = (adv - adv_ref).abs().max().item()
    td_args = (data["gamma"], data["lmbda"], data["next_value"], data["reward"], data["done"],
               data["terminated"])
    td_rows = []
    med_td, best_td, ret = _time(lambda: td_lambda_return_estimate(*td_args), args.repeats)
    td_rows.append(("streamrl TD(lambda) (parallel scan)", med_td, best_td))

    notes = [f"max |streamrl - per-step loop| = {err_ref:.2e}"]
    torchrl_med = None
    if not args.peers_python:
        notes.append("TorchRL row skipped: pass --peers-python or set STREAMRL_PEERS_PYTHON")
    else:
        result, error = _run_peer(args.peers_python, data, args.repeats, args.threads)
        if error:
            notes.append(f"TorchRL row skipped: {error}")
        else:
            version = result["torchrl_version"]
            for name, label in [("torchrl_gae", f"TorchRL {version} generalized_advantage_estimate"),
                                ("torchrl_vec_gae",
                                 f"TorchRL {version} vec_generalized_advantage_estimate")]:
                r = result[name]
                rows.append((label, r["median_s"], r["min_s"]))
                diff = (adv - r["out"].to(adv.dtype)).abs().max().item()
                notes.append(f"max |streamrl GAE - {name}| = {diff:.2e}")
            r = result["torchrl_td_lambda"]
            td_rows.append((f"TorchRL {version} td_lambda_return_estimate", r["median_s"],
                            r["min_s"]))
            diff = (ret - r["out"].to(ret.dtype)).abs().max().item()
            notes.append(f"max |streamrl TD(lambda) - torchrl_td_lambda| = {diff:.2e}")
            torchrl_med = result["torchrl_gae"]["median_s"]

    print(f"GAE on [{args.envs} envs x {args.steps} steps x 1], gamma=0.99, lmbda=0.95, "
          f"done p=0.01 (half of them terminations), torch {torch.__version__}, "
          f"{args.threads} thread(s)")
    _table(rows, med)
    print("TD(lambda) return on the same data")
    _table(td_rows, med_td)
    for note in notes:
        print("note:", note)
    if torchrl_med is not None:
        verdict = "meets" if med <= torchrl_med else "MISSES"
        print(f"target (at or below TorchRL's GAE time): {verdict} "
              f"({med * 1e3:.3f} ms vs {torchrl_med * 1e3:.3f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
