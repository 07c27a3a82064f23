"""TaskEmbedding, MultiHead and TaskwiseModule: each row gets its own task's embedding, head
or parameters (checked against per-row references), gradients reach only the heads used, ids
and task parameters are checked."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule, TensorDictSequential

from streamrl.modules import MLP, MultiHead, TaskEmbedding, TaskwiseModule


def test_the_embedding_is_a_row_per_task_for_both_id_shapes():
    torch.manual_seed(0)
    embed = TaskEmbedding(3, 5)
    ids = torch.tensor([[2], [0], [2]])
    out = embed(ids)
    assert out.shape == (3, 5)
    assert torch.equal(out[0], embed.embedding.weight[2]) and torch.equal(out[0], out[2])
    assert torch.equal(embed(ids.squeeze(-1)), out)
    assert embed(torch.zeros(4, 7, 1, dtype=torch.int64)).shape == (4, 7, 5)


def test_each_row_gets_its_tasks_head():
    torch.manual_seed(0)
    heads = MultiHead(4, 6, 3)
    x = torch.randn(2, 5, 6)
    ids = torch.randint(0, 4, (2, 5, 1))
    out = heads(x, ids)
    assert out.shape == (2, 5, 3)
    for b in range(2):
        for t in range(5):
            k = int(ids[b, t])
            ref = torch.nn.functional.linear(x[b, t], heads.weight[k], heads.bias[k])
            torch.testing.assert_close(out[b, t], ref)


def test_gradients_reach_only_the_heads_used():
    torch.manual_seed(0)
    heads = MultiHead(3, 4, 2)
    heads(torch.randn(6, 4), torch.tensor([0, 2, 0, 2, 2, 0])).sum().backward()
    assert heads.weight.grad[1].abs().sum() == 0 and heads.bias.grad[1].abs().sum() == 0
    assert heads.weight.grad[0].abs().sum() > 0 and heads.weight.grad[2].abs().sum() > 0


def test_heads_start_as_linear_layers_do():
    torch.manual_seed(0)
    heads = MultiHead(2, 100, 50)
    bound = 1 / 10
    assert heads.weight.abs().max() <= bound and heads.bias.abs().max() <= bound
    assert not torch.equal(heads.weight[0], heads.weight[1])


def test_a_task_conditioned_policy_reads_the_task_from_the_tensordict():
    torch.manual_seed(0)
    policy = TensorDictSequential(
        TensorDictModule(TaskEmbedding(2, 4), [("task", "id")], ["task_embedding"]),
        TensorDictModule(MLP(in_features=7, out_features=8, num_cells=[16]),
                         ["observation", "task_embedding"], ["hidden"]),
        TensorDictModule(MultiHead(2, 8, 1), ["hidden", ("task", "id")], ["action"]))
    td = TensorDict({"observation": torch.randn(4, 3),
                     "task": {"id": torch.tensor([[0], [1], [0], [1]])}}, [4])
    out = policy(td)
    assert out["action"].shape == (4, 1)
    same_obs = td.clone()
    same_obs["observation"] = td["observation"][:1].expand(4, 3)
    acts = policy(same_obs)["action"].squeeze(-1)
    assert acts[0] == acts[2] and acts[0] != acts[1]  # the task changes the action


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="TaskEmbedding: num_tasks must be an int >= 1, found 0"):
        TaskEmbedding(0, 3)
    with pytest.raises(ValueError, match="MultiHead: out_features must be an int >= 1"):
        MultiHead(2, 3, 0)
    heads = MultiHead(2, 3, 1)
    with pytest.raises(IndexError, match=r"task ids must be in \[0, 2\), found 0 .. 2"):
        heads(torch.zeros(2, 3), torch.tensor([0, 2]))
    with pytest.raises(TypeError, match=r"task ids must be integers, found torch\.float32"):
        heads(torch.zeros(2, 3), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"expected x \[\*batch, 3\] and task ids \[\*batch\] "
                                         r"or \[\*batch, 1\], found x \[2, 4\] and ids \[2\]"):
        heads(torch.zeros(2, 4), torch.tensor([0, 1]))
    with pytest.raises(IndexError, match=r"TaskEmbedding: task ids must be in \[0, 2\)"):
        TaskEmbedding(2, 3)(torch.tensor([[-1]]))


def _gaussian_net():
    torch.manual_seed(0)
    from streamrl.modules import AddStateIndependentNormalScale
    return torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2),
                               AddStateIndependentNormalScale(2))


def test_taskwise_rows_run_with_their_tasks_parameters():
    net = _gaussian_net()
    taskwise = TaskwiseModule(net)
    x = torch.randn(6, 2)
    torch.testing.assert_close(taskwise(x), net(x))  # no task parameters: the module
    params = TensorDict.from_module(net).expand(3).clone()
    params.apply_(lambda t: t + torch.randn_like(t))
    taskwise.task_params = params
    loc, scale = taskwise(x)
    for k in range(3):  # rows 2k, 2k+1 are task k's
        with params[k].to_module(net):
            ref_loc, ref_scale = net(x[2 * k:2 * k + 2])
        torch.testing.assert_close(loc[2 * k:2 * k + 2], ref_loc)
        torch.testing.assert_close(scale[2 * k:2 * k + 2], ref_scale)
    assert all(p.grad is None for p in net.parameters())
    taskwise.task_params = None
    torch.testing.assert_close(taskwise(x)[0], net(x)[0])


def test_taskwise_acts_in_a_probabilistic_actor():
    from streamrl.modules import IndependentNormal, ProbabilisticActor
    net = _gaussian_net()
    taskwise = TaskwiseModule(net)
    actor = ProbabilisticActor(TensorDictModule(taskwise, ["observation"], ["loc", "scale"]),
                               in_keys=["loc", "scale"], distribution_class=IndependentNormal)
    params = TensorDict.from_module(net).expand(2).clone()
    params["2", "bias"][1] = 50.0
    taskwise.task_params = params
    td = actor(TensorDict({"observation": torch.zeros(4, 2)}, [4]))
    torch.testing.assert_close(td["loc"][2:] - td["loc"][:2], params["2", "bias"][1]
                               - params["2", "bias"][0] + torch.zeros(2, 2))
    assert td["action"].shape == (4, 2)


def test_taskwise_bad_input_is_named():
    net = _gaussian_net()
    taskwise = TaskwiseModule(net)
    with pytest.raises(TypeError, match=r"TaskwiseModule wraps an nn.Module, found str"):
        TaskwiseModule("net")
    with pytest.raises(ValueError, match=r"leading task dim or None, found batch size \[\]"):
        taskwise.task_params = TensorDict.from_module(net)
    with pytest.raises(KeyError, match=r"'head.weight' is not a parameter of Sequential"):
        taskwise.task_params = TensorDict({"head": {"weight": torch.zeros(2, 2, 8)}}, [2])
    with pytest.raises(ValueError, match=r"'0.weight' must be \[tasks, \*\[8, 2\]\], found "
                                         r"\[2, 2, 2\]"):
        taskwise.task_params = TensorDict({"0": {"weight": torch.zeros(2, 2, 2)}}, [2])
    taskwise.task_params = TensorDict.from_module(net).expand(4).clone()
    with pytest.raises(ValueError, match=r"split into 4 equal task groups, found shapes "
                                         r"\[\[6, 2\]\]"):
        taskwise(torch.zeros(6, 2))
