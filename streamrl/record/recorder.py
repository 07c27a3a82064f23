"""VideoRecorder (collect frames from an env's pixels, write them to a logger) and
PixelRenderTransform (add ``env.render()`` frames to an env's outputs): TorchRL's recorders.

>>> import tempfile
>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.record import CSVLogger, VideoRecorder
>>> logger = CSVLogger("demo", log_dir=tempfile.mkdtemp())
>>> recorder = VideoRecorder(logger, tag="frames")
>>> for _ in range(3):  # standalone, e.g. on replay-buffer samples
...     _ = recorder(TensorDict({"pixels": torch.zeros(8, 8, 3, dtype=torch.uint8)}))
>>> recorder.dump()
>>> torch.load(f"{logger.experiment.log_dir}/videos/frames_0.pt").shape
torch.Size([1, 3, 3, 8, 8])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from tensordict import TensorDictBase

from streamrl.data.specs import Unbounded
from streamrl.envs.transforms import Transform
from streamrl.envs.transforms.transform import as_keys
from streamrl.record._video import make_grid
from streamrl.record.loggers.common import Logger

__all__ = ["PixelRenderTransform", "VideoRecorder"]


def _image_shape_ok(shape: Sequence[int]) -> bool:
    """Whether a frame shape (after any batch dims) looks like ``[H, W, C]`` or ``[C, H, W]``
    with C in 1 or 3, or a grayscale ``[H, W]``."""
    if len(shape) == 2:
        return True
    return len(shape) >= 3 and (shape[-1] in (1, 3) or shape[-3] in (1, 3))


def _to_chw(obs: torch.Tensor, who: str) -> torch.Tensor:
    """Frames ``[..., H, W, C]``, ``[..., C, H, W]`` or ``[H, W]`` -> uint8 ``[..., 3, H, W]``."""
    if obs.ndim == 2:
        obs = obs.unsqueeze(-3)
    elif obs.ndim >= 3 and obs.shape[-3] in (1, 3) and obs.shape[-2] > 3 and obs.shape[-1] > 3:
        pass  # channels first already
    elif obs.ndim >= 3 and obs.shape[-1] in (1, 3):
        obs = obs.movedim(-1, -3)
    else:
        raise ValueError(
            f"{who}: expected image frames [H, W, C] or [C, H, W] with C in (1, 3), found "
            f"shape {tuple(obs.shape)}"
        )
    if obs.dtype.is_floating_point:
        # float images (ToTensorImage) are in [0, 1]
        obs = (obs.clamp(0, 1) * 255).round()
    obs = obs.to("cpu", torch.uint8)
    return obs.expand(*obs.shape[:-3], 3, *obs.shape[-2:]).clone()


class VideoRecorder(Transform):
    """Record frames from ``in_keys`` (reset and step outputs) and write them as one video
    to ``logger`` on :meth:`dump`.

    Frames may be ``[H, W, C]`` or ``[C, H, W]`` (C in 1 or 3), uint8 or float in [0, 1],
    with leading batch dims; they are stored as uint8 ``[3, H, W]`` and the video reaches
    ``logger.log_video`` as ``[1, T, 3, H, W]``.

    Args:
        logger: the logger the video is written to (None: frames are collected, not written).
        tag: the video's name in the logger (``<tag>_<step>.mp4`` for a CSVLogger).
        in_keys: the frame entries; default ``["pixels"]``.
        skip: keep one frame in ``skip``. Default: 2 in an env with an empty batch size, 1 in
            a batched env and outside any env.
        center_crop: crop each frame to a centered ``center_crop`` x ``center_crop`` square.
        make_grid: tile the frames of a batch into one frame; default True in an env, False
            outside (each frame of a batch is then a frame of the video).
        out_keys: default ``in_keys`` (the data pass through unchanged).
        fps: frames per second of the video (default: the logger's).
        max_frames: keep at most this many frames per video (later ones are dropped until
            the next :meth:`dump`); default no limit.
        dump_on_done: :meth:`dump` when a step ends an episode (any sub-env done), so each
            episode is its own video.
        **kwargs: passed to ``logger.log_video``.

    In an env, the frame entry is checked against the env's observation spec when the env's
    specs are first computed (at the first reset at the latest; when appended to a built
    env, at once): a missing key raises KeyError naming the expected and the present keys.
    """

    def __init__(self, logger: Logger | None, tag: str | None, in_keys: Any = None,
                 skip: int | None = None, center_crop: int | None = None,
                 make_grid: bool | None = None, out_keys: Any = None, fps: int | None = None,
                 max_frames: int | None = None, dump_on_done: bool = False,
                 **kwargs: Any) -> None:
        if logger is not None and not callable(getattr(logger, "log_video", None)):
            raise TypeError(
                f"VideoRecorder expects a Logger (with log_video) or None, found "
                f"{type(logger).__name__}"
            )
        if logger is not None and not isinstance(tag, str):
            raise TypeError(f"VideoRecorder: tag must be a str, found {tag!r}")
        checked = (("skip", skip), ("center_crop", center_crop), ("fps", fps),
                   ("max_frames", max_frames))
        for name, value in checked:
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ValueError(f"VideoRecorder: {name} must be a positive int, found {value!r}")
        super().__init__(in_keys=["pixels"] if in_keys is None else in_keys, out_keys=out_keys)
        self.logger = logger
        self.tag = tag
        self._resolved: tuple[int, bool] | None = None
        self._skip = skip
        self.center_crop = center_crop
        self.max_frames = max_frames
        self.dump_on_done = dump_on_done
        self._make_grid = make_grid
        self.video_kwargs = dict(kwargs)
        if fps is not None:
            self.video_kwargs["fps"] = fps
        self.obs: list[torch.Tensor] = []
        self.count = 0
        self.iter = 0

    @property
    def skip(self) -> int:
        """Keep one frame in ``skip`` (see the class docstring for the default)."""
        if self._skip is not None:
            return self._skip
        parent = self.parent
        if parent is None:
            return 1
        return 1 if len(parent.batch_size) else 2

    @skip.setter
    def skip(self, value: int | None) -> None:
        self._skip = value
        self._resolved = None

    @property
    def make_grid(self) -> bool:
        """Tile batched frames into one (default: True in an env, False outside)."""
        if self._make_grid is not None:
            return self._make_grid
        return self.parent is not None

    @make_grid.setter
    def make_grid(self, value: bool | None) -> None:
        self._make_grid = value
        self._resolved = None

    def _settings(self) -> tuple[int, bool]:
        # (skip, make_grid) resolved once per container: the defaults depend on the parent
        # env, which is costly to look up at every frame
        if self._resolved is None:
            self._resolved = (self.skip, self.make_grid)
        return self._resolved

    # ------------------------------------------------------------------ frames
    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        skip, grid = self._settings()
        self.count += 1
        if self.count % skip:
            return value
        frames = _to_chw(value, "VideoRecorder")
        if self.center_crop:
            c = self.center_crop
            h, w = frames.shape[-2:]
            if c > h or c > w:
                raise ValueError(f"VideoRecorder: center_crop={c} exceeds the frame size {h}x{w}")
            top, left = (h - c) // 2, (w - c) // 2
            frames = frames[..., top : top + c, left : left + c]
        if frames.ndim == 3:
            new = [frames]
        elif grid:
            new = [make_grid(frames.flatten(0, -4))]
        else:
            new = list(frames.flatten(0, -4))
        if self.max_frames is not None:
            new = new[: max(0, self.max_frames - len(self.obs))]
        self.obs.extend(new)
        return value

    def _step(self, td: TensorDictBase, next_td: TensorDictBase) -> TensorDictBase:
        next_td = self._call(next_td)
        if self.dump_on_done:
            done = next_td.get("done", None)
            if done is not None and bool(done.any()):
                self.dump()
        return next_td

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        return self._call(td_reset)

    def dump(self, suffix: str | None = None, step: int | None = None) -> None:
        """Write the frames collected so far to the logger as one video and start a new one.

        The video is named ``tag`` (``<tag>_<suffix>`` with a suffix) and logged at ``step``
        (default: the number of previous dumps). Without frames nothing is written.
        """
        frames, self.obs = self.obs, []
        if frames and self.logger is not None:
            tag = self.tag if suffix is None else f"{self.tag}_{suffix}"
            video = torch.stack(frames, 0).unsqueeze(0)
            self.logger.log_video(tag, video, step=self.iter if step is None else step,
                                  **self.video_kwargs)
        self.iter += 1
        self.count = 0

    # ------------------------------------------------------------------ checks
    def transform_observation_spec(self, spec: Any) -> Any:
        """Check that the env has the frame entries (the spec itself is unchanged)."""
        self._check_keys(spec)
        return super().transform_observation_spec(spec)

    def _check_keys(self, spec: Any) -> None:
        present = list(spec.keys(True, True))
        for key in self.in_keys:
            if key not in present:
                raise KeyError(
                    f"VideoRecorder expected the frame entry {key!r} in the env's observations, "
                    f"found {sorted(str(k) for k in present)}; make the env with "
                    "from_pixels=True, add a PixelRenderTransform first, or set in_keys"
                )
            shape = tuple(spec[key].shape)[len(spec.shape):]
            if not _image_shape_ok(shape):
                raise ValueError(
                    f"VideoRecorder expected image frames at {key!r} ([H, W, C] or [C, H, W] "
                    f"with C in (1, 3)), found shape {shape}"
                )

    def set_container(self, container: Any) -> None:
        """Attach to a Compose or TransformedEnv; in a built env, check the frame entries."""
        super().set_container(container)
        self._resolved = None
        parent = self.parent if container is not None else None
        if parent is not None:
            try:
                self._check_keys(parent.full_observation_spec)
            except Exception:
                super().set_container(None)  # not added: leave it free for another env
                raise

    def __repr__(self) -> str:
        return f"VideoRecorder(tag={self.tag!r}, keys={self.in_keys}, frames={len(self.obs)})"


class PixelRenderTransform(Transform):
    """Add the env's rendered frame (``env.render()``) to every reset and step output.

    Args:
        out_keys: the one entry the frame goes to; default ``["pixels"]``.
        preproc: a function applied to the rendered array first (reshape, copy...).
        as_non_tensor: only False/None: streamrl specs have no non-tensor entries.
        render_method: the name of the env's render method; default ``"render"``.
        pass_tensordict: pass the step's output TensorDict to the render method (for
            stateless envs).
        **kwargs: passed to the render method.

    The render method is looked up on the env the transform is in (an error names it when
    absent); the frame's spec (shape, dtype) is read from one render after a reset.
    :meth:`switch` turns rendering off and on.
    """

    def __init__(self, out_keys: Any = None,
                 preproc: Callable[[Any], Any] | None = None, as_non_tensor: bool | None = None,
                 render_method: str = "render", pass_tensordict: bool = False,
                 **kwargs: Any) -> None:
        super().__init__()
        # no in_keys: the frame comes from the env, not from the data
        self.out_keys = as_keys(["pixels"] if out_keys is None else out_keys, "out_keys")
        if len(self.out_keys) != 1:
            raise ValueError(
                f"PixelRenderTransform writes one entry: expected one out_key, found {self.out_keys}"
            )
        if as_non_tensor:
            raise ValueError(
                "PixelRenderTransform(as_non_tensor=True) is not supported: streamrl specs have "
                "no non-tensor entries; use preproc to make the frame a fixed-shape array"
            )
        if preproc is not None and not callable(preproc):
            raise TypeError(f"preproc must be callable, found {type(preproc).__name__}")
        self.preproc = preproc
        self.as_non_tensor = False
        self.render_method = render_method
        self.pass_tensordict = pass_tensordict
        self.kwargs = kwargs
        self._enabled = True

    def _render(self, td: TensorDictBase) -> torch.Tensor:
        parent = self.parent
        if parent is None:
            raise RuntimeError("PixelRenderTransform renders its env: use it inside a TransformedEnv")
        method = getattr(parent, self.render_method, None)
        if not callable(method):
            raise AttributeError(
                f"PixelRenderTransform: the env ({type(parent.base_env).__name__}) has no "
                f"callable {self.render_method!r} method"
            )
        array = method(td, **self.kwargs) if self.pass_tensordict else method(**self.kwargs)
        if self.preproc is not None:
            array = self.preproc(array)
        if isinstance(array, list):
            array = np.stack([np.asarray(a) for a in array])
        return torch.as_tensor(np.array(array) if not isinstance(array, torch.Tensor) else array)

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        if not self._enabled:
            return td
        frame = self._render(td)
        try:
            td.set(self.out_keys[0], frame)
        except Exception as err:
            raise RuntimeError(
                f"PixelRenderTransform: cannot write the rendered frame (shape "
                f"{tuple(frame.shape)}, dtype {frame.dtype}) into data of batch size "
                f"{tuple(td.batch_size)}; adapt it with preproc"
            ) from err
        return td

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        return self._call(td_reset)

    def transform_observation_spec(self, spec: Any) -> Any:
        """Add the frame entry, its shape and dtype read from one render after a reset."""
        parent = self.parent
        if parent is None:
            return spec
        frame = self._render(parent.reset())
        spec[self.out_keys[0]] = Unbounded(
            shape=(*spec.shape, *frame.shape[len(spec.shape):]), dtype=frame.dtype
        )
        return spec

    def set_container(self, container: Any) -> None:
        """Attach to a Compose or TransformedEnv; in a built env, check the render method."""
        super().set_container(container)
        parent = self.parent if container is not None else None
        if parent is not None and not callable(getattr(parent, self.render_method, None)):
            super().set_container(None)  # not added: leave it free for another env
            raise ValueError(
                f"PixelRenderTransform: the env ({type(parent.base_env).__name__}) has no "
                f"callable {self.render_method!r} method"
            )

    def switch(self, mode: str | bool | None = None) -> None:
        """Turn rendering on or off: ``"on"``/``"off"``/True/False, or toggle (None)."""
        if mode is None:
            mode = not self._enabled
        elif not isinstance(mode, bool):
            if mode not in ("on", "off"):
                raise ValueError(f"mode must be 'on', 'off', a bool or None, found {mode!r}")
            mode = mode == "on"
        self._enabled = mode

    @property
    def enabled(self) -> bool:
        """Whether frames are rendered."""
        return self._enabled

    def __repr__(self) -> str:
        return f"PixelRenderTransform(out_keys={self.out_keys}, render_method={self.render_method!r})"
