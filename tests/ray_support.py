"""Ray for the test modules that need it: a local Ray or a local multi-node cluster started
once per module, and the check that a test left no actor of ours behind."""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
STORE = 128 * 2**20  # per node: by default each node sizes its store from the whole machine
_state_api = False  # whether the running cluster serves ray.util.state (local_cluster sets it)


@contextmanager
def checkout_first() -> Iterator[None]:
    """Ray processes started inside (``ray.init`` of a local Ray, a cluster's nodes) put this
    checkout first on their workers' ``PYTHONPATH``: the workers import streamrl from here (it
    may not be the installed one). Ray's workers inherit their node's environment; a job
    ``runtime_env`` setting ``PYTHONPATH`` would do the same, but no worker Ray starts ahead
    matches it, which costs every actor about 0.5 s more to start."""
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), before) if p)
    try:
        yield
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before


def _init(ray: Any, address: str, by_value: tuple[str, ...], **options: Any) -> None:
    with checkout_first():
        ray.init(address=address, log_to_driver=False, configure_logging=False, **options)
    for module in by_value:  # test modules are not importable on Ray's workers
        ray.cloudpickle.register_pickle_by_value(sys.modules[module])


# A test module's local Ray is kept running for the next module when that one starts a local
# Ray with the same options and this one leaves it clean (no named actor, every CPU free, no
# placement group): start-up and shut-down cost about 4 s. The conftest sets ``keep_for_next``
# while a module's fixtures are torn down, and shuts a kept Ray down before any test of a
# module that does not start one (nothing of Ray runs beside the other tests).
keep_for_next = False
_kept: dict[str, Any] | None = None  # the options of the local Ray kept running


@contextmanager
def local_ray(*by_value: str, num_cpus: int = 2, **options: Any) -> Iterator[Any]:
    """A local Ray with ``num_cpus`` CPUs; the modules named in ``by_value`` are sent to the
    workers by value. Shut down at the end, unless kept for the next test module (see
    ``keep_for_next``)."""
    global _kept
    ray = pytest.importorskip("ray")
    wanted = {"num_cpus": num_cpus, **options}
    if _kept is not None and not (_kept == wanted and ray.is_initialized()):
        release_kept()
    if _kept is None:
        _init(ray, "local", (), num_cpus=num_cpus, include_dashboard=False, **options)
    _kept = None
    for module in by_value:  # test modules are not importable on Ray's workers
        ray.cloudpickle.register_pickle_by_value(sys.modules[module])
    try:
        yield ray
    finally:
        if keep_for_next and _clean(ray):
            _kept = wanted
        else:
            ray.shutdown()


def release_kept() -> None:
    """Shut down the local Ray kept for the next module, if any."""
    global _kept
    if _kept is not None:
        _kept = None
        import ray

        ray.shutdown()


def _clean(ray: Any, timeout: float = 2.0) -> bool:
    """Whether the local Ray holds nothing of the tests that used it (killed actors and
    removed groups give their resources back within a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        free = ray.available_resources()
        clean = (not ray.util.list_named_actors(all_namespaces=True)
                 and all(free.get(k, 0.0) == v for k, v in ray.cluster_resources().items()
                         if not k.startswith(("node:", "object_store_memory", "memory")))
                 and all(g["state"] == "REMOVED"
                         for g in ray.util.placement_group_table().values()))
        if clean or time.monotonic() > deadline:
            return clean
        time.sleep(0.05)


@contextmanager
def local_cluster(*by_value: str, head: dict[str, Any],
                  workers: list[dict[str, Any]], with_cluster: bool = False,
                  state_api: bool = False) -> Iterator[Any]:
    """A ``ray.cluster_utils.Cluster`` on this machine: a head with the node arguments
    ``head`` and one node per ``workers`` entry (each with a small object store), joined.
    Yields ``ray``, or ``(ray, cluster)`` with ``with_cluster`` (to remove nodes).
    ``state_api`` starts the head's dashboard (about 2 s more), which serves
    ``ray.util.state``: :func:`assert_no_actors` then checks every actor, placement group
    and object of the cluster, not only the named actors."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    release_kept()
    with checkout_first():
        c = Cluster(initialize_head=True, head_node_args={
            "object_store_memory": STORE, "include_dashboard": state_api, **head})
    try:
        with checkout_first():
            for args in workers:
                c.add_node(object_store_memory=STORE, **args)
        _init(ray, c.address, by_value)
        c.wait_for_nodes()
        global _state_api
        _state_api = state_api
        try:
            yield (ray, c) if with_cluster else ray
        finally:
            _state_api = False
            ray.shutdown()
    finally:
        c.shutdown()


def assert_no_actors(ray: Any, timeout: float = 5.0) -> None:
    """No named actor is left (killed actors drop their name within a moment; a leaked one
    keeps it). Where the cluster serves ``ray.util.state`` (``local_cluster(state_api=True)``),
    also: no actor of any kind alive, pending or restarting, no placement group that is not
    removed, and no object in any node's store."""
    deadline = time.monotonic() + timeout
    while (left := _left(ray)):
        assert time.monotonic() < deadline, f"left on the cluster after the test: {left}"
        time.sleep(0.05)


def _left(ray: Any) -> list[Any]:
    left = list(ray.util.list_named_actors())
    if not _state_api:
        return left
    from ray.util import state

    gc.collect()  # references held in cycles (a cancelled task's frame) go with the cycle
    left += [a for a in state.list_actors(limit=1000) if a.state != "DEAD"]
    left += [g for g in state.list_placement_groups(limit=1000) if g.state != "REMOVED"]
    return left + list(state.list_objects(limit=1000))

