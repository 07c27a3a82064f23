"""Offline datasets: time to load N transitions into a buffer, and to reopen the cache.

Usage (run under the shared lock):

    flock /tmp/streamrl-heavy.lock python benchmarks/datasets.py [--transitions N]
        [--peers-python PY] [--json OUT]

Two sources of the same size are generated locally in a temporary directory, HalfCheetah-like
(17 observation dims, 6 action dims, episodes of 1000 steps): an HDF5 file in D4RL's layout
(float32, with ``timeouts``) and a Minari dataset (written by ``minari`` itself, float64
observations as Minari's MuJoCo datasets have). For each, streamrl's and TorchRL 0.14.1's
loader (in a subprocess of ``PY``, default ``/tmp/peers/bin/python`` where present) time:

- ``load``: the first open, converting the source into the memory-mapped cache;
- ``reopen``: a second open from the cache (the source is moved away first for streamrl);
- ``sample``: one ``sample(256)`` from the reopened buffer (mean over 200).

Both sides run torch with one thread. Each figure is the median of ``--repeats`` runs (default 3), streamrl's and TorchRL's
alternating, each run converting into a fresh cache.

TorchRL cannot be pointed at a local D4RL file; its download helper is replaced by one that
returns the local path (so no copy is timed), and its Minari loader runs with
``load_from_local_minari=True`` on the same local dataset.
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
import warnings
from pathlib import Path

import numpy as np

OBS, ACT, EPISODE = 17, 6, 1000
D4RL_ID, MINARI_ID = "cheetah-bench-v0", "bench/cheetah-v0"

PEER_SNIPPET = r"""
import json, os, sys, time, warnings
warnings.simplefilter("ignore")
import torch, torchrl
torch.set_num_threads(1)
import torchrl.data.datasets.d4rl as d4rl
from torchrl.data.datasets import D4RLExperienceReplay, MinariExperienceReplay
h5, minari_root, cache = sys.argv[1], sys.argv[2], sys.argv[3]
print(json.dumps({"version": torchrl.__version__}), flush=True)
d4rl.D4RL_DATASETS["cheetah-bench-v0"] = "file://" + h5
d4rl._download_dataset_from_url = lambda url, path: h5  # the local file, no copy
def timed(name, make):
    try:
        t = time.perf_counter(); rb = make(); dt = time.perf_counter() - t
        print(json.dumps({"row": name, "s": dt, "len": len(rb)}), flush=True)
        return rb
    except Exception as e:
        print(json.dumps({"row": name, "error": f"{type(e).__name__}: {e}"[:300]}), flush=True)
def sample(name, rb):
    if rb is None:
        return
    rb.sample(); t = time.perf_counter()
    for _ in range(200): rb.sample()
    print(json.dumps({"row": name, "us": (time.perf_counter() - t) / 200 * 1e6}), flush=True)
mk = lambda: D4RLExperienceReplay("cheetah-bench-v0", 256, root=cache + "/d4rl", direct_download=True)
timed("d4rl load", mk); sample("d4rl sample", timed("d4rl reopen", mk))
os.environ["MINARI_DATASETS_PATH"] = minari_root
timed("minari load", lambda: MinariExperienceReplay("bench/cheetah-v0", 256, root=cache + "/minari", load_from_local_minari=True))
rb = timed("minari reopen", lambda: MinariExperienceReplay("bench/cheetah-v0", 256, root=cache + "/minari"))
sample("minari sample", rb)
"""


def write_d4rl(path: Path, n: int) -> None:
    import h5py

    rng = np.random.default_rng(0)
    timeouts = np.zeros(n, bool)
    timeouts[EPISODE - 1::EPISODE] = True
    with h5py.File(path, "w") as f:
        f["observations"] = rng.standard_normal((n, OBS), dtype=np.float32)
        f["actions"] = rng.uniform(-1, 1, (n, ACT)).astype(np.float32)
        f["rewards"] = rng.standard_normal(n, dtype=np.float32)
        f["terminals"] = np.zeros(n, bool)
        f["timeouts"] = timeouts


def write_minari(n: int) -> None:
    """A Minari dataset of ``n`` steps under ``$MINARI_DATASETS_PATH`` (written by minari)."""
    import gymnasium as gym
    import minari
    from minari.data_collector import EpisodeBuffer

    rng = np.random.default_rng(1)
    episodes = []
    for k, start in enumerate(range(0, n, EPISODE)):
        steps = min(EPISODE, n - start)
        ended = np.zeros(steps, bool)
        ended[-1] = True
        episodes.append(EpisodeBuffer(
            id=k, seed=k, observations=rng.standard_normal((steps + 1, OBS)),
            actions=rng.uniform(-1, 1, (steps, ACT)).astype(np.float32),
            rewards=rng.standard_normal(steps), terminations=np.zeros(steps, bool),
            truncations=ended))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # minari asks for author, description, ...
        minari.create_dataset_from_buffers(
            MINARI_ID, episodes,
            observation_space=gym.spaces.Box(-np.inf, np.inf, (OBS,), np.float64),
            action_space=gym.spaces.Box(-1, 1, (ACT,), np.float32))


def _timed(make):
    t = time.perf_counter()
    rb = make()
    return rb, time.perf_counter() - t


def _sample_us(rb) -> float:
    rb.sample()
    t = time.perf_counter()
    for _ in range(200):
        rb.sample()
    return (time.perf_counter() - t) / 200 * 1e6


def run_streamrl(h5: Path, minari_root: Path, cache: Path) -> dict[str, dict]:
    from streamrl.data.datasets import D4RLExperienceReplay, MinariExperienceReplay

    out: dict[str, dict] = {}
    rb, s = _timed(lambda: D4RLExperienceReplay(h5, 256, root=cache / "d4rl"))
    out["d4rl load"] = {"s": s, "len": len(rb)}
    rb.close()
    moved = h5.with_name("moved.hdf5")
    os.replace(h5, moved)  # the reopen must not need the source
    rb, s = _timed(lambda: D4RLExperienceReplay(h5.stem, 256, root=cache / "d4rl"))
    out["d4rl reopen"] = {"s": s, "len": len(rb)}
    out["d4rl sample"] = {"us": _sample_us(rb)}
    rb.close()
    os.replace(moved, h5)
    rb, s = _timed(lambda: MinariExperienceReplay(MINARI_ID, 256, root=cache / "minari"))
    out["minari load"] = {"s": s, "len": len(rb)}
    rb.close()
    hidden = minari_root.with_name("minari-moved")
    os.replace(minari_root, hidden)
    rb, s = _timed(lambda: MinariExperienceReplay(MINARI_ID, 256, root=cache / "minari"))
    out["minari reopen"] = {"s": s, "len": len(rb)}
    out["minari sample"] = {"us": _sample_us(rb)}
    rb.close()
    os.replace(hidden, minari_root)
    return out


def run_peer(python: str, h5: Path, minari_root: Path, cache: Path) -> dict[str, dict]:
    proc = subprocess.run([python, "-c", PEER_SNIPPET, str(h5), str(minari_root), str(cache)],
                          capture_output=True, text=True, timeout=3600)
    out: dict[str, dict] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            item = json.loads(line)
            if "row" in item:
                out[item.pop("row")] = item
            else:
                out["_version"] = item
    if proc.returncode != 0:
        out["_error"] = {"error": proc.stderr.strip().splitlines()[-1:] or ["exit"]}
    return out


def default_peer() -> str | None:
    path = os.environ.get("STREAMRL_PEERS_PYTHON", "/tmp/peers/bin/python")
    return path if path and os.path.exists(path) else None


def _cell(item: dict | None) -> str:
    if item is None:
        return "-"
    if "error" in item:
        return "error"
    if "us" in item:
        return f"{item['us']:.0f} us"
    if item["s"] < 1:
        return f"{item['s'] * 1e3:.1f} ms"
    return f"{item['s']:.2f} s"


def median(runs: list[dict]) -> dict:
    """Per row, the median of the runs' figures (an error in any run is kept)."""
    out: dict[str, dict] = {}
    for row in runs[0]:
        items = [run.get(row, {"error": "missing"}) for run in runs]
        bad = [i for i in items if "error" in i]
        if bad or row.startswith("_"):
            out[row] = bad[0] if bad else items[0]
            continue
        unit = "us" if "us" in items[0] else "s"
        out[row] = {**items[0], unit: float(np.median([i[unit] for i in items]))}
    return out


def table(ours: dict, peer: dict | None, n: int, repeats: int = 1) -> str:
    rows = ["d4rl load", "d4rl reopen", "d4rl sample", "minari load", "minari reopen",
            "minari sample"]
    version = (peer or {}).get("_version", {}).get("version", "-")
    lines = [f"{n} transitions, median of {repeats} run(s)",
             f"| | streamrl | TorchRL {version} |", "|---|---|---|"]
    for row in rows:
        lines.append(f"| {row} | {_cell(ours.get(row))} | "
                     f"{_cell(peer.get(row)) if peer is not None else '-'} |")
    for row in ("d4rl load", "minari load"):
        lengths = [str(side.get(row, {}).get("len", "-")) for side in (ours, peer or {})]
        lines.append(f"{row}: rows {' / '.join(lengths)} (streamrl / TorchRL)")
    if peer:
        for row, item in peer.items():
            if "error" in item:
                lines.append(f"TorchRL {row}: {item['error']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transitions", type=int, default=1_000_000)
    parser.add_argument("--peers-python", default=default_peer(),
                        help="python with torchrl 0.14.1 ('' to skip)")
    parser.add_argument("--repeats", type=int, default=3, help="runs; the median is shown")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args(argv)
    n = args.transitions
    work = Path(tempfile.mkdtemp(prefix="streamrl-bench-datasets-"))
    prev = os.environ.get("MINARI_DATASETS_PATH")
    try:
        minari_root = work / "minari"
        minari_root.mkdir()
        os.environ["MINARI_DATASETS_PATH"] = str(minari_root)
        h5 = work / f"{D4RL_ID}.hdf5"
        t = time.perf_counter()
        write_d4rl(h5, n)
        write_minari(n)
        print(f"generated sources in {time.perf_counter() - t:.1f} s", flush=True)
        ours_runs, peer_runs = [], []
        for r in range(args.repeats):  # alternated, so that both see the same machine load
            ours_runs.append(run_streamrl(h5, minari_root, work / f"cache-streamrl-{r}"))
            if args.peers_python:
                peer_runs.append(run_peer(args.peers_python, h5, minari_root,
                                          work / f"cache-torchrl-{r}"))
        ours = median(ours_runs)
        peer = median(peer_runs) if peer_runs else None
        print(table(ours, peer, n, args.repeats), flush=True)
        result = {"transitions": n, "repeats": args.repeats, "streamrl": ours,
                  "torchrl": peer, "streamrl_runs": ours_runs, "torchrl_runs": peer_runs}
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=1)
        return result
    finally:
        if prev is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = prev
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)  # as the TorchRL subprocess: no thread contention on 2 cores
    sys.exit(0 if main() else 1)
