"""sb3_ddpg_plus: the best DDPG for Stable-Baselines3 users (``from sb3_ddpg_plus import DDPGPlus``)."""

from sb3_ddpg_plus.buffers import DDPGPlusReplayBuffer
from sb3_ddpg_plus.ddpg_plus import DDPGPlus
from sb3_ddpg_plus.noise import GaussianActionNoise, OUActionNoise, SigmaSchedule, make_action_noise
from sb3_ddpg_plus.param_noise import AdaptiveParamNoiseSpec, make_param_noise
from sb3_ddpg_plus.policies import CnnPolicy, DDPGPlusPolicy, MlpPolicy, MultiInputPolicy
from sb3_ddpg_plus.validation import DDPGPlusInputError

__version__ = "0.1.0"

__all__ = [
    "AdaptiveParamNoiseSpec",
    "CnnPolicy",
    "DDPGPlus",
    "DDPGPlusInputError",
    "DDPGPlusPolicy",
    "DDPGPlusReplayBuffer",
    "GaussianActionNoise",
    "MlpPolicy",
    "MultiInputPolicy",
    "OUActionNoise",
    "SigmaSchedule",
    "__version__",
    "make_action_noise",
    "make_param_noise",
]
