"""DeepMind Control suite environments: DMControlWrapper(env) and DMControlEnv(domain, task).

dm_control is imported when an env is built (or ``available_envs`` is read), not when this
module is: ``import streamrl`` does not need it.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch

from streamrl.data.specs import Bounded, Composite, TensorSpec, spec_from_dm_env
from streamrl.envs.libs._array_env import ArrayEnv
from streamrl.envs.libs._mujoco_gl import ensure_gl_backend, render_error

__all__ = ["DMControlEnv", "DMControlWrapper"]


def _import_suite() -> Any:
    """dm_control's suite, imported with a headless GL backend where there is no display."""
    ensure_gl_backend()
    from dm_control import suite

    return suite


class _AvailableEnvs:
    """``DMControlEnv.available_envs``: ``[(domain, [task, ...]), ...]``, read on access."""

    def __get__(self, obj: Any, cls: type | None = None) -> list[tuple[str, list[str]]]:
        suite = _import_suite()
        return [(domain, list(tasks)) for domain, tasks in suite.TASKS_BY_DOMAIN.items()]


class DMControlWrapper(ArrayEnv):
    """Wrap a dm_control env (``dm_control.rl.control.Environment``, what
    ``dm_control.suite.load`` returns).

    Args:
        env: the dm_control env.
        from_pixels: add ``"pixels"``, a uint8 ``[H, W, 3]`` frame rendered by
            ``env.physics.render`` after every step and reset. Without a display, MuJoCo
            renders with ``MUJOCO_GL=egl`` or ``osmesa``: building the env sets ``egl`` (or
            ``osmesa``) when ``MUJOCO_GL`` is unset and MuJoCo is not imported yet; a
            backend that cannot render raises ``RuntimeError`` when the env is built.
        pixels_only: with ``from_pixels``, drop the state observations (default False: state
            and pixels, as TorchRL 0.14 does).
        frame_skip: repeat each action this many times, summing the rewards and stopping at
            the episode's last step (None: 1).
        device: the device of the output tensors (None: CPU, unset on TensorDicts).
        batch_size: must be empty (one dm_control env; batch several with
            :class:`~streamrl.envs.SerialEnv` / :class:`~streamrl.envs.ParallelEnv`).
        allow_done_after_reset: as :class:`~streamrl.envs.EnvBase`.
        render_kwargs: keyword arguments of ``physics.render`` (default ``height=240``,
            ``width=320``).
        camera_id: the camera rendered (index or name).

    Observations: one entry per key of dm_control's observation dict (``"position"``,
    ``"velocity"``...), in dm_control's dtype (float64, as TorchRL keeps it; a
    ``DoubleToFloat`` transform converts them); a scalar entry gets shape ``(1,)``. Specs
    come from dm_env's (``BoundedArray`` -> :class:`Bounded`, ``Array`` ->
    :class:`Unbounded`); the reward is float64 of shape ``(1,)``. A step whose time step is
    the episode's last is ``done``: ``terminated`` when its discount is 0, ``truncated``
    otherwise (the suite's time limit). ``set_seed(s)`` seeds the task's random state, which
    draws each episode's initial state. Attributes the wrapper does not have are read from
    the dm_control env (``physics``, ``task``...).

    >>> from dm_control import suite
    >>> env = DMControlWrapper(suite.load("cartpole", "balance"))
    >>> sorted(env.observation_spec.keys()), env.action_spec.shape
    (['position', 'velocity'], torch.Size([1]))
    >>> env.close()
    """

    available_envs = _AvailableEnvs()
    _library_wrapper = True  # its stepping methods are the fast path's own

    def __init__(
        self,
        env: Any,
        from_pixels: bool = False,
        pixels_only: bool = False,
        frame_skip: int | None = None,
        device: Any = None,
        batch_size: Any = None,
        allow_done_after_reset: bool = False,
        render_kwargs: dict[str, Any] | None = None,
        camera_id: int | str = 0,
    ) -> None:
        _import_suite()
        from dm_control.rl import control

        if not isinstance(env, control.Environment):
            raise TypeError(
                "DMControlWrapper expects a dm_control env (dm_control.rl.control.Environment, "
                f"from dm_control.suite.load), found {type(env).__name__}"
            )
        frame_skip = 1 if frame_skip is None else frame_skip
        if not isinstance(frame_skip, int) or frame_skip < 1:
            raise ValueError(f"frame_skip must be a positive int or None, found {frame_skip!r}")
        if batch_size is not None and tuple(batch_size) != ():
            raise ValueError(
                f"a dm_control env is one env: batch_size must be empty, found "
                f"{tuple(batch_size)} (batch envs with SerialEnv or ParallelEnv)"
            )
        if render_kwargs is not None and not isinstance(render_kwargs, dict):
            raise TypeError(f"render_kwargs must be a dict, found {type(render_kwargs).__name__}")
        super().__init__(device=device, batch_size=(),
                         allow_done_after_reset=allow_done_after_reset)
        self._env = env
        self.frame_skip = frame_skip
        self.from_pixels = bool(from_pixels)
        self.pixels_only = bool(pixels_only)
        self.render_kwargs = {"height": 240, "width": 320, **(render_kwargs or {})}
        self.camera_id = camera_id
        self._build_specs()

    # ---------------------------------------------------------------- specs
    def _build_specs(self) -> None:
        env = self._env
        action = spec_from_dm_env(env.action_spec())
        if not isinstance(action, TensorSpec) or env.action_spec().shape == ():
            raise TypeError(
                f"DMControlWrapper supports one action array of shape (n,), found "
                f"{env.action_spec()!r}"
            )
        self.action_spec = action
        reward = env.reward_spec()
        if isinstance(reward, dict) or reward.shape != ():
            raise TypeError(f"DMControlWrapper supports a scalar reward, found {reward!r}")
        self.reward_spec = spec_from_dm_env(reward)
        self._reward_np_dtype = np.dtype(reward.dtype)
        obs = Composite(shape=())
        states = spec_from_dm_env(env.observation_spec())
        with_states = not (self.from_pixels and self.pixels_only)
        if with_states:
            obs.update(states)
        self._state_keys = list(states.keys()) if with_states else []
        # dm_control gives scalars as 0-d arrays: those keys are reshaped to (1,)
        self._scalar_keys = [
            k for k, s in env.observation_spec().items() if s.shape == () and with_states
        ]
        if self.from_pixels:
            try:
                frame = self._render()
            except Exception as err:
                raise render_error(f"{type(self).__name__}(from_pixels=True)", err) from err
            obs["pixels"] = Bounded(0, 255, frame.shape, dtype=torch.uint8)
        self.observation_spec = obs
        self._obs_specs = {k: obs[k] for k in obs.keys()}
        self.__dict__["_arrays"] = None  # whether the array fast path applies: asked again

    def _render(self) -> np.ndarray:
        return self._env.physics.render(camera_id=self.camera_id, **self.render_kwargs)

    # -------------------------------------------------------------- ArrayEnv
    def _obs_arrays(self, observation: Any) -> dict[str, Any]:
        """dm_control's observation dict (+ the rendered frame) -> arrays by key."""
        out = {k: observation[k] for k in self._state_keys}
        for key in self._scalar_keys:
            out[key] = np.reshape(out[key], (1,))
        if self.from_pixels:
            out["pixels"] = self._render()
        return out

    def _np_reset(self) -> dict[str, Any]:
        return self._obs_arrays(self._env.reset().observation)

    def _np_step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool]:
        env = self._env
        reward = 0.0
        for _ in range(self.frame_skip):
            ts = env.step(action)
            reward += ts.reward or 0.0  # (None on a first step: after an episode's end)
            if ts.last():
                break
        last = ts.last()
        term = last and ts.discount == 0
        return self._obs_arrays(ts.observation), reward, term, last and not term

    def _actions_from_numpy(self, block: np.ndarray) -> Any:
        return block  # dm_control takes the action arrays as they are

    # ----------------------------------------------------------- EnvBase hooks
    def _set_seed(self, seed: int | None) -> None:
        random = getattr(self._env.task, "random", None)
        if not isinstance(random, np.random.RandomState):
            raise TypeError(
                f"cannot seed {type(self._env.task).__name__}: expected its `random` to be a "
                f"numpy RandomState, found {type(random).__name__}"
            )
        random.seed(seed)

    def _close(self) -> None:
        self._env.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(env={type(self._env.task).__name__}, "
            f"batch_size={self.batch_size}, device={self.device})"
        )


# the keyword arguments DMControlEnv passes on to the wrapper
_WRAPPER_ARGS = frozenset(inspect.signature(DMControlWrapper.__init__).parameters) - {
    "self", "env"}


class DMControlEnv(DMControlWrapper):
    """A dm_control suite env made from its domain and task names:
    ``DMControlEnv("cheetah", "run")`` (``dm_control.suite.load(env_name, task_name)``).

    ``task_kwargs`` (e.g. ``{"time_limit": 5}``, in seconds of simulated time),
    ``environment_kwargs`` and ``visualize_reward`` go to ``suite.load``; the other keyword
    arguments are :class:`DMControlWrapper`'s (``from_pixels``, ``pixels_only``,
    ``frame_skip``, ``device``, ``batch_size``, ``allow_done_after_reset``,
    ``render_kwargs``, ``camera_id``), as in TorchRL. ``DMControlEnv.available_envs`` lists the
    suite's ``(domain, [tasks])``.

    >>> env = DMControlEnv("cheetah", "run")
    >>> env
    DMControlEnv(env=cheetah, task=run, batch_size=torch.Size([]), device=None)
    >>> td = env.rand_step(env.reset())
    >>> td["next", "position"].dtype, td["next", "reward"].shape
    (torch.float64, torch.Size([1]))
    >>> env.close()
    """

    def __init__(
        self,
        env_name: str,
        task_name: str,
        task_kwargs: dict[str, Any] | None = None,
        environment_kwargs: dict[str, Any] | None = None,
        visualize_reward: bool = False,
        **kwargs: Any,
    ) -> None:
        for name, value in (("env_name", env_name), ("task_name", task_name)):
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a str, found {type(value).__name__}")
        unknown = sorted(set(kwargs) - _WRAPPER_ARGS)
        if unknown:
            raise TypeError(
                f"DMControlEnv got unexpected keyword arguments {unknown}: expected those of "
                f"DMControlWrapper {sorted(_WRAPPER_ARGS)} or task_kwargs, "
                "environment_kwargs, visualize_reward"
            )
        suite = _import_suite()
        tasks = suite.TASKS_BY_DOMAIN.get(env_name)
        if tasks is None or task_name not in tasks:
            known = sorted(suite.TASKS_BY_DOMAIN) if tasks is None else list(tasks)
            what = "domain" if tasks is None else f"task of {env_name!r}"
            raise ValueError(
                f"dm_control has no {what} {task_name if tasks else env_name!r}: expected one "
                f"of {known}"
            )
        env = suite.load(env_name, task_name, task_kwargs=task_kwargs,
                         environment_kwargs=environment_kwargs,
                         visualize_reward=visualize_reward)
        self.env_name, self.task_name = env_name, task_name
        try:
            super().__init__(env, **kwargs)
        except BaseException:
            env.close()
            raise

    def __repr__(self) -> str:
        return (
            f"DMControlEnv(env={self.env_name}, task={self.task_name}, "
            f"batch_size={self.batch_size}, device={self.device})"
        )
