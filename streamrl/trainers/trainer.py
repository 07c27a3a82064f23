"""Trainer: TorchRL's hook-driven training loop over a collector, a loss and hooks."""

from __future__ import annotations

import inspect
import os
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from tensordict import TensorDictBase

from streamrl.checkpoint import Checkpoint, CheckpointRotation
from streamrl.ops.gradient_step import scalar_entries
from streamrl.train import load_checkpoint, save_checkpoint
from streamrl.trainers._checkpointing import (
    TrainerState,
    check_checkpoint_args,
    manifest_metadata,
    sync_components,
)
from streamrl.trainers._checks import check_name, positive_int
from streamrl.trainers.optim_hooks import OptimizerHook

__all__ = ["Trainer"]

_BATCH, _SUB, _LOSSES, _INDEX = object(), object(), object(), 0
# destination -> the positional arguments its ops are called with (placeholders, to check a
# registration against the op's signature before training starts)
DESTINATIONS: dict[str, tuple[Any, ...]] = {
    "setup": (),
    "batch_process": (_BATCH,),
    "pre_steps_log": (_BATCH,),
    "pre_optim_steps": (),
    "pre_epoch_log": (_BATCH,),
    "pre_epoch": (_BATCH,),
    "process_optim_batch": (_BATCH,),
    "process_loss": (_LOSSES,),
    "post_loss": (_SUB,),
    "optimizer": (_LOSSES, True, None, _INDEX),
    "post_optim": (),
    "post_optim_log": (_SUB,),
    "post_epoch_log": (_BATCH,),
    "post_epoch": (),
    "post_optim_complete_log": (0, None),
    "post_steps": (),
    "post_steps_log": (_BATCH,),
    "shutdown": (),
}
_RESERVED = ("state", "loss_module", "collector")
# TorchRL 0.14 arguments this Trainer does not implement (the remote learner backend)
_NOT_IMPLEMENTED = (
    "replay_buffer", "target_net_updater", "batch_size",
    "learner_backend", "learner_backend_options", "learner_poll_interval",
)
_ASYNC_POLL_S = 0.005  # how often an async trainer looks for the first collected frames


def _op_name(op: Callable) -> str:
    name = getattr(op, "__qualname__", None)
    return name if isinstance(name, str) else type(op).__name__


def _scalar(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"only scalars can be logged, found a tensor of shape "
                             f"{tuple(value.shape)}")
        return value.item()
    return value


class Trainer:
    """TorchRL's ``Trainer``: collect a batch, run the hooks and the optimization steps, repeat.

    The trainer builds nothing itself: batches come from ``collector`` (a
    :mod:`streamrl.collectors` collector, or any iterable of TensorDicts), the updates are
    ``loss_module(sub_batch)`` followed by the ``"optimizer"`` ops (an
    :class:`~streamrl.trainers.OptimizerHook` updates through
    :class:`streamrl.ops.GradientStep`, the arithmetic :class:`streamrl.ops.Learner` uses), and
    everything else (replay, logging, weight updates, evaluation) is a hook registered with
    :meth:`register_op` at one of these points of each collected batch:

    ``batch_process(batch)`` -> ``pre_steps_log(batch)`` -> (once ``init_random_frames`` of the
    collector are collected) ``pre_optim_steps()``, then ``num_epochs`` times:
    [``pre_epoch_log(batch)``, ``pre_epoch(batch)``, then ``optim_steps_per_batch`` times:
    ``process_optim_batch(batch)`` -> ``loss_module`` -> ``process_loss(losses)`` ->
    ``post_loss(sub_batch)`` -> ``optimizer(losses, clip_grad_norm, clip_norm, index)`` ->
    ``post_optim()`` -> ``post_optim_log(sub_batch)``; then ``post_epoch_log(batch)``,
    ``post_epoch()``] -> ``post_optim_complete_log(optim_count, average_losses)`` ->
    ``post_steps()`` -> ``post_steps_log(batch)``. ``setup()`` runs before the first batch and
    ``shutdown()`` at the end.

    Ops of ``batch_process``, ``pre_epoch``, ``process_optim_batch`` and ``process_loss``
    return the new batch (``None`` keeps it; at ``process_optim_batch`` ``None`` skips the
    update), ``optimizer`` ops return the losses (or ``None``), and ``*_log`` ops return a dict
    of scalars to log (``"log_pbar": True`` also shows them on the progress bar) or ``None``.
    Keyword arguments given to :meth:`register_op` are passed to the op at every call.

    Values are sent to ``logger.log_scalar(name, value, step=collected_frames)`` at most every
    ``log_interval`` frames per name. With ``save_trainer_file``, :meth:`state_dict` is saved
    atomically every ``save_trainer_interval`` frames and at the end.

    Args:
        collector: iterable of ``[*batch]`` TensorDicts (a collector: its ``shutdown()``,
            ``set_seed()`` and ``init_random_frames`` are used when it has them).
        total_frames: stop once this many frames (times ``frame_skip``) are collected.
        frame_skip: env frames per collected frame.
        optim_steps_per_batch: optimization steps per collected batch and epoch.
        loss_module: ``TensorDict -> TensorDict`` of losses.
        optimizer: if given, an :class:`OptimizerHook` over it is registered (with an
            ``optimization_stepper``, only its state is saved, as module ``"optimizer"``).
        optimization_stepper: an :class:`~streamrl.trainers.OptimizationStepper` whose
            ``step(trainer, sub_batch)`` replaces ``loss_module`` -> ``process_loss`` ->
            ``post_loss`` -> ``optimizer`` for each sub-batch (it calls
            :meth:`compute_loss`); ``post_optim`` and the logging still run around it.
        logger: a :mod:`streamrl.record` logger (anything with ``log_scalar``).
        clip_grad_norm: clip the total norm (``True``) or each partial derivative (``False``)
            at ``clip_norm``.
        clip_norm: the clipping value (``None``: no clipping).
        progress_bar: show a tqdm bar of collected frames.
        seed: seeds torch, numpy, ``random`` and the collector (:meth:`set_seed`).
        save_trainer_interval, log_interval: in frames.
        save_trainer_file: where :meth:`save_trainer` writes.
        num_epochs: passes of ``optim_steps_per_batch`` steps over each batch.
        log_timings: register a :class:`~streamrl.trainers.LogTiming` hook.
        auto_log_optim_steps: log ``optim_steps`` and the averaged losses after each batch's
            optimization.
        async_collection: collect in the background (``collector.start()``: a collector
            built with ``replay_buffer=``) while the trainer optimizes without waiting for
            batches: each iteration's hooks get ``None`` as the batch (``batch_process`` is
            skipped), the steps sample the buffer (register a :class:`ReplayBufferTrainer`
            over the same buffer), and ``utd_ratio`` is logged.
        checkpoint: a :class:`streamrl.checkpoint.Checkpoint`; the trainer adds its pieces
            as components (``loss_module``, ``collector``, ``trainer_state``, ``optimizer``,
            ``replay_buffer``, ``trainer_module.<name>``) unless already there, and
            :meth:`save_trainer` / :meth:`load_from_file` go through it.
        checkpoint_rotation: a :class:`streamrl.checkpoint.CheckpointRotation` for the
            scheduled saves (needs ``checkpoint``; not with ``save_trainer_file``).
        checkpoint_metadata: ``trainer -> mapping`` added to each rotated save's metadata.

    TorchRL's ``learner_backend`` (and the ``replay_buffer``, ``target_net_updater`` and
    ``batch_size`` of its remote learners) are not implemented and raise ``TypeError``.

    >>> from tensordict import TensorDict
    >>> from streamrl.objectives import LossModule
    >>> class MSE(LossModule):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.net = torch.nn.Linear(2, 1)
    ...     def forward(self, td):
    ...         return TensorDict({"loss_mse": self.net(td["x"]).pow(2).mean()})
    >>> batches = [TensorDict({"x": torch.randn(8, 2)}, [8]) for _ in range(3)]
    >>> loss = MSE()
    >>> trainer = Trainer(collector=batches, total_frames=24, frame_skip=1,
    ...                   optim_steps_per_batch=2, loss_module=loss,
    ...                   optimizer=torch.optim.SGD(loss.parameters(), lr=0.1),
    ...                   progress_bar=False)
    >>> trainer.train()
    >>> trainer.collected_frames, trainer.optim_count
    (24, 6)
    """

    def __init__(
        self,
        *,
        collector: Any,
        total_frames: int,
        frame_skip: int,
        optim_steps_per_batch: int,
        loss_module: Callable[[TensorDictBase], TensorDictBase],
        optimizer: torch.optim.Optimizer | None = None,
        optimization_stepper: Any = None,
        logger: Any = None,
        clip_grad_norm: bool = True,
        clip_norm: float | None = None,
        progress_bar: bool = True,
        seed: int | None = None,
        save_trainer_interval: int = 10000,
        log_interval: int = 10000,
        save_trainer_file: str | os.PathLike | None = None,
        num_epochs: int = 1,
        log_timings: bool = False,
        auto_log_optim_steps: bool = True,
        async_collection: bool = False,
        checkpoint: Checkpoint | None = None,
        checkpoint_rotation: CheckpointRotation | None = None,
        checkpoint_metadata: Callable[[Trainer], Mapping[str, Any]] | None = None,
        **unsupported: Any,
    ) -> None:
        if unsupported:
            known = sorted(k for k in unsupported if k in _NOT_IMPLEMENTED)
            other = sorted(k for k in unsupported if k not in _NOT_IMPLEMENTED)
            parts = []
            if known:
                parts.append(f"TorchRL's {known} are not implemented by streamrl's Trainer")
            if other:
                parts.append(f"unexpected keyword arguments {other}")
            raise TypeError("Trainer(): " + "; ".join(parts))
        if not hasattr(collector, "__iter__"):
            raise TypeError(
                f"collector must be an iterable of TensorDicts, found {type(collector).__name__}"
            )
        positive_int(total_frames, "total_frames")
        positive_int(frame_skip, "frame_skip")
        positive_int(optim_steps_per_batch, "optim_steps_per_batch")
        positive_int(save_trainer_interval, "save_trainer_interval")
        positive_int(log_interval, "log_interval")
        positive_int(num_epochs, "num_epochs")
        if not callable(loss_module):
            raise TypeError(f"loss_module must be callable, found {type(loss_module).__name__}")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer must be a torch.optim.Optimizer or None, found "
                f"{type(optimizer).__name__}"
            )
        if optimization_stepper is not None and not callable(
                getattr(optimization_stepper, "step", None)):
            raise TypeError(
                f"optimization_stepper must have step(trainer, sub_batch) (an "
                f"OptimizationStepper), found {type(optimization_stepper).__name__}"
            )
        if logger is not None and not callable(getattr(logger, "log_scalar", None)):
            raise TypeError(
                f"logger must have log_scalar(name, value, step), found {type(logger).__name__}"
            )
        for name, flag in (("clip_grad_norm", clip_grad_norm), ("progress_bar", progress_bar),
                           ("log_timings", log_timings),
                           ("auto_log_optim_steps", auto_log_optim_steps),
                           ("async_collection", async_collection)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, found {type(flag).__name__}")
        if clip_norm is not None and not (isinstance(clip_norm, (int, float))
                                          and not isinstance(clip_norm, bool) and clip_norm > 0):
            raise ValueError(f"clip_norm must be a number > 0 or None, found {clip_norm!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None, found {type(seed).__name__}")
        if save_trainer_file is not None and not isinstance(save_trainer_file, (str, os.PathLike)):
            raise TypeError(
                f"save_trainer_file must be a path or None, found {type(save_trainer_file).__name__}"
            )
        check_checkpoint_args(checkpoint, checkpoint_rotation, checkpoint_metadata,
                              save_trainer_file)
        self.checkpoint = checkpoint
        self.checkpoint_rotation = checkpoint_rotation
        self.checkpoint_metadata = checkpoint_metadata
        self._checkpoint_state = TrainerState(self)
        self.collector = collector
        self.total_frames = total_frames
        self.frame_skip = frame_skip
        self.optim_steps_per_batch = optim_steps_per_batch
        self.loss_module = loss_module
        self.optimizer = optimizer
        self.optimization_stepper = optimization_stepper
        self.logger = logger
        self.clip_grad_norm = clip_grad_norm
        self.clip_norm = clip_norm
        self.progress_bar = progress_bar
        self.seed = seed
        self.save_trainer_interval = save_trainer_interval
        self.log_interval = log_interval
        self.save_trainer_file = save_trainer_file
        self.num_epochs = num_epochs
        self.auto_log_optim_steps = auto_log_optim_steps
        if async_collection and not (callable(getattr(collector, "start", None))
                                     and getattr(collector, "replay_buffer", None) is not None):
            raise ValueError(
                "async_collection=True needs a collector that fills a replay buffer in the "
                "background: a streamrl collector built with replay_buffer=..., found "
                f"{type(collector).__name__}"
                + ("" if callable(getattr(collector, "start", None)) else " (no start())")
            )
        self.async_collection = async_collection

        self._ops: dict[str, list[tuple[Callable, dict[str, Any]]]] = {d: [] for d in DESTINATIONS}
        self._modules: dict[str, Any] = {}
        self.collected_frames = 0
        self.optim_count = 0
        self.last_logged: dict[str, Any] = {}
        self.timings: dict[str, list[float]] = {}
        self.stop_reason: str | None = None
        self._stop_requested = False
        self._last_log: dict[str, int] = {}
        self._last_save = 0
        self._pbar: Any = None
        self._pbar_values: dict[str, Any] = {}
        self._closed = False
        self._shutdown_ran = False
        if seed is not None:
            self.set_seed()
        if optimization_stepper is not None:
            # the stepper replaces the loss call and the optimizer hooks; the optimizer's
            # state is still saved under "optimizer"
            if callable(getattr(optimization_stepper, "register", None)):
                optimization_stepper.register(self)
            if optimizer is not None:
                self.register_module("optimizer", OptimizerHook(optimizer))
        elif optimizer is not None:
            OptimizerHook(optimizer).register(self)
        if log_timings:
            from streamrl.trainers.log_hooks import LogTiming

            LogTiming().register(self)
        if checkpoint is not None:
            sync_components(self, checkpoint)

    # ------------------------------------------------------------------ registration
    def register_op(self, dest: str, op: Callable, **kwargs: Any) -> None:
        """Call ``op`` at ``dest`` (see the class docstring for the destinations and what
        their ops receive and return); ``kwargs`` are passed at every call. The call is checked
        against ``op``'s signature here, so a wrong registration fails before training."""
        if dest not in DESTINATIONS:
            raise ValueError(
                f"unknown hook destination {dest!r}; choose one of {list(DESTINATIONS)}"
            )
        if not callable(op):
            raise TypeError(f"op registered at {dest!r} must be callable, found "
                            f"{type(op).__name__}")
        try:
            signature = inspect.signature(op)
        except (TypeError, ValueError):  # some builtins have none: nothing to check
            signature = None
        if signature is not None:
            try:
                signature.bind(*DESTINATIONS[dest], **kwargs)
            except TypeError as e:
                n = len(DESTINATIONS[dest])
                raise TypeError(
                    f"{_op_name(op)} cannot be registered at {dest!r}: ops there are called with "
                    f"{n} positional argument{'s' if n != 1 else ''}"
                    f"{' and ' + str(sorted(kwargs)) if kwargs else ''} ({e})"
                ) from None
        self._ops[dest].append((op, kwargs))

    def register_module(self, module_name: str, module: Any) -> None:
        """Make ``module``'s ``state_dict()`` part of the trainer's, under ``module_name``."""
        check_name(module_name)
        if module_name in _RESERVED:
            raise ValueError(f"module name {module_name!r} is reserved ({list(_RESERVED)})")
        if module_name in self._modules:
            raise RuntimeError(
                f"a module is already registered as {module_name!r}; pick another name"
            )
        if not (callable(getattr(module, "state_dict", None))
                and callable(getattr(module, "load_state_dict", None))):
            raise TypeError(
                f"module {module_name!r} must have state_dict() and load_state_dict(), found "
                f"{type(module).__name__}"
            )
        self._modules[module_name] = module
        if self.checkpoint is not None:
            sync_components(self, self.checkpoint)

    @property
    def modules(self) -> dict[str, Any]:
        """The registered modules, by name (a copy)."""
        return dict(self._modules)

    # ------------------------------------------------------------------ running
    def train(self) -> None:
        """Run until ``total_frames`` are collected, the collector ends or :meth:`request_stop`;
        then :meth:`shutdown` (also on error)."""
        if self._closed:
            raise RuntimeError("the trainer is shut down; build a new one")
        if not self._ops["optimizer"] and self.optimization_stepper is None:
            raise RuntimeError(
                "no optimizer: pass Trainer(optimizer=...), an optimization_stepper, or "
                "register an OptimizerHook"
            )
        try:
            self._call_ops("setup")
            if self.progress_bar:
                from tqdm.auto import tqdm

                self._pbar = tqdm(total=self.total_frames, initial=self.collected_frames,
                                  unit="frame")
            init_random_frames = getattr(self.collector, "init_random_frames", None) or 0
            batches = self._async_batches() if self.async_collection else self.collector
            for batch in batches:
                if self._stop_requested or self.collected_frames >= self.total_frames:
                    break
                if batch is None:  # async: the collector writes into the buffer itself
                    frames = self._async_frames() - self.collected_frames
                else:
                    batch = self._transform("batch_process", batch)
                    frames = self._frames_in(batch)
                self.collected_frames += frames
                self._log_ops("pre_steps_log", batch)
                if self.collected_frames > init_random_frames:
                    self.optim_steps(batch)
                    if self.async_collection:
                        self._log_utd_ratio()
                self._call_ops("post_steps")
                self._log_ops("post_steps_log", batch)
                if self._pbar is not None:
                    self._pbar.update(frames)
                    if self._pbar_values:
                        self._pbar.set_postfix_str(", ".join(
                            f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}"
                            for k, v in self._pbar_values.items()))
                self.save_trainer()
                if self._stop_requested or self.collected_frames >= self.total_frames:
                    break
            self.save_trainer(force_save=True)
        finally:
            self.shutdown()

    def optim_steps(self, batch: TensorDictBase) -> None:
        """The optimization of one collected batch (``num_epochs`` x ``optim_steps_per_batch``
        steps, with their hooks)."""
        self._call_ops("pre_optim_steps")
        sums: dict[str, float] = {}
        steps = 0
        for _ in range(self.num_epochs):
            self._log_ops("pre_epoch_log", batch)
            epoch_batch = self._transform("pre_epoch", batch)
            for _ in range(self.optim_steps_per_batch):
                sub = self._process_optim_batch(epoch_batch)
                if sub is None:
                    continue
                self.optim_count += 1
                if self.optimization_stepper is not None:
                    losses = self._timed("optimization_stepper",
                                         self.optimization_stepper.step, self, sub)
                    if not isinstance(losses, TensorDictBase):
                        raise TypeError(f"optimization_stepper.step must return a TensorDict, "
                                        f"found {type(losses).__name__}")
                else:
                    losses = self._optimize(sub)
                self._call_ops("post_optim")
                self._log_ops("post_optim_log", sub)
                for k, v in scalar_entries(losses).items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                steps += 1
            self._log_ops("post_epoch_log", epoch_batch)
            self._call_ops("post_epoch")
        average = {k: v / steps for k, v in sums.items()} if steps else None
        self._log_ops("post_optim_complete_log", self.optim_count, average)
        if self.auto_log_optim_steps and average is not None:
            self._log(optim_steps=self.optim_count, **average)

    def _async_batches(self) -> Any:
        """``async_collection``: start the collector's background collection, wait for its
        first written frames, then yield ``None`` (optimize on the buffer) until ``total_frames``
        are collected. A collection that ends early or fails ends the loop (its error is
        raised by the collector's shutdown)."""
        collector = self.collector
        collector.start()
        while len(collector.replay_buffer) == 0:
            if not collector.is_running():
                collector.shutdown()  # raises the collection's error, if any
                return
            time.sleep(_ASYNC_POLL_S)
        while self.collected_frames < self.total_frames:
            if not collector.is_running() and self._async_frames() <= self.collected_frames:
                collector.shutdown()
                return
            yield None

    def _async_frames(self) -> int:
        """``async_collection``: the frames in the replay buffer so far (a collector without
        ``written_frames``: the frames it counted)."""
        written = getattr(self.collector, "written_frames", None)
        return (self.collector.frames if written is None else written) * self.frame_skip

    def _log_utd_ratio(self) -> None:
        """``async_collection``: rows sampled per row collected, as TorchRL logs it."""
        batch_size = getattr(self.collector.replay_buffer, "batch_size", None)
        if batch_size and self.collected_frames:
            self._log(utd_ratio=batch_size * self.optim_count * self.frame_skip
                      / self.collected_frames)

    def compute_loss(self, sub_batch: TensorDictBase, method: str | None = None) -> Any:
        """The loss module on ``sub_batch`` (or its method ``method``): what an
        :class:`~streamrl.trainers.OptimizationStepper` calls."""
        if method is None:
            return self.loss_module(sub_batch)
        fn = getattr(self.loss_module, method, None)
        if not callable(fn):
            raise AttributeError(f"the loss module {type(self.loss_module).__name__} has no "
                                 f"method {method!r}")
        return fn(sub_batch)

    def _optimize(self, sub: TensorDictBase) -> TensorDictBase:
        """The hook path of one step: loss, ``process_loss``, ``post_loss``, ``optimizer``."""
        losses = self._timed("loss_module", self.loss_module, sub)
        if not isinstance(losses, TensorDictBase):
            raise TypeError(f"loss_module must return a TensorDict, found "
                            f"{type(losses).__name__}")
        losses = self._transform("process_loss", losses)
        self._call_ops("post_loss", sub)
        for i, (op, kwargs) in enumerate(self._ops["optimizer"]):
            out = self._timed(_op_name(op), op, losses, self.clip_grad_norm,
                              self.clip_norm, i, **kwargs)
            if out is not None:
                losses = out
        return losses

    def request_stop(self, reason: str | None = None) -> None:
        """Stop training at the end of the current batch (``reason`` is kept in
        :attr:`stop_reason`)."""
        self._stop_requested = True
        self.stop_reason = reason

    def shutdown(self) -> None:
        """Close the progress bar, run the ``shutdown`` ops once, shut the collector down and
        flush the logger. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._pbar is not None:
                self._pbar.close()
                self._pbar = None
            if not self._shutdown_ran:
                self._shutdown_ran = True
                self._call_ops("shutdown")
        finally:
            if callable(getattr(self.collector, "shutdown", None)):
                self.collector.shutdown()
            if callable(getattr(self.logger, "flush", None)):
                self.logger.flush()

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def set_seed(self) -> None:
        """Seed torch, numpy, ``random`` and the collector with :attr:`seed`."""
        if self.seed is None:
            raise ValueError("the trainer has no seed (Trainer(seed=...))")
        torch.manual_seed(self.seed)
        np.random.seed(self.seed)
        random.seed(self.seed)
        if callable(getattr(self.collector, "set_seed", None)):
            self.collector.set_seed(self.seed)

    # ------------------------------------------------------------------ logging
    def _log(self, log_pbar: bool = False, **kwargs: Any) -> None:
        """Record values; send each to the logger once more than ``log_interval`` frames were
        collected since it was last sent (strictly more, as TorchRL's trainer does, so that a
        ported script logs at the same steps)."""
        for key, value in kwargs.items():
            value = _scalar(value)
            self.last_logged[key] = value
            if log_pbar:
                self._pbar_values[key] = value
            if self.logger is None or not isinstance(value, (int, float)):
                continue
            if self.collected_frames - self._last_log.get(key, 0) > self.log_interval:
                self._last_log[key] = self.collected_frames
                self.logger.log_scalar(key, value, step=self.collected_frames)

    # ------------------------------------------------------------------ saving
    def state_dict(self) -> dict[str, Any]:
        """The loop's counters, the loss module's and the collector's states (when they have
        one) and every registered module's, by name."""
        state: dict[str, Any] = {"state": self._checkpoint_state.state_dict()}
        if callable(getattr(self.loss_module, "state_dict", None)):
            state["loss_module"] = self.loss_module.state_dict()
        if callable(getattr(self.collector, "state_dict", None)):
            state["collector"] = self.collector.state_dict()
        for name, module in self._modules.items():
            state[name] = module.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (every registered module must be in it)."""
        if not isinstance(state_dict, dict) or "state" not in state_dict:
            raise ValueError("not a Trainer state_dict: no 'state' entry")
        missing = [name for name in self._modules if name not in state_dict]
        if missing:
            raise KeyError(f"the state has no entry for the registered modules {missing}; it "
                           f"has {sorted(state_dict)}")
        self._checkpoint_state.load_state_dict(state_dict["state"])
        if "loss_module" in state_dict and callable(getattr(self.loss_module, "load_state_dict",
                                                            None)):
            self.loss_module.load_state_dict(state_dict["loss_module"])
        if "collector" in state_dict and callable(getattr(self.collector, "load_state_dict",
                                                          None)):
            self.collector.load_state_dict(state_dict["collector"])
        for name, module in self._modules.items():
            module.load_state_dict(state_dict[name])

    def save_trainer(self, force_save: bool = False) -> None:
        """Save the trainer if ``save_trainer_interval`` frames passed since the last save, or
        ``force_save``: with a ``checkpoint``, its components (the trainer's pieces added
        to it) to ``checkpoint_rotation`` (step: the collected frames; metadata:
        ``checkpoint_metadata(trainer)`` and the counters) or to ``save_trainer_file``;
        without, :meth:`state_dict` to ``save_trainer_file``. Writes are atomic; nothing is
        saved without a destination."""
        if self.save_trainer_file is None and self.checkpoint_rotation is None:
            return
        if not (force_save
                or self.collected_frames - self._last_save >= self.save_trainer_interval):
            return
        self._last_save = self.collected_frames
        if self.checkpoint is None:
            save_checkpoint(self.save_trainer_file, self.state_dict())
            return
        sync_components(self, self.checkpoint)
        if self.checkpoint_rotation is not None:
            self.checkpoint_rotation.save(self.checkpoint, step=self.collected_frames,
                                          metadata=manifest_metadata(self))
        else:
            self.checkpoint.save(self.save_trainer_file)

    def load_from_file(self, file: str | os.PathLike, **kwargs: Any) -> Trainer:
        """Load a file written by :meth:`save_trainer` into this trainer (no pickled code
        runs). Keywords: ``map_location``; with a ``checkpoint``, also ``strict`` and
        ``components`` (see :meth:`streamrl.checkpoint.Checkpoint.load`)."""
        allowed = {"map_location"} | ({"strict", "components"} if self.checkpoint else set())
        unknown = sorted(set(kwargs) - allowed)
        if unknown:
            raise TypeError(f"load_from_file takes only {sorted(allowed)}; found {unknown}")
        if self.checkpoint is not None:
            sync_components(self, self.checkpoint)
            self.checkpoint.load(file, map_location=kwargs.get("map_location", "cpu"),
                                 strict=kwargs.get("strict"),
                                 components=kwargs.get("components"))
        else:
            self.load_state_dict(load_checkpoint(file, kwargs.get("map_location", "cpu")))
        return self

    # ------------------------------------------------------------------ internals
    def _timed(self, name: str, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            entry = self.timings.setdefault(f"hook/{name}", [0.0, 0])
            entry[0] += time.perf_counter() - start
            entry[1] += 1

    def _call_ops(self, dest: str, *args: Any) -> None:
        for op, kwargs in self._ops[dest]:
            self._timed(_op_name(op), op, *args, **kwargs)

    def _transform(self, dest: str, value: Any) -> Any:
        for op, kwargs in self._ops[dest]:
            out = self._timed(_op_name(op), op, value, **kwargs)
            if out is not None:
                value = out
        return value

    def _process_optim_batch(self, batch: TensorDictBase) -> TensorDictBase | None:
        if not self._ops["process_optim_batch"]:
            # a shallow copy keeps what the loss writes out of the collected batch
            return batch.copy()
        for op, kwargs in self._ops["process_optim_batch"]:
            batch = self._timed(_op_name(op), op, batch, **kwargs)
            if batch is None:
                return None
        return batch

    def _log_ops(self, dest: str, *args: Any) -> None:
        for op, kwargs in self._ops[dest]:
            out = self._timed(_op_name(op), op, *args, **kwargs)
            if out is None:
                continue
            if not isinstance(out, dict):
                raise TypeError(f"{_op_name(op)} at {dest!r} must return a dict of values to "
                                f"log or None, found {type(out).__name__}")
            out = dict(out)
            log_pbar = bool(out.pop("log_pbar", False))
            self._log(log_pbar=log_pbar, **out)

    def _frames_in(self, batch: TensorDictBase) -> int:
        mask = batch.get(("collector", "mask"), None)
        n = int(mask.sum()) if mask is not None else batch.batch_size.numel()
        return n * self.frame_skip

    def __repr__(self) -> str:
        hooks = {d: len(ops) for d, ops in self._ops.items() if ops}
        return (f"Trainer(total_frames={self.total_frames}, collected_frames="
                f"{self.collected_frames}, optim_count={self.optim_count}, hooks={hooks})")

