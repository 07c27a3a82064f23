"""WandbLogger writes an offline run under the given directory, never the network."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("wandb")

from streamrl.record import WandbLogger, get_logger


@pytest.fixture
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_default"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))
    # a wrong server address: any network attempt would fail or hang
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    return tmp_path


def test_offline_run_files(offline):
    save = offline / "logs"
    logger = WandbLogger(exp_name="run", save_dir=save, project="p", log_env_packages=False)
    logger.log_scalar("reward", 1.0, step=0)
    logger.log_scalar("reward", 2.0, step=1)
    logger.log_scalar("train/loss", 0.5)
    logger.log_hparams({"lr": 0.1})
    logger.log_histogram("w", torch.arange(5.0), step=0)
    logger.log_video("clip", torch.zeros(1, 3, 3, 8, 8, dtype=torch.uint8), step=0)
    run_dir = logger.experiment.dir
    logger.close()
    runs = list((save / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and str(runs[0]) in run_dir
    assert list(runs[0].glob("*.wandb"))
    assert list(runs[0].glob("files/media/**/*.mp4"))
    assert not (offline / "wandb_default").exists()


def test_online_is_refused_and_log_dir_synonym(offline):
    with pytest.raises(ValueError, match="offline only"):
        WandbLogger(exp_name="run", offline=False, save_dir=offline)
    with pytest.raises(ValueError, match="offline only"):
        WandbLogger(exp_name="run", save_dir=offline, mode="online")
    with pytest.raises(ValueError, match="save_dir or log_dir"):
        WandbLogger(exp_name="run", save_dir=offline / "a", log_dir=offline / "b")
    logger = get_logger("wandb", str(offline / "gl"), "run",
                        wandb_kwargs={"log_env_packages": False})
    assert isinstance(logger, WandbLogger) and logger.save_dir == str(offline / "gl")
    logger.close()
    assert list((offline / "gl" / "wandb").glob("offline-run-*"))
