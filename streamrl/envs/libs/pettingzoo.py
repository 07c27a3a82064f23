"""PettingZoo multi-agent envs: PettingZooWrapper(env) and PettingZooEnv(task, parallel).

Both of PettingZoo's APIs are wrapped: a ``ParallelEnv`` (every agent acts at each step) and
an ``AECEnv`` (one agent acts per step, ``env.agent_selection``). Agents are stacked into
groups (:mod:`streamrl.envs.marl_groups`), TorchRL 0.14's layout: ``(group, "observation")``
of shape ``[n_agents, ...]``, ``(group, "action")``, ``("next", group, "reward")``,
per-agent ``(group, "done"/"terminated"/"truncated")`` and the root flags of the episode.

pettingzoo is imported when an env is built, not when this module is.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase

from streamrl.data.specs import (
    Categorical,
    Composite,
    OneHot,
    TensorSpec,
    Unbounded,
    spec_from_gym_space,
)
from streamrl.data.specs.discrete import samplable_mask
from streamrl.envs._leaf_steps import leaves_of
from streamrl.envs.common import EnvBase
from streamrl.envs.gym_like import is_numeric
from streamrl.envs.libs import _mpe_state
from streamrl.envs.libs._gym_state import decode_plain, encode_plain
from streamrl.envs.libs._wrapped import ForwardsToWrapped
from streamrl.envs.libs.gym import _ActionConverter
from streamrl.envs.marl_groups import MarlGroupMapType, group_by_name, resolve_group_map

__all__ = ["PettingZooEnv", "PettingZooWrapper"]

_FLAGS = ("done", "terminated", "truncated")

# PettingZoo's env families and the packages holding them (MPE moved to its own package)
_FAMILIES = {
    "mpe": "mpe2",
    "classic": "pettingzoo.classic",
    "sisl": "pettingzoo.sisl",
    "butterfly": "pettingzoo.butterfly",
    "atari": "pettingzoo.atari",
}
_TASK_NAME = re.compile(r".+_v\d+$")


def _family_tasks(package: str) -> list[str]:
    """The task modules of a family package (``simple_spread_v3``...), without importing
    them (their own dependencies may be missing); [] when the package is not installed."""
    try:
        if importlib.util.find_spec(package) is None:
            return []
        pkg = importlib.import_module(package)
    except ImportError:
        return []
    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if _TASK_NAME.match(m.name))


def _task_module(task: str) -> Any:
    """The module of a task named ``"<family>/<task>"`` or ``"<task>"``."""
    if not isinstance(task, str) or not task:
        raise TypeError(f"task must be a non-empty str, found {task!r}")
    family, _, name = task.rpartition("/")
    if family and family not in _FAMILIES:
        raise ValueError(f"PettingZooEnv: unknown task family {family!r} in task {task!r}: "
                         f"expected one of {sorted(_FAMILIES)}")
    packages = [_FAMILIES[family]] if family else list(_FAMILIES.values())
    for package in packages:
        if name in _family_tasks(package):
            try:
                return importlib.import_module(f"{package}.{name}")
            except ImportError as err:
                raise ImportError(f"PettingZooEnv: the task {task!r} ({package}.{name}) needs "
                                  f"a package that is not installed: {err}") from err
    raise ValueError(f"PettingZooEnv: unknown task {task!r}: expected one of "
                     f"{_available_envs()} (as '<family>/<task>' or '<task>')")


def _available_envs() -> list[str]:
    return [f"{family}/{name}" for family, package in _FAMILIES.items()
            for name in _family_tasks(package)]


class _AvailableEnvs:
    """``PettingZooWrapper.available_envs``: ``["mpe/simple_spread_v3", ...]``, the tasks of
    the installed families, read on access."""

    def __get__(self, obj: Any, cls: type | None = None) -> list[str]:
        return _available_envs()


def _default_group_map(agents: list[str], parallel: bool) -> dict[str, list[str]]:
    """TorchRL's default grouping: for a parallel env, agents named ``<name>_<int>`` in group
    ``<name>`` and any other agent alone in a group of its name; for an AEC env, one group
    per agent."""
    if not parallel:
        return MarlGroupMapType.ONE_GROUP_PER_AGENT.get_group_map(agents)
    return group_by_name(agents)


def _flag_spec(shape: tuple, device: Any) -> Categorical:
    return Categorical(2, shape=shape, device=device, dtype=torch.bool)


class _Group:
    """One group's specs and converters (per agent: stacking them gives the group's)."""

    def __init__(self, name: str, agents: list[str]) -> None:
        self.name = name
        self.agents = agents
        self.obs_spec: TensorSpec | Composite = None  # one agent's "observation"
        self.action_spec: TensorSpec = None  # one agent's "action"
        self.convert: _ActionConverter = None
        self.mask_in = None  # where the action mask comes from: "observation", "info", None
        self.mask_shape: tuple = ()
        self.info_specs: dict[str, TensorSpec] = {}  # one agent's info entries
        # the group's "observation" spec when the agents' arrays may be stacked before one
        # encode (a continuous leaf spec): one conversion per step instead of one per agent
        self.stacked_obs: TensorSpec | None = None
        # the numpy dtype of stacked_obs: arrays of it and of its shape are taken as they are
        self.stacked_np_dtype: np.dtype | None = None
        self.batch_size = torch.Size((len(agents),))


class PettingZooWrapper(ForwardsToWrapped, EnvBase):
    """Wrap a PettingZoo env: a ``pettingzoo.ParallelEnv`` or a ``pettingzoo.AECEnv``.

    Args:
        env: the PettingZoo env.
        return_state: add the env's global state (``env.state()``) as ``"state"`` at the
            root (not every env has one: ``ValueError`` if it has none).
        group_map: how agents are stacked into groups: a :class:`MarlGroupMapType` or a
            dict ``{group: [agent, ...]}``. Default (None): for a parallel env, agents named
            ``<name>_<int>`` go into group ``<name>`` (MPE's ``adversary_0`` into
            ``"adversary"``, ``agent_0``, ``agent_1`` into ``"agent"``), any other agent into
            a group of its own; for an AEC env, one group per agent. Agents of one group must
            have the same observation and action spaces.
        use_mask: add ``(group, "mask")``, bool ``[n_agents]``: the agents that act at the
            next step (AEC: the one ``agent_selection``; parallel: the agents still in the
            env). Required for AEC envs and for parallel envs whose agents leave before the
            episode ends (without it the step where an agent leaves raises ``ValueError``).
        categorical_actions: discrete actions as indices (:class:`Categorical`, default) or
            one-hot vectors (:class:`OneHot`).
        seed: the seed of the first reset (done when the env is built).
        done_on_any: the root ``done`` is set when any agent is done (True) or when all are
            (False). Default (None): any for parallel envs, all for AEC envs.
        device: the device of the output tensors (None: CPU, unset on TensorDicts).
        batch_size: must be empty (one env; batch several with
            :class:`~streamrl.envs.SerialEnv` / :class:`~streamrl.envs.ParallelEnv`).

    Each group ``g`` of ``n`` agents has ``(g, "observation")`` ``[n, ...]`` (a Dict
    observation space gives a TensorDict of its entries), ``(g, "action")``,
    ``("next", g, "reward")`` float32 ``[n, 1]`` and ``(g, "done"/"terminated"/"truncated")``
    ``[n, 1]``; the root ``done``/``terminated``/``truncated`` ``[1]`` say whether the
    episode is over (see ``done_on_any``). Numeric entries of PettingZoo's infos (those the
    first reset returns) go to ``(g, "info", key)`` as float32.

    Action masks: when an agent's observation is a dict with an ``"action_mask"`` entry, or
    its info has one, the group gets ``(g, "action_mask")`` (bool, the one-hot shape of the
    action) and the mask of the action spec is updated after every reset and step, so that
    ``env.rand_action`` draws legal actions; agents that do not act have every action
    allowed.

    Agents that finish before the others (``use_mask``): the step where an agent finishes
    writes its observation, reward and flags as PettingZoo gives them; at later steps it is
    absent from PettingZoo's outputs: its observation, reward and infos are zeros, its
    ``done`` is set, and its ``terminated``/``truncated`` are PettingZoo's last ones (True
    where PettingZoo no longer says), as in TorchRL. In an AEC env the step of an agent that
    is done but not yet removed sends PettingZoo the ``None`` action its API requires.

    ``set_seed(s)`` seeds the next reset (``env.reset(seed=s)``). Attributes the wrapper does
    not have are read from the PettingZoo env (``agents``, ``possible_agents``,
    ``agent_selection``...).

    >>> from mpe2 import simple_adversary_v3
    >>> env = PettingZooWrapper(simple_adversary_v3.parallel_env(max_cycles=5))
    >>> env.group_map
    {'adversary': ['adversary_0'], 'agent': ['agent_0', 'agent_1']}
    >>> td = env.rollout(5)
    >>> td["next", "agent", "reward"].shape, td["next", "done"].shape
    (torch.Size([5, 2, 1]), torch.Size([5, 1]))
    >>> env.close()
    """

    available_envs = _AvailableEnvs()
    git_url = "https://github.com/Farama-Foundation/PettingZoo"
    libname = "pettingzoo"

    def __init__(
        self,
        env: Any = None,
        return_state: bool = False,
        group_map: MarlGroupMapType | dict[str, list[str]] | None = None,
        use_mask: bool = False,
        categorical_actions: bool = True,
        seed: int | None = None,
        done_on_any: bool | None = None,
        *,
        device: Any = None,
        batch_size: Any = None,
    ) -> None:
        import pettingzoo

        if env is None:
            raise TypeError("PettingZooWrapper needs env=, a pettingzoo ParallelEnv or AECEnv")
        if not isinstance(env, pettingzoo.ParallelEnv | pettingzoo.AECEnv):
            raise TypeError(f"PettingZooWrapper expects a pettingzoo ParallelEnv or AECEnv, "
                            f"found {type(env).__name__}")
        for name, value in (("return_state", return_state), ("use_mask", use_mask),
                            ("categorical_actions", categorical_actions)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, found {value!r}")
        if done_on_any is not None and not isinstance(done_on_any, bool):
            raise TypeError(f"done_on_any must be a bool or None, found {done_on_any!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None, found {seed!r}")
        if batch_size is not None and tuple(batch_size) != ():
            raise ValueError(f"a PettingZoo env is one env: batch_size must be empty, found "
                             f"{tuple(batch_size)} (batch envs with SerialEnv or ParallelEnv)")
        parallel = isinstance(env, pettingzoo.ParallelEnv)
        if not parallel and not use_mask:
            raise ValueError("PettingZooWrapper: an AEC env (one agent acts per step) needs "
                             "use_mask=True, to say which agent acts; found use_mask=False")
        super().__init__(device=device, batch_size=(), allow_done_after_reset=True)
        self._env = env
        self.parallel = parallel
        self.return_state = return_state
        self.use_mask = use_mask
        self.categorical_actions = categorical_actions
        self.seed = seed
        self.done_on_any = parallel if done_on_any is None else done_on_any
        agents = list(env.possible_agents)
        if group_map is None:
            group_map = _default_group_map(agents, parallel)
        self.group_map = resolve_group_map(group_map, agents)
        self._groups = [_Group(g, a) for g, a in self.group_map.items()]
        for group in self._groups:
            self._make_group_specs(group)
        self._next_seed = seed
        # the first reset: the infos (and where action masks come from) are known after it
        obs, infos = self._env_reset()
        self._make_specs(infos)
        self._first = (obs, infos)
        # TorchRL's attribute: the groups that have an "action_mask"
        self.has_action_mask = {g.name: g.mask_in is not None for g in self._groups}

    # ---------------------------------------------------------------- specs
    def _make_group_specs(self, group: _Group) -> None:
        env = self._env
        first = group.agents[0]
        for what, space_of in (("observation", env.observation_space),
                               ("action", env.action_space)):
            expected = space_of(first)
            for agent in group.agents[1:]:
                found = space_of(agent)
                if found != expected:
                    raise ValueError(
                        f"group_map: group {group.name!r} stacks agents whose {what} spaces "
                        f"differ, so ({group.name!r}, {what!r}) cannot hold them: expected "
                        f"{expected} (agent {first!r}), found {found} (agent {agent!r}); put "
                        "them in separate groups"
                    )
        action_space = env.action_space(first)
        action = spec_from_gym_space(action_space, self.categorical_actions, self.device)
        if not isinstance(action, TensorSpec):
            raise TypeError(f"PettingZooWrapper: group {group.name!r}: unsupported action "
                            f"space {action_space} (Dict and Tuple actions are not supported)")
        group.action_spec = action
        group.convert = _ActionConverter(action, action_space)
        one_hot = getattr(action, "to_one_hot_spec", None)
        group.mask_shape = tuple((one_hot() if one_hot else action).shape)
        obs = spec_from_gym_space(env.observation_space(first), False, self.device)
        if isinstance(obs, Composite) and "action_mask" in obs.keys():
            del obs["action_mask"]
            group.mask_in = "observation"
        group.obs_spec = obs
        if isinstance(obs, TensorSpec) and obs.domain == "continuous":
            group.stacked_obs = obs.expand(len(group.agents), *obs.shape)
            group.stacked_np_dtype = torch.empty((), dtype=obs.dtype).numpy().dtype

    def _make_specs(self, infos: Mapping[str, Any]) -> None:
        dev = self.device
        observation = Composite(shape=(), device=dev)
        actions = Composite(shape=(), device=dev)
        rewards = Composite(shape=(), device=dev)
        dones = Composite({k: _flag_spec((1,), dev) for k in _FLAGS}, shape=(), device=dev)
        for g in self._groups:
            n = len(g.agents)
            self._make_info_specs(g, infos)
            obs = Composite({"observation": g.obs_spec.expand(n, *g.obs_spec.shape)},
                            shape=(n,), device=dev)
            if g.mask_in is not None:
                obs["action_mask"] = _flag_spec((n, *g.mask_shape), dev)
            if self.use_mask:
                obs["mask"] = _flag_spec((n,), dev)
            if g.info_specs:
                obs["info"] = Composite({k: s.expand(n, *s.shape)
                                         for k, s in g.info_specs.items()},
                                        shape=(n,), device=dev)
            observation[g.name] = obs
            spec = g.action_spec
            actions[g.name] = Composite({"action": spec.expand(n, *spec.shape)}, shape=(n,),
                                        device=dev)
            rewards[g.name] = Composite(
                {"reward": Unbounded((n, 1), device=dev, dtype=torch.float32)}, shape=(n,),
                device=dev)
            dones[g.name] = Composite({k: _flag_spec((n, 1), dev) for k in _FLAGS},
                                      shape=(n,), device=dev)
        if self.return_state:
            observation["state"] = self._state_spec()
        self.observation_spec = observation
        self.action_spec = actions
        self.reward_spec = rewards
        self.done_spec = dones

    def _make_info_specs(self, g: _Group, infos: Mapping[str, Any]) -> None:
        """The numeric info entries every agent of the group has, with one shape (an
        ``"action_mask"`` entry is the group's action mask instead)."""
        per_agent = [infos.get(agent) or {} for agent in g.agents]
        if any("action_mask" in info for info in per_agent) and g.mask_in is None:
            g.mask_in = "info"
        specs: dict[str, TensorSpec] = {}
        for key, value in per_agent[0].items():
            if key == "action_mask" or not isinstance(key, str) or not is_numeric(value):
                continue
            shape = np.shape(value)
            if all(key in info and is_numeric(info[key]) and np.shape(info[key]) == shape
                   for info in per_agent[1:]):
                specs[key] = Unbounded(shape, device=self.device,
                                       dtype=torch.get_default_dtype())
        g.info_specs = specs

    def _state_spec(self) -> TensorSpec:
        space = getattr(self._env, "state_space", None)
        if space is not None:
            return spec_from_gym_space(space, False, self.device)
        try:
            example = np.asarray(self._env.state())
        except (NotImplementedError, AttributeError) as err:
            raise ValueError(f"return_state=True: the PettingZoo env {self._env} has no global "
                             f"state ({type(err).__name__}: {err})") from err
        return Unbounded(example.shape, device=self.device,
                         dtype=torch.as_tensor(example).dtype)

    # ------------------------------------------------------------- PettingZoo
    def _env_reset(self) -> tuple[dict, dict]:
        seed, self._next_seed = self._next_seed, None
        env = self._env
        if self.parallel:
            obs, infos = env.reset(seed=seed)
            return dict(obs), dict(infos)
        env.reset(seed=seed)
        return {a: env.observe(a) for a in env.agents}, dict(env.infos)

    def _acting(self) -> set[str]:
        """The agents that act at the next step."""
        env = self._env
        if self.parallel:
            return set(env.agents)
        return {env.agent_selection} if env.agents else set()

    def _env_step(self, values: Any) -> tuple[dict, dict, dict, dict, dict]:
        """Step the PettingZoo env with the groups' actions read from ``values`` (a
        TensorDict, or a dict of leaves by key); PettingZoo's five dicts."""
        env = self._env
        if self.parallel:
            live = set(env.agents)
            actions = {}
            for g in self._groups:
                rows = self._group_action(values, g)
                for i, agent in enumerate(g.agents):
                    if agent in live:
                        actions[agent] = g.convert.from_numpy(rows[i])
            obs, rewards, terms, truncs, infos = env.step(actions)
            return dict(obs), dict(rewards), dict(terms), dict(truncs), dict(infos)
        agent = env.agent_selection
        g = next(g for g in self._groups if agent in g.agents)
        rows = self._group_action(values, g)
        if env.terminations.get(agent) or env.truncations.get(agent):
            env.step(None)  # a done agent's step (PettingZoo's AEC API takes no action)
        else:
            env.step(g.convert.from_numpy(rows[g.agents.index(agent)]))
        obs = {a: env.observe(a) for a in env.agents}
        return (obs, dict(env.rewards), dict(env.terminations), dict(env.truncations),
                dict(env.infos))

    def _group_action(self, values: Any, g: _Group) -> np.ndarray:
        # checked (and cast) by EnvBase.step, or by the stepping protocol's caller
        key = (g.name, "action")
        action = values.get(key, None)
        if action is None:
            found = (values.keys(True, True) if isinstance(values, TensorDictBase)
                     else values.keys())
            raise KeyError(f"step: missing action key {key!r}; found keys "
                           f"{sorted(map(str, found))}")
        return action.detach().cpu().numpy()

    # ----------------------------------------------------------- TensorDicts
    def _output(self, obs: dict, rewards: dict | None, terms: dict, truncs: dict,
                infos: dict) -> TensorDict:
        """The reset (``rewards`` None) or step output of PettingZoo's dicts."""
        out = self._output_entries(obs, rewards, terms, truncs, infos)
        for g in self._groups:
            out[g.name] = TensorDict._new_unsafe(out[g.name], batch_size=g.batch_size)
        return TensorDict._new_unsafe(out, batch_size=torch.Size(()))

    def _output_entries(self, obs: dict, rewards: dict | None, terms: dict, truncs: dict,
                        infos: dict) -> dict[str, Any]:
        """:meth:`_output`'s entries: each group's as a dict (its ``"info"`` a TensorDict)."""
        acting = self._acting() if (self.use_mask or any(g.mask_in for g in self._groups)) \
            else set()
        out: dict[str, Any] = {}
        # every agent's flags, group after group: [terminated], [truncated]
        all_terms: list[bool] = []
        all_truncs: list[bool] = []
        for g in self._groups:
            n = len(g.agents)
            stacked = self._stacked_obs(g, obs)  # None unless every agent is there
            observations = []
            terms_g: list[bool] = []
            truncs_g: list[bool] = []
            for agent in g.agents:
                if agent in obs:
                    if stacked is None:
                        observations.append(self._encode_obs(g, obs[agent]))
                    terms_g.append(bool(terms.get(agent, False)))
                    truncs_g.append(bool(truncs.get(agent, False)))
                    continue
                if not self.use_mask:
                    raise ValueError(
                        f"PettingZooWrapper: agent {agent!r} of group {g.name!r} is not in "
                        f"the env's agents {list(self._env.agents)} (it left the env, or "
                        "the episode ended and the env was not reset): expected every agent "
                        "of the group_map; pass use_mask=True for an env whose agents leave "
                        "before the episode ends"
                    )
                observations.append(g.obs_spec.zero())
                # (an agent not there at a reset is not done)
                gone = rewards is not None
                terms_g.append(gone and bool(terms.get(agent, True)))
                truncs_g.append(gone and bool(truncs.get(agent, True)))
            all_terms += terms_g
            all_truncs += truncs_g
            dones_g = [a or b for a, b in zip(terms_g, truncs_g, strict=True)]
            flags = torch.from_numpy(np.array([dones_g, terms_g, truncs_g], dtype=bool)
                                     .reshape(3, n, 1)).unbind(0)
            td: dict[str, Any] = {
                "observation": torch.stack(observations) if stacked is None else stacked}
            if g.mask_in is not None:
                td["action_mask"] = self._action_mask(g, obs, infos, acting)
            if self.use_mask:
                td["mask"] = torch.tensor([a in acting for a in g.agents], dtype=torch.bool)
            if g.info_specs:
                td["info"] = self._infos(g, obs, infos)
            for k, flag in zip(_FLAGS, flags, strict=True):
                td[k] = flag
            if rewards is not None:
                td["reward"] = torch.from_numpy(np.array(
                    [[rewards.get(a, 0.0) if a in obs else 0.0] for a in g.agents],
                    dtype=np.float32))
            out[g.name] = td
        if self.return_state:
            out["state"] = self.full_observation_spec["state"].encode(
                self._env.state(), ignore_device=True)
        all_dones = [a or b for a, b in zip(all_terms, all_truncs, strict=True)]
        if self.done_on_any:
            done, term, trunc = any(all_dones), any(all_terms), any(all_truncs)
        else:
            # every agent done: terminated when every one terminated, else truncated
            done, term = all(all_dones), all(all_terms)
            trunc = done and not term
        if rewards is None:
            done = term = trunc = False
        root_flags = torch.from_numpy(np.array([[done], [term], [trunc]], dtype=bool))
        for k, v in zip(_FLAGS, root_flags.unbind(0), strict=True):
            out[k] = v
        return out

    def _stacked_obs(self, g: _Group, obs: dict) -> torch.Tensor | None:
        """The group's observations encoded at once, or None (an agent missing, a spec or
        arrays that do not stack: the caller encodes them one by one)."""
        if g.stacked_obs is None:
            return None
        values = [obs.get(agent) for agent in g.agents]
        if any(v is None for v in values):
            return None
        try:
            stacked = np.array(values)  # (np.stack's checks cost 4x more per step)
            if stacked.dtype == object:  # not arrays of one shape
                return None
            if stacked.dtype == g.stacked_np_dtype and stacked.shape == g.stacked_obs.shape:
                return torch.from_numpy(stacked)  # a new array: nothing else holds it
            return g.stacked_obs.encode(stacked, ignore_device=True)
        except (ValueError, TypeError, RuntimeError):
            return None

    def _encode_obs(self, g: _Group, value: Any) -> Any:
        if g.mask_in == "observation" and isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if k != "action_mask"}
        return g.obs_spec.encode(value, ignore_device=True)

    def _action_mask(self, g: _Group, obs: dict, infos: dict, acting: set[str]
                     ) -> torch.Tensor:
        """The group's action masks (every action allowed for agents that do not act); the
        action spec's mask is updated to them."""
        mask = np.ones((len(g.agents), *g.mask_shape), dtype=bool)
        for i, agent in enumerate(g.agents):
            if agent not in acting:
                continue
            src = obs.get(agent) if g.mask_in == "observation" else infos.get(agent)
            if isinstance(src, Mapping) and "action_mask" in src:
                mask[i] = np.asarray(src["action_mask"], dtype=bool).reshape(g.mask_shape)
        spec = self.full_action_spec[g.name, "action"]
        tensor = torch.from_numpy(mask)
        if isinstance(spec, Categorical | OneHot):
            spec.update_mask(samplable_mask(tensor))
        return tensor

    def _infos(self, g: _Group, obs: dict, infos: dict) -> TensorDict:
        n = len(g.agents)
        src = {}
        for key, spec in g.info_specs.items():
            rows = spec.zero().expand(n, *spec.shape).clone()
            for i, agent in enumerate(g.agents):
                value = (infos.get(agent) or {}).get(key) if agent in obs else None
                if value is not None and is_numeric(value):
                    rows[i] = spec.encode(value, ignore_device=True)
            src[key] = rows
        return TensorDict._new_unsafe(src, batch_size=torch.Size((n,)))

    # ----------------------------------------------------------- EnvBase hooks
    def _reset(self, tensordict: TensorDictBase | None, **kwargs: Any) -> TensorDictBase:
        first, self._first = self._first, None
        obs, infos = first if first is not None else self._env_reset()
        return self._output(obs, None, {}, {}, infos)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        self._first = None
        return self._output(*self._env_step(tensordict))

    def _step_leaves(self, root: dict) -> dict:
        """:meth:`_step` on leaves (the leaf loop's step, :mod:`streamrl.envs._leaf_steps`):
        the actions read from ``root``'s ``(group, "action")`` entries, the step's entries
        returned flat."""
        self._first = None
        return leaves_of(self._output_entries(*self._env_step(root)))

    def _set_seed(self, seed: int | None) -> None:
        self.seed = seed
        self._next_seed = seed
        self._first = None  # the next reset is a fresh one, with this seed

    # ------------------------------------------------------------- run state
    def _capture_state(self) -> dict[str, Any]:
        # the MPE scenarios whose state is known (see _mpe_state); others raise
        return {"mpe": _mpe_state.capture(self._env), "next_seed": self._next_seed,
                "first": None if self._first is None else encode_plain(list(self._first))}

    def _check_state(self, state: Any) -> None:
        self._check_state_keys(state, {"mpe", "next_seed", "first"})
        _mpe_state.check(self._env, state["mpe"])
        first = state["first"]
        if first is not None and not (isinstance(first, list) and len(first) == 2):
            raise ValueError(f"PettingZooWrapper state: 'first' must be None or the first "
                             f"reset's [observations, infos], found {type(first).__name__}")

    def _restore_state(self, state: Any) -> None:
        _mpe_state.restore(self._env, state["mpe"])
        self._next_seed = state["next_seed"]
        first = state["first"]
        self._first = None if first is None else tuple(decode_plain(first))

    def _close(self) -> None:
        self._env.close()

    @property
    def lib(self) -> Any:
        """The pettingzoo module."""
        import pettingzoo

        return pettingzoo

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(env={self._env}, parallel={self.parallel}, "
                f"group_map={self.group_map}, batch_size={self.batch_size}, "
                f"device={self.device})")


class PettingZooEnv(PettingZooWrapper):
    """A PettingZoo task made from its name: ``PettingZooEnv("simple_spread_v3",
    parallel=True)`` builds ``simple_spread_v3.parallel_env(**kwargs)`` (``parallel=False``:
    the AEC ``env(**kwargs)``) and wraps it as :class:`PettingZooWrapper` does.

    ``task`` is ``"<family>/<task>"`` (``"mpe/simple_spread_v3"``, ``"classic/tictactoe_v3"``)
    or ``"<task>"``; MPE tasks come from the ``mpe2`` package. ``return_state``,
    ``group_map``, ``use_mask``, ``categorical_actions``, ``seed``, ``done_on_any``,
    ``device`` and ``batch_size`` are :class:`PettingZooWrapper`'s (same defaults, as in
    TorchRL 0.14); other keyword arguments go to the task's constructor (``N=3``,
    ``max_cycles=25``, ``continuous_actions=True``...). ``PettingZooEnv.available_envs`` lists
    the tasks of the installed families.

    >>> env = PettingZooEnv("simple_spread_v3", parallel=True, max_cycles=10)
    >>> env.group_map
    {'agent': ['agent_0', 'agent_1', 'agent_2']}
    >>> env.action_spec.shape, env.reward_keys
    (torch.Size([3]), [('agent', 'reward')])
    >>> env.close()
    """

    def __init__(
        self,
        task: str,
        parallel: bool,
        return_state: bool = False,
        group_map: MarlGroupMapType | dict[str, list[str]] | None = None,
        use_mask: bool = False,
        categorical_actions: bool = True,
        seed: int | None = None,
        done_on_any: bool | None = None,
        *,
        device: Any = None,
        batch_size: Any = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(parallel, bool):
            raise TypeError(f"parallel must be a bool, found {parallel!r}")
        module = _task_module(task)
        env = module.parallel_env(**kwargs) if parallel else module.env(**kwargs)
        self.task_name = task
        try:
            super().__init__(env, return_state=return_state, group_map=group_map,
                             use_mask=use_mask, categorical_actions=categorical_actions,
                             seed=seed, done_on_any=done_on_any, device=device,
                             batch_size=batch_size)
        except BaseException:
            env.close()
            raise

    def __repr__(self) -> str:
        return (f"PettingZooEnv(task={self.task_name!r}, parallel={self.parallel}, "
                f"group_map={self.group_map}, batch_size={self.batch_size}, "
                f"device={self.device})")
