"""CSVLogger writes TorchRL's layout: scalars/<name>.csv, videos/<tag>_<step>.<fmt>, texts/."""

from __future__ import annotations

import pytest
import torch

from streamrl.record import CSVLogger


def test_scalars_layout_and_values(tmp_path):
    with CSVLogger(exp_name="run", log_dir=tmp_path) as logger:
        logger.log_scalar("reward", 1.5, step=10)
        logger.log_scalar("reward", torch.tensor(2.25), step=20)
        logger.log_scalar("loss", 0.5)  # no step: the count of values under the name
        logger.log_scalar("loss", 0.25)
        logger.log_scalar("train/lr", 1e-3, step=7)  # a "/" makes a subdirectory
    root = tmp_path / "run"
    assert sorted(p.name for p in root.iterdir()) == ["scalars", "texts", "videos"]
    assert (root / "scalars" / "reward.csv").read_text() == "10,1.5\n20,2.25\n"
    assert (root / "scalars" / "loss.csv").read_text() == "0,0.5\n1,0.25\n"
    assert (root / "scalars" / "train" / "lr.csv").read_text() == "7,0.001\n"


def test_purge_step_drops_what_an_interrupted_run_wrote_past_it(tmp_path):
    with CSVLogger(exp_name="run", log_dir=tmp_path) as logger:
        for step in (256, 512, 768):
            logger.log_scalar("reward", step / 256, step=step)
            logger.log_scalar("train/lr", 0.1, step=step)
    scalars = tmp_path / "run" / "scalars"
    with open(scalars / "reward.csv", "a") as f:
        f.write("1024,4")  # cut short by a kill
    # resumed from a checkpoint at step 512
    with CSVLogger(exp_name="run", log_dir=tmp_path, purge_step=513) as logger:
        logger.log_scalar("reward", 9.0, step=768)
    assert (scalars / "reward.csv").read_text() == "256,1.0\n512,2.0\n768,9.0\n"
    assert (scalars / "train" / "lr.csv").read_text() == "256,0.1\n512,0.1\n"
    assert not [p for p in scalars.rglob(".*")]  # no temporary file left
    with pytest.raises(ValueError, match="purge_step must be an int >= 0 or None, found -1"):
        CSVLogger(exp_name="run", log_dir=tmp_path, purge_step=-1)


def test_default_log_dir_is_csv_logs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    CSVLogger("exp").close()
    assert (tmp_path / "csv_logs" / "exp" / "scalars").is_dir()


def test_log_metrics_and_hparams(tmp_path):
    logger = CSVLogger("run", log_dir=tmp_path)
    out = logger.log_metrics({"a": torch.tensor(1.0), "b": 2}, step=3)
    logger.log_hparams({"lr": 0.1, "batch": 32})
    logger.close()
    logger.close()  # idempotent
    assert out == {"a": 1.0, "b": 2}
    assert (tmp_path / "run" / "scalars" / "a.csv").read_text() == "3,1.0\n"
    assert (tmp_path / "run" / "texts" / "hparams0.txt").read_text() == "batch: 32\nlr: 0.1"


def test_pt_video_and_errors(tmp_path):
    logger = CSVLogger("run", log_dir=tmp_path)
    video = torch.randint(0, 255, (1, 4, 3, 8, 8), dtype=torch.uint8)
    logger.log_video("clip", video)
    logger.log_video("clip", video, step=5)
    videos = tmp_path / "run" / "videos"
    assert sorted(p.name for p in videos.iterdir()) == ["clip_0.pt", "clip_5.pt"]
    assert torch.equal(torch.load(videos / "clip_5.pt"), video)
    with pytest.raises(ValueError, match=r"\[T, C, H, W\].*found shape \(4, 8, 8, 3\)"):
        logger.log_video("bad", torch.zeros(4, 8, 8, 3, dtype=torch.uint8))  # channels last
    with pytest.raises(NotImplementedError, match="histograms"):
        logger.log_histogram("h", [1, 2])
    with pytest.raises(ValueError, match="video_format must be one of"):
        CSVLogger("x", log_dir=tmp_path, video_format="avi")
    logger.close()


def test_mp4_video_decodes_back(tmp_path):
    imageio = pytest.importorskip("imageio")
    logger = CSVLogger("run", log_dir=tmp_path, video_format="mp4", video_fps=10)
    video = torch.zeros(5, 3, 15, 21, dtype=torch.uint8)  # odd sizes are padded to even
    video[:, 0] = 200
    logger.log_video("clip", video)
    logger.close()
    path = tmp_path / "run" / "videos" / "clip_0.mp4"
    with imageio.get_reader(path, format="FFMPEG") as reader:
        frames = list(reader.iter_data())
    assert len(frames) == 5
    assert frames[0].shape == (16, 22, 3)
    assert abs(int(frames[2][5, 5, 0]) - 200) < 20 and frames[2][5, 5, 1] < 30
