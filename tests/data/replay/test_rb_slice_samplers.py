"""SliceSampler's TorchRL 0.14 arguments and slice marks, and the two other slice samplers."""

import pytest
import torch
from tensordict import TensorDict

from streamrl.data import (
    LazyTensorStorage,
    PrioritizedSliceSampler,
    ReplayBuffer,
    SliceSampler,
    SliceSamplerWithoutReplacement,
    TensorDictReplayBuffer,
)


def _episodes(lengths, extra_done=None):
    """Steps of consecutive episodes: ``episode`` id, ``step`` within it, done at the end."""
    ids, steps, dones = [], [], []
    for e, n in enumerate(lengths):
        ids += [e] * n
        steps += list(range(n))
        dones += [False] * (n - 1) + [True]
    total = len(ids)
    return TensorDict(
        {
            "episode": torch.tensor(ids),
            "step": torch.tensor(steps),
            "is_init": (torch.tensor(steps) == 0)[:, None],
            "next": {
                "done": torch.tensor(dones)[:, None],
                "truncated": torch.zeros(total, 1, dtype=torch.bool),
            },
        },
        [total],
    )


def _rb(sampler, lengths, cap=128, batch_size=None):
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(cap), sampler=sampler,
                                batch_size=batch_size)
    rb.extend(_episodes(lengths))
    return rb


def _marks(flag):
    return flag.reshape(-1).nonzero().reshape(-1).tolist()


class TestSliceMarks:
    def test_is_init_at_every_slice_start(self):
        # Defect 3 (issue 12): 4 slices of one episode must be marked [0, 8, 16, 24].
        rb = _rb(SliceSampler(num_slices=4, traj_key="episode", seed=0), [32], batch_size=32)
        for _ in range(5):
            s = rb.sample()
            assert _marks(s["is_init"]) == [0, 8, 16, 24]
            assert _marks(s["next", "truncated"]) == [7, 15, 23, 31]
            assert _marks(s["next", "done"]) == [7, 15, 23, 31]

    def test_stored_flags_are_kept(self):
        # An episode start inside a slice can't happen (slices don't cross), but a stored
        # truncation can: the OR keeps it.
        data = _episodes([16])
        data["next", "truncated"][3] = True
        rb = TensorDictReplayBuffer(storage=LazyTensorStorage(16), batch_size=16,
                                    sampler=SliceSampler(slice_len=16, traj_key="episode"))
        rb.extend(data)
        assert _marks(rb.sample()["next", "truncated"]) == [3, 15]

    def test_recurrent_state_resets_at_each_slice(self):
        # What the marks are for: a recurrent pass over the flat sample starts every slice
        # from scratch. A running sum reset at is_init equals the per-slice cumulative sum.
        rb = _rb(SliceSampler(slice_len=5, traj_key="episode", seed=1), [40, 40],
                 batch_size=20)
        s = rb.sample()
        x = s["step"].float()
        h, out = 0.0, []
        for xi, init in zip(x.tolist(), s["is_init"].reshape(-1).tolist()):
            h = xi if init else h + xi
            out.append(h)
        want = x.reshape(4, 5).cumsum(-1).reshape(-1)
        assert torch.allclose(torch.tensor(out), want)

    def test_keys_none_writes_nothing(self):
        data = _episodes([16]).exclude("is_init", ("next", "truncated"))
        rb = TensorDictReplayBuffer(storage=LazyTensorStorage(16), batch_size=8,
                                    sampler=SliceSampler(slice_len=4, traj_key="episode",
                                                         init_key=None, truncated_key=None))
        rb.extend(data)
        assert set(rb.sample().keys(True, True)) == {"episode", "step", ("next", "done"),
                                                     "index"}

    def test_plain_buffer_returns_marks_in_info(self):
        rb = ReplayBuffer(storage=LazyTensorStorage(32), batch_size=8,
                          sampler=SliceSampler(num_slices=2, traj_key="episode"))
        rb.extend(_episodes([32]))
        _, info = rb.sample(return_info=True)
        assert _marks(info["is_init"]) == [0, 4]
        assert _marks(info[("next", "truncated")]) == [3, 7]


class TestSliceSamplerArguments:
    def test_end_keys_or(self):
        data = _episodes([20])
        data["next", "truncated"][9] = True  # a second episode that only truncated marks
        rb = TensorDictReplayBuffer(storage=LazyTensorStorage(20), batch_size=640,
                                    sampler=SliceSampler(slice_len=10, end_keys=[
                                        ("next", "done"), ("next", "truncated"),
                                        ("next", "terminated")]))
        rb.extend(data)
        # 64 slices of two 10-step episodes: both starts appear (all from one: p = 2^-63)
        starts = set(rb.sample()["step"].reshape(64, 10)[:, 0].tolist())
        assert starts == {0, 10}
        with pytest.raises(KeyError, match="none of the end keys"):
            SliceSampler(slice_len=2, end_keys=["nope"]).sample(rb.storage, 4)

    def test_default_boundaries_use_episode_when_present(self):
        data = _episodes([6, 6]).exclude(("next", "done"))
        rb = TensorDictReplayBuffer(storage=LazyTensorStorage(12), batch_size=60,
                                    sampler=SliceSampler(slice_len=6))
        rb.extend(data)
        s = rb.sample().reshape(10, 6)
        assert (s["step"] == torch.arange(6)).all()

    def test_strict_length_false_samples_short_trajectories(self):
        rb = _rb(SliceSampler(slice_len=4, traj_key="episode", strict_length=False, seed=0),
                 [2, 6])
        seen_short = False
        for _ in range(50):
            s, info = rb.sample(16, return_info=True)
            lens = info["slice_lengths"].tolist()
            assert s.batch_size[0] == sum(lens) and set(lens) <= {2, 4}
            seen_short |= 2 in lens
            assert len(_marks(s["is_init"])) == 4
        assert seen_short
        with pytest.raises(RuntimeError, match="no trajectory"):
            _rb(SliceSampler(slice_len=4, traj_key="episode"), [2, 3]).sample(8)

    def test_span_covers_edges_evenly(self):
        rb = _rb(SliceSampler(slice_len=4, traj_key="episode", span=True, seed=0), [10])
        counts = torch.zeros(10)
        for _ in range(400):
            s, info = rb.sample(16, return_info=True)
            assert (info["slice_lengths"] >= 1).all() and (info["slice_lengths"] <= 4).all()
            counts += torch.bincount(s["step"], minlength=10)
        # every step is covered by exactly 4 of the 13 windows: uniform coverage
        freq = counts / counts.sum()
        assert torch.allclose(freq, torch.full((10,), 0.1), atol=0.02)

    def test_span_int_bounds_the_overhang(self):
        rb = _rb(SliceSampler(slice_len=4, traj_key="episode", span=(1, False), seed=0), [10])
        for _ in range(50):
            _, info = rb.sample(16, return_info=True)
            assert set(info["slice_lengths"].tolist()) <= {3, 4}

    def test_cache_values_recomputes_after_writes(self):
        sampler = SliceSampler(slice_len=3, traj_key="episode", cache_values=True, seed=0)
        rb = ReplayBuffer(storage=LazyTensorStorage(64), sampler=sampler)
        rb.extend(_episodes([3]))
        rb.sample(3)
        assert sampler._cache is not None
        more = _episodes([3, 3])
        more["episode"] += 1
        rb.extend(more)
        assert sampler._cache is None
        episodes = {int(rb.sample(3)["episode"][0]) for _ in range(60)}
        assert episodes == {0, 1, 2}  # the new trajectories are seen after the write
        plain = SliceSampler(slice_len=3, traj_key="episode")
        plain.sample(rb.storage, 3)
        assert plain._cache is None  # cache_values=False keeps nothing

    @pytest.mark.parametrize("kwargs, match", [
        ({"slice_len": 2, "end_keys": ["a"], "end_key": "b"}, "at most one"),
        ({"slice_len": 2, "end_keys": []}, "at least one"),
        ({"slice_len": 2, "span": -1}, "span left"),
        ({"slice_len": 2, "span": (True, 1.5)}, "span right"),
        ({"slice_len": 0}, "positive int"),
        ({}, "exactly one"),
    ])
    def test_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            SliceSampler(**kwargs)


class TestSliceSamplerWithoutReplacement:
    def test_each_step_once_per_epoch(self):
        sampler = SliceSamplerWithoutReplacement(slice_len=4, traj_key="episode", seed=0)
        rb = _rb(sampler, [8, 12, 4], batch_size=8)
        seen = []
        for batch in rb:  # iteration stops at the end of the epoch
            seen += batch["index"].tolist()
            assert (batch["step"].reshape(-1, 4).diff(dim=-1) == 1).all()
        assert sorted(seen) == list(range(24))
        assert sampler.ran_out

    def test_remainders_and_drop_last(self):
        s = SliceSamplerWithoutReplacement(slice_len=4, traj_key="episode", strict_length=False,
                                           shuffle=False)
        rb = _rb(s, [6, 3], batch_size=8)
        first = rb.sample()
        assert first["index"].tolist() == [0, 1, 2, 3, 4, 5]  # windows [0:4], [4:6]
        assert _marks(first["is_init"]) == [0, 4]
        assert rb.sample()["index"].tolist() == [6, 7, 8] and s.ran_out
        strict = SliceSamplerWithoutReplacement(slice_len=4, traj_key="episode",
                                                drop_last=True, shuffle=False)
        rb2 = _rb(strict, [12], batch_size=8)
        assert rb2.sample()["index"].tolist() == list(range(8))
        assert strict.ran_out  # one window left, fewer than 2: dropped
        assert rb2.sample()["index"].tolist() == list(range(8))

    def test_write_starts_a_new_epoch_and_state_roundtrip(self):
        s = SliceSamplerWithoutReplacement(slice_len=2, traj_key="episode", seed=3)
        rb = _rb(s, [8], batch_size=4)
        rb.sample()
        state = s.sampling_state()
        a = rb.sample()["index"].tolist()
        s.load_sampling_state(state)
        assert rb.sample()["index"].tolist() == a
        rb.extend(_episodes([2]))
        assert s._epoch is None

    def test_too_few_windows(self):
        s = SliceSamplerWithoutReplacement(slice_len=4, traj_key="episode", drop_last=True)
        with pytest.raises(RuntimeError, match="fewer than"):
            _rb(s, [4], batch_size=8).sample()


class TestPrioritizedSliceSampler:
    def _make(self, lengths=(16,), **kw):
        sampler = PrioritizedSliceSampler(64, alpha=1.0, beta=0.5, slice_len=4,
                                          traj_key="episode", seed=0, **kw)
        return _rb(sampler, list(lengths), cap=64, batch_size=16), sampler

    def test_starts_follow_priorities(self):
        rb, _ = self._make()
        rb.update_priority(torch.arange(16), torch.ones(16))
        rb.update_priority(torch.tensor([2, 14]), torch.tensor([4.0, 100.0]))  # 14: no start
        counts = torch.zeros(16)
        for _ in range(500):
            s = rb.sample()
            counts += torch.bincount(s["index"][::4], minlength=16)
        freq = counts / counts.sum()
        assert freq[13:].sum() == 0  # windows would cross the end
        assert abs(float(freq[2]) - 4 / 16) < 0.03  # 12 starts of priority 1, one of 4

    def test_weights_are_per_step_and_match_the_formula(self):
        rb, _ = self._make()
        rb.update_priority(torch.arange(16), torch.ones(16))
        rb.update_priority(0, 4.0)
        s, info = rb.sample(return_info=True)
        assert torch.equal(info["_weight"], info["priority_weight"])
        w = s["_weight"].reshape(4, 4)
        assert (w == w[:, :1]).all()
        starts = s["index"].reshape(4, 4)[:, 0]
        want = torch.where(starts == 0, torch.tensor(4.0 ** -0.5), torch.tensor(1.0))
        assert torch.allclose(w[:, 0], want, atol=1e-6)

    def test_tensordict_priority_update_and_state(self):
        rb, _ = self._make(lengths=(8, 8))
        s = rb.sample()
        s["td_error"] = torch.rand(16)
        rb.update_tensordict_priority(s)
        state = rb.state_dict()
        rb2, _ = self._make(lengths=(8, 8))
        rb2.load_state_dict(state)
        assert torch.equal(rb2.sample()["index"], rb.sample()["index"])
        s = rb.sample().reshape(4, 4)
        assert (s["episode"] == s["episode"][:, :1]).all()

    def test_bad_input(self):
        with pytest.raises(ValueError, match="max_capacity"):
            PrioritizedSliceSampler(0, 1.0, 1.0, slice_len=2)
        rb, _ = self._make()
        with pytest.raises(ValueError, match=">= 0"):
            rb.update_priority(0, -1.0)
        small = PrioritizedSliceSampler(4, 1.0, 1.0, slice_len=2, traj_key="episode")
        with pytest.raises(ValueError, match="covers 4 slots"):
            small.sample(rb.storage, 4)


def test_traj_key_with_end_key_uses_the_ids_where_the_storage_has_them():
    from tensordict import TensorDict

    from streamrl.data import LazyTensorStorage, ReplayBuffer, SliceSampler

    data = TensorDict({"ep": torch.tensor([0, 0, 1, 1]), "x": torch.arange(4),
                       "end": torch.tensor([False, False, False, True])}, [4])
    rb = ReplayBuffer(storage=LazyTensorStorage(4),
                      sampler=SliceSampler(slice_len=2, traj_key="ep", end_key="end"))
    rb.extend(data)
    for _ in range(5):  # windows never cross the id change between steps 1 and 2
        assert rb.sample(4)["x"].reshape(2, 2).tolist() in ([[0, 1], [2, 3]], [[2, 3], [0, 1]],
                                                          [[0, 1], [0, 1]], [[2, 3], [2, 3]])
    rb2 = ReplayBuffer(storage=LazyTensorStorage(4),
                       sampler=SliceSampler(slice_len=4, traj_key="missing", end_key="end"))
    rb2.extend(data)  # no "missing" ids: the end flags make one trajectory of 4
    assert rb2.sample(4)["x"].tolist() == [0, 1, 2, 3]


def test_prioritized_slice_sampler_takes_span():
    from tensordict import TensorDict

    from streamrl.data import LazyTensorStorage, PrioritizedSliceSampler, TensorDictReplayBuffer

    sampler = PrioritizedSliceSampler(6, alpha=1.0, beta=1.0, slice_len=4, traj_key="ep",
                                      strict_length=False, span=[False, True])
    assert sampler.span == (False, True)  # a list is a (left, right) pair too
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(6), sampler=sampler, batch_size=4)
    rb.extend(TensorDict({"ep": torch.zeros(6, dtype=torch.long), "x": torch.arange(6)}, [6]))
    rb.update_priority(torch.arange(6), torch.zeros(6))
    rb.update_priority(5, 1.0)  # only the last step may start: the window hangs over the end
    s = rb.sample()
    assert s["x"].tolist() == [5]
