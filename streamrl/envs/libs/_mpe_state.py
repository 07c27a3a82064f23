"""The state of a running MPE env (PettingZoo's multi-particle envs, the ``mpe2`` package) as
plain data (tensors, numbers, strings, dicts), for :meth:`PettingZooWrapper.capture_state`.

What is saved makes a restored env continue its episode step for step: every entity's
physical state (``p_pos``, ``p_vel``, the agents' communication ``c``) and last action, the
env's step counter, agent list and selection, its reward / termination / truncation / info
dicts, its pending actions and its ``np_random`` generator, and the wrappers' counters
(``OrderEnforcingWrapper``'s reset flags, the parallel wrapper's agent list). Scenarios are
known by name: only those whose per-episode state is all in the entities' states are
supported (others, e.g. ``simple_adversary`` whose reset draws each agent's goal, raise
``NotImplementedError`` naming the scenario).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from streamrl.envs.libs._gym_state import (
    check_rng_state,
    check_wrapper_types,
    decode_plain,
    encode_plain,
    make_rng,
    qualname,
    rng_state,
)

# wrapper class -> the attributes that carry its state
_WRAPPERS: dict[str, tuple[str, ...]] = {
    "pettingzoo.utils.conversions.aec_to_parallel_wrapper": ("agents",),
    "pettingzoo.utils.wrappers.order_enforcing.OrderEnforcingWrapper": (
        "_has_reset", "_has_updated"),
    "pettingzoo.utils.wrappers.clip_out_of_bounds.ClipOutOfBoundsWrapper": (),
    "pettingzoo.utils.wrappers.assert_out_of_bounds.AssertOutOfBoundsWrapper": (),
}
# the scenarios whose reset draws nothing but the entities' states
_SCENARIOS = (
    "mpe2.simple.simple.raw_env",
    "mpe2.simple_spread.simple_spread.raw_env",
    "mpe2.simple_tag.simple_tag.raw_env",
)
# the unwrapped env's episode state
_ENV_ATTRS = ("steps", "agents", "agent_selection", "rewards", "_cumulative_rewards",
              "terminations", "truncations", "infos", "current_actions")
_SELECTOR_ATTRS = ("agent_order", "_current_agent", "selected_agent")
_STATE_ATTRS = ("p_pos", "p_vel", "c")  # an entity's physical state (c: agents only)
_ACTION_ATTRS = ("u", "c")


def _layers(env: Any) -> list[Any]:
    """The wrappers from the outermost in, then the unwrapped env."""
    layers = [env]
    while True:
        inner = getattr(layers[-1], "aec_env", None) or getattr(layers[-1], "env", None)
        if inner is None or layers[-1] is getattr(layers[-1], "unwrapped", None):
            return layers
        layers.append(inner)


def _cannot(env: Any, what: str) -> NotImplementedError:
    return NotImplementedError(
        f"the state of PettingZoo env {type(getattr(env, 'unwrapped', env)).__name__} "
        f"({qualname(getattr(env, 'unwrapped', env))}) cannot be captured: {what}, so a "
        "resumed run could not continue its episodes exactly. Supported: the MPE scenarios "
        f"{', '.join(n.split('.')[1] for n in _SCENARIOS)} under the wrappers "
        f"{', '.join(n.rsplit('.', 1)[1] for n in _WRAPPERS)}"
    )


def _entities(base: Any) -> list[Any]:
    return [*base.world.agents, *base.world.landmarks]


def _fields(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """``obj``'s fields among ``names``, unset ones (None) included: mpe2 keeps them as
    ``_name`` behind properties that refuse to read None, older MPE code as ``name``."""
    own = vars(obj)
    out = {}
    for name in names:
        for attr in ("_" + name, name):
            if attr in own:
                out[name] = own[attr]
                break
    return out


def _entity_state(entity: Any) -> dict[str, Any]:
    state = {k: encode_plain(v) for k, v in _fields(entity.state, _STATE_ATTRS).items()}
    action = getattr(entity, "action", None)
    if action is not None:
        state["action"] = {k: encode_plain(v) for k, v in _fields(action, _ACTION_ATTRS).items()}
    return state


def capture(env: Any) -> dict[str, Any]:
    """The state of the MPE env ``env`` (with its wrappers) as plain data; raises
    ``NotImplementedError`` naming what is not supported."""
    layers = _layers(env)
    wrappers = []
    for w in layers[:-1]:
        name = qualname(w)
        if name not in _WRAPPERS:
            raise _cannot(env, f"the wrapper {type(w).__name__} is not one whose state is known")
        wrappers.append({"type": name, "attrs": {k: encode_plain(getattr(w, k))
                                                 for k in _WRAPPERS[name]}})
    base = layers[-1]
    name = qualname(base)
    if name not in _SCENARIOS:
        raise _cannot(env, f"the scenario {name} is not one whose state is known")
    selector = base._agent_selector
    return {
        "type": name,
        "wrappers": wrappers,
        "attrs": {k: encode_plain(getattr(base, k)) for k in _ENV_ATTRS},
        "selector": {k: encode_plain(getattr(selector, k)) for k in _SELECTOR_ATTRS},
        "entities": [_entity_state(e) for e in _entities(base)],
        "np_random": rng_state(getattr(base, "np_random", None)),
    }


def check(env: Any, state: Any) -> None:
    """Raise ``ValueError`` unless ``state`` is a :func:`capture` of an env like ``env``
    (the same scenario and wrappers, entities and agents); changes nothing."""
    expected = {"type", "wrappers", "attrs", "selector", "entities", "np_random"}
    if not isinstance(state, Mapping) or set(state) != expected:
        found = sorted(state) if isinstance(state, Mapping) else type(state).__name__
        raise ValueError(f"expected an MPE env state with keys {sorted(expected)}, found {found}")
    layers = _layers(env)
    base = layers[-1]
    if state["type"] != qualname(base):
        raise ValueError(f"the state is of MPE scenario {state['type']}, this env is "
                         f"{qualname(base)}")
    check_wrapper_types(state["wrappers"], layers)
    entities = _entities(base)
    if len(state["entities"]) != len(entities):
        raise ValueError(f"the state has {len(state['entities'])} entities (agents and "
                         f"landmarks), this env has {len(entities)}")
    for i, (saved_e, entity) in enumerate(zip(state["entities"], entities, strict=True)):
        for k, current in _fields(entity.state, _STATE_ATTRS).items():
            value = decode_plain(saved_e.get(k))
            if isinstance(current, np.ndarray) and (
                    not isinstance(value, np.ndarray) or value.shape != current.shape):
                found = value.shape if isinstance(value, np.ndarray) else type(value).__name__
                raise ValueError(f"entity {i} ({entity.name}) state.{k}: expected shape "
                                 f"{current.shape}, found {found} in the state")
    agents = state["attrs"].get("agents")
    if not isinstance(agents, list) or not set(agents) <= set(base.possible_agents):
        raise ValueError(f"the state's agents {agents} are not among this env's "
                         f"possible_agents {list(base.possible_agents)}")
    check_rng_state(state["np_random"])


def restore(env: Any, state: Mapping[str, Any]) -> None:
    """Write a :func:`check`-ed state into ``env`` and its wrappers."""
    layers = _layers(env)
    for entry, layer in zip(state["wrappers"], layers[:-1], strict=True):
        for key, value in entry["attrs"].items():
            setattr(layer, key, decode_plain(value))
    base = layers[-1]
    for key, value in state["attrs"].items():
        setattr(base, key, decode_plain(value))
    for key, value in state["selector"].items():
        setattr(base._agent_selector, key, decode_plain(value))
    for saved, entity in zip(state["entities"], _entities(base), strict=True):
        for key in _STATE_ATTRS:
            if key in saved:
                setattr(entity.state, key, decode_plain(saved[key]))
        if "action" in saved:
            for key, value in saved["action"].items():
                setattr(entity.action, key, decode_plain(value))
    if state["np_random"] is not None:
        base.np_random = make_rng(state["np_random"])
