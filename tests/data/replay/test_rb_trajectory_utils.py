"""find_start_stop_traj, iter_trajectories / filter_trajectories / Trajectory, prefill."""

import pytest
import torch
from tensordict import TensorDict

from streamrl.data import (
    ImmutableDatasetWriter,
    LazyTensorStorage,
    ListStorage,
    ReplayBuffer,
    Trajectory,
    filter_trajectories,
    find_start_stop_traj,
    iter_trajectories,
    prefill_replay_buffer,
)


class TestFindStartStop:
    def test_not_at_capacity_last_row_ends(self):
        end = torch.tensor([0, 1, 0, 0], dtype=torch.bool)
        start, stop, lengths = find_start_stop_traj(end=end, at_capacity=False)
        assert start[:, 0].tolist() == [0, 2] and stop[:, 0].tolist() == [1, 3]
        assert lengths.tolist() == [2, 2] and start.dtype == torch.long

    def test_circular_wrap_and_cursor(self):
        ids = torch.tensor([5, 5, 5, 0, 0, 1, 1, 1, 5, 5])
        start, stop, lengths = find_start_stop_traj(trajectory=ids, at_capacity=True)
        assert start[:, 0].tolist() == [8, 3, 5] and stop[:, 0].tolist() == [2, 4, 7]
        assert lengths.tolist() == [5, 2, 3]
        # the row under the cursor ends a trajectory; cursor may be a tensor or a range
        _, stop, _ = find_start_stop_traj(trajectory=ids, at_capacity=True, cursor=range(0, 1))
        assert stop[:, 0].tolist() == [0, 2, 4, 7]
        _, stop2, _ = find_start_stop_traj(trajectory=ids, at_capacity=True,
                                           cursor=torch.tensor(0))
        assert torch.equal(stop, stop2)

    def test_full_ring_without_end_is_one_trajectory(self):
        start, stop, lengths = find_start_stop_traj(end=torch.zeros(5, dtype=torch.bool),
                                                    at_capacity=True)
        assert (start.tolist(), stop.tolist(), lengths.tolist()) == ([[0]], [[4]], [5])

    def test_batch_columns(self):
        end = torch.zeros(4, 2, dtype=torch.bool)
        end[1, 0] = end[2, 1] = True
        start, stop, lengths = find_start_stop_traj(end=end, at_capacity=False)
        assert start.tolist() == [[0, 0], [2, 0], [0, 1], [3, 1]]
        assert stop.tolist() == [[1, 0], [3, 0], [2, 1], [3, 1]]
        assert lengths.tolist() == [2, 2, 3, 1]

    def test_empty_and_bad_input(self):
        start, stop, lengths = find_start_stop_traj(end=torch.zeros(0, dtype=torch.bool),
                                                    at_capacity=False)
        assert start.shape == stop.shape == (0, 1) and lengths.numel() == 0
        with pytest.raises(ValueError, match="exactly one"):
            find_start_stop_traj(at_capacity=False)
        with pytest.raises(ValueError, match="exactly one"):
            find_start_stop_traj(end=torch.zeros(2, dtype=torch.bool),
                                 trajectory=torch.zeros(2), at_capacity=False)
        with pytest.raises(TypeError, match="bool tensor"):
            find_start_stop_traj(end=torch.zeros(3), at_capacity=False)
        with pytest.raises(ValueError, match="0-d"):
            find_start_stop_traj(trajectory=torch.tensor(1), at_capacity=False)
        with pytest.raises(TypeError, match="cursor must be"):
            find_start_stop_traj(end=torch.zeros(3, dtype=torch.bool), at_capacity=True,
                                 cursor=1.5)


def _transitions():
    done = torch.tensor([0, 0, 1, 0, 1, 0], dtype=torch.bool)[:, None]
    return TensorDict(
        {"obs": torch.arange(6.0), "next": {"done": done, "reward": torch.arange(6.0)[:, None]}},
        [6],
    )


class TestIterTrajectories:
    def test_by_end_flags(self):
        trajs = list(iter_trajectories(_transitions()))
        assert [t.length for t in trajs] == [3, 2, 1]
        assert [t.total_reward.item() for t in trajs] == [3.0, 7.0, 5.0]
        assert trajs[1].get("obs").tolist() == [3.0, 4.0]
        assert trajs[1].get("reward").reshape(-1).tolist() == [3.0, 4.0]
        assert trajs[0].get("missing", 7) == 7 and set(trajs[0].keys()) == {"obs", "next"}

    def test_ids_take_precedence_and_views(self):
        data = _transitions()
        data["collector", "traj_ids"] = torch.tensor([0, 0, 1, 1, 1, 2])
        trajs = list(iter_trajectories(data))
        assert [t.length for t in trajs] == [2, 3, 1]
        trajs[0].data["obs"][0] = -1.0  # a view of the batch
        assert data["obs"][0] == -1.0
        data["episode"] = torch.tensor([0, 1, 1, 1, 1, 1])
        assert [t.length for t in iter_trajectories(data, trajectory_key="episode")] == [1, 5]

    def test_root_done_flags_and_empty(self):
        data = TensorDict({"obs": torch.arange(3), "terminated": torch.tensor([1, 0, 1]).bool()},
                          [3])
        assert [t.length for t in iter_trajectories(data)] == [1, 2]
        assert list(iter_trajectories(data[:0])) == []

    def test_filter(self):
        data = _transitions()
        assert [t.length for t in filter_trajectories(data)] == [3, 2, 1]
        kept = filter_trajectories(data, lambda t: t.total_reward > 4)
        assert [t.total_reward.item() for t in kept] == [7.0, 5.0]

    def test_bad_input(self):
        with pytest.raises(TypeError, match="takes a TensorDict"):
            list(iter_trajectories(torch.zeros(3)))
        with pytest.raises(ValueError, match="one batch dim"):
            list(iter_trajectories(TensorDict({"x": torch.zeros(2, 3)}, [2, 3])))
        with pytest.raises(KeyError, match="pass trajectory_key"):
            list(iter_trajectories(TensorDict({"x": torch.zeros(2)}, [2])))
        with pytest.raises(KeyError, match="trajectory key 'nope'"):
            list(iter_trajectories(_transitions(), trajectory_key="nope"))
        with pytest.raises(TypeError, match="predicate must be callable"):
            filter_trajectories(_transitions(), 3)
        with pytest.raises(KeyError, match="no 'reward' entry"):
            _ = Trajectory(TensorDict({"x": torch.zeros(2)}, [2])).total_reward
        with pytest.raises(TypeError, match="one batch dim"):
            Trajectory(TensorDict({"x": torch.zeros(2, 2)}, [2, 2]))


class TestPrefill:
    def test_copies_in_order_in_chunks(self):
        dataset = ReplayBuffer(storage=LazyTensorStorage(50), writer=None)
        dataset.extend(TensorDict({"obs": torch.arange(50)}, [50]))
        online = ReplayBuffer(storage=LazyTensorStorage(100))
        assert prefill_replay_buffer(online, dataset, n_samples=23, chunk_size=10) is online
        assert len(online) == 23
        assert online.storage.get(torch.arange(23))["obs"].tolist() == list(range(23))
        prefill_replay_buffer(online, dataset)
        assert len(online) == 73

    def test_list_storages_and_immutable_source(self):
        dataset = ReplayBuffer(storage=ListStorage(5), collate_fn=lambda x: x)
        dataset.extend(["a", "b", "c"])
        dataset = ReplayBuffer(storage=dataset.storage, writer=ImmutableDatasetWriter(),
                               collate_fn=lambda x: x)
        online = ReplayBuffer(storage=ListStorage(5), collate_fn=lambda x: x)
        prefill_replay_buffer(online, dataset, chunk_size=2)
        assert online.storage.get(torch.arange(3)) == ["a", "b", "c"]
        with pytest.raises(RuntimeError, match="immutable"):
            prefill_replay_buffer(dataset, online)

    def test_bad_input(self):
        rb = ReplayBuffer(storage=LazyTensorStorage(4))
        with pytest.raises(ValueError, match="unknown dataset prefix 'nope'"):
            prefill_replay_buffer(rb, "nope:door-human-v2")
        with pytest.raises(TypeError, match="a ReplayBuffer or a dataset id"):
            prefill_replay_buffer(rb, 3)
        with pytest.raises(TypeError, match="rb must be a ReplayBuffer"):
            prefill_replay_buffer([], rb)
        with pytest.raises(ValueError, match="from itself"):
            prefill_replay_buffer(rb, rb)
        other = ReplayBuffer(storage=LazyTensorStorage(4))
        with pytest.raises(ValueError, match="n_samples"):
            prefill_replay_buffer(rb, other, n_samples=-1)
        with pytest.raises(ValueError, match="chunk_size"):
            prefill_replay_buffer(rb, other, chunk_size=0)
