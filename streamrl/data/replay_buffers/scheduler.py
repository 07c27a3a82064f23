"""Parameter schedules for a replay buffer's sampler (e.g. a prioritized sampler's alpha, beta).

A scheduler holds a sampler (given directly or as a buffer's ``sampler``) and the name of one of
its numeric attributes; each :meth:`ParameterScheduler.step` sets that attribute to the next value
of the schedule, clamped to ``[min_value, max_value]``. Call ``step()`` once per training step
(or epoch); :class:`SchedulerList` steps several at once.

>>> from streamrl.data import PrioritizedReplayBuffer
>>> rb = PrioritizedReplayBuffer(alpha=0.6, beta=0.4)
>>> beta = LinearScheduler(rb, "beta", final_value=1.0, num_steps=3)
>>> for _ in range(4):
...     beta.step()
...     print(round(rb.sampler.beta, 2))
0.6
0.8
1.0
1.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "LambdaScheduler",
    "LinearScheduler",
    "ParameterScheduler",
    "SchedulerList",
    "StepScheduler",
]


def _bound(name: str, value) -> float | None:
    return None if value is None else _number(name, value)


def _number(name: str, value) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, found {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, found {value!r}")
    return out


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, found {value!r}")
    return value


class ParameterScheduler:
    """Base class: set ``obj``'s sampler attribute ``param_name`` at each :meth:`step`.

    Subclasses implement :meth:`_next_value` (the schedule's value after ``self.step_count``
    steps); the base reads the initial value, clamps, sets the attribute and keeps the state.

    Args:
        obj: a replay buffer (its ``sampler`` is adjusted) or a sampler.
        param_name: the sampler attribute to set, e.g. ``"beta"``.
        min_value: lower bound of the values set (``None``: none).
        max_value: upper bound of the values set (``None``: none).
    """

    def __init__(self, obj, param_name: str, min_value=None, max_value=None) -> None:
        sampler = getattr(obj, "sampler", obj)
        if not isinstance(param_name, str):
            raise TypeError(f"param_name must be a str, found {type(param_name).__name__}")
        if not hasattr(sampler, param_name):
            raise ValueError(
                f"{type(sampler).__name__} has no attribute {param_name!r} to schedule"
            )
        self.sampler = sampler
        self.param_name = param_name
        self.min_value = _bound("min_value", min_value)
        self.max_value = _bound("max_value", max_value)
        if (self.min_value is not None and self.max_value is not None
                and self.min_value > self.max_value):
            raise ValueError(f"min_value {min_value} is above max_value {max_value}")
        self.initial_value = _number(param_name, getattr(sampler, param_name))
        self.step_count = 0

    @property
    def value(self) -> float:
        """The attribute's current value."""
        return float(getattr(self.sampler, self.param_name))

    def _next_value(self) -> float:
        raise NotImplementedError

    def step(self) -> None:
        """Advance the schedule by one step and set the attribute."""
        self.step_count += 1
        value = self._next_value()
        if self.min_value is not None:
            value = max(value, self.min_value)
        if self.max_value is not None:
            value = min(value, self.max_value)
        setattr(self.sampler, self.param_name, value)

    def state_dict(self) -> dict[str, Any]:
        """``step_count`` and ``initial_value`` (the schedule's own arguments are not saved)."""
        return {"type": type(self).__name__, "step_count": self.step_count,
                "initial_value": self.initial_value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (the attribute is set again only at the next step)."""
        if state.get("type") != type(self).__name__:
            raise ValueError(
                f"scheduler state is for {state.get('type')!r}, this is {type(self).__name__!r}"
            )
        self.step_count = int(state["step_count"])
        self.initial_value = float(state["initial_value"])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.param_name}={self.value}, "
                f"step_count={self.step_count})")


class LinearScheduler(ParameterScheduler):
    """Move the attribute linearly from its initial value to ``final_value`` in ``num_steps``
    steps, then keep it there.

    Args:
        obj, param_name: as in :class:`ParameterScheduler`.
        final_value: the value reached after ``num_steps`` steps.
        num_steps: number of steps of the ramp.

    >>> from streamrl.data import PrioritizedReplayBuffer
    >>> rb = PrioritizedReplayBuffer(alpha=1.0, beta=0.5)
    >>> s = LinearScheduler(rb, "alpha", final_value=0.0, num_steps=4)
    >>> s.step(); s.step(); rb.sampler.alpha
    0.5
    """

    def __init__(self, obj, param_name: str, final_value, num_steps: int) -> None:
        super().__init__(obj, param_name)
        self.final_value = _number("final_value", final_value)
        self.num_steps = _positive_int("num_steps", num_steps)

    def _next_value(self) -> float:
        frac = min(self.step_count, self.num_steps) / self.num_steps
        return self.initial_value + (self.final_value - self.initial_value) * frac


class StepScheduler(ParameterScheduler):
    """Every ``n_steps`` steps, multiply the attribute by ``gamma`` (``mode="multiplicative"``)
    or add ``gamma`` to it (``mode="additive"``), clamped to ``[min_value, max_value]``.

    >>> from streamrl.data import PrioritizedReplayBuffer
    >>> rb = PrioritizedReplayBuffer(alpha=0.6, beta=0.6)
    >>> s = StepScheduler(rb, "beta", gamma=0.2, n_steps=2, mode="additive", max_value=0.9)
    >>> [(s.step(), round(rb.sampler.beta, 2))[1] for _ in range(6)]
    [0.6, 0.8, 0.8, 0.9, 0.9, 0.9]
    """

    _MODES = ("multiplicative", "additive")

    def __init__(self, obj, param_name: str, gamma=0.9, n_steps: int = 1,
                 mode: str = "multiplicative", min_value=None, max_value=None) -> None:
        super().__init__(obj, param_name, min_value, max_value)
        self.gamma = _number("gamma", gamma)
        self.n_steps = _positive_int("n_steps", n_steps)
        if mode not in self._MODES:
            raise ValueError(f"mode must be one of {self._MODES}, found {mode!r}")
        self.mode = mode

    def _next_value(self) -> float:
        value = self.value
        if self.step_count % self.n_steps:
            return value
        return value * self.gamma if self.mode == "multiplicative" else value + self.gamma


class LambdaScheduler(ParameterScheduler):
    """Set the attribute to ``initial_value * lambda_fn(step_count)`` (as ``torch``'s
    ``LambdaLR``), clamped to ``[min_value, max_value]``.

    >>> from streamrl.data import PrioritizedReplayBuffer
    >>> rb = PrioritizedReplayBuffer(alpha=0.8, beta=0.5)
    >>> s = LambdaScheduler(rb, "alpha", lambda n: 0.5 ** n)
    >>> s.step(); rb.sampler.alpha
    0.4
    """

    def __init__(self, obj, param_name: str, lambda_fn: Callable[[int], float],
                 min_value=None, max_value=None) -> None:
        super().__init__(obj, param_name, min_value, max_value)
        if not callable(lambda_fn):
            raise TypeError(f"lambda_fn must be callable, found {type(lambda_fn).__name__}")
        self.lambda_fn = lambda_fn

    def _next_value(self) -> float:
        factor = _number("lambda_fn's result", self.lambda_fn(self.step_count))
        return self.initial_value * factor


class SchedulerList:
    """Several schedulers stepped together.

    Args:
        schedulers: the :class:`ParameterScheduler` objects (a list or tuple).

    >>> from streamrl.data import PrioritizedReplayBuffer
    >>> rb = PrioritizedReplayBuffer(alpha=1.0, beta=0.0)
    >>> both = SchedulerList([LinearScheduler(rb, "alpha", 0.0, 2),
    ...                       LinearScheduler(rb, "beta", 1.0, 2)])
    >>> both.step(); rb.sampler.alpha, rb.sampler.beta
    (0.5, 0.5)
    """

    def __init__(self, schedulers: Sequence[ParameterScheduler]) -> None:
        if isinstance(schedulers, ParameterScheduler):
            schedulers = [schedulers]
        schedulers = list(schedulers)
        for i, s in enumerate(schedulers):
            if not isinstance(s, ParameterScheduler):
                raise TypeError(f"scheduler {i} must be a ParameterScheduler, found "
                                f"{type(s).__name__}")
        self.schedulers = schedulers

    def append(self, scheduler: ParameterScheduler) -> None:
        """Add one more scheduler."""
        if not isinstance(scheduler, ParameterScheduler):
            raise TypeError(f"expected a ParameterScheduler, found {type(scheduler).__name__}")
        self.schedulers.append(scheduler)

    def step(self) -> None:
        """Step every scheduler, in order."""
        for scheduler in self.schedulers:
            scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        """The schedulers' states, in order."""
        return {"schedulers": [s.state_dict() for s in self.schedulers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` into schedulers of the same types, in the same order."""
        states = state["schedulers"]
        if len(states) != len(self.schedulers):
            raise ValueError(f"the state holds {len(states)} schedulers, this list "
                             f"{len(self.schedulers)}")
        for scheduler, s in zip(self.schedulers, states):
            scheduler.load_state_dict(s)
