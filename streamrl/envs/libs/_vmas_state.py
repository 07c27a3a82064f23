"""The state of a running VMAS env as plain data (tensors and names), for
:meth:`VmasWrapper.capture_state`.

VMAS keeps an episode's state in batched tensors (one row per vectorised env) on a few
objects: the env (its step counter), the scenario (e.g. Navigation's shaping rewards), the
world, each entity (an agent's shaping terms), its physical state (position, velocity,
rotation, forces, communication), an agent's action and dynamics, and its sensors. Every
tensor attribute of those objects is saved, with the state's and action's unset (None)
fields, so a restored env continues its episodes step for step. Scenarios are known by
name: only those whose episode state is all in such tensors are supported (others raise
``NotImplementedError`` naming the scenario).

VMAS draws its resets from one random state that all its envs of a process share
(``Environment.vmas_random_state``: torch's, numpy's and Python's generators, swapped in
around each call). It is saved with the env's state, and restoring an env's state sets it
for every VMAS env of the process: a resumed run (one VMAS env, or a batch of them stepped
in turn) draws the same resets as the original.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import torch

from streamrl._utils import rng_state

# the scenarios (paths under vmas/scenarios, without .py) whose state is in their tensors
SCENARIOS = ("navigation", "mpe/simple_tag", "mpe/simple_spread")


def can_capture_state(scenario: str) -> bool:
    """Whether :meth:`VmasWrapper.capture_state` supports the VMAS scenario named
    ``scenario`` (as ``vmas.make_env`` takes it: ``"navigation"``, ``"simple_tag"``); on
    the others it raises ``NotImplementedError``, so a resumed run starts new episodes."""
    return any(known == scenario or known.endswith("/" + scenario) for known in SCENARIOS)


def scenario_name(env: Any) -> str:
    """The scenario's path under ``vmas/scenarios`` (``"navigation"``, ``"mpe/simple_tag"``),
    or its class's qualified name when it is not one of VMAS's files."""
    cls = type(env.scenario)
    # VMAS loads its scenario files without a module name: the file of the class's own
    # make_world says which one it is
    make_world = vars(cls).get("make_world")
    code = getattr(make_world, "__code__", None)
    parts = PurePath(code.co_filename).with_suffix("").parts if code is not None else ()
    for i in range(len(parts) - 1, 0, -1):
        if parts[i - 1] == "scenarios" and i >= 2 and parts[i - 2] == "vmas":
            return "/".join(parts[i:])
    return f"{cls.__module__}.{cls.__qualname__}"


def _objects(env: Any) -> list[tuple[str, Any, bool]]:
    """``(path, object, keeps None fields)`` of every object holding episode state."""
    world = env.world
    out: list[tuple[str, Any, bool]] = [("env", env, False), ("scenario", env.scenario, False),
                                        ("world", world, False)]
    for i, entity in enumerate([*world.agents, *world.landmarks]):
        path = f"entity {i} ({entity.name})"
        out += [(path, entity, False), (f"{path}.state", entity.state, True)]
        if hasattr(entity, "action"):
            out.append((f"{path}.action", entity.action, True))
        dynamics = getattr(entity, "dynamics", None)
        if dynamics is not None:
            out.append((f"{path}.dynamics", dynamics, False))
        for j, sensor in enumerate(getattr(entity, "sensors", None) or ()):
            out.append((f"{path}.sensor {j}", sensor, False))
    return out


def _fields(obj: Any, keep_none: bool) -> dict[str, torch.Tensor | None]:
    return {k: v for k, v in vars(obj).items()
            if isinstance(v, torch.Tensor) or (keep_none and v is None)}


def _cannot(env: Any, what: str) -> NotImplementedError:
    return NotImplementedError(
        f"the state of VMAS scenario {scenario_name(env)!r} cannot be captured: {what}, so a "
        "resumed run could not continue its episodes exactly. Supported: the scenarios "
        f"{', '.join(SCENARIOS)}"
    )


def capture(env: Any) -> dict[str, Any]:
    """The state of the VMAS env ``env`` as plain data; raises ``NotImplementedError`` for a
    scenario whose state is not known."""
    name = scenario_name(env)
    if name not in SCENARIOS:
        raise _cannot(env, "it is not one whose state is known")
    if getattr(env.world, "_joints", None):
        raise _cannot(env, "its world has joints")
    return {
        "scenario": name,
        "num_envs": int(env.num_envs),
        # [torch, numpy, python]: GlobalRNGState's three, in VMAS's order
        "random": rng_state.rng_states_to_plain(*reversed(type(env).vmas_random_state)),
        "objects": {path: {k: None if v is None else v.detach().clone()
                           for k, v in _fields(obj, keep_none).items()}
                    for path, obj, keep_none in _objects(env)},
    }


def check(env: Any, state: Any) -> None:
    """Raise ``ValueError`` unless ``state`` is a :func:`capture` of an env like ``env`` (the
    same scenario, number of envs, entities and tensor shapes); changes nothing."""
    expected = {"scenario", "num_envs", "random", "objects"}
    if not isinstance(state, Mapping) or set(state) != expected:
        found = sorted(state) if isinstance(state, Mapping) else type(state).__name__
        raise ValueError(f"expected a VMAS env state with keys {sorted(expected)}, found {found}")
    if state["scenario"] != scenario_name(env):
        raise ValueError(f"the state is of VMAS scenario {state['scenario']!r}, this env runs "
                         f"{scenario_name(env)!r}")
    if state["num_envs"] != int(env.num_envs):
        raise ValueError(f"the state has num_envs={state['num_envs']}, this env "
                         f"num_envs={int(env.num_envs)}")
    rng = state["random"]
    if not isinstance(rng, Mapping) or set(rng) != set(rng_state.KEYS):
        raise ValueError(f"the state's 'random' must hold VMAS's generator states "
                         f"{list(rng_state.KEYS)}, found {rng!r:.200}")
    rng_state.check_torch_cpu_state(rng["torch_cpu"], "the state's 'random'")
    objects = _objects(env)
    saved = state["objects"]
    paths = [path for path, _, _ in objects]
    if not isinstance(saved, Mapping) or list(saved) != paths:
        found = list(saved) if isinstance(saved, Mapping) else type(saved).__name__
        raise ValueError(f"the state holds the objects {found}, this env has {paths}")
    for path, obj, keep_none in objects:
        current = _fields(obj, keep_none)
        values = saved[path]
        tensors = {k for k, v in current.items() if isinstance(v, torch.Tensor)}
        if not isinstance(values, Mapping) or not tensors <= set(values):
            found = sorted(values) if isinstance(values, Mapping) else type(values).__name__
            raise ValueError(f"{path}: expected the tensors {sorted(tensors)}, found {found}")
        for k, v in values.items():
            now = vars(obj).get(k)
            if v is not None and not isinstance(v, torch.Tensor):
                raise ValueError(f"{path}.{k}: expected a tensor or None, found "
                                 f"{type(v).__name__}")
            if isinstance(v, torch.Tensor) and isinstance(now, torch.Tensor) and (
                    v.shape != now.shape or v.dtype != now.dtype):
                raise ValueError(f"{path}.{k}: expected {now.dtype} of shape "
                                 f"{tuple(now.shape)}, found {v.dtype} of shape "
                                 f"{tuple(v.shape)}")


def restore(env: Any, state: Mapping[str, Any]) -> None:
    """Write a :func:`check`-ed state into ``env`` (into its tensors where they exist, so
    whatever else refers to them sees the restored values) and VMAS's shared random
    state."""
    python, numpy, torch_cpu = rng_state.rng_states_from_plain(state["random"])
    type(env).vmas_random_state[:] = [torch_cpu, numpy, python]  # one list for all VMAS envs
    for path, obj, _ in _objects(env):
        for k, v in state["objects"][path].items():
            now = vars(obj).get(k)
            if v is None:
                setattr(obj, k, None)
            elif isinstance(now, torch.Tensor) and now.shape == v.shape:
                with torch.no_grad():
                    now.copy_(v)
            else:
                setattr(obj, k, v.to(env.device).clone())
