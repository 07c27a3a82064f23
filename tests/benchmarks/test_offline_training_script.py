"""benchmarks/offline_training.py with a tiny budget: it records the four datasets with
``streamrl dataset create``, prints the normalized table for the algorithms asked and the
offline-to-online comparison (nothing is asserted about the scores).

The tiny run calls the script's ``main`` in this process, its ``streamrl`` commands too (a
fresh interpreter per command cost most of the test's time); that ``_streamrl`` runs the
command in a fresh interpreter, sees the script's environment and reports a failure is
checked on its own."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from streamrl import cli
from tests.train.recording_support import tiny_checkpoint

pytest.importorskip("minari")
ROOT = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location(
        "bench_offline_training", ROOT / "benchmarks" / "offline_training.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


offline_training = _load()


def _streamrl_here(*args: str) -> str:
    """``_streamrl`` without the fresh interpreter: ``streamrl ARGS`` in this process."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(list(args))
    if code != 0:
        raise RuntimeError(f"streamrl {' '.join(args)} failed ({code})")
    return out.getvalue()


def _main(monkeypatch, argv: list[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["offline_training.py", *argv])
    offline_training.main()


@pytest.mark.slow
def test_records_the_datasets_and_prints_both_tables(tmp_path, monkeypatch, capsys):
    # main() points these at --root: restored after the test
    monkeypatch.setenv("MINARI_DATASETS_PATH", "unset")
    monkeypatch.setenv("STREAMRL_DATASETS_ROOT", "unset")
    commands: list[tuple[str, ...]] = []
    streamrl_fresh = offline_training._streamrl
    monkeypatch.setattr(offline_training, "_streamrl",
                        lambda *args: commands.append(args) or _streamrl_here(*args))
    ckpt = tiny_checkpoint("sac_pendulum", tmp_path / "sac")
    argv = ["--expert", str(ckpt), "--medium", str(ckpt), "--updates", "10", "--seeds", "0",
            "--episodes", "2", "--algos", "bc,iql", "--datasets", "random,medium-replay",
            "--o2o-frames", "200", "--root", str(tmp_path / "data")]
    _main(monkeypatch, argv)
    out = capsys.readouterr().out
    for name in ("random", "medium", "medium-replay", "expert"):
        assert re.search(rf"^  recorded pendulum/{re.escape(name)}-v0 in ", out, re.M), out
        assert re.search(rf"^  {re.escape(name)} +\d+ steps, mean return", out, re.M), out
    assert [c[:2] for c in commands] == [("dataset", "create"), ("dataset", "info")] * 4
    assert "| algorithm | random | medium-replay |" in out
    assert re.search(r"^\| bc \| -?[\d.]+ \+- 0\.0 \| -?[\d.]+ \+- 0\.0 \|$", out, re.M), out
    assert re.search(r"^\| iql \|", out, re.M)
    assert re.search(r"^\| 0 \| .* \| .* \|$", out, re.M), out  # the offline-to-online row
    runs = [json.loads(line) for line in (tmp_path / "data" / "results.jsonl").open()]
    assert [(r["algo"], r["dataset"], r["seed"]) for r in runs] == [
        ("bc", "random", 0), ("bc", "medium-replay", 0), ("iql", "random", 0),
        ("iql", "medium-replay", 0)]
    # a second run reuses the recorded datasets and the finished runs: it trains nothing
    commands.clear()

    def no_training(*args):
        raise AssertionError("trained again")

    monkeypatch.setattr(offline_training, "train_offline", no_training)
    _main(monkeypatch, [*argv[:-4], "--root", str(tmp_path / "data")])
    again = capsys.readouterr().out
    assert "recorded" not in again and "| bc |" in again
    assert f"(4 of the runs above reused from {tmp_path / 'data' / 'results.jsonl'})" in again
    assert [c[:2] for c in commands] == [("dataset", "info")] * 4

    # _streamrl itself: the command in a fresh interpreter, which sees the environment main()
    # set (the datasets under --root), its standard output returned
    fresh = json.loads(streamrl_fresh("dataset", "info", "minari:pendulum/expert-v0", "--json"))
    assert fresh == json.loads(_streamrl_here("dataset", "info", "minari:pendulum/expert-v0",
                                              "--json"))
    with pytest.raises(RuntimeError, match=r"(?s)streamrl nope failed:.*invalid choice: 'nope'"):
        streamrl_fresh("nope")


def test_the_offline_to_online_rows_refuse_an_env_other_than_pendulum(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "offline_training.py"), "--expert", "e.pt",
           "--medium", "m.pt", "--env", "HalfCheetah-v5", "--o2o-frames", "10",
           "--root", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "runs on Pendulum-v1 only, found --env HalfCheetah-v5" in done.stderr
    assert not any(tmp_path.iterdir())  # refused before recording anything


def test_the_cql_penalty_weight_follows_the_env_preset_or_the_flag(monkeypatch):
    # main() stops at the first dataset: what reaches the pipelines is algo_options(args)
    seen = []

    def stop(name, args):
        seen.append(offline_training.algo_options(args))
        raise SystemExit(0)

    monkeypatch.setattr(offline_training, "record", stop)
    monkeypatch.setenv("MINARI_DATASETS_PATH", "unset")
    monkeypatch.setenv("STREAMRL_DATASETS_ROOT", "unset")
    base = ["--expert", "e.pt", "--medium", "m.pt"]
    for extra in ([], ["--env", "HalfCheetah-v5"], ["--cql-min-q-weight", "2.5"]):
        with pytest.raises(SystemExit):
            _main(monkeypatch, [*base, *extra])
    assert [o["cql"] for o in seen] == [{"min_q_weight": 10.0}, {"min_q_weight": 1.0},
                                        {"min_q_weight": 2.5}]
    assert seen[0]["iql"] == {"temperature": 0.3}


def test_results_match_on_every_setting_and_refuse_a_damaged_file(tmp_path):
    path = tmp_path / "results.jsonl"
    results = offline_training.Results(path)
    run = {"env": "Pendulum-v1", "algo": "cql", "dataset": "medium", "dataset_steps": 100,
           "dataset_return": -900.5, "seed": 0, "updates": 10, "hidden": 64,
           "options": {"min_q_weight": 10.0}}
    assert results.get(run) is None
    results.add(run, -321.0, 1.5)
    again = offline_training.Results(path)  # read back from the file
    assert again.get(dict(run)) == -321.0 and again.reused == 1
    for key, other in (("seed", 1), ("updates", 20), ("dataset_return", -901.0),
                       ("options", {"min_q_weight": 1.0})):
        assert again.get({**run, key: other}) is None, key
    row = json.loads(path.read_text())
    assert row["eval_return"] == -321.0 and row["seconds"] == 1.5 and row["commit"]
    with path.open("a") as f:
        f.write("{not json\n")
    with pytest.raises(SystemExit, match=r"results\.jsonl:2: expected a JSON object"):
        offline_training.Results(path)
