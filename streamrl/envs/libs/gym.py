"""Gymnasium environments: GymWrapper(env) and GymEnv(id, **kwargs)."""

from __future__ import annotations

import importlib.util
import os
import tempfile
from typing import Any

import numpy as np
import torch
from tensordict import TensorDictBase

from streamrl.data.specs import (
    Binary,
    Bounded,
    Categorical,
    Composite,
    MultiCategorical,
    MultiOneHot,
    OneHot,
    TensorSpec,
    Unbounded,
    spec_from_gym_space,
)
from streamrl.envs.gym_like import (
    BaseInfoDictReader,
    default_info_dict_reader,
    is_numeric,
    spec_of_value,
)
from streamrl.envs.libs import _gym_state
from streamrl.envs.libs._array_env import ArrayEnv
from streamrl.envs.libs._gym_backend import gym_backend, set_gym_backend
from streamrl.envs.libs._mujoco_gl import ensure_gl_backend, render_error

__all__ = ["GymEnv", "GymWrapper", "gym_backend", "make_gym_env", "register_optional_envs",
           "set_gym_backend"]

_optional_registered: set[str] = set()  # the packages registered


def register_optional_envs(env_name: str | None = None) -> None:
    """Register the ids of the env packages gymnasium knows only once they are imported,
    where they are installed: ale-py's Atari games (``ALE/Pong-v5``,
    ``PongNoFrameskip-v4``...), and, when ``env_name`` is still unknown after that (or
    is None: every package), gymnasium-robotics' goal envs (``PointMaze_UMaze-v3``,
    ``FetchReach-v4``...), after choosing MuJoCo's headless GL backend (gymnasium-robotics
    imports MuJoCo, which reads ``MUJOCO_GL`` once). What ``gymnasium.register_envs(...)``
    does; each package once. :class:`GymEnv` calls it for an id gymnasium does not know."""
    import gymnasium as gym

    if "ale_py" not in _optional_registered:
        _optional_registered.add("ale_py")
        if importlib.util.find_spec("ale_py") is not None:
            import ale_py

            gym.register_envs(ale_py)
    if env_name is not None and env_name in gym.registry:
        return
    if "gymnasium_robotics" not in _optional_registered:
        _optional_registered.add("gymnasium_robotics")
        if importlib.util.find_spec("gymnasium_robotics") is not None:
            ensure_gl_backend()
            import gymnasium_robotics

            gym.register_envs(gymnasium_robotics)


def _is_frame_space(space: Any) -> bool:
    """Whether an observation space is an RGB frame (Atari's, CarRacing's): a uint8 Box of
    shape ``(H, W, 3)`` over 0..255. Such an observation is the env's pixels."""
    import gymnasium as gym

    return (
        isinstance(space, gym.spaces.Box)
        and space.dtype == np.uint8
        and len(space.shape) == 3
        and space.shape[-1] == 3
        and bool((space.low == 0).all() and (space.high == 255).all())
    )


class _ActionConverter:
    """Maps an action tensor (or a batch of them, leading dims first) to gymnasium actions.
    A class rather than a closure so that a GymWrapper pickles."""

    def __init__(self, spec: TensorSpec, space: Any) -> None:
        start = getattr(space, "start", None)
        if isinstance(spec, Categorical | OneHot):
            self.off: Any = int(start) if start is not None else 0
        else:
            self.off = np.asarray(start) if start is not None else 0
        for kind, cls in (
            ("categorical", Categorical),
            ("one_hot", OneHot),
            ("multi_one_hot", MultiOneHot),
            ("multi_categorical", MultiCategorical),
            ("binary", Binary),
            ("box", Bounded | Unbounded),
        ):
            if isinstance(spec, cls):
                self.kind = kind
                break
        else:
            raise TypeError(f"unsupported gymnasium action space {space!r}")
        self.spec = spec
        self.dtype = space.dtype

    def __call__(self, a: torch.Tensor) -> Any:
        return self.from_numpy(a.detach().cpu().numpy())

    def from_numpy(self, a: np.ndarray) -> Any:
        """The same from a numpy array (the stepping protocol reads actions this way: a
        numpy index costs a fraction of a tensor index)."""
        kind, off = self.kind, self.off
        # batches of discrete actions become lists of Python ints: gymnasium's Discrete
        # checks a Python int much faster than a numpy integer
        if kind == "categorical":
            return int(a) + off if a.ndim == 0 else (a + off).tolist()
        if kind == "one_hot":
            idx = a.argmax(-1)
            return int(idx) + off if idx.ndim == 0 else (idx + off).tolist()
        if kind == "multi_one_hot":
            return self.spec.to_categorical(torch.from_numpy(a)).numpy() + off
        if kind == "multi_categorical":
            return a + off
        return a.astype(self.dtype, copy=False)


class _AvailableEnvs:
    """``GymEnv.available_envs``: a class-level attribute computed on access."""

    def __get__(self, obj: Any, cls: type | None = None) -> list[str]:
        import gymnasium as gym

        register_optional_envs()
        return list(gym.registry.keys())


class GymWrapper(ArrayEnv):
    """Wrap a gymnasium (>= 1.0) env.

    Args:
        env: a ``gymnasium.Env``.
        categorical_action_encoding: Discrete/MultiDiscrete actions as one-hot vectors
            (:class:`OneHot`, the default, as in TorchRL) or as indices (True,
            :class:`Categorical`). Discrete observations are indices either way.
        from_pixels: add ``"pixels"`` (uint8 ``[H, W, 3]`` from ``env.render()``; the env
            must use ``render_mode="rgb_array"``).
        pixels_only: with ``from_pixels``, drop the state observation.
        frame_skip: repeat each action this many times, summing the rewards and stopping
            at the first terminated/truncated step.
        info_keys: keys of gymnasium's ``info`` dict to add as observations (their spec is
            read from the value at reset, or after one random step; a missing value reads as
            zeros). TorchRL's spelling, :meth:`set_info_dict_reader`, works too.
        device: the device of the output tensors (None: CPU, unset on TensorDicts).
        strict_action_bounds: reject continuous actions outside the action space's bounds
            with ``ValueError`` (by default they reach the gymnasium env, as in the seed
            tutorial, where an unbounded actor drives Pendulum). Out-of-range discrete
            actions are always rejected.

    Observations: a Box space gives ``"observation"``; a Dict space gives one entry per key;
    a Tuple space gives ``"observation"`` holding keys ``"0"``, ``"1"``... An RGB frame
    observation (a uint8 ``(H, W, 3)`` Box over 0..255, as Atari's) is the env's pixels:
    it gives ``"pixels"``, as in TorchRL, and ``from_pixels`` reads it rather than
    rendering (``from_pixels`` is then True whatever was passed).
    ``set_seed(s)`` seeds the next reset (``env.reset(seed=s)``) and the action space.
    Attributes the wrapper does not have are read from the gymnasium env (``env.spec``,
    ``env.unwrapped``...), as in TorchRL. ``GymWrapper.available_envs`` lists the
    registered gymnasium ids (with ale-py's Atari ids where it is installed).
    """

    available_envs = _AvailableEnvs()
    _library_wrapper = True  # its stepping methods are the fast path's own

    def __init__(
        self,
        env: Any,
        categorical_action_encoding: bool = False,
        from_pixels: bool = False,
        pixels_only: bool = True,
        frame_skip: int = 1,
        info_keys: list[str] | tuple[str, ...] | None = None,
        device: Any = None,
        strict_action_bounds: bool = False,
    ) -> None:
        import gymnasium as gym

        if not isinstance(env, gym.Env):
            raise TypeError(f"GymWrapper expects a gymnasium.Env, found {type(env).__name__}")
        if not isinstance(frame_skip, int) or frame_skip < 1:
            raise ValueError(f"frame_skip must be a positive int, found {frame_skip!r}")
        frame_obs = _is_frame_space(env.observation_space)
        if from_pixels and not frame_obs and env.render_mode != "rgb_array":
            raise ValueError(
                f"from_pixels needs an env made with render_mode='rgb_array', found "
                f"render_mode={env.render_mode!r}"
            )
        super().__init__(device=device, batch_size=())
        self.strict_action_bounds = strict_action_bounds
        self._env = env
        self.frame_skip = frame_skip
        self._frame_obs = frame_obs
        # the observation's key; an env whose observation is its frame needs no rendering
        self._obs_key = "pixels" if frame_obs else "observation"
        self._renders = from_pixels and not frame_obs
        self.from_pixels = from_pixels or frame_obs
        self.pixels_only = pixels_only
        self.info_keys = tuple(info_keys or ())
        self._info_given: dict[str, TensorSpec] = {}  # info specs a reader was given
        self._info_readers: list = []  # readers of the user's own (called at every step)
        self.categorical_action_encoding = categorical_action_encoding
        self._seed: int | None = None
        self._build_specs()

    # ---------------------------------------------------------------- specs
    def _build_specs(self) -> None:
        import gymnasium as gym

        env = self._env
        act = spec_from_gym_space(env.action_space, self.categorical_action_encoding)
        if isinstance(act, Composite):
            raise TypeError(
                f"GymWrapper supports Box/Discrete/MultiDiscrete/MultiBinary action spaces, "
                f"found {env.action_space!r}"
            )
        self.action_spec = act
        self._to_gym = _ActionConverter(act, env.action_space)
        obs = Composite(shape=())
        space = env.observation_space
        self._dict_obs = isinstance(space, gym.spaces.Dict)
        if not (self._renders and self.pixels_only):
            ospec = spec_from_gym_space(space, True)
            if self._dict_obs:
                obs.update(ospec)  # type: ignore[arg-type]
            else:
                obs[self._obs_key] = ospec
        self._tuple_obs = isinstance(space, gym.spaces.Tuple)
        self._obs_keys = list(obs.keys())
        info = {}
        if self._renders or self.info_keys:
            _, info = env.reset()
        if self._renders:
            try:
                frame = np.asarray(env.render())
            except Exception as err:
                raise render_error(f"{type(self).__name__}(from_pixels=True)", err) from err
            obs["pixels"] = Bounded(0, 255, frame.shape, dtype=torch.uint8)
        if any(k not in info and k not in self._info_given for k in self.info_keys):
            info = {**self._step_info(), **info}
        for key in self.info_keys:
            if key in self._info_given:
                obs[key] = self._info_given[key]
                continue
            if key not in info:
                raise KeyError(
                    f"info key {key!r} is neither in the env's reset info nor in its step "
                    f"info: found {sorted(info)}"
                )
            if not is_numeric(info[key]):
                raise TypeError(
                    f"info key {key!r}: expected a number, bool or numeric array, found "
                    f"{type(info[key]).__name__}"
                )
            obs[key] = spec_of_value(info[key])
        for reader in self._info_readers:
            spec = reader.info_spec
            for key in spec.keys():
                obs[key] = spec[key]
        self.observation_spec = obs
        self._obs_specs = {k: obs[k] for k in obs.keys()}
        self._reward_np_dtype = np.float32
        first = self._obs_specs.get(self._obs_key)
        self._obs_np_dtype = (
            torch.empty(0, dtype=first.dtype).numpy().dtype
            if isinstance(first, TensorSpec)
            else None
        )
        self._simple = (
            self._obs_keys == [self._obs_key]
            and not self._tuple_obs
            and not self._renders
            and not self.info_keys
            and not self._info_readers
            and self.frame_skip == 1
        )
        self.__dict__["_arrays"] = None  # whether the array fast path applies: asked again

    def _step_info(self) -> dict:
        """The info dict of one random step after a reset (to find keys only steps give)."""
        self._env.reset()
        return self._env.step(self._env.action_space.sample())[4]

    # --------------------------------------------------------- info readers
    def set_info_dict_reader(
        self, info_dict_reader: Any = None, ignore_private: bool = True
    ) -> GymWrapper:
        """Copy entries of gymnasium's ``info`` dict into the TensorDicts (TorchRL's API).

        ``info_dict_reader`` is a :class:`~streamrl.envs.gym_like.default_info_dict_reader`
        (its keys become observations, as with ``info_keys=``), or a reader of your own (a
        :class:`~streamrl.envs.gym_like.BaseInfoDictReader`: called at every step and reset
        with ``(info, tensordict)``; its ``info_spec`` joins the observation spec). None reads
        every numeric info key (skipping ``_private`` ones if ``ignore_private``), found by
        a reset and one random step. Returns the env.

        >>> env = GymEnv("CartPole-v1")
        >>> reader = default_info_dict_reader(["seen"], spec=[Unbounded((), dtype=torch.bool)])
        >>> env = env.set_info_dict_reader(reader)
        >>> env.reset()["seen"]
        tensor(False)
        >>> env.close()
        """
        self._check_open_for("set_info_dict_reader()")
        saved = (self.info_keys, dict(self._info_given), list(self._info_readers))
        try:
            self._add_info_reader(info_dict_reader, ignore_private)
            self._build_specs()
        except BaseException:
            # a reader that cannot be registered leaves the env as it was
            self.info_keys, self._info_given, self._info_readers = saved
            self._build_specs()
            raise
        return self

    def _add_info_reader(self, info_dict_reader: Any, ignore_private: bool) -> None:
        reader = info_dict_reader
        if reader is None:
            reader = default_info_dict_reader(ignore_private=ignore_private)
        if type(reader) is default_info_dict_reader:
            keys = reader.keys
            if keys is None:
                _, info = self._env.reset()
                keys = reader.keys_in({**self._step_info(), **info})
            given = reader.info_spec
            for key in keys:
                if key in given.keys():
                    self._info_given[key] = given[key]
            self.info_keys = tuple(dict.fromkeys((*self.info_keys, *keys)))
        elif isinstance(reader, BaseInfoDictReader) or callable(reader):
            if not isinstance(getattr(reader, "info_spec", None), Composite):
                raise TypeError(
                    "an info_dict_reader of your own needs an `info_spec` (a Composite of the "
                    f"entries it writes); {type(reader).__name__} has none"
                )
            if hasattr(reader, "reset"):
                reader.reset()
            self._info_readers.append(reader)
        else:
            raise TypeError(
                "info_dict_reader must be a default_info_dict_reader, a BaseInfoDictReader or "
                f"None, found {type(reader).__name__}"
            )

    def auto_register_info_dict(
        self, ignore_private: bool = True, *, info_dict_reader: Any = None
    ) -> GymWrapper:
        """Register an info-dict reader so that :func:`check_env_specs` passes (TorchRL's API).

        streamrl's readers write zeros for keys a reset's ``info`` lacks, so this is
        :meth:`set_info_dict_reader` (every numeric info key when no reader is given).
        """
        return self.set_info_dict_reader(info_dict_reader, ignore_private=ignore_private)

    # -------------------------------------------------------------- helpers
    def _obs_arrays(self, obs: Any, info: dict) -> dict[str, Any]:
        """gymnasium observation (+ render, info) -> dict of numpy arrays by key."""
        out: dict[str, Any] = {}
        if not (self._renders and self.pixels_only):
            if self._dict_obs:
                out.update(obs)
            elif self._tuple_obs:
                out["observation"] = {str(i): o for i, o in enumerate(obs)}
            else:
                out[self._obs_key] = obs
        if self._renders:
            out["pixels"] = self._env.render()
        for key in self.info_keys:
            spec = self._obs_specs[key]
            out[key] = info.get(key, np.zeros(tuple(spec.shape)))
        return out

    def _gym_step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        """Step ``frame_skip`` times (stopping at done), summing rewards."""
        env = self._env
        reward = 0.0
        for _ in range(self.frame_skip):
            obs, r, term, trunc, info = env.step(action)
            reward += float(r)
            if term or trunc:
                break
        return obs, reward, bool(term), bool(trunc), info

    def _gym_reset(self) -> tuple[Any, dict]:
        seed, self._seed = self._seed, None
        return self._env.reset(seed=seed)

    # ----------------------------------------------------------- EnvBase hooks
    def _set_seed(self, seed: int | None) -> None:
        self._seed = seed
        if seed is not None:
            self._env.action_space.seed(seed)

    def _reset(self, tensordict: TensorDictBase | None, **kwargs: Any) -> TensorDictBase:
        obs, info = self._gym_reset()
        td = self._reset_output(self._to_tensors(self._obs_arrays(obs, info)))
        for reader in self._info_readers:
            reader(info, td)
        return td

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        # gymnasium's info feeds the readers: this is ArrayEnv._step with the info kept
        action = self._to_gym(tensordict.get("action"))
        if self._simple:
            obs, reward, term, trunc, _ = self._env.step(action)
            src = {self._obs_key: torch.from_numpy(np.array(obs, dtype=self._obs_np_dtype))}
        else:
            obs, reward, term, trunc, info = self._gym_step(action)
            src = self._to_tensors(self._obs_arrays(obs, info))
        td = self._step_output(src, reward, term, trunc)
        if self._info_readers:
            for reader in self._info_readers:
                reader(info, td)
        return td

    def _close(self) -> None:
        self._env.close()

    def render(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped gymnasium env's ``render()`` (an ``[H, W, 3]`` uint8 array with
        ``render_mode="rgb_array"``)."""
        return self._env.render(*args, **kwargs)

    # ------------------------------------------------------- stepping protocol
    def _actions_from_numpy(self, block: np.ndarray) -> Any:
        return self._to_gym.from_numpy(block)

    def _arrays_supported(self) -> bool:
        return not self._tuple_obs and not self._info_readers

    def _np_reset(self) -> dict[str, Any]:
        obs, info = self._gym_reset()
        return self._obs_arrays(obs, info)

    def _np_step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool]:
        if self._simple:
            obs, r, term, trunc, _ = self._env.step(action)
            return {self._obs_key: obs}, r, term, trunc
        obs, r, term, trunc, info = self._gym_step(action)
        return self._obs_arrays(obs, info), r, term, trunc

    # ------------------------------------------------------------ run state
    def _capture_state(self) -> dict[str, Any]:
        # classic-control envs and the standard wrappers (see _gym_state); others raise
        return {"gym": _gym_state.capture(self._env), "pending_seed": self._seed}

    def _check_state(self, state: Any) -> None:
        self._check_state_keys(state, {"gym", "pending_seed"})
        _gym_state.check(self._env, state["gym"])

    def _restore_state(self, state: Any) -> None:
        _gym_state.restore(self._env, state["gym"])
        self._seed = state["pending_seed"]

    def __repr__(self) -> str:
        spec = getattr(self._env, "spec", None)
        name = spec.id if spec is not None else type(self._env.unwrapped).__name__
        return (
            f"{type(self).__name__}(env={name}, batch_size={self.batch_size}, device={self.device})"
        )


class GymEnv(GymWrapper):
    """A gymnasium env made from its registered id: ``GymEnv("CartPole-v1")``.

    Keyword arguments of :class:`GymWrapper` configure the wrapper; all others go to
    ``gymnasium.make``. ``from_pixels=True`` makes the env with ``render_mode="rgb_array"``
    (MuJoCo tasks render headless: ``MUJOCO_GL`` is set to ``egl``, else ``osmesa``, when it
    is unset, there is no display and mujoco is not imported yet). ale-py's Atari ids
    (``"ALE/Pong-v5"``, ``"PongNoFrameskip-v4"``...) work without
    ``gymnasium.register_envs(ale_py)``; their frames are the ``"pixels"`` entry.

    >>> env = GymEnv("Pendulum-v1")
    >>> env
    GymEnv(env=Pendulum-v1, batch_size=torch.Size([]), device=None)
    >>> env.rand_step(env.reset())["next", "observation"].shape
    torch.Size([3])
    >>> env.close()
    """

    def __init__(
        self,
        env_name: str,
        categorical_action_encoding: bool = False,
        from_pixels: bool = False,
        pixels_only: bool = True,
        frame_skip: int = 1,
        info_keys: list[str] | tuple[str, ...] | None = None,
        device: Any = None,
        strict_action_bounds: bool = False,
        **make_kwargs: Any,
    ) -> None:
        if from_pixels:
            make_kwargs.setdefault("render_mode", "rgb_array")
        env = make_gym_env(env_name, **make_kwargs)
        self.env_name = env_name
        try:
            super().__init__(
                env,
                categorical_action_encoding=categorical_action_encoding,
                from_pixels=from_pixels,
                pixels_only=pixels_only,
                frame_skip=frame_skip,
                info_keys=info_keys,
                device=device,
                strict_action_bounds=strict_action_bounds,
            )
        except BaseException:
            env.close()
            raise

    def __repr__(self) -> str:
        return f"GymEnv(env={self.env_name}, batch_size={self.batch_size}, device={self.device})"


def make_gym_env(env_name: str, **make_kwargs: Any) -> Any:
    """``gymnasium.make(env_name, **make_kwargs)`` as :class:`GymEnv` makes its env: the
    optional suites' ids registered when needed (ALE, gymnasium-robotics, ...), MuJoCo's
    headless GL backend chosen before MuJoCo loads, and the model file gymnasium-robotics'
    mazes leave in the temp directory removed. A gymnasium error is a ``ValueError``
    naming the id."""
    import gymnasium as gym

    if not isinstance(env_name, str):
        raise TypeError(f"env_name must be a str, found {type(env_name).__name__}")
    if env_name not in gym.registry:
        register_optional_envs(env_name)
    spec = gym.registry.get(env_name)
    if spec is not None and "mujoco" in str(spec.entry_point):
        ensure_gl_backend()  # before gymnasium's MuJoCo env imports mujoco
    try:
        env = gym.make(env_name, **make_kwargs)
    except gym.error.Error as err:
        raise ValueError(f"cannot make gymnasium env {env_name!r}: {err}") from err
    _remove_maze_model_file(env)
    return env


def _remove_maze_model_file(env: Any) -> None:
    """gymnasium-robotics' maze envs (PointMaze, AntMaze) write their MuJoCo model to a new
    ``ant_maze<time>.xml`` in the temp directory and never remove it: one file per env made.
    MuJoCo has read it once the env is built, so it goes now."""
    path = getattr(env.unwrapped, "tmp_xml_file_path", None)
    if not isinstance(path, str):
        return
    path = os.path.abspath(path)
    if (os.path.dirname(path) == os.path.abspath(tempfile.gettempdir())
            and os.path.basename(path).endswith(".xml")):
        try:
            os.remove(path)
        except OSError:
            pass  # already gone, or not ours to remove

