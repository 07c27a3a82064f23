"""The episode index of :class:`~streamrl.data.HERReplayBuffer`: the stored rows of a ring
grouped by episode, kept up to date write by write."""

from __future__ import annotations

import torch


def _ranges(starts: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``cat([arange(s, s + l) for s, l in zip(starts, lengths)])`` as tensor ops."""
    total = int(lengths.sum())
    offsets = torch.cumsum(lengths, 0) - lengths
    return (torch.repeat_interleave(starts - offsets, lengths, output_size=total)
            + torch.arange(total))


def _rank_in_group(group: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Each element's count of earlier elements of its group (``group`` in ``0 .. g - 1``,
    ``counts`` the size of each)."""
    order = torch.argsort(group, stable=True)
    rank = torch.empty_like(order)
    rank[order] = _ranges(torch.zeros_like(counts), counts)
    return rank


class EpisodeIndex:
    """Where each stored row's episode lies, for a ring written in order.

    Every episode with a stored row has a record ``r``; its rows' slots lie in write order at
    ``arena[start[r]:stop[r]]``, a region that ends at ``limit[r]``. Each slot knows its
    ``record`` and its ``pos`` in the arena. Episodes are the rows of one trajectory id
    (``by_traj``), or the rows between end flags in write order.

    :meth:`write` indexes rows written at the ring's next slots: the overwritten rows (the
    oldest) leave the front of their episodes' regions, the new ones are appended to theirs.
    An episode whose region is full moves to a fresh one twice its size at the top of the
    arena, so a row is copied a bounded number of times on average; when the arena is used up
    every region is packed again from position 0 (once per about ``max_size`` rows written).
    The cost of a write is thus, on average, that of its rows and of the episodes it touches.
    """

    def __init__(self, max_size: int, by_traj: bool) -> None:
        self.max_size = max_size
        self.by_traj = by_traj
        # slots and arena positions: int32 halves the index while the arena's 3 * max_size fit
        self._int = torch.int32 if 3 * max_size < 2**31 else torch.int64
        self.length = 0  # rows indexed
        self.next = 0  # the slot the next in-order write starts at
        self.record = torch.zeros(max_size, dtype=self._int)
        self.pos = torch.zeros(max_size, dtype=self._int)
        # at most max_size episodes have a stored row; a free record has start == stop == 0
        self.start = torch.zeros(max_size, dtype=self._int)
        self.stop = torch.zeros(max_size, dtype=self._int)
        self.limit = torch.zeros(max_size, dtype=self._int)
        self._free = torch.arange(max_size - 1, -1, -1, dtype=self._int)  # a stack: pop at the end
        self._free_count = max_size
        self._by_key: dict[int, int] = {}  # by_traj: trajectory id -> record
        self._key = torch.zeros(max_size, dtype=torch.int64)  # by_traj: record -> trajectory id
        self._open: int | None = None  # end flags: the record the next row continues
        # after a pack the stored rows take max_size positions at most, and the regions one
        # write grows (twice the rows they hold then) 2 * max_size at most
        self.arena = torch.zeros(3 * max_size, dtype=self._int)
        self._top = 0  # the first arena position no region holds

    # -- lookups ----------------------------------------------------------------------------
    def locate(self, slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For each slot, its arena position and those of its episode's first and last
        stored rows (int64)."""
        record = self.record[slots].long()
        return (self.pos[slots].long(), self.start[record].long(),
                self.stop[record].long() - 1)

    def slots_at(self, positions: torch.Tensor) -> torch.Tensor:
        """The slots at arena ``positions`` (int64)."""
        return self.arena[positions].long()

    # -- writes -----------------------------------------------------------------------------
    def write(self, slots: torch.Tensor, episodes: torch.Tensor) -> None:
        """Index rows just written at ``slots`` (the ring's next ones, in order).

        ``episodes`` gives each row's trajectory id (``by_traj``) or whether it ends its
        episode.
        """
        slots = slots.long()
        n = slots.numel()
        length = min(self.max_size, self.length + n)
        self._retire(slots[n - (self.length + n - length):])  # the last ones wrote over rows
        records, group = self._records_for(episodes)
        self._append(slots, records, group)
        self.length = length
        self.next = (int(slots[-1]) + 1) % self.max_size

    def _retire(self, slots: torch.Tensor) -> None:
        """Drop overwritten rows: each episode's oldest ones, so the front of its region."""
        if not slots.numel():
            return
        records = self.record[slots].long()
        self.start.scatter_reduce_(0, records, self.pos[slots] + 1, "amax")
        touched = torch.unique(records)
        self._release(touched[self.start[touched] >= self.stop[touched]])

    def _release(self, records: torch.Tensor) -> None:
        """Free the records of episodes with no stored row left."""
        if not records.numel():
            return
        for record in records.tolist():
            if self.by_traj:
                del self._by_key[int(self._key[record])]
            elif record == self._open:
                self._open = None
        self.start[records] = self.stop[records] = self.limit[records] = 0
        count = records.numel()
        self._free[self._free_count:self._free_count + count] = records.to(self._int)
        self._free_count += count

    def _allocate(self, count: int) -> torch.Tensor:
        """``count`` free records (int64)."""
        self._free_count -= count
        return self._free[self._free_count:self._free_count + count].long()

    def _records_for(self, episodes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The new rows' episodes: their records, and which of them each row joins (a
        trajectory's record, or one per episode the end flags split)."""
        if self.by_traj:
            keys, group = torch.unique(episodes, return_inverse=True)
            found = [self._by_key.get(key, -1) for key in keys.tolist()]
            records = torch.tensor(found, dtype=torch.int64)
            new = records < 0
            if bool(new.any()):
                records[new] = self._allocate(int(new.sum()))
                self._key[records[new]] = keys[new]
                self._by_key.update(zip(keys[new].tolist(), records[new].tolist()))
            return records, group
        ends = episodes.to(torch.int64)
        group = torch.cumsum(ends, 0) - ends  # the ends written before each row
        count = int(group[-1]) + 1
        if self._open is None:
            records = self._allocate(count)
        else:
            records = torch.cat([torch.tensor([self._open]), self._allocate(count - 1)])
        self._open = None if bool(ends[-1]) else int(records[-1])
        return records, group

    def _append(self, slots: torch.Tensor, records: torch.Tensor, group: torch.Tensor) -> None:
        """Write the new rows at the end of their episodes' regions."""
        counts = torch.bincount(group, minlength=records.numel())
        self._make_room(records, counts)
        stop = self.stop[records].long()
        pos = (stop[group] + _rank_in_group(group, counts)).to(self._int)
        self.arena[pos.long()] = slots.to(self._int)
        self.pos[slots] = pos
        self.record[slots] = records.to(self._int)[group]
        self.stop[records] = (stop + counts).to(self._int)

    def _make_room(self, records: torch.Tensor, counts: torch.Tensor) -> None:
        """Move the ``records`` without room for ``counts`` more rows to regions twice the size
        they need, at the top of the arena (packing it first when they do not fit there)."""
        stop = self.stop[records].long()
        full = stop + counts > self.limit[records]
        if not bool(full.any()):
            return
        size = 2 * (stop - self.start[records].long() + counts)[full]
        if self._top + int(size.sum()) > self.arena.numel():
            self._pack()  # leaves no room in any region: all of records may need moving now
            self._make_room(records, counts)
            return
        self._move(self.arena, records[full], size)

    def _pack(self) -> None:
        """Lay every episode's stored rows out again from position 0, without gaps."""
        records = torch.nonzero(self.stop > self.start).squeeze(-1)
        old, self.arena, self._top = self.arena, torch.zeros_like(self.arena), 0
        self._move(old, records, self.stop[records].long() - self.start[records].long())

    def _move(self, source: torch.Tensor, records: torch.Tensor, size: torch.Tensor) -> None:
        """Copy ``records``' rows from ``source`` to new regions of ``size`` at the top."""
        start, stop = self.start[records].long(), self.stop[records].long()
        base = self._top + torch.cumsum(size, 0) - size
        rows = source[_ranges(start, stop - start)]
        at = _ranges(base, stop - start)
        self.arena[at] = rows
        self.pos[rows.long()] = at.to(self._int)
        self.start[records] = base.to(self._int)
        self.stop[records] = (base + stop - start).to(self._int)
        self.limit[records] = (base + size).to(self._int)
        self._top += int(size.sum())
