"""The acting policy stored in an off-policy pipeline's checkpoint, rebuilt as a module.

A ``checkpoint.pt`` names its pipeline (``state["pipeline"]``) and holds its ``config`` (a
dict). The pipeline file's own ``make_models(config, env)`` rebuilds the networks, and the
actor's weights come from ``state["policy"]`` (SAC: the actor's ``state_dict``) or from the
loss's ``actor_network_params`` (TD3, whose actor lives in the loss). The pipeline module is
found by a ``load_module(name)`` callable (the CLI passes its pipeline lookup), so this layer
imports no pipeline file itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from streamrl.train.checkpoint import load_checkpoint

__all__ = ["POLICY_PIPELINES", "checkpoint_env_name", "load_checkpoint_state",
           "policy_from_checkpoint"]

# pipelines whose checkpoint holds an actor that make_models rebuilds
POLICY_PIPELINES = ("sac_mujoco", "sac_pendulum", "td3_mujoco")

_ACTOR_IN_LOSS = "actor_network_params."


def load_checkpoint_state(path: str | Path, *, mmap: bool = False) -> dict[str, Any]:
    """The checkpoint at ``path``; ``FileNotFoundError`` / ``ValueError`` naming the path when
    it is missing, unreadable or not a pipeline checkpoint (no ``pipeline`` / ``config``)."""
    shown = repr(str(path))
    path = Path(path)
    if not path.is_file():
        what = "a directory" if path.is_dir() else "no such file"
        raise FileNotFoundError(f"checkpoint {shown}: expected a checkpoint file "
                                f"(runs/<pipeline>-.../checkpoint.pt), found {what}")
    try:
        state = load_checkpoint(path, mmap=mmap)
    except Exception as exc:  # torch's unpickler on another kind of file, a truncated zip
        first = (str(exc).strip().splitlines() or [""])[0][:100]
        raise ValueError(f"checkpoint {shown}: expected a streamrl checkpoint, found a file "
                         f"torch cannot read ({type(exc).__name__}: {first})") from None
    missing = [k for k in ("pipeline", "config") if k not in state]
    if missing or not isinstance(state.get("config"), dict):
        raise ValueError(f"checkpoint {shown}: expected a pipeline checkpoint with 'pipeline' "
                         f"and a 'config' dict, found keys {sorted(map(str, state))[:10]}")
    return state


def checkpoint_env_name(state: dict[str, Any], path: str | Path) -> str:
    """The gym id the checkpoint's run trained in (``config["env_name"]``)."""
    name = state["config"].get("env_name")
    if not isinstance(name, str):
        raise ValueError(f"checkpoint {str(path)!r}: expected config['env_name'] (a gym id), "
                         f"found {name!r}")
    return name


def policy_from_checkpoint(state: dict[str, Any], env: Any,
                           load_module: Callable[[str], ModuleType], *,
                           path: str | Path = "<checkpoint>") -> tuple[nn.Module, str]:
    """The actor of checkpoint ``state`` for ``env`` (a streamrl env with the run's specs)
    and the pipeline's name.

    ``load_module(name)`` returns the pipeline file's module (``make_models`` and its config
    dataclass, found as ``_pipeline.config_cls`` or the module's one ``*Config`` class).
    ``ValueError``: a pipeline outside :data:`POLICY_PIPELINES`, a config the pipeline's
    dataclass does not take, or weights that do not fit the rebuilt actor."""
    pipeline = state["pipeline"]
    shown = repr(str(path))
    if pipeline not in POLICY_PIPELINES:
        raise ValueError(f"checkpoint {shown} is a {pipeline!r} checkpoint: expected one of "
                         f"{', '.join(POLICY_PIPELINES)} (pipelines whose actor can be "
                         f"rebuilt to play episodes)")
    module = load_module(pipeline)
    config = _config(module, state["config"], pipeline, shown)
    actor = module.make_models(config, env)[0]
    weights = _actor_weights(state, pipeline, shown)
    try:
        actor.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ValueError(f"checkpoint {shown}: its actor weights do not fit the {pipeline} "
                         f"actor rebuilt from its config ({first})") from None
    actor.eval()
    return actor, pipeline


def _config(module: ModuleType, values: dict[str, Any], pipeline: str, shown: str) -> Any:
    config_cls = getattr(getattr(module, "_pipeline", None), "config_cls", None)
    if config_cls is None:
        raise ValueError(f"pipeline {pipeline!r}: expected its file to define _pipeline "
                         f"(with config_cls), found none")
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"checkpoint {shown}: its config has fields {unknown} that "
                         f"{config_cls.__name__} does not (a checkpoint of another version "
                         f"of {pipeline}?)")
    # the recorded run's placement is irrelevant here: only the networks are rebuilt
    return config_cls(**values)


def _actor_weights(state: dict[str, Any], pipeline: str, shown: str) -> dict[str, Any]:
    if isinstance(state.get("policy"), dict):
        return state["policy"]
    loss = state.get("loss")
    if isinstance(loss, dict):
        weights = {k[len(_ACTOR_IN_LOSS):]: v for k, v in loss.items()
                   if k.startswith(_ACTOR_IN_LOSS)}
        if weights:
            return weights
    raise ValueError(f"checkpoint {shown}: expected the {pipeline} actor's weights in "
                     f"'policy' or in the loss's {_ACTOR_IN_LOSS}*, found neither")
