"""Compatibility with TorchRL 0.14's ``torchrl.data.replay_buffers`` (and the same names in
``torchrl.data``): the names added for TorchRL parity, importable from both paths, built with
their documented constructor arguments, and their main methods exercised.

Names left out on purpose: ``HERReplayBuffer``/``HindsightStrategy`` (multi-task),
``RemoteTensorDictReplayBuffer`` (Ray; ``RayReplayBuffer`` is tested with a local Ray in
``tests/data/test_ray_replay_buffer.py``), ``PromptGroupSampler`` (LLM).
"""

import pytest
import torch
from tensordict import TensorDict

import streamrl.data as data
import streamrl.data.replay_buffers as rbs
from streamrl.data.replay_buffers import (
    DEFAULT_DONE_KEYS,
    CompressedListStorage,
    CompressedListStorageCheckpointer,
    ConsumingSampler,
    Flat2TED,
    FlatStorageCheckpointer,
    H5Combine,
    H5Split,
    H5StorageCheckpointer,
    LazyTensorStorage,
    ListStorage,
    ListStorageCheckpointer,
    Nested2TED,
    NestedStorageCheckpointer,
    RandomSampler,
    ReplayBuffer,
    ReplayBufferEnsemble,
    RoundRobinWriter,
    SamplerEnsemble,
    StorageCheckpointerBase,
    StorageEnsemble,
    StreamingSliceSampler,
    TED2Flat,
    TED2Nested,
    TensorStorageCheckpointer,
    Trajectory,
    WriterEnsemble,
    filter_trajectories,
    find_start_stop_traj,
    iter_trajectories,
    prefill_replay_buffer,
)

SURFACE = [
    "SamplerEnsemble", "StorageEnsemble", "WriterEnsemble",
    "StorageCheckpointerBase", "ListStorageCheckpointer", "TensorStorageCheckpointer",
    "FlatStorageCheckpointer", "NestedStorageCheckpointer", "H5StorageCheckpointer",
    "CompressedListStorageCheckpointer", "TED2Flat", "Flat2TED", "TED2Nested", "Nested2TED",
    "H5Split", "H5Combine", "DEFAULT_DONE_KEYS", "find_start_stop_traj",
    "ConsumingSampler", "StreamingSliceSampler",
    "Trajectory", "iter_trajectories", "filter_trajectories", "prefill_replay_buffer",
]  # fmt: skip


@pytest.mark.parametrize("name", SURFACE)
def test_name_exported(name):
    assert name in rbs.__all__ and name in data.__all__
    assert getattr(rbs, name) is getattr(data, name)


def test_ensembles():
    storages = StorageEnsemble(LazyTensorStorage(10), LazyTensorStorage(10), transforms=None)
    samplers = SamplerEnsemble(
        RandomSampler(), RandomSampler(), p=None, sample_from_all=False, num_buffer_sampled=None
    )
    writers = WriterEnsemble(RoundRobinWriter(), RoundRobinWriter())
    rb = ReplayBufferEnsemble(storages=storages, samplers=samplers, writers=writers,
                              batch_size=4)
    rb[0].extend(TensorDict({"x": torch.zeros(4)}, [4]))
    rb[1].extend(TensorDict({"x": torch.ones(4)}, [4]))
    assert rb.sample().batch_size == (2, 2)
    index, _ = samplers.sample(storages, 4)
    assert [bid for bid, _ in storages.get(index)] == index["buffer_ids"].tolist()
    assert isinstance(rb[0], ReplayBuffer)


def _ted():
    done = torch.tensor([False, True, False, False])[:, None]
    obs = torch.tensor([0.0, 1.0, 10.0, 11.0])
    return TensorDict(
        {"obs": obs, "done": torch.zeros_like(done),
         "next": {"obs": obs + 1, "done": done, "reward": torch.ones(4, 1)}},
        [4],
    )


def test_layouts():
    ted = _ted()
    flat = TED2Flat(done_key=("next", "done"), shift_key="shift", is_full_key="is_full",
                    done_keys=DEFAULT_DONE_KEYS, reward_keys=("reward",))(ted)
    back = Flat2TED(done_key="done", shift_key="shift", is_full_key="is_full",
                    done_keys=DEFAULT_DONE_KEYS, reward_keys=("reward",))(flat)
    assert bool((back == ted).all())
    nested = TED2Nested()(ted)
    assert bool((Nested2TED()(H5Combine()(H5Split()(nested))) == ted).all())


@pytest.mark.parametrize(
    "make, ckpt, data",
    [
        (lambda: ListStorage(8), ListStorageCheckpointer, torch.zeros(4, 2)),
        (lambda: CompressedListStorage(8), CompressedListStorageCheckpointer, torch.zeros(4, 2)),
        (lambda: LazyTensorStorage(8), TensorStorageCheckpointer, None),
        (lambda: LazyTensorStorage(8), FlatStorageCheckpointer, None),
        (lambda: LazyTensorStorage(8), NestedStorageCheckpointer, None),
    ],
)
def test_checkpointers(make, ckpt, data, tmp_path):
    assert issubclass(ckpt, StorageCheckpointerBase)
    storage = make()
    storage.checkpointer = ckpt()
    rb = ReplayBuffer(storage=storage)
    rb.extend(_ted() if data is None else data)
    rb.dumps(tmp_path)
    fresh = make()
    fresh.checkpointer = ckpt()
    ReplayBuffer(storage=fresh).loads(tmp_path)
    assert len(fresh) == 4


def test_h5_checkpointer_arguments():
    ckpt = H5StorageCheckpointer(checkpoint_file="checkpoint.h5", done_keys=None,
                                 reward_keys=None, h5_kwargs=None)
    assert ckpt.checkpoint_file == "checkpoint.h5"


def test_find_start_stop_traj():
    end = torch.tensor([False, True, False, True])
    start, stop, lengths = find_start_stop_traj(end=end, at_capacity=False)
    assert start[:, 0].tolist() == [0, 2] and stop[:, 0].tolist() == [1, 3]
    assert lengths.tolist() == [2, 2]


def test_consuming_sampler():
    rb = ReplayBuffer(storage=ListStorage(10), sampler=ConsumingSampler(max_sample_count=1),
                      batch_size=3)
    rb.extend([torch.tensor(i) for i in range(4)])
    assert len(rb.sample()) == 3 and len(rb) == 1


def test_streaming_slice_sampler():
    from streamrl.data.replay_buffers import TensorDictReplayBuffer

    sampler = StreamingSliceSampler(
        slice_len=3, end_key=None, end_keys=None, traj_key=None, cache_values=False,
        truncated_key=("next", "truncated"), init_key="is_init", strict_length=True, span=False,
    )
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(16), sampler=sampler, batch_size=6)
    done = torch.zeros(6, 1, dtype=torch.bool)
    rb.extend(TensorDict({"value": torch.arange(6), ("next", "done"): done}, [6]))
    assert rb.sample()["value"].reshape(2, 3).tolist() == [[0, 1, 2], [3, 4, 5]]


def test_trajectory_utilities():
    done = torch.tensor([False, True, False, True])[:, None]
    data = TensorDict({"obs": torch.arange(4), ("next", "done"): done,
                       ("next", "reward"): torch.ones(4)}, [4])
    trajs = list(iter_trajectories(data, trajectory_key=None))
    assert all(isinstance(t, Trajectory) for t in trajs) and [t.length for t in trajs] == [2, 2]
    kept = filter_trajectories(data, lambda t: t.total_reward > 1, trajectory_key=None)
    assert len(kept) == 2


def test_prefill_replay_buffer():
    dataset = ReplayBuffer(storage=LazyTensorStorage(500))
    dataset.extend(TensorDict({"obs": torch.randn(500, 4)}, [500]))
    online = ReplayBuffer(storage=LazyTensorStorage(10_000))
    out = prefill_replay_buffer(online, dataset, n_samples=200, chunk_size=1000)
    assert out is online and len(online) == 200


def test_storage_set_and_ndim():
    from streamrl.data.replay_buffers import LazyMemmapStorage

    storage = LazyTensorStorage(10)
    storage.set(range(3), TensorDict({"x": torch.arange(3)}, [3]), set_cursor=True)
    assert len(storage) == 3
    rb = ReplayBuffer(storage=LazyMemmapStorage(100, ndim=2), batch_size=4)
    rb.extend(TensorDict({"x": torch.ones(4, 3)}, [4, 3]))
    assert len(rb) == 12 and rb.sample().shape == (4,)


def test_max_value_writer_refuses_tensors():
    from streamrl.data.replay_buffers import TensorDictMaxValueWriter

    rb = ReplayBuffer(storage=LazyTensorStorage(5),
                      writer=TensorDictMaxValueWriter(rank_key="r", reduction="median"))
    with pytest.raises(RuntimeError, match="expects data to be a tensor collection"):
        rb.extend(torch.zeros(3))
    rb.extend(TensorDict({"r": torch.arange(3.0)}, [3]))
    assert rb.writer._cursor == 3


def test_schedulers():
    from streamrl.data.replay_buffers import PrioritizedReplayBuffer
    from streamrl.data.replay_buffers.scheduler import (
        LambdaScheduler,
        LinearScheduler,
        SchedulerList,
        StepScheduler,
    )

    rb = PrioritizedReplayBuffer(alpha=0.6, beta=0.7, storage=ListStorage(10))
    scheduler = SchedulerList(schedulers=(
        LinearScheduler(rb, param_name="alpha", final_value=0.0, num_steps=2),
        StepScheduler(rb, param_name="beta", gamma=0.1, n_steps=1, mode="additive",
                      min_value=None, max_value=1.0),
        LambdaScheduler(rb.sampler, param_name="eps", lambda_fn=lambda n: 1.0),
    ))
    scheduler.step()
    assert rb.sampler.alpha == pytest.approx(0.3) and rb.sampler.beta == pytest.approx(0.8)


def test_staleness_aware_sampler():
    from streamrl.data.replay_buffers.samplers import StalenessAwareSampler

    assert StalenessAwareSampler is data.StalenessAwareSampler is rbs.StalenessAwareSampler
    sampler = StalenessAwareSampler(max_staleness=5, staleness_weight_fn=None,
                                    version_key="policy_version")
    rb = ReplayBuffer(storage=LazyTensorStorage(10), sampler=sampler, batch_size=4)
    rb.extend(TensorDict({"policy_version": torch.zeros(3)}, [3]))
    sampler.consumer_version = 2
    assert rb.sample().shape == (4,)
    # ReplayBuffer.can_sample(batch_size=None) and Sampler.can_sample(storage, batch_size)
    assert rb.can_sample() and sampler.can_sample(rb.storage, 4)
    sampler.consumer_version = 9  # every item is staler than max_staleness
    assert not rb.can_sample(4) and not sampler.can_sample(rb.storage, 4)
