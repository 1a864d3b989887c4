import math

import numpy as np
import pytest
from stable_baselines3.common.noise import NormalActionNoise, VectorizedActionNoise

from sb3_ddpg_plus import DDPGPlus, GaussianActionNoise, OUActionNoise, SigmaSchedule, make_action_noise
from sb3_ddpg_plus.noise import current_sigma
from tests.conftest import FAST


def test_gaussian_statistics():
    noise = GaussianActionNoise(mean=0.1, sigma=np.array([0.2, 0.5]))
    noise.seed(0)
    samples = np.array([noise() for _ in range(40_000)])
    assert samples.shape == (40_000, 2)
    np.testing.assert_allclose(samples.mean(axis=0), [0.1, 0.1], atol=0.01)
    np.testing.assert_allclose(samples.std(axis=0), [0.2, 0.5], rtol=0.02)
    # independent steps
    lag1 = np.corrcoef(samples[:-1, 0], samples[1:, 0])[0, 1]
    assert abs(lag1) < 0.02


def test_ou_statistics_match_analytic_values():
    theta, dt, sigma = 0.15, 0.05, 0.3
    noise = OUActionNoise(mean=0.0, sigma=sigma, theta=theta, dt=dt, initial_noise="stationary")
    noise.seed(1)
    samples = np.array([noise()[0] for _ in range(200_000)])
    stationary = sigma / math.sqrt(2 * theta - theta**2 * dt)
    assert noise.stationary_std()[0] == pytest.approx(stationary)
    assert samples.mean() == pytest.approx(0.0, abs=0.1 * stationary)
    assert samples.std() == pytest.approx(stationary, rel=0.05)
    lag1 = np.corrcoef(samples[:-1], samples[1:])[0, 1]
    assert lag1 == pytest.approx(1 - theta * dt, abs=0.005)


def test_ou_default_sigma_is_not_its_std():
    """With SB3's defaults (theta=0.15, dt=0.01) the stationary std is ~1.83 sigma, not sigma."""
    noise = OUActionNoise(mean=0.0, sigma=1.0)
    assert noise.stationary_std()[0] == pytest.approx(1.83, abs=0.01)


def test_ou_from_zero_after_reset():
    noise = OUActionNoise(mean=np.zeros(1), sigma=1.0, theta=0.15, dt=0.01)
    noise.seed(2)
    runs = []
    for _ in range(3000):
        noise.reset()
        runs.append([noise()[0] for _ in range(10)])
    std_after_10 = np.array(runs)[:, -1].std()
    # Var after k steps from 0: sigma^2 dt (1 - a^(2k)) / (1 - a^2), a = 1 - theta dt
    a = 1 - 0.15 * 0.01
    expected = math.sqrt(0.01 * (1 - a**20) / (1 - a**2))
    assert std_after_10 == pytest.approx(expected, rel=0.06)


def test_per_env_state_and_reset():
    noise = OUActionNoise(mean=0.0, sigma=0.5, n_envs=3)
    noise.seed(0)
    for _ in range(50):
        sample = noise()
    assert sample.shape == (3, 1)
    assert len(np.unique(sample)) == 3  # independent processes
    before = noise.noise_prev.copy()
    noise.reset(indices=[1])
    np.testing.assert_array_equal(noise.noise_prev[[0, 2]], before[[0, 2]])
    assert noise.noise_prev[1, 0] == 0.0


@pytest.mark.parametrize(
    ("schedule", "steps", "episodes", "expected"),
    [
        (dict(schedule_type="constant"), 1000, 10, 0.4),
        (dict(schedule_type="linear", final=0.1, duration=100), 50, 0, 0.25),
        (dict(schedule_type="linear", final=0.1, duration=100), 500, 0, 0.1),
        (dict(schedule_type="exponential", decay=0.99, final=0.005, unit="episode"), 0, 10, 0.4 * 0.99**10),
        (dict(schedule_type="exponential", decay=0.99, final=0.005, unit="episode"), 0, 10_000, 0.005),
        (dict(schedule_type="linear", final=0.0, duration=10, unit="episode"), 10**6, 5, 0.2),
    ],
)
def test_sigma_schedules(schedule, steps, episodes, expected):
    noise = GaussianActionNoise(mean=0.0, sigma=0.4, schedule=SigmaSchedule(**schedule))
    noise.set_progress(steps, episodes)
    assert noise.sigma[0] == pytest.approx(expected)


def test_schedule_counts_steps_and_episodes_standalone():
    noise = GaussianActionNoise(0.0, 1.0, schedule={"type": "linear", "final": 0.0, "duration": 10}, n_envs=2)
    for _ in range(3):
        noise()
    assert noise.num_steps == 6  # steps summed over environments, like model.num_timesteps
    noise.reset(indices=[0])
    assert noise.num_episodes == 1
    assert noise.sigma[0] == pytest.approx(0.4)


def test_decaying_sigma_during_training_is_logged(tmp_path):
    import csv

    from stable_baselines3.common.logger import configure

    noise = {
        "type": "normal",
        "sigma": 0.5,
        "schedule": {"type": "exponential", "decay": 0.9, "final": 0.05, "unit": "episode"},
    }
    import gymnasium as gym

    model = DDPGPlus("MlpPolicy", gym.make("Pendulum-v1", max_episode_steps=20), action_noise=noise, seed=0, **FAST)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(200, log_interval=1)
    assert model._episode_num == 10
    # The episode counter drives the schedule: 10 episodes ended
    assert current_sigma(model.action_noise) == pytest.approx(0.5 * 0.9**10, rel=1e-6)
    with open(tmp_path / "progress.csv") as handle:
        logged = [float(row["rollout/action_noise_sigma"]) for row in csv.DictReader(handle)]
    assert len(logged) == 10
    # logged at each episode end, after that episode was counted
    np.testing.assert_allclose(logged, 0.5 * 0.9 ** np.arange(1, 11), rtol=1e-6)


@pytest.mark.parametrize(
    ("config", "expected_type"),
    [
        ({"type": "normal", "sigma": 0.1}, GaussianActionNoise),
        (
            {"type": "ou", "sigma": [0.1, 0.2], "theta": 0.3, "dt": 0.1, "initial_noise": "stationary"},
            OUActionNoise,
        ),
        ({"type": "none"}, type(None)),
    ],
)
def test_plain_data_noise(config, expected_type):
    noise = make_action_noise(config, action_dim=2)
    assert isinstance(noise, expected_type)
    if noise is not None:
        assert noise().shape == (2,)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"type": "pink", "sigma": 0.1}, "Unknown action noise type"),
        ({"type": "normal"}, "needs `sigma`"),
        ({"type": "normal", "sigma": -0.1}, "sigma"),
        ({"type": "normal", "sigma": [0.1, 0.2, 0.3]}, "shape"),
        ({"type": "normal", "sigma": 0.1, "theta": 0.2}, "only applies"),
        ({"type": "normal", "sigma": 0.1, "colour": 1}, "Unknown action noise key"),
        ({"type": "normal", "sigma": 0.1, "schedule": {"type": "cosine"}}, "schedule type"),
        ({"type": "normal", "sigma": 0.1, "schedule": {"type": "linear", "final": 0.0}}, "duration"),
        ({"type": "normal", "sigma": 0.1, "schedule": {"type": "exponential", "decay": 1.5}}, "decay"),
        ({"type": "ou", "sigma": 0.1, "theta": -1}, "theta"),
        ({"type": "none", "sigma": 0.1}, "takes no other key"),
    ],
)
def test_bad_noise_configs(config, message):
    with pytest.raises(ValueError, match=message):
        make_action_noise(config, action_dim=2)


def test_sb3_noise_objects_still_work_and_are_vectorized():
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv

    env = DummyVecEnv([lambda: gym.make("Pendulum-v1")] * 2)
    model = DDPGPlus("MlpPolicy", env, action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)), seed=0, **FAST)
    model.learn(100)
    assert isinstance(model.action_noise, VectorizedActionNoise)


def test_own_noise_is_vectorized_natively():
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv

    env = DummyVecEnv([lambda: gym.make("Pendulum-v1")] * 3)
    model = DDPGPlus("MlpPolicy", env, action_noise={"type": "ou", "sigma": 0.2}, seed=0, **FAST)
    model.learn(90)
    assert isinstance(model.action_noise, OUActionNoise)
    assert model.action_noise.noise_prev.shape == (3, 1)
