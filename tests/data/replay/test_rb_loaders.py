"""Buffers in torch DataLoaders and torchdata nodes, with exact resumption."""

import pytest
import torch
from tensordict import TensorDict
from torch.utils.data import DataLoader
from torchdata.nodes import Loader, Prefetcher
from torchdata.stateful_dataloader import StatefulDataLoader

from streamrl.data import (
    LazyTensorStorage,
    ReplayBuffer,
    ReplayNode,
    SamplerWithoutReplacement,
    TensorDictPrioritizedReplayBuffer,
)


def _make(seed=0, sampler=None):
    rb = TensorDictPrioritizedReplayBuffer(
        alpha=0.7, beta=0.5, storage=LazyTensorStorage(200), batch_size=16
    )
    if sampler is not None:
        rb = ReplayBuffer(storage=LazyTensorStorage(200), sampler=sampler, batch_size=16)
    x = torch.arange(150)
    rb.extend(TensorDict({"x": x, "y": x.float()[:, None]}, [150]))
    if sampler is None:
        rb.update_priority(
            torch.arange(150), torch.rand(150, generator=torch.Generator().manual_seed(1))
        )
    rb.sampler.manual_seed(seed)
    return rb


def _xs(batches):
    return [b["x"].tolist() for b in batches]


def test_dataloader_over_the_buffer():
    rb = _make()
    loader = DataLoader(rb, batch_size=None)
    batches = [b for b, _ in zip(loader, range(5))]
    assert all(b.batch_size == (16,) for b in batches)
    assert all(set(b.keys()) == {"x", "y", "index", "_weight", "priority_weight"} for b in batches)
    ds = rb.as_dataset(num_batches=3)
    assert len(ds) == 3 and len(list(DataLoader(ds, batch_size=None))) == 3


def test_dataloader_resume_from_buffer_checkpoint(tmp_path):
    rb = _make()
    it = iter(DataLoader(rb, batch_size=None))
    _ = [next(it) for _ in range(5)]
    rb.dumps(tmp_path / "rb.pt")
    reference = _xs(next(it) for _ in range(5))

    rb2 = _make(seed=123)  # different stream until the checkpoint is loaded
    rb2.loads(tmp_path / "rb.pt")
    it2 = iter(DataLoader(rb2, batch_size=None))
    assert _xs(next(it2) for _ in range(5)) == reference


def test_stateful_dataloader_resume():
    rb = _make()
    loader = StatefulDataLoader(rb.as_dataset(num_batches=10), batch_size=None)
    it = iter(loader)
    first = _xs(next(it) for _ in range(4))
    state = loader.state_dict()
    reference = _xs(it)
    assert len(first) == 4 and len(reference) == 6

    rb2 = _make(seed=99)
    loader2 = StatefulDataLoader(rb2.as_dataset(num_batches=10), batch_size=None)
    loader2.load_state_dict(state)
    assert _xs(loader2) == reference


@pytest.mark.parametrize("prefetch", [False, True])
def test_torchdata_loader_resume(prefetch):
    def build(rb):
        node = rb.as_node()
        return Loader(Prefetcher(node, prefetch_factor=2) if prefetch else node)

    rb = _make()
    loader = build(rb)
    it = iter(loader)
    _ = [next(it) for _ in range(6)]
    state = loader.state_dict()
    reference = _xs(next(it) for _ in range(6))

    rb2 = _make(seed=5)
    loader2 = build(rb2)
    loader2.load_state_dict(state)
    it2 = iter(loader2)
    assert _xs(next(it2) for _ in range(6)) == reference


def test_node_epochs_with_sampler_without_replacement():
    rb = _make(sampler=SamplerWithoutReplacement())
    loader = Loader(ReplayNode(rb))
    for _ in range(2):
        xs = torch.cat([b["x"] for b in loader])
        assert sorted(xs.tolist()) == list(range(150))
    node = rb.as_node(num_batches=3)
    assert len(list(Loader(node))) == 3
    with pytest.raises(ValueError, match="num_batches"):
        rb.as_node(num_batches=-1)


def test_dataloader_workers_sample_different_batches():
    rb = _make()
    loader = DataLoader(rb.as_dataset(num_batches=2), batch_size=None, num_workers=2)
    batches = _xs(loader)
    assert len(batches) == 4
    assert batches[0] != batches[1]  # workers reseeded from their worker seed
