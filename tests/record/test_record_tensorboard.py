"""TensorboardLogger writes event files that tensorboard's own EventAccumulator reads back."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import (
    EventAccumulator,
)

from streamrl.record import TensorboardLogger


def test_scalars_read_back(tmp_path):
    logger = TensorboardLogger(exp_name="run", log_dir=str(tmp_path))
    assert logger.log_dir == str(tmp_path / "run")
    for step, value in [(0, 1.0), (10, 2.5), (20, -3.0)]:
        logger.log_scalar("reward", value, step=step)
    logger.log_scalar("train/loss", 0.125, step=4)
    logger.log_histogram("weights", torch.arange(10.0), step=1)
    logger.log_video("clip", torch.zeros(1, 3, 3, 8, 8, dtype=torch.uint8), step=2, fps=5)
    logger.close()
    acc = EventAccumulator(str(tmp_path / "run"))
    acc.Reload()
    assert {"reward", "train/loss"} <= set(acc.Tags()["scalars"])
    assert [(e.step, e.value) for e in acc.Scalars("reward")] == [(0, 1.0), (10, 2.5), (20, -3.0)]
    assert [(e.step, e.value) for e in acc.Scalars("train/loss")] == [(4, 0.125)]
    assert acc.Tags()["histograms"] == ["weights"]
    (image,) = acc.Images("clip")
    assert (image.step, image.width, image.height) == (2, 8, 8)
    assert image.encoded_image_string[:6] == b"GIF89a"


def test_hparams_and_bad_video(tmp_path):
    logger = TensorboardLogger("run", log_dir=str(tmp_path))
    logger.log_hparams({"lr": 0.1, "layers": [64, 64]})
    with pytest.raises(ValueError, match="found shape"):
        logger.log_video("clip", torch.zeros(3, 8, 8, dtype=torch.uint8))
    logger.close()
    assert any((tmp_path / "run").iterdir())
