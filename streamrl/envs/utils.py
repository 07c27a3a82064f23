"""Env utilities: ``step_mdp`` (move ``"next"`` to the root), spec checks, exploration type.

This module is the one home of the exploration type (which value a stochastic policy emits:
a sample, the mode, the mean or a deterministic value), as in TorchRL. streamrl uses
tensordict's interaction type directly, so ``set_exploration_type`` also steers tensordict's
own ``ProbabilisticTensorDictModule`` (as the seed tutorial relies on); :mod:`streamrl.envs`
and :mod:`streamrl.modules` re-export these names.

>>> with set_exploration_type(ExplorationType.MODE):
...     exploration_type() is ExplorationType.MODE
True
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
from tensordict import NonTensorData, NonTensorStack, TensorDict, TensorDictBase
from tensordict.nn import InteractionType as ExplorationType
from tensordict.nn import interaction_type as _interaction_type
from tensordict.nn import set_interaction_type as set_exploration_type

from streamrl.data.specs import Composite, NonTensor, TensorSpec, Unbounded
from streamrl.envs.done_signals import make_tensordict, terminated_or_truncated
from streamrl.envs.marl_groups import MarlGroupMapType, check_marl_grouping

__all__ = [
    "ExplorationType",
    "MarlGroupMapType",
    "RandomPolicy",
    "check_env_specs",
    "check_marl_grouping",
    "exploration_type",
    "make_composite_from_td",
    "make_tensordict",
    "set_exploration_type",
    "step_mdp",
    "terminated_or_truncated",
]

_DONE = ("done", "terminated", "truncated")


def exploration_type() -> ExplorationType | None:
    """Return the exploration type currently set, or ``None`` when none is set (modules then
    use their own default, RANDOM for probabilistic actors)."""
    return _interaction_type()


def _as_keys(keys: Any) -> tuple:
    if isinstance(keys, str | tuple):
        return (keys,)
    return tuple(keys)


def make_composite_from_td(
    data: TensorDictBase, *, unsqueeze_null_shapes: bool = True, dynamic_shape: bool = False
) -> Composite:
    """A :class:`Composite` spec of ``data``: an :class:`Unbounded` spec of each tensor's
    shape, dtype and device (a :class:`NonTensor` spec of each non-tensor entry, with its
    value as example), nested as ``data`` is, with ``data``'s batch size as shape.

    Args:
        data: the TensorDict to describe.
        unsqueeze_null_shapes: a 0-d tensor gets the shape ``(1,)`` (default True).
        dynamic_shape: the last dim of every tensor is ``-1`` (any size); each tensor needs
            a dim past the batch dims.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> data = TensorDict({"obs": torch.zeros(3), "next": {"reward": torch.tensor(0.0)}}, [])
    >>> spec = make_composite_from_td(data)
    >>> spec["obs"].shape, spec["next", "reward"].shape, spec["obs"].dtype
    (torch.Size([3]), torch.Size([1]), torch.float32)
    >>> make_composite_from_td(data, dynamic_shape=True)["obs"].shape
    torch.Size([-1])
    """
    if not isinstance(data, TensorDictBase):
        raise TypeError(f"make_composite_from_td expects a TensorDict, found {type(data).__name__}")
    nb = data.batch_dims

    def leaf(key: str, value: Any) -> Any:
        if isinstance(value, TensorDictBase) and not _is_non_tensor(value):
            return Composite({k: leaf(k, v) for k, v in value.items()}, shape=value.batch_size,
                             device=value.device)
        if _is_non_tensor(value):
            return NonTensor(shape=value.batch_size, device=value.device,
                             example_data=value.tolist() if value.batch_size else value.data)
        shape = list(value.shape)
        if not shape and unsqueeze_null_shapes:
            shape = [1]
        if dynamic_shape:
            if len(shape) <= nb:
                raise ValueError(
                    f"dynamic_shape: entry {key!r} of shape {tuple(shape)} has no dim past the "
                    f"batch dims {tuple(data.batch_size)} to make dynamic"
                )
            shape[-1] = -1
        return Unbounded(shape, device=value.device, dtype=value.dtype)

    return Composite({k: leaf(k, v) for k, v in data.items()}, shape=data.batch_size,
                     device=data.device)


def _is_non_tensor(value: Any) -> bool:
    return isinstance(value, NonTensorData | NonTensorStack)


def step_mdp(
    tensordict: TensorDictBase,
    next_tensordict: TensorDictBase | None = None,
    keep_other: bool = True,
    exclude_reward: bool = True,
    exclude_done: bool = False,
    exclude_action: bool = True,
    reward_keys: Any = "reward",
    done_keys: Sequence[Any] = _DONE,
    action_keys: Any = "action",
) -> TensorDictBase:
    """Return the root tensordict of the next step: ``tensordict["next"]``'s entries moved
    to the root (``obs = next_obs``), plus the other root entries when ``keep_other``.

    The action and reward are dropped by default (``exclude_action``/``exclude_reward``),
    the done flags kept. When ``next_tensordict`` is given the result is written into it.

    >>> import torch
    >>> td = TensorDict({"observation": torch.zeros(3), "action": torch.ones(1),
    ...                  "next": {"observation": torch.ones(3), "reward": torch.ones(1)}}, [])
    >>> sorted(step_mdp(td).keys())
    ['observation']
    """
    nxt = tensordict.get("next", None)
    if nxt is None:
        raise KeyError(f"step_mdp: no 'next' entry; found keys {list(tensordict.keys())}")
    root_excluded, root_heads, next_excluded, next_heads = _exclusions(
        _as_keys(reward_keys) if exclude_reward else (),
        _as_keys(done_keys) if exclude_done else (),
        _as_keys(action_keys) if exclude_action else ())
    src = None if root_heads or next_heads else _flat_step(tensordict, nxt, keep_other,
                                                             root_excluded, next_excluded)
    if src is None:  # an agent group under both: merged entry by entry
        src = {}
        if keep_other:
            _carry(src, tensordict, root_excluded, root_heads, ())
        _carry(src, nxt, next_excluded, next_heads, ())
    if next_tensordict is not None:
        next_tensordict.update(src)
        return next_tensordict
    return TensorDict._new_unsafe(src, batch_size=tensordict.batch_size, device=tensordict.device)


_NO_HEADS: frozenset = frozenset()


@functools.lru_cache(maxsize=64)
def _exclusions(rewards: tuple, dones: tuple, actions: tuple) -> tuple:
    """``(root excluded, root heads, next excluded, next heads)`` (see :func:`_unravel`) of
    the excluded keys: the same few key sets at every step of a rollout, computed once."""
    excl_next = {*rewards, *dones}
    root_excluded, root_heads = _unravel({*excl_next, "next", *actions})
    next_excluded, next_heads = _unravel(excl_next)
    return root_excluded, root_heads, next_excluded, next_heads


def _unravel(keys: set) -> tuple[set, set]:
    """``keys`` with one-element tuple keys as strings (``("action",)`` is ``"action"``), and
    the paths of the nested TensorDicts that hold one of them (``("agents",)`` for
    ``("agents", "reward")``): only those are rebuilt entry by entry."""
    for k in keys:
        if type(k) is tuple:
            break
    else:
        return keys, _NO_HEADS
    flat = {k[0] if isinstance(k, tuple) and len(k) == 1 else k for k in keys}
    heads = {k[:i] for k in flat if isinstance(k, tuple) for i in range(1, len(k))}
    return flat, heads


def _flat_step(root: TensorDictBase, nxt: TensorDictBase, keep_other: bool,
               root_excluded: set, next_excluded: set) -> dict | None:
    """:func:`step_mdp`'s entries when no group needs merging (the single-agent case, every
    step of a rollout: two loops), ``None`` when a nested TensorDict of ``nxt`` is also one
    of the root's (an agent group: :func:`_carry` merges them)."""
    src: dict = {}
    if keep_other:
        for k, v in root.items():
            if k not in root_excluded:
                src[k] = v
    for k, v in nxt.items():
        if k in next_excluded:
            continue
        if type(v) is torch.Tensor or not isinstance(v, TensorDictBase):
            src[k] = v
        elif isinstance(src.get(k), TensorDictBase):
            return None
        else:
            # a new sub-tensordict: a reset that updates the root in place must not write
            # into the step's "next"
            src[k] = v.copy()
    return src


def _carry(dest: dict, td: TensorDictBase, excluded: set, heads: set, prefix: tuple) -> None:
    """Copy the entries of ``td`` not in ``excluded`` into ``dest`` (keys relative to
    ``prefix``). A nested TensorDict (an agent group) is merged with the one ``dest`` holds
    under its key (as TorchRL's ``step_mdp`` does: a group's root entries and its next
    entries end up side by side) into a new TensorDict, so that a reset updating the
    result in place never writes into the step's ``"next"``; one whose entries are all
    excluded is left out (a reset output has none: stacking the steps would fail)."""
    for k, v in td.items():
        key = (*prefix, k) if prefix else k
        if key in excluded:
            continue
        if type(v) is torch.Tensor or not isinstance(v, TensorDictBase) or _is_non_tensor(v):
            dest[k] = v
            continue
        path = (*prefix, k)
        held = dest.get(k)
        if path not in heads and not isinstance(held, TensorDictBase):
            dest[k] = v.copy()  # nothing to merge nor to leave out: a shallow copy
            continue
        sub = dict(held.items()) if isinstance(held, TensorDictBase) and not \
            _is_non_tensor(held) else {}
        _carry(sub, v, excluded, heads, path)
        if sub or v.is_empty():
            dest[k] = TensorDict._new_unsafe(sub, batch_size=v.batch_size, device=v.device)


def check_env_specs(
    env: Any,
    return_contiguous: bool | None = None,
    check_dtype: bool = True,
    seed: int | None = None,
    tensordict: TensorDictBase | None = None,
    break_when_any_done: bool | str | None = None,
    steps: int = 3,
) -> None:
    """Run a short rollout of ``env`` and check that every entry matches the env's specs
    (TorchRL's arguments).

    ``seed`` seeds the env first; ``tensordict`` is the root to start from (no reset);
    ``check_dtype=False`` skips the dtype comparison; ``break_when_any_done`` (None: False)
    stops at the first done step, ``"both"`` checks both ways. ``return_contiguous`` may be
    None or True only (streamrl's rollouts are always contiguous). Raises ``KeyError`` for a
    missing or extra key and ``TypeError``/``ValueError`` for a dtype, shape or value outside
    its spec.

    >>> from streamrl.envs.libs.gym import GymEnv
    >>> with GymEnv("CartPole-v1") as env:
    ...     check_env_specs(env, seed=0, break_when_any_done="both")
    """
    if return_contiguous is False:
        raise ValueError("check_env_specs: return_contiguous=False (lazy stacks) is not "
                         "supported; streamrl's rollouts are contiguous")
    if break_when_any_done == "both":
        for brk in (True, False):
            check_env_specs(env, None, check_dtype, seed, tensordict, brk, steps)
        return
    if break_when_any_done not in (None, True, False):
        raise ValueError(f"break_when_any_done must be a bool, None or 'both', found "
                         f"{break_when_any_done!r}")
    if seed is not None:
        env.set_seed(seed)
    from streamrl.envs.stepping import run_steps  # stepping imports this module

    # the plain loop (no preallocated buffers, which would cast what the env returns): what
    # the env itself produces is checked
    root = env.reset() if tensordict is None else tensordict.clone()
    td, _ = run_steps(env, root, steps, break_when_any_done=bool(break_when_any_done),
                      buffered=False)
    batch = (*env.batch_size, td.shape[len(env.batch_size)])
    fake = env.fake_tensordict().unsqueeze(-1).expand(*batch)
    expected = set(fake.keys(True, True))
    found = set(td.keys(True, True))
    if expected != found:
        raise KeyError(
            f"rollout keys differ from the specs: missing {sorted(map(str, expected - found))}, "
            f"extra {sorted(map(str, found - expected))}"
        )
    for key in expected:
        a, b = fake.get(key), td.get(key)
        if (check_dtype and a.dtype != b.dtype) or a.shape != b.shape:
            raise TypeError(
                f"{key!r}: spec says shape {tuple(a.shape)} dtype {a.dtype}, rollout has "
                f"shape {tuple(b.shape)} dtype {b.dtype}"
            )
    obs = env.full_observation_spec
    for key in obs.keys(True, True):
        spec = obs[key]
        for where in (key, ("next", *((key,) if isinstance(key, str) else key))):
            val = td.get(where)
            if not check_dtype:
                val = val.to(spec.dtype)
            if not spec.is_in(val.movedim(len(env.batch_size), 0)):
                raise ValueError(f"{where!r} holds values outside its spec")


class RandomPolicy:
    """A policy that writes a random action drawn from ``action_spec`` (TorchRL's
    ``RandomPolicy``): ``policy(td)`` sets ``td[action_key]`` (a :class:`Composite` spec sets
    all its entries) and returns ``td``.

    >>> from streamrl.data import Categorical
    >>> policy = RandomPolicy(Categorical(2))
    >>> policy(TensorDict())["action"].shape
    torch.Size([])
    """

    def __init__(self, action_spec: Any, action_key: Any = "action") -> None:
        if not isinstance(action_spec, TensorSpec | Composite):
            raise TypeError(
                f"action_spec must be a TensorSpec or Composite, found {type(action_spec).__name__}"
            )
        self.action_spec = action_spec
        self.action_key = action_key
        self._composite = isinstance(action_spec, Composite)

    def __call__(self, td: TensorDictBase) -> TensorDictBase:
        if self._composite:
            return td.update(self.action_spec.rand())
        return td.set(self.action_key, self.action_spec.rand())

    def __repr__(self) -> str:
        return f"RandomPolicy(action_spec={self.action_spec!r}, action_key={self.action_key!r})"
