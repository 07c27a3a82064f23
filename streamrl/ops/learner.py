"""Learner: the learning step as an operator (loss, backward, optimizer step, target update)."""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn

from streamrl.graph import Operator
from streamrl.modules.models.recurrent_mode import set_recurrent_mode
from streamrl.ops.gradient_step import GradientStep, loss_key_names

__all__ = ["Learner"]

VERSION_KEY = ("collector", "policy_version")


class Learner(Operator):
    """Trains on every incoming batch and emits one metrics dict per batch.

    For each batch (a TensorDict; leading dims are flattened), ``epochs`` passes are made over
    it in minibatches of ``minibatch_size`` rows (``None``: the whole batch; the last one of a
    pass holds the remainder), and each minibatch is one update: ``loss_module(mb)``, backward
    of the sum of its ``loss_*`` terms (or of ``loss_keys``), optional gradient-norm clipping,
    ``optimizer.step()`` and ``target_updater.step()``. Sampling a large batch and splitting it
    here costs one message for many updates.

    The minibatches of a pass are consecutive rows; with ``shuffle=True`` each pass first
    draws a permutation of the rows from torch's global generator (``torch.randperm``), so
    every row is seen once per epoch in a fresh order, as PPO's epochs want. A pass that is a
    single minibatch draws nothing (its update does not depend on the order of its rows).

    **Sequences** (recurrent policies): with ``sequence_length=L`` the batch's last batch dim
    is time (``[*B, T]``, ``T`` a multiple of ``L``, e.g. a collector's ``[num_envs, T]``):
    each row is cut into ``T / L`` sequences of ``L`` consecutive steps, and the minibatches
    are drawn from whole sequences, the same way (``minibatch_size`` counts steps, a multiple
    of ``L``; ``shuffle`` permutes sequences), so the loss gets ``[minibatch_size / L, L]``
    TensorDicts. Each update runs under
    :class:`~streamrl.modules.tensordict_module.set_recurrent_mode` ``(True)``: a recurrent
    module runs over each sequence from the state stored at its first step (the collector's)
    and resets it wherever its ``is_init`` key is set inside. (TorchRL users draw such
    minibatches from a buffer with a ``SliceSampler``.)

    The emitted dict holds ``updates`` (total so far), ``batches``, the mean of every scalar
    output of the loss over the batch's updates (``loss_*``, ``alpha``, ...), ``grad_norm``
    when clipping, and ``batch_policy_version`` (the mean ``("collector", "policy_version")``
    of the batch, when present, and its minimum, ``batch_policy_version_min``: a
    :class:`~streamrl.ops.WeightSync` turns them into staleness).

    **Delayed actor** (TD3): with ``actor_optimizer``, the loss's ``loss_keys`` terms train
    ``optimizer``'s parameters at every update, and its ``actor_loss_keys`` terms train
    ``actor_optimizer``'s only every ``policy_delay``-th update (the 2nd, 4th ... for a delay
    of 2, as SB3 counts), followed by ``target_updater.step()``; other updates move no target.
    On those updates both terms come from one forward, with the parameters as they were
    before the update: the actor's step is made before the critics' (its terms read the
    critics' parameters, which the critics' step changes in place). The two optimizers must
    not share parameters (each term's backward then reaches only its own). The actor's clipped gradient norm is reported as ``actor_grad_norm``.
    ``skip_actor_loss=True`` spares the actor's forward on the other updates: they call the
    loss module's ``value_loss(td) -> (loss, metadata)`` (TorchRL's actor-critic losses, e.g.
    ``TD3Loss``) for the single ``loss_keys`` term instead of the whole loss.

    **Warm-up objective**: for its first ``warmup_updates`` updates (counted by ``updates``,
    so a resumed learner goes on counting) the learner trains the sum of the
    ``warmup_loss_keys`` terms instead of ``loss_keys``'s, with the same optimizer: e.g. CQL's
    behaviour-cloning start (``loss_actor_bc`` in place of ``loss_actor``, as CQL's reference
    code does for its first updates). Not combined with ``actor_optimizer``.

    With ``priority_buffer`` (a prioritized buffer), the loss's ``td_error`` of each minibatch
    is written back as the priorities of its ``index``.

    Parameter writes (optimizer and target steps) happen under :attr:`lock`, so another thread
    that copies the weights while holding it (``WeightSync(lock=learner.lock)``) never sees a
    half-written step. ``lock``: a lock to use instead of a new one, e.g. another learner's
    when the two train parts of one published policy (the levels of a hierarchy), so that a
    copy under it sees neither half-written. Place the learner on a thread: its step is heavy
    torch work.

    >>> from tensordict import TensorDict
    >>> from streamrl.objectives.common import LossModule
    >>> class MSE(LossModule):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.net = nn.Linear(2, 1)
    ...     def forward(self, td):
    ...         return TensorDict({"loss_mse": (self.net(td["x"]) - td["y"]).pow(2).mean()})
    >>> loss = MSE()
    >>> learner = Learner(loss, torch.optim.SGD(loss.parameters(), lr=0.1), minibatch_size=4)
    >>> batch = TensorDict({"x": torch.randn(8, 2), "y": torch.randn(8, 1)}, [8])
    >>> metrics = learner.step({"in": batch})["out"]
    >>> metrics["updates"], metrics["batches"]
    (2, 1)
    """

    state_keys = ("updates", "batches")

    def __init__(
        self,
        loss_module: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        minibatch_size: int | None = None,
        epochs: int = 1,
        shuffle: bool = False,
        target_updater: Any = None,
        max_grad_norm: float | None = None,
        loss_keys: Sequence[str] | None = None,
        priority_buffer: Any = None,
        priority_key: str = "td_error",
        actor_optimizer: torch.optim.Optimizer | None = None,
        actor_loss_keys: Sequence[str] | None = None,
        policy_delay: int = 1,
        skip_actor_loss: bool = False,
        sequence_length: int | None = None,
        lock: Any = None,
        warmup_updates: int = 0,
        warmup_loss_keys: Sequence[str] | None = None,
    ):
        if not isinstance(loss_module, nn.Module) or not callable(loss_module):
            raise TypeError(f"loss_module must be an nn.Module, found {type(loss_module).__name__}")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer must be a torch.optim.Optimizer, found {type(optimizer).__name__}"
            )
        if minibatch_size is not None and (
            not isinstance(minibatch_size, int) or isinstance(minibatch_size, bool)
            or minibatch_size < 1
        ):
            raise ValueError(f"minibatch_size must be a positive int or None, got {minibatch_size!r}")
        if sequence_length is not None and (
            not isinstance(sequence_length, int) or isinstance(sequence_length, bool)
            or sequence_length < 1
        ):
            raise ValueError(f"sequence_length must be a positive int or None, got "
                             f"{sequence_length!r}")
        if sequence_length is not None and minibatch_size is not None and (
                minibatch_size % sequence_length):
            raise ValueError(f"minibatch_size ({minibatch_size}) must be a multiple of "
                             f"sequence_length ({sequence_length}): minibatches are whole "
                             "sequences")
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise ValueError(f"epochs must be a positive int, got {epochs!r}")
        if not isinstance(shuffle, bool):
            raise TypeError(f"shuffle must be a bool, got {type(shuffle).__name__}")
        if target_updater is not None and not callable(getattr(target_updater, "step", None)):
            raise TypeError(
                f"target_updater must have a step() method, found {type(target_updater).__name__}"
            )
        if max_grad_norm is not None and not max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be > 0 or None, got {max_grad_norm!r}")
        loss_keys = loss_key_names(loss_keys, "loss_keys")
        if priority_buffer is not None and not hasattr(priority_buffer, "update_priority"):
            raise TypeError(
                "priority_buffer must have update_priority(index, priority), found "
                f"{type(priority_buffer).__name__}"
            )
        actor_loss_keys = loss_key_names(actor_loss_keys, "actor_loss_keys")
        warmup_loss_keys = loss_key_names(warmup_loss_keys, "warmup_loss_keys")
        if (not isinstance(warmup_updates, int) or isinstance(warmup_updates, bool)
                or warmup_updates < 0):
            raise ValueError(f"warmup_updates must be a non-negative int, got {warmup_updates!r}")
        if (warmup_updates > 0) != (warmup_loss_keys is not None):
            raise ValueError(
                "warmup_updates and warmup_loss_keys go together (the terms trained during the "
                f"first updates), found warmup_updates={warmup_updates!r} and "
                f"warmup_loss_keys={warmup_loss_keys!r}")
        if warmup_updates and actor_optimizer is not None:
            raise ValueError("warmup_loss_keys is not supported with an actor_optimizer")
        if not isinstance(policy_delay, int) or isinstance(policy_delay, bool) or policy_delay < 1:
            raise ValueError(f"policy_delay must be a positive int, got {policy_delay!r}")
        if actor_optimizer is None:
            if actor_loss_keys is not None or policy_delay != 1 or skip_actor_loss:
                raise ValueError("actor_loss_keys, policy_delay and skip_actor_loss need an "
                                 "actor_optimizer")
        else:
            if not isinstance(actor_optimizer, torch.optim.Optimizer):
                raise TypeError(f"actor_optimizer must be a torch.optim.Optimizer, found "
                                f"{type(actor_optimizer).__name__}")
            if loss_keys is None or actor_loss_keys is None:
                raise ValueError("with an actor_optimizer, name the terms of each: loss_keys "
                                 "(the optimizer's) and actor_loss_keys")
            if set(loss_keys) & set(actor_loss_keys):
                raise ValueError(f"loss_keys {list(loss_keys)} and actor_loss_keys "
                                 f"{list(actor_loss_keys)} must be disjoint")
            if skip_actor_loss and (len(loss_keys) != 1 or not callable(
                getattr(loss_module, "value_loss", None))):
                raise ValueError(
                    "skip_actor_loss needs one loss_keys term and a loss module with "
                    f"value_loss(td) -> (loss, metadata), found {list(loss_keys)} and "
                    f"{type(loss_module).__name__}")
            shared = {id(p) for g in optimizer.param_groups for p in g["params"]} & {
                id(p) for g in actor_optimizer.param_groups for p in g["params"]}
            if shared:
                raise ValueError(f"optimizer and actor_optimizer share {len(shared)} "
                                 "parameters; each parameter must have one optimizer")
        self.loss_module = loss_module
        self.optimizer = optimizer
        self.minibatch_size = minibatch_size
        self.sequence_length = sequence_length
        self.epochs = epochs
        self.shuffle = shuffle
        self.target_updater = target_updater
        self.max_grad_norm = max_grad_norm
        self.loss_keys = loss_keys
        self.priority_buffer = priority_buffer
        self.priority_key = priority_key
        if lock is not None and not (callable(getattr(lock, "acquire", None))
                                     and callable(getattr(lock, "release", None))):
            raise TypeError(f"lock must be a threading.Lock (or None), found "
                            f"{type(lock).__name__}")
        self.lock = threading.Lock() if lock is None else lock
        # the per-update arithmetic, shared with streamrl.trainers.OptimizerHook
        self._gradient_step = GradientStep(
            optimizer, loss_keys=loss_keys, max_grad_norm=max_grad_norm, lock=self.lock
        )
        self.params = self._gradient_step.params
        self.warmup_updates = warmup_updates
        self._warmup_step = None if not warmup_updates else GradientStep(
            optimizer, loss_keys=warmup_loss_keys, max_grad_norm=max_grad_norm, lock=self.lock)
        self.actor_optimizer = actor_optimizer
        self.policy_delay = policy_delay
        self.skip_actor_loss = bool(skip_actor_loss)
        self._actor_step = None if actor_optimizer is None else GradientStep(
            actor_optimizer, loss_keys=actor_loss_keys, max_grad_norm=max_grad_norm,
            lock=self.lock,
        )
        self.updates = 0
        self.batches = 0

    def step(self, inputs: dict[str, Any]) -> dict[str, Any]:
        batch = inputs["in"]
        if not isinstance(batch, TensorDictBase):
            raise TypeError(f"Learner expects TensorDict batches, found {type(batch).__name__}")
        if batch.batch_size.numel() == 0:
            raise ValueError("Learner received an empty batch (0 rows)")
        length = self.sequence_length
        if length is None:
            if batch.batch_dims != 1:
                batch = batch.reshape(-1)
        else:
            steps = batch.batch_size[-1] if batch.batch_dims else 0
            if steps % length:
                raise ValueError(
                    f"Learner(sequence_length={length}) needs batches whose last dim (time) "
                    f"is a multiple of {length}, found batch_size {list(batch.batch_size)}")
            batch = batch.reshape(-1, length)  # each row cut into consecutive sequences
        # minibatches are drawn along dim 0: steps, or whole sequences
        n = batch.shape[0]
        per = 1 if length is None else length
        size = n if self.minibatch_size is None else min(self.minibatch_size // per, n)
        # the scalars are summed once per batch (one stack per key), not once per update
        values: dict[str, list[torch.Tensor]] = {}
        with set_recurrent_mode(True) if length is not None else contextlib.nullcontext():
            for _ in range(self.epochs):
                for mb in self._minibatches(batch, size):
                    for k, v in self._update(mb).items():
                        values.setdefault(k, []).append(v)
        self.batches += 1
        metrics: dict[str, Any] = {"updates": self.updates, "batches": self.batches}
        # each scalar's mean over the updates that reported it (the actor's, with a delay)
        metrics.update({k: float(torch.stack(v).sum()) / len(v) for k, v in values.items()})
        version = batch.get(VERSION_KEY, None)
        if version is not None:
            metrics["batch_policy_version"] = float(version.double().mean())
            metrics["batch_policy_version_min"] = int(version.min())
        return {"out": metrics}

    def updates_per_batch(self, rows: int) -> int:
        """The updates one batch of ``rows`` rows makes: ``epochs`` passes of
        ``ceil(rows / minibatch_size)`` minibatches.

        >>> loss = nn.Linear(1, 1)
        >>> Learner(loss, torch.optim.SGD(loss.parameters(), lr=0.1), minibatch_size=64,
        ...         epochs=2).updates_per_batch(1000)
        32
        """
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
            raise ValueError(f"rows must be a positive int, found {rows!r}")
        size = rows if self.minibatch_size is None else min(self.minibatch_size, rows)
        return self.epochs * math.ceil(rows / size)

    def _minibatches(self, batch: TensorDictBase, size: int) -> list[TensorDictBase]:
        n = batch.shape[0]
        if size >= n:
            # a shallow copy keeps the loss's writes out of the batch, as a slice would, for a
            # fifth of the cost of slicing every leaf
            return [batch.copy()]
        if self.shuffle:
            # all minibatches of the pass are gathered before the first update, from one draw
            # (one gather per leaf, then views: the same rows as gathering each minibatch)
            batch = batch[torch.randperm(n)]
        # views of consecutive rows, split once per leaf (half the cost of slicing per
        # minibatch)
        return list(batch.split(size))

    def _update(self, mb: TensorDictBase) -> dict[str, torch.Tensor]:
        after = self.target_updater.step if self.target_updater is not None else None
        # the actor (and the targets) every policy_delay-th update: the 2nd, 4th ... (SB3)
        actor_turn = self._actor_step is not None and (self.updates + 1) % self.policy_delay == 0
        if self.skip_actor_loss and not actor_turn:
            value, _ = self.loss_module.value_loss(mb)
            out = TensorDict({self.loss_keys[0]: value})
        else:
            out = self.loss_module(mb)
        if self._actor_step is None:
            warm = self.updates < self.warmup_updates  # (0 without a warm-up)
            step = self._warmup_step if warm else self._gradient_step
            scalars = step(out, after_step=after)
        else:
            # the actor's backward goes first: its terms read the critics' parameters, which
            # the critics' step changes in place (a backward after it would fail, or with a
            # fused optimizer silently use the new values)
            actor = self._actor_step(out) if actor_turn else {}
            scalars = self._gradient_step(out, after_step=after if actor_turn else None)
            if "grad_norm" in actor:
                actor["actor_grad_norm"] = actor.pop("grad_norm")
            scalars.update(actor)
        self.updates += 1
        if self.priority_buffer is not None:
            priority = mb.get(self.priority_key, None)
            if priority is None:
                priority = out.get(self.priority_key, None)
            index = mb.get("index", None)
            if priority is None or index is None:
                raise KeyError(
                    f"priority_buffer needs 'index' in the batch and {self.priority_key!r} from "
                    "the loss (sample from a prioritized TensorDict buffer)"
                )
            self.priority_buffer.update_priority(index, priority.detach())
        return scalars

    def __repr__(self) -> str:
        shuffle = ", shuffle=True" if self.shuffle else ""
        if self.sequence_length is not None:
            shuffle += f", sequence_length={self.sequence_length}"
        delay = f", policy_delay={self.policy_delay}" if self._actor_step is not None else ""
        if self.warmup_updates:
            delay += f", warmup_updates={self.warmup_updates}"
        return (f"Learner({type(self.loss_module).__name__}, minibatch_size="
                f"{self.minibatch_size}, epochs={self.epochs}{shuffle}{delay})")
