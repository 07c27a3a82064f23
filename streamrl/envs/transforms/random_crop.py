"""RandomCropTensorDict: a random window of ``sub_seq_len`` steps from each trajectory of a
batch (replay-buffer samples, module inputs).

>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.envs.transforms import RandomCropTensorDict
>>> td = TensorDict({"x": torch.arange(10).expand(3, 10)}, [3, 10])
>>> out = RandomCropTensorDict(4)(td)
>>> out.batch_size, bool((out["x"].diff(dim=-1) == 1).all())
(torch.Size([3, 4]), True)
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey

from streamrl.envs.transforms.transform import Transform, _check_td, as_keys

__all__ = ["RandomCropTensorDict"]


class RandomCropTensorDict(Transform):
    """Keep ``sub_seq_len`` consecutive steps, starting at a uniformly random step chosen
    independently for each trajectory, along batch dim ``sample_dim``.

    Args:
        sub_seq_len: the length of the windows.
        sample_dim: the (time) batch dim to crop; negative dims (default -1) work for any
            number of leading batch dims.
        mask_key: a bool entry shaped like the batch, True on each trajectory's valid
            steps (a prefix): windows then lie within the valid steps.

    It returns a new TensorDict (the input is left as it is) and cannot be put in an env:
    it runs on data, e.g. ``ReplayBuffer(transform=RandomCropTensorDict(8))``.
    """

    def __init__(
        self, sub_seq_len: int, sample_dim: int = -1, mask_key: NestedKey | None = None
    ) -> None:
        if isinstance(sub_seq_len, bool) or not isinstance(sub_seq_len, int) or sub_seq_len < 1:
            raise ValueError(f"sub_seq_len must be a positive int, found {sub_seq_len!r}")
        if isinstance(sample_dim, bool) or not isinstance(sample_dim, int):
            raise TypeError(f"sample_dim must be an int, found {sample_dim!r}")
        super().__init__()
        self.sub_seq_len = sub_seq_len
        self.sample_dim = sample_dim
        self.mask_key = None if mask_key is None else as_keys(mask_key, "mask_key")[0]

    def forward(self, td: TensorDictBase) -> TensorDictBase:
        """A random window of every trajectory in ``td``."""
        _check_td(td, self)
        return self._call(td)

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        nb = td.batch_dims
        dim = self.sample_dim + nb if self.sample_dim < 0 else self.sample_dim
        if not 0 <= dim < nb:
            raise ValueError(
                f"sample_dim={self.sample_dim} is not a batch dim of data with batch size "
                f"{tuple(td.batch_size)}"
            )
        moved = td if dim == nb - 1 else td.transpose(dim, nb - 1)
        T = moved.batch_size[-1]
        rows = moved.reshape(-1, T)
        if self.mask_key is not None:
            mask = self._get(td, self.mask_key)
            mask = mask.reshape(td.batch_size) if mask.numel() == td.batch_size.numel() else mask
            if dim != nb - 1:
                mask = mask.transpose(dim, nb - 1)
            length = mask.reshape(-1, T).sum(-1)
        else:
            length = torch.full((rows.batch_size[0],), T)
        short = length < self.sub_seq_len
        if bool(short.any()):
            raise ValueError(
                f"RandomCropTensorDict: trajectories of {int(length.min())} (valid) steps are "
                f"shorter than sub_seq_len={self.sub_seq_len}"
            )
        start = (torch.rand(length.shape) * (length - self.sub_seq_len + 1)).floor().long()
        idx = start.unsqueeze(-1) + torch.arange(self.sub_seq_len)
        picked = rows[torch.arange(rows.batch_size[0]).unsqueeze(-1), idx]
        out = picked.reshape(*moved.batch_size[:-1], self.sub_seq_len)
        return out if dim == nb - 1 else out.transpose(dim, nb - 1)

    def transform_output_spec(self, output_spec: Any) -> Any:
        """Raise: the transform crops data, not env outputs."""
        raise ValueError(
            "RandomCropTensorDict crops trajectories of data (replay-buffer samples); it "
            "cannot be put in an env"
        )

    def __repr__(self) -> str:
        return (
            f"RandomCropTensorDict(sub_seq_len={self.sub_seq_len}, sample_dim={self.sample_dim}, "
            f"mask_key={self.mask_key!r})"
        )
