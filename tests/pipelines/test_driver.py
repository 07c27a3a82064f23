"""streamrl.train.driver: the command line and helpers the pipeline files share (the
pipelines' own tests run train_offpolicy and OffPolicyPipeline end to end)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from streamrl.train import driver, save_checkpoint


@dataclass
class Config:
    frames: int = 100
    seed: int = 0

    def __post_init__(self):
        if self.frames < 1:
            raise ValueError(f"Config.frames must be a positive int, found {self.frames}")


def parse(argv):
    return driver.parse_args("demo", "A demo pipeline.", Config, argv)


def test_parse_args_run_options_and_config_flags(capsys):
    config, args = parse(["--frames", "7", "--run-dir", "here", "--resume", "c.pt"])
    assert config == Config(frames=7)
    assert (args.run_dir, args.runs_root, args.no_files, args.no_progress, args.resume) == (
        "here", "runs", False, False, "c.pt")
    with pytest.raises(SystemExit) as info:
        parse(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: streamrl run demo") and "A demo pipeline." in out
    assert "runs/demo-<timestamp>/" in out and "--seed" in out
    with pytest.raises(SystemExit) as info:
        parse(["--frames", "0"])
    assert info.value.code == 2
    assert "Config.frames must be a positive int, found 0" in capsys.readouterr().err


def test_main_trains_into_a_fresh_run_dir_and_prints_the_summary(tmp_path, capsys):
    calls = []

    def train(config, *, run_dir, progress, resume):
        calls.append((config, run_dir, progress, resume))
        return "result"

    def summary(name, config, result):
        print(f"{name}: {result} {config.frames}")

    argv = ["--runs-root", str(tmp_path), "--frames", "5", "--no-progress"]
    assert driver.main("demo", parse, train, argv, summary) == 0
    (config, run_dir, progress, resume), = calls
    assert config.frames == 5 and not progress and resume is None
    assert run_dir.parent == tmp_path and run_dir.name.startswith("demo-")
    assert capsys.readouterr().out == "demo: result 5\n"
    assert driver.main("demo", parse, train, ["--no-files"], summary) == 0
    assert calls[-1][1] is None


def test_main_exits_130_on_ctrl_c(tmp_path, capsys):
    def train(config, **kwargs):
        raise KeyboardInterrupt

    assert driver.main("demo", parse, train, ["--run-dir", str(tmp_path)]) == 130
    assert capsys.readouterr().err == (
        f"demo: interrupted; checkpoint: {tmp_path / 'checkpoint.pt'}\n")
    assert driver.main("demo", parse, train, ["--no-files"]) == 130
    assert capsys.readouterr().err == "demo: interrupted\n"


def test_load_resume_and_write_config(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"pipeline": "demo", "frames": 3})
    assert driver.load_resume("demo", path)["frames"] == 3
    with pytest.raises(ValueError, match=r"is not a other checkpoint \(its pipeline: 'demo'\)"):
        driver.load_resume("other", path)
    run_dir = tmp_path / "a" / "b"
    driver.write_config(run_dir, Config(frames=9))
    assert json.loads((run_dir / "config.json").read_text()) == {"frames": 9, "seed": 0}


def test_offpolicy_pipeline_entry_points_and_errors(capsys):
    built = []

    class Built:
        graph = "the graph"

    def build(config, run_dir, progress, state):
        built.append((config, run_dir, progress, state))
        return Built()

    pipeline = driver.OffPolicyPipeline("demo", "DEMO", Config, build, "Demo help.")
    assert pipeline.build_graph(["--frames", "3"]) == "the graph"
    assert built == [(Config(frames=3), None, False, None)]
    assert pipeline.parse_args([])[0] == Config()
    with pytest.raises(SystemExit):
        pipeline.main(["--help"])
    assert "Demo help." in capsys.readouterr().out
    assert repr(pipeline) == "OffPolicyPipeline('demo', 'DEMO')"
    with pytest.raises(TypeError, match="config_cls must be a dataclass"):
        driver.OffPolicyPipeline("demo", "DEMO", dict, build, None)
    with pytest.raises(TypeError, match="build must be callable, found str"):
        driver.OffPolicyPipeline("demo", "DEMO", Config, "build", None)


def test_offpolicy_summary_lines(capsys):
    result = driver.OffPolicyResult(
        frames=2048, updates=300, wall_s=1.5, eval_return=480.0, solved_at=1024,
        evaluations=[(1024, 480.0)], mean_staleness=1.25, learner_busy=0.5,
        report="REPORT", run_dir=Path("runs/x"))

    @dataclass
    class Target:
        target_return: float = 475.0

    driver.print_offpolicy_summary("demo", Target(), result)
    assert capsys.readouterr().out.splitlines() == [
        "demo: final eval return 480.0 (reached 475 at 1,024 frames) after 2,048 frames, "
        "300 updates, 1.5 s",
        "  mean staleness 1.25 policy versions",
        "  learner busy 50% of the run (replay sink/source busy time includes waiting on the "
        "rate limiter)",
        "REPORT",
        "  run dir: runs/x",
    ]


def test_checkpoint_frames_of_both_formats(tmp_path):
    from streamrl.checkpoint import Checkpoint

    assert driver.checkpoint_frames({"pipeline": "demo", "frames": 512}) == 512
    path = Checkpoint(match={"pipeline": "demo"}).save(tmp_path / "c.pt",
                                                       metadata={"frames": 768})
    assert driver.checkpoint_frames(driver.load_resume("demo", path)) == 768
    assert driver.checkpoint_frames({"pipeline": "demo"}) is None
    assert driver.checkpoint_frames({"frames": True}) is None


def test_main_reports_a_full_disk_in_one_line(tmp_path, capsys):
    import errno

    def train(config, *, run_dir, **kwargs):
        save_checkpoint(run_dir / "checkpoint.pt", {"pipeline": "demo", "frames": 1})
        cause = OSError(errno.ENOSPC, "No space left on device", str(run_dir / "metrics.csv"))
        raise RuntimeError("operator 'metrics' raised in step()") from cause

    assert driver.main("demo", parse, train, ["--run-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        "streamrl run demo: error: [Errno 28] No space left on device: "
        f"'{tmp_path / 'metrics.csv'}'; last checkpoint: {tmp_path / 'checkpoint.pt'}\n")

    def bug(config, **kwargs):  # not the disk: the traceback stays
        raise OSError(errno.EBADF, "Bad file descriptor", "x")

    with pytest.raises(OSError, match="Bad file descriptor"):
        driver.main("demo", parse, bug, ["--no-files"])


@dataclass
class _Cfg:
    lr: float = 1e-3
    hidden: int = 64
    frames: int = 100
    layers: tuple = (64, 64)


def test_a_resumed_offpolicy_run_must_keep_every_field_but_the_resumable_ones():
    state = {"config": {"lr": 1e-3, "hidden": 64, "frames": 100, "layers": [64, 64]}}
    # the budget may grow; a tuple saved as a list is the same value
    driver.check_resumed_config("demo", _Cfg(frames=500), state, driver.OFFPOLICY_RESUMABLE)
    with pytest.raises(ValueError, match=r"demo: cannot resume: the checkpoint was trained "
                                         r"with lr=0\.001 \(this run: 0\.01\), hidden=64 "
                                         r"\(this run: 32\); a resumed run may change only"):
        driver.check_resumed_config("demo", _Cfg(lr=1e-2, hidden=32), state,
                                    driver.OFFPOLICY_RESUMABLE)
    # a pipeline's own resumable field; a checkpoint without a config is not checked
    driver.check_resumed_config("demo", _Cfg(hidden=32), state, ("hidden",))
    driver.check_resumed_config("demo", _Cfg(hidden=32), {}, ())
