"""Checkpoints of whole runs: named components saved in one file, restored all or nothing.

A :class:`Checkpoint` holds named components: objects with ``state_dict()`` /
``load_state_dict()`` (modules, optimizers, replay buffers, collectors, the process's random
generators as :class:`GlobalRNGState`) and ``match`` values that identify the run (the
pipeline's name, its config). :meth:`Checkpoint.save` writes them atomically (a temporary
file renamed over the old one) as plain data; :meth:`Checkpoint.load` reads the file with
``torch.load(weights_only=True)`` (no pickled code runs), checks that the ``match`` values are
equal and that every module's and optimizer's state fits, and only then loads anything: a
checkpoint of another run raises :class:`CheckpointError` saying what was expected and what
was found, with nothing changed. :class:`CheckpointRotation` keeps the last ``K`` checkpoints
of a run in a directory.

The names follow TorchRL's ``torchrl.checkpoint`` (``Checkpoint``, ``CheckpointRotation``,
``GlobalRNGState``, ``CheckpointError``, ``CheckpointLoadResult``); one file per checkpoint
(TorchRL's default is a directory of payloads), and ``match`` replaces its manifest
comparisons.

>>> import tempfile, torch
>>> from streamrl.checkpoint import Checkpoint, GlobalRNGState
>>> net = torch.nn.Linear(2, 1)
>>> ckpt = Checkpoint(net=net, rng=GlobalRNGState(), match={"config": {"lr": 0.1}})
>>> path = ckpt.save(f"{tempfile.mkdtemp()}/run.pt", metadata={"frames": 64})
>>> a = torch.rand(3)
>>> sorted(ckpt.load(path).loaded)           # restores the generators too
['net', 'rng']
>>> torch.equal(torch.rand(3), a)
True
>>> Checkpoint(net=net, match={"config": {"lr": 0.2}}).load(path)
Traceback (most recent call last):
...
streamrl.checkpoint.CheckpointError: ... 'config' does not match this run: lr: expected 0.2, found 0.1
"""

from __future__ import annotations

import copy
import os
import random
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamrl._utils.rng_state import (
    check_torch_cpu_state,
    rng_states_from_plain,
    rng_states_to_plain,
)
from streamrl.train.checkpoint import load_checkpoint, save_checkpoint

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "CheckpointLoadResult",
    "CheckpointRotation",
    "GlobalRNGState",
]

_MANIFEST = "checkpoint"  # the reserved top-level key holding the format and the names
_FORMAT = "streamrl.checkpoint"
_VERSION = 1
_STRICTNESS = ("error", "warn", "ignore")


class CheckpointError(RuntimeError, ValueError):
    """A checkpoint cannot be saved or restored into this run; ``result`` is the
    :class:`CheckpointLoadResult` of the failed load (``None`` for a save).

    A ``RuntimeError`` as TorchRL's, and a ``ValueError``: a checkpoint of another run is a
    bad argument, caught where bad arguments are."""

    def __init__(self, message: str, result: CheckpointLoadResult | None = None):
        super().__init__(message)
        self.result = result


@dataclass
class CheckpointLoadResult:
    """What :meth:`Checkpoint.load` did: ``loaded`` components, requested ones ``missing``
    from the file, ``incompatible`` ones (name -> reason), saved ones ``unrequested``, the
    ``values`` of the ``match`` entries found in the file, and the file's ``manifest``
    (format, version, names, metadata)."""

    loaded: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    incompatible: dict[str, str] = field(default_factory=dict)
    unrequested: set[str] = field(default_factory=set)
    values: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)


class GlobalRNGState:
    """The process's random generators as a component: Python's ``random``, numpy's global
    generator, torch's CPU generator and, when CUDA is initialized, every CUDA device's.

    Generators that a run owns as objects (a ``torch.Generator``, a numpy ``Generator``)
    belong to the component that holds them (an env's ``capture_state`` saves its own).

    >>> rng = GlobalRNGState()
    >>> state = rng.state_dict()
    >>> a = torch.rand(2); rng.load_state_dict(state); torch.equal(torch.rand(2), a)
    True
    """

    def state_dict(self) -> dict[str, Any]:
        """The generators' states as plain data (``torch_cuda`` only when CUDA is
        initialized)."""
        state = rng_states_to_plain(random.getstate(), np.random.get_state(),
                                    torch.get_rng_state())
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["torch_cuda"] = list(torch.cuda.get_rng_state_all())
        return state

    def check_state_dict(self, state: Any) -> None:
        """Raise ``ValueError`` unless :meth:`load_state_dict` can restore ``state`` here."""
        expected = {"python", "numpy", "torch_cpu"}
        found = set(state) if isinstance(state, Mapping) else None
        if found is None or not expected <= found <= expected | {"torch_cuda"}:
            raise ValueError(f"GlobalRNGState: expected keys {sorted(expected)} (and "
                             f"'torch_cuda'), found {sorted(found or ())}")
        check_torch_cpu_state(state["torch_cpu"], "GlobalRNGState")
        cuda = state.get("torch_cuda")
        if cuda is not None:
            here = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if len(cuda) != here:
                raise ValueError(f"GlobalRNGState: the checkpoint holds the generators of "
                                 f"{len(cuda)} CUDA devices, this process sees {here}")

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore every generator from :meth:`state_dict` (checked first: nothing changes
        on a bad state)."""
        self.check_state_dict(state)
        python, numpy, torch_cpu = rng_states_from_plain(state)
        random.setstate(python)
        np.random.set_state(numpy)
        torch.set_rng_state(torch_cpu)
        if state.get("torch_cuda") is not None:
            torch.cuda.set_rng_state_all(state["torch_cuda"])

    def __repr__(self) -> str:
        return "GlobalRNGState()"


def _check_json(value: Any, where: str) -> None:
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_json(v, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be str, found {k!r}")
            _check_json(v, f"{where}[{k!r}]")
        return
    raise TypeError(f"{where}: expected JSON-like data (None, bool, int, float, str, lists and "
                    f"str-keyed dicts), found {type(value).__name__}")


def _differences(expected: Any, found: Any) -> str:
    """``key: expected X, found Y`` for the entries of two dicts that differ."""
    if isinstance(expected, Mapping) and isinstance(found, Mapping):
        keys = [k for k in {**expected, **found} if expected.get(k, ...) != found.get(k, ...)]
        return "; ".join(
            f"{k}: expected {expected.get(k, '(absent)')!r}, found {found.get(k, '(absent)')!r}"
            for k in keys
        )
    return f"expected {expected!r}, found {found!r}"


def _check_module(module: torch.nn.Module, state: Any) -> str | None:
    """Why ``state`` does not load into ``module`` (None when it does)."""
    if not isinstance(state, Mapping):
        return f"expected a state_dict, found {type(state).__name__}"
    mine = module.state_dict()
    if set(mine) != set(state):
        return (f"missing keys {sorted(set(mine) - set(state))}, unexpected keys "
                f"{sorted(set(state) - set(mine))}")
    for k, v in mine.items():
        other = state[k]
        if isinstance(v, torch.Tensor) and (
                not isinstance(other, torch.Tensor) or other.shape != v.shape):
            shape = tuple(other.shape) if isinstance(other, torch.Tensor) else type(other).__name__
            return f"{k}: expected shape {tuple(v.shape)}, found {shape}"
    return None


def _check_optimizer(optim: torch.optim.Optimizer, state: Any) -> str | None:
    if not isinstance(state, Mapping) or set(state) != {"state", "param_groups"}:
        return "expected an optimizer state_dict with keys ['param_groups', 'state']"
    mine = [len(g["params"]) for g in optim.param_groups]
    saved = [len(g.get("params", ())) for g in state["param_groups"]]
    if mine != saved:
        return f"parameters per group: expected {mine}, found {saved}"
    return None


class Checkpoint:
    """Named components of a run, saved to one file and restored together.

    Args:
        strict: what :meth:`load` does with a requested component that is missing from the
            file or does not fit: ``"error"`` (default; :class:`CheckpointError` before
            anything is loaded), ``"warn"`` or ``"ignore"`` (load the others; ``"warn"``
            also warns).
        match: JSON-like values that identify the run (e.g. ``{"pipeline": "ppo",
            "config": dataclasses.asdict(config)}``): saved, and on load each must be
            present and equal, whatever ``strict`` says, or nothing is loaded.
        **components: objects with ``state_dict()`` and ``load_state_dict(state)``.

    ``load`` checks, before loading anything: the file's format, the ``match`` values,
    that every requested component is there, that modules' keys and shapes and optimizers'
    parameter groups fit, and components' own ``check_state_dict(state)`` when they have
    one. A component that still fails while loading raises :class:`CheckpointError` naming
    the ones already loaded.
    """

    def __init__(self, *, strict: str = "error", match: Mapping[str, Any] | None = None,
                 **components: Any):
        if strict not in _STRICTNESS:
            raise ValueError(f"strict must be one of {_STRICTNESS}, found {strict!r}")
        self.strict = strict
        self._match: dict[str, Any] = {}
        for name, value in dict(match or {}).items():
            self._check_name(name)
            _check_json(value, f"match[{name!r}]")
            self._match[name] = value
        self._components: dict[str, Any] = {}
        for name, component in components.items():
            self.register(name, component)

    @property
    def components(self) -> dict[str, Any]:
        """The registered components by name (a copy)."""
        return dict(self._components)

    def _check_name(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"component names must be non-empty str, found {name!r}")
        if name == _MANIFEST:
            raise ValueError(f"{_MANIFEST!r} is reserved for the checkpoint's manifest")
        if name in getattr(self, "_components", {}) or name in self._match:
            raise ValueError(f"a component named {name!r} is already registered")

    def register(self, name: str, component: Any) -> Checkpoint:
        """Add ``component`` (with ``state_dict`` and ``load_state_dict``) under ``name``;
        returns the checkpoint."""
        self._check_name(name)
        for method in ("state_dict", "load_state_dict"):
            if not callable(getattr(component, method, None)):
                raise TypeError(f"component {name!r} ({type(component).__name__}) has no "
                                f"{method}(); register objects with state_dict and "
                                "load_state_dict, and identify the run with match=")
        self._components[name] = component
        return self

    # ------------------------------------------------------------------ save
    def snapshot(self, components: Collection[str] | None = None) -> dict[str, Any]:
        """The components' states now, copied (tensors cloned): kept in memory, e.g. at a
        batch boundary, and written later with ``save(path, snapshot=...)`` (so that an
        interruption in the middle of a batch saves the boundary, not a half-updated run)."""
        return {name: copy.deepcopy(self._components[name].state_dict())
                for name in self._select(components)}

    def save(self, path: str | os.PathLike, *, components: Collection[str] | None = None,
             metadata: Mapping[str, Any] | None = None,
             snapshot: Mapping[str, Any] | None = None) -> Path:
        """Write the components (all, or those named in ``components``), the ``match``
        values and JSON-like ``metadata`` to ``path`` atomically; returns the path. With
        ``snapshot`` (from :meth:`snapshot`), its states are written instead of the
        components' current ones. A state that is not plain data raises ``TypeError``
        before the file is touched."""
        if snapshot is not None:
            unknown = sorted(set(snapshot) - set(self._components))
            if unknown:
                raise ValueError(f"the snapshot holds unknown components {unknown}")
            if components is not None:
                raise TypeError("pass components= or snapshot=, not both")
            names = [n for n in self._components if n in snapshot]
        else:
            names = self._select(components)
        meta = dict(metadata or {})
        _check_json(meta, "metadata")
        state: dict[str, Any] = {
            _MANIFEST: {"format": _FORMAT, "version": _VERSION, "components": names,
                        "match": sorted(self._match), "metadata": meta},
            **self._match,
        }
        for name in names:
            state[name] = (snapshot[name] if snapshot is not None
                           else self._components[name].state_dict())
        return save_checkpoint(path, state)

    def _select(self, components: Collection[str] | None) -> list[str]:
        if components is None:
            return list(self._components)
        if isinstance(components, str):
            raise TypeError("components must be a collection of names, found a str")
        unknown = sorted(set(components) - set(self._components))
        if unknown:
            raise ValueError(f"unknown components {unknown}; registered: "
                             f"{sorted(self._components)}")
        return [n for n in self._components if n in set(components)]

    # ------------------------------------------------------------------ load
    @staticmethod
    def manifest(path: str | os.PathLike) -> dict[str, Any]:
        """The format, version, component names and metadata of the checkpoint at
        ``path`` (``CheckpointError`` if it is not one)."""
        return Checkpoint._read(path, "cpu")[0]

    @staticmethod
    def is_checkpoint(path: str | os.PathLike) -> bool:
        """Whether ``path`` is a file that :meth:`Checkpoint.save` wrote."""
        try:
            Checkpoint._read(path, "cpu")
        except (CheckpointError, FileNotFoundError):
            return False
        return True

    @staticmethod
    def _read(path: str | os.PathLike, map_location: Any) -> tuple[dict, dict]:
        try:
            state = load_checkpoint(path, map_location=map_location)
        except FileNotFoundError:
            raise
        except Exception as exc:  # torch's unpickler errors, a truncated file...
            raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {exc}") from exc
        manifest = state.get(_MANIFEST)
        if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
            raise CheckpointError(
                f"{str(path)!r} is not a streamrl.checkpoint file (no {_MANIFEST!r} manifest; "
                f"its keys: {sorted(map(str, state))})"
            )
        if manifest.get("version") != _VERSION:
            raise CheckpointError(f"{str(path)!r} has checkpoint format version "
                                  f"{manifest.get('version')!r}, this streamrl reads "
                                  f"{_VERSION}")
        return manifest, state

    def load(self, path: str | os.PathLike, *, components: Collection[str] | None = None,
             map_location: Any = "cpu", strict: str | None = None) -> CheckpointLoadResult:
        """Restore the components (all, or those named in ``components``) from ``path``.

        Everything is checked before anything is loaded (see the class docstring);
        ``strict`` overrides the checkpoint's for this call. Returns what was done.
        """
        strict = self.strict if strict is None else strict
        if strict not in _STRICTNESS:
            raise ValueError(f"strict must be one of {_STRICTNESS}, found {strict!r}")
        names = self._select(components)
        manifest, state = self._read(path, map_location)
        saved = set(manifest.get("components", ()))
        result = CheckpointLoadResult(manifest=manifest,
                                      unrequested=saved - set(names))
        where = f"checkpoint {str(path)!r}"
        for name, expected in self._match.items():
            if name not in state:
                raise CheckpointError(f"{where} has no {name!r} to identify its run "
                                      f"(expected {expected!r})", result)
            result.values[name] = state[name]
            if state[name] != expected:
                raise CheckpointError(f"{where}: {name!r} does not match this run: "
                                      f"{_differences(expected, state[name])}", result)
        for name in names:
            if name not in saved:
                result.missing.add(name)
                continue
            reason = self._why_not(self._components[name], state[name])
            if reason is not None:
                result.incompatible[name] = reason
        if result.missing or result.incompatible:
            problems = [f"missing {sorted(result.missing)}"] if result.missing else []
            problems += [f"{n!r}: {r}" for n, r in sorted(result.incompatible.items())]
            message = f"{where} does not fit this run ({'; '.join(problems)})"
            if strict == "error":
                raise CheckpointError(message + "; nothing was loaded", result)
            if strict == "warn":
                import warnings

                from streamrl._warnings import StreamRLWarning

                warnings.warn(message, StreamRLWarning, stacklevel=2)
        for name in names:
            if name in result.missing or name in result.incompatible:
                continue
            try:
                self._components[name].load_state_dict(state[name])
            except Exception as exc:
                raise CheckpointError(
                    f"{where}: loading {name!r} failed ({type(exc).__name__}: {exc}); "
                    f"already loaded: {sorted(result.loaded)}", result) from exc
            result.loaded.add(name)
        return result

    @staticmethod
    def _why_not(component: Any, state: Any) -> str | None:
        if isinstance(component, torch.nn.Module):
            return _check_module(component, state)
        if isinstance(component, torch.optim.Optimizer):
            return _check_optimizer(component, state)
        check = getattr(component, "check_state_dict", None)
        if callable(check):
            try:
                check(state)
            except (TypeError, ValueError) as exc:
                return str(exc)
        return None

    def __repr__(self) -> str:
        return (f"Checkpoint(components={list(self._components)}, "
                f"match={sorted(self._match)}, strict={self.strict!r})")


class CheckpointRotation:
    """A directory of a run's checkpoints, ``{prefix}-{step:012d}.pt``, keeping the newest
    ``keep_last``.

    >>> import tempfile, torch
    >>> d = tempfile.mkdtemp()
    >>> rotation = CheckpointRotation(d, keep_last=2)
    >>> ckpt = Checkpoint(net=torch.nn.Linear(1, 1))
    >>> paths = [rotation.save(ckpt, step=s) for s in (10, 20, 30)]
    >>> [p.name for p in rotation.checkpoints()]
    ['checkpoint-000000000020.pt', 'checkpoint-000000000030.pt']
    >>> rotation.latest() == paths[-1]
    True
    """

    def __init__(self, directory: str | os.PathLike, *, keep_last: int,
                 prefix: str = "checkpoint"):
        if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1:
            raise ValueError(f"keep_last must be a positive int, found {keep_last!r}")
        if not isinstance(prefix, str) or not re.fullmatch(r"[\w.-]+", prefix):
            raise ValueError(f"prefix must be a plain file-name prefix, found {prefix!r}")
        self.directory = Path(directory)
        self.keep_last = keep_last
        self.prefix = prefix
        self._pattern = re.compile(rf"{re.escape(prefix)}-(\d+)\.pt")

    def path(self, step: int) -> Path:
        """Where the checkpoint of ``step`` goes."""
        return self.directory / f"{self.prefix}-{step:012d}.pt"

    def save(self, checkpoint: Checkpoint, *, step: int,
             metadata: Mapping[str, Any] | None = None,
             components: Collection[str] | None = None) -> Path:
        """Save ``checkpoint`` for ``step`` (recorded in the metadata too), then
        :meth:`prune`; returns the new file."""
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be a non-negative int, found {step!r}")
        path = checkpoint.save(self.path(step), components=components,
                               metadata={**(metadata or {}), "step": step})
        self.prune()
        return path

    def checkpoints(self) -> tuple[Path, ...]:
        """The retained checkpoints, oldest step first."""
        if not self.directory.is_dir():
            return ()
        found = []
        for p in self.directory.iterdir():
            m = self._pattern.fullmatch(p.name)
            if m and p.is_file():
                found.append((int(m.group(1)), p))
        return tuple(p for _, p in sorted(found))

    def latest(self) -> Path | None:
        """The newest checkpoint, or None."""
        found = self.checkpoints()
        return found[-1] if found else None

    def load_latest(self, checkpoint: Checkpoint, **kwargs: Any) -> CheckpointLoadResult:
        """``checkpoint.load`` of the newest checkpoint (``CheckpointError`` when there is
        none); ``kwargs`` go to :meth:`Checkpoint.load`."""
        path = self.latest()
        if path is None:
            raise CheckpointError(f"no {self.prefix}-*.pt checkpoint in {str(self.directory)!r}")
        return checkpoint.load(path, **kwargs)

    def prune(self) -> tuple[Path, ...]:
        """Delete all but the newest ``keep_last`` checkpoints; returns the deleted files."""
        old = self.checkpoints()[: -self.keep_last]
        for p in old:
            p.unlink(missing_ok=True)
        return old

    def __repr__(self) -> str:
        return (f"CheckpointRotation({str(self.directory)!r}, keep_last={self.keep_last}, "
                f"prefix={self.prefix!r})")
