"""SafeSequential, SafeProbabilisticModule and SafeProbabilisticTensorDictSequential."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import InteractionType, TensorDictModule, set_interaction_type
from torch import nn

from streamrl._warnings import StreamRLWarning
from streamrl.data.specs import Bounded, Composite, Unbounded
from streamrl.modules import (
    NormalParamExtractor,
    SafeModule,
    SafeProbabilisticModule,
    SafeProbabilisticTensorDictSequential,
    SafeSequential,
    TanhNormal,
)


def _two_step(safe=True):
    return SafeSequential(
        SafeModule(nn.Linear(4, 8), ["obs"], ["hidden"], spec=Unbounded(8)),
        SafeModule(nn.Linear(8, 2), ["hidden"], ["action"], spec=Bounded(-1, 1, (2,)), safe=safe),
    )


class TestSafeSequential:
    def test_runs_in_order_and_projects(self):
        seq = _two_step()
        td = seq(TensorDict({"obs": torch.randn(3, 4) * 100}, [3]))
        assert td["hidden"].shape == (3, 8)
        assert td["action"].abs().max() <= 1
        assert set(seq.spec.keys()) == {"hidden", "action"}
        assert isinstance(seq.spec["action"], Bounded)

    def test_nested_sequences_and_plain_members(self):
        plain = TensorDictModule(nn.Linear(2, 1), ["action"], ["value"])
        seq = SafeSequential(_two_step(), plain)
        assert set(seq.spec.keys()) == {"hidden", "action"}
        assert seq(TensorDict({"obs": torch.randn(5, 4)}, [5]))["value"].shape == (5, 1)

    def test_partial_tolerant(self):
        seq = SafeSequential(
            SafeModule(nn.Linear(4, 2), ["obs"], ["a"]),
            SafeModule(nn.Linear(4, 2), ["other"], ["b"]),
            partial_tolerant=True,
        )
        td = seq(TensorDict({"obs": torch.randn(3, 4)}, [3]))
        assert "a" in td.keys() and "b" not in td.keys()
        with pytest.raises(KeyError):
            SafeSequential(*seq.module)(TensorDict({"obs": torch.randn(3, 4)}, [3]))

    def test_inplace_false_returns_new_tensordict(self):
        seq = SafeSequential(SafeModule(nn.Linear(4, 2), ["obs"], ["a"]), inplace=False)
        td = TensorDict({"obs": torch.randn(3, 4)}, [3])
        out = seq(td)
        assert out is not td and "a" not in td.keys() and "a" in out.keys()

    def test_no_modules(self):
        with pytest.raises(ValueError, match="at least one"):
            SafeSequential()


def _head(**kwargs):
    return SafeProbabilisticModule(
        ["loc", "scale"], ["action"], distribution_class=TanhNormal, **kwargs
    )


class TestSafeProbabilisticModule:
    def test_sample_log_prob_and_spec(self):
        head = _head(spec=Bounded(-1.0, 1.0, (2,)), return_log_prob=True)
        td = TensorDict({"loc": torch.zeros(4, 2), "scale": torch.ones(4, 2)}, [4])
        with set_interaction_type(InteractionType.RANDOM):
            out = head(td)
        assert out["action"].shape == (4, 2) and out["action_log_prob"].shape == (4,)
        assert isinstance(head.spec["action"], Bounded)

    def test_safe_projects_into_a_narrower_spec(self):
        head = _head(spec=Bounded(-0.1, 0.1, (2,)), safe=True)
        td = TensorDict({"loc": torch.full((4, 2), 3.0), "scale": torch.ones(4, 2)}, [4])
        assert head(td)["action"].abs().max() <= 0.1 + 1e-6

    def test_shape_check_and_errors(self):
        head = _head(spec=Unbounded(3))
        td = TensorDict({"loc": torch.zeros(4, 2), "scale": torch.ones(4, 2)}, [4])
        with pytest.raises(ValueError, match="spec's shape"):
            head(td)
        with pytest.raises(RuntimeError, match="safe=True"):
            _head(safe=True)
        with pytest.warns(StreamRLWarning, match="out_keys.*ignored"):
            _head(spec=Composite(other=Unbounded(2)))

    def test_sequence(self):
        net = TensorDictModule(
            nn.Sequential(nn.Linear(4, 4), NormalParamExtractor()), ["obs"], ["loc", "scale"]
        )
        seq = SafeProbabilisticTensorDictSequential(net, _head(spec=Unbounded(2)))
        td = TensorDict({"obs": torch.randn(5, 4)}, [5])
        assert seq(td)["action"].shape == (5, 2)
        dist = seq.get_dist(td)
        assert isinstance(dist, TanhNormal)
        assert set(seq.spec.keys()) == {"action"}
        with pytest.raises(TypeError, match="probabilistic"):
            SafeProbabilisticTensorDictSequential(net)
        with pytest.raises(TypeError, match="nothing"):
            SafeProbabilisticTensorDictSequential()


def test_spec_for_the_unwritten_underscore_key_warns_and_is_ignored():
    from streamrl import StreamRLWarning
    from streamrl.modules import SafeModule

    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(5, 4), nn.Linear(5, 3)

        def forward(self, x):
            return self.a(x), self.b(x)

    spec = Composite({"_": Unbounded((4,)), "out_2": Bounded(-0.1, 0.1, (3,))})
    with pytest.warns(StreamRLWarning, match='got a spec with key "_"'):
        module = SafeModule(TwoHeads(), in_keys=["input"], out_keys=["_", "out_2"], spec=spec,
                            safe=True)
    td = module(TensorDict({"input": torch.randn(2, 5) * 100}, [2]))
    assert "_" not in td.keys() and td["out_2"].abs().max() <= 0.1
