"""Helpers of the replay-buffer fault tests: buffers of every kind, rows derived from one id,
and a full snapshot of a buffer to compare before and after a fault."""

import pickle

import torch
from tensordict import TensorDict, TensorDictBase

from streamrl.data import (
    LazyMemmapStorage,
    LazyTensorStorage,
    ListStorage,
    PrioritizedSampler,
    PrioritizedSliceSampler,
    RandomSampler,
    SliceSampler,
    TensorDictReplayBuffer,
)

SAMPLERS = ("random", "prioritized", "slice", "prioritized_slice")
STORAGES = ("tensor", "memmap", "list")
EPISODE = 5  # steps per trajectory (the slice samplers cut windows of 5)


def rows(ids) -> TensorDict:
    """One row per id; every field is derived from the id, so a torn row shows."""
    ids = torch.as_tensor(ids, dtype=torch.long).reshape(-1)
    n = ids.numel()
    f = ids.to(torch.float64)
    return TensorDict(
        {
            "id": ids,
            "obs": f[:, None].expand(n, 3).float().clone(),
            "episode": ids // EPISODE,
            "pixels": (ids % 251).to(torch.uint8)[:, None, None].expand(n, 2, 2).clone(),
            "next": {
                "obs": (f + 1)[:, None].expand(n, 3).float().clone(),
                "reward": (2 * f)[:, None],
                "done": (ids % EPISODE == EPISODE - 1)[:, None],
            },
        },
        [n],
    )


def check_rows(batch: TensorDictBase) -> torch.Tensor:
    """Assert every row of ``batch`` was written whole by :func:`rows`; return its ids."""
    ids = batch["id"].reshape(-1)
    expected = rows(ids)
    for key in expected.keys(include_nested=True, leaves_only=True):
        got = batch.get(key).reshape(expected.get(key).shape)
        assert torch.equal(got, expected.get(key)), f"torn row: key {key} does not match id"
    return ids


def make_sampler(kind: str, capacity: int = 64):
    if kind == "random":
        return RandomSampler(seed=0)
    if kind == "prioritized":
        return PrioritizedSampler(capacity, alpha=0.7, beta=0.5, seed=0)
    if kind == "slice":
        return SliceSampler(slice_len=EPISODE, traj_key="episode", seed=0)
    if kind == "prioritized_slice":
        return PrioritizedSliceSampler(capacity, alpha=0.7, beta=0.5, slice_len=EPISODE,
                                       traj_key="episode", seed=0)
    raise ValueError(kind)


def make_storage(kind: str, tmp_path, size: int = 64):
    if kind == "tensor":
        return LazyTensorStorage(size)
    if kind == "memmap":
        return LazyMemmapStorage(size, scratch_dir=tmp_path / f"memmap-{size}", auto_cleanup=True)
    if kind == "list":
        return ListStorage(size)
    raise ValueError(kind)


def make_buffer(sampler: str, storage: str, tmp_path, n: int = 20, size: int = 64):
    """A buffer holding ``n`` rows (ids 0..n-1); priorities set when prioritized."""
    rb = TensorDictReplayBuffer(
        storage=make_storage(storage, tmp_path, size), sampler=make_sampler(sampler, size),
        batch_size=10,
    )
    if n:
        rb.extend(rows(torch.arange(n)))
        if "prioritized" in sampler:
            rb.update_priority(torch.arange(n), torch.linspace(0.1, 2.0, n))
    return rb


def _plain(value):
    """A comparable copy: tensors cloned, TensorDicts as dicts, containers walked."""
    if isinstance(value, TensorDictBase):
        return {"__td__": _plain(value.to_dict()), "batch": list(value.batch_size)}
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def snapshot(rb, counts: bool = True) -> dict:
    """Everything observable about ``rb``: length, content, sampler state (RNG, priorities),
    writer cursor, limiter counters and (``counts``) the write count, which is this
    process's count and not part of a checkpoint."""
    n = len(rb.storage)
    content = rb.storage.get(torch.arange(n)) if n else None
    if isinstance(content, list):
        content = torch.stack(content) if content else None
    return {
        "len": len(rb),
        "storage_len": n,
        "head": rb.storage.head,
        "write_count": rb.write_count if counts else None,
        "content": _plain(content),
        "state": _plain({k: v for k, v in rb.state_dict().items() if k != "storage"}),
    }


def assert_same(a, b, path="snapshot"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, path
        assert torch.equal(a, b) or (
            a.is_floating_point() and torch.equal(a.isnan(), b.isnan())
            and torch.equal(a.nan_to_num(), b.nan_to_num())
        ), f"{path} changed"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{path}: keys changed"
        for k in a:
            assert_same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), f"{path}: length changed"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} became {b!r}"


class Marker:
    """Unpickling this creates ``path``: evidence that loading ran code from a file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def evil_pickle(marker_path) -> bytes:
    return pickle.dumps({"format": "streamrl.replay_buffer/1", "x": Marker(marker_path)})
