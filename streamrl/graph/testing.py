"""Test helpers for operator authors: run one operator alone, and a reusable contract suite.

>>> from streamrl.graph import Map
>>> from streamrl.graph.testing import run_operator
>>> run_operator(Map(lambda x: x + 1), {"in": [1, 2, 3]})
{'out': [2, 3, 4]}
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from .graph import Graph
from .kinds import Collect, Source
from .operator import Operator

__all__ = ["OperatorContract", "run_operator"]


def run_operator(op: Operator, feeds: dict[str, list[Any]] | None = None, *,
                 placement: str = "inline", deterministic: bool = False,
                 **run_kwargs: Any) -> dict[str, list[Any]]:
    """Run ``op`` alone: each input port is fed from a list, each output port collected.

    Returns ``{output port: [items]}``. Errors are raised as from :meth:`Graph.run`.
    """
    feeds = feeds or {}
    missing = set(op.inputs) - set(feeds)
    extra = set(feeds) - set(op.inputs)
    if missing or extra:
        raise ValueError(
            f"feeds must have exactly the input ports {op.inputs}; missing {sorted(missing)}, "
            f"unknown {sorted(extra)}"
        )
    g = Graph("run_operator")
    node = g.add(op, name="op", placement=placement)
    for port, items in feeds.items():
        g.connect(g.add(Source(list(items)), name=f"feed_{port}"), node[port])
    sinks = {}
    for port in op.outputs:
        sinks[port] = Collect()
        g.connect(node[port], g.add(sinks[port], name=f"collect_{port}"))
    if deterministic:
        g.run_deterministic()
    else:
        g.run_sync(**run_kwargs)
    return {port: s.items for port, s in sinks.items()}


def _same(a: Any, b: Any) -> bool:
    try:
        import torch
        from tensordict import is_tensor_collection

        if is_tensor_collection(a) or isinstance(a, torch.Tensor):
            return bool((a == b).all())
    except Exception:
        return False
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


class OperatorContract:
    """A pytest suite any operator inherits: define :meth:`make_operator` and :meth:`feeds`.

    It checks that the operator runs the same inline, in a thread, in a process and in
    deterministic mode; that its ``state_dict`` loads into a fresh instance; that ``close`` is
    idempotent; and that an exception in ``step`` reaches the caller naming the operator.
    Set ``placements`` to skip placements an operator does not support, and override
    :meth:`comparable` to leave out outputs that differ between any two runs (timings).

    Examples:
        >>> from streamrl.graph import Map
        >>> class TestDouble(OperatorContract):
        ...     def make_operator(self):
        ...         return Map(lambda x: 2 * x)
        ...     def feeds(self):
        ...         return {"in": [1, 2, 3]}
    """

    placements: tuple[str, ...] = ("inline", "thread", "process")

    def make_operator(self) -> Operator:
        """A fresh operator to test."""
        raise NotImplementedError

    def feeds(self) -> dict[str, list[Any]]:
        """Items for each input port (empty for a source)."""
        return {}

    def comparable(self, outputs: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """The part of :func:`run_operator`'s outputs that must match across placements."""
        return outputs

    def test_contract_same_output_in_every_placement(self) -> None:
        expected = self.comparable(
            run_operator(self.make_operator(), self.feeds(), deterministic=True))
        for placement in self.placements:
            got = self.comparable(
                run_operator(self.make_operator(), self.feeds(), placement=placement))
            assert _same(got, expected), f"placement {placement!r}: {got!r} != {expected!r}"

    def test_contract_state_dict_loads_into_a_fresh_operator(self) -> None:
        op = self.make_operator()
        run_operator(op, self.feeds(), deterministic=True)
        state = copy.deepcopy(op.state_dict())
        assert isinstance(state, dict)
        fresh = self.make_operator()
        fresh.load_state_dict(state)
        assert _same(fresh.state_dict(), state)

    def test_contract_close_is_idempotent(self) -> None:
        op = self.make_operator()
        run_operator(op, self.feeds(), deterministic=True)
        op.close()
        op.close()

    def test_contract_step_error_names_the_operator(self) -> None:
        from .errors import OperatorError

        if not self.feeds() and self.make_operator().inputs:
            return
        op = self.make_operator()
        failing: Callable[[dict[str, Any]], Any] = _raiser
        # an instance attribute: only this object fails
        op.step = failing  # type: ignore[method-assign,assignment]
        try:
            run_operator(op, self.feeds(), deterministic=True)
        except OperatorError as err:
            assert err.operator == "op" and isinstance(err.__cause__, _ContractError)
        else:
            raise AssertionError("an exception raised in step() did not reach the caller")


class _ContractError(Exception):
    pass


def _raiser(inputs: dict[str, Any]) -> Any:
    raise _ContractError("raised by the contract test")
