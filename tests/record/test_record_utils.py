"""get_logger dispatch and errors, generate_exp_name's format, missing backends."""

from __future__ import annotations

import re
import sys

import pytest
import torch

from streamrl.record import (
    CSVLogger,
    Logger,
    TensorboardLogger,
    VideoRecorder,
    WandbLogger,
    generate_exp_name,
    get_logger,
)


def test_generate_exp_name_format():
    a, b = generate_exp_name("DQN", "cartpole"), generate_exp_name("DQN", "cartpole")
    assert re.fullmatch(r"DQN_cartpole_[0-9a-f]{8}_\d\d_\d\d_\d\d-\d\d_\d\d_\d\d", a)
    assert a != b


def test_get_logger_dispatch(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    csv = get_logger("csv", str(tmp_path), "exp")
    assert isinstance(csv, CSVLogger) and csv.video_format == "mp4"
    csv.close()
    assert (tmp_path / "exp" / "scalars").is_dir()
    assert get_logger("", str(tmp_path), "exp") is None
    assert get_logger(None, str(tmp_path), "exp") is None


def test_get_logger_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    tb = get_logger("tensorboard", str(tmp_path), "exp")
    assert isinstance(tb, TensorboardLogger) and tb.log_dir == str(tmp_path / "exp")
    tb.close()


def test_get_logger_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown logger_type 'nope'.*\['csv', 'tensorboard', 'wandb'\]"):
        get_logger("nope", str(tmp_path), "exp")
    with pytest.raises(ValueError, match="mlflow_kwargs"):
        get_logger("csv", str(tmp_path), "exp", mlflow_kwargs={})
    assert not any(tmp_path.iterdir())


def test_missing_tensorboard(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(ModuleNotFoundError, match=r"'tensorboard'.*pip install 'streamrl\[record\]'"):
        TensorboardLogger("exp", log_dir=str(tmp_path / "tb"))
    assert not (tmp_path / "tb").exists()


def test_missing_wandb(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ModuleNotFoundError, match=r"'wandb'.*streamrl\[record\]"):
        WandbLogger("exp", save_dir=tmp_path / "w")
    assert not (tmp_path / "w").exists()


def test_missing_mp4_encoder(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    with pytest.raises(ModuleNotFoundError, match=r"'imageio-ffmpeg'.*streamrl\[record\]"):
        CSVLogger("exp", log_dir=tmp_path / "c", video_format="mp4")
    with pytest.raises(ModuleNotFoundError, match="imageio-ffmpeg"):
        get_logger("csv", str(tmp_path / "c"), "exp")
    assert not (tmp_path / "c").exists()
    CSVLogger("exp", log_dir=tmp_path / "pt").close()  # the default format needs nothing


def test_video_recorder_arguments():
    with pytest.raises(TypeError, match="expects a Logger"):
        VideoRecorder(object(), tag="x")
    with pytest.raises(ValueError, match="skip must be a positive int"):
        VideoRecorder(None, None, skip=0)
    rec = VideoRecorder(None, None)
    assert rec.in_keys == ["pixels"] and rec.skip == 1 and rec.make_grid is False
    rec._apply_transform(torch.zeros(2, 8, 8, 3, dtype=torch.uint8))  # a batch: two frames
    assert len(rec.obs) == 2 and rec.obs[0].shape == (3, 8, 8)


def test_partial_logger_subclass(tmp_path):
    # as in TorchRL, a custom logger may implement only what it uses
    class ListLogger(Logger):
        def _create_experiment(self):
            return []

        def log_scalar(self, name, value, step=None):
            self.experiment.append((name, value, step))

    with ListLogger("exp", log_dir=str(tmp_path)) as logger:
        logger.log_metrics({"a": 1.0}, step=2)
        assert logger.experiment == [("a", 1.0, 2)]
        with pytest.raises(NotImplementedError, match="ListLogger does not implement log_video"):
            logger.log_video("v", torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    assert repr(logger) == f"ListLogger(exp_name=exp, log_dir={tmp_path})"
