"""How a Trainer's pieces become components of a :class:`streamrl.checkpoint.Checkpoint`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamrl.checkpoint import Checkpoint, CheckpointRotation

# registered modules kept under their own name (as TorchRL's Trainer does); the others
# become "trainer_module.<name>"
_OWN_NAMES = ("optimizer", "replay_buffer")


class TrainerState:
    """The loop's counters (``collected_frames``, ``optim_count``, the last log and save
    points): the ``"state"`` entry of ``Trainer.state_dict`` and, with a ``checkpoint``, its
    ``trainer_state`` component."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        t = self.trainer
        return {"collected_frames": t.collected_frames, "optim_count": t.optim_count,
                "last_log": dict(t._last_log), "last_save": t._last_save}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        expected = {"collected_frames", "optim_count", "last_log", "last_save"}
        if set(state) != expected:
            raise ValueError(f"trainer state needs keys {sorted(expected)}, found {sorted(state)}")
        t = self.trainer
        t.collected_frames = int(state["collected_frames"])
        t.optim_count = int(state["optim_count"])
        t._last_log = {str(k): int(v) for k, v in state["last_log"].items()}
        t._last_save = int(state["last_save"])


def _checkpointable(obj: Any) -> bool:
    return all(callable(getattr(obj, m, None)) for m in ("state_dict", "load_state_dict"))


def check_checkpoint_args(checkpoint: Any, rotation: Any, metadata: Any,
                          save_trainer_file: Any) -> None:
    """TorchRL's rules for ``checkpoint``, ``checkpoint_rotation`` and ``checkpoint_metadata``."""
    if checkpoint is not None and not isinstance(checkpoint, Checkpoint):
        raise TypeError(f"checkpoint must be a streamrl.checkpoint.Checkpoint, found "
                        f"{type(checkpoint).__name__}")
    if rotation is not None:
        if not isinstance(rotation, CheckpointRotation):
            raise TypeError(f"checkpoint_rotation must be a CheckpointRotation, found "
                            f"{type(rotation).__name__}")
        if checkpoint is None:
            raise ValueError("checkpoint_rotation needs checkpoint=Checkpoint(...)")
        if save_trainer_file is not None:
            raise ValueError("pass checkpoint_rotation or save_trainer_file, not both")
    if metadata is not None:
        if rotation is None:
            raise ValueError("checkpoint_metadata needs checkpoint_rotation")
        if not callable(metadata):
            raise TypeError(f"checkpoint_metadata must be callable, found "
                            f"{type(metadata).__name__}")


def sync_components(trainer: Any, checkpoint: Checkpoint) -> None:
    """Register on ``checkpoint`` the trainer's pieces it does not have yet: ``loss_module``,
    ``collector`` (when they have a state), ``trainer_state`` and each registered module
    (``optimizer`` and ``replay_buffer`` under those names, others as
    ``trainer_module.<name>``). Components the user registered under these names stay."""
    have = checkpoint.components
    pieces: dict[str, Any] = {"loss_module": trainer.loss_module,
                              "collector": trainer.collector,
                              "trainer_state": trainer._checkpoint_state}
    for name, module in trainer._modules.items():
        pieces[name if name in _OWN_NAMES else f"trainer_module.{name}"] = module
    for name, piece in pieces.items():
        if name not in have and _checkpointable(piece):
            checkpoint.register(name, piece)


def manifest_metadata(trainer: Any) -> dict[str, Any]:
    """The metadata of a rotated save: ``checkpoint_metadata(trainer)``, then the counters."""
    metadata: dict[str, Any] = {}
    if trainer.checkpoint_metadata is not None:
        extra = trainer.checkpoint_metadata(trainer)
        if not isinstance(extra, Mapping):
            raise TypeError(f"checkpoint_metadata must return a mapping, found "
                            f"{type(extra).__name__}")
        metadata.update(extra)
    metadata.update(collected_frames=trainer.collected_frames, optim_steps=trainer.optim_count)
    return metadata
