"""ToTensorImage, Resize, GrayScale, CenterCrop: values, specs, batch dims, bad shapes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tensordict import TensorDict

from streamrl.data.specs import Bounded
from streamrl.envs.transforms import (
    CenterCrop,
    Compose,
    GrayScale,
    Resize,
    ToTensorImage,
    TransformedEnv,
)
from streamrl.envs.utils import check_env_specs


def _img(*shape, dtype=torch.uint8):
    n = torch.tensor(shape).prod().item()
    return (torch.arange(n) % 256).reshape(shape).to(dtype)


def test_to_tensor_image_values_and_layout():
    pixels = _img(2, 4, 5, 3)  # [B, H, W, C]
    td = TensorDict({"pixels": pixels}, batch_size=[2])
    out = ToTensorImage()(td)["pixels"]
    assert out.shape == (2, 3, 4, 5) and out.dtype == torch.float32
    torch.testing.assert_close(out, pixels.permute(0, 3, 1, 2).float() / 255)
    assert out.is_contiguous()


def test_to_tensor_image_float_input_not_rescaled_and_unsqueeze():
    pixels = torch.rand(4, 5, 3)
    out = ToTensorImage(unsqueeze=True)(TensorDict({"pixels": pixels}))["pixels"]
    assert out.shape == (1, 3, 4, 5)
    torch.testing.assert_close(out[0], pixels.permute(2, 0, 1))
    forced = ToTensorImage(from_int=True)(TensorDict({"pixels": pixels}))["pixels"]
    torch.testing.assert_close(forced, pixels.permute(2, 0, 1) / 255)


def test_to_tensor_image_bad_input():
    with pytest.raises(ValueError, match=r"\[\.\.\., H, W, C\].*\(4, 5\)"):
        ToTensorImage()(TensorDict({"pixels": torch.zeros(4, 5, dtype=torch.uint8)}))
    with pytest.raises(KeyError, match="pixels"):
        ToTensorImage()(TensorDict({"obs": torch.zeros(4, 5, 3)}))
    with pytest.raises(TypeError, match="float"):
        ToTensorImage(dtype=torch.int32)


def test_to_tensor_image_spec():
    spec = Bounded(0, 255, shape=(4, 8, 6, 3), dtype=torch.uint8)
    out = ToTensorImage()._transform_spec(spec)
    assert out.shape == (4, 3, 8, 6) and out.dtype == torch.float32
    assert float(out.low.min()) == 0.0 and float(out.high.max()) == 1.0
    assert out.is_in(ToTensorImage()._apply_transform(spec.rand()))


def test_resize_values():
    # nearest on an image made of 2x2 blocks halves it exactly
    small = torch.arange(6.0).reshape(1, 2, 3)
    big = small.repeat_interleave(2, -2).repeat_interleave(2, -1)  # [1, 4, 6]
    # TorchRL's order: Resize(w, h) makes w rows and h columns
    out = Resize(2, 3, interpolation="nearest")(TensorDict({"pixels": big}))["pixels"]
    torch.testing.assert_close(out, small)
    # bilinear agrees with interpolate, keeps leading dims and dtype
    x = torch.rand(2, 5, 3, 10, 12)
    out = Resize(4, 6)(TensorDict({"pixels": x}, batch_size=[2, 5]))["pixels"]
    assert out.shape == (2, 5, 3, 4, 6)
    ref = F.interpolate(x.reshape(10, 3, 10, 12), size=(4, 6), mode="bilinear")
    torch.testing.assert_close(out, ref.reshape(2, 5, 3, 4, 6))


def test_resize_uint8_and_constant_image():
    x = torch.full((3, 10, 10), 200, dtype=torch.uint8)
    out = Resize(4)(TensorDict({"pixels": x}))["pixels"]
    assert out.dtype == torch.uint8 and out.shape == (3, 4, 4)
    assert bool((out == 200).all())


def test_resize_bad_args():
    with pytest.raises(ValueError, match="positive int"):
        Resize(0)
    with pytest.raises(ValueError, match="interpolation"):
        Resize(8, interpolation="lanczos")
    with pytest.raises(ValueError, match=r"C, H, W"):
        Resize(8)(TensorDict({"pixels": torch.zeros(5, 5)}))


def test_grayscale_values():
    rgb = torch.tensor([1.0, 0.5, 0.25]).reshape(3, 1, 1).expand(3, 2, 2)
    out = GrayScale()(TensorDict({"pixels": rgb}))["pixels"]
    assert out.shape == (1, 2, 2)
    expected = 0.2989 * 1.0 + 0.587 * 0.5 + 0.114 * 0.25
    torch.testing.assert_close(out, torch.full((1, 2, 2), expected))
    u8 = torch.tensor([255, 0, 0], dtype=torch.uint8).reshape(3, 1, 1)
    g = GrayScale()(TensorDict({"pixels": u8}))["pixels"]
    assert g.dtype == torch.uint8 and g.item() == round(0.2989 * 255)


def test_grayscale_wrong_channels():
    with pytest.raises(ValueError, match="3 channels"):
        GrayScale()(TensorDict({"pixels": torch.zeros(4, 5, 5)}))


def test_center_crop_values():
    x = torch.arange(36.0).reshape(1, 6, 6)
    out = CenterCrop(2)(TensorDict({"pixels": x}))["pixels"]
    torch.testing.assert_close(out, x[:, 2:4, 2:4])
    # TorchRL's order: CenterCrop(w, h) keeps w rows and h columns
    out = CenterCrop(4, 2)(TensorDict({"pixels": x}))["pixels"]
    torch.testing.assert_close(out, x[:, 1:5, 2:4])
    out = CenterCrop(2, 4)(TensorDict({"pixels": x}))["pixels"]
    torch.testing.assert_close(out, x[:, 2:4, 1:5])
    # larger than the image: zeros around it (torchvision's center_crop, as TorchRL)
    out = CenterCrop(8, 7)(TensorDict({"pixels": x}))["pixels"]
    assert out.shape == (1, 8, 7)
    torch.testing.assert_close(out[:, 1:7, 0:6], x)
    assert out.sum() == x.sum()
    u8 = CenterCrop(3)(TensorDict({"pixels": torch.full((1, 2, 2), 9, dtype=torch.uint8)}))
    assert u8["pixels"].dtype == torch.uint8 and u8["pixels"].tolist() == [
        [[9, 9, 0], [9, 9, 0], [0, 0, 0]]]


def test_image_pipeline_in_env_updates_specs(counting_env):
    env = TransformedEnv(
        counting_env(batch_size=(2,), pixels=True, hw=(12, 10)),
        Compose(ToTensorImage(), GrayScale(), Resize(5, 6), CenterCrop(4)),
    )
    spec = env.observation_spec["pixels"]
    assert spec.shape == (2, 1, 4, 4) and spec.dtype == torch.float32
    td = env.rollout(3)
    pix = td["next", "pixels"]
    assert pix.shape == (2, 3, 1, 4, 4)
    # counter c after step k: rgb = (c, 2c, 3c) / 255, so luma is constant per frame
    c = torch.arange(1, 4.0)
    expected = (0.2989 * c + 0.587 * 2 * c + 0.114 * 3 * c) / 255
    torch.testing.assert_close(pix[0, :, 0, 0, 0], expected)
    assert spec.is_in(pix[:, 0])
    check_env_specs(env)
    sample = spec.rand()
    assert sample.shape == spec.shape and sample.dtype == spec.dtype
