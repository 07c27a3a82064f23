"""WeightSync: publishes the learner's weights to the collectors every K updates."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from torch import nn

from streamrl.graph import Operator
from streamrl.ops.policy_weights import PolicyWeights

__all__ = ["WeightSync"]


class WeightSync(Operator):
    """Copies ``module``'s weights into ``weights`` (a :class:`PolicyWeights` that rollouts
    read) once at least ``every`` updates were made since the last copy, and passes each
    learner message on with ``policy_version`` and ``staleness`` added.

    Its input is the metrics dict a :class:`~streamrl.ops.Learner` emits (``updates`` and,
    when the batch carried versions, ``batch_policy_version``). ``staleness`` is the version
    the learner held when it trained on the batch minus the batch's mean collection version:
    how many publications behind the data was; ``staleness_max`` (from the batch's
    ``batch_policy_version_min``) is the lag of its oldest row. Only this operator publishes, so the version
    it reads before publishing is the learner's version for that batch.

    ``lock`` (e.g. ``learner.lock``) is held while copying, so the copy never mixes two
    optimizer steps. ``before_publish`` is called just before each copy (e.g. to set an
    exploration schedule's buffers, which are published with the weights). The pending updates
    are published when the stream ends, so the final weights always reach ``weights``; with
    ``publish_at_end=True`` they are published then even when this learner's last message
    was (other learners that train parts of ``module``, and end later, change it meanwhile:
    connect their ends to this operator's input, their messages filtered out).

    **Snapshots.** With ``snapshot_at`` (a function of the update count, asked after each
    publication), the operator has a second output port, ``snapshot``: when
    ``snapshot_at(updates)`` is true, the message is also sent there with ``weights``, a copy
    of the weights just published (:meth:`PolicyWeights.snapshot`, taken before any later
    publication), and when the stream ends the final weights are sent there too (unless their
    count was just sent). A consumer slower than the learner (an
    :class:`~streamrl.ops.Evaluator` on a FIFO edge) then plays exactly the weights of each
    of those update counts, while the learner goes on.
    """

    state_keys = ("published_at",)

    def __init__(
        self,
        weights: PolicyWeights,
        module: nn.Module,
        *,
        every: int = 1,
        lock: Any = None,
        before_publish: Callable[[], Any] | None = None,
        snapshot_at: Callable[[int], bool] | None = None,
        publish_at_end: bool = False,
    ):
        if not isinstance(weights, PolicyWeights):
            raise TypeError(f"weights must be a PolicyWeights, found {type(weights).__name__}")
        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be an nn.Module, found {type(module).__name__}")
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}")
        if lock is not None and not (hasattr(lock, "__enter__") and hasattr(lock, "__exit__")):
            raise TypeError(f"lock must be a context manager (a Lock), found {type(lock).__name__}")
        if before_publish is not None and not callable(before_publish):
            raise TypeError(f"before_publish must be callable, found {type(before_publish).__name__}")
        if snapshot_at is not None:
            if not callable(snapshot_at):
                raise TypeError(f"snapshot_at must be callable, found {type(snapshot_at).__name__}")
            self.outputs = ("out", "snapshot")
        self.snapshot_at = snapshot_at
        self.publish_at_end = bool(publish_at_end)
        self._snapshot_sent: int | None = None
        self.weights = weights
        self.module = module
        self.every = every
        self.lock = lock
        self.before_publish = before_publish
        self.published_at = 0
        self._seen = 0

    def publish(self) -> int:
        """Copy the weights now; returns the new version."""
        if self.before_publish is not None:
            self.before_publish()
        with self.lock if self.lock is not None else contextlib.nullcontext():
            version = self.weights.publish(self.module)
        self.published_at = self._seen
        return version

    def step(self, inputs: dict[str, Any]) -> dict[str, Any]:
        msg = inputs["in"]
        if not isinstance(msg, dict) or "updates" not in msg:
            found = sorted(msg) if isinstance(msg, dict) else type(msg).__name__
            raise TypeError(f"WeightSync expects the learner's dicts with 'updates', found {found}")
        self._seen = int(msg["updates"])
        out = dict(msg)
        if "batch_policy_version" in msg:
            out["staleness"] = self.weights.version - float(msg["batch_policy_version"])
        if "batch_policy_version_min" in msg:
            out["staleness_max"] = self.weights.version - int(msg["batch_policy_version_min"])
        snap = False
        if self._seen - self.published_at >= self.every:
            self.publish()
            snap = self.snapshot_at is not None and bool(self.snapshot_at(self._seen))
        out["policy_version"] = self.weights.version
        if snap:
            return {"out": out, "snapshot": self._snapshot(out)}
        return {"out": out}

    def _snapshot(self, msg: dict[str, Any]) -> dict[str, Any]:
        self._snapshot_sent = self._seen
        return {**msg, "weights": self.weights.snapshot()}

    def finish(self) -> dict[str, Any] | None:
        if self._seen > self.published_at or self.publish_at_end:
            self.publish()
        if self.snapshot_at is None or (self._snapshot_sent == self._seen
                                        and not self.publish_at_end):
            return None
        return {"snapshot": self._snapshot({"updates": self._seen,
                                            "policy_version": self.weights.version})}

    def __repr__(self) -> str:
        return f"WeightSync(every={self.every}, version={self.weights.version})"
