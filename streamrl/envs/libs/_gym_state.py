"""The state of a running gymnasium env as plain data (tensors, numbers, strings, dicts).

What :meth:`GymWrapper.capture_state` saves so that a restored env continues its episode
step for step: the unwrapped env's dynamic attributes (e.g. CartPole's ``state``), its
``np_random`` generator, the wrappers' counters (``TimeLimit``'s elapsed steps,
``OrderEnforcing``'s reset flag) and the action space's generator. Envs and wrappers are
known by name: one this module does not know and that holds attributes of its own raises
``NotImplementedError`` naming it, rather than resuming only part of its state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

# attributes every gymnasium Wrapper has (configuration and caches, no episode state)
_WRAPPER_BASE = frozenset(
    {"_saved_kwargs", "env", "_action_space", "_observation_space", "_metadata",
     "_cached_spec", "_reward_range"}
)
# wrapper class -> the attributes that carry its state
_WRAPPERS: dict[str, tuple[str, ...]] = {
    "gymnasium.wrappers.common.TimeLimit": ("_elapsed_steps",),
    "gymnasium.wrappers.common.OrderEnforcing": ("_has_reset",),
    "gymnasium.wrappers.common.PassiveEnvChecker": (),
}
# PassiveEnvChecker only checks the env's first reset and steps (warnings, no change to any
# output); a restored env has passed them already, and its first-step check would compare
# against data it never saw
_ON_RESTORE: dict[str, dict[str, Any]] = {
    "gymnasium.wrappers.common.PassiveEnvChecker": {
        "checked_reset": True, "checked_step": True, "checked_data_reuse": True,
        "_previous_data": None,
    },
}
# unwrapped env class -> its dynamic attributes (its np_random is always saved)
_ENVS: dict[str, tuple[str, ...]] = {
    "gymnasium.envs.classic_control.cartpole.CartPoleEnv": ("state", "steps_beyond_terminated"),
    "gymnasium.envs.classic_control.pendulum.PendulumEnv": ("state", "last_u"),
    "gymnasium.envs.classic_control.mountain_car.MountainCarEnv": ("state",),
    "gymnasium.envs.classic_control.continuous_mountain_car.Continuous_MountainCarEnv": (
        "state",),
    "gymnasium.envs.classic_control.acrobot.AcrobotEnv": ("state",),
}
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
_ARRAY, _SCALAR = "__ndarray__", "__numpy_scalar__"


def qualname(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def encode_plain(value: Any) -> Any:
    """numpy arrays and scalars -> tagged tensors; containers recursively; the rest as is."""
    if isinstance(value, (np.ndarray, np.generic)):
        arr = np.asarray(value)
        # torch has no wide unsigned tensors to save: widen, the dtype says how to narrow back
        data = arr.astype(np.int64) if arr.dtype.kind == "u" and arr.itemsize > 1 else arr
        tag = _ARRAY if isinstance(value, np.ndarray) else _SCALAR
        return {tag: torch.from_numpy(np.array(data, copy=True)), "dtype": arr.dtype.str}
    if isinstance(value, Mapping):
        return {k: encode_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise NotImplementedError(f"cannot save a {type(value).__name__} as plain data")


def decode_plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        for tag in (_ARRAY, _SCALAR):
            if tag in value:
                arr = value[tag].numpy().astype(np.dtype(value["dtype"]))
                return arr if tag == _ARRAY else arr[()]
        return {k: decode_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_plain(v) for v in value]
    return value


def rng_state(rng: Any) -> Any:
    return None if rng is None else encode_plain(rng.bit_generator.state)


def check_rng_state(rng: Any) -> None:
    """Raise ``ValueError`` unless ``rng`` (a :func:`rng_state`) is None or of a known numpy
    bit generator."""
    if rng is not None and rng.get("bit_generator") not in _BIT_GENERATORS:
        raise ValueError(f"unknown numpy bit generator {rng.get('bit_generator')!r} in the "
                         f"state; expected one of {_BIT_GENERATORS}")


def check_wrapper_types(saved: list, layers: list) -> None:
    """Raise ``ValueError`` unless the saved wrappers' types are the qualified names
    of ``layers``' wrappers (every layer but the last, the unwrapped env), in order."""
    types = [qualname(w) for w in layers[:-1]]
    found = [w.get("type") if isinstance(w, Mapping) else w for w in saved]
    if found != types:
        raise ValueError(f"the state was saved under the wrappers {found}, this env has {types}")


def make_rng(state: Any) -> Any:
    if state is None:
        return None
    plain = decode_plain(state)
    rng = np.random.Generator(getattr(np.random, plain["bit_generator"])())
    rng.bit_generator.state = plain
    return rng


def _layers(env: Any) -> list[Any]:
    """The wrappers from the outermost in, then the unwrapped env."""
    layers = [env]
    while hasattr(layers[-1], "env") and layers[-1] is not layers[-1].unwrapped:
        layers.append(layers[-1].env)
    return layers


def _cannot(env: Any, what: str) -> NotImplementedError:
    return NotImplementedError(
        f"the state of gymnasium env {_env_id(env)!r} cannot be captured: {what}, so a "
        "resumed run could not continue its episodes exactly. Supported: the classic-control "
        f"envs ({', '.join(n.rsplit('.', 1)[1] for n in _ENVS)}) under the wrappers "
        f"{', '.join(n.rsplit('.', 1)[1] for n in _WRAPPERS)} and wrappers without state"
    )


def _env_id(env: Any) -> str:
    spec = getattr(env, "spec", None)
    return spec.id if spec is not None else type(env.unwrapped).__name__


def capture(env: Any) -> dict[str, Any]:
    """The state of the gymnasium env ``env`` (with its wrappers) as plain data."""
    layers = _layers(env)
    wrappers = []
    for w in layers[:-1]:
        name = qualname(w)
        keys = _WRAPPERS.get(name)
        if keys is None:
            own = sorted(set(vars(w)) - _WRAPPER_BASE)
            if own:
                raise _cannot(env, f"wrapper {type(w).__name__} holds {own}")
            keys = ()
        wrappers.append({"type": name, "attrs": {k: encode_plain(getattr(w, k)) for k in keys}})
    base = layers[-1]
    name = qualname(base)
    keys = _ENVS.get(name)
    if keys is None:
        raise _cannot(env, f"its class {name} is not one whose state is known")
    return {
        "env_id": _env_id(env),
        "wrappers": wrappers,
        "unwrapped": {
            "type": name,
            "attrs": {k: encode_plain(getattr(base, k)) for k in keys},
            "np_random": rng_state(getattr(base, "_np_random", None)),
            "np_random_seed": getattr(base, "_np_random_seed", None),
        },
        "action_space_rng": rng_state(getattr(env.action_space, "_np_random", None)),
    }


def check(env: Any, state: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` unless ``state`` is a :func:`capture` of an env like ``env``."""
    expected = {"env_id", "wrappers", "unwrapped", "action_space_rng"}
    if not isinstance(state, Mapping) or set(state) != expected:
        found = sorted(state) if isinstance(state, Mapping) else type(state).__name__
        raise ValueError(f"expected a gymnasium env state with keys {sorted(expected)}, "
                         f"found {found}")
    if state["env_id"] != _env_id(env):
        raise ValueError(f"the state is of gymnasium env {state['env_id']!r}, this env is "
                         f"{_env_id(env)!r}")
    layers = _layers(env)
    check_wrapper_types(state["wrappers"], layers)
    base = state["unwrapped"]
    if base["type"] != qualname(layers[-1]):
        raise ValueError(f"the state is of a {base['type']}, this env is a "
                         f"{qualname(layers[-1])}")
    for entry, layer in zip((*state["wrappers"], base), layers, strict=True):
        for key, value in entry["attrs"].items():
            current = getattr(layer, key, None)
            saved_arr, arr = decode_plain(value), current
            if isinstance(saved_arr, np.ndarray) and isinstance(arr, np.ndarray) and (
                    saved_arr.shape != arr.shape):
                raise ValueError(f"{type(layer).__name__}.{key}: expected shape "
                                 f"{arr.shape}, found {saved_arr.shape} in the state")
    for rng in (base["np_random"], state["action_space_rng"]):
        check_rng_state(rng)


def restore(env: Any, state: Mapping[str, Any]) -> None:
    """Write a :func:`check`-ed state into ``env`` and its wrappers."""
    layers = _layers(env)
    base = state["unwrapped"]
    for entry, layer in zip((*state["wrappers"], base), layers, strict=True):
        for key, value in entry["attrs"].items():
            setattr(layer, key, decode_plain(value))
        for key, value in _ON_RESTORE.get(entry["type"], {}).items():
            setattr(layer, key, value)
    layers[-1]._np_random = make_rng(base["np_random"])
    if "_np_random_seed" in vars(layers[-1]) or base["np_random_seed"] is not None:
        layers[-1]._np_random_seed = base["np_random_seed"]
    env.action_space._np_random = make_rng(state["action_space_rng"])
