"""EnvPool's C++ thread pools as batched envs (TorchRL's ``MultiThreadedEnv`` and
``MultiThreadedEnvWrapper``); EnvPool is imported only when an env is built.

>>> from streamrl.envs import MultiThreadedEnv
>>> env = MultiThreadedEnv(3, "CartPole-v1")  # doctest: +SKIP
>>> env.rollout(5)["next", "observation"].shape  # doctest: +SKIP
torch.Size([3, 5, 4])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase

from streamrl._warnings import StreamRLWarning
from streamrl.data.specs import Categorical, Composite, TensorSpec, Unbounded
from streamrl.data.specs.gym_spaces import spec_from_gym_space
from streamrl.envs.common import EnvBase
from streamrl.envs.libs.gym import _ActionConverter

__all__ = ["MultiThreadedEnv", "MultiThreadedEnvWrapper"]


def _import_envpool() -> Any:
    try:
        import envpool
    except ImportError as err:
        raise ImportError(
            "MultiThreadedEnv needs the envpool package: pip install envpool (or "
            "streamrl[envpool])"
        ) from err
    return envpool


def _is_pool(env: Any) -> bool:
    """Whether ``env`` is an EnvPool pool (without importing envpool for other objects)."""
    return any(
        klass.__name__ == "EnvPoolMixin" and klass.__module__.startswith("envpool")
        for klass in type(env).__mro__
    )


class MultiThreadedEnvWrapper(EnvBase):
    """A batched env over an EnvPool pool made with ``env_type="gymnasium"`` (its batch is
    ``[num_envs]``, synchronous mode: ``batch_size == num_envs``).

    Observations: a Box space gives ``"observation"`` (Atari's stacked gray frames, uint8
    ``[num_envs, 4, 84, 84]``: EnvPool does the DQN preprocessing in C++), a Dict space one
    entry per key. Discrete actions are one-hot (:class:`OneHot`) unless
    ``categorical_action_encoding``. Rewards and done flags are ``[num_envs, 1]``. A reset
    with a ``"_reset"`` mask resets only those envs (EnvPool's ``reset(env_id)``), so the
    pool's own auto-reset (a step after the end of an episode resets it) never happens.

    Args:
        env: the EnvPool pool (``envpool.make(..., env_type="gymnasium")``).
        categorical_action_encoding: action indices instead of one-hot vectors.
        device: the device of the output tensors (None: CPU).
        allow_done_after_reset: tolerate ``done`` right after a reset.

    A pool is seeded when it is made: :meth:`set_seed` on a wrapper warns and does nothing;
    :class:`MultiThreadedEnv` rebuilds its pool with the seed.
    """

    def __init__(
        self,
        env: Any = None,
        categorical_action_encoding: bool = False,
        *,
        device: Any = None,
        allow_done_after_reset: bool = False,
    ) -> None:
        if not _is_pool(env):
            raise TypeError(
                f"MultiThreadedEnvWrapper expects an EnvPool pool (envpool.make(...)), found "
                f"{type(env).__name__}"
            )
        config = env.config
        if config["batch_size"] != config["num_envs"]:
            raise ValueError(
                f"MultiThreadedEnvWrapper runs EnvPool in synchronous mode: expected "
                f"batch_size == num_envs, found batch_size={config['batch_size']}, "
                f"num_envs={config['num_envs']}"
            )
        n = int(config["num_envs"])
        super().__init__(device=device, batch_size=(n,),
                         allow_done_after_reset=allow_done_after_reset)
        self.num_workers = n
        self.categorical_action_encoding = bool(categorical_action_encoding)
        self._env = env
        self._build_specs()

    # ---------------------------------------------------------------- specs
    def _build_specs(self) -> None:
        import gymnasium as gym

        spec = self._env.spec
        n = self.num_workers
        act = spec_from_gym_space(spec.action_space, self.categorical_action_encoding)
        if isinstance(act, Composite):
            raise TypeError(f"unsupported EnvPool action space {spec.action_space!r}")
        self._to_pool = _ActionConverter(act, spec.action_space)
        self.action_spec = act.expand(n, *act.shape)
        space = spec.observation_space
        obs = spec_from_gym_space(space, True)
        if isinstance(space, gym.spaces.Dict):
            self._obs_keys = list(obs.keys())
            full = Composite({k: obs[k].expand(n, *obs[k].shape) for k in self._obs_keys},
                             shape=(n,))
        elif isinstance(obs, TensorSpec) and not isinstance(obs, Composite):
            self._obs_keys = ["observation"]
            full = Composite(observation=obs.expand(n, *obs.shape), shape=(n,))
        else:
            raise TypeError(f"unsupported EnvPool observation space {space!r}")
        self.observation_spec = full
        self.reward_spec = Unbounded((n, 1), dtype=torch.float32)
        flag = Categorical(2, (n, 1), dtype=torch.bool)
        self.full_done_spec = Composite(done=flag, terminated=flag.clone(),
                                        truncated=flag.clone(), shape=(n,))
        self._obs: dict[str, torch.Tensor] = {
            k: torch.zeros(tuple(full[k].shape), dtype=full[k].dtype) for k in self._obs_keys
        }

    # ------------------------------------------------------------- helpers
    def _arrays(self, observation: Any) -> dict[str, np.ndarray]:
        if len(self._obs_keys) == 1 and self._obs_keys[0] == "observation":
            return {"observation": observation}
        return {k: observation[k] for k in self._obs_keys}

    def _output(self, extra: dict[str, torch.Tensor]) -> TensorDictBase:
        # the cached observations are replaced, never written in place, once handed out
        src = {**self._obs, **extra}
        return TensorDict._new_unsafe(src, batch_size=self.batch_size, device=self.device)

    # ----------------------------------------------------------- EnvBase hooks
    def _reset(self, tensordict: TensorDictBase | None, **kwargs: Any) -> TensorDictBase:
        mask = None if tensordict is None else tensordict.get("_reset", None)
        ids = None
        if mask is not None:
            rows = np.flatnonzero(mask.reshape(self.num_workers).cpu().numpy())
            if len(rows) < self.num_workers:
                ids = rows
        if ids is not None and len(ids) == 0:
            return self._output({})
        observation, info = self._env.reset() if ids is None else self._env.reset(ids)
        order = np.asarray(info["env_id"]) if ids is None else ids
        index = torch.from_numpy(np.asarray(order))
        for key, value in self._arrays(observation).items():
            fresh = self._obs[key].clone()  # the rows not reset keep their observation
            fresh[index] = torch.as_tensor(np.asarray(value), dtype=fresh.dtype)
            self._obs[key] = fresh
        return self._output({})

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = self._to_pool(tensordict.get(self.action_key))
        observation, reward, term, trunc, info = self._env.step(np.asarray(action))
        order = np.asarray(info["env_id"])
        inverse = None if np.array_equal(order, np.arange(self.num_workers)) else np.argsort(order)

        def rows(a: Any) -> np.ndarray:
            a = np.asarray(a)
            return a if inverse is None else a[inverse]

        for key, value in self._arrays(observation).items():
            # a copy: the pool may reuse its arrays at the next step
            self._obs[key] = torch.tensor(rows(value), dtype=self._obs[key].dtype)
        n = self.num_workers
        term_t = torch.from_numpy(rows(term).astype(bool)).reshape(n, 1)
        trunc_t = torch.from_numpy(rows(trunc).astype(bool)).reshape(n, 1)
        return self._output({
            "reward": torch.from_numpy(rows(reward).astype(np.float32)).reshape(n, 1),
            "terminated": term_t,
            "truncated": trunc_t,
            "done": term_t | trunc_t,
        })

    def _set_seed(self, seed: int | None) -> None:
        if seed is not None:
            import warnings

            warnings.warn(
                "MultiThreadedEnvWrapper.set_seed does nothing: an EnvPool pool is seeded "
                "when it is made (envpool.make(..., seed=...)); MultiThreadedEnv rebuilds "
                "its pool",
                StreamRLWarning,
                stacklevel=3,
            )

    def _close(self) -> None:
        close = getattr(self._env, "close", None)
        if callable(close):
            close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_workers={self.num_workers}, device={self.device})"


class MultiThreadedEnv(MultiThreadedEnvWrapper):
    """``num_workers`` envs of EnvPool task ``env_name`` stepped by EnvPool's C++ thread pool
    (TorchRL's ``MultiThreadedEnv``). ``"ALE/Pong-v5"`` is EnvPool's ``"Pong-v5"``: its
    Atari tasks come preprocessed (no-op starts, frame skip 4 with max-pooling, gray 84x84,
    4 stacked frames under ``"observation"``; see EnvPool's ``create_env_kwargs``).

    Args:
        num_workers: envs in the pool (the batch size).
        env_name: an EnvPool task id (``envpool.list_all_envs()``).
        create_env_kwargs: more ``envpool.make`` arguments (``num_threads``, ``seed``,
            ``episodic_life``, ``reward_clip``, ``stack_num`` ...).
        categorical_action_encoding, device, allow_done_after_reset: as
            :class:`MultiThreadedEnvWrapper`.

    :meth:`set_seed` rebuilds the pool with ``seed`` (EnvPool seeds its envs ``seed``,
    ``seed + 1``, ... when it makes them).
    """

    def __init__(
        self,
        num_workers: int,
        env_name: str,
        *,
        create_env_kwargs: dict[str, Any] | None = None,
        categorical_action_encoding: bool = False,
        device: Any = None,
        allow_done_after_reset: bool = False,
    ) -> None:
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
            raise ValueError(f"num_workers must be an int >= 1, found {num_workers!r}")
        if not isinstance(env_name, str):
            raise TypeError(f"env_name must be a str, found {type(env_name).__name__}")
        if create_env_kwargs is not None and not isinstance(create_env_kwargs, dict):
            raise TypeError(
                f"create_env_kwargs must be a dict, found {type(create_env_kwargs).__name__}"
            )
        self.env_name = env_name.replace("ALE/", "")  # EnvPool's names
        self.create_env_kwargs = dict(create_env_kwargs or {})
        super().__init__(
            self._make_pool(num_workers, self.create_env_kwargs),
            categorical_action_encoding,
            device=device,
            allow_done_after_reset=allow_done_after_reset,
        )

    def _make_pool(self, num_workers: int, kwargs: dict[str, Any]) -> Any:
        envpool = _import_envpool()
        if self.env_name not in envpool.list_all_envs():
            raise ValueError(
                f"EnvPool has no task {self.env_name!r} (envpool.list_all_envs() lists "
                f"{len(envpool.list_all_envs())}, e.g. 'Pong-v5', 'CartPole-v1', "
                "'HalfCheetah-v4')"
            )
        return envpool.make(self.env_name, env_type="gymnasium", num_envs=num_workers,
                            **kwargs)

    def _set_seed(self, seed: int | None) -> None:
        if seed is None:
            return
        self.create_env_kwargs["seed"] = seed
        pool = self._make_pool(self.num_workers, self.create_env_kwargs)
        self._close()
        self._env = pool
