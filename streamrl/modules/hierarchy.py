"""HeldDecision: a high-level decision held in the TensorDict for several steps (hierarchical
policies: a goal or an option re-decided every k steps, at an episode start, or when a
termination signal fires)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase

from streamrl.data.specs import Composite, TensorSpec, Unbounded
from streamrl.envs.transforms import TensorDictPrimer

__all__ = ["HeldDecision"]

DECISION_KEY = ("hrl", "decision")
AGE_KEY = ("hrl", "age")
NEW_KEY = ("hrl", "new")
ANCHOR_KEY = ("hrl", "anchor")
GOAL_KEY = ("hrl", "goal")
_MODES = ("absolute", "relative")


def _positive_or_none(every: Any) -> int | None:
    if every is None:
        return None
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"HeldDecision: every must be an int >= 1 (steps a decision is held) "
                         f"or None, found {every!r}")
    return every


class HeldDecision(TensorDictModuleBase):
    """Holds the decision of ``high_policy`` (a TensorDict module writing
    ``("hrl", "decision")``: a goal vector or an option index) for several steps.

    On each call (one env step of a batch of rows), the rows that decide are those whose
    episode starts (``reset_key``, e.g. :class:`~streamrl.envs.transforms.InitTracker`'s
    ``"is_init"``), whose decision is ``every`` steps old, or for which ``terminate(td)``
    (a bool ``[*batch, 1]`` computed with the decision still held, e.g. an option's sampled
    termination) is True. ``high_policy`` runs on those rows only (its cost is paid at the
    high-level rate) and the other rows keep their decision. Written, at the root (what the
    step acts on) and under ``"next"`` (carried to the next step):

    - ``("hrl", "decision")``: the held decision (``decision_spec``);
    - ``("hrl", "age")``: steps since it was made (int64 ``[1]``; 0 on the step that decided);
    - ``("hrl", "new")`` (root only): True on the steps that decided;
    - ``("hrl", "goal")``: what the low level reads: the decision (``goal_mode="absolute"``),
      or, with ``goal_mode="relative"`` (HIRO), ``anchor - s`` where ``s`` is the
      observation entry ``goal_key`` and ``anchor = s_decision + decision`` is carried as
      ``("hrl", "anchor")``: HIRO's goal transition ``h(s, g, s') = s + g - s'`` applied at
      every step.

    The carried entries are put in the env's specs by :meth:`make_tensordict_primer` (as a
    recurrent module's state is), so collectors and batched envs carry and store them.

    >>> from tensordict import TensorDict
    >>> from tensordict.nn import TensorDictModule
    >>> high = TensorDictModule(lambda obs: obs * 10, ["observation"], [("hrl", "decision")])
    >>> held = HeldDecision(high, Unbounded(2), every=2)
    >>> td = TensorDict({"observation": torch.ones(2), "is_init": torch.tensor([True]),
    ...                  "hrl": {"decision": torch.zeros(2), "age": torch.zeros(1, dtype=torch.int64)}})
    >>> held(td)["hrl", "decision"].tolist(), td["hrl", "new"].item()
    ([10.0, 10.0], True)
    >>> nxt = TensorDict({"observation": torch.full((2,), 3.0), "is_init": torch.tensor([False]),
    ...                   "hrl": td["next", "hrl"].clone()})
    >>> held(nxt)["hrl", "decision"].tolist(), nxt["hrl", "age"].item()  # kept for 2 steps
    ([10.0, 10.0], 1)
    """

    def __init__(self, high_policy: Callable[[TensorDictBase], TensorDictBase],
                 decision_spec: TensorSpec, *, every: int | None = None,
                 terminate: Callable[[TensorDictBase], torch.Tensor] | None = None,
                 reset_key: Any = "is_init", goal_mode: str = "absolute",
                 goal_key: Any = "observation") -> None:
        super().__init__()
        if not callable(high_policy):
            raise TypeError(f"HeldDecision: high_policy must be a TensorDict module, found "
                            f"{type(high_policy).__name__}")
        if not isinstance(decision_spec, TensorSpec):
            raise TypeError(f"HeldDecision: decision_spec must be a TensorSpec, found "
                            f"{type(decision_spec).__name__}")
        if goal_mode not in _MODES:
            raise ValueError(f"HeldDecision: goal_mode must be one of {_MODES}, found "
                             f"{goal_mode!r}")
        if terminate is not None and not callable(terminate):
            raise TypeError(f"HeldDecision: terminate must be callable or None, found "
                            f"{type(terminate).__name__}")
        self.every = _positive_or_none(every)
        if self.every is None and terminate is None:
            raise ValueError("HeldDecision: give every (k steps) or terminate (a termination "
                             "signal), or both: otherwise a decision is only made at episode "
                             "starts")
        self.high_policy = high_policy
        self.decision_spec = decision_spec
        self.terminate = terminate
        self.reset_key, self.goal_mode, self.goal_key = reset_key, goal_mode, goal_key
        carried = [DECISION_KEY, AGE_KEY] + ([ANCHOR_KEY] if goal_mode == "relative" else [])
        self.in_keys = [reset_key, *carried] + ([goal_key] if goal_mode == "relative" else [])
        self.out_keys = [*carried, NEW_KEY, GOAL_KEY] + [("next", *k) for k in carried]

    def make_tensordict_primer(self, batch_size: Any = ()) -> TensorDictPrimer:
        """The env transform that puts the carried entries in the env's specs (zero at
        reset: every episode starts with a decision), for an env of ``batch_size`` (a
        primer cannot tell a ``[2]`` decision of an unbatched env from one already expanded
        to a batch of 2 envs, so it is given the batch)."""
        batch = tuple(torch.Size(batch_size))
        specs: dict[Any, TensorSpec] = {
            DECISION_KEY: self.decision_spec.expand(*batch, *self.decision_spec.shape),
            AGE_KEY: Unbounded((*batch, 1), dtype=torch.int64),
        }
        if self.goal_mode == "relative":
            specs[ANCHOR_KEY] = Unbounded((*batch, *self.decision_spec.shape),
                                          dtype=torch.float32)
        return TensorDictPrimer(Composite(specs, shape=batch), default_value=0)

    def transform_env(self, env: Any) -> Any:
        """``env`` with what the decision needs appended (an ``InitTracker`` writing the reset
        key when it is ``"is_init"``, and :meth:`make_tensordict_primer`), after
        :meth:`check_env`: ``TransformedEnv(env, Compose(...))``."""
        from streamrl.envs import Compose, TransformedEnv
        from streamrl.envs.transforms import InitTracker

        transforms = []
        if self.reset_key == "is_init" and "is_init" not in env.observation_spec.keys():
            transforms.append(InitTracker())
        transforms.append(self.make_tensordict_primer(env.batch_size))
        out = TransformedEnv(env, Compose(*transforms))
        self.check_env(out)
        return out

    def check_env(self, env: Any) -> None:
        """Refuse, before any step, an env whose observations do not fit: the reset key and
        (relative goals) the goal key must be in its observation spec, the goal entry as wide
        as a decision."""
        spec = env.observation_spec
        keys = set(spec.keys(True, True))
        for key, what in ((self.reset_key, "the reset key (append an InitTracker)"),
                          *(((self.goal_key, "the goal key"),)
                            if self.goal_mode == "relative" else ())):
            if key not in keys:
                raise KeyError(f"HeldDecision: {what} {key!r} is not in the env's observation "
                               f"spec, which has {sorted(map(str, keys))}")
        if self.goal_mode == "relative":
            width = spec[self.goal_key].shape[-1:]
            if width != self.decision_spec.shape[-1:]:
                raise ValueError(f"HeldDecision: a relative goal is a displacement of "
                                 f"{self.goal_key!r} ({list(width)}), found a decision spec of "
                                 f"shape {list(self.decision_spec.shape)}")

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        shape = tensordict.batch_size
        flat = tensordict.reshape(-1) if tensordict.batch_dims != 1 else tensordict
        n = flat.shape[0]
        age = flat.get(AGE_KEY).reshape(n, 1)
        decide = flat.get(self.reset_key).reshape(n, 1).bool()
        if self.every is not None:
            decide = decide | (age + 1 >= self.every)
        if self.terminate is not None:
            stop = torch.as_tensor(self.terminate(flat))
            if stop.shape != (n, 1) and stop.shape != (n,):
                raise ValueError(f"HeldDecision: terminate must return one flag per row, "
                                 f"[{n}, 1] or [{n}], found {list(stop.shape)}")
            decide = decide | stop.reshape(n, 1).bool()
        decision = flat.get(DECISION_KEY).clone()
        rows = decide.squeeze(-1).nonzero().squeeze(-1)
        if rows.numel():
            chosen = self.high_policy(flat[rows].clone()).get(DECISION_KEY)
            expected = (rows.numel(), *self.decision_spec.shape)
            if chosen.shape != expected:
                raise ValueError(f"HeldDecision: the high-level decision must fit "
                                 f"decision_spec {list(self.decision_spec.shape)} per row, "
                                 f"found {list(chosen.shape)} for {rows.numel()} rows")
            decision[rows] = chosen.to(decision.dtype)
        age = torch.where(decide, torch.zeros_like(age), age + 1)
        out = {DECISION_KEY: decision, AGE_KEY: age}
        goal = decision
        if self.goal_mode == "relative":
            s = flat.get(self.goal_key)
            anchor = torch.where(decide, s + decision, flat.get(ANCHOR_KEY))
            out[ANCHOR_KEY] = anchor
            goal = anchor - s
        for key, value in out.items():
            flat.set(key, value)
            flat.set(("next", *key), value.clone())
        flat.set(NEW_KEY, decide)
        flat.set(GOAL_KEY, goal)
        if flat is not tensordict:
            tensordict.update(flat.reshape(shape))
        return tensordict

    def __repr__(self) -> str:
        return (f"HeldDecision(every={self.every}, terminate={self.terminate is not None}, "
                f"goal_mode={self.goal_mode!r})")
