"""Record a Pendulum rollout to an mp4 file, the way TorchRL's recording docs show it."""

from torchrl.envs import GymEnv, TransformedEnv
from torchrl.record import CSVLogger, VideoRecorder

logger = CSVLogger(exp_name="pendulum_video", log_dir="logs", video_format="mp4")
env = TransformedEnv(
    GymEnv("Pendulum-v1", from_pixels=True, pixels_only=False),
    VideoRecorder(logger, tag="rollout", skip=1),
)
env.set_seed(0)
rollout = env.rollout(max_steps=40)
env.transform.dump()
env.close()
print("frames:", rollout["pixels"].shape[0] + 1)
