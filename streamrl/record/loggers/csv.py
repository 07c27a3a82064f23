"""CSVLogger: scalars as CSV files, videos as mp4 (or tensors), with no other dependency.

The layout under ``<log_dir>/<exp_name>/`` is TorchRL's:

- ``scalars/<name>.csv``: one ``step,value`` line per call (no header; a ``/`` in the name
  makes a subdirectory);
- ``videos/<tag>_<step>.<mp4|pt|memmap>``;
- ``texts/hparams0.txt``: the hyperparameters, one ``name: value`` line each, sorted.

>>> import tempfile, pathlib
>>> logger = CSVLogger(exp_name="demo", log_dir=tempfile.mkdtemp())
>>> logger.log_scalar("reward", 1.5, step=10)
>>> logger.log_scalar("reward", 2.0, step=20)
>>> (pathlib.Path(logger.log_dir) / "demo" / "scalars" / "reward.csv").read_text()
'10,1.5\\n20,2.0\\n'
>>> logger.close()
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import IO, Any

import torch

from streamrl.record._video import as_video, require_mp4, write_mp4
from streamrl.record.loggers.common import Logger

__all__ = ["CSVExperiment", "CSVLogger"]

_VIDEO_FORMATS = ("pt", "memmap", "mp4")


def _step(line: str) -> float:
    """The step of a ``step,value`` line (infinite when it has none)."""
    try:
        return int(line.split(",", 1)[0])
    except ValueError:
        return float("inf")


class CSVExperiment:
    """The files of one CSV experiment under ``log_dir`` (``scalars/``, ``videos/``, ``texts/``).

    ``add_scalar``, ``add_video`` and ``add_text`` take TorchRL's arguments; a missing
    ``global_step`` counts the calls per name. Files stay open (appended, flushed at each
    write) until ``close``.
    """

    def __init__(self, log_dir: str, *, video_format: str = "pt", video_fps: int = 30,
                 purge_step: int | None = None) -> None:
        self.log_dir = log_dir
        self.video_format = video_format
        self.video_fps = video_fps
        self.scalars: dict[str, list[tuple[int, float]]] = defaultdict(list)
        self.videos_counter: dict[str, int] = defaultdict(int)
        self.text_counter: dict[str, int] = defaultdict(int)
        self.files: dict[str, IO[str]] = {}
        for sub in ("scalars", "videos", "texts"):
            os.makedirs(os.path.join(log_dir, sub), exist_ok=True)
        if purge_step is not None:
            self._purge(purge_step)

    def _purge(self, step: int) -> None:
        """Drop the scalar lines at steps ``>= step`` that an earlier writer left (each file
        rewritten to a temporary file, then renamed over the old one)."""
        for root, _, names in os.walk(os.path.join(self.log_dir, "scalars")):
            for name in names:
                if not name.endswith(".csv"):
                    continue
                path = os.path.join(root, name)
                with open(path) as f:
                    lines = f.readlines()
                # (a line cut short by a kill, or with no step, goes too)
                kept = [ln for ln in lines if ln.endswith("\n") and _step(ln) < step]
                if len(kept) == len(lines):
                    continue
                tmp = os.path.join(root, f".{name}.tmp")
                with open(tmp, "w") as f:
                    f.writelines(kept)
                os.replace(tmp, path)

    def _open(self, path: str, mode: str) -> IO[str]:
        fd = self.files.get(path)
        if fd is None:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            # kept open: scalars are appended at every call; close() closes it
            fd = self.files[path] = open(path, mode)
        return fd

    def add_scalar(self, name: str, value: float, global_step: int | None = None) -> None:
        """Append ``step,value`` to ``scalars/<name>.csv``."""
        if global_step is None:
            global_step = len(self.scalars[name])
        value = float(value)
        self.scalars[name].append((global_step, value))
        fd = self._open(os.path.join(self.log_dir, "scalars", f"{name}.csv"), "a")
        fd.write(f"{global_step},{value}\n")
        fd.flush()

    def add_video(self, tag: str, vid_tensor: torch.Tensor, global_step: int | None = None,
                  **kwargs: Any) -> str:
        """Write ``videos/<tag>_<step>.<format>``; returns the path. For mp4, ``fps`` (default
        ``video_fps``) and other ``kwargs`` go to the encoder."""
        if global_step is None:
            global_step = self.videos_counter[tag]
            self.videos_counter[tag] += 1
        path = os.path.join(self.log_dir, "videos", f"{tag}_{global_step}.{self.video_format}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if self.video_format == "pt":
            torch.save(vid_tensor, path)
        elif self.video_format == "memmap":
            from tensordict import MemoryMappedTensor

            MemoryMappedTensor.from_tensor(vid_tensor, filename=path)
        else:
            fps = kwargs.pop("fps", self.video_fps)
            write_mp4(path, as_video(vid_tensor, "CSVLogger.log_video"), fps=fps, **kwargs)
        return path

    def add_text(self, tag: str, text: str, global_step: int | None = None) -> None:
        """Write ``text`` to ``texts/<tag><step>.txt``."""
        if global_step is None:
            global_step = self.text_counter[tag]
            self.text_counter[tag] += 1
        fd = self._open(os.path.join(self.log_dir, "texts", f"{tag}{global_step}.txt"), "w")
        fd.write(text)
        fd.flush()

    def close(self) -> None:
        """Close the open files."""
        for fd in self.files.values():
            fd.close()
        self.files.clear()

    def __repr__(self) -> str:
        return f"CSVExperiment(log_dir={self.log_dir})"


class CSVLogger(Logger):
    """A logger with no dependency: scalars in CSV files, videos as mp4 or tensor files.

    Args:
        exp_name: the experiment's name (the directory under ``log_dir``).
        log_dir: where the experiment is written; defaults to ``csv_logs`` (relative to the
            current directory).
        video_format: ``"pt"`` (``torch.save``, the default), ``"memmap"``
            (a :class:`tensordict.MemoryMappedTensor` file) or ``"mp4"`` (H.264 through
            imageio-ffmpeg: ``pip install 'streamrl[record]'``, checked here).
        video_fps: the frame rate of mp4 videos.
        purge_step: when a run goes on in the directory of an interrupted one (from its
            checkpoint at step ``purge_step - 1``), the scalar lines the interrupted run
            wrote at steps ``>= purge_step`` are dropped first (as TensorBoard's
            ``purge_step``).
    """

    experiment: CSVExperiment

    def __init__(self, exp_name: str, log_dir: Any = None, video_format: str = "pt",
                 video_fps: int = 30, *, purge_step: int | None = None) -> None:
        if purge_step is not None and (isinstance(purge_step, bool)
                                       or not isinstance(purge_step, int) or purge_step < 0):
            raise ValueError(f"purge_step must be an int >= 0 or None, found {purge_step!r}")
        self.purge_step = purge_step
        if video_format not in _VIDEO_FORMATS:
            raise ValueError(
                f"video_format must be one of {list(_VIDEO_FORMATS)}, found {video_format!r}"
            )
        if video_format == "mp4":
            require_mp4("CSVLogger(video_format='mp4')")
        self.video_format = video_format
        self.video_fps = video_fps
        super().__init__(exp_name=exp_name, log_dir="csv_logs" if log_dir is None else log_dir)

    def _create_experiment(self) -> CSVExperiment:
        return CSVExperiment(
            os.path.join(str(self.log_dir), self.exp_name),
            video_format=self.video_format, video_fps=self.video_fps,
            purge_step=self.purge_step,
        )

    def log_scalar(self, name: str, value: float, step: int | None = None) -> None:
        """Append ``step,value`` to ``scalars/<name>.csv`` (``step`` defaults to the number of
        values logged under ``name`` so far)."""
        self.experiment.add_scalar(name, value, global_step=step)

    def log_video(self, name: str, video: torch.Tensor, step: int | None = None,
                  **kwargs: Any) -> None:
        """Write ``videos/<name>_<step>.<video_format>`` (``step`` defaults to a per-name
        count). ``video``: uint8 ``[T, C, H, W]`` or ``[N, T, C, H, W]``, C in 1 or 3."""
        as_video(video, "CSVLogger.log_video")  # check the shape before writing anything
        self.experiment.add_video(name, video, global_step=step, **kwargs)

    def log_hparams(self, cfg: Mapping[str, Any]) -> None:
        """Write ``texts/hparams<n>.txt``: one ``name: value`` line per entry, sorted."""
        if not isinstance(cfg, Mapping):
            raise TypeError(f"log_hparams expects a mapping, found {type(cfg).__name__}")
        self.experiment.add_text(
            "hparams", "\n".join(f"{k}: {v}" for k, v in sorted(cfg.items()))
        )

    def log_histogram(self, name: str, data: Sequence, **kwargs: Any) -> None:
        """Not available in CSV files (as in TorchRL): raises NotImplementedError."""
        raise NotImplementedError(
            "CSVLogger cannot log histograms; use TensorboardLogger or WandbLogger"
        )

    def __repr__(self) -> str:
        return f"CSVLogger(exp_name={self.exp_name}, experiment={self.experiment!r})"
