"""Fault injection: bad input to ``streamrl run``.

Each test says the fault it injects, the promise the command keeps, and how that is
checked. The promise for every bad input: the command exits with status 2 and one
``error:`` line that names what is wrong (the flag, the path, the value), never a Python
traceback, and it says so before any work starts (no env is built, no run directory is
made). One validation path serves every pipeline: each case runs against a lockstep
on-policy pipeline (``ppo_cartpole``) and a concurrent off-policy one (``dqn_cartpole``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from streamrl.cli import main
from streamrl.envs.libs.gym import GymEnv
from streamrl.train import save_checkpoint

PIPELINES = ["ppo_cartpole", "dqn_cartpole"]
TINY = {
    "ppo_cartpole": ["--frames", "512", "--eval-episodes", "2", "--epochs", "1", "--logger",
                     "none", "--no-progress"],
    "dqn_cartpole": ["--frames", "512", "--learning-starts", "256", "--eval-episodes", "2",
                     "--logger", "none", "--no-progress"],
}


@pytest.fixture
def no_work(monkeypatch):
    """Fails the test if an env is built (the first thing every pipeline does)."""
    built = []

    def refuse(self, *args, **kwargs):
        built.append(args)
        raise AssertionError("an env was built before the bad input was reported")

    monkeypatch.setattr(GymEnv, "__init__", refuse)
    return built


def run_cli(capsys, argv):
    """``streamrl run ARGV`` in this process: (exit status, stderr lines)."""
    try:
        code = main(["run", *argv])
    except SystemExit as exc:  # argparse's exit
        code = exc.code
    err = capsys.readouterr().err
    return code, err.splitlines()


def one_error(lines, prog):
    """The single ``error:`` line of ``lines`` (argparse's usage lines may precede it)."""
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1, lines
    assert errors[0].startswith(f"{prog}: error: "), errors[0]
    assert not any("Traceback" in line for line in lines), lines
    return errors[0]


@pytest.fixture(scope="module")
def ppo_checkpoint(tmp_path_factory):
    """A real ppo_cartpole checkpoint (512 frames, the TINY config)."""
    run_dir = tmp_path_factory.mktemp("ppo") / "run"
    assert main(["run", "ppo_cartpole", *TINY["ppo_cartpole"], "--run-dir", str(run_dir)]) == 0
    return run_dir / "checkpoint.pt"


# ------------------------------------------------------------------------- names and numbers
def test_unknown_pipeline(capsys):
    """Fault: a pipeline name that exists nowhere. Promise: exit 2, one error line naming it
    and listing the pipelines that exist. Check: in-process ``main``, stderr."""
    code, lines = run_cli(capsys, ["ppo_cartpol", "--frames", "10"])
    assert code == 2
    line = one_error(lines, "streamrl run")
    assert "unknown pipeline 'ppo_cartpol'" in line and "ppo_cartpole" in line


@pytest.mark.parametrize("name", PIPELINES)
@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--frames", "many"], "argument --frames: invalid int value: 'many'"),
        (["--frames", "1e9"], "argument --frames: invalid int value: '1e9'"),
        (["--frames", "-5"], "frames must be a positive int, found -5"),
        (["--lr", "nan"], "lr must be > 0, found nan"),
        (["--eval-episodes", "0"], "eval_episodes must be a positive int, found 0"),
        (["--seed"], "argument --seed: expected one argument"),
    ],
)
def test_bad_numbers(capsys, no_work, name, flags, expected):
    """Fault: a flag value that is not a number, or out of range. Promise: exit 2, one error
    line naming the flag or config field and the value, before any env is built. Check:
    in-process ``main`` with env construction forbidden."""
    code, lines = run_cli(capsys, [name, *flags])
    assert code == 2
    assert expected in one_error(lines, f"streamrl run {name}")
    assert no_work == []


# ------------------------------------------------------------------------------- run dirs
def _bad_dirs(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    cases = [
        ("--run-dir", str(a_file), "is not a directory (it is a file)"),
        ("--run-dir", str(a_file / "run"), f"is not a directory: {str(a_file)!r} is a file"),
        ("--runs-root", str(a_file), "is not a directory (it is a file)"),
    ]
    if Path("/proc/self").is_dir():  # Linux's procfs: no directory can be made in it
        cases += [
            ("--run-dir", "/proc/streamrl-run", "is not writable: the directory cannot be created"),
            ("--runs-root", "/proc/streamrl-runs",
             "is not writable: the directory cannot be created"),
        ]
    probe = Path("/sys")  # read-only even for root on Linux
    if probe.is_dir() and _unwritable(probe):
        cases.append(("--run-dir", "/sys", "is not writable: a file cannot be created in it"))
    return cases


def _unwritable(path):
    try:
        path.joinpath(".streamrl-probe").touch()
    except OSError:
        return True
    path.joinpath(".streamrl-probe").unlink()
    return False


@pytest.mark.parametrize("name", PIPELINES)
def test_bad_run_dirs(tmp_path, capsys, no_work, name):
    """Fault: a run directory that cannot be made or written (inside /proc, a file, under a
    file, a read-only directory), by ``--run-dir`` or ``--runs-root``. Promise: exit 2, one
    error line naming the flag, the path and what is wrong, before any env is built (it
    used to be a traceback, two chained ones for dqn_cartpole). Check: in-process ``main``
    with env construction forbidden."""
    for flag, path, reason in _bad_dirs(tmp_path):
        code, lines = run_cli(capsys, [name, *TINY[name], flag, path])
        assert code == 2, (flag, path)
        line = one_error(lines, f"streamrl run {name}")
        assert f"{flag} {path!r} {reason}" in line, line
    assert no_work == []


# ---------------------------------------------------------------------------- --resume
def _bad_checkpoints(tmp_path, ppo_checkpoint):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(os.urandom(4096))
    torn = tmp_path / "torn.pt"  # a checkpoint cut short (e.g. copied from a full disk)
    data = ppo_checkpoint.read_bytes()
    torn.write_bytes(data[: len(data) // 2])
    a_list = tmp_path / "list.pt"
    torch.save([1, 2, 3], a_list)
    weights = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, weights)
    dqn = save_checkpoint(tmp_path / "dqn.pt", {"pipeline": "dqn_cartpole", "frames": 0})
    return [
        (tmp_path / "missing.pt", "it does not exist"),
        (tmp_path, "it is a directory, expected a checkpoint file"),
        (junk, "it is not a streamrl checkpoint ("),
        (torn, "it is not a streamrl checkpoint ("),
        (a_list, "it is not a streamrl checkpoint (ValueError"),
        (weights, "it is not a streamrl pipeline checkpoint (no 'pipeline' entry"),
        (dqn, "is not a ppo_cartpole checkpoint (its pipeline: 'dqn_cartpole')"),
    ]


def test_bad_resume_checkpoints(tmp_path, capsys, no_work, ppo_checkpoint):
    """Fault: ``--resume`` names a missing file, a directory, random bytes, a checkpoint cut
    in half, a torch file of another kind, or another pipeline's checkpoint. Promise: exit
    2, one error line naming the path and what is wrong (not torch's unpickler text),
    before any env is built and before the run directory is made. Check: in-process
    ``main`` with env construction forbidden; the run dir does not exist afterwards."""
    run_dir = tmp_path / "run"
    for path, reason in _bad_checkpoints(tmp_path, ppo_checkpoint):
        code, lines = run_cli(capsys, ["ppo_cartpole", *TINY["ppo_cartpole"], "--run-dir",
                                       str(run_dir), "--resume", str(path)])
        assert code == 2, path
        line = one_error(lines, "streamrl run ppo_cartpole")
        assert repr(str(path)) in line and reason in line, line
        assert len(line) < 300, line  # brief: no unpickler essay
        assert not run_dir.exists()
    assert no_work == []


def test_resume_with_another_config_or_a_spent_budget(tmp_path, capsys, no_work,
                                                      ppo_checkpoint):
    """Fault: ``--resume`` of a checkpoint whose run had another config (a different network
    size), or with a ``--frames`` budget the checkpoint has already reached. Promise: exit
    2, one error line saying which field differs or what budget to pass, before any work.
    Check: in-process ``main`` with env construction forbidden."""
    base = ["ppo_cartpole", *TINY["ppo_cartpole"], "--no-files", "--resume", str(ppo_checkpoint)]
    code, lines = run_cli(capsys, [*base, "--hidden", "32", "--frames", "1024"])
    assert code == 2
    line = one_error(lines, "streamrl run ppo_cartpole")
    assert "cannot resume" in line and "hidden: expected 32, found 64" in line
    code, lines = run_cli(capsys, base)  # --frames 512: where the checkpoint already is
    assert code == 2
    line = one_error(lines, "streamrl run ppo_cartpole")
    assert "it is at 512 frames, already at the budget --frames 512" in line
    dqn_run = tmp_path / "dqn.pt"
    save_checkpoint(dqn_run, {"pipeline": "dqn_cartpole", "frames": 512})
    code, lines = run_cli(capsys, ["dqn_cartpole", *TINY["dqn_cartpole"], "--no-files",
                                   "--resume", str(dqn_run)])
    assert code == 2
    assert "already at the budget --frames 512" in one_error(lines, "streamrl run dqn_cartpole")
    assert no_work == []


def test_the_command_prints_no_traceback(tmp_path):
    """Fault: the bad paths of the report that started this suite, through the real
    ``streamrl`` command in a fresh process (dqn_cartpole with an unwritable run dir printed
    two chained tracebacks; random bytes as ``--resume`` printed torch's unpickler error).
    Promise: exit 2, stderr is exactly one ``error:`` line. Check: subprocesses, run side by
    side."""
    junk = tmp_path / "junk.pt"
    junk.write_bytes(os.urandom(1024))
    cases = [
        (["dqn_cartpole", "--run-dir", "/proc/streamrl-run"], "--run-dir '/proc/streamrl-run'"),
        (["ppo_cartpole", "--resume", str(junk)], f"cannot resume from {str(junk)!r}"),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-m", "streamrl.cli", "run", *argv, "--no-progress"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=tmp_path, env=env)
             for argv, _ in cases]
    for proc, (argv, expected) in zip(procs, cases):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, (argv, err)
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"streamrl run {argv[0]}: error: "), err
        assert expected in lines[0] and out == ""
    assert not (tmp_path / "runs").exists()
