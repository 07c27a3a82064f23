"""HERReplayBuffer: hindsight experience replay (Andrychowicz et al. 2017), goals relabelled at
sample time."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDictBase

from streamrl.data.replay_buffers._episode_index import EpisodeIndex
from streamrl.data.replay_buffers.samplers import RandomSampler, Sampler
from streamrl.data.replay_buffers.storages.base import _One
from streamrl.data.replay_buffers.tensordict_buffer import TensorDictReplayBuffer
from streamrl.data.replay_buffers.writers import RoundRobinWriter, TensorDictRoundRobinWriter

__all__ = ["HERReplayBuffer", "HindsightStrategy"]

#: where streamrl's collectors write each row's trajectory id
TRAJ_KEY = ("collector", "traj_ids")


class HindsightStrategy(str, enum.Enum):
    """Where :class:`HERReplayBuffer` takes a relabelled row's new goal from."""

    #: a step of the same episode at or after the row's step
    FUTURE = "future"
    #: the last stored step of the row's episode
    FINAL = "final"
    #: any step of the row's episode
    EPISODE = "episode"
    #: any stored step
    RANDOM = "random"


def _key(key: Any) -> tuple[str, ...]:
    return (key,) if isinstance(key, str) else tuple(key)


class HERReplayBuffer(TensorDictReplayBuffer):
    """A :class:`TensorDictReplayBuffer` for goal-conditioned transitions that relabels the
    first ``int(her_ratio * n)`` rows of each sampled batch of ``n`` with a goal achieved in
    hindsight, and recomputes their reward with ``reward_fn``. TorchRL 0.14's class, names,
    arguments and defaults.

    The new goal of a relabelled row comes from a step chosen by ``strategy``: one at or
    after the row's own step in its episode (``"future"``), its episode's last stored step
    (``"final"``), any step of its episode (``"episode"``), or any stored step
    (``"random"``). The goal is what was achieved *after* that step,
    ``("next", achieved_goal_key)`` (a row whose chosen step is its own has reached its new
    goal, as in the HER paper), or the root ``achieved_goal_key`` where the rows have no
    ``"next"`` one (TorchRL's choice). It is written at ``goal_key`` and, when the rows have
    it, at ``("next", goal_key)``; then ``reward_fn(rows)`` (the relabelled rows, a
    TensorDict) gives the rewards written at ``reward_key`` (shape ``[k]`` or ``[k, 1]``).
    The other rows, and the stored data, are left as they are.

    Episodes are the rows of one ``("collector", "traj_ids")`` when the rows carry it (every
    streamrl collector writes it), so that the interleaved rows of a batched env are grouped
    right; otherwise the rows are split after each one whose ``end_key`` or its
    ``terminated`` sibling is set, in the order they were written (one env's steps written
    in order, as TorchRL assumes). The oldest episode of a buffer that has wrapped has lost
    its first steps and keeps the rest; an episode still running ends at its latest row.

    The grouping is kept up to date write by write: a write through :meth:`extend`,
    :meth:`add` or :meth:`aextend` that goes on where the ring's cursor stands costs, on
    average, tensor ops over its rows and the episodes it touches, whatever the buffer's size
    (see :class:`~streamrl.data.replay_buffers._episode_index.EpisodeIndex`); each batch's
    lookups are tensor ops. Any other change of the stored rows is followed by a grouping of
    all of them (a sort of their trajectory ids) at the next sample: ``rb[index] = rows``,
    which overwrites rows in place out of the write order; a write that does not start at the
    cursor (slots freed by a consuming sampler); any write when the writer is a subclass of
    :class:`RoundRobinWriter` other than :class:`TensorDictRoundRobinWriter` (its slots may
    not follow the ring); a batch without the trajectory ids the stored rows have (or with
    them where the stored rows have none); and a loaded state.

    The storage must have one storage dim and the writer be a :class:`RoundRobinWriter` (the
    write order is read from the ring). A written batch lacking the goal keys, or both the
    trajectory ids and the end flags, is refused before anything is written (``KeyError``
    naming the key).

    Args:
        reward_fn: the reward of a relabelled transition, from the relabelled rows.
        her_ratio: the share of each batch that is relabelled, in ``[0, 1]``.
        strategy: a :class:`HindsightStrategy` or its value.
        goal_key, achieved_goal_key, reward_key, end_key: where the rows hold them.
        sampler: draws the rows (default :class:`RandomSampler`).
        **kwargs: :class:`TensorDictReplayBuffer`'s (``storage``, ``batch_size``, ...).

    >>> from tensordict import TensorDict
    >>> def reward_fn(td):  # 0 when the goal is reached, else -1
    ...     hit = (td["next", "achieved_goal"] == td["desired_goal"]).all(-1, keepdim=True)
    ...     return hit.float() - 1
    >>> rb = HERReplayBuffer(reward_fn, her_ratio=1.0, strategy="final", batch_size=3)
    >>> steps = torch.arange(3.0).unsqueeze(-1)  # one episode: achieved 1, 2, 3 after its steps
    >>> _ = rb.extend(TensorDict({
    ...     "desired_goal": torch.full((3, 1), 9.0), "achieved_goal": steps,
    ...     "next": {"achieved_goal": steps + 1, "reward": -torch.ones(3, 1),
    ...              "done": torch.tensor([[False], [False], [True]])}}, [3]))
    >>> batch = rb.sample()
    >>> batch["desired_goal"].squeeze(-1).tolist()  # the goal achieved at the episode's end
    [3.0, 3.0, 3.0]
    >>> reached = (batch["index"] == 2).float().unsqueeze(-1)  # the last step reaches it
    >>> bool((batch["next", "reward"] == reached - 1).all())
    True
    """

    def __init__(
        self,
        reward_fn: Callable[[TensorDictBase], torch.Tensor],
        *,
        her_ratio: float = 0.8,
        strategy: HindsightStrategy | str = "future",
        goal_key: Any = "desired_goal",
        achieved_goal_key: Any = "achieved_goal",
        reward_key: Any = ("next", "reward"),
        end_key: Any = ("next", "done"),
        sampler: Sampler | None = None,
        **kwargs: Any,
    ) -> None:
        if not callable(reward_fn):
            raise TypeError(f"reward_fn must be callable, found {type(reward_fn).__name__}")
        if (isinstance(her_ratio, bool) or not isinstance(her_ratio, (int, float))
                or not 0.0 <= her_ratio <= 1.0):
            raise ValueError(f"her_ratio must be a float in [0, 1], found {her_ratio!r}")
        try:
            self.strategy = HindsightStrategy(strategy)
        except ValueError:
            raise ValueError(f"strategy must be one of "
                             f"{[s.value for s in HindsightStrategy]}, found {strategy!r}") from None
        super().__init__(sampler=sampler if sampler is not None else RandomSampler(), **kwargs)
        ndim = getattr(self._storage, "ndim", 1)
        if ndim != 1:
            raise ValueError(f"HERReplayBuffer needs a storage with one storage dim, found "
                             f"ndim={ndim}")
        if not isinstance(self._writer, RoundRobinWriter):
            raise ValueError(f"HERReplayBuffer reads the write order from the ring: expected a "
                             f"RoundRobinWriter, found {type(self._writer).__name__}")
        self.reward_fn = reward_fn
        self.her_ratio = float(her_ratio)
        self.goal_key, self.achieved_goal_key = _key(goal_key), _key(achieved_goal_key)
        self.reward_key, self.end_key = _key(reward_key), _key(end_key)
        # None: group all stored rows at the next sample; read and written under self._lock
        self._episodes: EpisodeIndex | None = None

    # -- writing ----------------------------------------------------------------------------
    def _pre_write(self, data, update_priority: bool | None = None):
        data, extra = super()._pre_write(data, update_priority)
        item = data.item if isinstance(data, _One) else data  # add() wraps its one item
        if isinstance(item, TensorDictBase):
            if isinstance(data, _One) and item.batch_dims:
                raise ValueError(f"HERReplayBuffer stores one transition per row: add() takes "
                                 f"a TensorDict of batch size [], found "
                                 f"{list(item.batch_size)} (use extend())")
            self._check_keys(set(item.keys(True, True)))
        return data, extra

    def _check_keys(self, keys: set) -> None:
        flat = {_key(k) for k in keys}
        found = sorted("/".join(k) for k in flat)
        for key in (self.goal_key, self.reward_key):
            if key not in flat:
                raise KeyError(f"HERReplayBuffer: the rows need {'/'.join(key)!r}; found "
                               f"{found}")
        if self.achieved_goal_key not in flat and ("next", *self.achieved_goal_key) not in flat:
            raise KeyError(f"HERReplayBuffer: the rows need {'/'.join(self.achieved_goal_key)!r} "
                           f"or its 'next' entry; found {found}")
        if TRAJ_KEY not in flat and self.end_key not in flat and self._terminated_key not in flat:
            raise KeyError(f"HERReplayBuffer: the rows need {'/'.join(TRAJ_KEY)!r} (trajectory "
                           f"ids) or {'/'.join(self.end_key)!r} (episode ends); found {found}")

    @property
    def _terminated_key(self) -> tuple[str, ...]:
        return (*self.end_key[:-1], "terminated")

    def _after_write(self, plan, batch, extra) -> None:
        super()._after_write(plan, batch, extra)
        episodes = self._episodes
        if episodes is None:
            return
        if not self._follows_ring(episodes, plan):
            self._episodes = None
            return
        slots = plan.index
        rows = self._episode_keys(slots)
        if rows is None or rows[0] != episodes.by_traj:
            self._episodes = None
            return
        episodes.write(slots, rows[1])

    def _follows_ring(self, episodes: EpisodeIndex, plan) -> bool:
        """Whether a write went on at the ring's cursor, as :meth:`EpisodeIndex.write` needs."""
        n = plan.index.numel()
        return (type(self._writer) in (RoundRobinWriter, TensorDictRoundRobinWriter)
                and plan.start == episodes.next
                and plan.new_len == min(episodes.max_size, episodes.length + n))

    def __setitem__(self, index, data) -> None:
        super().__setitem__(index, data)
        self._episodes = None

    def empty(self) -> None:
        super().empty()
        self._episodes = None

    def _prepare_parts(self, state, storage):
        # both load_state_dict and loads (with a checkpointer) load through here
        commit = super()._prepare_parts(state, storage)

        def load() -> None:
            commit()
            self._episodes = None

        return load

    # -- episodes ---------------------------------------------------------------------------
    def _values(self, key: tuple[str, ...], slots: torch.Tensor) -> torch.Tensor | None:
        """The stored ``key`` of the rows at ``slots`` (``None`` where a row lacks it)."""
        storage = self._storage
        column = getattr(storage, "column", None)
        if callable(column):
            try:
                return column(key)[slots]
            except KeyError:
                return None
        rows = storage.get(slots)  # a ListStorage: a list of rows
        if isinstance(rows, TensorDictBase):
            return rows.get(key, None)
        values = [row.get(key, None) for row in rows]
        return None if any(v is None for v in values) else torch.stack(values)

    def _episode_keys(self, slots: torch.Tensor) -> tuple[bool, torch.Tensor] | None:
        """``(True, trajectory ids)`` of the rows at ``slots`` when they all have them, else
        ``(False, end flags)``; ``None`` when they have neither."""
        n = slots.numel()
        traj = self._values(TRAJ_KEY, slots)
        if traj is not None:
            return True, traj.reshape(n, -1)[:, 0].to(torch.int64)
        ends = [c for c in (self._values(self.end_key, slots),
                            self._values(self._terminated_key, slots)) if c is not None]
        if not ends:
            return None
        flag = ends[0].reshape(n, -1)[:, 0].bool()
        for more in ends[1:]:
            flag = flag | more.reshape(n, -1)[:, 0].bool()
        return False, flag

    def _grouped(self) -> EpisodeIndex:
        """The episode index, built from all the stored rows when no write kept it."""
        storage = self._storage
        episodes = self._episodes
        n, full = len(storage), len(storage) == storage.max_size
        # a cheap check that no write went past _after_write (e.g. storage.set())
        if (episodes is not None and episodes.length == n
                and (not full or episodes.next == storage.head)):
            return episodes
        # the slots in write order: a full ring starts at its head
        start = storage.head % storage.max_size if full else 0
        written = (torch.arange(n) + start) % max(n, 1)
        rows = self._episode_keys(written) if n else None
        episodes = EpisodeIndex(storage.max_size, by_traj=rows is not None and rows[0])
        if rows is not None:
            episodes.write(written, rows[1])
        self._episodes = episodes
        return episodes

    def _goal_slots(self, slots: torch.Tensor) -> torch.Tensor:
        """For each sampled slot, the slot whose achieved goal becomes its new goal."""
        k = slots.numel()
        if self.strategy is HindsightStrategy.RANDOM:  # any stored row: slots 0 .. n - 1
            return torch.randint(len(self._storage), (k,))
        episodes = self._grouped()
        pos, first, last = episodes.locate(slots)
        if self.strategy is HindsightStrategy.FINAL:
            chosen = last
        else:
            low = pos if self.strategy is HindsightStrategy.FUTURE else first
            span = last - low + 1
            chosen = low + (torch.rand(k) * span).to(torch.int64).clamp_max(span - 1)
        return episodes.slots_at(chosen)

    # -- sampling ---------------------------------------------------------------------------
    def _rewrite_sample(self, data, info):
        data = super()._rewrite_sample(data, info)
        if not isinstance(data, TensorDictBase) or not data.batch_dims:
            return data
        k = int(data.batch_size[0] * self.her_ratio)
        if k == 0:
            return data
        slots = info["index"]
        slots = (slots[0] if isinstance(slots, tuple) else torch.as_tensor(slots))[:k]
        with self._read_lock:
            sources = self._goal_slots(slots)
            achieved = self._values(("next", *self.achieved_goal_key), sources)
            if achieved is None:
                achieved = self._values(self.achieved_goal_key, sources)
        rows = data[:k]
        goal = rows.get(self.goal_key)
        rows.set(self.goal_key, achieved.to(goal.dtype).reshape(goal.shape))
        if ("next", *self.goal_key) in rows.keys(True, True):
            rows.set(("next", *self.goal_key), achieved.to(goal.dtype).reshape(goal.shape))
        reward = rows.get(self.reward_key)
        new = torch.as_tensor(self.reward_fn(rows))
        if new.numel() != reward.numel():
            raise ValueError(f"HERReplayBuffer: reward_fn returned shape {list(new.shape)} for "
                             f"{k} relabelled rows; expected {list(reward.shape)} or [{k}]")
        rows.set(self.reward_key, new.to(reward.dtype).reshape(reward.shape))
        data[:k] = rows
        return data
