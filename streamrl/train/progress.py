"""RunProgress: a training run's counters as a checkpoint component."""

from __future__ import annotations

from typing import Any

__all__ = ["RunProgress"]


class RunProgress:
    """The counters a resumed run starts from: ``frames`` collected, ``iteration`` (batches,
    or meta-iterations) done and the last evaluation's ``eval_return`` (``None`` before the
    first), as a :class:`streamrl.checkpoint.Checkpoint` component.

    >>> progress = RunProgress()
    >>> progress.frames, progress.iteration = 400, 2
    >>> again = RunProgress()
    >>> again.load_state_dict(progress.state_dict())
    >>> again.frames, again.iteration, again.eval_return
    (400, 2, None)
    """

    def __init__(self) -> None:
        self.frames = self.iteration = 0
        self.eval_return: float | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "iteration": self.iteration,
                "eval_return": self.eval_return}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.frames, self.iteration = int(state["frames"]), int(state["iteration"])
        self.eval_return = state["eval_return"]

    def check_state_dict(self, state: Any) -> None:
        keys = {"frames", "iteration", "eval_return"}
        if not isinstance(state, dict) or set(state) != keys:
            raise ValueError(f"expected keys {sorted(keys)}, found {state!r:.100}")
