"""HERReplayBuffer: each strategy takes the new goal from the right step of the right episode
(grouped by trajectory id, or split at the end flags), the relabelled rewards are the goal
env's, the other rows and the stored data are untouched, and bad input is refused before
anything is written."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from tensordict import TensorDict

from streamrl.data import (
    HERReplayBuffer,
    HindsightStrategy,
    LazyTensorStorage,
    ListStorage,
    RoundRobinWriter,
    TensorDictMaxValueWriter,
)
from streamrl.envs import BitFlippingEnv

STRATEGIES = [s.value for s in HindsightStrategy]


def _steps(traj: int, start: int, length: int, *, last: bool) -> TensorDict:
    """``length`` steps of trajectory ``traj`` from step ``start``: the achieved goal after
    step t is ``[traj, t + 1]`` (before it ``[traj, t]``), the goal ``[-1, -1]``; ``last``
    ends the episode at its final step."""
    t = torch.arange(start, start + length, dtype=torch.float32)
    done = torch.zeros(length, 1, dtype=torch.bool)
    done[-1] = last
    achieved = torch.stack([torch.full_like(t, traj), t], -1)
    return TensorDict({
        "desired_goal": -torch.ones(length, 2), "achieved_goal": achieved,
        "collector": {"traj_ids": torch.full((length,), traj)},
        "next": {"achieved_goal": achieved + torch.tensor([0.0, 1.0]),
                 "desired_goal": -torch.ones(length, 2), "reward": -torch.ones(length, 1),
                 "done": done, "terminated": done.clone()},
    }, [length])


def _interleaved() -> list[TensorDict]:
    """Two envs' rows per batch, env-major as a batched collector writes them: trajectory 0
    (steps 0-5, ends), 1 (steps 0-3, ends), 2 (steps 0-1, running), 3 (steps 0-3, running)."""
    return [torch.cat([_steps(0, 0, 4, last=False), _steps(1, 0, 4, last=True)]),
            torch.cat([_steps(0, 4, 2, last=True), _steps(2, 0, 2, last=False),
                       _steps(3, 0, 4, last=False)])]


def _reward_of(td):
    return -(td["next", "achieved_goal"] != td["desired_goal"]).any(-1, keepdim=True).float()


def _buffer(strategy, *, her_ratio=1.0, size=100, **kwargs):
    return HERReplayBuffer(_reward_of, her_ratio=her_ratio, strategy=strategy,
                           storage=LazyTensorStorage(size), batch_size=64, **kwargs)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_strategy_takes_its_goal_from_the_right_step(strategy):
    torch.manual_seed(0)
    rb = _buffer(strategy)
    for batch in _interleaved():
        rb.extend(batch)
    lengths = {0: 6, 1: 4, 2: 2, 3: 4}
    for _ in range(5):
        batch = rb.sample()
        stored = rb.storage.get(batch["index"])
        traj, step = stored["achieved_goal"].unbind(-1)
        goal_traj, goal_at = batch["desired_goal"].unbind(-1)  # the goal after step goal_at - 1
        assert (batch["next", "desired_goal"] == batch["desired_goal"]).all()
        if strategy == "random":
            assert set(goal_traj.tolist()) <= set(lengths)
            continue
        assert (goal_traj == traj).all()  # the same episode
        ends = torch.tensor([float(lengths[int(x)]) for x in traj])
        if strategy == "final":
            assert (goal_at == ends).all()
        elif strategy == "future":
            assert ((goal_at >= step + 1) & (goal_at <= ends)).all()
        else:
            assert ((goal_at >= 1) & (goal_at <= ends)).all()
        # the rewards are recomputed for the new goals
        torch.testing.assert_close(batch["next", "reward"], _reward_of(batch))


def test_future_goals_cover_the_rest_of_the_episode_and_reach_it_at_its_own_step():
    torch.manual_seed(0)
    rb = _buffer("future", size=100)
    rb.extend(_steps(7, 0, 5, last=True))
    seen, reached = set(), 0
    for _ in range(30):
        batch = rb.sample()
        step = rb.storage.get(batch["index"])["achieved_goal"][:, 1]
        first = step == 0
        seen |= set(batch["desired_goal"][first, 1].tolist())
        reached += int((batch["next", "reward"] == 0).sum())
    assert seen == {1.0, 2.0, 3.0, 4.0, 5.0}  # from step 0: any later achieved goal
    assert reached > 0


def test_episodes_split_at_the_end_flags_without_trajectory_ids():
    torch.manual_seed(0)
    rb = _buffer("final")
    one = _steps(0, 0, 3, last=True).exclude("collector")
    two = _steps(1, 0, 4, last=True).exclude("collector")
    rb.extend(torch.cat([one, two]))
    batch = rb.sample()
    traj = rb.storage.get(batch["index"])["achieved_goal"][:, 0]
    expected = torch.where((traj == 0).unsqueeze(-1), torch.tensor([0.0, 3.0]),
                           torch.tensor([1.0, 4.0]))
    assert (batch["desired_goal"] == expected).all()


def test_terminated_alone_splits_episodes_too():
    torch.manual_seed(0)
    rb = HERReplayBuffer(_reward_of, her_ratio=1.0, strategy="final", batch_size=16,
                         storage=LazyTensorStorage(20))
    data = torch.cat([_steps(0, 0, 2, last=True), _steps(1, 0, 2, last=True)])
    rb.extend(data.exclude("collector", ("next", "done")))
    batch = rb.sample()
    traj = rb.storage.get(batch["index"])["achieved_goal"][:, 0]
    assert (batch["desired_goal"][:, 0] == traj).all()


def test_a_wrapped_buffer_keeps_the_rest_of_its_cut_oldest_episode():
    torch.manual_seed(0)
    rb = _buffer("episode", size=8)
    rb.extend(_steps(0, 0, 6, last=True))
    rb.extend(_steps(1, 0, 4, last=True))  # overwrites trajectory 0's first two steps
    for _ in range(5):
        batch = rb.sample()
        stored = rb.storage.get(batch["index"])
        oldest = stored["achieved_goal"][:, 0] == 0
        assert (batch["desired_goal"][oldest, 1] >= 3).all()  # steps 2-5 are left: goals 3-6
        assert (batch["desired_goal"][:, 0] == stored["achieved_goal"][:, 0]).all()


def test_only_the_first_her_ratio_rows_change_and_the_storage_never():
    torch.manual_seed(0)
    rb = _buffer("future", her_ratio=0.25)
    for batch in _interleaved():
        rb.extend(batch)
    before = rb.storage.get(torch.arange(len(rb))).clone()
    batch = rb.sample(40)
    stored = rb.storage.get(batch["index"])
    assert (batch[10:]["desired_goal"] == stored[10:]["desired_goal"]).all()
    assert (batch[10:]["next", "reward"] == stored[10:]["next", "reward"]).all()
    assert (batch[:10]["desired_goal"] != stored[:10]["desired_goal"]).all()
    assert (rb.storage.get(torch.arange(len(rb))) == before).all()


def test_relabelling_happens_without_the_info_and_before_the_transforms():
    torch.manual_seed(0)
    seen = []

    def transform(td):
        seen.append(td["desired_goal"].clone())
        return td

    rb = _buffer("final", transform=transform)
    rb.extend(_steps(0, 0, 3, last=True))
    plain = rb.sample(include_info=False)
    assert "index" not in plain.keys() and (plain["desired_goal"][:, 1] == 3).all()
    assert (seen[-1][:, 1] == 3).all()  # the transform saw the relabelled goals


def test_new_rows_are_goal_sources_after_a_write():
    torch.manual_seed(0)
    rb = _buffer("final")
    rb.extend(_steps(0, 0, 3, last=False))
    assert (rb.sample()["desired_goal"][:, 1] == 3).all()  # running: its latest row
    rb.extend(_steps(0, 3, 2, last=True))
    assert (rb.sample()["desired_goal"][:, 1] == 5).all()


def test_the_root_achieved_goal_is_used_when_next_has_none():
    torch.manual_seed(0)
    rb = HERReplayBuffer(lambda td: torch.zeros(td.shape[0], 1), her_ratio=1.0,
                         strategy="final", batch_size=8, storage=LazyTensorStorage(10))
    rb.extend(_steps(0, 0, 3, last=True).exclude(("next", "achieved_goal")))
    assert (rb.sample()["desired_goal"][:, 1] == 2).all()  # before the last step


def test_a_list_storage_works_too():
    torch.manual_seed(0)
    rb = HERReplayBuffer(_reward_of, her_ratio=1.0, strategy="final", batch_size=4,
                         storage=ListStorage(20))
    for row in _steps(0, 0, 3, last=True).unbind(0):
        rb.add(row)
    assert (rb.sample()["desired_goal"][:, 1] == 3).all()


def test_a_restored_buffer_relabels_from_the_restored_rows():
    torch.manual_seed(0)
    rb = _buffer("final")
    rb.extend(_steps(0, 0, 4, last=True))
    rb.sample()  # builds the grouping
    state = rb.state_dict()
    other = _buffer("final")
    other.extend(_steps(5, 0, 2, last=True))
    other.sample()
    other.load_state_dict(state)
    assert (other.sample()["desired_goal"] == torch.tensor([0.0, 4.0])).all()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_relabelled_rewards_are_the_goal_envs_own(strategy):
    """Bit flipping boards from a batched collector (trajectory ids, rows interleaved):
    every relabelled reward is ``env.compute_reward`` of the achieved and the new goal."""
    from streamrl.collectors import Collector

    env = BitFlippingEnv(3, batch_size=[4], seed=0)
    torch.manual_seed(0)
    rb = HERReplayBuffer(
        lambda td: env.compute_reward(td["next", "achieved_goal"], td["desired_goal"]),
        her_ratio=0.5, strategy=strategy, storage=LazyTensorStorage(1000), batch_size=200)
    collector = Collector(env, None, frames_per_batch=80, total_frames=240)
    for batch in collector:
        rb.extend(batch.reshape(-1))
    collector.shutdown()
    batch = rb.sample()
    expected = env.compute_reward(batch["next", "achieved_goal"], batch["desired_goal"])
    torch.testing.assert_close(batch["next", "reward"].squeeze(-1), expected)
    relabelled = batch[:100]
    if strategy != "random":  # a goal from its own episode (of 3 steps at most) is reached
        assert (relabelled["next", "reward"] == 0).float().mean() > 0.25  # often
    stored = rb.storage.get(batch["index"][100:])
    assert (batch[100:]["next", "reward"] == stored["next", "reward"]).all()


def test_bad_input_is_refused_before_anything_is_written():
    rb = _buffer("future")
    with pytest.raises(KeyError, match=r"the rows need 'desired_goal'; found \["):
        rb.extend(_steps(0, 0, 3, last=True).exclude("desired_goal"))
    with pytest.raises(KeyError, match=r"'achieved_goal' or its 'next' entry"):
        rb.extend(_steps(0, 0, 3, last=True).exclude("achieved_goal", ("next", "achieved_goal")))
    with pytest.raises(KeyError, match=r"'collector/traj_ids' \(trajectory ids\) or "
                                       r"'next/done' \(episode ends\)"):
        rb.extend(_steps(0, 0, 3, last=True).exclude("collector", ("next", "done"),
                                                     ("next", "terminated")))
    with pytest.raises(ValueError, match=r"add\(\) takes a TensorDict of batch size \[\], "
                                         r"found \[3\]"):
        rb.add(_steps(0, 0, 3, last=True))
    assert len(rb) == 0


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"her_ratio must be a float in \[0, 1\], found 1.5"):
        _buffer("future", her_ratio=1.5)
    with pytest.raises(ValueError, match=r"strategy must be one of \['future', 'final', "
                                         r"'episode', 'random'\], found 'later'"):
        _buffer("later")
    with pytest.raises(TypeError, match="reward_fn must be callable, found int"):
        HERReplayBuffer(3)
    with pytest.raises(ValueError, match="one storage dim, found ndim=2"):
        HERReplayBuffer(_reward_of, storage=LazyTensorStorage(10, ndim=2))
    with pytest.raises(ValueError, match="expected a RoundRobinWriter, found "
                                         "TensorDictMaxValueWriter"):
        HERReplayBuffer(_reward_of, writer=TensorDictMaxValueWriter(rank_key="r"))


def test_a_reward_fn_of_the_wrong_shape_is_named():
    rb = HERReplayBuffer(lambda td: torch.zeros(3), her_ratio=1.0, batch_size=8,
                         storage=LazyTensorStorage(10))
    rb.extend(_steps(0, 0, 4, last=True))
    with pytest.raises(ValueError, match=r"reward_fn returned shape \[3\] for 8 relabelled "
                                         r"rows; expected \[8, 1\] or \[8\]"):
        rb.sample()


# -- the episode index, write by write -------------------------------------------------------
def _rows(seqs: list[int], keys: list[int], by_traj: bool) -> TensorDict:
    """Rows whose achieved goals name them (their write number ``seq``); ``keys`` are their
    trajectory ids (``by_traj``) or end flags."""
    n = len(seqs)
    seq = torch.tensor(seqs, dtype=torch.float32).unsqueeze(-1)
    flags = torch.tensor(keys, dtype=torch.bool).unsqueeze(-1)
    td = TensorDict({"desired_goal": -torch.ones(n, 1), "achieved_goal": seq,
                     "next": {"achieved_goal": seq, "reward": -torch.ones(n, 1)}}, [n])
    if by_traj:
        td["collector", "traj_ids"] = torch.tensor(keys)
    else:
        td["next", "done"] = flags
    return td


def _reference(keys: list[int], max_size: int, by_traj: bool) -> dict[int, tuple]:
    """From the write history alone: each stored slot's episode as (first slot, last slot,
    previous slot, next slot), -1 where there is none."""
    stored = list(range(len(keys)))[-max_size:]  # write numbers; row i is at slot i % max_size
    episodes: dict[Any, list[int]] = {}
    count = 0
    for i in stored:
        episodes.setdefault(keys[i] if by_traj else count, []).append(i % max_size)
        count += 0 if by_traj else int(keys[i])
    out = {}
    for slots in episodes.values():
        for j, slot in enumerate(slots):
            out[slot] = (slots[0], slots[-1], slots[j - 1] if j else -1,
                         slots[j + 1] if j + 1 < len(slots) else -1)
    return out


def _indexed(rb) -> dict[int, tuple]:
    """The same from the buffer's episode index."""
    index = rb._grouped()
    n = len(rb.storage)
    pos, first, last = index.locate(torch.arange(n))
    top = index.arena.numel() - 1
    before = torch.where(pos > first, index.slots_at((pos - 1).clamp_min(0)), -1)
    after = torch.where(pos < last, index.slots_at((pos + 1).clamp_max(top)), -1)
    rows = torch.stack([index.slots_at(first), index.slots_at(last), before, after], -1)
    return {slot: tuple(row) for slot, row in enumerate(rows.tolist())}


def _write_history(gen: torch.Generator, by_traj: bool, envs: int, steps: int):
    """Batches of a random size, as ``envs`` envs whose episodes end at random times write
    them: keys are trajectory ids (rows of the envs interleaved) or end flags (one env)."""
    traj = list(range(envs))
    for _ in range(steps):
        n = int(torch.randint(1, 14, (), generator=gen))
        if n == 13:
            n = 45  # more than the ring holds: only the last rows are written
        keys = []
        for _ in range(n):
            env = int(torch.randint(envs, (), generator=gen))
            ends = bool(torch.rand((), generator=gen) < 0.15)
            keys.append(traj[env] if by_traj else int(ends))
            if ends and by_traj:
                traj[env] = max(traj) + 1
        yield keys


@pytest.mark.parametrize("by_traj", [True, False], ids=["traj_ids", "end_flags"])
@pytest.mark.parametrize("storage", [LazyTensorStorage, ListStorage])
def test_the_index_kept_write_by_write_matches_one_built_from_the_history(by_traj, storage):
    gen = torch.Generator().manual_seed(0)
    max_size = 30
    rb = HERReplayBuffer(_reward_of, her_ratio=1.0, strategy="final", batch_size=16,
                         storage=storage(max_size))
    keys: list[int] = []
    packed = False
    for batch in _write_history(gen, by_traj, envs=3, steps=150):
        seqs = list(range(len(keys), len(keys) + len(batch)))
        keys += batch
        index = rb._episodes
        if len(batch) == 1:
            rb.add(_rows(seqs, batch, by_traj)[0])
        else:
            rb.extend(_rows(seqs, batch, by_traj))
        if index is not None and len(batch) <= max_size:  # in order: the index was kept
            assert rb._episodes is index
            packed |= index._top < getattr(index, "_seen_top", 0)
            index._seen_top = index._top
        assert _indexed(rb) == _reference(keys, max_size, by_traj)
        # and each relabelled goal is the last stored step of the row's episode
        batch_ = rb.sample()
        last = {slot: ref[1] for slot, ref in _reference(keys, max_size, by_traj).items()}
        stored_seq = {i % max_size: i for i in range(len(keys))[-max_size:]}
        expected = [stored_seq[last[int(s)]] for s in batch_["index"]]
        assert batch_["desired_goal"].squeeze(-1).tolist() == expected
    assert packed  # the arena ran full and was packed again on the way


def test_an_index_rebuilt_from_scratch_agrees_with_the_kept_one():
    gen = torch.Generator().manual_seed(1)
    rb = _buffer("final", size=40)
    for batch in _write_history(gen, True, envs=4, steps=60):
        rb.extend(_rows(list(range(len(batch))), batch, True))
        kept = _indexed(rb)
        rb._episodes = None
        assert _indexed(rb) == kept


class _OwnRoundRobinWriter(RoundRobinWriter):
    """A round-robin writer of one's own: its slots may not follow the ring."""


@pytest.mark.parametrize("how", ["setitem", "load_state_dict", "loads", "own_writer"])
def test_writes_the_index_cannot_follow_rebuild_it_from_the_stored_rows(how, tmp_path):
    gen = torch.Generator().manual_seed(2)
    max_size = 20
    writer = _OwnRoundRobinWriter() if how == "own_writer" else None
    rb = HERReplayBuffer(_reward_of, strategy="final", storage=LazyTensorStorage(max_size),
                         writer=writer, batch_size=8)
    keys: list[int] = []
    for batch in _write_history(gen, True, envs=3, steps=12):
        rb.extend(_rows(list(range(len(keys), len(keys) + len(batch))), batch, True))
        keys += batch
        rb.sample()
        if how == "own_writer":
            rb.extend(_rows([len(keys)], [keys[-1]], True))
            keys.append(keys[-1])
            assert rb._episodes is None
    if how == "setitem":  # slot 5's row moves to the trajectory of slot 6's
        seq = max(i for i in range(len(keys)) if i % max_size == 5)
        moved = keys[max(i for i in range(len(keys)) if i % max_size == 6)]
        assert keys[seq] != moved
        keys[seq] = moved
        rb[5] = _rows([seq], [keys[seq]], True)[0]
        assert rb._episodes is None
    elif how in ("load_state_dict", "loads"):
        other = HERReplayBuffer(_reward_of, strategy="final",
                                storage=LazyTensorStorage(max_size), batch_size=8)
        # as many rows, other episodes: an index of the same length and cursor to drop
        other.extend(_rows(list(range(len(keys))), [i // 2 for i in range(len(keys))], True))
        other.sample()
        if how == "loads":  # a directory checkpoint
            rb.dumps(tmp_path / "rb")
            other.loads(tmp_path / "rb")
        else:
            other.load_state_dict(rb.state_dict())
        rb = other
    assert _indexed(rb) == _reference(keys, max_size, True)
