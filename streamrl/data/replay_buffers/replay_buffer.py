"""ReplayBuffer: a storage, a sampler and a writer behind one lock."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDictBase
from torch.utils.data import IterableDataset

from streamrl._mp import ProcessLock
from streamrl.data.replay_buffers._prefetch import _Prefetcher
from streamrl.data.replay_buffers._state import Commit, commit_all, entry, prepare_part
from streamrl.data.replay_buffers.checkpoint import load_checkpoint, save_checkpoint
from streamrl.data.replay_buffers.rate_limiters import RateLimiter
from streamrl.data.replay_buffers.samplers import PrioritizedSampler, RandomSampler, Sampler
from streamrl.data.replay_buffers.storages import ListStorage, Storage
from streamrl.data.replay_buffers.storages.base import check_compilable
from streamrl.data.replay_buffers.writers import RoundRobinWriter, WritePlan, Writer

__all__ = ["PrioritizedReplayBuffer", "ReplayBuffer"]

_FORMAT = "streamrl.replay_buffer/1"
_DIR_FORMAT = "streamrl.replay_buffer_dir/1"  # buffer.pt of a directory checkpoint
_DIR_STATE = "buffer.pt"


def _default_collate(items):
    """Stack a list of tensors or TensorDicts; leave other lists as they are."""
    if isinstance(items, list) and items and isinstance(items[0], (torch.Tensor, TensorDictBase)):
        return torch.stack(items)
    return items


def _check_callable(transform):
    if not callable(transform):
        raise TypeError(f"a transform must be callable, found {type(transform).__name__}")
    return transform


def _check_shareable(storage: Storage, sampler: Sampler) -> None:
    if type(storage)._share is Storage._share:
        storage._share()  # raises: this storage cannot be shared
    if hasattr(sampler, "update_priority"):
        raise ValueError(
            f"shared=True: {type(sampler).__name__} keeps priorities in this process, which "
            "other processes' writes do not reach; use a sampler without priorities"
        )
    if sampler.keeps_write_state:
        raise ValueError(
            f"shared=True: {type(sampler).__name__} keeps per-write state in this process, which "
            "other processes' writes do not reach"
        )
    if getattr(sampler, "cache_values", False):
        raise ValueError(
            "shared=True: a sampler with cache_values=True would not see other processes' "
            "writes; use cache_values=False"
        )


def _check_format(state: Any, expected: str, what: str) -> None:
    found = entry(state, "format", what) if isinstance(state, dict) else None
    if found != expected:
        raise ValueError(f"not {what}: expected format {expected!r}, found "
                         f"{found!r} ({type(state).__name__})")


class _Guard:
    """The buffer's thread lock, then (``shared=True``) the lock between processes: shared
    for reads, exclusive for writes, so no process reads a row another one is writing."""

    __slots__ = ("_exclusive", "_process", "_thread")

    def __init__(self, thread: threading.RLock, process: ProcessLock, exclusive: bool) -> None:
        self._thread, self._process, self._exclusive = thread, process, exclusive

    def __enter__(self) -> None:
        self._thread.acquire()
        try:
            self._process.acquire(self._exclusive)
        except BaseException:
            self._thread.release()
            raise

    def __exit__(self, *exc) -> None:
        try:
            self._process.release()
        finally:
            self._thread.release()


class ReplayBuffer(IterableDataset):
    """A replay buffer: ``storage`` (where), ``writer`` (which slots), ``sampler`` (what to read).

    Defaults: a :class:`ListStorage` of 1000 items (any Python object), a
    :class:`RandomSampler` and a :class:`RoundRobinWriter`. ``sample`` reads from the storage
    and applies ``collate_fn`` (default: stack tensors/TensorDicts read from a list storage,
    identity otherwise) and then ``transform``.

    All reads and writes take one lock, so threads may ``extend`` while others ``sample``
    and ``update_priority``; a ``shared=True`` buffer adds a lock between processes (shared
    for reads, exclusive for writes), so a worker process never reads a row while another
    process overwrites it. With a ``rate_limiter``, ``extend`` and ``sample`` first acquire
    permits (blocking up to ``rate_limit_timeout`` seconds, or awaiting in :meth:`aextend` /
    :meth:`asample`).

    The buffer is a torch ``IterableDataset``: ``DataLoader(rb, batch_size=None)`` and
    ``iter(rb)`` yield ``sample()`` batches forever, or until the end of an epoch with an
    epoch-based sampler (:class:`SamplerWithoutReplacement`). :meth:`as_dataset` bounds the
    number of batches; :meth:`as_node` gives a resumable ``torchdata.nodes`` node.

    Args:
        storage: a :class:`Storage` (default ``ListStorage(1000)``).
        sampler: a :class:`Sampler` (default :class:`RandomSampler`).
        writer: a :class:`Writer` (default :class:`RoundRobinWriter`).
        collate_fn: applied to what the storage returns.
        batch_size: default batch size of :meth:`sample`.
        transform: callable applied to each sampled batch.
        prefetch: number of batches a background thread samples ahead (needs ``batch_size``);
            such batches may miss the latest writes, and the sampler's random state runs
            ahead of what was consumed (use a torchdata ``Prefetcher`` over :meth:`as_node`
            when exact resumption matters).
            ``0`` or ``None``: no prefetching.
        rate_limiter: a :class:`RateLimiter` that ``extend``/``sample`` obey.
        rate_limit_timeout: seconds ``extend``/``sample`` wait for the limiter (None: forever).
        generator: a ``torch.Generator`` the sampler draws from (instead of its own), e.g. to
            seed the buffer apart from the global seed.
        shared: share the buffer across processes: pickled into a worker process (e.g. as a
            ``multiprocessing.Process`` argument) it writes into the same storage, and the
            other processes see the writes. Needs a :class:`LazyMemmapStorage` (allocated by
            the first write in any process) or a tensor storage that is already allocated
            (its rows move to shared memory), and a sampler that keeps no per-write state
            (no priorities, no cached trajectory boundaries). One process should write.
        compilable: TorchRL's flag; streamrl's buffers keep plain Python counters either way,
            so it only promises the buffer is not shared (``shared=True`` is refused with it).
        delayed_init: TorchRL's choice of building the parts at the first use; streamrl's
            are cheap to build and allocate their storage at the first write either way.
        pin_memory: pin each sampled batch (a tensor or TensorDict) in page-locked memory,
            for faster copies to a CUDA device (needs CUDA).
        service_backend: ``"direct"`` (this process) or ``"ray"``: build a
            :class:`~streamrl.data.RayReplayBuffer` serving this class instead (TorchRL's);
            ``service_backend_options`` may hold its ``ray_init_config`` and ``remote_config``.
        transport, transport_options: ``"auto"`` / ``"direct"`` and no options for a direct
            buffer (TorchRL's); with ``service_backend="ray"`` see ``RayReplayBuffer``.

    Transforms: ``transform`` and those added with :meth:`append_transform` /
    :meth:`insert_transform` run in order on each sampled batch, and their ``inv`` (when they
    have one, e.g. an env transform with ``in_keys_inv``) on the data written, last first, as
    in TorchRL; one added with ``invert=True`` swaps the two (its forward on writes, its
    ``inv``, if any, on samples).

    >>> rb = ReplayBuffer(collate_fn=lambda x: x)
    >>> rb.add(1)
    0
    >>> rb.sample(1)
    [1]
    """

    def __new__(cls, *args: Any, service_backend: str = "direct",
                service_backend_options: dict[str, Any] | None = None, **kwargs: Any):
        # TorchRL's spelling of a remote buffer: ReplayBuffer(..., service_backend="ray")
        # builds a RayReplayBuffer serving this class
        if service_backend == "direct":
            return super().__new__(cls)
        if service_backend != "ray":
            raise ValueError(f"service_backend must be 'direct' or 'ray', found "
                             f"{service_backend!r}")
        from streamrl.data.replay_buffers.ray_buffer import RayReplayBuffer

        options = dict(service_backend_options or {})
        init, remote = options.pop("ray_init_config", None), options.pop("remote_config", None)
        if options:
            raise TypeError(f"service_backend_options takes 'ray_init_config' and "
                            f"'remote_config', found {sorted(options)}")
        return RayReplayBuffer(*args, replay_buffer_cls=cls, ray_init_config=init,
                               remote_config=remote, **kwargs)

    def __init__(
        self,
        *,
        storage: Storage | None = None,
        sampler: Sampler | None = None,
        writer: Writer | None = None,
        collate_fn: Callable | None = None,
        batch_size: int | None = None,
        transform: Callable | None = None,
        prefetch: int | None = None,
        rate_limiter: RateLimiter | None = None,
        rate_limit_timeout: float | None = None,
        generator: torch.Generator | None = None,
        shared: bool = False,
        compilable: bool = False,
        delayed_init: bool | None = None,
        pin_memory: bool = False,
        service_backend: str = "direct",
        service_backend_options: dict[str, Any] | None = None,
        transport: str = "auto",
        transport_options: dict[str, Any] | None = None,
    ) -> None:
        del service_backend, service_backend_options  # read by __new__
        if transport not in ("auto", "direct"):
            raise ValueError(f"a direct ReplayBuffer takes transport 'auto' or 'direct', found "
                             f"{transport!r} (remote transports need service_backend='ray')")
        if transport_options:
            raise ValueError(f"transport_options are only used by a remote buffer, found "
                             f"{transport_options!r}")
        self.compilable = check_compilable(compilable)
        if delayed_init is not None and not isinstance(delayed_init, bool):
            raise TypeError(f"delayed_init must be a bool or None, found "
                            f"{type(delayed_init).__name__}")
        self.delayed_init = bool(delayed_init)
        if compilable and shared:
            raise ValueError("compilable=True and shared=True: a compilable buffer is not "
                             "shared across processes (TorchRL's rule); pick one")
        self._storage = storage if storage is not None else ListStorage(1000)
        for name, value, base in (
            ("storage", self._storage, Storage),
            ("sampler", sampler, Sampler),
            ("writer", writer, Writer),
            ("rate_limiter", rate_limiter, RateLimiter),
        ):
            if value is not None and not isinstance(value, base):
                raise TypeError(f"{name} must be a {base.__name__}, found {type(value).__name__}")
        self._sampler = sampler if sampler is not None else RandomSampler()
        if generator is not None:
            if not isinstance(generator, torch.Generator):
                raise TypeError(
                    f"generator must be a torch.Generator, found {type(generator).__name__}"
                )
            self._sampler._use_generator(generator)
        if shared:
            _check_shareable(self._storage, self._sampler)
            self._storage._share()
        self.shared = bool(shared)
        self._writer = writer if writer is not None else RoundRobinWriter()
        self._writer.attach(self._storage)
        if len(self._storage) and hasattr(self._sampler, "update_priority"):
            # A storage reopened with data: its items enter the sampler with max priority.
            self._sampler.on_write(torch.arange(len(self._storage)), 0, self._storage)
        if collate_fn is None:
            collate_fn = _default_collate if isinstance(self._storage, ListStorage) else None
        self._collate_fn = collate_fn
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0
        ):
            raise ValueError(f"batch_size must be a positive int or None, found {batch_size!r}")
        if batch_size is None and getattr(self._sampler, "drop_last", False):
            raise ValueError(
                f"Samplers with drop_last=True must work with a predictable batch-size: "
                f"{type(self._sampler).__name__}(drop_last=True) needs ReplayBuffer(batch_size=)"
            )
        self._batch_size = batch_size
        # (callable, invert): sample-time transforms run in order; inverted ones at write time.
        self._transforms: list[tuple[Callable, bool]] = []
        if transform is not None:
            self._transforms.append((_check_callable(transform), False))
        if prefetch == 0:
            prefetch = None
        if prefetch is not None:
            if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 1:
                raise ValueError(f"prefetch must be an int >= 0 or None, found {prefetch!r}")
            if batch_size is None:
                raise ValueError("prefetch needs a default batch_size")
        self._prefetch = prefetch
        self._prefetcher: _Prefetcher | None = None
        self._rate_limiter = rate_limiter
        self.rate_limit_timeout = rate_limit_timeout
        self._process_lock = ProcessLock() if shared else None
        self._make_locks()
        self._write_count = 0  # items written through add/extend, by this process
        if not isinstance(pin_memory, bool):
            raise TypeError(f"pin_memory must be a bool, found {type(pin_memory).__name__}")
        self.pin_memory = pin_memory

    # -- properties -------------------------------------------------------------------------
    @property
    def storage(self) -> Storage:
        """The storage."""
        return self._storage

    @property
    def sampler(self) -> Sampler:
        """The sampler."""
        return self._sampler

    @property
    def writer(self) -> Writer:
        """The writer."""
        return self._writer

    @property
    def rate_limiter(self) -> RateLimiter | None:
        """The rate limiter, if any."""
        return self._rate_limiter

    @property
    def batch_size(self) -> int | None:
        """Default batch size of :meth:`sample`."""
        return self._batch_size

    def __len__(self) -> int:
        """Number of items that can be sampled (all stored ones, unless the sampler consumes)."""
        return self._sampler.sampleable_count(self._storage)

    def can_sample(self, batch_size: int | None = None) -> bool:
        """Whether the sampler can draw a batch of ``batch_size`` (default: the buffer's
        ``batch_size``) from what is stored now, e.g. whether a
        :class:`~streamrl.data.StalenessAwareSampler` finds a fresh enough item. The rate
        limiter is not consulted (its own ``can_sample`` says whether it grants a sample)."""
        batch_size = self._resolve_batch_size(batch_size)
        with self._read_lock:
            return bool(self._sampler.can_sample(self._storage, batch_size))

    @property
    def write_count(self) -> int:
        """Items written through :meth:`add` and :meth:`extend` so far (in this process)."""
        return self._write_count

    def stats(self) -> dict[str, Any]:
        """A cheap snapshot of scalars (TorchRL 0.14's, e.g. for
        :class:`~streamrl.record.LoggerMonitor`): ``size``, ``write_count``,
        ``prefetch_queue_size``, ``initialized`` (the storage holds its layout), and
        ``capacity`` / ``utilization`` (``size / capacity``) for a bounded storage. Reading it
        changes nothing and allocates nothing.

        >>> from streamrl.data import LazyTensorStorage
        >>> rb = ReplayBuffer(storage=LazyTensorStorage(100))
        >>> _ = rb.extend(torch.arange(10))
        >>> rb.stats()
        {'size': 10, 'write_count': 10, 'prefetch_queue_size': 0, 'initialized': True, 'capacity': 100, 'utilization': 0.1}
        """
        size = len(self)
        prefetcher = self._prefetcher
        out: dict[str, Any] = {
            "size": size,
            "write_count": self._write_count,
            "prefetch_queue_size": prefetcher._queue.qsize() if prefetcher is not None else 0,
            "initialized": getattr(self._storage, "_data", True) is not None,
        }
        capacity = getattr(self._storage, "max_size", None)
        if isinstance(capacity, int) and capacity > 0:
            out["capacity"] = capacity
            out["utilization"] = size / capacity
        return out

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(storage={self._storage!r}, sampler="
            f"{type(self._sampler).__name__}, writer={type(self._writer).__name__}, "
            f"batch_size={self._batch_size})"
        )

    # -- transforms -------------------------------------------------------------------------
    @property
    def transform(self) -> Callable | None:
        """The sample-time transforms as one callable (``None`` when there are none)."""
        return self._apply_sample_transforms if self._transforms else None

    def append_transform(self, transform: Callable, *, invert: bool = False) -> ReplayBuffer:
        """Add ``transform`` after the others (``invert=True``: run it on written data)."""
        self._transforms.append((_check_callable(transform), bool(invert)))
        return self

    def insert_transform(
        self, index: int, transform: Callable, *, invert: bool = False
    ) -> ReplayBuffer:
        """Insert ``transform`` at position ``index`` of the transforms."""
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"index must be an int, found {index!r}")
        self._transforms.insert(index, (_check_callable(transform), bool(invert)))
        return self

    def _apply_sample_transforms(self, data):
        for fn, inv in self._transforms:
            if not inv:
                data = fn(data)
            elif hasattr(fn, "inv"):
                data = fn.inv(data)
        return data

    def _apply_write_transforms(self, data):
        # the inverse path, last transform first (TorchRL's Compose.inv): a transform's `inv`
        # (an env transform's in_keys_inv; identity without them), an inverted one's forward
        for fn, inv in reversed(self._transforms):
            if inv:
                data = fn(data)
            elif callable(getattr(fn, "inv", None)):
                data = fn.inv(data)
        return data

    # -- writing ----------------------------------------------------------------------------
    def add(self, data) -> int:
        """Write ONE item (a ``[10]`` TensorDict is one item of 10 steps); return its slot."""
        index = self._extend(self._storage.one(self._apply_write_transforms(data)))
        return int(index[0]) if index.numel() else -1

    def extend(self, data, *, update_priority: bool | None = None) -> torch.Tensor:
        """Write a batch of items (validated first: a bad batch writes nothing); return slots.

        ``update_priority`` (TorchRL's) has no effect here: a :class:`TensorDictReplayBuffer`
        reads initial priorities from the batch unless it is ``False``.
        """
        if update_priority is not None and not isinstance(update_priority, bool):
            raise TypeError(f"update_priority must be a bool or None, found {update_priority!r}")
        return self._extend(self._apply_write_transforms(data), update_priority)

    def _extend(self, data, update_priority: bool | None = None) -> torch.Tensor:
        data, extra = self._pre_write(data, update_priority)
        if self._rate_limiter is None:
            return self._write(data, 0, extra)
        with self._lock:
            batch = self._storage.prepare(data)
        if batch.n:
            self._rate_limiter.insert(batch.n, timeout=self.rate_limit_timeout)
        return self._write(data, batch.n, extra)

    async def aextend(self, data) -> torch.Tensor:
        """:meth:`extend` that awaits the rate limiter instead of blocking."""
        data, extra = self._pre_write(self._apply_write_transforms(data))
        with self._lock:
            batch = self._storage.prepare(data)
        if self._rate_limiter is not None and batch.n:
            await self._rate_limiter.acquire_insert(batch.n)
        return self._write(data, batch.n, extra)

    def _write(self, data, n: int, extra=None) -> torch.Tensor:
        try:
            with self._write_lock:
                # Validate again under the lock: another thread may have fixed the schema.
                self._writer._check_data(data)
                batch = self._storage.prepare(data)
                if batch.n == 0:
                    return torch.empty(0, dtype=torch.long)
                storage = self._storage
                plan = self._plan(batch.n, storage, batch.data)
                storage._put(plan.index, batch, plan.source, plan.start, plan.new_len)
                self._write_count += batch.n
                self._sampler.on_write(plan.index, plan.start, storage)
                self._after_write(plan, batch, extra)
                return plan.index
        except BaseException:
            if self._rate_limiter is not None and n:
                self._rate_limiter._undo("insert", n)
            raise

    def _plan(self, n: int, storage: Storage, data) -> WritePlan:
        """The writer's plan, after the slots the sampler frees (e.g. consumed items)."""
        free = self._sampler.free_slots(n)
        k = free.numel()
        if k == 0:
            return self._writer.plan(n, len(storage), storage.max_size, data)
        if k == n:
            return WritePlan(free, None, None, len(storage))
        rest = self._writer.plan(n - k, len(storage), storage.max_size, data[k:])
        rest_source = rest.source if rest.source is not None else torch.arange(n - k)
        return WritePlan(
            torch.cat([free, rest.index]),
            torch.cat([torch.arange(k), rest_source + k]),
            None,
            rest.new_len,
        )

    def _pre_write(self, data, update_priority: bool | None = None):
        """Hook for subclasses: ``(data to write, extra)``; ``extra`` goes to ``_after_write``."""
        return data, None

    def _after_write(self, plan, batch, extra) -> None:
        """Hook for subclasses (e.g. initial priorities from the data)."""

    # -- reading ----------------------------------------------------------------------------
    def _resolve_batch_size(self, batch_size) -> int:
        batch_size = self._batch_size if batch_size is None else batch_size
        if batch_size is None:
            raise ValueError(
                "no batch_size: pass sample(batch_size) or set ReplayBuffer(batch_size=)"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, found {batch_size!r}")
        return batch_size

    def sample(self, batch_size: int | None = None, return_info: bool = False):
        """Sample a batch (``return_info=True``: ``(batch, info)`` with ``index`` etc.)."""
        if self._prefetch is not None and (batch_size is None or batch_size == self._batch_size):
            prefetcher = self._prefetcher
            if prefetcher is None:
                prefetcher = self._start_prefetch()
            try:
                data, info = prefetcher.get()
            except BaseException:
                prefetcher.close()
                self._prefetcher = None
                raise
        else:
            data, info = self._sample(self._resolve_batch_size(batch_size))
        return (data, info) if return_info else data

    def _start_prefetch(self) -> _Prefetcher:
        limiter, batch_size, depth = self._rate_limiter, self._batch_size, self._prefetch
        if batch_size is None or depth is None:  # the constructor checks both
            raise RuntimeError(
                f"prefetching needs prefetch and batch_size, found {depth} and {batch_size}"
            )
        self._prefetcher = _Prefetcher(
            lambda stop: self._sample(batch_size, stop=stop),
            depth,
            on_close=limiter.wake_all if limiter is not None else None,
        )
        return self._prefetcher

    async def asample(self, batch_size: int | None = None, return_info: bool = False):
        """:meth:`sample` that awaits the rate limiter instead of blocking."""
        batch_size = self._resolve_batch_size(batch_size)
        if self._rate_limiter is not None:
            await self._rate_limiter.acquire_sample(batch_size)
        data, info = self._sample(batch_size, limited=False)
        return (data, info) if return_info else data

    def _sample(self, batch_size: int, limited: bool = True, stop=None, include_info=True):
        if limited and self._rate_limiter is not None:
            if stop is None:
                self._rate_limiter.sample(batch_size, timeout=self.rate_limit_timeout)
            elif not self._rate_limiter._wait("sample", batch_size, self.rate_limit_timeout, stop):
                return None, {}  # the prefetcher is closing
        try:
            with self._read_lock:
                index, info = self._sampler.sample(self._storage, batch_size)
                data = self._storage._read(index)
        except BaseException:
            if limited and self._rate_limiter is not None:
                self._rate_limiter._undo("sample", batch_size)
            raise
        info["index"] = index
        if self._collate_fn is not None:
            data = self._collate_fn(data)
        if self.pin_memory:
            data = data.pin_memory()
        data = self._rewrite_sample(data, info)
        if include_info:
            data = self._postprocess(data, info)
        if self._transforms:
            data = self._apply_sample_transforms(data)
        return data, info

    def _rewrite_sample(self, data, info):
        """Hook for subclasses: rewrite a sampled batch (``info["index"]``: its slots) before
        the info is written and the sample transforms run (e.g. hindsight relabelling)."""
        return data

    def _postprocess(self, data, info):
        """Hook for subclasses (e.g. writing ``index`` and ``_weight`` into TensorDicts)."""
        return data

    def __getitem__(self, index):
        with self._read_lock:
            data = self._storage.get(index)
        if self._collate_fn is not None and not isinstance(index, int):
            data = self._collate_fn(data)
        return data

    def __setitem__(self, index, data) -> None:
        """Overwrite stored items in place: ``rb[3:5] = batch`` (the write transforms run).

        ``index`` (an int, a slice or an index tensor) addresses items already stored; the
        length, the writer's cursor and the sampler's state (e.g. priorities) are kept.
        """
        data = self._apply_write_transforms(data)
        with self._write_lock:
            storage = self._storage
            slots = storage._check_index(index)
            storage.set(int(slots[0]) if isinstance(index, int) else slots, data,
                        set_cursor=False)

    def __iter__(self):
        from streamrl.data.replay_buffers.loaders import ReplayDataset

        return iter(ReplayDataset(self))

    # -- priorities -------------------------------------------------------------------------
    def update_priority(self, index, priority) -> None:
        """Set priorities (prioritized samplers only); see ``PrioritizedSampler.update_priority``."""
        if not hasattr(self._sampler, "update_priority"):
            raise TypeError(
                f"{type(self._sampler).__name__} has no priorities; use a PrioritizedSampler"
            )
        with self._lock:
            self._sampler.update_priority(index, priority, len(self._storage))

    # -- lifecycle --------------------------------------------------------------------------
    def empty(self) -> None:
        """Remove every item (storage, writer cursor, sampler state); the limiter is kept."""
        self._stop_prefetch()
        with self._write_lock:
            self._storage.empty()
            self._writer.empty()
            self._sampler.empty()

    def _stop_prefetch(self) -> None:
        if self._prefetcher is not None:
            self._prefetcher.close()
            self._prefetcher = None

    def close(self) -> None:
        """Stop the prefetch thread and close the storage; idempotent."""
        self._stop_prefetch()
        self._storage.close()
        if self._process_lock is not None:
            self._process_lock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _make_locks(self) -> None:
        # _read_lock / _write_lock: the thread lock itself, or with the process lock too
        self._lock = threading.RLock()
        self._read_lock: Any = self._lock
        self._write_lock: Any = self._lock
        if self._process_lock is not None:
            self._read_lock = _Guard(self._lock, self._process_lock, exclusive=False)
            self._write_lock = _Guard(self._lock, self._process_lock, exclusive=True)

    def __getstate__(self):
        state = self.__dict__.copy()
        for name in ("_lock", "_read_lock", "_write_lock", "_prefetcher"):
            state[name] = None
        return state

    def __setstate__(self, state) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_process_lock", None)
        self._make_locks()

    # -- loaders ----------------------------------------------------------------------------
    def as_dataset(self, num_batches: int | None = None, batch_size: int | None = None):
        """A torch ``IterableDataset`` of ``num_batches`` samples (see :class:`ReplayDataset`)."""
        from streamrl.data.replay_buffers.loaders import ReplayDataset

        return ReplayDataset(self, num_batches=num_batches, batch_size=batch_size)

    def as_node(self, num_batches: int | None = None, batch_size: int | None = None):
        """A resumable ``torchdata.nodes.BaseNode`` of samples (see :class:`ReplayNode`)."""
        from streamrl.data.replay_buffers.loaders import ReplayNode

        return ReplayNode(self, num_batches=num_batches, batch_size=batch_size)

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Storage, sampler (with priorities and RNG), writer cursor and limiter counters."""
        with self._read_lock:
            return {"format": _FORMAT, "storage": self._storage.state_dict(), **self._parts()}

    def _parts(self) -> dict[str, Any]:
        """The sampler, writer and limiter states."""
        return {
            "sampler": self._sampler.state_dict(),
            "writer": self._writer.state_dict(),
            "rate_limiter": (
                self._rate_limiter.state_dict() if self._rate_limiter is not None else None
            ),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` into this (identically configured) buffer.

        All or nothing: every part (storage, sampler, writer, rate limiter) first checks its
        state, and only when all of them fit are they loaded; otherwise ``ValueError`` says
        which part and entry do not fit, and the buffer is left exactly as it was.
        """
        self._stop_prefetch()
        with self._write_lock:
            self._prepare_load(state)()

    def _prepare_load(self, state: dict[str, Any]) -> Commit:
        """Check ``state`` against every part; return the commit that loads them all."""
        _check_format(state, _FORMAT, "a replay buffer state")
        storage = prepare_part(self._storage, entry(state, "storage", "buffer state"), "storage")
        return self._prepare_parts(state, storage)

    def _prepare_parts(self, state: dict[str, Any], storage: Commit) -> Commit:
        """The storage's commit followed by the sampler's, writer's and limiter's."""
        where = "buffer state"
        limiter = entry(state, "rate_limiter", where)
        if (limiter is None) != (self._rate_limiter is None):
            raise ValueError(
                f"{where}: the state {'has no' if limiter is None else 'has a'} rate limiter, "
                f"this buffer {'has' if self._rate_limiter is not None else 'has none'}"
            )
        commits = [
            storage,
            prepare_part(self._sampler, entry(state, "sampler", where), "sampler"),
            prepare_part(self._writer, entry(state, "writer", where), "writer"),
        ]
        if self._rate_limiter is not None:
            commits.append(prepare_part(self._rate_limiter, limiter, "rate limiter"))
        return commit_all(commits)

    def dumps(self, path: str | os.PathLike) -> None:
        """Save the buffer (storage, sampler, writer, limiter) for :meth:`loads`.

        With no checkpointer on the storage (the default), ``path`` is one file, written
        atomically and read without pickle. Once ``storage.checkpointer`` is set (or a hook is
        registered), ``path`` is a directory: ``storage/`` written by the checkpointer and
        ``buffer.pt`` with the sampler, writer and limiter states.
        """
        if self._storage.checkpointer is None:
            save_checkpoint(self.state_dict(), path)
            return
        with self._read_lock:
            state = {"format": _DIR_FORMAT, **self._parts()}
            self._storage.dumps(os.path.join(os.fspath(path), "storage"))
            save_checkpoint(state, os.path.join(os.fspath(path), _DIR_STATE))

    def loads(self, path: str | os.PathLike) -> None:
        """Load what :meth:`dumps` wrote: a file, or a directory (with the storage's
        checkpointer). All or nothing, as :meth:`load_state_dict`: a file that cannot be read
        (truncated, corrupted, not a checkpoint, or one that would need pickle to load) or
        that does not fit this buffer raises ``ValueError``, runs no code from the file and
        leaves the buffer as it was."""
        path = os.fspath(path)
        if not os.path.isdir(path):
            self.load_state_dict(load_checkpoint(path))
            return
        state = load_checkpoint(os.path.join(path, _DIR_STATE))
        _check_format(state, _DIR_FORMAT, f"a replay buffer directory state ({path!r})")
        self._stop_prefetch()
        with self._write_lock:
            storage = self._storage._prepare_loads(os.path.join(path, "storage"))
            self._prepare_parts(state, storage)()

    def register_save_hook(self, hook: Callable) -> None:
        """Run ``hook`` on the storage's data when it is saved (see ``Storage.checkpointer``)."""
        self._storage.register_save_hook(hook)

    def register_load_hook(self, hook: Callable) -> None:
        """Run ``hook`` on the storage's data when it is loaded."""
        self._storage.register_load_hook(hook)


class PrioritizedReplayBuffer(ReplayBuffer):
    """A :class:`ReplayBuffer` with a :class:`PrioritizedSampler` sized to the storage.

    Args:
        alpha: priority exponent.
        beta: importance-sampling exponent.
        eps: added to priorities.
        storage, collate_fn, ...: as in :class:`ReplayBuffer` (no ``sampler``).

    >>> rb = PrioritizedReplayBuffer(alpha=0.7, beta=1.1, collate_fn=lambda x: x)
    >>> rb.add(1)
    0
    >>> rb.update_priority(0, 0.5)
    """

    def __init__(
        self,
        *,
        alpha: float,
        beta: float,
        eps: float = 1e-8,
        storage: Storage | None = None,
        **kwargs,
    ) -> None:
        if "sampler" in kwargs:
            raise TypeError("PrioritizedReplayBuffer builds its own sampler; use ReplayBuffer")
        storage = storage if storage is not None else ListStorage(1000)
        sampler = PrioritizedSampler(storage.max_size, alpha, beta, eps)
        super().__init__(storage=storage, sampler=sampler, **kwargs)
