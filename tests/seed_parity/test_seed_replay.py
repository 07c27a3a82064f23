"""The seed tutorial's "Replay buffers" section, with torchrl replaced by streamrl."""

import torch
from tensordict import TensorDict


def test_seed_replay_buffers_any_object():
    from streamrl.data import PrioritizedReplayBuffer, ReplayBuffer

    rb = ReplayBuffer(collate_fn=lambda x: x)
    rb.add(1)
    assert rb.sample(1) == [1]
    rb.extend([2, 3])
    out = rb.sample(3)
    assert isinstance(out, list) and len(out) == 3 and set(out) <= {1, 2, 3}
    rb = PrioritizedReplayBuffer(alpha=0.7, beta=1.1, collate_fn=lambda x: x)
    rb.add(1)
    assert rb.sample(1) == [1]
    rb.update_priority(1, 0.5)  # slot 1 is not written yet: accepted, no effect
    assert rb._sampler._sum_tree[1] == 0.0


def test_seed_replay_buffers_tensordict(capsys):
    from streamrl.data import ReplayBuffer

    rb = ReplayBuffer(collate_fn=torch.stack)
    rb.add(TensorDict({"a": torch.randn(3)}, batch_size=[]))
    assert len(rb) == 1
    rb.extend(TensorDict({"a": torch.randn(2, 3)}, batch_size=[2]))
    assert len(rb) == 3
    s = rb.sample(10)
    assert isinstance(s, TensorDict)
    assert s.batch_size == torch.Size([10])
    assert s["a"].shape == (10, 3) and s["a"].dtype == torch.float32
    s2 = rb.sample(2).contiguous()
    assert s2.batch_size == torch.Size([2]) and set(s2.keys()) == {"a"}


def test_seed_tensordict_prioritized():
    torch.manual_seed(0)
    from streamrl.data import TensorDictPrioritizedReplayBuffer

    rb = TensorDictPrioritizedReplayBuffer(alpha=0.7, beta=1.1, priority_key="td_error")
    rb.extend(TensorDict({"a": torch.randn(2, 3)}, batch_size=[2]))
    sample = rb.sample(2).contiguous()
    # the seed printed _weight, a, index; TorchRL 0.14 adds priority_weight (same tensor)
    assert set(sample.keys()) == {"_weight", "a", "index", "priority_weight"}
    assert torch.equal(sample["priority_weight"], sample["_weight"])
    assert sample.batch_size == torch.Size([2])
    assert sample["_weight"].shape == (2,) and sample["_weight"].dtype == torch.float32
    assert sample["index"].shape == (2,) and sample["index"].dtype == torch.int64
    assert sample["a"].shape == (2, 3)
    sample["td_error"] = torch.rand(2)
    rb.update_tensordict_priority(sample)
    values = []
    for i, val in enumerate(rb._sampler._sum_tree):
        values.append((i, val))
        if i == len(rb):
            break
    assert [i for i, _ in values] == [0, 1, 2]
    assert all(isinstance(v, float) for _, v in values)
    # Updated leaves hold (td_error + eps) ** alpha; never-updated written ones the max (1.0);
    # unwritten ones 0.
    expected = {0: 1.0, 1: 1.0}
    for idx, err in zip(sample["index"].tolist(), sample["td_error"].tolist()):
        expected[idx] = (err + 1e-8) ** 0.7
    assert values[0][1] == pytest_approx(expected[0])
    assert values[1][1] == pytest_approx(expected[1])
    assert values[2][1] == 0.0


def pytest_approx(x):
    import pytest

    return pytest.approx(x, rel=1e-6)
