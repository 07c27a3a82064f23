"""benchmarks/datasets.py on a tiny budget: it generates both sources, loads and reopens them
(the reopen without the source) and reports every row; the median of runs is per row."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load():
    spec = importlib.util.spec_from_file_location("bench_datasets", BENCHMARKS / "datasets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


datasets = _load()


def test_tiny_run_reports_every_row(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "mine"))
    out = tmp_path / "result.json"
    result = datasets.main(["--transitions", "2500", "--repeats", "1", "--peers-python", "",
                            "--json", str(out)])
    ours = result["streamrl"]
    assert ours["d4rl load"]["len"] == 2499  # the last row has no next observation
    assert ours["minari load"]["len"] == 2500
    assert ours["d4rl reopen"]["len"] == 2499 and ours["minari reopen"]["len"] == 2500
    assert all(ours[r]["us"] > 0 for r in ("d4rl sample", "minari sample"))
    assert result["torchrl"] is None
    assert json.loads(out.read_text())["transitions"] == 2500
    text = capsys.readouterr().out
    assert "| d4rl load |" in text and "| minari sample |" in text
    assert os.environ["MINARI_DATASETS_PATH"] == str(tmp_path / "mine")  # restored


def test_median_per_row_keeps_errors():
    runs = [{"d4rl load": {"s": 1.0, "len": 3}, "d4rl sample": {"us": 5.0}},
            {"d4rl load": {"s": 3.0, "len": 3}, "d4rl sample": {"error": "boom"}},
            {"d4rl load": {"s": 2.0, "len": 3}, "d4rl sample": {"us": 7.0}}]
    got = datasets.median(runs)
    assert got["d4rl load"] == {"s": 2.0, "len": 3}
    assert got["d4rl sample"] == {"error": "boom"}
    text = datasets.table(got, None, 10, repeats=3)
    assert "| d4rl load | 2.00 s | - |" in text and "| d4rl sample | error | - |" in text
