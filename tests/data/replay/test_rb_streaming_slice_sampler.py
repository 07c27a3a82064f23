"""StreamingSliceSampler: newly completed windows first, once each, then uniform slices."""

import pytest
import torch
from tensordict import TensorDict

from streamrl.data import (
    LazyMemmapStorage,
    LazyTensorStorage,
    ReplayBuffer,
    StreamingSliceSampler,
    TensorDictReplayBuffer,
)


def _steps(n, start=0, done_at=(), traj=None):
    done = torch.zeros(n, 1, dtype=torch.bool)
    for t in done_at:
        done[t] = True
    td = TensorDict({"value": torch.arange(start, start + n), ("next", "done"): done}, [n])
    if traj is not None:
        td["traj"] = torch.tensor(traj)
    return td


def _rb(size=16, batch_size=6, **kwargs):
    kwargs.setdefault("slice_len", 3)
    return TensorDictReplayBuffer(storage=LazyTensorStorage(size),
                                  sampler=StreamingSliceSampler(**kwargs), batch_size=batch_size)


def _windows(batch, slice_len=3):
    return batch["value"].reshape(-1, slice_len).tolist()


def test_queued_windows_come_first_then_uniform():
    rb = _rb()
    rb.extend(_steps(6))
    s = rb.sample()
    assert _windows(s) == [[0, 1, 2], [3, 4, 5]]
    assert s["is_init"].reshape(-1).nonzero().reshape(-1).tolist() == [0, 3]
    assert s["next", "truncated"].reshape(-1).nonzero().reshape(-1).tolist() == [2, 5]
    for _ in range(5):  # the queue is empty: uniform windows of the one trajectory
        for w in _windows(rb.sample()):
            assert w == list(range(w[0], w[0] + 3)) and 0 <= w[0] <= 3


def test_windows_stop_at_done_and_new_trajectories():
    rb = _rb(batch_size=6)
    rb.extend(_steps(7, done_at=(3,)))  # steps 0-3 end a trajectory; 3 is left over
    assert _windows(rb.sample()) == [[0, 1, 2], [4, 5, 6]]
    by_id = _rb(batch_size=6, traj_key="traj")
    by_id.extend(_steps(7, traj=[0, 0, 0, 0, 1, 1, 1]))
    assert _windows(by_id.sample()) == [[0, 1, 2], [4, 5, 6]]


def test_windows_span_writes_and_partial_batches():
    rb = _rb(batch_size=6)
    rb.extend(_steps(2))
    rb.extend(_steps(2, start=2))
    s = rb.sample(3)
    assert _windows(s) == [[0, 1, 2]]
    rb.extend(_steps(2, start=4))
    s = rb.sample(6)  # one queued window ([3, 4, 5]), one uniform
    first = _windows(s)
    assert first[0] == [3, 4, 5] and first[1] == list(range(first[1][0], first[1][0] + 3))


def test_overwritten_windows_are_dropped():
    rb = _rb(size=4, slice_len=2, batch_size=4)
    rb.extend(_steps(4))  # queues slots [0, 1] and [2, 3]
    rb.extend(_steps(2, start=10))  # overwrites slots 0, 1 and queues them again
    s = rb.sample()
    assert _windows(s, 2) == [[2, 3], [10, 11]]


def test_without_boundary_keys_cuts_by_length():
    rb = ReplayBuffer(storage=LazyTensorStorage(8),
                      sampler=StreamingSliceSampler(slice_len=2, traj_key="episode"))
    rb.extend(TensorDict({"value": torch.arange(4)}, [4]))
    index, info = rb.sampler.sample(rb.storage, 4)
    assert index.tolist() == [0, 1, 2, 3] and info["slice_lengths"].tolist() == [2, 2]


def test_state_round_trip(tmp_path):
    rb = _rb()
    rb.extend(_steps(13, done_at=(5,)))
    rb.sample(3)
    rb.dumps(tmp_path / "rb.pt")
    rb2 = _rb()
    rb2.loads(tmp_path / "rb.pt")
    for _ in range(3):
        assert torch.equal(rb2.sample()["value"], rb.sample()["value"])
    rb.extend(_steps(3, start=50))
    rb2.extend(_steps(3, start=50))
    assert torch.equal(rb2.sample()["value"], rb.sample()["value"])


def test_empty_forgets_the_queue():
    rb = _rb()
    rb.extend(_steps(6))
    rb.empty()
    rb.extend(_steps(3, start=20))
    assert _windows(rb.sample(3)) == [[20, 21, 22]]


def test_bad_input(tmp_path):
    with pytest.raises(TypeError, match="slice_len"):
        StreamingSliceSampler()
    with pytest.raises(ValueError, match="slice_len must be a positive int"):
        StreamingSliceSampler(slice_len=0)
    with pytest.raises(TypeError, match="not num_slices"):
        StreamingSliceSampler(slice_len=2, num_slices=2)
    with pytest.raises(TypeError, match="unexpected keyword argument 'pad_output'"):
        StreamingSliceSampler(slice_len=2, pad_output=True)
    rb = _rb()
    rb.extend(_steps(6))
    with pytest.raises(ValueError, match="not a multiple"):
        rb.sample(4)
    with pytest.raises(ValueError, match="per-write state"):
        ReplayBuffer(storage=LazyMemmapStorage(4, scratch_dir=tmp_path), shared=True,
                     sampler=StreamingSliceSampler(slice_len=2))
