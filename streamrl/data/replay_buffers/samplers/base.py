"""The sampler interface: pick storage indices to read, own the random state."""

from __future__ import annotations

from typing import Any

import torch

from streamrl.data.replay_buffers._state import Commit, check_type, tensor_entry

__all__ = ["Sampler"]


def _seeded_generator(seed: int | None) -> torch.Generator:
    gen = torch.Generator()
    if seed is None:
        # Drawn from the global RNG so that ``torch.manual_seed`` makes buffers reproducible.
        seed = int(torch.randint(0, 2**62, (1,)).item())
    gen.manual_seed(seed)
    return gen


class Sampler:
    """Base class of samplers.

    A sampler implements :meth:`sample` and may react to writes (:meth:`on_write`) and to
    :meth:`empty`. It owns a private ``torch.Generator`` so that its random stream is part of
    its state (:meth:`sampling_state`), which is what loader checkpoints resume from.

    Args:
        seed: seed of the private generator; by default drawn from torch's global RNG.
    """

    #: whether the sampler keeps per-write state in this process (no ``shared=True`` buffers)
    keeps_write_state = False

    def __init__(self, *, seed: int | None = None) -> None:
        self._generator = _seeded_generator(seed)

    # -- interface --------------------------------------------------------------------------
    def sample(self, storage, batch_size: int) -> tuple[torch.Tensor, dict[str, Any]]:
        """Return ``(index, info)``: int64 storage indices and extra per-sample fields."""
        raise NotImplementedError

    def on_write(self, index: torch.Tensor, start: int | None, storage) -> None:
        """Called (under the buffer lock) after ``index`` slots were written."""

    def empty(self) -> None:
        """Forget everything about the storage content."""

    def sampleable_count(self, storage) -> int:
        """How many stored items can still be sampled (``len(rb)``): all of them by default."""
        return len(storage)

    def can_sample(self, storage, batch_size: int) -> bool:
        """Whether :meth:`sample` can draw ``batch_size`` items from ``storage`` now (by
        default: whether anything is stored; samplers that exclude items say more)."""
        return len(storage) > 0

    def free_slots(self, n: int) -> torch.Tensor:
        """Up to ``n`` slots the next write should fill first (none by default)."""
        return torch.empty(0, dtype=torch.long)

    @property
    def ran_out(self) -> bool:
        """True when an epoch-based sampler finished its epoch with the last batch."""
        return False

    @property
    def has_epochs(self) -> bool:
        """Whether iteration should stop when :attr:`ran_out` turns true."""
        return False

    def __getstate__(self):
        # A torch.Generator does not survive multiprocessing's pickler (torch 2.13 fails to
        # rebuild it in a spawned process): send its state instead.
        state = self.__dict__.copy()
        gen = state.pop("_generator")
        state["_generator_state"] = (str(gen.device), gen.get_state().numpy().tobytes())
        return state

    def __setstate__(self, state) -> None:
        state = dict(state)
        device, gen_state = state.pop("_generator_state")
        gen = torch.Generator(device=device)
        gen.set_state(torch.frombuffer(bytearray(gen_state), dtype=torch.uint8))
        self.__dict__.update(state)
        self._generator = gen

    # -- random state -----------------------------------------------------------------------
    def _use_generator(self, generator: torch.Generator) -> None:
        """Draw from ``generator`` (e.g. ``ReplayBuffer(generator=...)``) instead of our own."""
        self._generator = generator

    def manual_seed(self, seed: int) -> None:
        """Reseed the private generator."""
        self._generator.manual_seed(int(seed))

    def sampling_state(self) -> dict[str, Any]:
        """The small state that fixes the next samples (RNG and epoch cursor), not the data."""
        return {"generator": self._generator.get_state()}

    def load_sampling_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`sampling_state` returned (all or nothing)."""
        self._prepare_sampling_load(state)()

    def _prepare_sampling_load(self, state: dict[str, Any]) -> Commit:
        """Check :meth:`sampling_state`'s output; return the commit (see ``_state``).
        Subclasses with more sampling state extend it."""
        return _prepare_generator_load(self._generator, state, f"{type(self).__name__} sampling state")

    def state_dict(self) -> dict[str, Any]:
        """Full state (tensors and plain Python values only, loadable with weights_only)."""
        return {"type": type(self).__name__, **self.sampling_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the sampler type must match. A state that does not fit
        raises ``ValueError`` and changes nothing."""
        self._prepare_load(state)()

    def _prepare_load(self, state: dict[str, Any]) -> Commit:
        """Check :meth:`state_dict`'s output without changing the sampler; return the commit
        (see ``streamrl.data.replay_buffers._state``). Subclasses extend it."""
        check_type(state, type(self).__name__, "sampler")
        return self._prepare_sampling_load(state)


def _prepare_generator_load(generator: torch.Generator, state: Any, where: str) -> Commit:
    """Check ``state["generator"]`` fits ``generator``; return the commit that sets it."""
    gen_state = tensor_entry(state, "generator", where, dtype=torch.uint8)
    expected = generator.get_state()
    if gen_state.shape != expected.shape:
        raise ValueError(
            f"{where}: 'generator' must be a {generator.device} generator state of shape "
            f"{tuple(expected.shape)}, found shape {tuple(gen_state.shape)}"
        )
    gen_state = gen_state.clone()

    def commit() -> None:
        generator.set_state(gen_state)

    return commit


def _check_nonempty(storage) -> int:
    n = len(storage)
    if n == 0:
        raise RuntimeError("Cannot sample from an empty storage: add or extend data to the "
                           "replay buffer first")
    return n


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, found {batch_size!r}")
    return batch_size
