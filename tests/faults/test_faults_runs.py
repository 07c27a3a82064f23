"""Fault injection: runs of ``streamrl run PIPELINE`` killed, interrupted, or out of disk.

Each test says the fault it injects, the promise the run keeps, and how that is checked.

Runs are started by a fork server: one helper process imports streamrl and the pipelines
once, then forks a fresh process per run (``streamrl.cli.main(argv)``, its output in a log
file, in a session of its own so that a Ctrl-C can reach its whole process group). A run
then starts in milliseconds instead of seconds, which is what makes ten kills at random
moments affordable. The helper itself never runs torch code, so forking it is safe.

Out-of-disk faults are injected in this process: the writer's file operations are
monkeypatched to fail with ``OSError(errno.ENOSPC, ...)`` partway through a write.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from streamrl.checkpoint import Checkpoint
from streamrl.cli import main
from streamrl.ops import metrics_logger
from streamrl.train import driver, load_checkpoint, read_metrics

# the fork server forks; workers are found in /proc
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

# ------------------------------------------------------------------------------ fork server
_SERVER = r'''
import io, json, os, signal, sys, time, traceback

import streamrl.cli
from streamrl.cli import load_pipeline, resolve_pipeline

for name in ("ppo_cartpole", "dqn_cartpole"):  # their imports, once
    load_pipeline(resolve_pipeline(name))
import gymnasium.envs.classic_control  # noqa: F401
import matplotlib.pyplot  # noqa: F401

def die_in_write(n):
    """The n-th torch.save writes half of its bytes, then the process is killed (SIGKILL)."""
    import torch
    real, calls = torch.save, [0]

    def save(obj, f, *args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            buf = io.BytesIO()
            real(obj, buf, *args, **kwargs)
            data = buf.getvalue()
            f.write(data[: len(data) // 2])
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return real(obj, f, *args, **kwargs)

    torch.save = save

def child(cmd):
    os.setsid()  # a process group of its own: a Ctrl-C reaches the run and its workers only
    log = os.open(cmd["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    if cmd.get("die_in_write"):
        die_in_write(cmd["die_in_write"])
    try:
        code = streamrl.cli.main(cmd["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

started = set()
for line in sys.stdin:
    cmd = json.loads(line)
    if "argv" in cmd:
        pid = os.fork()
        if pid == 0:
            child(cmd)
        started.add(pid)
        reply = {"pid": pid}
    else:
        pid, deadline = cmd["wait"], time.monotonic() + cmd["timeout"]
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                reply = {"status": os.waitstatus_to_exitcode(status)}
                break
            if time.monotonic() > deadline:
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                reply = {"status": "timeout"}
                break
            time.sleep(0.005)
        started.discard(pid)
    print(json.dumps(reply), flush=True)
for pid in started:  # a run left behind by a failed test, with its workers
    os.killpg(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
'''


class ForkServer:
    """Starts runs (``streamrl.cli.main(argv)`` in a forked process) and waits for them."""

    def __init__(self):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)

    def _ask(self, cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"the fork server exited with status {self.proc.wait()}"
        return json.loads(line)

    def start(self, argv, log, die_in_write=None):
        """The pid of a new run of ``streamrl ARGV`` (output appended to ``log``);
        ``die_in_write=n``: it is killed halfway through writing its n-th checkpoint."""
        return self._ask({"argv": argv, "log": str(log), "die_in_write": die_in_write})["pid"]

    def wait(self, pid, timeout=60):
        """The run's exit status (``-signal`` when a signal ended it)."""
        return self._ask({"wait": pid, "timeout": timeout})["status"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server():
    s = ForkServer()
    yield s
    s.close()


def children(pid):
    """The pids of the processes ``pid`` has started (from /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def alive(pids, timeout):
    """The pids among ``pids`` still running (zombies count as exited) after waiting up to
    ``timeout`` seconds for them to exit."""
    deadline = time.monotonic() + timeout
    while True:
        running = []
        for pid in pids:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z":
                running.append(pid)
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.05)


def ckpt_frames(path):
    """The frames of a pipeline checkpoint, read as a resumed run reads it (``None`` when
    there is no file)."""
    if not path.exists():
        return None
    state = load_checkpoint(path)  # weights_only: it must load
    return driver.checkpoint_frames(state)


def batch_frames(run_dir):
    """The frames column of the per-batch rows of a ppo_cartpole run's metrics history."""
    if not (run_dir / "metrics.jsonl").exists():
        return []
    return [r["frames"] for r in read_metrics(run_dir) if "train_episodes" in r]


PPO = ["run", "ppo_cartpole", "--eval-interval", "2048", "--eval-episodes", "2", "--epochs",
       "1", "--checkpoint-interval", "512", "--logger", "none", "--no-progress"]


# ---------------------------------------------------------------------------------- SIGKILL
@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume(tmp_path, server):
    """Fault: ``kill -9`` of a ppo_cartpole run (a checkpoint every 512 frames, 256 frames per
    batch) ten times in a row, each resumed from the checkpoint it left: eight at random
    moments (0.05 to 1.2 s after the start), two halfway through writing a checkpoint (the
    writer writes half the file, then the process kills itself).

    Promise: the checkpoint always loads and never goes back; a kill loses at most the work
    since the last checkpoint (512 frames); a resumed run goes on from the checkpoint's
    frame count; the metrics history is one clean curve (the per-batch rows are exactly
    256, 512, 768, ... with no duplicate, gap or regression); a torn temporary file is
    removed by the next run; the last run finishes and plots the whole history.

    Check: the fork server's runs, killed by the test; after each kill, the checkpoint and
    ``metrics.jsonl`` are read back.
    """
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    run_dir, log = tmp_path / "run", tmp_path / "log.txt"
    ckpt = run_dir / "checkpoint.pt"
    argv = [*PPO, "--frames", "1000000", "--run-dir", str(run_dir)]
    torn_seen = 0
    for kill in range(10):
        before = ckpt_frames(ckpt)
        resume = [] if before is None else ["--resume", str(ckpt)]
        in_write = kill in (3, 7)
        pid = server.start(argv + resume, log, die_in_write=2 if in_write else None)
        if not in_write:
            time.sleep(rng.uniform(0.05, 1.2))
            os.kill(pid, signal.SIGKILL)
        status = server.wait(pid)
        where = f"kill {kill} (seed {seed}): "
        assert status == -signal.SIGKILL, where + log.read_text()[-2000:]
        after = ckpt_frames(ckpt)
        assert after is not None or before is None, where + "the checkpoint vanished"
        assert (after or 0) >= (before or 0), where + f"checkpoint went back {before} -> {after}"
        logged = batch_frames(run_dir)
        assert logged == list(range(256, (logged[-1] if logged else 0) + 1, 256)), where + str(logged)
        if logged:
            assert logged[-1] - (after or 0) <= 512, where + f"lost {logged[-1]} -> {after}"
        if in_write:
            # killed while writing the checkpoint of the last row: the previous one stands,
            # beside the torn temporary file
            torn = list(run_dir.glob(".checkpoint.pt.*.tmp"))
            assert len(torn) == 1 and torn[0].stat().st_size > 0, where + str(torn)
            assert after == logged[-1] - 512, where + f"{after} vs {logged[-1]}"
            torn_seen += 1
    assert torn_seen == 2
    done = ckpt_frames(ckpt)
    assert done is not None and done >= 512, f"seed {seed}: {done}"
    # the last run goes on to a budget 2 batches past the checkpoint and finishes
    budget = done + 512
    pid = server.start([*PPO, "--frames", str(budget), "--run-dir", str(run_dir),
                        "--resume", str(ckpt)], log)
    assert server.wait(pid) == 0, log.read_text()[-2000:]
    assert ckpt_frames(ckpt) == budget
    assert batch_frames(run_dir) == list(range(256, budget + 1, 256))
    frames = [r["frames"] for r in read_metrics(run_dir)]
    assert frames == sorted(frames) and frames[-1] == budget
    iterations = [r["iteration"] for r in read_metrics(run_dir) if "train_episodes" in r]
    assert iterations == list(range(1, budget // 256 + 1))
    assert not list(run_dir.glob(".*.tmp")), "a temporary file was left behind"
    assert (run_dir / "learning_curve.png").is_file()
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == len(frames) + 1


# ---------------------------------------------------------------------------------- SIGINT
@pytest.mark.parametrize("name", ["ppo_cartpole", "dqn_cartpole"])
def test_ctrl_c_stops_with_a_final_checkpoint(tmp_path, server, name):
    """Fault: Ctrl-C (SIGINT to the run's whole process group, as a terminal sends it) in
    the middle of a run. Promise (as documented in ``streamrl.train.driver.main``): exit
    status 130, the last stderr line ``NAME: interrupted; checkpoint: PATH``, that
    checkpoint loads and the run resumes from it; no worker process is left. Check: the
    fork server's run; workers' pids read from /proc before the signal."""
    run_dir, log = tmp_path / "run", tmp_path / "log.txt"
    flags = ["--logger", "none", "--no-progress", "--run-dir", str(run_dir)]
    if name == "ppo_cartpole":  # a checkpoint only at the end (or on Ctrl-C)
        flags += ["--eval-episodes", "2", "--epochs", "1", "--checkpoint-interval", "1000000"]
    else:
        flags += ["--learning-starts", "256"]
    pid = server.start(["run", name, "--frames", "1000000", *flags], log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(batch_frames(run_dir) if name == "ppo_cartpole"
                                              else read_rows(run_dir)) < 2:
        time.sleep(0.05)
    workers = children(pid)
    if name == "dqn_cartpole":
        assert workers, "dqn_cartpole collects in a worker process"
    os.killpg(pid, signal.SIGINT)
    assert server.wait(pid) == 130, log.read_text()[-2000:]
    assert log.read_text().splitlines()[-1] == (
        f"{name}: interrupted; checkpoint: {run_dir / 'checkpoint.pt'}")
    left = alive(workers, timeout=5.0)
    for worker in left:  # not left running after the test either
        os.kill(worker, signal.SIGKILL)
    assert not left, f"worker processes {left} outlived their run"
    state = driver.load_resume(name, run_dir / "checkpoint.pt")
    done = driver.checkpoint_frames(state)
    assert done is not None and done > 0
    if name == "ppo_cartpole":
        Checkpoint.manifest(run_dir / "checkpoint.pt")  # the streamrl.checkpoint format
    # resumed, it goes on from there, and its history too
    pid = server.start(["run", name, "--frames", str(done + 512), *flags, "--resume",
                        str(run_dir / "checkpoint.pt")], log)
    assert server.wait(pid) == 0, log.read_text()[-2000:]
    assert driver.checkpoint_frames(load_checkpoint(run_dir / "checkpoint.pt")) == done + 512
    frames = [r["frames"] for r in read_metrics(run_dir)]
    assert frames == sorted(frames) and frames[-1] == done + 512


def read_rows(run_dir):
    path = run_dir / "metrics.jsonl"
    return read_metrics(path) if path.exists() else []


# ------------------------------------------------------------------------------- full disk
def _enospc():
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


TINY = ["run", "ppo_cartpole", "--eval-interval", "512", "--eval-episodes", "2", "--epochs",
        "1", "--checkpoint-interval", "256", "--logger", "none", "--no-progress"]


def test_full_disk_during_a_checkpoint_write(tmp_path, monkeypatch, capsys):
    """Fault: the disk fills up while the third checkpoint is written (the writer has written
    part of the file when ``OSError(ENOSPC)`` is raised). Promise: the previous checkpoint
    stays valid (it loads, at the same frame count), no temporary file is left, and the run
    stops with exit status 1 and one error line naming the checkpoint file and "No space
    left on device"; once there is space again, the run resumes from that checkpoint.
    Check: in-process ``streamrl run`` with ``torch.save`` patched."""
    run_dir = tmp_path / "run"
    real, calls = torch.save, []

    def full_disk(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            f.write(b"\0" * 4096)
            raise _enospc()
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    code = main([*TINY, "--frames", "2048", "--run-dir", str(run_dir)])
    monkeypatch.undo()
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    (line,) = [ln for ln in err if "error:" in ln]
    assert line.startswith("streamrl run ppo_cartpole: error: ")
    assert "No space left on device" in line and repr(str(run_dir / "checkpoint.pt")) in line
    assert ckpt_frames(run_dir / "checkpoint.pt") == 512  # the second write's: 256, 512
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoint.pt", "config.json", "metrics.csv", "metrics.jsonl"]
    code = main([*TINY, "--frames", "1024", "--run-dir", str(run_dir), "--resume",
                 str(run_dir / "checkpoint.pt")])
    assert code == 0
    assert batch_frames(run_dir) == [256, 512, 768, 1024]


class _FullFile:
    """A text file whose writes fail with ENOSPC once ``budget`` characters are written."""

    def __init__(self, f, budget):
        self._f, self._budget = f, budget

    def write(self, text):
        if len(text) > self._budget:
            self._f.write(text[: self._budget])
            self._budget = 0
            raise _enospc()
        self._budget -= len(text)
        return self._f.write(text)

    def __getattr__(self, name):
        return getattr(self._f, name)


@pytest.mark.parametrize("which", ["metrics.csv", "metrics.jsonl"])
def test_full_disk_while_writing_the_metrics(tmp_path, monkeypatch, capsys, which):
    """Fault: the disk fills up in the middle of a metrics row (of ``metrics.csv`` or of
    ``metrics.jsonl``). Promise: the run stops with exit status 1 and one error line naming
    that file and "No space left on device"; the checkpoint of the last batch boundary
    loads and no temporary file is left; a resumed run keeps the history up to the
    checkpoint and drops the torn row. Check: in-process ``streamrl run`` with the metrics
    logger's ``open`` patched to return a file that fails partway."""
    run_dir = tmp_path / "run"

    def opener(path, mode="r", *args, **kwargs):
        f = open(path, mode, *args, **kwargs)
        return _FullFile(f, 1500) if Path(path).name == which and "w" in mode else f

    monkeypatch.setattr(metrics_logger, "open", opener, raising=False)
    code = main([*TINY, "--frames", "4096", "--run-dir", str(run_dir)])
    monkeypatch.undo()
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    (line,) = [ln for ln in err if "error:" in ln]
    assert "No space left on device" in line and repr(str(run_dir / which)) in line, line
    done = ckpt_frames(run_dir / "checkpoint.pt")
    assert done is not None and done < 4096
    assert not list(run_dir.glob(".*.tmp"))
    code = main([*TINY, "--frames", str(done + 512), "--run-dir", str(run_dir), "--resume",
                 str(run_dir / "checkpoint.pt")])
    assert code == 0
    assert batch_frames(run_dir) == list(range(256, done + 513, 256))
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert len(rows) == len(read_metrics(run_dir)) + 1  # the CSV agrees with the JSON lines


def test_full_disk_in_a_concurrent_run(tmp_path, monkeypatch, capsys):
    """Fault: the disk fills up while dqn_cartpole's metrics operator writes a row (collection
    and learning run concurrently, as one graph). Promise: the graph stops, the run's
    checkpoint is written and loads, no temporary file is left, and the command exits
    with status 1 and one error line naming the file and "No space left on device" (not
    the operator error's traceback). Check: in-process ``streamrl run`` with the metrics
    logger's ``open`` patched."""
    run_dir = tmp_path / "run"

    def opener(path, mode="r", *args, **kwargs):
        f = open(path, mode, *args, **kwargs)
        return _FullFile(f, 1500) if Path(path).name == "metrics.csv" and "w" in mode else f

    monkeypatch.setattr(metrics_logger, "open", opener, raising=False)
    code = main(["run", "dqn_cartpole", "--frames", "100000", "--learning-starts", "256",
                 "--logger", "none", "--no-progress", "--rollout-placement", "inline",
                 "--run-dir", str(run_dir)])
    monkeypatch.undo()
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    (line,) = [ln for ln in err if "error:" in ln]
    assert not any("Traceback" in ln for ln in err)
    assert "No space left on device" in line and repr(str(run_dir / "metrics.csv")) in line
    state = driver.load_resume("dqn_cartpole", run_dir / "checkpoint.pt")
    assert 0 < driver.checkpoint_frames(state) < 100000
    assert not list(run_dir.glob(".*.tmp"))
