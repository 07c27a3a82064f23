"""A world model: a transition model followed by a reward model."""

from __future__ import annotations

from tensordict.nn import TensorDictModuleBase, TensorDictSequential

__all__ = ["WorldModelWrapper"]


class WorldModelWrapper(TensorDictSequential):
    """Run a transition model, then a reward model on the imagined state it wrote.

    Args:
        transition_model: a TensorDict module writing the next (imagined) world state.
        reward_model: a TensorDict module reading that state and writing a reward.

    >>> import torch
    >>> from torch import nn
    >>> from tensordict import TensorDict
    >>> from tensordict.nn import TensorDictModule
    >>> transition = TensorDictModule(nn.Linear(5, 4), ["state"], [("next", "state")])
    >>> reward = TensorDictModule(nn.Linear(4, 1), [("next", "state")], [("next", "reward")])
    >>> world = WorldModelWrapper(transition, reward)
    >>> world(TensorDict({"state": torch.randn(3, 5)}, [3]))["next", "reward"].shape
    torch.Size([3, 1])
    """

    def __init__(
        self, transition_model: TensorDictModuleBase, reward_model: TensorDictModuleBase
    ) -> None:
        for name, module in (("transition_model", transition_model),
                             ("reward_model", reward_model)):
            if not isinstance(module, TensorDictModuleBase):
                raise TypeError(
                    f"WorldModelWrapper expected {name} to be a TensorDict module, "
                    f"got {type(module).__name__}"
                )
        super().__init__(transition_model, reward_model)

    def get_transition_model_operator(self) -> TensorDictModuleBase:
        """The transition model."""
        return self.module[0]

    def get_reward_operator(self) -> TensorDictModuleBase:
        """The reward model."""
        return self.module[1]
