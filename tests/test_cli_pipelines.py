"""The command line with pipeline files: ``streamrl run NAME|PATH``, ``graph``, ``list``."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest

from streamrl.cli import available_pipelines, main, resolve_pipeline
from streamrl.train import read_metrics

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--frames", "512", "--eval-interval", "256", "--eval-episodes", "2", "--epochs", "1",
        "--no-progress"]


def test_run_by_name_writes_a_run_dir(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["run", "ppo_cartpole", *TINY, "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "ppo_cartpole: not solved: eval return" in out
    assert "after 512 frames (2 batches)" in out
    assert f"run dir: {run_dir}" in out
    assert {p.name for p in run_dir.iterdir()} >= {"metrics.csv", "metrics.jsonl",
                                                   "checkpoint.pt", "config.json"}
    assert [r["frames"] for r in read_metrics(run_dir)] == [256, 512, 512]
    assert not mp.active_children()


def test_run_by_path_default_run_dir(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default run dir is runs/ under the working directory
    path = str(ROOT / "pipelines" / "ppo_cartpole.py")
    assert main(["run", path, *TINY, "--seed", "3"]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("ppo_cartpole-")
    assert (run_dir / "checkpoint.pt").is_file()
    assert "run dir: runs/ppo_cartpole-" in capsys.readouterr().out


def test_run_without_files(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "ppo_cartpole", *TINY, "--no-files", "--target-return", "none"]) == 0
    assert "ppo_cartpole: done: eval return" in capsys.readouterr().out
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["no_such_pipeline", "missing/file.py", "_private", "a b"])
def test_unknown_pipeline(capsys, name):
    with pytest.raises(SystemExit) as info:
        main(["run", name])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"unknown pipeline {name!r}" in err
    assert "ppo_cartpole" in err  # the message lists what exists


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--frames", "many"], "argument --frames: invalid int value: 'many'"),
        (["--num-envs", "0"], "PPOConfig.num_envs must be a positive int, found 0"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["--minibatch-size", "1000"], "must not exceed the batch"),
    ],
)
def test_bad_pipeline_flags(capsys, flags, message):
    with pytest.raises(SystemExit) as info:
        main(["run", "ppo_cartpole", *flags])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: streamrl run ppo_cartpole" in err and message in err


def test_pipeline_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "ppo_cartpole", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--frames" in out and "--no-progress" in out and "--resume" in out


def test_file_without_main(tmp_path, capsys):
    path = tmp_path / "empty.py"
    path.write_text("X = 1\n")
    with pytest.raises(SystemExit) as info:
        main(["run", str(path)])
    assert info.value.code == 2
    assert "defines no main(argv) function" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["graph", str(path)])
    assert "defines no build_graph(argv) function" in capsys.readouterr().err


def test_pipeline_search_path(tmp_path, capsys, monkeypatch):
    (tmp_path / "hello.py").write_text(
        "def main(argv):\n    print('hello', argv)\n    return 3\n")
    monkeypatch.setenv("STREAMRL_PIPELINES", str(tmp_path))
    assert "hello" in available_pipelines()
    assert resolve_pipeline("hello") == tmp_path / "hello.py"
    assert main(["run", "hello", "--x", "1"]) == 3
    assert "hello ['--x', '1']" in capsys.readouterr().out
    assert main(["list"]) == 0
    assert capsys.readouterr().out.split() == available_pipelines()


def test_graph_text_and_mermaid(capsys):
    assert main(["graph", "ppo_cartpole"]) == 0
    out = capsys.readouterr().out
    assert "Graph 'sync-collector'" in out and "rollout" in out and "trigger" in out
    assert main(["graph", "ppo_cartpole", "--mermaid", "--num-envs", "4",
                 "--minibatch-size", "128"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("flowchart") and "n_rollout" in out and "n_trigger" in out
    assert main(["graph", "--mermaid", "demo"]) == 0
    assert "flowchart" in capsys.readouterr().out
    assert not mp.active_children()


def test_load_pipeline_accepts_a_string_path():
    from pathlib import Path

    from streamrl.cli import load_pipeline

    path = Path(__file__).resolve().parents[1] / "pipelines" / "ppo_cartpole.py"
    assert callable(load_pipeline(str(path)).main)
