"""Every pipeline run also writes through a streamrl.record logger (``--logger``): TensorBoard
event files by default, holding the scalars of metrics.csv; csv, offline wandb or none."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from streamrl.cli import load_pipeline
from streamrl.ops import check_run_logger
from streamrl.train import read_metrics

ROOT = Path(__file__).resolve().parents[2]
ppo = load_pipeline(ROOT / "pipelines" / "ppo_cartpole.py")
dqn = load_pipeline(ROOT / "pipelines" / "dqn_cartpole.py")

PPO_TINY = ["--frames", "1024", "--eval-interval", "512", "--eval-episodes", "2", "--epochs", "1",
            "--no-progress"]
DQN_TINY = ["--frames", "1024", "--learning-starts", "256", "--train-freq", "128",
            "--gradient-steps", "16", "--batch-size", "32", "--hidden", "32",
            "--eval-interval", "512", "--eval-episodes", "2", "--rollout-placement", "inline",
            "--no-progress"]


def _csv_series(rows, key):
    return [(r["frames"], r[key]) for r in rows
            if isinstance(r.get(key), int | float) and not isinstance(r.get(key), bool)
            and math.isfinite(r[key])]


@pytest.mark.parametrize(("pipeline", "argv"), [(ppo, PPO_TINY), (dqn, DQN_TINY)])
def test_tensorboard_events_hold_the_csv_scalars(tmp_path, pipeline, argv):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert pipeline.main([*argv, "--run-dir", str(tmp_path), "--logger", "tensorboard"]) == 0
    rows = read_metrics(tmp_path)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert "eval_return" in tags
    for tag in tags:
        logged = [(e.step, e.value) for e in events.Scalars(tag)]
        expected = _csv_series(rows, tag)
        assert [s for s, _ in logged] == [s for s, _ in expected], tag
        assert [v for _, v in logged] == pytest.approx([v for _, v in expected], rel=1e-6), tag
    # every numeric column of the CSV reached TensorBoard
    assert {k for r in rows for k in r if _csv_series([r], k)} - {"frames"} <= set(tags)


def test_csv_logger_writes_one_file_per_scalar(tmp_path):
    assert dqn.main([*DQN_TINY, "--run-dir", str(tmp_path), "--logger", "csv"]) == 0
    lines = (tmp_path / "csv" / "scalars" / "eval_return.csv").read_text().splitlines()
    evals = _csv_series(read_metrics(tmp_path), "eval_return")
    assert [int(line.split(",")[0]) for line in lines] == [s for s, _ in evals]


def test_wandb_logger_runs_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    assert ppo.main([*PPO_TINY, "--run-dir", str(tmp_path), "--logger", "wandb"]) == 0
    assert any((tmp_path / "wandb").rglob("*.wandb"))


def test_logger_none_writes_only_the_metrics_files(tmp_path):
    assert ppo.main([*PPO_TINY, "--run-dir", str(tmp_path), "--logger", "none"]) == 0
    assert not (tmp_path / "tensorboard").exists() and (tmp_path / "metrics.csv").exists()


def test_bad_or_missing_logger_fails_before_any_work(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit) as exit_info:
        ppo.main([*PPO_TINY, "--run-dir", str(tmp_path / "a"), "--logger", "mlflow"])
    assert exit_info.value.code == 2
    assert "logger must be one of" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(ValueError, match=r"needs the 'tensorboard' package.*streamrl\[record\]"):
        check_run_logger("tensorboard")
    with pytest.raises(SystemExit):
        dqn.main([*DQN_TINY, "--run-dir", str(tmp_path / "b"), "--logger", "tensorboard"])
    assert not (tmp_path / "b").exists()


def _frames(argv, frames):
    i = argv.index("--frames")
    return [*argv[:i], "--frames", str(frames), *argv[i + 2:]]


@pytest.mark.parametrize(("pipeline", "argv"), [(ppo, PPO_TINY), (dqn, DQN_TINY)])
def test_resume_into_the_run_dir_continues_its_history(tmp_path, pipeline, argv):
    """A run resumed into its own directory appends to metrics.csv/jsonl; rows (and
    TensorBoard events) that the interrupted run logged past its checkpoint are dropped, so
    the history is one curve, and learning_curve.png is drawn from all of it."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from streamrl.record import TensorboardLogger
    from streamrl.train import MetricsLogger

    first = [*_frames(argv, 512), "--run-dir", str(tmp_path), "--logger", "tensorboard"]
    assert pipeline.main(first) == 0
    before = read_metrics(tmp_path)
    assert before and before[-1]["frames"] == 512
    # what an interrupted run logs after its last checkpoint: a row and an event past it
    with MetricsLogger(tmp_path, resume_at=10**9) as log:
        log.log({"frames": 768, "eval_return": 12345.0})
    stale = TensorboardLogger(exp_name="tensorboard", log_dir=str(tmp_path))
    stale.log_scalar("eval_return", 12345.0, step=768)
    stale.close()
    plot = tmp_path / "learning_curve.png"
    plot.unlink()
    resumed = [*_frames(argv, 1024), "--run-dir", str(tmp_path), "--logger", "tensorboard",
               "--resume", str(tmp_path / "checkpoint.pt")]
    assert pipeline.main(resumed) == 0
    rows = read_metrics(tmp_path)
    assert rows[: len(before)] == before  # the first run's rows, kept as they were
    assert all(r.get("eval_return") != 12345.0 for r in rows)  # the stale row, dropped
    frames = [r["frames"] for r in rows]
    assert frames == sorted(frames) and frames[-1] == 1024 and frames[len(before)] > 512
    with open(tmp_path / "metrics.csv") as f:
        assert len(f.read().splitlines()) == len(rows) + 1  # one header, then the same rows
    assert plot.is_file()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    logged = [(e.step, e.value) for e in events.Scalars("eval_return")]
    assert logged == [(s, pytest.approx(v)) for s, v in _csv_series(rows, "eval_return")]


def test_resume_with_the_csv_logger_drops_its_stale_lines(tmp_path):
    """``--logger csv``: the per-scalar files of a resumed run hold the history up to the
    checkpoint, then the resumed run's values (as metrics.csv)."""
    assert ppo.main([*_frames(PPO_TINY, 512), "--run-dir", str(tmp_path), "--logger", "csv"]) == 0
    scalars = tmp_path / "csv" / "scalars" / "eval_return.csv"
    with open(scalars, "a") as f:
        f.write("768,12345.0\n")  # logged past the checkpoint by an interrupted run
    assert ppo.main([*_frames(PPO_TINY, 1024), "--run-dir", str(tmp_path), "--logger", "csv",
                     "--resume", str(tmp_path / "checkpoint.pt")]) == 0
    lines = scalars.read_text().splitlines()
    evals = _csv_series(read_metrics(tmp_path), "eval_return")
    assert [int(line.split(",")[0]) for line in lines] == [s for s, _ in evals]
    assert "12345" not in scalars.read_text()
