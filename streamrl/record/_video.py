"""Video helpers shared by the loggers and VideoRecorder: shape checks, tiling, encoders.

Videos move between them as uint8 tensors ``[T, C, H, W]`` (channels first, C in 1 or 3),
or ``[N, T, C, H, W]`` for N videos, as TorchRL's loggers take them.
"""

from __future__ import annotations

import io
import math
from typing import Any

import torch

from streamrl.record.loggers.common import require


def as_video(video: Any, who: str) -> torch.Tensor:
    """``video`` as a uint8 ``[T, C, H, W]`` tensor, C == 3 (N videos are played one after
    the other, as TorchRL's CSV logger does); raise if it is not a video."""
    if not isinstance(video, torch.Tensor):
        raise TypeError(
            f"{who}: expected the video as a torch.Tensor, found {type(video).__name__}"
        )
    if video.ndim not in (4, 5) or video.shape[-3] not in (1, 3):
        raise ValueError(
            f"{who}: expected a video of shape [T, C, H, W] or [N, T, C, H, W] with C in "
            f"(1, 3) (channels first), found shape {tuple(video.shape)}"
        )
    if video.ndim == 5:
        video = video.flatten(0, 1)
    if video.dtype != torch.uint8:
        if not video.dtype.is_floating_point:
            raise TypeError(
                f"{who}: expected uint8 (or float in [0, 1]) frames, found {video.dtype}"
            )
        video = (video.clamp(0, 1) * 255).round().to(torch.uint8)
    return video.detach().cpu().expand(-1, 3, -1, -1)


def frames_hwc(video: torch.Tensor) -> Any:
    """``[T, C, H, W]`` uint8 -> a contiguous numpy ``[T, H, W, 3]`` array."""
    return video.permute(0, 2, 3, 1).contiguous().numpy()


def require_mp4(who: str) -> None:
    """Raise before anything is written when the mp4 encoder is not installed."""
    require("imageio_ffmpeg", who, pip_name="imageio-ffmpeg")


def write_mp4(path: str, video: torch.Tensor, fps: int, **kwargs: Any) -> None:
    """Encode ``[T, C, H, W]`` uint8 frames as H.264 mp4 with imageio-ffmpeg (the ffmpeg binary
    ships in its wheel). Odd sizes are padded by one black row/column (yuv420p needs even
    sizes); ``kwargs`` go to ``imageio_ffmpeg.write_frames`` (``codec``, ``quality``...)."""
    imageio_ffmpeg = require("imageio_ffmpeg", "writing mp4 videos", pip_name="imageio-ffmpeg")
    frames = frames_hwc(video)
    t, h, w, _ = frames.shape
    ph, pw = h + h % 2, w + w % 2
    if (ph, pw) != (h, w):
        import numpy as np

        padded = np.zeros((t, ph, pw, 3), dtype=np.uint8)
        padded[:, :h, :w] = frames
        frames = padded
    kwargs.setdefault("macro_block_size", 1)
    kwargs.setdefault("pix_fmt_out", "yuv420p")
    kwargs.setdefault("ffmpeg_log_level", "error")
    writer = imageio_ffmpeg.write_frames(path, (pw, ph), fps=fps, **kwargs)
    writer.send(None)  # start the ffmpeg process
    try:
        for frame in frames:
            writer.send(frame)
    finally:
        writer.close()


def encode_gif(video: torch.Tensor, fps: float) -> bytes:
    """``[T, C, H, W]`` uint8 frames as an animated GIF (Pillow), as TensorBoard shows videos."""
    from PIL import Image

    images = [Image.fromarray(f) for f in frames_hwc(video)]
    buf = io.BytesIO()
    images[0].save(
        buf, format="GIF", save_all=True, append_images=images[1:],
        duration=max(1, round(1000 / fps)), loop=0,
    )
    return buf.getvalue()


def make_grid(frames: torch.Tensor) -> torch.Tensor:
    """Tile ``[B, C, H, W]`` frames into one ``[C, rows * H, cols * W]`` frame (near square)."""
    b, c, h, w = frames.shape
    cols = math.ceil(math.sqrt(b))
    rows = math.ceil(b / cols)
    grid = frames.new_zeros(c, rows * h, cols * w)
    for i, frame in enumerate(frames):
        r, k = divmod(i, cols)
        grid[:, r * h : (r + 1) * h, k * w : (k + 1) * w] = frame
    return grid
