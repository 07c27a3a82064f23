"""one_hot: F.one_hot(index, n).to(dtype) as one row lookup."""

import pytest
import torch
import torch.nn.functional as F

from streamrl._utils.one_hot import one_hot


@pytest.mark.parametrize("shape", [(), (1,), (3, 4), (0,)])
@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.int64, torch.float32])
def test_equals_torch_s_one_hot(shape, dtype):
    index = torch.randint(5, shape)
    got, want = one_hot(index, 5, dtype), F.one_hot(index, 5).to(dtype)
    assert got.dtype == want.dtype and got.shape == want.shape and torch.equal(got, want)


def test_the_result_is_a_new_tensor():
    a = one_hot(torch.tensor([1]), 3, torch.float32)
    a.fill_(7.0)
    assert torch.equal(one_hot(torch.tensor([1]), 3, torch.float32), torch.tensor([[0.0, 1.0, 0.0]]))


@pytest.mark.parametrize("index", [[3], [-1]])
def test_indices_out_of_range_raise(index):
    with pytest.raises(IndexError):
        one_hot(torch.tensor(index), 3)


def test_float_indices_are_refused():
    with pytest.raises(TypeError, match=r"integer indices, found torch\.float32"):
        one_hot(torch.tensor([1.0]), 3)
