"""Placement groups a graph owns: :class:`RayPlacementGroup`, and the one place that creates,
shares and removes them.

A :class:`RayPlacementGroup` is only a spec. The group itself is created when the first actor
that names the spec starts, shared by every actor started while it exists (all the operators
of a run that name the same spec object), and removed once the last of them is released.
Both ways of starting Ray actors use :class:`GroupHold` for that: the driver-relayed host
(``ray.py``) holds one per operator, the direct deployment (``_ray_segments.py``) one for all
its segments.
"""

from __future__ import annotations

import numbers
import threading
import warnings
from typing import Any

import anyio

from .._warnings import StreamRLWarning

_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")

# id(spec) -> [spec, the Ray PlacementGroup, how many holders use it]; the spec is kept so
# that its id is not reused while the group exists
_live: dict[int, list[Any]] = {}
_lock = threading.Lock()  # graphs may run on event loops in several threads


class RayPlacementGroup:
    """A Ray placement group that the graph creates for its run and removes afterwards.

    Pass it as ``Ray(placement_group=..., bundle=i)``. The group
    (``ray.util.placement_group(bundles, strategy)``) is created when the first operator
    naming it starts, waited for up to that placement's ``start_timeout`` (else a
    ``TimeoutError`` says which bundles no alive node can hold), shared by every operator of
    the run that names the same object, and removed (``ray.util.remove_placement_group``)
    once the last of them has gone, whatever ended the run: its normal end, an error or a
    cancellation. Two runs going on at once with the same object share one group.

    ``bundles`` is a list of resource dicts (``{"CPU": 1, "GPU": 0.5}``); ``strategy`` is one
    of ``"PACK"``, ``"SPREAD"``, ``"STRICT_PACK"``, ``"STRICT_SPREAD"``.

    Examples:
        >>> from streamrl.graph import RayPlacementGroup
        >>> RayPlacementGroup([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
        RayPlacementGroup([{'CPU': 1}, {'CPU': 1}], strategy='STRICT_SPREAD')
    """

    def __init__(self, bundles: list[dict[str, float]], strategy: str = "PACK"):
        if not isinstance(bundles, (list, tuple)) or not bundles:
            raise ValueError(f"bundles must be a non-empty list of resource dicts, found "
                             f"{bundles!r}")
        for i, b in enumerate(bundles):
            if not isinstance(b, dict) or not b:
                raise ValueError(f"bundle {i} must be a non-empty dict of resource -> amount, "
                                 f"found {b!r}")
            for k, v in b.items():
                if (not isinstance(k, str) or not isinstance(v, numbers.Real)
                        or isinstance(v, bool) or v < 0):
                    raise ValueError(f"bundle {i} must map resource names (str) to amounts "
                                     f">= 0, found {k!r}: {v!r}")
        if strategy not in _STRATEGIES:
            raise ValueError(f"strategy must be one of {list(_STRATEGIES)}, found {strategy!r}")
        self.bundles = [dict(b) for b in bundles]
        self.strategy = strategy

    def __repr__(self) -> str:
        return f"RayPlacementGroup({self.bundles!r}, strategy={self.strategy!r})"


def user_group(value: Any) -> bool:
    """Whether ``value`` is a Ray ``PlacementGroup`` (without importing Ray: a user who made
    one has imported it)."""
    import sys

    module = sys.modules.get("ray.util.placement_group")
    return module is not None and isinstance(value, module.PlacementGroup)


def bundle_count(group: Any) -> int | None:
    """The number of bundles of a spec; None for a user's group (Ray checks the index)."""
    return len(group.bundles) if isinstance(group, RayPlacementGroup) else None


class GroupHold:
    """The graph-owned placement groups one starter of actors uses: :meth:`acquire` before
    creating an actor, :meth:`ready` to wait for the group, :meth:`release` once its actors
    are killed (idempotent; also after errors and cancellation)."""

    def __init__(self) -> None:
        self._held: list[RayPlacementGroup] = []

    def acquire(self, ray: Any, group: Any) -> Any:
        """The Ray ``PlacementGroup`` for ``group``: a user's group or None as they are; for a
        spec the live group, created if there is none."""
        if not isinstance(group, RayPlacementGroup):
            return group
        with _lock:
            entry = _live.get(id(group))
            if entry is None:
                pg = ray.util.placement_group(group.bundles, strategy=group.strategy)
                entry = _live[id(group)] = [group, pg, 0]
            entry[2] += 1
            self._held.append(group)
            return entry[1]

    async def ready(self, ray: Any, group: Any, timeout: float) -> None:
        """Wait until the group of a spec is placed (a user's group is not waited for)."""
        if not isinstance(group, RayPlacementGroup):
            return
        pg = _live[id(group)][1]
        with anyio.move_on_after(timeout):
            await pg.ready()
            return
        raise TimeoutError(f"placement group {group!r} was not ready after {timeout:g} s; "
                           f"{_unplaceable(ray, group)}")

    def release(self) -> None:
        """One use fewer of each group held; a group nobody uses any more is removed."""
        held, self._held = self._held, []
        for group in held:
            with _lock:
                entry = _live[id(group)]
                entry[2] -= 1
                if entry[2] > 0:
                    continue
                del _live[id(group)]
            _remove(entry[1], group)


def _remove(pg: Any, group: RayPlacementGroup) -> None:
    import ray

    if not ray.is_initialized():  # Ray shut down: its groups went with it
        return
    try:
        ray.util.remove_placement_group(pg)
    except Exception as exc:
        warnings.warn(f"could not remove the placement group of {group!r}: "
                      f"{type(exc).__name__}: {exc}", StreamRLWarning, stacklevel=3)


def _unplaceable(ray: Any, group: RayPlacementGroup) -> str:
    """Which bundles no alive node can hold, by the nodes' total resources (for messages)."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    bad = [f"bundle {i} {b}" for i, b in enumerate(group.bundles)
           if not any(all(res.get(k, 0) >= v for k, v in b.items()) for res in nodes)]
    if bad:
        return f"no alive node can hold {', '.join(bad)}"
    if group.strategy == "STRICT_SPREAD" and len(group.bundles) > len(nodes):
        return (f"STRICT_SPREAD needs {len(group.bundles)} nodes and {len(nodes)} are alive")
    return (f"each bundle fits an alive node on its own, but not all of them together with "
            f"strategy {group.strategy!r} while other actors and groups hold resources")
