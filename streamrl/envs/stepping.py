"""The stepping loop shared by ``EnvBase.rollout`` and the ``Rollout`` operator.

:func:`run_steps` runs ``T`` steps of an env with a policy (or random actions) and returns them
as one ``[*batch, T]`` TensorDict. Every env steps through one protocol,
:meth:`EnvBase.step_into <streamrl.envs.EnvBase.step_into>`, which writes steps into
preallocated :class:`~streamrl.envs.StepBuffers`: a gymnasium env writes its arrays straight
into them, a batched env hands each sub-env its row, a worker process writes into shared
memory; any other env gets a default built on ``step()``/``reset()``. The result is exactly
what stacking the per-step TensorDicts of the plain loop (``policy``, ``step``, ``step_mdp``,
``maybe_reset``) holds; :func:`run_steps` takes that plain loop itself where buffers cannot
hold the data (entries the policy writes under ``"next"``, nested or non-tensor policy
outputs, several action keys, a per-step ``callback``).

>>> from streamrl.envs.libs.gym import GymEnv
>>> env = GymEnv("CartPole-v1")
>>> batch, root = run_steps(env, env.reset(), 5)
>>> batch.batch_size, batch["next", "reward"].shape, root.batch_size
(torch.Size([5]), torch.Size([5, 1]), torch.Size([]))
>>> env.close()
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from streamrl._utils.plain_td import plain_parent
from streamrl._utils.tensor_plan import run_plan, tensor_plan
from streamrl.envs._leaf_steps import leaf_steps_fit, run_leaf_steps
from streamrl.envs.step_buffers import FLAGS, _td

__all__ = ["run_steps"]

# root entries step_mdp drops (exclude_action, exclude_reward) or collection rewrites
_NOT_CARRIED = frozenset({"action", "reward", "next", "collector", *FLAGS})

Policy = Callable[[TensorDictBase], TensorDictBase]


def run_steps(
    env: Any,
    tensordict: TensorDictBase,
    max_steps: int,
    policy: Policy | None = None,
    *,
    break_when_any_done: bool = False,
    project_actions: bool = False,
    callback: Callable[[Any, TensorDictBase], Any] | None = None,
    buffered: bool = True,
) -> tuple[TensorDictBase, TensorDictBase]:
    """Run up to ``max_steps`` steps of ``policy`` (None: random actions) in ``env`` from the
    root ``tensordict``.

    Returns ``(batch, root)``: ``batch`` holds the steps (``[*batch_size, n]``), ``root`` is
    where the next step starts. Without ``break_when_any_done`` done sub-envs are reset and
    the next root holds their reset observation (``step_and_maybe_reset``); with it the run
    stops after the first step where any sub-env is done (``root`` is then that step's
    ``step_mdp``, not reset).

    ``project_actions``: the policy's actions are projected into the action spec before each
    step. ``callback(env, stepped)`` is called after each step, before any reset (it may
    change the step's done flags, e.g. to truncate long episodes: the reset follows them);
    it needs the plain loop. ``buffered=False`` forces the plain loop, calling the policy on
    each step's TensorDict (the reference the fast paths are compared with).
    """
    if buffered and callback is None:
        res = _run_buffered(env, tensordict, max_steps, policy, break_when_any_done, project_actions)
        if isinstance(res, tuple):
            return res
        if res is not None:  # the policy's first output needs the plain loop: go on from it
            return _run_plain(env, res, max_steps, policy, break_when_any_done, project_actions,
                              callback, True, True)
    return _run_plain(env, tensordict, max_steps, policy, break_when_any_done, project_actions,
                      callback, False, buffered)


# ------------------------------------------------------------------------------ plain loop
def _act(env: Any, td: TensorDictBase, policy: Policy | None, project: bool) -> TensorDictBase:
    if policy is None:
        return env.rand_action(td)
    td = policy(td)
    if project:
        env.full_action_spec.project(td)
    return td


def _run_plain(
    env: Any,
    td: TensorDictBase,
    T: int,
    policy: Policy | None,
    break_when_any_done: bool,
    project: bool,
    callback: Callable[[Any, TensorDictBase], Any] | None,
    acted: bool,
    planned: bool,
) -> tuple[TensorDictBase, TensorDictBase]:
    """One TensorDict per step, stacked. ``acted``: the policy already ran on ``td``.

    ``planned``: after the policy's first call, a policy of plain TensorDict modules (nested
    keys allowed: agent groups) runs as its :func:`tensor_plan` on the root's tensors when
    that writes exactly the entries the call wrote (:class:`_PlainPlan`); without it every
    step calls the policy on its TensorDict (the reference loop)."""
    steps = []
    plan: _PlainPlan | None = None
    probe = planned and policy is not None and T > 1
    leaves = callback is None  # whether to try the leaf loop once the plan is known
    for t in range(T):
        if t or not acted:
            if plan is not None:
                if leaves:
                    leaves = False
                    if leaf_steps_fit(env, steps, td):
                        # the env steps on leaves: the remaining steps without TensorDicts
                        return run_leaf_steps(env, steps, td, plan, T, project,
                                              break_when_any_done)
                td = plan(env, td, project)
            elif probe:
                probe = False
                before = set(td.keys(True, True))
                td = _act(env, td, policy, project)
                plan = _PlainPlan.of(policy, before, td)
            else:
                td = _act(env, td, policy, project)
        stepped = env.step(td)
        if callback is not None:
            callback(env, stepped)
        steps.append(stepped)
        root = env.next_root(stepped)
        if break_when_any_done:
            td = root
            if bool(stepped.get(("next", "done")).any()):
                break
        else:
            td = env.maybe_reset(root)
    # after the TensorDict's batch dims: an unlocked env may get more than its batch_size
    return stack_steps(steps, steps[0].batch_dims), td


def stack_steps(steps: list[TensorDictBase], dim: int) -> TensorDictBase:
    """``torch.stack(steps, dim)`` for steps of one layout (the same keys, batch sizes and
    tensor leaves at every level, nested groups included): one ``torch.stack`` per leaf,
    without tensordict's per-TensorDict checks (about 4x faster on a multi-agent step).
    Anything else (non-tensor entries, lazy stacks, layouts that differ) goes to
    ``torch.stack``."""
    out = _stack_same_layout(steps, dim)
    return torch.stack(steps, dim) if out is None else out


def _stack_same_layout(tds: list, dim: int) -> TensorDict | None:
    first = tds[0]
    if type(first) is not TensorDict:
        return None
    keys, batch_size, device = first._tensordict.keys(), first.batch_size, first.device
    for td in tds:
        if (type(td) is not TensorDict or td._tensordict.keys() != keys
                or td.batch_size != batch_size or td.device != device):
            return None
    src: dict = {}
    for k, v in first._tensordict.items():
        column = [td._tensordict[k] for td in tds]
        if type(v) is torch.Tensor:
            if not all(type(c) is torch.Tensor for c in column):
                return None
            try:
                src[k] = torch.stack(column, dim)
            except RuntimeError:  # leaves of different shapes: tensordict's rules
                return None
        else:
            sub = _stack_same_layout(column, dim)
            if sub is None:
                return None
            src[k] = sub
    size = list(batch_size)
    size.insert(dim, len(tds))
    return TensorDict._new_unsafe(src, batch_size=torch.Size(size), device=device)


class _PlainPlan:
    """The policy's :func:`tensor_plan` (nested keys allowed) run on a root TensorDict: its
    inputs read from it, the plan run on them, its outputs written back, as the modules'
    calls would, without the TensorDict modules' machinery around each call."""

    def __init__(self, plan: Any, inputs: list, outputs: list) -> None:
        self.plan, self.inputs, self.outputs = plan, inputs, outputs
        self._leaves: tuple | None = None

    @classmethod
    def of(cls, policy: Policy, before: set, td: TensorDictBase) -> _PlainPlan | None:
        """The plan when it reads only entries ``td`` had before the policy's call (the leaf
        keys ``before``) or written by its own earlier steps, and writes tensors at the keys
        the call added or wrote over, no other; None otherwise (the loop keeps calling the
        policy)."""
        plan = tensor_plan(policy, nested=True)
        io = None if plan is None else _plan_io(plan, before)
        if io is None:
            return None
        inputs, written = io
        after = set(td.keys(True, True))
        # what the call added is what the plan writes (it may overwrite entries carried
        # from the step before, e.g. the distribution's parameters)
        if not after - before <= written <= after or not all(
                type(td.get(k)) is torch.Tensor for k in written):
            return None
        return cls(plan, inputs, [k for _, _, outs in plan for k in outs])

    def __call__(self, env: Any, td: TensorDictBase, project: bool) -> TensorDictBase:
        for k, v in self.values(env, td, project).items():
            _write(td, k, v)
        return td

    def values(self, env: Any, root: Any, project: bool) -> dict:
        """What the policy's call writes into ``root`` (a TensorDict, or a dict of leaves
        by key): the plan's outputs and, with ``project``, every action leaf projected into
        the action spec (``full_action_spec.project(td)``, leaf by leaf)."""
        get = root.get if isinstance(root, TensorDictBase) else root.__getitem__
        vals = run_plan(self.plan, {k: get(k) for k in self.inputs})
        out = {k: vals[k] for k in self.outputs}
        if project:
            for k, spec in self._action_leaves(env):
                v = out[k] if k in out else root.get(k, None)
                if v is not None:
                    out[k] = spec.project(v)
        return out

    def _action_leaves(self, env: Any) -> list:
        """``(key, spec)`` of every leaf of the env's ``full_action_spec`` (cached per spec
        object and version)."""
        full, keys, _, version = env._action_info()
        cached = self._leaves
        if cached is None or cached[0] is not full or cached[1] != version:
            leaves = [(k, full[k]) for k in keys if k in full and full[k] is not None]
            cached = self._leaves = (full, version, leaves)
        return cached[2]


def _write(td: TensorDictBase, key: Any, value: torch.Tensor) -> None:
    """``td.set(key, value)`` for a value the same modules wrote there with ``set`` at the
    first step (its shape checked then): stored straight into the nested dicts of an
    unlocked plain TensorDict whose groups are there (~0.3 us instead of ~3 us a key)."""
    found = plain_parent(td, key, writable=True)
    if found is None:
        td.set(key, value)
    else:
        found[0][found[1]] = value


# ---------------------------------------------------------------------------- buffered loop
def _run_buffered(
    env: Any,
    td: TensorDictBase,
    T: int,
    policy: Policy | None,
    break_when_any_done: bool,
    project: bool,
) -> tuple[TensorDictBase, TensorDictBase] | TensorDictBase | None:
    """The buffered loop: ``(batch, root)``; None when ``env`` or ``td`` does not fit
    buffers (nothing done); the policy's first output when that does not fit (the caller
    continues from it with the plain loop, without calling the policy again)."""
    if "next" in td.keys():
        return None
    _, action_keys, action_spec, _ = env._action_info()
    if list(action_keys) != ["action"]:
        return None
    bufs = env.step_buffers(T)
    if bufs is None:
        return None
    batch_size = env.batch_size
    obs_keys = list(bufs.root)
    c0 = bufs.column(0)
    for k in obs_keys:
        bufs.root[k][c0] = td.get(k)
    flags0 = {k: td.get(k) for k in FLAGS}
    if policy is None:
        # random actions are known up front: the env may run all the steps in one call
        # (inside its worker processes, for ParallelEnv)
        bufs.action.copy_(_rand_actions(action_spec, batch_size, T))
        n = env.step_into(bufs, 0, T, break_when_any_done=break_when_any_done)
        return bufs.to_tensordict(n, flags0), _last_root(env, bufs, n, break_when_any_done)
    root_cols, action_cols = bufs.columns("root"), bufs.columns("action")
    false = torch.zeros((*batch_size, 1), dtype=torch.bool)
    check = env.check_actions
    fits = _fits_spec(action_spec)
    skip = {*obs_keys, *FLAGS, "collector", "action"}
    extra: dict = {}  # root entries the policy writes (logits...): [*batch, T]
    extra_cols: dict = {}
    n = T
    for t in range(T):
        before = {k: td.get(k) for k in obs_keys}
        td = policy(td)
        action = td.get("action", None)
        if action is None or not fits(action):
            if project:
                env.full_action_spec.project(td)
            action = None
        if t == 0:
            extra = _extra_buffers(td, skip, batch_size, T)
            if extra is None or _needs_grad(td.get("action", None)):
                return td
            extra_cols = {k: v.unbind(len(batch_size)) for k, v in extra.items()}
        if action is None:  # not checked above
            action = td.get("action", None)
            if action is None:
                raise KeyError(f"step: missing action key 'action'; found keys {list(td.keys())}")
            if check:
                env._check_action(action, action_spec)
        action_cols[t].copy_(action)
        for k, c in extra_cols.items():
            c[t].copy_(td.get(k))
        for k, old in before.items():
            v = td.get(k)
            if v is not old:  # the policy replaced an observation: record its value
                root_cols[k][t].copy_(v)
        env.step_into(bufs, t, 1, break_when_any_done=break_when_any_done)
        if break_when_any_done and bufs.done_at(t):
            n = t + 1
            td = _last_root(env, bufs, n, True, td)
            break
        # the next root: step_mdp (no action, reward or "next") + reset observations
        src = {k: v for k, v in td.items() if k not in _NOT_CARRIED}
        for k in obs_keys:
            obs = root_cols[k][t + 1]
            src[k] = obs if t + 1 < T else obs.clone()
        for k in FLAGS:
            src[k] = false if t + 1 < T else false.clone()
        td = TensorDict._new_unsafe(src, batch_size=batch_size)
        if t == 0 and T > 1:
            plan = _plan_for(policy, td, obs_keys, extra)
            if plan is not None:  # the same calls on tensors, without TensorDicts
                n, td = _run_plan_steps(env, bufs, td, plan, T, extra_cols, project,
                                        break_when_any_done)
                break
    if extra and n < T:
        upto = (slice(None),) * len(batch_size) + (slice(0, n),)
        extra = {k: v[upto] for k, v in extra.items()}
    return bufs.to_tensordict(n, flags0, extra), td


def _plan_for(policy: Policy, td: TensorDictBase, obs_keys: list, extra: dict) -> Any:
    """The policy's :func:`tensor_plan` when running it on the root's tensors writes exactly
    what the TensorDict call wrote at the first step (``"action"`` and the ``extra`` keys, no
    observation) and reads only observations, carried tensors and its own outputs."""
    plan = tensor_plan(policy)
    if plan is None:
        return None
    carried = [k for k in td.keys() if k not in _NOT_CARRIED]
    if not all(isinstance(td.get(k), torch.Tensor) for k in carried):
        return None
    io = _plan_io(plan, {*obs_keys, *carried})
    if io is None or io[1] != {"action", *extra} or io[1].intersection(obs_keys):
        return None
    return plan


def _plan_io(plan: Any, readable: set) -> tuple[list, set] | None:
    """``(the keys the plan reads from outside, in the order first read; every key it
    writes)``, or None when a step reads a key neither in ``readable`` nor written by an
    earlier step."""
    inputs: list = []
    written: set = set()
    for _, ins, outs in plan:
        for k in ins:
            if k in written:
                continue
            if k not in readable:
                return None
            if k not in inputs:
                inputs.append(k)
        written.update(outs)
    return inputs, written


def _run_plan_steps(
    env: Any, bufs: Any, td: TensorDictBase, plan: Any, T: int, extra_cols: dict,
    project: bool, break_when_any_done: bool,
) -> tuple[int, TensorDictBase]:
    """Steps ``1..T-1`` of :func:`_run_buffered` with the policy run as ``plan`` on a dict
    of the root's tensors (the carried entries and the policy's outputs of the step before,
    as ``step_mdp`` carries them, then the observation columns). Returns ``(n, root)``."""
    _, _, action_spec, _ = env._action_info()
    batch_size = env.batch_size
    root_cols, action_cols = bufs.columns("root"), bufs.columns("action")
    obs_keys = list(bufs.root)
    carried = {k: v for k, v in td.items() if k not in _NOT_CARRIED and k not in bufs.root}
    check = env.check_actions
    fits = _fits_spec(action_spec)
    extra_items = list(extra_cols.items())
    stepper, keep_going = env._stepper(bufs), not break_when_any_done
    vals: dict = {}
    for t in range(1, T):
        vals = dict(carried)
        for k in obs_keys:
            vals[k] = root_cols[k][t]
        run_plan(plan, vals)
        action = vals["action"]
        if not fits(action):
            if project:
                action = vals["action"] = action_spec.project(action)
            if check:
                env._check_action(action, action_spec)
        action_cols[t].copy_(action)
        for k, c in extra_items:
            v = vals[k]
            c[t].copy_(v)
            carried[k] = v
        if stepper is None:
            env.step_into(bufs, t, 1, break_when_any_done=break_when_any_done)
            done = break_when_any_done and bufs.done_at(t)
        else:  # what the env's step_into runs, without its per-call checks
            done = stepper.step(t, stepper.actions(t, 1)[0], keep_going) and not keep_going
        if done:
            return t + 1, _last_root(env, bufs, t + 1, True, vals)
    src = dict(carried)
    for k in obs_keys:
        src[k] = root_cols[k][T].clone()
    false = torch.zeros((*batch_size, 1), dtype=torch.bool)
    for k in FLAGS:
        src[k] = false.clone()
    return T, TensorDict._new_unsafe(src, batch_size=batch_size)


def _fits_spec(action_spec: Any) -> Any:
    """``fits(action)``: whether ``action`` is an in-range discrete action of the spec's dtype
    and shape, which projects onto itself (the loops then skip both the projection and the
    same check). Never for continuous actions."""
    if action_spec is None or action_spec.domain == "continuous":
        return lambda action: False
    dtype, shape, values_ok = action_spec.dtype, action_spec.shape, action_spec._values_ok
    return lambda action: (action.dtype == dtype and action.shape == shape
                           and values_ok(action))


def _last_root(
    env: Any, bufs: Any, n: int, stopped: bool, td: TensorDictBase | None = None
) -> TensorDictBase:
    """Where the next step starts after ``n`` buffered steps: root column ``n`` (flags False)
    or, where the run stopped on a done step, that step's ``step_mdp`` (its flags)."""
    col = bufs.column(n)
    src: dict = {}
    if td is not None:
        src = {k: v for k, v in td.items() if k not in _NOT_CARRIED}
    for k, v in bufs.root.items():
        src[k] = v[col].clone()
    last = bufs.column(n - 1)
    for k in ("terminated", "truncated"):
        flag = getattr(bufs, k)[last].clone()
        src[k] = flag if stopped else torch.zeros_like(flag)
    src["done"] = src["terminated"] | src["truncated"]
    return _td(src, env.batch_size)


def _rand_actions(spec: Any, batch_size: torch.Size, T: int) -> torch.Tensor:
    """``T`` random actions laid out ``[*batch, T, ...]``."""
    actions = spec.rand((T,))  # [T, *batch, ...]
    nb = len(batch_size)
    if nb:
        actions = actions.movedim(0, nb).contiguous()
    return actions


def _extra_buffers(td: TensorDictBase, skip: set, batch_size: torch.Size, T: int) -> dict | None:
    nb = len(batch_size)
    out = {}
    for k in td.keys():
        if k in skip:
            continue
        if k == "next":
            return None
        v = td.get(k)
        if not isinstance(v, torch.Tensor) or v.shape[:nb] != batch_size:
            return None  # nested or non-tensor entries: the plain loop handles them
        if _needs_grad(v):
            return None
        out[k] = torch.empty((*batch_size, T, *v.shape[nb:]), dtype=v.dtype, device=v.device)
    return out


def _needs_grad(v: Any) -> bool:
    """Whether stacking ``v`` keeps an autograd graph (buffers would not)."""
    return isinstance(v, torch.Tensor) and v.requires_grad and torch.is_grad_enabled()
