"""What every collector shares: the graph's tail (post-processing, trajectories, replay
buffer), iteration, background collection, seeding, weights and shutdown."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn

from streamrl.collectors._background import BackgroundRun
from streamrl.collectors._options import CollectorOptions
from streamrl.collectors.utils import split_trajectories
from streamrl.graph import Graph, Map, Node
from streamrl.ops import CompleteTrajectories, PolicyWeights, ReplaySink, Rollout, Trigger

# start() keeps each batch's frame count until this many later batches are written (then
# drops the written ones): a long run of small batches keeps a bounded list
_MARKS_KEPT = 64


class _Tail:
    """The Map after the rollouts: counts frames, moves the batch to the storing device,
    splits it into trajectories and post-processes it (ints, the pending-trajectory counts of
    :class:`~streamrl.ops.CompleteTrajectories`, pass through)."""

    def __init__(self, count: Callable[[int], None] | None, device: torch.device | None,
                 split: bool, postproc: Callable[[Any], Any] | None):
        self.count, self.device, self.split, self.postproc = count, device, split, postproc
        self.__name__ = "postproc"

    def __call__(self, batch: Any) -> Any:
        if isinstance(batch, int):
            return batch
        if self.count is not None:
            self.count(batch.numel())
        if self.device is not None:
            batch = batch.to(self.device)
        if self.split:
            batch = split_trajectories(batch)
        if self.postproc is not None:
            batch = self.postproc(batch)
        return batch


class DataCollectorBase:
    """Iterates the batches a collecting graph produces (``for batch in collector``).

    Subclasses build the collecting head in :meth:`_head` (rollouts, and how their batches
    are joined); the base appends the tail every collector shares::

        head -> [postproc Map]          (storing_device, split_trajs, postproc; counts frames)
             -> [CompleteTrajectories]  (trajs_per_batch)
             -> [ReplaySink]            (replay_buffer: the iterator yields None)

    (each stage only when its argument asks for it: a plain collector is just its head).

    A lockstep head is paced by a :class:`~streamrl.ops.Trigger` pulled once per batch, so
    nothing is collected before the loop asks for it.
    """

    _multi = False
    _graph_name = "collector"

    def __init__(self, policy: Callable[[TensorDictBase], TensorDictBase] | None,
                 options: CollectorOptions, num_workers: int = 1):
        if options.policy_factory is not None:
            if policy is not None:
                raise TypeError(f"{type(self).__name__} takes policy or policy_factory, not both")
            if self._multi:
                raise TypeError(
                    f"{type(self).__name__} does not take policy_factory: its workers share "
                    "one policy's weights, so pass the policy itself"
                )
            policy = options.policy_factory()
        if policy is not None and not callable(policy):
            raise TypeError(f"policy must be callable or None, found {type(policy).__name__}")
        self.policy = policy
        # TorchRL's flags: whether the rollouts run the policy compiled / in a CUDA graph
        self.compiled_policy = options.compile_policy is not None
        self.cudagraphed_policy = options.cudagraph_policy is not None
        self.options = options
        self.num_workers = num_workers
        self.frames_per_batch = options.frames_per_batch
        self.total_frames = options.total_frames
        self.max_frames_per_traj = options.max_frames_per_traj
        self.init_random_frames = options.init_random_frames
        self.exploration_type = options.exploration_type
        self.replay_buffer = options.replay_buffer
        self.split_trajs = options.split_trajs
        self.postproc = options.postproc
        self.reset_at_each_iter = options.reset_at_each_iter
        self.trajs_per_batch = options.trajs_per_batch
        self.traj_format = options.traj_format
        self.storing_device, self.env_device, self.policy_device = options.devices()
        self.device = options.device
        self.frames = 0
        self._batches = 0  # yielded by the loop (start() counts its own)
        self._counted = False
        self._rollouts: list[Rollout] = []
        # a restored rollout state, applied by the next pass's graph (see state_dict)
        self._loaded_rollout: dict | None = None
        self._iterator: Iterator[Any] | None = None
        self._background: BackgroundRun | None = None
        # with start(): ``frames`` after each batch left the rollouts (the first: before any),
        # from batch ``offset`` on (the marks of batches written long ago are dropped): one
        # tuple, replaced whole, so that a reader on another thread sees a consistent pair
        self._frame_marks: tuple[int, list[int]] | None = None
        self._graph: Graph | None = None
        self._closed = False

    # ------------------------------------------------------------------ to implement
    def _head(self, g: Graph, gated: bool, budget: int | None) -> tuple[Node, Trigger | None]:
        """Add the rollouts to ``g``; return the node whose output is one collected batch per
        item and the trigger pacing them (None: free-running). ``budget``: the batches of
        ``frames_per_batch`` the rollouts produce in all (None: endless)."""
        raise NotImplementedError

    def _close_envs(self) -> None:
        """Close the envs the collector holds (``shutdown(close_env=True)``)."""

    # ------------------------------------------------------------------ the graph
    def _build(self, gated: bool = True) -> tuple[Graph, Node, Trigger | None]:
        g = Graph(self._graph_name)
        self._rollouts = []
        trajs = self.trajs_per_batch is not None
        # the rollouts stop by themselves after the budget's batches, so that free-running
        # ones write no extra batch into a replay buffer (and trajs_per_batch ends)
        budget = None if self.total_frames == -1 else math.ceil(self.total_frames / self.frames_per_batch)
        head, trigger = self._head(g, gated, budget)
        node = head
        rb = self.replay_buffer
        self._counted = self._needs_tail()
        if self._counted:  # else the iterator counts the frames it yields
            tail = g.add(Map(_Tail(self._count, self.storing_device, self.split_trajs,
                                   None if trajs else self.postproc)), name="postproc")
            g.connect(head, tail, capacity=1)
            node = tail
        if trajs:
            asm = g.add(CompleteTrajectories(
                self.trajs_per_batch if rb is None else None,
                traj_format=self.traj_format or "padded",
                num_workers=self.num_workers,
                report_pending=trigger is not None and rb is None,
            ), name="trajectories")
            g.connect(node, asm, capacity=1)
            node = asm
            if self.postproc is not None and rb is None:
                post = g.add(Map(_Tail(None, None, False, self.postproc)), name="traj_postproc")
                g.connect(node, post, capacity=1)
                node = post
        if rb is not None:
            sink = g.add(ReplaySink(rb, emit_counts=True), name="replay", placement="thread")
            g.connect(node, sink, capacity=1)
            node = sink
        return g, node, trigger

    def _count(self, n: int) -> None:
        self.frames += n
        run, frame_marks = self._background, self._frame_marks
        if frame_marks is None or run is None:
            return
        offset, marks = frame_marks
        marks.append(self.frames)
        written = run.batches - offset  # the marks before this one are read no more
        if written >= _MARKS_KEPT:
            self._frame_marks = (offset + written, marks[written:])

    def _needs_tail(self) -> bool:
        return (self.storing_device is not None or self.split_trajs or self.postproc is not None
                or self.trajs_per_batch is not None or self.replay_buffer is not None)

    def graph(self) -> Graph:
        """A new instance of the graph this collector runs (to print, draw or inspect)."""
        running, loaded = self._rollouts, self._loaded_rollout
        try:
            return self._build()[0]
        finally:
            # reset() keeps addressing the pass that runs; a restored state waits for the
            # next pass
            self._rollouts, self._loaded_rollout = running, loaded

    # ------------------------------------------------------------------ iteration
    @property
    def num_batches(self) -> int | None:
        """Batches one pass yields (``None``: not known ahead: ``total_frames == -1`` or
        ``trajs_per_batch``)."""
        if self.total_frames == -1 or self.trajs_per_batch is not None:
            return None
        return math.ceil(self.total_frames / self.frames_per_batch)

    def __len__(self) -> int:
        n = self.num_batches
        if n is None:
            raise TypeError(
                f"{type(self).__name__} has no length: total_frames=-1 (endless) or "
                "trajs_per_batch (batch count not known ahead)"
            )
        return n

    def __iter__(self) -> Iterator[TensorDictBase | None]:
        return self.iterator()

    def iterator(self) -> Iterator[TensorDictBase | None]:
        """Iterates through the collector: one batch per step (``None`` with a replay buffer,
        which the collector extends itself)."""
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is shut down")
        if self._background is not None and self._background.is_running():
            raise RuntimeError(
                f"{type(self).__name__} is collecting in the background (start()); call "
                "async_shutdown() before iterating"
            )
        return self._iterate()

    def _iterate(self) -> Iterator[TensorDictBase | None]:
        graph, out, trigger = self._build(gated=True)
        self._graph = graph
        stream = graph.iterate(out, capacity=1, watchdog_timeout=None)
        self._iterator = stream
        rb = self.replay_buffer
        update = self.options.update_at_each_batch
        count = 0
        try:
            while self.num_batches is None or count < self.num_batches:
                if update and trigger is not None:
                    self.update_policy_weights_()
                if trigger is not None:
                    trigger.pull()
                try:
                    item = next(stream)
                    while rb is None and isinstance(item, int):  # trajectories still pending
                        if trigger is not None:
                            trigger.pull()
                        item = next(stream)
                except StopIteration:
                    return
                count += 1
                self._batches += 1
                if not self._counted:
                    self.frames += item.numel()
                yield None if rb is not None else item
                if update and trigger is None:
                    self.update_policy_weights_()
        finally:
            if trigger is not None:
                trigger.stop()
            stream.close()
            self._iterator = None

    # ------------------------------------------------------------------ background
    def start(self) -> None:
        """Collect into the replay buffer in a background thread while the caller trains
        (the rollouts run free: no trigger). Stops after ``total_frames`` or at
        :meth:`async_shutdown`. Needs ``replay_buffer``."""
        if self.replay_buffer is None:
            raise RuntimeError(
                "start() needs a replay_buffer: background collection writes into it"
            )
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is shut down")
        if self._background is not None and self._background.is_running():
            raise RuntimeError(f"{type(self).__name__} is already collecting in the background")
        if self._iterator is not None:
            raise RuntimeError(f"{type(self).__name__} is being iterated; finish that loop first")
        graph, out, _ = self._build(gated=False)
        self._graph = graph
        stream = graph.iterate(out, capacity=1, watchdog_timeout=None)
        self._frame_marks = (0, [self.frames])
        self._background = BackgroundRun(stream, self.num_batches)

    def is_running(self) -> bool:
        """Whether :meth:`start` collection is running."""
        return self._background is not None and self._background.is_running()

    def async_shutdown(self, timeout: float | None = None, close_env: bool = True) -> None:
        """Stop :meth:`start` collection (after the batch in flight, waiting up to
        ``timeout`` seconds) and shut the collector down."""
        self.shutdown(timeout=timeout, close_env=close_env)

    # ------------------------------------------------------------------ control
    def _resolve_targets(self, worker_ids: Any) -> list[int]:
        if worker_ids is None:
            return list(range(self.num_workers))
        ids = [worker_ids] if isinstance(worker_ids, int) else list(worker_ids)
        bad = [i for i in ids if not isinstance(i, int) or not 0 <= i < self.num_workers]
        if bad:
            raise ValueError(
                f"worker_ids must be ints in [0, {self.num_workers}), found {bad}"
            )
        return ids

    def stats(self) -> dict[str, Any]:
        """A cheap snapshot of the collector's progress (TorchRL 0.14's, e.g. for
        :class:`~streamrl.record.LoggerMonitor`): ``frames``, ``batches``,
        ``requested_frames_per_batch``, and ``total_frames`` / ``completed`` unless endless,
        ``policy_version`` when the collector shares the policy's weights (the newest
        version over the workers). :meth:`graph_stats` has the per-operator metrics."""
        out: dict[str, Any] = {"frames": self.frames, "batches": self.batches,
                               "requested_frames_per_batch": self.frames_per_batch}
        if self.total_frames != -1:
            out["total_frames"] = self.total_frames
            out["completed"] = self.frames >= self.total_frames
        weights = getattr(self, "weights", None)
        if weights is not None:
            shared = weights if isinstance(weights, list) else [weights]
            out["policy_version"] = max(w.version for w in shared)
        return out

    @property
    def batches(self) -> int:
        """Batches delivered so far: yielded by the loop, or written by :meth:`start`."""
        background = self._background.batches if self._background is not None else 0
        return self._batches + background

    @property
    def written_frames(self) -> int:
        """The frames in the replay buffer so far: with :meth:`start`, ``frames`` as it
        stood when the last batch the sink has written left the rollouts (``frames`` counts
        a batch before its write); otherwise, and with ``trajs_per_batch`` (whose written
        trajectories are not the rollouts' batches), ``frames``."""
        run, frame_marks = self._background, self._frame_marks
        if run is None or frame_marks is None or self.trajs_per_batch is not None:
            return self.frames
        offset, marks = frame_marks
        return marks[max(0, min(run.batches - offset, len(marks) - 1))]

    def graph_stats(self) -> Any:
        """The collecting graph's metrics (see :meth:`streamrl.graph.Graph.stats`)."""
        if self._graph is None:
            raise RuntimeError("the collector has not run yet")
        return self._graph.stats()

    def shutdown(self, timeout: float | None = None, close_env: bool = True,
                 raise_on_error: bool = True) -> None:
        """Stop collecting (the loop, or :meth:`start`'s thread: waiting up to ``timeout``
        seconds), release worker processes and, with ``close_env``, the envs. Idempotent. An
        error of the background collection is raised here (unless ``raise_on_error=False``)."""
        self._closed = True
        error = None
        if self._background is not None:
            self._background.stop(timeout)
            error, self._background.error = self._background.error, None
        if self._iterator is not None:
            self._iterator.close()
            self._iterator = None
        if close_env:
            self._close_envs()
        if error is not None and raise_on_error:
            raise error

    def __enter__(self) -> DataCollectorBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(frames_per_batch={self.frames_per_batch}, "
            f"total_frames={self.total_frames})"
        )


def load_weights(module: nn.Module, weights: Any) -> None:
    """Copy ``weights`` (a module, a TensorDict of parameters or a state dict) into
    ``module``'s parameters and buffers, in place."""
    if isinstance(weights, dict) and not isinstance(weights, TensorDictBase):
        module.load_state_dict(weights)
        return
    if isinstance(weights, nn.Module):
        if weights is module:
            return
        weights = TensorDict.from_module(weights)
    if not isinstance(weights, TensorDictBase):
        raise TypeError(
            "policy_or_weights must be a module, a TensorDict of parameters or a state dict, "
            f"found {type(weights).__name__}"
        )
    dst = TensorDict.from_module(module)
    src_keys, dst_keys = set(weights.keys(True, True)), set(dst.keys(True, True))
    if src_keys != dst_keys:
        raise ValueError(
            "the weights do not match the policy: missing "
            f"{sorted(map(str, dst_keys - src_keys))}, unexpected {sorted(map(str, src_keys - dst_keys))}"
        )
    with torch.no_grad():
        dst.update_(weights.detach())


def publish(weights: PolicyWeights, source: Any) -> None:
    """Publish ``source`` (module, TensorDict or state dict) into shared ``weights``."""
    if source is not None:
        load_weights(weights.policy, source)
    weights.publish(None)


def check_env_fns(create_env_fn: Any) -> Sequence[Any]:
    """A non-empty list of env factories (or envs)."""
    if not isinstance(create_env_fn, (list, tuple)) or not create_env_fn:
        raise ValueError(
            "create_env_fn must be a non-empty list of env constructors (one per worker), "
            f"found {create_env_fn!r}"
        )
    return list(create_env_fn)
