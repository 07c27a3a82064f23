"""VideoRecorder on a pixel env writes an mp4 with the frames recorded; bad envs fail early."""

from __future__ import annotations

import pytest
import torch

from streamrl.envs import SerialEnv
from streamrl.envs.libs.gym import GymEnv
from streamrl.envs.transforms import (
    Compose,
    Resize,
    StepCounter,
    ToTensorImage,
    TransformedEnv,
)
from streamrl.record import CSVLogger, PixelRenderTransform, VideoRecorder

imageio = pytest.importorskip("imageio")
pytest.importorskip("imageio_ffmpeg")


def _frames(path):
    with imageio.get_reader(path, format="FFMPEG") as reader:
        return list(reader.iter_data())  # list(reader) sizes itself on an unknown length


def test_pendulum_pixels_to_mp4(tmp_path):
    logger = CSVLogger(exp_name="pendulum", log_dir=tmp_path, video_format="mp4")
    env = TransformedEnv(
        GymEnv("Pendulum-v1", from_pixels=True),
        Compose(ToTensorImage(), Resize(32, 32)),
    )
    env.append_transform(VideoRecorder(logger, tag="run", skip=1))
    env.rollout(6)  # the reset frame + 6 steps
    env.transform.dump()  # TorchRL's spelling: the Compose dumps its recorders
    env.rollout(3)
    env.transform[-1].dump(step=100)
    env.close()
    videos = tmp_path / "pendulum" / "videos"
    first = _frames(videos / "run_0.mp4")
    assert len(first) == 7 and first[0].shape == (32, 32, 3)
    assert len(_frames(videos / "run_100.mp4")) == 4
    assert first[0].mean() > 50  # Pendulum's white background, not a black frame


def test_default_skip_is_two_in_an_env(tmp_path):
    logger = CSVLogger(exp_name="e", log_dir=tmp_path)
    env = TransformedEnv(
        GymEnv("Pendulum-v1", from_pixels=True), Compose(ToTensorImage(), Resize(16, 16))
    )
    rec = VideoRecorder(logger, tag="v")
    env.append_transform(rec)
    env.rollout(5)  # 6 frames, one in two kept
    assert rec.skip == 2 and len(rec.obs) == 3
    rec.dump()
    assert torch.load(tmp_path / "e" / "videos" / "v_0.pt").shape == (1, 3, 3, 16, 16)
    env.close()


def test_env_without_pixels_fails_before_stepping(tmp_path):
    logger = CSVLogger(exp_name="e", log_dir=tmp_path)
    env = TransformedEnv(GymEnv("Pendulum-v1"), VideoRecorder(logger, tag="v"))
    with pytest.raises(KeyError, match=r"expected the frame entry 'pixels'.*found \['observation'\]"):
        env.reset()
    # appended to a built env: at once
    env2 = TransformedEnv(GymEnv("Pendulum-v1"))
    with pytest.raises(KeyError, match="'pixels'"):
        env2.append_transform(VideoRecorder(logger, tag="v"))
    env.close()
    env2.close()
    assert not any((tmp_path / "e" / "videos").iterdir())


def test_pixel_render_transform(tmp_path):
    env = TransformedEnv(GymEnv("Pendulum-v1", render_mode="rgb_array"),
                         PixelRenderTransform())
    env.append_transform(ToTensorImage())
    env.append_transform(Resize(8, 8))
    td = env.rollout(2)
    assert td["pixels"].shape == (2, 3, 8, 8) and td["next", "pixels"].dtype == torch.float32
    assert env.observation_spec["pixels"].shape == (3, 8, 8)
    env.transform[0].switch("off")
    assert not env.transform[0].enabled
    env.close()
    plain = TransformedEnv(SerialEnv(1, lambda: GymEnv("Pendulum-v1")))
    with pytest.raises(ValueError, match="no callable 'render' method"):
        plain.append_transform(PixelRenderTransform())
    plain.close()
    with pytest.raises(ValueError, match="one out_key"):
        PixelRenderTransform(out_keys=["a", "b"])


def test_dump_on_done_writes_one_video_per_episode(tmp_path):
    logger = CSVLogger(exp_name="e", log_dir=tmp_path)
    rec = VideoRecorder(logger, tag="ep", dump_on_done=True, skip=1)
    env = TransformedEnv(
        GymEnv("Pendulum-v1", from_pixels=True),
        Compose(ToTensorImage(), Resize(16, 16), StepCounter(max_steps=4), rec),
    )
    env.rollout(10)  # ends with the episode, at step 4
    env.close()
    assert torch.load(tmp_path / "e" / "videos" / "ep_0.pt").shape == (1, 5, 3, 16, 16)
    assert rec.obs == []


def test_max_frames():
    with pytest.raises(ValueError, match="max_frames"):
        VideoRecorder(None, None, max_frames=0)
    rec = VideoRecorder(None, None, max_frames=5, make_grid=False)
    for _ in range(3):
        rec._apply_transform(torch.zeros(4, 3, 16, 16, dtype=torch.uint8))
    assert len(rec.obs) == 5
    rec.dump()
    rec._apply_transform(torch.zeros(3, 16, 16, dtype=torch.uint8))
    assert len(rec.obs) == 1
