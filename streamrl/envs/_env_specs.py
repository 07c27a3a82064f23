"""Where an env's specs live: EnvBase's spec properties, the defaults, and how an assigned
spec (a leaf or a Composite, TorchRL style) is stored as the ``full_*`` Composite."""

from __future__ import annotations

from typing import Any

import torch

from streamrl.data.specs import Categorical, Composite, TensorSpec, Unbounded

DONE_KEYS = ("done", "terminated", "truncated")

# the attributes holding an env's five spec Composites, and what each describes
SPEC_ATTRS = (
    "_full_observation_spec",
    "_full_action_spec",
    "_full_reward_spec",
    "_full_done_spec",
    "_full_state_spec",
)


def done_flag_spec(batch_size: torch.Size, device: Any) -> Categorical:
    """The spec of one done flag: bool, shape ``(*batch_size, 1)``."""
    return Categorical(2, shape=(*batch_size, 1), device=device, dtype=torch.bool)


def default_specs(batch_size: torch.Size, device: Any) -> dict[str, Composite]:
    """The specs of an env that set none: no observation, action or state, an ``Unbounded``
    reward and the three done flags, keyed by :data:`SPEC_ATTRS`."""
    flag = done_flag_spec(batch_size, device)
    return {
        "_full_observation_spec": Composite(shape=batch_size),
        "_full_action_spec": Composite(shape=batch_size),
        "_full_reward_spec": Composite(
            reward=Unbounded((*batch_size, 1), device=device), shape=batch_size
        ),
        "_full_done_spec": Composite({k: flag.clone() for k in DONE_KEYS}, shape=batch_size),
        "_full_state_spec": Composite(shape=batch_size),
    }


def complete_done_spec(spec: Composite) -> Composite:
    """``spec`` with the root flags a step's output always has (see ``_complete_done``):
    a missing ``done``/``terminated``/``truncated`` is a copy of a present one (``done``
    first), or a bool flag of shape ``(*batch, 1)`` when none is. Returns a copy when
    something is added (``spec`` itself is left as it is)."""
    keys = spec.keys()
    present = [k for k in DONE_KEYS if k in keys]
    if len(present) == len(DONE_KEYS):
        return spec
    ref = spec[present[0]] if present else done_flag_spec(spec.shape, spec.device)
    spec = spec.clone()
    for key in DONE_KEYS:
        if key not in keys:
            spec[key] = ref.clone()
    return spec


def _unbatched(name: str, settable: bool = True) -> property:
    """A ``<name>_unbatched`` property: ``name`` as one env of the batch sees it (the batch
    dims indexed away); setting it expands the spec to the env's ``batch_size``."""

    def fget(self: EnvSpecs) -> Any:
        spec = getattr(self, name)
        nb = len(self.batch_size)
        return spec[(0,) * nb] if nb else spec

    def fset(self: EnvSpecs, spec: Any) -> None:
        if not hasattr(spec, "expand"):
            raise TypeError(f"{name}_unbatched must be a spec, found {type(spec).__name__}")
        size = self.batch_size
        setattr(self, name, spec.expand(*size, *spec.shape) if size else spec)

    doc = f"``{name}`` without the env's batch dims"
    if not settable:
        return property(fget, doc=doc + ".")
    return property(fget, fset, doc=doc + " (a spec set here is expanded to them).")


class EnvSpecs:
    """The spec properties of :class:`~streamrl.envs.EnvBase` (mixed into it).

    The five ``full_*_spec`` Composites are stored; every other spec property is derived
    from them. As in TorchRL, ``observation_spec``, ``action_spec``, ``reward_spec`` and
    ``done_spec`` may be given a leaf spec (stored under ``"observation"``, ``"action"``,
    ``"reward"``, or as the done flags) or a whole Composite; a leaf's shape must start with
    the env's ``batch_size``.
    """

    batch_size: torch.Size
    _full_observation_spec: Composite
    _full_action_spec: Composite
    _full_reward_spec: Composite
    _full_done_spec: Composite
    _full_state_spec: Composite
    _action_cache: tuple | None
    _reward_cache: tuple | None

    @property
    def full_observation_spec(self) -> Composite:
        """Every observation entry (what ``reset`` returns and ``"next"`` holds)."""
        return self._full_observation_spec

    @full_observation_spec.setter
    def full_observation_spec(self, spec: Composite | TensorSpec) -> None:
        self._full_observation_spec = self._as_composite(spec, "observation", "observation_spec")

    observation_spec = full_observation_spec

    @property
    def full_action_spec(self) -> Composite:
        """The action entries, as a Composite."""
        return self._full_action_spec

    @full_action_spec.setter
    def full_action_spec(self, spec: Composite) -> None:
        self._full_action_spec = self._composite(spec, "full_action_spec")

    @property
    def action_spec(self) -> TensorSpec | Composite:
        """The spec of ``tensordict["action"]``: the one action leaf, or, as in TorchRL,
        ``full_action_spec`` when there are several (set a Composite for several)."""
        full, keys, spec, _ = self._action_info()
        return spec if len(keys) == 1 else full

    @action_spec.setter
    def action_spec(self, spec: TensorSpec | Composite) -> None:
        self._full_action_spec = self._as_composite(spec, "action", "action_spec")

    @property
    def full_reward_spec(self) -> Composite:
        """The reward entries, as a Composite."""
        return self._full_reward_spec

    @full_reward_spec.setter
    def full_reward_spec(self, spec: Composite) -> None:
        self._full_reward_spec = self._composite(spec, "full_reward_spec")

    @property
    def reward_spec(self) -> TensorSpec | Composite:
        """The spec of ``tensordict["next", "reward"]``: the one reward leaf, or, as in
        TorchRL, ``full_reward_spec`` when there are several (set a Composite for several)."""
        full, keys = self._reward_info()[:2]
        return full[keys[0]] if len(keys) == 1 else full

    @reward_spec.setter
    def reward_spec(self, spec: TensorSpec | Composite) -> None:
        self._full_reward_spec = self._as_composite(spec, "reward", "reward_spec")

    @property
    def full_done_spec(self) -> Composite:
        """``done``, ``terminated`` and ``truncated`` flags (a Composite given without some
        of them gets the missing ones, as a step's output does)."""
        return self._full_done_spec

    @full_done_spec.setter
    def full_done_spec(self, spec: Composite) -> None:
        self._full_done_spec = complete_done_spec(self._composite(spec, "done_spec"))

    @property
    def done_spec(self) -> Composite:
        """The done flags (a Composite with ``done``, ``terminated``, ``truncated``)."""
        return self.full_done_spec

    @done_spec.setter
    def done_spec(self, spec: Composite | TensorSpec) -> None:
        if isinstance(spec, TensorSpec):
            self._check_leaf(spec, "done_spec")
            spec = Composite({k: spec.clone() for k in DONE_KEYS}, shape=self.batch_size)
        self.full_done_spec = spec

    @property
    def full_state_spec(self) -> Composite:
        """Inputs besides the action that ``step`` reads (empty for most envs)."""
        return self._full_state_spec

    @full_state_spec.setter
    def full_state_spec(self, spec: Composite | None) -> None:
        if spec is None:  # as TorchRL: no state
            spec = Composite(shape=self.batch_size)
        self._full_state_spec = self._composite(spec, "state_spec")
        self._reward_cache = None  # which rewards the next step's root keeps may change

    state_spec = full_state_spec

    @property
    def input_spec(self) -> Composite:
        """``full_action_spec`` and ``full_state_spec`` together."""
        return Composite(
            full_action_spec=self.full_action_spec,
            full_state_spec=self.full_state_spec,
            shape=self.batch_size,
        )

    @property
    def output_spec(self) -> Composite:
        """``full_observation_spec``, ``full_reward_spec`` and ``full_done_spec`` together."""
        return Composite(
            full_observation_spec=self.full_observation_spec,
            full_reward_spec=self.full_reward_spec,
            full_done_spec=self.full_done_spec,
            shape=self.batch_size,
        )

    # TorchRL's per-env views of the specs
    full_observation_spec_unbatched = _unbatched("full_observation_spec")
    observation_spec_unbatched = _unbatched("observation_spec")
    full_action_spec_unbatched = _unbatched("full_action_spec")
    action_spec_unbatched = _unbatched("action_spec")
    full_reward_spec_unbatched = _unbatched("full_reward_spec")
    reward_spec_unbatched = _unbatched("reward_spec")
    full_done_spec_unbatched = _unbatched("full_done_spec")
    done_spec_unbatched = _unbatched("done_spec")
    full_state_spec_unbatched = _unbatched("full_state_spec")
    state_spec_unbatched = _unbatched("state_spec")
    input_spec_unbatched = _unbatched("input_spec", settable=False)
    output_spec_unbatched = _unbatched("output_spec", settable=False)

    def _set_io_specs(self, output_spec: Composite | None, input_spec: Composite | None) -> None:
        """Set the specs found in TorchRL-style ``output_spec``/``input_spec`` Composites
        (entries ``full_observation_spec``, ``full_reward_spec``, ``full_done_spec``,
        ``full_action_spec``, ``full_state_spec``; each a Composite or a leaf)."""
        for whole, parts in (
            (output_spec, ("observation_spec", "reward_spec", "done_spec")),
            (input_spec, ("action_spec", "state_spec")),
        ):
            if whole is None:
                continue
            if not isinstance(whole, Composite):
                raise TypeError(
                    f"{type(self).__name__}: expected the class's _output_spec/_input_spec "
                    f"to be Composites, found {type(whole).__name__}"
                )
            for part in parts:
                spec = whole.get(f"full_{part}")
                if spec is not None:
                    setattr(self, part, spec)

    # ------------------------------------------------------------------ keys
    @property
    def action_key(self) -> Any:
        """The key of the action (the first action key)."""
        return self._action_info()[1][0]

    @property
    def action_keys(self) -> list:
        """The (nested) leaf keys of ``full_action_spec``."""
        return list(self._action_info()[1])

    def _action_info(self) -> tuple:
        """``(full_action_spec, action keys, action spec)``, cached per spec object and
        version: ``step`` reads them on every call."""
        full = self.full_action_spec
        cache = self._action_cache
        if cache is None or cache[0] is not full or cache[3] != full._version:
            keys = full.keys(True, True) or ["action"]
            spec = full[keys[0]] if keys[0] in full else None
            cache = (full, keys, spec, full._version)
            self._action_cache = cache
        return cache

    @property
    def reward_key(self) -> Any:
        """The key of the reward."""
        return self.reward_keys[0]

    @property
    def reward_keys(self) -> list:
        """The (nested) leaf keys of ``full_reward_spec``."""
        return list(self._reward_info()[1])

    def _reward_info(self) -> tuple:
        """``(full_reward_spec, reward keys, version, keys the next step's root drops)``,
        cached per reward spec object and version (every step's :meth:`next_root` reads
        them; callers must not modify the lists). The root keeps a reward that is also a
        state entry (an input of the next step: ``RewardSum(reward_spec=True)``)."""
        full = self.full_reward_spec
        cache = self._reward_cache
        if cache is None or cache[0] is not full or cache[2] != full._version:
            keys = full.keys(True, True) or ["reward"]
            state = self.full_state_spec.keys(True, True)
            dropped = [k for k in keys if k not in state] if state else keys
            cache = (full, keys, full._version, dropped)
            self._reward_cache = cache
        return cache

    @property
    def done_keys(self) -> list:
        """The (nested) leaf keys of ``full_done_spec``."""
        return self.full_done_spec.keys(True, True)

    @property
    def reset_keys(self) -> list:
        """The partial-reset entries: ``"_reset"`` beside each place that holds done flags
        (``"_reset"`` for the root's, ``(group, "_reset")`` for an agent group's), sorted by
        depth (TorchRL's order: the root first)."""
        places = {tuple(key[:-1]) if isinstance(key, tuple) else () for key in self.done_keys}
        return [(*place, "_reset") if place else "_reset"
                for place in sorted(places, key=lambda p: (len(p), p))]

    # ------------------------------------------------------------- checking
    def _check_leaf(self, spec: TensorSpec, what: str) -> None:
        size = self.batch_size
        if spec.shape[: len(size)] != size:
            raise ValueError(
                f"{what}: expected a spec whose shape starts with the env's batch_size "
                f"{tuple(size)}, found shape {tuple(spec.shape)}"
            )

    def _as_composite(self, spec: Any, leaf_key: str, what: str) -> Composite:
        """``spec`` as a full spec: a leaf goes under ``leaf_key``."""
        if isinstance(spec, TensorSpec):
            self._check_leaf(spec, what)
            spec = {leaf_key: spec}
        return self._composite(spec, what)

    def _composite(self, spec: Any, what: str) -> Composite:
        if isinstance(spec, dict):
            spec = Composite(spec, shape=self.batch_size)
        if not isinstance(spec, Composite):
            raise TypeError(f"{what} must be a Composite, found {type(spec).__name__}")
        if spec.shape != self.batch_size:
            raise ValueError(
                f"{what} must have shape batch_size={self.batch_size}, found {spec.shape}"
            )
        return spec
