"""Soak benchmark: run each pipeline for a long time and watch its resources.

Every ``--interval`` seconds, for ``--minutes`` minutes, one row per pipeline: resident
memory, threads, open file descriptors and worker processes of the whole process tree (the
pipeline's process and its descendants), the ``/dev/shm`` entries this tree holds, the
graph's queue occupancy (messages queued on its bounded edges, and the fullest edge), and the
frames collected (the run's newest metrics row). Then the pipeline is stopped with SIGINT, the
documented clean stop (final checkpoint, exit status 130), and the script checks that every
worker process it saw is gone.

The summary compares the first sample after ``--warmup-minutes`` with the last one: a
library that leaks shows growing memory, threads, descriptors or workers there. Replay
buffers fill during a run, so the off-policy pipelines get ``--buffer-size 20000`` (full
within the warm-up on the cheap envs; the Atari and MuJoCo ones fill later, and the row
says how full); the target returns are set out of reach, so no run ends by solving its task.

Linux only (reads ``/proc``). Each pipeline runs in its own interpreter::

    python benchmarks/soak.py                                   # every pipeline, 20 min each
    python benchmarks/soak.py --pipelines ppo_cartpole,dqn_cartpole --minutes 3 --interval 20
    python benchmarks/soak.py --jobs 3                          # three pipelines at a time
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from streamrl.testing import descendants, pid_alive

ROOT = Path(__file__).resolve().parents[1]
PIPELINES = ("ppo_cartpole", "dqn_cartpole", "sac_pendulum", "ppo_mujoco", "sac_mujoco",
             "td3_mujoco", "ppo_atari", "dqn_atari")
# flags that keep a pipeline running for the whole soak and fill its replay buffer early
NEVER_SOLVED = ["--target-return", "1e12", "--no-progress"]
ON_POLICY = ["--frames", "1000000000"]
# the replay source is given its sample budget up front: off-policy budgets stay bounded
SMALL_BUFFER = ["--frames", "5000000", "--buffer-size", "20000"]
EXTRA = {"ppo_cartpole": ON_POLICY, "ppo_mujoco": ON_POLICY, "ppo_atari": ON_POLICY,
         "dqn_cartpole": SMALL_BUFFER, "sac_pendulum": SMALL_BUFFER,
         "sac_mujoco": SMALL_BUFFER, "td3_mujoco": SMALL_BUFFER, "dqn_atari": SMALL_BUFFER}
_ROW = "__soak__ "


# ------------------------------------------------------------------ /proc readings
def _status(pid: int) -> dict[str, int]:
    fields = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "Threads"):
                    fields[key] = int(value.split()[0])
    except OSError:
        pass
    return fields


def _fds(pid: int) -> list[str]:
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return []
    targets = []
    for n in names:
        try:
            targets.append(os.readlink(f"/proc/{pid}/fd/{n}"))
        except OSError:
            pass
    return targets


def tree_resources(pid: int) -> dict[str, Any]:
    """RSS (MiB), threads, open fds, worker processes and mapped-or-open ``/dev/shm`` files of
    ``pid`` and its descendants."""
    pids = [pid, *descendants(pid)]
    rss = threads = fds = 0
    shm: set[str] = set()
    for p in pids:
        st = _status(p)
        rss += st.get("VmRSS", 0)
        threads += st.get("Threads", 0)
        targets = _fds(p)
        fds += len(targets)
        shm.update(t for t in targets if t.startswith("/dev/shm/"))
        try:
            with open(f"/proc/{p}/maps") as f:
                shm.update(line.split()[-1] for line in f if "/dev/shm/" in line)
        except OSError:
            pass
    return {"rss_mib": rss / 1024, "threads": threads, "fds": fds, "workers": len(pids) - 1,
            "shm": len(shm), "pids": pids[1:]}


def graph_reading() -> dict[str, Any]:
    """Queued messages on the bounded edges of the graphs running in this process and the
    fullest edge's occupancy / capacity."""
    from streamrl.graph import runner

    queued, fullest = 0, 0.0
    for graph in list(runner._running):  # the graphs with a run in progress
        for e in graph.stats().edges.values():
            if e.capacity:
                queued += e.occupancy
                fullest = max(fullest, e.occupancy / e.capacity)
    return {"queued": queued, "fullest_edge": fullest}


def frames_logged(run_dir: str) -> int | None:
    """The frame count of the run's newest ``metrics.jsonl`` row."""
    try:
        with open(Path(run_dir) / "metrics.jsonl", "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            last = f.read().splitlines()[-1]
        return int(json.loads(last)["frames"])
    except (OSError, IndexError, KeyError, ValueError):
        return None


# ------------------------------------------------------------------ the child
def child(name: str, minutes: float, interval: float, run_dir: str, flags: list[str]) -> int:
    """Run pipeline ``name`` in this process; a sampler thread prints a JSON row every
    ``interval`` seconds and sends SIGINT after ``minutes``."""
    sys.path.insert(0, str(ROOT))
    from streamrl.cli import load_pipeline, resolve_pipeline

    module = load_pipeline(resolve_pipeline(name))
    t0 = time.perf_counter()
    done = threading.Event()

    def sample() -> None:
        while not done.wait(interval):
            elapsed = time.perf_counter() - t0
            row = {"t_min": elapsed / 60, **tree_resources(os.getpid())}
            try:
                row.update(graph_reading())
            except Exception as exc:  # the graph is not running yet, or has ended
                row["graph"] = repr(exc)
            row["frames"] = frames_logged(run_dir)
            print(_ROW + json.dumps(row), flush=True)
            if elapsed >= minutes * 60:  # Ctrl-C, delivered to the main thread
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
                return

    # a shell's background job starts with SIGINT ignored (and Python then keeps it so): the
    # stop must not depend on how the soak was launched
    signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(target=sample, daemon=True, name="soak-sampler").start()
    try:
        status = module.main(["--run-dir", run_dir, *NEVER_SOLVED, *flags])
    finally:
        done.set()
    return status


# ------------------------------------------------------------------ the parent
def soak(name: str, minutes: float, interval: float, workdir: Path, log) -> dict[str, Any]:
    run_dir = workdir / name
    cmd = [sys.executable, __file__, "--child", name, "--minutes", str(minutes),
           "--interval", str(interval), "--run-dir", str(run_dir), "--",
           *EXTRA.get(name, [])]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=workdir)
    rows, tail, seen = [], [], set()
    stuck: list[bool] = []

    def watchdog() -> None:  # the stop is part of what is measured: a run that ignores it
        if _wait(proc, minutes * 60 + 300):  # is killed and reported
            return
        stuck.append(True)
        proc.kill()

    threading.Thread(target=watchdog, daemon=True).start()
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(_ROW):
            row = json.loads(line[len(_ROW):])
            seen.update(row.pop("pids"))
            rows.append(row)
            log(name, row)
        else:
            tail = [*tail, line.rstrip()][-15:]
    status = proc.wait()
    time.sleep(2.0)  # the workers' own exit after the parent's
    left = sorted(p for p in seen if pid_alive(p))
    if stuck:
        status = "killed: no stop 5 min after SIGINT"
    return {"name": name, "rows": rows, "exit": status, "workers_left": left, "tail": tail}


def _wait(proc: subprocess.Popen, timeout: float) -> bool:
    try:
        proc.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def summarize(result: dict[str, Any], warmup_min: float) -> str:
    rows = result["rows"]
    if not rows:
        return f"{result['name']:<14} no samples (exit {result['exit']}): " + " | ".join(
            result["tail"][-3:])
    after = [r for r in rows if r["t_min"] >= warmup_min] or rows[-1:]
    first, last = after[0], rows[-1]
    span = max(last["t_min"] - first["t_min"], 1e-9)

    def rng(key: str) -> str:
        values = [r[key] for r in after]
        return f"{min(values)}-{max(values)}" if min(values) != max(values) else f"{values[0]}"

    slope = (last["rss_mib"] - first["rss_mib"]) / span if len(after) > 1 else 0.0
    left = result["workers_left"]
    return (f"{result['name']:<14} {first['rss_mib']:>9.0f} {last['rss_mib']:>9.0f} "
            f"{slope:>+9.2f} {rng('threads'):>9} {rng('fds'):>9} {rng('workers'):>7} "
            f"{rng('shm'):>5} {max(r.get('queued', 0) for r in after):>7} "
            f"{last['frames'] or 0:>12,} {result['exit']:>5} "
            f"{'none' if not left else len(left):>8}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", default=",".join(PIPELINES))
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between rows")
    parser.add_argument("--warmup-minutes", type=float, default=3.0)
    parser.add_argument("--jobs", type=int, default=1, help="pipelines soaked at once")
    parser.add_argument("--workdir", default=None, help="where the run dirs go (a temp dir)")
    parser.add_argument("--json", default=None, help="also write every row to this file")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("flags", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.minutes, args.interval, args.run_dir, args.flags)

    import tempfile

    names = [n for n in args.pipelines.split(",") if n]
    unknown = sorted(set(names) - set(PIPELINES))
    if unknown:
        parser.error(f"unknown pipelines {unknown}; expected some of {list(PIPELINES)}")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="streamrl-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()

    def log(name: str, row: dict[str, Any]) -> None:
        with lock:
            print(f"{name:<14} t={row['t_min']:5.1f} min  rss {row['rss_mib']:7.0f} MiB  "
                  f"threads {row['threads']:3}  fds {row['fds']:4}  workers {row['workers']}  "
                  f"shm {row['shm']}  queued {row.get('queued', '-')}  fullest "
                  f"{row.get('fullest_edge', 0):.2f}  frames {row['frames'] or 0:,}",
                  flush=True)

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        results = list(pool.map(
            lambda n: soak(n, args.minutes, args.interval, workdir, log), names))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"\nsoak: {args.minutes:g} min per pipeline, {args.jobs} at a time, samples every "
          f"{args.interval:g} s; growth from the first sample after {args.warmup_minutes:g} min "
          f"to the last")
    print(f"{'pipeline':<14} {'RSS MiB':>9} {'-> last':>9} {'MiB/min':>9} {'threads':>9} "
          f"{'fds':>9} {'workers':>7} {'shm':>5} {'queued':>7} {'frames':>12} "
          f"{'exit':>5} {'left':>8}")
    for r in results:
        print(summarize(r, args.warmup_minutes))
    clean = all(not r["workers_left"] and r["exit"] == 130 for r in results)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
