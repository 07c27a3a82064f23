"""DeviceCastTransform and PinMemoryTransform: whole and per-key casts, the env's device, the
action path back to the env's device, specs; pinning needs an accelerator (CUDA cases run
where one is present)."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from transform_contract import TransformContractTests

from streamrl.envs.libs.gym import GymEnv
from streamrl.envs.transforms import DeviceCastTransform, PinMemoryTransform, TransformedEnv

CPU0 = torch.device("cpu", 0)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_whole_cast_moves_outputs_specs_and_the_env_device():
    env = TransformedEnv(GymEnv("Pendulum-v1", device="cpu"), DeviceCastTransform("cpu:0"))
    assert env.base_env.device == torch.device("cpu")
    assert env.device == CPU0
    assert env.observation_spec["observation"].device == CPU0
    assert env.action_spec.device == CPU0
    td = env.reset()
    assert td.device == CPU0
    out = env.rand_step(td)
    assert out["next"].device == CPU0
    # the action path returns step inputs to the env's device (learnt from the parent)
    t = env.transform[0]
    assert t.orig_device == torch.device("cpu")
    assert t.inv(TensorDict({"action": torch.zeros(1)}, [], device=CPU0)).device == torch.device(
        "cpu"
    )
    env.close()


def test_keyed_cast_moves_only_its_entries(counting_env):
    t = DeviceCastTransform("cpu:0", "cpu", in_keys=["observation"], out_keys=["obs_dev"],
                            in_keys_inv=["action"], out_keys_inv=["action_dev"])
    env = TransformedEnv(counting_env(), t)
    assert env.device is None  # data on two devices
    assert env.observation_spec["obs_dev"].device == CPU0
    assert env.observation_spec["observation"].device != CPU0
    assert list(env.full_action_spec.keys()) == ["action_dev"]
    td = env.reset()
    assert td.device is None and "obs_dev" in td.keys()
    td["action_dev"] = torch.tensor([0.5])
    env.step(td)
    assert env.base_env.last_action.tolist() == [0.5]


def test_without_an_env_or_orig_device_the_action_path_leaves_data_alone():
    td = TensorDict({"action": torch.zeros(1)}, [], device=CPU0)
    assert DeviceCastTransform("cpu").inv(td).device == CPU0
    assert DeviceCastTransform("cpu:0", "cpu").inv(td).device == torch.device("cpu")


def test_bad_input():
    with pytest.raises(ValueError, match="needs a device"):
        DeviceCastTransform(None)
    with pytest.raises(ValueError, match="device or its name"):
        DeviceCastTransform("nowhere")
    with pytest.raises(ValueError, match="orig_device"):
        DeviceCastTransform("cpu", orig_device=3.5)


@pytest.mark.skipif(torch.accelerator.is_available(), reason="pins where an accelerator exists")
def test_pin_memory_without_an_accelerator_raises(counting_env):
    env = TransformedEnv(counting_env(), PinMemoryTransform())
    with pytest.raises(RuntimeError, match="needs an accelerator"):
        env.reset()


@needs_cuda
def test_pin_memory_pins_outputs(counting_env):
    env = TransformedEnv(counting_env(), PinMemoryTransform())
    td = env.reset()
    assert td["observation"].is_pinned()
    assert env.rand_step(td)["next", "observation"].is_pinned()


@needs_cuda
def test_cast_to_cuda_and_back(counting_env):
    env = TransformedEnv(counting_env(), DeviceCastTransform("cuda", "cpu"))
    td = env.reset()
    assert td["observation"].is_cuda and env.action_spec.device.type == "cuda"
    td["action"] = torch.tensor([0.25], device="cuda")
    out = env.step(td)
    assert out["next", "observation"].is_cuda
    assert env.base_env.last_action.device.type == "cpu"


class TestDeviceCastContract(TransformContractTests):
    def make_transform(self):
        return DeviceCastTransform("cpu:0")

    def test_outside_parallel_env(self):
        from transform_test_envs import CountingEnv

        from streamrl.envs import ParallelEnv

        env = TransformedEnv(
            ParallelEnv(2, lambda: CountingEnv(max_count=3), mp_start_method="fork"),
            self.make_transform(),
        )
        self._check(env)


class TestDeviceCastKeysContract(TestDeviceCastContract):
    def make_transform(self):
        return DeviceCastTransform("cpu:0", in_keys=["observation"], in_keys_inv=["action"])


@needs_cuda
class TestPinMemoryContract(TransformContractTests):
    def make_transform(self):
        return PinMemoryTransform()
