"""The leaf loop: the plain stepping loop without a TensorDict per step.

An env whose class defines ``_step_leaves(root) -> next`` steps on flat dicts of tensors
(keys as ``items(True, True)`` gives them: strings at the root, tuples below): it reads the
actions from the root's leaves and returns the step's ``"next"`` leaves. A PettingZoo wrapper
does: Python-stepped agent groups, where building, checking, ``step_mdp``-ing and stacking
each step's nested TensorDicts costs a sixth of a step.

Once the policy runs as a plan (:class:`~streamrl.envs.stepping._PlainPlan`, from the plain
loop's first step), :func:`run_leaf_steps` takes the plain loop's remaining steps: the same
plan outputs and action projection, the same action checks (``EnvBase._check_actions``), the
same root carried to the next step (``step_mdp``: the action and reward keys dropped, the
``"next"`` entries moved up), the same resets (an unbatched env's ``reset()`` merged in), and
the batch and root built once at the end with the first step's layout: entry for entry what
the plain loop's stacked TensorDicts hold.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from streamrl._utils.plain_td import is_plain


def leaves_of(entries: Any) -> dict:
    """``{key: tensor}`` of nested dicts and TensorDicts (root keys as strings, nested ones as
    tuples: the keys ``TensorDict.items(True, True)`` gives)."""
    out: dict = {}
    for k, v in entries.items():
        if type(v) is torch.Tensor:
            out[k] = v
            continue
        inner = v.items(True, True) if isinstance(v, TensorDictBase) else leaves_of(v).items()
        for k2, v2 in inner:
            out[(k, *k2) if type(k2) is tuple else (k, k2)] = v2
    return out


def leaf_steps_fit(env: Any, steps: list, root: TensorDictBase) -> bool:
    """Whether :func:`run_leaf_steps` may take over from the plain loop: the env steps on
    leaves, keeps :class:`EnvBase`'s step, ``step_mdp`` and reset logic (which the loop
    reproduces), is unbatched and on the CPU, and the steps so far and the root are plain
    TensorDicts of tensors (the layout the loop rebuilds)."""
    from streamrl.envs.common import EnvBase

    cls = type(env)
    return (
        callable(getattr(cls, "_step_leaves", None))
        and all(getattr(cls, name) is getattr(EnvBase, name)
                for name in ("step", "_step_checked", "next_root", "maybe_reset"))
        and not env.batch_size
        and env.device in (None, torch.device("cpu"))
        and all(map(is_plain, steps)) and is_plain(root)
    )


def run_leaf_steps(
    env: Any,
    steps: list,
    root_td: TensorDictBase,
    plan: Any,
    T: int,
    project: bool,
    break_when_any_done: bool,
) -> tuple[TensorDictBase, TensorDictBase]:
    """Steps ``len(steps)..T-1`` of the plain loop from ``root_td`` (``steps``: the steps
    taken, as ``env.step`` returned them), the policy run as ``plan``. Returns ``(batch,
    root)`` as the plain loop does. Checked with :func:`leaf_steps_fit` first."""
    _, action_keys, _, _ = env._action_info()
    dropped_rewards = {_leaf_key(k) for k in env._reward_info()[3]}
    dropped_root = {*dropped_rewards, *map(_leaf_key, action_keys)}
    first = steps[0]
    columns: dict = {k: [] for k in first.keys(True, True)}
    for t, taken in enumerate(steps):
        _append(columns, dict(taken.items(True, True)), {}, t)
    root = dict(root_td.items(True, True))
    step, check = env._step_leaves, env.check_actions
    n = len(steps)
    for t in range(n, T):
        env._check_open()
        root.update(plan.values(env, root, project))
        if check:
            env._check_actions(root, root.__setitem__)
        nxt = step(root)
        _append(columns, root, nxt, t)
        carried = {k: v for k, v in root.items() if k not in dropped_root}
        for k, v in nxt.items():
            if k not in dropped_rewards:
                carried[k] = v
        root, n = carried, t + 1
        done = root.get("done")
        if done is None:
            continue
        if break_when_any_done:
            if bool(done.any()):
                break
        elif done.item() if done.numel() == 1 else bool(done.any()):
            root.update(leaves_of(env.reset()))
    dim = first.batch_dims
    return _stacked_like(first, columns, (), dim, n), _nested(root, first)


def _leaf_key(key: Any) -> Any:
    return key[0] if type(key) is tuple and len(key) == 1 else key


def _append(columns: dict, root: dict, nxt: dict, t: int) -> None:
    """Add step ``t``'s root and ``"next"`` leaves to the columns of the first step's
    keys (a step with other keys than the first is a broken invariant: say which)."""
    if len(root) + len(nxt) == len(columns):
        try:
            for k, v in root.items():
                columns[k].append(v)
            for k, v in nxt.items():
                columns[_under_next(k)].append(v)
            return
        except KeyError:
            pass
    step = set(root) | {_under_next(k) for k in nxt}
    raise RuntimeError(f"leaf loop: step {t} has other entries than the first step: "
                       f"{sorted(map(str, step ^ set(columns)))} differ")


def _under_next(key: Any) -> tuple:
    return ("next", *key) if type(key) is tuple else ("next", key)


def _stacked_like(template: TensorDict, columns: dict, prefix: tuple, dim: int,
                  n: int) -> TensorDict:
    """``template``'s layout with every leaf the stack of its column (the first ``n``
    steps) along ``dim``, as ``stack_steps`` stacks the plain loop's TensorDicts."""
    src: dict = {}
    for k, v in template._tensordict.items():
        path = (*prefix, k)
        if type(v) is torch.Tensor:
            src[k] = torch.stack(columns[path if prefix else k][:n], dim)
        else:
            src[k] = _stacked_like(v, columns, path, dim, n)
    size = list(template.batch_size)
    size.insert(dim, n)
    return TensorDict._new_unsafe(src, batch_size=torch.Size(size), device=template.device)


def _nested(leaves: dict, first: TensorDict) -> TensorDict:
    """The root TensorDict of ``leaves``: nested groups with the batch sizes they have in
    ``first`` (at its root, or else under its ``"next"``)."""
    tree: dict = {}
    for k, v in leaves.items():
        if type(k) is str:
            tree[k] = v
            continue
        node = tree
        for part in k[:-1]:
            node = node.setdefault(part, {})
        node[k[-1]] = v
    nxt = first._tensordict.get("next")
    return _as_td(tree, first, nxt if type(nxt) is TensorDict else None, first.batch_size)


def _as_td(tree: dict, here: TensorDict | None, there: TensorDict | None,
           batch_size: torch.Size) -> TensorDict:
    src: dict = {}
    for k, v in tree.items():
        if type(v) is not dict:
            src[k] = v
            continue
        a = None if here is None else here._tensordict.get(k)
        b = None if there is None else there._tensordict.get(k)
        sub_a = a if type(a) is TensorDict else None
        sub_b = b if type(b) is TensorDict else None
        layout = sub_a if sub_a is not None else sub_b
        if layout is None:
            raise RuntimeError(f"leaf loop: the root's group {k!r} is not in the first step")
        src[k] = _as_td(v, sub_a, sub_b, layout.batch_size)
    return TensorDict._new_unsafe(src, batch_size=batch_size)
