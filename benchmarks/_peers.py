"""Running a benchmark's TorchRL side: a small script in the peers venv, its figures parsed.

Benchmarks that print TorchRL next to streamrl (``collectors.py``, ``multiagent.py``) write
their TorchRL workload as a script (``RESULT <row> <value>`` or ``SKIP <row> <why>`` lines on
stdout), run it with ``--peers-python`` in a subprocess and read the figures back; without a
python that imports torchrl they get a note instead, and print their own rows alone.

This machine's speed drifts by tens of percent within a minute, so one library's runs after
the other's put the drift into the ratio: such benchmarks run in rounds, each running both
libraries in turn, and report :func:`round_ratios`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
from collections.abc import Iterable


def selected_rows(parser: argparse.ArgumentParser, only: str, rows: Iterable[str]) -> list[str]:
    """The rows ``--only`` names (comma-separated), in its order; ``parser.error`` (exit 2)
    naming an unknown one and the known ones."""
    known = list(rows)
    picked = [r for r in only.split(",") if r]
    for r in picked:
        if r not in known:
            parser.error(f"unknown row {r!r}; expected some of {known}")
    return picked


def round_ratios(ours: list[float], theirs: list[float]) -> tuple[float, float]:
    """``(best of ours / best of theirs, median of the rounds' ratios)`` of figures measured
    in rounds (``ours[i]`` and ``theirs[i]`` in round ``i``; higher is better).

    >>> round_ratios([100.0, 300.0, 200.0], [50.0, 100.0, 100.0])
    (3.0, 2.0)
    """
    if not ours or len(ours) != len(theirs):
        raise ValueError(f"round_ratios: expected one figure per round on each side, found "
                         f"{len(ours)} and {len(theirs)}")
    return max(ours) / max(theirs), statistics.median(a / b for a, b in zip(ours, theirs))


def default_peers_python() -> str:
    """``$STREAMRL_PEERS_PYTHON``, else ``/tmp/peers/bin/python``."""
    return os.environ.get("STREAMRL_PEERS_PYTHON", "/tmp/peers/bin/python")


def run_torchrl_script(python: str, snippet: str, name: str, args: list[str],
                       timeout: float = 1800) -> tuple[dict[str, float], str | None]:
    """Run ``snippet`` (saved as ``name`` in a temporary folder) with ``python`` and ``args``;
    returns its ``RESULT`` figures by row and a note (skipped rows, a failure, or why nothing
    ran), ``None`` when all went well."""
    if not os.path.exists(python):
        return {}, f"{python} not found"
    check = subprocess.run([python, "-c", "import torchrl"], capture_output=True, text=True)
    if check.returncode != 0:
        return {}, f"{python} cannot import torchrl"
    # a file, not ``-c``: TorchRL's multi-process collectors spawn workers that re-import
    # the main module
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, name)
        with open(script, "w") as f:
            f.write(snippet)
        proc = subprocess.run([python, script, *args], capture_output=True, text=True,
                              timeout=timeout)
    out: dict[str, float] = {}
    notes = []
    for line in proc.stdout.splitlines():
        parts = line.split(" ", 2)
        if parts[0] == "RESULT" and len(parts) == 3:
            out[parts[1]] = float(parts[2])
        elif parts[0] == "SKIP":
            notes.append(line)
    if proc.returncode != 0:
        notes.append(f"torchrl run failed: {proc.stderr.strip().splitlines()[-1:]}")
    return out, "; ".join(notes) or None
