"""MultiStep is an nn.Module, as TorchRL's (scripts call .to(device) on it)."""

import torch
from tensordict import TensorDict
from torch import nn

from streamrl.data.postprocs import MultiStep


def test_multistep_is_a_module_and_to_keeps_it_working():
    ms = MultiStep(gamma=0.5, n_steps=2)
    assert isinstance(ms, nn.Module) and ms.to("cpu") is ms
    batch = TensorDict({"observation": torch.arange(3.0)[:, None], "next": {
        "observation": torch.arange(1.0, 4.0)[:, None], "reward": torch.ones(3, 1),
        "done": torch.zeros(3, 1, dtype=torch.bool)}}, [3])
    assert ms(batch)["next", "reward"].reshape(-1).tolist() == [1.5, 1.5, 1.0]
    assert list(ms.parameters()) == [] and ms.state_dict() == {}
