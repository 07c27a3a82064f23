"""The per-frame part of the Atari preprocessing as one gymnasium wrapper: the fast base env
of :func:`streamrl.envs.make_atari_env`.

The transforms (:class:`~streamrl.envs.transforms.NoopResetEnv`,
:class:`~streamrl.envs.transforms.TimeMaxPool`,
:class:`~streamrl.envs.transforms.FrameSkipTransform`,
:class:`~streamrl.envs.transforms.FireResetEnv`, :class:`~streamrl.envs.transforms.GrayScale`,
:class:`~streamrl.envs.transforms.Resize`) compose the same preprocessing as TorchRL users
write it, but run their TensorDict machinery on every emulator frame: about 1.5 ms per agent
step, five times the emulator's own cost. Here the frames stay numpy arrays until the one
preprocessed frame of the agent step; gray and resize are OpenCV's ``cvtColor`` and
``resize(INTER_AREA)`` when OpenCV is installed (as SB3's ``WarpFrame``), else the
transforms' own torch code, which gives the same pixels. ``tests/envs/test_atari.py`` checks
the frames against the transforms' and SB3's.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from streamrl.envs.transforms.fire_reset import RESET_RETRIES


def _opencv() -> Any:
    try:
        import cv2
    except ImportError:
        return None
    return cv2


class AtariFrames(gym.Wrapper):
    """An ALE env stepping one frame at a time, seen as the DQN agent sees it.

    Reset: the env's reset, then 1 to ``noop_max`` NOOP frames (the count drawn from torch's
    RNG, as :class:`NoopResetEnv` draws it; a game over during them resets again), then, with
    ``fire``, the agent steps FIRE and action 2 (a game over resets again). Step: the action
    repeated for ``frame_skip`` frames (stopping at a game over), rewards summed, the frame
    the max of the last two frames seen. Observations: a Dict space with ``"pixels"``, uint8
    ``[1, screen_size, screen_size]`` (the luma of the RGB frame, area-resized).
    """

    def __init__(
        self,
        env: gym.Env,
        *,
        noop_max: int,
        frame_skip: int,
        screen_size: int,
        fire: bool,
        use_opencv: bool = True,
    ) -> None:
        super().__init__(env)
        shape = env.observation_space.shape
        if shape is None or len(shape) != 3 or shape[-1] != 3:
            raise ValueError(
                f"AtariFrames expects RGB frames [H, W, 3] (obs_type='rgb'), found "
                f"observation shape {shape}"
            )
        self.noop_max, self.frame_skip, self.fire = noop_max, frame_skip, fire
        self.screen_size = screen_size
        self._cv2 = _opencv() if use_opencv else None
        self._torch_ops: tuple[Any, Any] | None = None
        self._last: np.ndarray | None = None  # the last frame seen (the max-pool's other)
        self.observation_space = gym.spaces.Dict(
            {"pixels": gym.spaces.Box(0, 255, (1, screen_size, screen_size), np.uint8)}
        )

    # ------------------------------------------------------------------ frames
    def _observe(self, frame: np.ndarray) -> dict[str, np.ndarray]:
        cv2 = self._cv2
        if cv2 is not None:
            gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
            size = (self.screen_size, self.screen_size)
            small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
            return {"pixels": small[None]}
        if self._torch_ops is None:
            from streamrl.envs.transforms import GrayScale, Resize

            self._torch_ops = (
                GrayScale(),
                Resize(self.screen_size, self.screen_size, interpolation="area"),
            )
        gray, resize = self._torch_ops
        chw = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)
        return {"pixels": resize._apply_transform(gray._apply_transform(chw)).numpy()}

    def _frames(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        """``frame_skip`` frames of ``action``: the pooled RGB frame and the summed reward."""
        total = 0.0
        before = self._last
        for _ in range(self.frame_skip):
            frame, reward, term, trunc, info = self.env.step(action)
            total += float(reward)
            before, self._last = self._last, frame
            if term or trunc:
                break
        if self.frame_skip > 1 and before is not None:
            frame = np.maximum(before, frame)
        return frame, total, bool(term), bool(trunc), info

    # --------------------------------------------------------------- gymnasium
    def reset(self, **kwargs: Any) -> tuple[dict[str, np.ndarray], dict]:
        # as FireResetEnv / NoopResetEnv: a game over during the actions after a reset resets
        # again and draws them again, RESET_RETRIES times at most
        for _ in range(RESET_RETRIES):
            frame, info = self._reset_noops(kwargs)
            if not self.fire:
                return self._observe(frame), info
            for action in (1, 2):
                frame, _, term, trunc, info = self._frames(action)
                if term or trunc:
                    break
            else:
                return self._observe(frame), info
        raise RuntimeError(f"the game ended during FIRE after {RESET_RETRIES} resets in a row")

    def _reset_noops(self, kwargs: dict[str, Any]) -> tuple[np.ndarray, dict]:
        for _ in range(RESET_RETRIES):
            frame, info = self.env.reset(**kwargs)
            kwargs.pop("seed", None)
            self._last = frame
            if self.noop_max == 0:
                return frame, info
            for _ in range(int(torch.randint(1, self.noop_max + 1, ()))):
                frame, _, term, trunc, info = self.env.step(0)
                self._last = frame
                if term or trunc:
                    break
            else:
                return frame, info
        raise RuntimeError(f"the game ended during the no-ops after {RESET_RETRIES} resets in a row")

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict]:
        frame, reward, term, trunc, info = self._frames(action)
        return self._observe(frame), reward, term, trunc, info
