"""UpdateWeights: push the trained policy weights to the collector every few batches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streamrl.trainers._checks import check_name, check_trainer, positive_int
from streamrl.trainers.hook_base import TrainerHookBase

__all__ = ["UpdateWeights"]

_UNITS = ("batches", "optim_steps")


class UpdateWeights(TrainerHookBase):
    """Calls ``collector.update_policy_weights_()`` every ``update_weights_interval`` calls.

    With ``interval_unit="batches"`` (default) it is registered at ``"post_steps"`` and counts
    collected batches; with ``"optim_steps"`` at ``"post_optim"``, counting optimizer steps
    (weights pushed in the middle of a batch's optimization). With ``policy_weights_getter``,
    its result is passed: ``collector.update_policy_weights_(policy_weights_getter())``.

    Multi-process collectors copy the weights into their workers' shared memory; the
    single-process collector acts with the trained module itself and only bumps the policy
    version stamped on the next batches.

    >>> class Collector:
    ...     updates = 0
    ...     def update_policy_weights_(self, weights=None):
    ...         self.updates += 1
    >>> collector = Collector()
    >>> hook = UpdateWeights(collector, update_weights_interval=2)
    >>> for _ in range(5):
    ...     hook()
    >>> collector.updates
    2
    """

    def __init__(
        self,
        collector: Any,
        update_weights_interval: int = 1,
        policy_weights_getter: Callable[[], Any] | None = None,
        *,
        interval_unit: str = "batches",
    ) -> None:
        if not callable(getattr(collector, "update_policy_weights_", None)):
            raise TypeError(f"collector must have update_policy_weights_(), found "
                            f"{type(collector).__name__}")
        if policy_weights_getter is not None and not callable(policy_weights_getter):
            raise TypeError(f"policy_weights_getter must be callable or None, found "
                            f"{type(policy_weights_getter).__name__}")
        if interval_unit not in _UNITS:
            raise ValueError(f"interval_unit must be one of {list(_UNITS)}, found "
                             f"{interval_unit!r}")
        self.collector = collector
        self.update_weights_interval = positive_int(update_weights_interval,
                                                    "update_weights_interval")
        self.policy_weights_getter = policy_weights_getter
        self.interval_unit = interval_unit
        self.counter = 0

    def __call__(self) -> None:
        self.counter += 1
        if self.counter % self.update_weights_interval == 0:
            if self.policy_weights_getter is not None:
                self.collector.update_policy_weights_(self.policy_weights_getter())
            else:
                self.collector.update_policy_weights_()

    def register(self, trainer: Any, name: str = "update_weights") -> None:
        """At ``"post_steps"`` (``interval_unit="batches"``) or ``"post_optim"``."""
        check_trainer(trainer, self)
        trainer.register_op("post_steps" if self.interval_unit == "batches" else "post_optim",
                            self)
        trainer.register_module(check_name(name), self)

    def state_dict(self) -> dict[str, Any]:
        """The call count."""
        return {"counter": self.counter}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the call count."""
        self.counter = int(state_dict["counter"])
