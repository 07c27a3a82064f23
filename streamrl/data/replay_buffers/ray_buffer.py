"""RayReplayBuffer: a replay buffer served by a Ray actor, written and sampled from anywhere.

The buffer (any streamrl replay-buffer class) lives on one threaded Ray actor; the object
that built it owns the actor (``close()`` kills it), and :meth:`RayReplayBuffer.client` hands
out picklable handles that other Ray actors, threads or processes use to ``extend`` and
``sample`` it. Ray is imported only when such a buffer is built.
"""

from __future__ import annotations

import threading
import time
import uuid
import weakref
from collections import deque
from typing import Any

import torch
from tensordict import TensorDictBase

from streamrl._utils.ray_init import ensure_init, import_ray
from streamrl._utils.ray_items import actor_location, pack_item, unpack_item, unwrap_error
from streamrl.data.replay_buffers.replay_buffer import ReplayBuffer
from streamrl.data.replay_buffers.samplers import Sampler
from streamrl.data.replay_buffers.storages import Storage
from streamrl.data.replay_buffers.writers import Writer

__all__ = ["RayReplayBuffer", "ReplayActorDiedError"]

_TRANSPORTS = ("auto", "ray")
# Options the buffer sets itself: the actor's name, its threads, and no restarts (a restarted
# actor would come back empty and serve samples as if nothing had been lost).
_RESERVED = ("name", "max_concurrency", "max_restarts")
_PARTS = (("storage", Storage), ("sampler", Sampler), ("writer", Writer))
_service_class: Any = None


def _import_ray() -> Any:
    return import_ray("RayReplayBuffer")


def _default_remote_config() -> dict[str, Any]:
    """TorchRL's ``DEFAULT_REMOTE_CLASS_CONFIG``: one CPU, 2 GiB, a fifth of a GPU with CUDA."""
    config: dict[str, Any] = {"num_cpus": 1, "memory": 2 * 1024**3}
    if torch.cuda.is_available():
        config["num_gpus"] = 0.2
    return config


class ReplayActorDiedError(RuntimeError):
    """The Ray actor that serves a :class:`RayReplayBuffer` is gone (its process was killed or
    crashed, its node was lost, or its owner closed it); the rows it held are lost.

    ``actor_name``, ``node_id`` and ``node_ip`` say which actor and where it ran; the Ray error
    is the ``__cause__``.
    """

    def __init__(self, actor_name: str, node_id: str, node_ip: str, call: str):
        super().__init__(
            f"the replay buffer actor {actor_name!r} on node {node_id} ({node_ip}) is dead "
            f"(seen by {call}): its process was killed or crashed, its node was lost, or its "
            "owner closed it; the rows it held are lost"
        )
        self.actor_name = actor_name
        self.node_id = node_id
        self.node_ip = node_ip
        self._call = call

    def __reduce__(self) -> Any:  # crosses Ray and process boundaries (e.g. from a writer task)
        return type(self), (self.actor_name, self.node_id, self.node_ip, self._call)


class _Service:
    """The actor's body: builds the buffer from constructors, then serves calls on it from up
    to ``max_concurrency`` threads (the buffer takes its own lock; a call blocked by the rate
    limiter holds one thread)."""

    def __init__(self) -> None:
        self.rb: Any = None

    def setup(self, cls: type, args: tuple, kwargs: dict[str, Any]) -> tuple[str, str, int]:


        kwargs = dict(kwargs)
        for part, base in _PARTS:
            value = kwargs.get(part)
            if value is not None and not isinstance(value, base):
                made = value()
                if not isinstance(made, base):
                    raise TypeError(f"the {part} constructor must return a {base.__name__}, "
                                    f"found {type(made).__name__}")
                kwargs[part] = made
        factory = kwargs.pop("transform_factory", None)
        if factory is not None:
            kwargs["transform"] = factory()
        self.rb = cls(*args, **kwargs)
        return actor_location()

    def call(self, name: str, args: tuple, kwargs: dict[str, Any]) -> Any:
        args = tuple(unpack_item(a) for a in args)
        result = getattr(self.rb, name)(*args, **kwargs)
        if isinstance(result, tuple) and len(result) == 2 and name == "sample":
            return pack_item(result[0]), result[1]  # (batch, info)
        return pack_item(result)

    def attr(self, name: str) -> Any:
        return getattr(self.rb, name)


def _actor_class(ray: Any) -> Any:
    global _service_class
    if _service_class is None:
        _service_class = ray.remote(_Service)
    return _service_class


def _check_part(name: str, value: Any, base: type) -> None:
    if value is not None and not isinstance(value, base) and not callable(value):
        raise TypeError(f"{name} must be a {base.__name__} or a callable that builds one on the "
                        f"actor (e.g. functools.partial), found {type(value).__name__}")


def _to_cpu(value: Any) -> Any:
    if isinstance(value, (torch.Tensor, TensorDictBase)):
        device = value.device
        if device is not None and device.type != "cpu":
            return value.to("cpu")
    return value


class _Pending:
    """One ``sample`` call in flight; :meth:`result` waits for the batch."""

    __slots__ = ("_client", "_ref")

    def __init__(self, client: _Client, ref: Any) -> None:
        self._client, self._ref = client, ref

    def result(self) -> Any:
        """The sampled batch (re-raises the buffer's error)."""
        return self._client._resolve_call(self._ref, "sample")


class _Client:
    """A picklable handle on the buffer actor: reads and writes, no shutdown. Every call
    blocks until the actor answers (a rate-limited ``extend`` until the limiter admits it)."""

    def __init__(self, actor: Any, where: tuple[str, str, str], batch_size: int | None,
                 prefetch: int, has_gpu: bool) -> None:
        self._actor = actor
        self._where = where  # actor name, node id, node ip
        self._batch_size = batch_size
        self._prefetch = prefetch
        self._has_gpu = has_gpu
        self._lock = threading.Lock()
        self._ahead: deque[Any] = deque()  # prefetched sample calls, oldest first

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_lock"] = None
        state["_ahead"] = deque()  # calls in flight stay with this copy
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def actor_name(self) -> str:
        """The Ray actor's name (``streamrl:replay:<8 hex digits>``)."""
        return self._where[0]

    # -- plumbing ---------------------------------------------------------------------------
    def _submit(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if not self._has_gpu:
            args = tuple(_to_cpu(a) for a in args)
        return self._actor.call.remote(name, tuple(pack_item(a) for a in args), kwargs)

    def _resolve_call(self, ref: Any, call: str) -> Any:
        ray = _import_ray()
        try:
            result = ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            raise ReplayActorDiedError(*self._where, call=f"{call}()") from exc
        except ray.exceptions.RayError as exc:
            raise unwrap_error(ray, exc) from None
        if type(result) is tuple and len(result) == 2 and call == "sample":
            return unpack_item(result[0]), result[1]
        return unpack_item(result)

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._resolve_call(self._submit(name, *args, **kwargs), name)

    def _attr(self, name: str) -> Any:
        return self._resolve_call(self._actor.attr.remote(name), name)

    # -- the buffer's API ---------------------------------------------------------------------
    def extend(self, data: Any, **kwargs: Any) -> torch.Tensor:
        """Write a batch (see :meth:`ReplayBuffer.extend`); returns the slots written."""
        return self._call("extend", data, **kwargs)

    def add(self, data: Any) -> int:
        """Write one item; returns its slot."""
        return self._call("add", data)

    def sample(self, batch_size: int | None = None, return_info: bool = False) -> Any:
        """Sample a batch (see :meth:`ReplayBuffer.sample`). With ``prefetch=k``, a call for the
        default batch size returns the oldest of ``k`` calls kept in flight."""
        if self._prefetch and not return_info and batch_size in (None, self._batch_size):
            with self._lock:
                while len(self._ahead) < self._prefetch + 1:
                    self._ahead.append(self._submit("sample"))
                ref = self._ahead.popleft()
            return self._resolve_call(ref, "sample")
        return self._call("sample", batch_size, return_info)

    def sample_async(self, batch_size: int | None = None) -> _Pending:
        """Send a ``sample`` call and return at once; ``.result()`` waits for its batch (e.g.
        :class:`~streamrl.ops.ReplaySource` keeps ``prefetch`` of these in flight)."""
        return _Pending(self, self._submit("sample", batch_size))

    def update_priority(self, index: Any, priority: Any) -> None:
        """Set priorities (prioritized samplers). Blocks until applied; updates sent from
        several threads at once may apply in any order."""
        self._call("update_priority", _to_cpu(index), _to_cpu(priority))

    def update_tensordict_priority(self, data: TensorDictBase) -> None:
        """Set priorities from ``data["index"]`` and the priority key (TensorDict buffers)."""
        self._call("update_tensordict_priority", data)

    def __len__(self) -> int:
        return int(self._call("__len__"))

    def __getitem__(self, index: Any) -> Any:
        return self._call("__getitem__", _to_cpu(index))

    @property
    def write_count(self) -> int:
        """Items written so far, by every client."""
        return int(self._attr("write_count"))

    @property
    def batch_size(self) -> int | None:
        """The default batch size of :meth:`sample`."""
        return self._batch_size

    def can_sample(self, batch_size: int | None = None) -> bool:
        """Whether the sampler can draw a batch now (see :meth:`ReplayBuffer.can_sample`)."""
        return bool(self._call("can_sample", batch_size))

    def stats(self) -> dict[str, Any]:
        """The remote buffer's :meth:`ReplayBuffer.stats`."""
        return self._call("stats")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.actor_name!r})"


class _BufferClient(_Client):
    """What :meth:`RayReplayBuffer.client` returns: reads and writes only (no ``close``,
    ``shutdown``, ``empty``, ``loads`` or ``load_state_dict``)."""

    def __getattr__(self, name: str) -> Any:
        if name in ("close", "shutdown", "empty", "loads", "load_state_dict", "client"):
            raise AttributeError(f"a RayReplayBuffer client cannot {name}(): only the "
                                 "RayReplayBuffer that started the actor can")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def _same(client: _BufferClient) -> _BufferClient:
    return client


def _kill(ray: Any, actor: Any, wait: float) -> None:
    """Kill the actor and wait, up to ``wait`` seconds, until Ray reports it dead (then its
    name is released)."""
    if not ray.is_initialized():  # Ray shut down (e.g. at exit, before this ran): the actor
        return  # went with it; calling Ray now would start a new local Ray
    try:
        ray.kill(actor, no_restart=True)
    except Exception:  # Ray already shut down, or the actor already gone
        return
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            ray.get(actor.attr.remote("rb"), timeout=max(0.01, deadline - time.monotonic()))
        except Exception:
            return
        time.sleep(0.005)


class RayReplayBuffer(_Client):
    """A replay buffer that lives on a Ray actor (TorchRL's ``RayReplayBuffer``).

    The actor builds ``replay_buffer_cls(*args, delayed_init=delayed_init, **kwargs)``;
    ``storage``, ``sampler`` and ``writer`` may be given as instances (pickled to the actor) or
    as constructors called there (``functools.partial(LazyTensorStorage, 1000)``, as TorchRL
    recommends), and ``transform_factory`` builds the transform there. This object owns the
    actor and forwards ``extend``, ``add``, ``sample``, ``update_priority``,
    ``update_tensordict_priority``, ``len``, ``write_count``, ``state_dict`` /
    ``load_state_dict``, ``dumps`` / ``loads`` (paths on the actor's node) and ``empty`` to
    it; :meth:`client` gives picklable handles (for writer and learner actors, or
    :class:`~streamrl.ops.ReplaySink` / :class:`~streamrl.ops.ReplaySource` on any
    placement) that cannot shut it down. TensorDicts of CPU tensors cross as numpy arrays.

    The actor is a threaded actor with ``max_concurrency`` threads. A ``rate_limiter`` in
    ``kwargs`` gates every client: a blocked ``extend`` holds one actor thread and its caller
    waits (the writers' backpressure), a blocked ``sample`` likewise. ``max_concurrency`` must
    cover every writer, plus every sampler times its prefetch, plus a few control calls:
    with fewer threads a blocked ``extend`` could keep out the ``sample`` that would release
    it.

    Args:
        replay_buffer_cls: the buffer class built on the actor (default :class:`ReplayBuffer`).
        ray_init_config: ``ray.init`` arguments, used when Ray is not running yet.
        remote_config: actor options (``num_cpus``, ``num_gpus``, ``memory``, ``resources``,
            ``scheduling_strategy``, ...); default TorchRL's ``DEFAULT_REMOTE_CLASS_CONFIG``
            (1 CPU, 2 GiB, 0.2 GPU with CUDA). Without a ``scheduling_strategy`` the actor
            runs on the driver's node, so ``dumps(path)`` writes where the driver runs.
        transport: ``"auto"`` or ``"ray"`` (the same here: Ray calls through the object
            store). TorchRL's ``"distributed"`` (torch.distributed) is not offered.
        transport_options: must be empty (no transport takes options).
        delayed_init: passed to ``replay_buffer_cls``.
        max_concurrency: threads of the actor (default 32).
        prefetch: keep this many ``sample()`` calls of the default batch size in flight
            (TorchRL's ``prefetch``); the actor's buffer itself does not prefetch.
        start_timeout: seconds to wait for the actor to start (a ``TimeoutError`` names the
            request no node could hold).
        **kwargs: ``replay_buffer_cls``'s arguments.

    Errors: an exception raised in the buffer is re-raised here as itself (Ray's remote
    traceback added as a note); a dead actor raises :class:`ReplayActorDiedError` naming it
    and its node. ``close()`` (or ``shutdown()``; idempotent, also when this object is
    garbage-collected or the interpreter exits) kills the actor; Ray itself keeps running.

    Example (TorchRL's, with ``streamrl``; needs Ray, so not run as a doctest)::

        from functools import partial
        import torch
        from tensordict import TensorDict
        from streamrl.data import LazyTensorStorage, ReplayBuffer
        buffer = ReplayBuffer(
            storage=partial(LazyTensorStorage, 100),
            batch_size=4,
            service_backend="ray",
            service_backend_options={"remote_config": {"num_cpus": 0}},
            transport="auto",
        )
        buffer.extend(TensorDict({"value": torch.arange(8)}, batch_size=[8]))
        buffer.sample().shape  # torch.Size([4])
        buffer.shutdown()
    """

    def __init__(
        self,
        *args: Any,
        replay_buffer_cls: type = ReplayBuffer,
        ray_init_config: dict[str, Any] | None = None,
        remote_config: dict[str, Any] | None = None,
        transport: str = "auto",
        transport_options: dict[str, Any] | None = None,
        delayed_init: bool = False,
        max_concurrency: int = 32,
        prefetch: int | None = None,
        start_timeout: float = 60.0,
        **kwargs: Any,
    ) -> None:
        self._actor = None  # set once started: close() and __del__ look at it
        if transport not in _TRANSPORTS:
            raise ValueError(f"transport must be one of {_TRANSPORTS}, found {transport!r} "
                             "(TorchRL's 'distributed' transport is not offered by streamrl)")
        if transport_options:
            raise ValueError(f"transport_options are not used by transport {transport!r}, "
                             f"found {transport_options!r}")
        if not isinstance(replay_buffer_cls, type) or not callable(replay_buffer_cls):
            raise TypeError(f"replay_buffer_cls must be a replay buffer class, found "
                            f"{replay_buffer_cls!r}")
        for label, value in (("ray_init_config", ray_init_config),
                             ("remote_config", remote_config)):
            if value is not None and not isinstance(value, dict):
                raise TypeError(f"{label} must be a dict or None, found {type(value).__name__}")
        bad = sorted(set(remote_config or {}) & set(_RESERVED))
        if bad:
            raise ValueError(f"remote_config may not set {bad}: the buffer names its actor, "
                             "takes max_concurrency= as an argument and never restarts it")
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or (
            max_concurrency < 1
        ):
            raise ValueError(f"max_concurrency must be an int >= 1, found {max_concurrency!r}")
        if prefetch is None:
            prefetch = 0
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 0:
            raise ValueError(f"prefetch must be an int >= 0 or None, found {prefetch!r}")
        if prefetch and prefetch + 2 > max_concurrency:
            raise ValueError(f"prefetch={prefetch} needs max_concurrency >= {prefetch + 2} "
                             f"(the calls in flight plus control calls), found {max_concurrency}")
        if prefetch and kwargs.get("batch_size") is None:
            raise ValueError("prefetch needs a default batch_size")
        for part, base in _PARTS:
            _check_part(part, kwargs.get(part), base)
        factory = kwargs.get("transform_factory")
        if factory is not None and not callable(factory):
            raise TypeError(f"transform_factory must be callable, found {type(factory).__name__}")
        if not isinstance(start_timeout, (int, float)) or not start_timeout > 0:
            raise ValueError(f"start_timeout must be a number > 0, found {start_timeout!r}")

        ray = _import_ray()
        if not ray.is_initialized():
            ensure_init(ray, **dict(ray_init_config or {}))
        options = _default_remote_config() if remote_config is None else dict(remote_config)
        options = {k: v for k, v in options.items() if v is not None}
        if "scheduling_strategy" not in options:  # the driver's node: dumps() writes there
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
                ray.get_runtime_context().get_node_id(), soft=False)
        name = f"streamrl:replay:{uuid.uuid4().hex[:8]}"
        options.update(name=name, max_concurrency=max_concurrency, max_restarts=0)
        actor = _actor_class(ray).options(**options).remote()
        self._actor = actor
        # from here on a failure must not leave the actor running
        self._finalizer = weakref.finalize(self, _kill, ray, actor, 1.0)
        try:
            ref = actor.setup.remote(replay_buffer_cls, args,
                                     {**kwargs, "delayed_init": delayed_init})
            try:
                node_id, node_ip, pid = ray.get(ref, timeout=start_timeout)
            except ray.exceptions.GetTimeoutError:
                raise TimeoutError(
                    f"the replay buffer actor {name!r} was not running after {start_timeout:g} "
                    f"s; can a node hold {({k: v for k, v in options.items() if k != 'name'})}?"
                ) from None
            except ray.exceptions.RayActorError as exc:
                raise ReplayActorDiedError(name, "?", "?", "start") from exc
            except ray.exceptions.RayError as exc:
                raise unwrap_error(ray, exc) from None
        except BaseException:
            self._finalizer()  # kills it now
            self._actor = None
            raise
        self.node_id, self.node_ip, self.pid = node_id, node_ip, pid
        super().__init__(actor, (name, node_id, node_ip), kwargs.get("batch_size"), prefetch,
                         has_gpu=bool(options.get("num_gpus")))
        self.max_concurrency = max_concurrency

    def __reduce__(self) -> Any:
        # pickled (e.g. inside a ReplaySink sent to a Ray actor or a process), the owner
        # arrives as a client: the copy reads and writes, only this object shuts down
        return _same, (self.client(),)

    # -- owner-only ---------------------------------------------------------------------------
    def client(self, prefetch: int | None = None) -> _BufferClient:
        """A picklable handle that reads and writes this buffer but cannot shut it down
        (``prefetch``: as this buffer's, by default the same)."""
        self._check_open()
        if prefetch is None:
            prefetch = self._prefetch
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 0:
            raise ValueError(f"prefetch must be an int >= 0 or None, found {prefetch!r}")
        return _BufferClient(self._actor, self._where, self._batch_size, prefetch,
                             self._has_gpu)

    def clients(self, num_clients: int) -> list[_BufferClient]:
        """``num_clients`` handles, one per concurrent consumer (TorchRL's)."""
        if isinstance(num_clients, bool) or not isinstance(num_clients, int) or num_clients < 1:
            raise ValueError(f"num_clients must be an int >= 1, found {num_clients!r}")
        return [self.client() for _ in range(num_clients)]

    def empty(self) -> None:
        """Remove every item (see :meth:`ReplayBuffer.empty`)."""
        self._call("empty")

    def state_dict(self) -> dict[str, Any]:
        """The remote buffer's :meth:`ReplayBuffer.state_dict` (copied here)."""
        return self._call("state_dict")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load a state into the remote buffer (all or nothing, as the buffer's own)."""
        self._call("load_state_dict", state)

    def dumps(self, path: str) -> None:
        """Save the remote buffer to ``path`` on the actor's node (see :meth:`ReplayBuffer.dumps`)."""
        self._call("dumps", str(path))

    def loads(self, path: str) -> None:
        """Load what :meth:`dumps` wrote at ``path`` on the actor's node."""
        self._call("loads", str(path))

    @property
    def service_backend(self) -> str:
        """``"ray"`` (TorchRL's)."""
        return "ray"

    @property
    def transport_kind(self) -> str:
        """``"ray"``: every call goes through Ray (TorchRL's)."""
        return "ray"

    def start(self) -> RayReplayBuffer:
        """This buffer (its actor started when it was built; TorchRL's)."""
        self._check_open()
        return self

    @property
    def is_alive(self) -> bool:
        """Whether :meth:`close` has not run yet (the actor may still have died)."""
        return self._actor is not None

    def _check_open(self) -> None:
        if self._actor is None:
            raise RuntimeError(f"RayReplayBuffer {self.actor_name!r} is closed")

    def _submit(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self._check_open()
        return super()._submit(name, *args, **kwargs)

    def _attr(self, name: str) -> Any:
        self._check_open()
        return super()._attr(name)

    def close(self, timeout: float = 5.0) -> None:
        """Kill the actor (a call still running on it is interrupted; clients' later calls
        raise :class:`ReplayActorDiedError`) and wait up to ``timeout`` seconds until Ray
        reports it dead. Idempotent."""
        actor, self._actor = self._actor, None
        if actor is None:
            return
        self._ahead.clear()
        self._finalizer.detach()
        _kill(_import_ray(), actor, timeout)

    def shutdown(self, timeout: float | None = None) -> None:
        """:meth:`close` (TorchRL's name)."""
        self.close(5.0 if timeout is None else timeout)

    def __enter__(self) -> RayReplayBuffer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "" if self._actor is not None else ", closed"
        return f"RayReplayBuffer({self.actor_name!r}, node={self.node_ip}{state})"

