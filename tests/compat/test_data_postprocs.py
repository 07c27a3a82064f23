"""Compatibility with TorchRL 0.14's ``torchrl.data.postprocs``: ``DensifyReward`` importable
from ``streamrl.data.postprocs`` (and ``streamrl.data``), built with its documented keyword
arguments, and called on a batch.

Left out on purpose (see docs/torchrl_differences.md): ``DensifyReward``'s ``time_dim``.
"""

import torch
from tensordict import TensorDict

import streamrl.data as data
from streamrl.data import postprocs
from streamrl.data.postprocs import DensifyReward


def test_names_exported():
    assert "DensifyReward" in postprocs.__all__ and data.DensifyReward is DensifyReward


def test_densify_reward():
    td = TensorDict({"next": {"reward": torch.zeros(10, 1),
                              "done": torch.zeros(10, 1, dtype=torch.bool)}}, [10])
    td["next", "done"][[3, 7]] = True
    td["next", "reward"][3] = 3
    td["next", "reward"][7] = 7
    module = DensifyReward(reward_key="reward", done_key="done", reward_key_out=None,
                           discount=1.0)
    out = module(td)
    assert out["next", "reward"].reshape(-1).tolist() == [3.0] * 4 + [7.0] * 4 + [0.0] * 2
