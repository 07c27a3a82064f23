"""benchmarks/offline_losses.py: its worker runs IQL and CQL updates with streamrl, the table,
and a missing peer interpreter (timed with a tiny budget, nothing is asserted about speed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
spec = importlib.util.spec_from_file_location("bench_offline_losses",
                                              BENCHMARKS / "offline_losses.py")
offline = importlib.util.module_from_spec(spec)
spec.loader.exec_module(offline)

TINY = ["--seconds", "0.05", "--rounds", "1", "--batch", "8", "--hidden", "16"]


def test_runs_both_losses_and_skips_torchrl_without_a_peer(capsys, monkeypatch):
    monkeypatch.delenv("STREAMRL_PEERS_PYTHON", raising=False)
    assert offline.main(TINY) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if "upd/s" in line]
    assert [(r[0], r[1]) for r in rows] == [("IQL", "streamrl"), ("CQL", "streamrl")]
    assert all(float(r[2]) > 0 for r in rows)
    assert "TorchRL rows skipped" in out


def test_a_peer_that_fails_is_a_note_not_a_crash(capsys, tmp_path):
    # a peer interpreter that cannot run: the TorchRL readings fail, streamrl's stand
    missing = str(tmp_path / "no-python")
    assert offline.main([*TINY, "--losses", "IQL", "--peers-python", missing]) == 0
    out = capsys.readouterr().out
    assert "IQL   streamrl" in out and "note: torchrl IQL: " in out
    assert not [line for line in out.splitlines() if line.startswith("IQL   torchrl")]


def test_summary_and_bad_losses():
    lines = offline.summarize({("streamrl", "CQL"): [9.0, 11.0], ("torchrl", "CQL"): [5.0]})
    assert lines[1].split()[:3] == ["CQL", "streamrl", "10.0"] and "2.00x TorchRL" in lines[1]
    assert lines[2].split()[:3] == ["CQL", "torchrl", "5.0"]
    with pytest.raises(SystemExit):
        offline.main(["--losses", "BC"])
