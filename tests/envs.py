"""Small environments for tests that need shapes Pendulum does not have."""

import gymnasium as gym
import numpy as np


class WideActionEnv(gym.Env):
    """
    Flat observations (5,) and six-dimensional actions: with a batch of 32 or more, the actor's output layer and the
    gradient of the action columns are skinny products (2-16 columns), which the speed paths compute transposed.
    """

    observation_space = gym.spaces.Box(-1.0, 1.0, (5,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (6,), np.float32)

    def __init__(self, episode_length: int = 50) -> None:
        self.episode_length = episode_length
        self._steps = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._steps = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self._steps += 1
        reward = -float(np.square(action - 0.3).sum())
        return self.observation_space.sample(), reward, False, self._steps >= self.episode_length, {}
