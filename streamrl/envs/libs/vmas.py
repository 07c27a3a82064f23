"""VMAS (the Vectorized Multi-Agent Simulator) scenarios as natively batched multi-agent
envs: ``VmasWrapper(env)`` and ``VmasEnv(scenario, num_envs=...)``, TorchRL 0.14's names,
arguments and key layout.

vmas is imported when an env is built (or ``available_envs`` is read), not when this module
is: ``import streamrl`` does not need it.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from streamrl.data.specs import (
    Bounded,
    Categorical,
    Composite,
    MultiCategorical,
    MultiOneHot,
    OneHot,
    TensorSpec,
    Unbounded,
)
from streamrl.envs._env_specs import done_flag_spec
from streamrl.envs.common import EnvBase
from streamrl.envs.libs import _vmas_state
from streamrl.envs.libs._vmas_state import can_capture_state
from streamrl.envs.libs._wrapped import ForwardsToWrapped
from streamrl.envs.marl_groups import MarlGroupMapType, resolve_group_map

__all__ = ["VmasEnv", "VmasWrapper", "can_capture_state"]


def _import_vmas() -> Any:
    try:
        import vmas
    except ImportError as err:
        raise ImportError(
            "VmasEnv needs the vmas package: pip install vmas (or streamrl[marl])"
        ) from err
    return vmas


class _AvailableEnvs:
    """``VmasEnv.available_envs``: the scenario names vmas ships, read on access."""

    def __get__(self, obj: Any, cls: type | None = None) -> list[str]:
        vmas = _import_vmas()
        return [*vmas.scenarios, *vmas.mpe_scenarios, *vmas.debug_scenarios]


def _default_group_map(agent_names: Sequence[str]) -> dict[str, list[str]]:
    """TorchRL's VMAS grouping: agents named ``<group>_<int>`` go to ``<group>`` (a single
    group ``"agent"`` is named ``"agents"``); if any name does not end with ``_<int>``, all
    agents go to one group ``"agents"``."""
    groups: dict[str, list[str]] = {}
    for name in agent_names:
        prefix, sep, index = name.rpartition("_")
        if not sep or not prefix or not index.isdigit():
            return MarlGroupMapType.ALL_IN_ONE_GROUP.get_group_map(agent_names)
        groups.setdefault(prefix, []).append(name)
    if list(groups) == ["agent"]:
        groups = {"agents": groups["agent"]}
    return groups


def _spec_from_space(space: Any, categorical: bool, device: Any) -> TensorSpec | Composite:
    """The spec of one agent's VMAS space (vmas builds them with ``gym.spaces``: Box,
    Discrete, MultiDiscrete, Dict; read by duck typing, gym is not imported here)."""
    kind = type(space).__name__
    if kind == "Box":
        shape = tuple(space.shape) or (1,)
        dtype = torch.as_tensor(space.low).dtype
        low = torch.as_tensor(space.low, dtype=dtype).reshape(shape)
        high = torch.as_tensor(space.high, dtype=dtype).reshape(shape)
        if bool(low.isinf().all()) and bool(high.isinf().all()):
            return Unbounded(shape, device=device, dtype=dtype)
        return Bounded(low, high, shape, device=device, dtype=dtype)
    if kind == "Discrete":
        if categorical:
            return Categorical(int(space.n), device=device)
        return OneHot(int(space.n), device=device, dtype=torch.int64)
    if kind == "MultiDiscrete":
        nvec = [int(n) for n in space.nvec]
        if categorical:
            return MultiCategorical(nvec, device=device)
        return MultiOneHot(nvec, device=device, dtype=torch.int64)
    if kind == "Dict":
        return Composite(
            {k: _spec_from_space(v, categorical, device) for k, v in space.spaces.items()},
            device=device,
        )
    raise TypeError(
        f"cannot convert the VMAS space {space!r}: expected Box, Discrete, MultiDiscrete or "
        "Dict"
    )


def _info_spec(info: dict[str, torch.Tensor], num_envs: int, device: Any) -> Composite:
    """The spec of one agent's info dict: float32 entries (as TorchRL casts them), a value
    of shape ``[num_envs]`` getting a trailing dim of 1."""
    return Composite(
        {k: Unbounded(tuple(v.shape[1:]) or (1,), device=device, dtype=torch.float32)
         for k, v in info.items()},
        device=device,
    )


class VmasWrapper(ForwardsToWrapped, EnvBase):
    """Wrap a VMAS env (``vmas.make_env(..., wrapper=None)``, a
    ``vmas.simulator.environment.Environment``): a batched env of batch size
    ``[num_envs]`` whose agents are stacked into groups.

    Args:
        env: the VMAS env.
        categorical_actions: discrete actions as indices (:class:`Categorical`, the
            default) or one-hot vectors (:class:`OneHot`); MultiDiscrete actions (VMAS's
            ``multidiscrete_actions=True``) as :class:`MultiCategorical` or
            :class:`MultiOneHot`. Ignored for continuous actions.
        group_map: how agents are grouped: a :class:`MarlGroupMapType` or a dict
            ``{group: [agent names]}``. Default: agents named ``<name>_<int>`` are grouped
            by ``<name>`` (a single ``agent`` group is named ``"agents"``), and all agents go
            to one group ``"agents"`` if a name does not follow that convention. A group may
            only stack agents with the same spaces: a ``ValueError`` naming the group, the
            two agents and their spaces is raised when the env is built.
        device: must be the VMAS env's device when given (the env's device is used).
        batch_size: must be ``[num_envs]`` when given.
        from_pixels, pixels_only: rendering is not supported (``NotImplementedError``, as
            in TorchRL).

    Layout (TorchRL's): for each group, ``(group, "observation")`` ``[num_envs, n_agents,
    ...]`` (a VMAS dict observation is a nested TensorDict), ``(group, "info", key)``
    (float32; a per-env value gets a trailing dim of 1), ``(group, "action")`` and
    ``("next", group, "reward")`` ``[num_envs, n_agents, 1]``; ``done``, ``terminated`` and
    ``truncated`` ``[num_envs, 1]`` at the root. VMAS gives one done flag per env:
    ``terminated`` is that flag (``max_steps`` sets it too) and ``truncated`` is False,
    unless the VMAS env was made with ``terminated_truncated=True``, whose two flags are
    kept. A reset with a ``"_reset"`` mask resets only those envs (``env.reset_at(i)``).
    Continuous actions outside their bounds raise ``ValueError`` (VMAS would assert),
    unless the VMAS env clamps them (``clamp_actions=True``).

    ``set_seed(s)`` seeds VMAS's random state (``env.seed(s)``), which every VMAS env of
    the process shares and which is kept apart from torch's global generator;
    ``set_seed(None)`` leaves it as it is. Attributes the wrapper does not have are read
    from the VMAS env (``n_agents``, ``agents``, ``scenario``, ``num_envs``...).

    >>> import vmas
    >>> env = VmasWrapper(vmas.make_env("navigation", num_envs=4, n_agents=2))
    >>> env.group_map
    {'agents': ['agent_0', 'agent_1']}
    >>> env.rollout(3)["next", "agents", "reward"].shape
    torch.Size([4, 3, 2, 1])
    >>> env.close()
    """

    available_envs = _AvailableEnvs()

    def __init__(
        self,
        env: Any = None,
        categorical_actions: bool = True,
        group_map: MarlGroupMapType | dict[str, list[str]] | None = None,
        *,
        device: Any = None,
        batch_size: Any = None,
        from_pixels: bool = False,
        pixels_only: bool = False,
    ) -> None:
        vmas = _import_vmas()
        if not isinstance(env, vmas.simulator.environment.Environment):
            raise TypeError(
                "VmasWrapper expects a VMAS env (vmas.make_env(..., wrapper=None), a "
                f"vmas.simulator.environment.Environment), found {type(env).__name__}"
            )
        if from_pixels or pixels_only:
            raise NotImplementedError("VmasWrapper: rendering (from_pixels) is not supported")
        if device is not None and torch.device(device) != torch.device(env.device):
            raise ValueError(
                f"VmasWrapper: device {device!r} differs from the VMAS env's device "
                f"{env.device} (make the VMAS env on the device wanted)"
            )
        n = int(env.num_envs)
        if batch_size is not None and tuple(batch_size) != (n,):
            raise ValueError(
                f"VmasWrapper: batch_size must be [num_envs]=[{n}], found {tuple(batch_size)}"
            )
        # as TorchRL: a VMAS scenario may be done right after a reset
        super().__init__(device=env.device, batch_size=(n,), allow_done_after_reset=True)
        self._env = env
        self.categorical_actions = bool(categorical_actions)
        self.agent_names = [agent.name for agent in env.agents]
        self.agent_names_to_indices_map = {name: i for i, name in enumerate(self.agent_names)}
        if group_map is None:
            group_map = _default_group_map(self.agent_names)
        self.group_map = resolve_group_map(group_map, self.agent_names)
        # VMAS asserts on out-of-range continuous actions: refuse them with a ValueError
        self.strict_action_bounds = not getattr(env, "clamp_action", False)
        self._build_specs()

    # ---------------------------------------------------------------- specs
    def _agent_data(self, values: Any) -> list:
        """VMAS per-agent data (a list, or a dict by agent name with ``dict_spaces``) as a
        list in agent order."""
        if isinstance(values, dict):
            return [values[name] for name in self.agent_names]
        return list(values)

    def _build_specs(self) -> None:
        env, dev = self._env, self.device
        n = int(env.num_envs)
        acts = self._agent_data(env.action_space.spaces)
        obss = self._agent_data(env.observation_space.spaces)
        infos = [env.scenario.info(agent) for agent in env.agents]
        obs_spec = Composite(shape=(n,), device=dev)
        act_spec = Composite(shape=(n,), device=dev)
        rew_spec = Composite(shape=(n,), device=dev)
        self._obs_specs: dict[str, Composite] = {}
        for group, names in self.group_map.items():
            idx = [self.agent_names_to_indices_map[a] for a in names]
            for what, spaces in (("observation", obss), ("action", acts)):
                self._check_same(group, names, what, [spaces[i] for i in idx])
            self._check_same(group, names, "info", [
                {k: tuple(v.shape[1:]) for k, v in infos[i].items()} for i in idx])
            first = idx[0]
            agent_obs = Composite(
                observation=_spec_from_space(obss[first], self.categorical_actions, dev),
                device=dev,
            )
            if infos[first]:
                agent_obs["info"] = _info_spec(infos[first], n, dev)
            shape = (n, len(names))
            obs_spec[group] = agent_obs.expand(*shape)
            self._obs_specs[group] = obs_spec[group]
            action = _spec_from_space(acts[first], self.categorical_actions, dev)
            act_spec[group] = Composite(action=action.expand(*shape, *action.shape),
                                        shape=shape, device=dev)
            rew_spec[group] = Composite(reward=Unbounded((*shape, 1), device=dev),
                                        shape=shape, device=dev)
        self.full_observation_spec = obs_spec
        self.full_action_spec = act_spec
        self.full_reward_spec = rew_spec
        flag = done_flag_spec(self.batch_size, dev)
        self.full_done_spec = Composite(
            done=flag, terminated=flag.clone(), truncated=flag.clone(), shape=(n,), device=dev
        )
        self.het_specs = False  # agents with other spaces go to other groups (see above)
        self.het_specs_map = dict.fromkeys(self.group_map, False)

    def _check_same(self, group: str, names: list[str], what: str, spaces: list) -> None:
        for name, space in zip(names[1:], spaces[1:], strict=True):
            if space != spaces[0]:
                raise ValueError(
                    f"group_map: group {group!r} stacks agents with different {what} "
                    f"spaces: {names[0]!r} has {spaces[0]!r}, {name!r} has {space!r}; put "
                    "them in different groups (a dict group_map, or "
                    "MarlGroupMapType.ONE_GROUP_PER_AGENT)"
                )

    # ------------------------------------------------------------- outputs
    def _group_outputs(self, obs: list, infos: list, rewards: list | None) -> dict[str, Any]:
        """One TensorDict ``[num_envs, n_agents]`` per group from VMAS's per-agent lists."""
        out: dict[str, Any] = {}
        n = self.batch_size
        for group, names in self.group_map.items():
            idx = [self.agent_names_to_indices_map[a] for a in names]
            spec = self._obs_specs[group]
            src: dict[str, Any] = {
                "observation": _stack_obs([obs[i] for i in idx], spec["observation"]),
            }
            if "info" in spec.keys():
                info_spec = spec["info"]
                src["info"] = TensorDict._new_unsafe(
                    {k: torch.stack([infos[i][k].to(torch.float32).reshape(
                        *n, *info_spec[k].shape[2:]) for i in idx], 1)
                     for k in info_spec.keys()},
                    batch_size=spec.shape, device=self.device,
                )
            if rewards is not None:
                src["reward"] = torch.stack(
                    [rewards[i].to(torch.float32).reshape(*n, 1) for i in idx], 1)
            out[group] = TensorDict._new_unsafe(src, batch_size=spec.shape, device=self.device)
        return out

    def _flags(self, dones: list) -> dict[str, torch.Tensor]:
        """Root done flags from VMAS's ``[done]`` or ``[terminated, truncated]``."""
        shape = (*self.batch_size, 1)
        term = dones[0].to(torch.bool).reshape(shape)
        if len(dones) == 2:
            trunc = dones[1].to(torch.bool).reshape(shape)
        else:
            trunc = torch.zeros(shape, dtype=torch.bool, device=term.device)
        return {"done": term | trunc, "terminated": term, "truncated": trunc}

    # ----------------------------------------------------------- EnvBase hooks
    def _reset(self, tensordict: TensorDictBase | None, **kwargs: Any) -> TensorDictBase:
        env = self._env
        mask = None if tensordict is None else tensordict.get("_reset", None)
        rows = None
        if mask is not None:
            mask = mask.reshape(self.batch_size).to(torch.bool)
            if not bool(mask.all()):
                rows = mask.nonzero().reshape(-1).tolist()
        if rows is None:
            env.reset(return_observations=False)
        else:
            for i in rows:
                env.reset_at(i, return_observations=False)
        got = env.get_from_scenario(get_observations=True, get_rewards=False, get_infos=True,
                                    get_dones=True, dict_agent_names=False)
        obs, dones, infos = got[0], got[1:-1], got[-1]
        src = {**self._flags(dones), **self._group_outputs(obs, infos, None)}
        out = TensorDict._new_unsafe(src, batch_size=self.batch_size, device=self.device)
        if rows is not None:
            # the envs not reset keep what the caller holds (VMAS recomputes every env's
            # observation, and a scenario with sensor noise would give another one)
            keep = ~mask
            for key in out.keys(True, True):
                held = tensordict.get(key, None)
                if held is not None and held.shape == out.get(key).shape:
                    fresh = out.get(key)
                    where = keep.reshape(*keep.shape, *([1] * (fresh.ndim - 1)))
                    out.set(key, torch.where(where, held.to(fresh.device), fresh))
        return out

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        actions: list[Any] = [None] * len(self.agent_names)
        nb = len(self.batch_size)
        for group, names in self.group_map.items():
            action = tensordict.get((group, "action"))
            spec = self.full_action_spec[group, "action"]
            if isinstance(spec, OneHot | MultiOneHot):
                action = spec.to_categorical(action)
            for name, agent_action in zip(names, action.unbind(nb), strict=True):
                # VMAS takes [num_envs, action size] (a discrete index as [num_envs, 1])
                actions[self.agent_names_to_indices_map[name]] = agent_action.reshape(
                    *self.batch_size, -1)
        got = self._env.step(actions)
        obs, rewards, dones, infos = got[0], got[1], got[2:-1], got[-1]
        obs, rewards, infos = (self._agent_data(x) for x in (obs, rewards, infos))
        src = {**self._flags(dones), **self._group_outputs(obs, infos, rewards)}
        return TensorDict._new_unsafe(src, batch_size=self.batch_size, device=self.device)

    def _set_seed(self, seed: int | None) -> None:
        if seed is not None:
            self._env.seed(seed)

    # ------------------------------------------------------------- run state
    def _capture_state(self) -> dict[str, Any]:
        # the scenarios whose state is known (see _vmas_state); others raise
        return _vmas_state.capture(self._env)

    def _check_state(self, state: Any) -> None:
        _vmas_state.check(self._env, state)

    def _restore_state(self, state: Any) -> None:
        _vmas_state.restore(self._env, state)

    def _close(self) -> None:
        viewer = getattr(self._env, "viewer", None)
        if viewer is not None:
            viewer.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_envs={self._env.num_envs}, "
            f"n_agents={self._env.n_agents}, batch_size={self.batch_size}, "
            f"device={self.device})"
        )


def _stack_obs(values: list, spec: Any) -> Any:
    """Agents' observations stacked on dim 1 (a dict observation as a TensorDict)."""
    if isinstance(spec, Composite):
        return TensorDict._new_unsafe(
            {k: _stack_obs([v[k] for v in values], spec[k]) for k in spec.keys()},
            batch_size=spec.shape, device=spec.device,
        )
    lead = spec.shape[:2]
    return torch.stack([v.reshape(lead[0], *spec.shape[2:]) for v in values], 1)


# the keyword arguments VmasEnv keeps for the wrapper (the others go to the scenario)
_WRAPPER_ARGS = frozenset(inspect.signature(VmasWrapper.__init__).parameters) - {
    "self", "env"}


class VmasEnv(VmasWrapper):
    """A VMAS scenario made by name: ``VmasEnv("navigation", num_envs=32, n_agents=3)``
    (``vmas.make_env``), a batched env of batch size ``[num_envs]``.

    Args:
        scenario: a scenario name (:attr:`available_envs`) or a
            ``vmas.simulator.scenario.BaseScenario``.
        num_envs: the number of simulated envs (the batch size).
        continuous_actions: continuous actions (default) or discrete ones.
        max_steps: the horizon (None: none). Reaching it sets ``terminated`` (not
            ``truncated``), as VMAS gives one done flag; for a truncation signal leave it
            None and add a :class:`~streamrl.envs.StepCounter`.
        categorical_actions, group_map: as :class:`VmasWrapper`.
        seed: seeds VMAS when the env is built.
        device: the simulation device (None: torch's default device).
        **kwargs: the scenario's arguments (``n_agents``...) and VMAS's other ``make_env``
            arguments (``dict_spaces``, ``multidiscrete_actions``, ``clamp_actions``,
            ``terminated_truncated``...); ``batch_size``, ``from_pixels`` and
            ``pixels_only`` are :class:`VmasWrapper`'s.

    >>> env = VmasEnv("navigation", num_envs=4, continuous_actions=True, max_steps=10,
    ...               n_agents=3)
    >>> env
    VmasEnv(num_envs=4, n_agents=3, batch_size=torch.Size([4]), device=cpu) (scenario=navigation)
    >>> td = env.rand_step(env.reset())
    >>> td["agents", "action"].shape, td["next", "agents", "observation"].shape
    (torch.Size([4, 3, 2]), torch.Size([4, 3, 18]))
    >>> env.close()
    """

    def __init__(
        self,
        scenario: Any,
        *,
        num_envs: int,
        continuous_actions: bool = True,
        max_steps: int | None = None,
        categorical_actions: bool = True,
        seed: int | None = None,
        group_map: MarlGroupMapType | dict[str, list[str]] | None = None,
        device: Any = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, found {num_envs!r}")
        if max_steps is not None and (
                isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
            raise ValueError(f"max_steps must be an int >= 1 or None, found {max_steps!r}")
        if kwargs.get("wrapper") is not None:
            raise ValueError("VmasEnv builds an unwrapped VMAS env: wrapper must be None")
        kwargs.pop("wrapper", None)
        vmas = _import_vmas()
        if isinstance(scenario, str):
            name = scenario[:-3] if scenario.endswith(".py") else scenario
            if name not in self.available_envs:
                raise ValueError(
                    f"VMAS has no scenario {scenario!r}: expected one of "
                    f"{sorted(self.available_envs)} or a BaseScenario"
                )
        wrapper_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in _WRAPPER_ARGS}
        if device is None:
            device = torch.get_default_device()
        env = vmas.make_env(
            scenario=scenario, num_envs=num_envs, device=device,
            continuous_actions=continuous_actions, max_steps=max_steps, seed=seed,
            wrapper=None, **kwargs,
        )
        self.scenario_name = scenario
        super().__init__(env, categorical_actions=categorical_actions, group_map=group_map,
                         **wrapper_kwargs)

    def __repr__(self) -> str:
        name = self.scenario_name
        if not isinstance(name, str):
            name = type(name).__name__
        return f"{super().__repr__()} (scenario={name})"
