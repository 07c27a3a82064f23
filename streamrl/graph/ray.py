"""Ray placement: the operator runs on a Ray actor (this machine or another node of a cluster).

Ray is imported only when a Ray-placed operator starts, so :mod:`streamrl.graph` works without
it. The runner stays on the driver: each hook call is one actor method call, its arguments and
result travel through Ray's object store, and the reply is awaited on the event loop.
"""

from __future__ import annotations

import ipaddress
import numbers
import string
import time
import uuid
import warnings
from collections import deque
from typing import Any

import anyio

from .._utils.ray_init import ensure_init, import_ray, send_local_modules
from .._utils.ray_items import (
    actor_died,
    actor_location,
    pack_item,
    unpack_item,
    unwrap_error,
)
from .._warnings import StreamRLWarning
from ._ray_groups import GroupHold, RayPlacementGroup, bundle_count, user_group
from .eventloop import run_in_own_thread, running_loop
from .operator import Many, Operator, async_hooks
from .placement import END, NOARG, Host, PipelinedHost, Placement, call_hook

__all__ = ["Ray", "RayPlacementGroup"]

# Options this placement sets itself; passing them in actor_options would break it.
_RESERVED = ("name", "namespace", "max_concurrency", "num_cpus", "num_gpus", "resources",
             "memory", "max_restarts", "max_task_retries")
_NODE_ID_LEN = 56  # a Ray node id: 28 bytes, in hex
_actor_class: Any = None


def _import_ray() -> Any:
    return import_ray("the Ray placement")


def _map_items(fn: Any, values: Any) -> Any:
    """Apply ``fn`` to each item of a hook's ``{port: item or Many}`` dict."""
    if not isinstance(values, dict):
        return values
    return {p: Many(fn(x) for x in v.items) if isinstance(v, Many) else fn(v)
            for p, v in values.items()}


class _Served:
    """The actor's body: holds the operator and runs its hooks, one call at a time."""

    def __init__(self, op: Operator):
        self.op = op

    def ready(self) -> tuple[str, str, int]:
        """Where the actor runs: ``(node id, node IP, pid)``."""
        return actor_location()

    def hook(self, name: str, arg: Any = NOARG) -> Any:
        if name == "step":
            arg = _map_items(unpack_item, arg)
        result = call_hook(self.op, name, arg)
        if result is not END and name in ("open", "step", "finish"):
            result = _map_items(pack_item, result)
        return result


def _served_class(ray: Any) -> Any:
    global _actor_class
    if _actor_class is None:
        _actor_class = ray.remote(_Served)
    return _actor_class


def _ensure_init(ray: Any, address: str | None = None, namespace: str | None = None,
                 **options: Any) -> None:
    """Start Ray (``address``, ``namespace`` and more ``ray.init`` options) unless it runs."""
    ensure_init(ray, address=address, namespace=namespace, **options)


class _RayHost(PipelinedHost):
    placement = "ray"

    def __init__(self, op: Operator, name: str, placement: Ray, window: int):
        super().__init__(op, name)
        if async_hooks(op):
            raise TypeError(
                f"operator {name!r} has async hooks {async_hooks(op)}; only placement='inline' "
                "can await them"
            )
        self._p = placement
        self.max_in_flight = window
        self._ray: Any = None
        self._actor: Any = None
        self._inflight: deque[Any] = deque()  # refs sent and not yet answered, oldest first
        self._closed = False
        self._groups = GroupHold()
        self.actor_name = ""
        #: ``(node id, node IP, pid)`` of the actor, once it has answered ``ready()``
        self.where: tuple[str, str, int] | None = None

    def _error(self, exc: BaseException) -> BaseException:
        """The operator's exception for a failed call; a dead actor named with its node (once
        known: recorded when it answered ``ready()``)."""
        err = unwrap_error(self._ray, exc)
        if (err is exc and isinstance(exc, self._ray.exceptions.RayActorError)
                and self.where is not None):
            err = actor_died(self.actor_name, self.where, exc)
        return err

    async def start(self) -> None:
        running_loop(f"operator {self.name!r} (placement='ray')")  # refs are asyncio awaitables
        ray = self._ray = _import_ray()
        if not ray.is_initialized():
            await run_in_own_thread(
                lambda: _ensure_init(ray, self._p.address, self._p.namespace),
                f"streamrl-ray-init-{self.name}",
            )
        send_local_modules(ray)  # pipeline files loaded by path: by value
        group = self._groups.acquire(ray, self._p.placement_group)
        await self._groups.ready(ray, self._p.placement_group, self._p.start_timeout)
        self.actor_name = f"streamrl:{self.name}:{uuid.uuid4().hex[:8]}"
        opts = self._p.actor_options_for(self.actor_name, group)
        opts["max_concurrency"] = 1  # hooks run one at a time, in the order they were sent
        # .remote() pickles the operator (cloudpickle) and returns at once; the actor is
        # scheduled and built in the background, and ready() answers once it is.
        self._actor = _served_class(ray).options(**opts).remote(self.op)
        ref = self._actor.ready.remote()
        self._inflight.append(ref)
        with anyio.move_on_after(self._p.start_timeout) as scope:
            try:
                self.where = await ref
            except ray.exceptions.RayError as exc:
                self._inflight.remove(ref)
                err = self._error(exc)
                raise err from err.__cause__  # its own cause kept, not Ray's error
        if scope.cancelled_caught:
            raise self._p.not_started(self.name)
        self._inflight.remove(ref)

    def submit(self, hook: str, arg: Any = NOARG) -> Any:
        """Send a hook call without waiting; returns a handle for :meth:`collect`. Up to
        ``max_in_flight`` calls may be outstanding (the actor runs them in order)."""
        if self._actor is None:
            raise RuntimeError(f"the Ray actor of operator {self.name!r} is not running")
        if len(self._inflight) >= self.max_in_flight:
            raise RuntimeError(f"operator {self.name!r}: more than {self.max_in_flight} calls "
                               "in flight")
        if hook == "step":
            arg = _map_items(pack_item, arg)
        method = self._actor.hook
        ref = method.remote(hook) if arg is NOARG else method.remote(hook, arg)
        self._inflight.append(ref)
        return ref, time.perf_counter()

    async def collect(self, handle: Any) -> tuple[Any, float]:
        """Wait for the reply to a :meth:`submit`; returns ``(result or END, seconds)``."""
        ref, t0 = handle
        try:
            result = await ref
        except self._ray.exceptions.RayError as exc:
            self._inflight.remove(ref)
            err = self._error(exc)
            raise err from err.__cause__  # its own cause kept, not Ray's error
        # not reached when cancelled: the call stays in flight and marks the actor busy
        self._inflight.remove(ref)
        return _map_items(unpack_item, result), time.perf_counter() - t0

    async def aclose(self, *, fast: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        if self._actor is None:  # never started: nothing runs remotely
            self._groups.release()
            return
        error: BaseException | None = None
        with anyio.CancelScope(shield=True):
            if not fast:  # answers still due (pipelined calls whose consumer has gone): wait
                with anyio.move_on_after(self._p.close_timeout):
                    while self._inflight:
                        ref = self._inflight[0]
                        try:
                            await ref
                        except Exception:  # its consumer has gone: the outcome is dropped
                            pass
                        self._inflight.popleft()
                if self._inflight:
                    warnings.warn(
                        f"operator {self.name!r}: its Ray actor is still inside a hook after "
                        f"{self._p.close_timeout:g} s; killed without copying its state back or "
                        "running close()",
                        StreamRLWarning,
                        stacklevel=2,
                    )
            if not self._inflight:  # idle: bring the state back, then close() on the actor
                if self._p.sync_state and not fast:
                    await self._copy_state_back()
            if not self._inflight:  # (a state_dict() that timed out is still running)
                with anyio.move_on_after(1.0 if fast else self._p.close_timeout):
                    try:
                        await self.call("close")
                    except Exception as exc:
                        error = exc
            try:
                await self._kill(1.0 if fast else self._p.close_timeout)
            finally:  # the actor is gone: a group the graph made for it may go too
                self._groups.release()
        if error is not None:
            raise error

    async def _copy_state_back(self) -> None:
        with anyio.move_on_after(self._p.close_timeout) as scope:
            try:
                state, _ = await self.call("state_dict")
                self.op.load_state_dict(state)
                return
            except Exception as exc:
                why = f"{type(exc).__name__}: {exc}"
        if scope.cancelled_caught:
            why = f"no answer within {self._p.close_timeout:g} s"
        warnings.warn(
            f"operator {self.name!r}: could not copy its state back from its Ray actor ({why})",
            StreamRLWarning,
            stacklevel=3,
        )

    async def _kill(self, wait: float) -> None:
        """Kill the actor (a hook still running is interrupted) and wait, up to ``wait``
        seconds, until Ray reports it dead: then its process is gone and its name released."""
        ray, actor, pending = self._ray, self._actor, list(self._inflight)
        self._actor = None
        self._inflight.clear()
        ray.kill(actor, no_restart=True)
        with anyio.move_on_after(wait):
            for ref in pending:
                try:
                    await ref
                except Exception:  # ActorDiedError: the expected answer
                    pass
            while True:  # a probe sent before the kill lands is still answered
                try:
                    await actor.ready.remote()
                except Exception:
                    return
                await anyio.sleep(0.005)


def _check_failure_policy(on_failure: Any, max_restarts: Any, direct: bool) -> int:
    """``max_restarts`` resolved (3 for ``"restart"`` when None, else 0), or a ValueError."""
    if on_failure not in ("fail", "restart"):
        raise ValueError(f"on_failure must be 'fail' or 'restart', found {on_failure!r}")
    if on_failure == "fail":
        if max_restarts not in (None, 0):
            raise ValueError(f"max_restarts needs on_failure='restart', found max_restarts="
                             f"{max_restarts!r} with on_failure='fail'")
        return 0
    if not direct:
        raise ValueError("on_failure='restart' needs direct=True (the operator runs under its "
                         "own runner on its actor, which can be started again)")
    if max_restarts is None:
        return 3
    if not isinstance(max_restarts, int) or isinstance(max_restarts, bool) or max_restarts < 1:
        raise ValueError(f"max_restarts must be an int >= 1 with on_failure='restart', found "
                         f"{max_restarts!r}")
    return max_restarts


_PER_OPERATOR = ("group", "zero_copy")  # options that may differ within a group


class Ray(Placement):
    """Run the operator on a Ray actor, on this machine or on any node of a Ray cluster.

    The operator object is pickled (cloudpickle) to a new actor when the graph starts, so it
    should create heavy or unpicklable resources in ``open``; each hook call is a method call on
    the actor, with TensorDicts and other messages carried by Ray's object store. The actor
    asks Ray for ``num_cpus``, ``num_gpus``, custom ``resources`` and ``memory`` (bytes)
    (``None``: Ray's defaults); ``actor_options`` are passed to ``ray.remote(...).options``
    (e.g. ``runtime_env``). Functions and classes the operator refers to must be importable
    on the actor's node (or sent by value, ``ray.cloudpickle.register_pickle_by_value``). An
    operator's exception is re-raised in the driver as the original exception (Ray's remote
    traceback added as a note; a ``ray.exceptions.RayError`` with the details when it cannot
    be pickled), so the graph raises its usual :class:`~streamrl.graph.OperatorError` naming
    the operator; an actor that dies is named with its node (id and IP) and pid. Each hook
    call costs a Ray round trip (about 1 ms on a 2-core machine, see
    ``benchmarks/graph_ray.py``): send batches of many env rows per message. Starting an
    actor takes seconds (a new Ray worker process imports torch to rebuild the operator).

    Where the actor runs (at most one of these, and not with
    ``actor_options["scheduling_strategy"]``):

    * ``node=``: a node id (hex), a node's IP or ``"driver"`` (the driver's node), resolved
      among the alive nodes when the actor starts (an unknown one, or an IP that several
      nodes share, raises naming the alive nodes); Ray's ``NodeAffinitySchedulingStrategy``,
      ``soft=node_soft`` (``True``: another node when that one cannot hold the actor).
    * ``placement_group=`` a Ray ``PlacementGroup`` the user created (used, never removed), or
      a :class:`~streamrl.graph.RayPlacementGroup` that the graph creates when the first
      operator naming it starts and removes after the run, whatever ended it; ``bundle=``
      the bundle index (``None``: any bundle).
    * ``spread=True``: Ray's ``"SPREAD"`` strategy (actors spread over the nodes).

    When the run ends normally the actor's ``state_dict()`` is loaded into the driver's operator
    object (``sync_state=False`` skips this), ``close()`` runs on the actor, and the actor is
    killed. When the graph is cancelled or fails, the actor is killed at once, even inside a
    hook (its ``close()`` does not run then). ``max_in_flight`` pipelines calls as for
    :class:`~streamrl.graph.Process` (default: two for ``pipeline_safe`` operators, else one).

    With ``direct=True`` the operator runs under its own runner on its actor instead, on the
    actor's event loop, and its edges are served by the actors themselves: items between two
    direct operators go actor to actor without passing through the driver; a FIFO edge into
    an actor keeps its backpressure (at most ``capacity`` items sent and not yet taken, plus
    the one each end holds; order kept), an edge into the driver is pulled by it, and a
    latest-value edge sends each new value once. ``max_in_flight`` and ``close_timeout`` do
    not apply; async hooks are allowed; ``sync_state`` brings the final state back as above;
    the actors are killed when the whole run is over. A rate-limited edge cannot join two
    processes (use a replay buffer served by an actor). An actor that dies is reported as an
    :class:`~streamrl.graph.OperatorError` naming the operator, its actor, pid and node.

    ``group="name"`` (direct only) runs the operators placed with the same group on one actor,
    under one runner: the edges between them are local channels (fused where the graph
    allows), and their placements must otherwise be equal (else the graph is refused when it
    starts); the group's name names the actor and its failures.

    ``zero_copy=True`` (direct only): the items this operator sends on FIFO edges are read
    where they arrive without a copy out of Ray's object store (the tensors are views of it,
    as Ray's numpy arrays are): for consumers that neither write into them in place (that
    would change the stored object) nor keep them (that pins store memory), e.g. a replay
    buffer's sink, which copies rows into its storage. A 54 MiB batch into a replay buffer
    on the driver costs about 30% less.

    ``on_failure="restart"`` (direct only) replaces an actor that dies, up to ``max_restarts``
    times (default 3), instead: the new actor, wherever the placement fits, loads the
    operator's state taken right after the last item the driver received from it (its
    :meth:`~streamrl.graph.Operator.restart_state`), is given again the latest-value inputs
    the dead one had, and runs on; only the items it had made and the driver had not yet
    received are made again. Such an operator may exchange items with operators on the driver
    only, and its inputs must be latest-value edges (an env source taking weights, a free-
    running rollout), else the graph is refused when it starts. A death beyond
    ``max_restarts`` fails the graph as above, listing the earlier deaths. An error raised by
    the operator itself is not restarted.

    If Ray is not initialized when the graph starts, ``ray.init(address=address,
    namespace=namespace)`` is called (``address=None`` starts a local Ray, ``"auto"`` joins a
    running cluster); otherwise the existing connection is used and they are ignored. Awaiting
    Ray's object refs needs anyio's asyncio backend (the default, and what ``run_sync`` and
    ``iterate`` use). In deterministic mode the operator runs inline instead. Requires
    ``pip install 'streamrl[ray]'``.

    Examples:
        >>> from streamrl.graph import Ray, RayPlacementGroup
        >>> Ray(num_cpus=1, resources={"env_host": 1})
        Ray(num_cpus=1, resources={'env_host': 1})
        >>> Ray(num_cpus=0, memory=2 * 1024**3, node="driver")
        Ray(num_cpus=0, memory=2147483648, node='driver')
        >>> pg = RayPlacementGroup([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
        >>> Ray(placement_group=pg, bundle=1, direct=True)  # doctest: +NORMALIZE_WHITESPACE
        Ray(placement_group=RayPlacementGroup([{'CPU': 1}, {'CPU': 1}],
            strategy='STRICT_SPREAD'), bundle=1, direct=True)
    """

    name = "ray"

    def __init__(self, num_cpus: float | None = None, num_gpus: float | None = None,
                 resources: dict[str, float] | None = None, *, memory: float | None = None,
                 node: str | None = None, node_soft: bool = False,
                 placement_group: Any = None, bundle: int | None = None, spread: bool = False,
                 address: str | None = None,
                 namespace: str | None = None, actor_options: dict[str, Any] | None = None,
                 sync_state: bool = True, max_in_flight: int | None = None,
                 start_timeout: float = 60.0, close_timeout: float = 5.0, direct: bool = False,
                 on_failure: str = "fail", max_restarts: int | None = None,
                 group: str | None = None, zero_copy: bool = False):
        for label, v in (("num_cpus", num_cpus), ("num_gpus", num_gpus), ("memory", memory)):
            if v is not None and (not isinstance(v, numbers.Real) or isinstance(v, bool)
                                  or v < 0):
                raise ValueError(f"{label} must be a number >= 0 or None, found {v!r}")
        if resources is not None:
            if not isinstance(resources, dict):
                raise TypeError(f"resources must be a dict of name -> amount, found "
                                f"{type(resources).__name__}")
            for k, v in resources.items():
                if not isinstance(k, str) or not isinstance(v, numbers.Real) or v < 0:
                    raise ValueError(f"resources must map names (str) to amounts >= 0, found "
                                     f"{k!r}: {v!r}")
        if actor_options is not None and not isinstance(actor_options, dict):
            raise TypeError(f"actor_options must be a dict, found {type(actor_options).__name__}")
        bad = sorted(set(actor_options or {}) & set(_RESERVED))
        if bad:
            raise ValueError(f"actor_options may not set {bad}: the placement sets the actor's "
                             "name, concurrency and restarts (Ray's restarts would lose the "
                             "operator's state: use on_failure='restart' with direct=True), "
                             "and has arguments for its resources")
        _check_where(node, node_soft, placement_group, bundle, spread, actor_options or {})
        if not isinstance(direct, bool):
            raise TypeError(f"direct must be a bool, found {type(direct).__name__}")
        max_restarts = _check_failure_policy(on_failure, max_restarts, direct)
        if group is not None:
            if not isinstance(group, str) or not group:
                raise ValueError(f"group must be a non-empty str or None, found {group!r}")
            if not direct:
                raise ValueError("group= needs direct=True (the operators of a group run on "
                                 "one actor under its runner)")
            if on_failure == "restart":
                raise ValueError("on_failure='restart' is for an operator alone on its actor, "
                                 f"found group={group!r}")
        if not isinstance(zero_copy, bool):
            raise TypeError(f"zero_copy must be a bool, found {type(zero_copy).__name__}")
        if zero_copy and not direct:
            raise ValueError("zero_copy=True needs direct=True (a relayed operator's items are "
                             "read on the driver, which copies them)")
        if max_in_flight is not None and (not isinstance(max_in_flight, int) or max_in_flight < 1):
            raise ValueError(f"max_in_flight must be an int >= 1 or None, found {max_in_flight!r}")
        for label, v in (("start_timeout", start_timeout), ("close_timeout", close_timeout)):
            if not isinstance(v, numbers.Real) or not v > 0:
                raise ValueError(f"{label} must be a number > 0, found {v!r}")
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.resources = dict(resources or {})
        self.memory = memory
        self.node = node.lower() if node is not None and _is_node_id(node) else node
        self.node_soft = node_soft
        self.placement_group = placement_group
        self.bundle = bundle
        self.spread = spread
        self.address = address
        self.namespace = namespace
        self.actor_options = dict(actor_options or {})
        self.sync_state = sync_state
        self.max_in_flight = max_in_flight
        self.start_timeout = start_timeout
        self.close_timeout = close_timeout
        self.direct = direct
        self.on_failure = on_failure
        self.max_restarts = max_restarts
        self.group = group
        self.zero_copy = zero_copy

    def _request_parts(self) -> list[str]:
        parts = [f"{k}={v!r}" for k, v in (("num_cpus", self.num_cpus),
                                             ("num_gpus", self.num_gpus)) if v is not None]
        if self.resources:
            parts.append(f"resources={self.resources!r}")
        if self.memory is not None:
            parts.append(f"memory={self.memory!r}")
        return parts

    def _parts(self) -> list[str]:
        parts = self._request_parts()
        if self.node is not None:
            parts.append(f"node={self.node!r}")
            if self.node_soft:
                parts.append("node_soft=True")
        if self.placement_group is not None:
            pg = self.placement_group
            parts.append("placement_group=" + (repr(pg) if isinstance(pg, RayPlacementGroup)
                                               else f"PlacementGroup({pg.id.hex()})"))
            if self.bundle is not None:
                parts.append(f"bundle={self.bundle!r}")
        if self.spread:
            parts.append("spread=True")
        if self.direct:
            parts.append("direct=True")
        if self.on_failure != "fail":
            parts.append(f"on_failure={self.on_failure!r}, max_restarts={self.max_restarts!r}")
        if self.group is not None:
            parts.append(f"group={self.group!r}")
        if self.zero_copy:
            parts.append("zero_copy=True")
        return parts

    def same_actor(self, other: Ray) -> bool:
        """Whether ``other`` asks for the same actor as this placement (all but ``group`` and
        ``zero_copy``, which is the operator's own): what the operators of one group must
        agree on."""
        mine = {k: v for k, v in vars(self).items() if k not in _PER_OPERATOR}
        theirs = {k: v for k, v in vars(other).items() if k not in _PER_OPERATOR}
        return type(other) is type(self) and mine == theirs

    def actor_options_for(self, name: str, placement_group: Any = None) -> dict[str, Any]:
        """The options of this placement's actor named ``name``: ``actor_options`` plus the
        name (unique, so that several graphs or runs can share a namespace; named for
        inspection), no restarts by Ray (a restarted actor would have lost the operator's
        state), the resources asked for and where the actor goes. Called when the actor
        starts: ``node`` is resolved then (Ray must be initialized), and a
        :class:`RayPlacementGroup` must have been created (``placement_group``: the Ray
        group made for it, see :class:`._ray_groups.GroupHold`)."""
        opts: dict[str, Any] = dict(self.actor_options)
        opts["name"] = name
        opts["max_restarts"] = 0  # streamrl restarts a direct operator itself (on_failure)
        if self.num_cpus is not None:
            opts["num_cpus"] = self.num_cpus
        if self.num_gpus is not None:
            opts["num_gpus"] = self.num_gpus
        if self.resources:
            opts["resources"] = dict(self.resources)
        if self.memory is not None:
            opts["memory"] = self.memory
        if self.spread:
            opts["scheduling_strategy"] = "SPREAD"
        elif self.node is not None:
            ray = _import_ray()
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            opts["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
                _resolve_node(ray, self.node), soft=self.node_soft)
        elif self.placement_group is not None:
            pg = self.placement_group
            if isinstance(pg, RayPlacementGroup):
                if placement_group is None:
                    raise RuntimeError(f"{pg!r} has no Ray placement group yet: it is created "
                                       "when the actor starts (GroupHold.acquire)")
                pg = placement_group
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

            opts["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                pg, placement_group_bundle_index=-1 if self.bundle is None else self.bundle)
        return opts

    def not_started(self, op: str) -> TimeoutError:
        """The error for operator ``op``'s actor not running after ``start_timeout``."""
        return TimeoutError(f"the Ray actor of operator {op!r} was not running after "
                            f"{self.start_timeout:g} s; no node can hold {self.request()}?")

    def request(self) -> str:
        """The resources the actor asks for, as text (for messages)."""
        where = (f" on node {self.node!r}" if self.node is not None else
                 f" in bundle {self.bundle} of its placement group" if self.bundle is not None
                 else "")
        return (", ".join(self._request_parts()) or "Ray's default resources") + where

    def host(self, op: Operator, name: str) -> Host:
        window = self.max_in_flight
        if window is None:
            window = 2 if getattr(op, "pipeline_safe", False) else 1
        return _RayHost(op, name, self, window)

    def __repr__(self) -> str:
        return f"Ray({', '.join(self._parts())})"


def _is_node_id(node: str) -> bool:
    return len(node) == _NODE_ID_LEN and all(c in string.hexdigits for c in node)


def _is_ip(node: str) -> bool:
    try:
        ipaddress.ip_address(node)
    except ValueError:
        return False
    return True


def _check_where(node: Any, node_soft: Any, placement_group: Any, bundle: Any, spread: Any,
                 actor_options: dict[str, Any]) -> None:
    """Check the arguments that say where the actor runs (``Ray.__init__``)."""
    if node is not None and (not isinstance(node, str) or not (
            node == "driver" or _is_node_id(node) or _is_ip(node))):
        raise ValueError(f"node must be a node id ({_NODE_ID_LEN} hex digits), a node's IP "
                         f"address or 'driver', found {node!r}")
    for label, flag in (("node_soft", node_soft), ("spread", spread)):
        if not isinstance(flag, bool):
            raise TypeError(f"{label} must be a bool, found {type(flag).__name__}")
    if node_soft and node is None:
        raise ValueError("node_soft=True needs node=, found node=None")
    if placement_group is not None and not (isinstance(placement_group, RayPlacementGroup)
                                            or user_group(placement_group)):
        raise TypeError(f"placement_group must be a ray.util.placement_group.PlacementGroup or "
                        f"a RayPlacementGroup, found {type(placement_group).__name__}")
    if bundle is not None:
        if placement_group is None:
            raise ValueError(f"bundle={bundle!r} needs placement_group=, found None")
        count = bundle_count(placement_group)
        if (not isinstance(bundle, int) or isinstance(bundle, bool) or bundle < 0
                or (count is not None and bundle >= count)):
            limit = f"< {count}" if count is not None else "of the group"
            raise ValueError(f"bundle must be an index >= 0 and {limit}, found {bundle!r}")
    chosen = [label for label, on in (("node", node is not None),
                                      ("placement_group", placement_group is not None),
                                      ("spread", spread),
                                      ("actor_options['scheduling_strategy']",
                                       "scheduling_strategy" in actor_options)) if on]
    if len(chosen) > 1:
        raise ValueError(f"node, placement_group, spread and actor_options['scheduling_strategy'] "
                         f"exclude each other, found {' and '.join(chosen)}")


def _resolve_node(ray: Any, node: str) -> str:
    """The id of the alive node that ``node`` (an id, an IP or ``"driver"``) names."""
    if node == "driver":
        return str(ray.get_runtime_context().get_node_id())
    alive = [(n["NodeID"], n["NodeManagerAddress"]) for n in ray.nodes() if n.get("Alive")]
    matches = [i for i, ip in alive if node in (i, ip)]
    if len(matches) == 1:
        return matches[0]
    listing = ", ".join(f"{i} ({ip})" for i, ip in alive) or "none"
    if not matches:
        raise ValueError(f"node {node!r} is not an alive node of the Ray cluster; alive nodes: "
                         f"{listing}")
    raise ValueError(f"node {node!r} is the IP of {len(matches)} alive nodes; give one's id. "
                     f"Alive nodes: {listing}")
