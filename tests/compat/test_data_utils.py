"""Compatibility with TorchRL 0.14's ``torchrl.data.utils``: the spec helpers
``consolidate_spec`` and ``check_no_exclusive_keys``, importable from ``streamrl.data.utils``
(and ``streamrl.data``) with their documented arguments.
"""

import torch

from streamrl.data import utils
from streamrl.data.tensor_specs import Composite, Unbounded
from streamrl.data.utils import check_no_exclusive_keys, consolidate_spec


def test_names_exported():
    assert set(utils.__all__) == {"check_no_exclusive_keys", "consolidate_spec"}


def test_consolidate_spec_and_check_no_exclusive_keys():
    spec = torch.stack([Composite(a=Unbounded((3,))), Composite(b=Unbounded((2,)))], 0)
    assert check_no_exclusive_keys(spec, recurse=True) is False
    out = consolidate_spec(spec, recurse_through_entries=True, recurse_through_stack=True)
    assert check_no_exclusive_keys(out) is True
    assert out["a"].shape == (2, -1) and out["b"].shape == (2, -1)
