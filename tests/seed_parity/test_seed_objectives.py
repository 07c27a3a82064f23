"""The seed tutorial's Objectives section, with torchrl replaced by streamrl."""

import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn


def test_seed_ddpg_loss_keys_and_shapes():
    # --- the seed's code, verbatim but for the package name ---
    from streamrl.objectives import DDPGLoss

    actor_module = nn.Linear(3, 1)
    actor = TensorDictModule(actor_module, in_keys=["observation"], out_keys=["action"])

    class ConcatModule(nn.Linear):
        def forward(self, obs, action):
            return super().forward(torch.cat([obs, action], -1))

    value_module = ConcatModule(4, 1)
    value = TensorDictModule(
        value_module, in_keys=["observation", "action"], out_keys=["state_action_value"]
    )
    loss_fn = DDPGLoss(actor, value)
    loss_fn.make_value_estimator(loss_fn.default_value_estimator, gamma=0.99)
    tensordict = TensorDict(
        {
            "observation": torch.randn(10, 3),
            "next": {
                "observation": torch.randn(10, 3),
                "reward": torch.randn(10, 1),
                "done": torch.zeros(10, 1, dtype=torch.bool),
            },
            "action": torch.randn(10, 1),
        },
        batch_size=[10],
        device="cpu",
    )
    loss_td = loss_fn(tensordict)
    print(loss_td)
    print(tensordict)
    # --- what the seed prints ---
    expected = {
        "loss_actor": (),
        "loss_value": (),
        "pred_value": (10,),
        "pred_value_max": (),
        "target_value": (10,),
        "target_value_max": (),
        "td_error": (10,),
    }
    assert set(loss_td.keys()) == set(expected)
    assert loss_td.batch_size == torch.Size([])
    for key, shape in expected.items():
        assert loss_td[key].shape == torch.Size(shape), key
        assert loss_td[key].dtype == torch.float32, key
    assert set(tensordict.keys()) == {"action", "next", "observation", "td_error"}
    assert set(tensordict["next"].keys()) == {"done", "observation", "reward"}
    assert tensordict["td_error"].shape == torch.Size([10])
    assert tensordict.batch_size == torch.Size([10])
    # the printed values are consistent with each other
    torch.testing.assert_close(
        loss_td["td_error"], (loss_td["pred_value"] - loss_td["target_value"]).abs()
    )
    torch.testing.assert_close(loss_td["pred_value_max"], loss_td["pred_value"].max())
    # and the losses train: both have gradients for their own network
    (loss_td["loss_actor"] + loss_td["loss_value"]).backward()
    assert actor_module.weight.grad is not None
    assert value_module.weight.grad is not None
