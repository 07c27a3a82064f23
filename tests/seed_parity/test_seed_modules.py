"""The seed tutorial's Modules sections, with torchrl replaced by streamrl.

Each test runs the seed's code (verbatim but for the package name) and checks what the seed
prints: keys, shapes, dtypes, reprs of MLP / ConvNet and the values the seed shows.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

MLP_REPR = """MLP(
  (0): LazyLinear(in_features=0, out_features=32, bias=True)
  (1): ELU(alpha=1.0)
  (2): Linear(in_features=32, out_features=64, bias=True)
  (3): ELU(alpha=1.0)
  (4): Linear(in_features=64, out_features=4, bias=True)
)"""

CNN_REPR = """ConvNet(
  (0): LazyConv2d(0, 32, kernel_size=(8, 8), stride=(2, 2))
  (1): ELU(alpha=1.0)
  (2): Conv2d(32, 64, kernel_size=(4, 4), stride=(1, 1))
  (3): ELU(alpha=1.0)
  (4): SquashDims()
)"""

VALUE_MLP_REPR = """MLP(
            (0): LazyLinear(in_features=0, out_features=4, bias=True)
            (1): Tanh()
            (2): Linear(in_features=4, out_features=5, bias=True)
            (3): Tanh()
            (4): Linear(in_features=5, out_features=1, bias=True)
          )"""


def _shapes(td):
    return {k: tuple(v.shape) for k, v in td.items(include_nested=True, leaves_only=True)}


def test_seed_models(capsys):
    from streamrl.modules import MLP, ConvNet
    from streamrl.modules.models.utils import SquashDims

    net = MLP(num_cells=[32, 64], out_features=4, activation_class=nn.ELU)
    print(net)
    print(net(torch.randn(10, 3)).shape)
    cnn = ConvNet(
        num_cells=[32, 64],
        kernel_sizes=[8, 4],
        strides=[2, 1],
        aggregator_class=SquashDims,
    )
    print(cnn)
    print(cnn(torch.randn(10, 3, 32, 32)).shape)  # last tensor is squashed
    printed = capsys.readouterr().out
    assert printed == (
        f"{MLP_REPR}\ntorch.Size([10, 4])\n{CNN_REPR}\ntorch.Size([10, 6400])\n"
    )


def test_seed_tensordict_modules_sequences_and_functional(capsys):
    from tensordict.nn import TensorDictSequential

    from streamrl.modules import MLP

    tensordict = TensorDict({"key 1": torch.randn(10, 3)}, batch_size=[10])
    module = nn.Linear(3, 4)
    td_module = TensorDictModule(module, in_keys=["key 1"], out_keys=["key 2"])
    td_module(tensordict)
    assert _shapes(tensordict) == {"key 1": (10, 3), "key 2": (10, 4)}

    backbone_module = nn.Linear(5, 3)
    backbone = TensorDictModule(backbone_module, in_keys=["observation"], out_keys=["hidden"])
    actor_module = nn.Linear(3, 4)
    actor = TensorDictModule(actor_module, in_keys=["hidden"], out_keys=["action"])
    value_module = MLP(out_features=1, num_cells=[4, 5])
    value = TensorDictModule(value_module, in_keys=["hidden", "action"], out_keys=["value"])
    sequence = TensorDictSequential(backbone, actor, value)
    print(sequence)
    assert VALUE_MLP_REPR in capsys.readouterr().out
    assert sequence.in_keys == ["observation"]
    assert sequence.out_keys == ["hidden", "action", "value"]

    expected = {"action": (3, 4), "hidden": (3, 3), "observation": (3, 5), "value": (3, 1)}
    tensordict = TensorDict({"observation": torch.randn(3, 5)}, [3])
    backbone(tensordict)
    actor(tensordict)
    value(tensordict)
    assert _shapes(tensordict) == expected
    tensordict = TensorDict({"observation": torch.randn(3, 5)}, [3])
    sequence(tensordict)
    assert _shapes(tensordict) == expected

    # Functional Programming (Ensembling / Meta-RL)
    params = TensorDict.from_module(sequence)
    print("extracted params", params)
    assert _shapes(params) == {
        ("module", "0", "module", "bias"): (3,),
        ("module", "0", "module", "weight"): (3, 5),
        ("module", "1", "module", "bias"): (4,),
        ("module", "1", "module", "weight"): (4, 3),
        ("module", "2", "module", "0", "bias"): (4,),
        ("module", "2", "module", "0", "weight"): (4, 7),
        ("module", "2", "module", "2", "bias"): (5,),
        ("module", "2", "module", "2", "weight"): (5, 4),
        ("module", "2", "module", "4", "bias"): (1,),
        ("module", "2", "module", "4", "weight"): (1, 5),
    }
    with params.to_module(sequence):
        sequence(tensordict)

    # Using vectorized map for model ensembling
    from torch import vmap

    params_expand = params.expand(4)

    def exec_sequence(params, data):
        with params.to_module(sequence):
            return sequence(data)

    tensordict_exp = vmap(exec_sequence, (0, None))(params_expand, tensordict)
    print(tensordict_exp)
    assert tensordict_exp.batch_size == torch.Size([4, 3])
    assert _shapes(tensordict_exp) == {k: (4, *v) for k, v in expected.items()}
    for i in range(4):
        torch.testing.assert_close(tensordict_exp["value"][i], tensordict["value"])


def test_seed_specialized_classes():
    torch.manual_seed(0)
    from streamrl.data import BoundedTensorSpec
    from streamrl.modules import SafeModule

    spec = BoundedTensorSpec(-torch.ones(3), torch.ones(3))
    base_module = nn.Linear(5, 3)
    module = SafeModule(
        module=base_module, spec=spec, in_keys=["obs"], out_keys=["action"], safe=True
    )
    tensordict = TensorDict({"obs": torch.randn(5)}, batch_size=[])
    out = module(tensordict)["action"]
    torch.testing.assert_close(out, torch.tensor([-0.0137, 0.1524, -0.0641]), atol=1e-4, rtol=0)
    tensordict = TensorDict({"obs": torch.randn(5) * 100}, batch_size=[])
    out = module(tensordict)["action"]  # safe=True projects the result within the set
    assert out.tolist() == [-1.0, 1.0, -1.0]
    assert out.grad_fn is not None

    from streamrl.modules import Actor

    base_module = nn.Linear(5, 3)
    actor = Actor(base_module, in_keys=["obs"])
    tensordict = TensorDict({"obs": torch.randn(5)}, batch_size=[])
    actor(tensordict)  # action is the default value
    assert _shapes(tensordict) == {"obs": (5,), "action": (3,)}


def test_seed_probabilistic_modules(capsys):
    from tensordict.nn import (
        ProbabilisticTensorDictModule,
        ProbabilisticTensorDictSequential,
    )

    # Probabilistic modules
    from streamrl.modules import NormalParamExtractor, TanhNormal

    td = TensorDict({"input": torch.randn(3, 5)}, [3])
    net = nn.Sequential(nn.Linear(5, 4), NormalParamExtractor())  # splits the output in loc and scale
    module = TensorDictModule(net, in_keys=["input"], out_keys=["loc", "scale"])
    td_module = ProbabilisticTensorDictSequential(
        module,
        ProbabilisticTensorDictModule(
            in_keys=["loc", "scale"],
            out_keys=["action"],
            distribution_class=TanhNormal,
            return_log_prob=False,
        ),
    )
    td_module(td)
    print(td)
    assert _shapes(td) == {"action": (3, 2), "input": (3, 5), "loc": (3, 2), "scale": (3, 2)}

    # returning the log-probability
    td = TensorDict({"input": torch.randn(3, 5)}, [3])
    td_module = ProbabilisticTensorDictSequential(
        module,
        ProbabilisticTensorDictModule(
            in_keys=["loc", "scale"],
            out_keys=["action"],
            distribution_class=TanhNormal,
            return_log_prob=True,
        ),
    )
    td_module(td)
    print(td)
    # The seed printed "sample_log_prob": tensordict's default in 2022. Today's tensordict
    # (and TorchRL 0.14) write "action_log_prob", and importing streamrl does not change
    # tensordict's global setting (docs/torchrl_differences.md, "The seed tutorial").
    assert _shapes(td) == {
        "action": (3, 2),
        "input": (3, 5),
        "loc": (3, 2),
        "action_log_prob": (3,),
        "scale": (3, 2),
    }
    assert td["action_log_prob"].dtype == torch.float32

    # Sampling vs mode / mean
    from streamrl.envs.utils import ExplorationType, set_exploration_type

    td = TensorDict({"input": torch.randn(3, 5)}, [3])
    torch.manual_seed(0)
    with set_exploration_type(ExplorationType.RANDOM):
        td_module(td)
        print("random:", td["action"])
        random_action = td["action"]
    with set_exploration_type(ExplorationType.MODE):
        td_module(td)
        print("mode:", td["action"])
        mode_action = td["action"]
    with set_exploration_type(ExplorationType.MODE):
        td_module(td)
        print("mean:", td["action"])
        mean_action = td["action"]
    printed = capsys.readouterr().out
    # as in the seed: the two MODE prints are identical, the random one differs
    mode_text = printed.split("mode:")[1].split("mean:")[0].strip()
    mean_text = printed.split("mean:")[1].strip()
    assert mode_text == mean_text
    assert torch.equal(mode_action, mean_action)
    assert not torch.equal(random_action, mode_action)
    assert "grad_fn=<_SafeTanhBackward>" in mode_text
    torch.testing.assert_close(mode_action, torch.tanh(td["loc"]))
    assert (random_action.abs() < 1).all()


def test_seed_using_environments_and_modules():
    from streamrl.envs.libs.gym import GymEnv
    from streamrl.envs.utils import step_mdp
    from streamrl.modules import SafeModule

    env = GymEnv("Pendulum-v1")
    action_spec = env.action_spec
    actor_module = nn.Linear(3, 1)
    actor = SafeModule(
        actor_module, spec=action_spec, in_keys=["observation"], out_keys=["action"]
    )
    torch.manual_seed(0)
    env.set_seed(0)
    max_steps = 100
    tensordict = env.reset()
    tensordicts = TensorDict({}, [max_steps])
    for i in range(max_steps):
        actor(tensordict)
        tensordicts[i] = env.step(tensordict)
        if tensordict["done"].any():
            break
        tensordict = step_mdp(tensordict)  # roughly equivalent to obs = next_obs
    tensordicts_prealloc = tensordicts.clone()
    print("total steps:", i)
    print(tensordicts)
    assert i == 99
    assert _shapes(tensordicts) == {
        "action": (100, 1),
        "done": (100, 1),
        ("next", "done"): (100, 1),
        ("next", "observation"): (100, 3),
        ("next", "reward"): (100, 1),
        ("next", "terminated"): (100, 1),
        ("next", "truncated"): (100, 1),
        "observation": (100, 3),
        "terminated": (100, 1),
        "truncated": (100, 1),
    }

    # equivalent
    torch.manual_seed(0)
    env.set_seed(0)
    tensordict = env.reset()
    tensordicts = []
    for _ in range(max_steps):
        actor(tensordict)
        tensordicts.append(env.step(tensordict))
        if tensordict["done"].any():
            break
        tensordict = step_mdp(tensordict)  # roughly equivalent to obs = next_obs
    tensordicts_stack = torch.stack(tensordicts, 0)
    assert (tensordicts_stack == tensordicts_prealloc).all()

    torch.manual_seed(0)
    env.set_seed(0)
    tensordict_rollout = env.rollout(policy=actor, max_steps=max_steps)
    assert (tensordict_rollout == tensordicts_prealloc).all()
    env.close()
