"""VecNormV2: VecNorm's statistics, shared by copies across ParallelEnv workers, state_dict,
denorm / loc / scale, reduce_batch_dims, the stateless mode (statistics in the data), bad
input."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from tensordict import TensorDict
from transform_contract import TransformContractTests
from transform_test_envs import CountingEnv

from streamrl.envs import ParallelEnv
from streamrl.envs.transforms import TransformedEnv, VecNorm, VecNormV2


def _batches():
    g = torch.Generator().manual_seed(0)
    return [TensorDict({"x": torch.randn(4, 2, generator=g) * 3 + 1}, [4]) for _ in range(5)]


def test_same_statistics_as_vecnorm():
    v1, v2 = VecNorm(in_keys=["x"], decay=0.9), VecNormV2(in_keys=["x"], decay=0.9)
    for td in _batches():
        a, b = v1(td.clone())["x"], v2(td.clone())["x"]
        assert torch.allclose(a, b)
    assert torch.allclose(v2.loc["x"], v1.mean_std("x")[0])
    assert torch.allclose(v2.scale["x"], v1.mean_std("x")[1])


def test_copies_in_parallel_workers_share_the_statistics():
    t = VecNormV2(in_keys=["observation"], decay=1.0)
    local = TransformedEnv(CountingEnv(max_count=3), t)
    _ = local.observation_spec  # creates the shared statistics before the copies are made
    env = ParallelEnv(
        2, lambda: TransformedEnv(CountingEnv(max_count=3), copy.deepcopy(t)),
        mp_start_method="fork",
    )
    try:
        env.rollout(3)  # each worker: one reset (0) and three steps (1, 2, 3)
    finally:
        env.close()
    stats = t.shared_data["observation"]
    assert stats["count"].item() == 8
    assert stats["sum"].tolist() == [12.0] * 3  # 2 * (0 + 1 + 2 + 3)
    assert t.loc["observation"].tolist() == [1.5] * 3
    # a plain pickle gets statistics of its own, deepcopy shares them
    assert copy.deepcopy(t).shared_data["observation", "sum"].data_ptr() == stats[
        "sum"].data_ptr()
    import pickle

    other = pickle.loads(pickle.dumps(t))
    assert other.shared_data["observation", "sum"].data_ptr() != stats["sum"].data_ptr()
    assert other.loc["observation"].tolist() == [1.5] * 3


def test_state_dict_denorm_and_copies():
    t = VecNormV2(in_keys=["x"], out_keys=["x_norm"], decay=1.0)
    for td in _batches():
        out = t(td)
    back = t.denorm(out)
    assert torch.allclose(back["x"], _batches()[-1]["x"])
    other = VecNormV2(in_keys=["x"], out_keys=["x_norm"], decay=1.0)
    other.load_state_dict(t.state_dict())
    assert torch.equal(other.loc["x"], t.loc["x"]) and torch.equal(other.scale["x"], t.scale["x"])
    frozen = t.frozen_copy()
    frozen(_batches()[0])
    assert torch.equal(frozen.loc["x"], t.loc["x"])  # shares, never updates
    clone = t.clone()
    clone(_batches()[0])
    assert not torch.equal(clone.loc["x"], t.loc["x"])  # its own statistics
    norm = t.to_observation_norm()
    td = _batches()[1]
    assert torch.allclose(norm(td.clone())["x_norm"], t.frozen_copy()(td.clone())["x_norm"])
    assert t.standard_normal


def test_reduce_batch_dims_counts_one_sample_per_update():
    t = VecNormV2(in_keys=["x"], decay=1.0, reduce_batch_dims=True)
    t(TensorDict({"x": torch.tensor([[0.0], [2.0]])}, [2]))
    t(TensorDict({"x": torch.tensor([[4.0], [6.0]])}, [2]))
    assert t.shared_data["x", "count"].item() == 2 and t.loc["x"].tolist() == [3.0]


def test_stateless_statistics_travel_in_the_data():
    env = TransformedEnv(CountingEnv(max_count=9), VecNormV2(["observation"], stateful=False,
                                                               decay=1.0))
    r = env.rollout(2)
    assert r["observation"][0].tolist() == [0.0] * 3  # one sample: x - mean = 0
    # obs 1 after 0: mean 0.5, std 0.5 -> 1.0; obs 2: mean 1, std sqrt(2/3)
    assert r["next", "observation"][:, 0].tolist() == pytest.approx([1.0, 1 / math.sqrt(2 / 3)])
    assert r["next", "vecnorm_stats", "observation", "count"].tolist() == [2.0, 3.0]
    assert env.transform[0].get_extra_state() == {}  # nothing kept in the transform


def test_bad_input():
    with pytest.raises(ValueError, match="needs in_keys"):
        VecNormV2(None)
    with pytest.raises(ValueError, match="stateful=True"):
        VecNormV2(["x"], stateful=False, reduce_batch_dims=True)
    with pytest.raises(TypeError, match="TensorDict"):
        VecNormV2(["x"], shared_data={"x": 1})
    with pytest.raises(ValueError, match="shared_data must hold"):
        VecNormV2(["x"], shared_data=TensorDict({"x": {"sum": torch.zeros(1)}}))
    with pytest.raises(ValueError, match="decay"):
        VecNormV2(["x"], decay=0.0)
    with pytest.raises(RuntimeError, match="no statistics"):
        _ = VecNormV2(["x"]).loc
    with pytest.raises(RuntimeError, match="stateful"):
        VecNormV2(["x"], stateful=False).denorm(TensorDict({"x": torch.zeros(1)}))


class TestVecNormV2Contract(TransformContractTests):
    def make_transform(self):
        return VecNormV2(in_keys=["observation", "reward"], decay=0.99)


class TestVecNormV2StatelessContract(TransformContractTests):
    def make_transform(self):
        return VecNormV2(in_keys=["observation", "reward"], stateful=False)
