"""Replay-buffer benchmark: streamrl vs TorchRL (same run), plus a 200k Atari-frame RSS check.

Usage (run under the shared lock):

    flock /tmp/streamrl-heavy.lock python benchmarks/replay.py [--peers-python PY] [--skip-atari]

TorchRL's figures come from subprocesses running each ``PY`` (``--peers-python``, repeatable,
else ``$STREAMRL_PEERS_PYTHON``, ``os.pathsep``-separated, else ``/tmp/peers/bin/python`` and
``/tmp/peers214/bin/python`` where present), one column each. TorchRL's prioritized sampler
needs the torch its extension was built for (2.14.1); rows it cannot run are reported as
skipped. The same subprocess also runs TorchRL's C++ sum tree on
a fixed set of priorities so that our numpy tree can be checked against it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from tensordict import TensorDict

CAP = 1_000_000

PEER_SNIPPET = r"""
import json, sys, time, tempfile, shutil, torch
from tensordict import TensorDict
torch.set_num_threads(1); torch.manual_seed(0)
def batch(n, obs=4):
    return TensorDict({"observation": torch.randn(n, obs), "action": torch.randint(2, (n,)),
                       "next": {"observation": torch.randn(n, obs), "reward": torch.randn(n, 1),
                                "done": torch.zeros(n, 1, dtype=torch.bool)}}, [n])
def rate(name, fn, reps):
    try:
        fn(); t = time.perf_counter()
        for _ in range(reps): fn()
        print(json.dumps({"row": name, "us": (time.perf_counter() - t) / reps * 1e6}), flush=True)
    except Exception as e:
        print(json.dumps({"row": name, "error": f"{type(e).__name__}: {e}"[:200]}), flush=True)
import torchrl
from torchrl.data import ReplayBuffer, TensorDictPrioritizedReplayBuffer, LazyTensorStorage, LazyMemmapStorage
print(json.dumps({"version": torchrl.__version__, "torch": torch.__version__}), flush=True)
b = batch(1000); R = int(sys.argv[1])
rb = ReplayBuffer(storage=LazyTensorStorage(CAP), batch_size=256)
rate("tensor extend(1000)", lambda: rb.extend(b), 300 // R)
rate("tensor sample(256)", lambda: rb.sample(), 2000 // R)
d = tempfile.mkdtemp()
mrb = ReplayBuffer(storage=LazyMemmapStorage(CAP, scratch_dir=d), batch_size=256)
rate("memmap extend(1000)", lambda: mrb.extend(b), 300 // R)
rate("memmap sample(256)", lambda: mrb.sample(), 2000 // R)
shutil.rmtree(d, ignore_errors=True)
try:
    prb = TensorDictPrioritizedReplayBuffer(alpha=0.7, beta=0.5, storage=LazyTensorStorage(CAP), batch_size=256, priority_key="td_error")
    rate("prioritized extend(1000)", lambda: prb.extend(b), 300 // R)
    def samp_upd():
        s = prb.sample(); s["td_error"] = torch.rand(256); prb.update_tensordict_priority(s)
    rate("prioritized sample(256)+update", samp_upd, 2000 // R)
except Exception as e:
    print(json.dumps({"row": "prioritized", "error": f"{type(e).__name__}: {e}"[:200]}), flush=True)
try:
    from torchrl._torchrl import SumSegmentTreeFp64
    import numpy as np
    rng = np.random.default_rng(0)
    n = 100_000
    vals = rng.random(n) ** 3
    tree = SumSegmentTreeFp64(n)
    tree.update(torch.arange(n), torch.from_numpy(vals))
    mass = rng.random(4096) * float(tree.query(0, n))
    idx = tree.scan_lower_bound(torch.from_numpy(mass))
    print(json.dumps({"tree": [int(i) for i in idx], "total": float(tree.query(0, n))}), flush=True)
except Exception as e:
    print(json.dumps({"row": "tree", "error": f"{type(e).__name__}: {e}"[:200]}), flush=True)
""".replace("CAP", str(CAP))


def batch(n, obs=4):
    return TensorDict(
        {
            "observation": torch.randn(n, obs),
            "action": torch.randint(2, (n,)),
            "next": {
                "observation": torch.randn(n, obs),
                "reward": torch.randn(n, 1),
                "done": torch.zeros(n, 1, dtype=torch.bool),
            },
        },
        [n],
    )


def timeit(fn, reps: int) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps * 1e6


def ours(reduce: int) -> dict[str, float]:
    from streamrl.data import (
        LazyMemmapStorage,
        LazyTensorStorage,
        ReplayBuffer,
        TensorDictPrioritizedReplayBuffer,
    )

    b = batch(1000)
    out = {}
    rb = ReplayBuffer(storage=LazyTensorStorage(CAP), batch_size=256)
    out["tensor extend(1000)"] = timeit(lambda: rb.extend(b), 300 // reduce)
    out["tensor sample(256)"] = timeit(lambda: rb.sample(), 2000 // reduce)
    d = tempfile.mkdtemp(prefix="streamrl-bench-")
    try:
        with LazyMemmapStorage(CAP, scratch_dir=d) as s:
            mrb = ReplayBuffer(storage=s, batch_size=256)
            out["memmap extend(1000)"] = timeit(lambda: mrb.extend(b), 300 // reduce)
            out["memmap sample(256)"] = timeit(lambda: mrb.sample(), 2000 // reduce)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    prb = TensorDictPrioritizedReplayBuffer(
        alpha=0.7, beta=0.5, storage=LazyTensorStorage(CAP), batch_size=256, priority_key="td_error"
    )
    out["prioritized extend(1000)"] = timeit(lambda: prb.extend(b), 300 // reduce)

    def samp_upd():
        s = prb.sample()
        s["td_error"] = torch.rand(256)
        prb.update_tensordict_priority(s)

    out["prioritized sample(256)+update"] = timeit(samp_upd, 2000 // reduce)
    return out


def find_peers_pythons(args: list[str] | None) -> list[str]:
    """Interpreters with TorchRL: the given ones, else $STREAMRL_PEERS_PYTHON, else defaults."""
    if args:
        cands = args
    elif os.environ.get("STREAMRL_PEERS_PYTHON"):
        cands = os.environ["STREAMRL_PEERS_PYTHON"].split(os.pathsep)
    else:
        cands = ["/tmp/peers/bin/python", "/tmp/peers214/bin/python"]
    return [c for c in cands if c and os.path.exists(c)]


def peers(python: str, reduce: int) -> tuple[dict, dict, list]:
    proc = subprocess.run(
        [python, "-c", PEER_SNIPPET, str(reduce)],
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    rows, meta, errors = {}, {}, []
    for line in proc.stdout.splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "us" in rec:
            rows[rec["row"]] = rec["us"]
        elif "error" in rec:
            errors.append(f"{rec['row']}: {rec['error']}")
        else:
            meta.update(rec)
    if proc.returncode != 0:
        errors.append(f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
    return rows, meta, errors


def tree_check(meta: dict) -> str:
    from streamrl.data import SumTree

    if "tree" not in meta:
        return "skipped (TorchRL's C++ tree did not load)"
    rng = np.random.default_rng(0)
    n = 100_000
    vals = rng.random(n) ** 3
    tree = SumTree(n)
    tree.update(np.arange(n), vals)
    mass = rng.random(4096) * tree.total()
    got = tree.find_prefix(mass)
    want = np.asarray(meta["tree"])
    same = int((got == want).sum())
    return (
        f"{same}/{len(want)} prefix searches identical; totals {tree.total():.6f} vs "
        f"{meta['total']:.6f}"
    )


def rss_mb() -> tuple[float, float]:
    cur = peak = 0.0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                cur = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    return cur, peak


def atari_rss(frames: int) -> str:
    from streamrl.data import LazyMemmapStorage, ReplayBuffer

    need = frames * 4 * 84 * 84  # one 4x84x84 uint8 frame stack per transition
    free = shutil.disk_usage("/tmp").free
    if free < need + (5 << 30):
        return f"skipped: {need / 2**30:.1f} GiB needed, {free / 2**30:.1f} GiB free in /tmp"
    d = tempfile.mkdtemp(prefix="streamrl-atari-", dir="/tmp")
    try:
        chunk = 1000
        td = TensorDict(
            {
                "pixels": torch.randint(0, 255, (chunk, 4, 84, 84), dtype=torch.uint8),
                "action": torch.zeros(chunk, dtype=torch.int64),
                "next": {
                    "reward": torch.zeros(chunk, 1),
                    "done": torch.zeros(chunk, 1, dtype=torch.bool),
                },
            },
            [chunk],
        )
        base, _ = rss_mb()
        max_fill = max_sample = 0.0
        t = time.perf_counter()
        with LazyMemmapStorage(frames, scratch_dir=d) as s:
            rb = ReplayBuffer(storage=s, batch_size=256)
            for i in range(frames // chunk):
                rb.extend(td)
                if i % 5 == 0:
                    max_fill = max(max_fill, rss_mb()[0])
            fill_s = time.perf_counter() - t
            t = time.perf_counter()
            for i in range(500):
                rb.sample()
                if i % 5 == 0:
                    max_sample = max(max_sample, rss_mb()[0])
            samp_us = (time.perf_counter() - t) / 500 * 1e6
            disk = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        _, peak = rss_mb()
        return (
            f"{frames} frames of 4x84x84 uint8, {disk / 1e9:.2f} GB on disk; fill "
            f"{fill_s:.1f} s, sample(256) {samp_us:.0f} us; RSS before {base:.0f} MB, max "
            f"while filling {max_fill:.0f} MB, max while sampling {max_sample:.0f} MB, "
            f"process peak (VmHWM) {peak:.0f} MB"
        )
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--peers-python", action="append", help="python with TorchRL (repeatable)")
    p.add_argument("--skip-atari", action="store_true")
    p.add_argument("--atari-frames", type=int, default=200_000)
    p.add_argument("--quick", action="store_true", help="10x fewer repetitions")
    p.add_argument("--atari-only", action="store_true", help="only the RSS check")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    reduce = 10 if args.quick else 1
    if args.atari_only:
        print("LazyMemmapStorage Atari RSS:", atari_rss(args.atari_frames))
        return

    mine = ours(reduce)
    runs = [(py, *peers(py, reduce)) for py in find_peers_pythons(args.peers_python)]

    print(f"replay buffers, 1M capacity, CartPole-shaped transitions (torch {torch.__version__})")
    header = f"{'operation':32s} {'streamrl us':>12s}"
    for i, (py, _, meta, _) in enumerate(runs):
        print(f"[{i + 1}] TorchRL {meta.get('version', '?')}, torch {meta.get('torch', '?')}: {py}")
        header += f" {f'[{i + 1}] us':>10s} {'ratio':>6s}"
    print(header)
    for row, us in mine.items():
        line = f"{row:32s} {us:12.1f}"
        for _, theirs, _, _ in runs:
            ref = theirs.get(row)
            line += f" {ref:10.1f} {us / ref:6.2f}" if ref else f" {'n/a':>10s} {'':>6s}"
        print(line)
    if not runs:
        print("  TorchRL not found (give --peers-python or STREAMRL_PEERS_PYTHON)")
    for i, (_, _, _, errors) in enumerate(runs):
        for err in errors:
            print(f"  [{i + 1}] skipped: {err}")
    meta = next((m for _, _, m, _ in runs if "tree" in m), {})
    print("sum tree vs TorchRL's C++ SumSegmentTreeFp64:", tree_check(meta))
    if not args.skip_atari:
        print("LazyMemmapStorage Atari RSS:", atari_rss(args.atari_frames))


if __name__ == "__main__":
    main(sys.argv[1:])
