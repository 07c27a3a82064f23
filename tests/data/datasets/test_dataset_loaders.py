"""A dataset behind torch/torchdata loaders resumes exactly from a checkpoint, in a new process
too: the reopened cache holds the same rows, the loader state holds the sampler's place."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from torchdata.nodes import Loader, Prefetcher
from torchdata.stateful_dataloader import StatefulDataLoader

from streamrl.data import SamplerWithoutReplacement
from streamrl.data.datasets import D4RLExperienceReplay, MinariExperienceReplay
from tests.data.datasets.dataset_support import make_minari, pendulum_episodes, write_d4rl


def _minari(**kwargs):
    return MinariExperienceReplay("pendulum/random-v0", batch_size=3, **kwargs)


def test_torchdata_loader_resumes_exactly(minari_root):
    make_minari("pendulum/random-v0", pendulum_episodes(), env="Pendulum-v1")
    data = _minari()
    data.sampler.manual_seed(7)
    loader = Loader(Prefetcher(data.as_node(num_batches=12), prefetch_factor=2))
    it = iter(loader)
    for _ in range(4):
        next(it)
    state = loader.state_dict()
    rest = [b["index"].tolist() for b in it]
    data.close()
    # a fresh buffer over the reopened cache, as after a restart
    again = _minari()
    resumed = Loader(Prefetcher(again.as_node(num_batches=12), prefetch_factor=2))
    resumed.load_state_dict(state)
    assert [b["index"].tolist() for b in resumed] == rest
    assert len(rest) == 8


def test_stateful_dataloader_resumes_exactly(tmp_path):
    write_d4rl(tmp_path / "toy.hdf5", n=60)
    data = D4RLExperienceReplay(tmp_path / "toy.hdf5", batch_size=5, root=tmp_path / "c")
    data.sampler.manual_seed(3)
    loader = StatefulDataLoader(data.as_dataset(num_batches=10), batch_size=None)
    it = iter(loader)
    for _ in range(3):
        next(it)
    state = loader.state_dict()
    rest = [b for b in it]
    again = D4RLExperienceReplay("toy", batch_size=5, root=tmp_path / "c")
    resumed = StatefulDataLoader(again.as_dataset(num_batches=10), batch_size=None)
    resumed.load_state_dict(state)
    got = list(resumed)
    assert len(got) == len(rest) == 7
    for a, b in zip(got, rest):
        assert (a == b).all()


def test_plain_dataloader_yields_batches(minari_root):
    make_minari("pendulum/random-v0", pendulum_episodes(), env="Pendulum-v1")
    data = _minari(sampler=SamplerWithoutReplacement())
    batches = list(DataLoader(data, batch_size=None))  # one epoch
    seen = torch.cat([b["index"] for b in batches])
    assert sorted(seen.tolist()) == list(range(16))


def test_dataloader_workers_read_the_cache(tmp_path):
    write_d4rl(tmp_path / "toy.hdf5", n=200)
    data = D4RLExperienceReplay(tmp_path / "toy.hdf5", batch_size=8, root=tmp_path / "c")
    loader = DataLoader(data.as_dataset(num_batches=3), batch_size=None, num_workers=2)
    batches = list(loader)
    assert len(batches) == 6  # each worker samples its own num_batches
    for batch in batches:  # every worker reopened the same files
        assert (batch.exclude("index") == data.storage.get(batch["index"])).all()
    # the workers were reseeded differently: their first batches differ
    assert not torch.equal(batches[0]["index"], batches[1]["index"])
