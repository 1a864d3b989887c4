import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.envs import FakeImageEnv, SimpleMultiObsEnv
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_ddpg_plus import DDPGPlus, DDPGPlusReplayBuffer
from tests.conftest import FAST


@pytest.mark.parametrize("n_envs", [1, 2])
@pytest.mark.parametrize(
    "noise",
    [
        None,
        {"type": "normal", "sigma": 0.1},
        {"type": "ornstein-uhlenbeck", "sigma": 0.3},
        {"type": "normal", "sigma": 0.3, "schedule": {"type": "exponential", "decay": 0.99, "final": 0.01, "unit": "episode"}},
    ],
)
def test_run_noise_and_envs(n_envs, noise):
    env = DummyVecEnv([lambda: gym.make("Pendulum-v1")] * n_envs)
    model = DDPGPlus("MlpPolicy", env, action_noise=noise, seed=0, **FAST)
    model.learn(200)
    assert model.num_timesteps >= 200
    assert model._n_updates > 0
    assert isinstance(model.replay_buffer, DDPGPlusReplayBuffer)


@pytest.mark.parametrize("n_envs", [1, 2])
@pytest.mark.parametrize("optimize_memory_usage", [False, True])
def test_run_param_noise(n_envs, optimize_memory_usage):
    env = DummyVecEnv([lambda: gym.make("Pendulum-v1", max_episode_steps=50)] * n_envs)
    model = DDPGPlus(
        "MlpPolicy",
        env,
        param_noise={"initial_stddev": 0.1, "desired_action_stddev": 0.1},
        param_noise_adaption_interval=5,
        action_noise={"type": "normal", "sigma": 0.05},
        optimize_memory_usage=optimize_memory_usage,
        seed=0,
        **FAST,
    )
    model.learn(200)
    assert model.policy.actor_layer_norm  # layer norm is on by default with parameter noise
    assert len(model.param_noise_exploration.perturbed_actors) == n_envs


@pytest.mark.parametrize("n_steps", [1, 3])
@pytest.mark.parametrize("optimize_memory_usage", [False, True])
def test_run_n_steps_and_memory(n_steps, optimize_memory_usage):
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", n_steps=n_steps, optimize_memory_usage=optimize_memory_usage, seed=0, **FAST)
    model.learn(150)
    assert model.replay_buffer.n_steps == n_steps


def test_run_td3_options():
    model = DDPGPlus(
        "MlpPolicy",
        "Pendulum-v1",
        policy_delay=2,
        target_policy_noise=0.2,
        target_noise_clip=0.5,
        seed=0,
        **(FAST | dict(policy_kwargs=dict(net_arch=[16, 16], n_critics=2))),
    )
    model.learn(150)
    assert len(model.critic.q_networks) == 2
    # The actor is updated every other critic update
    actor_param = next(model.actor.parameters())
    critic_param = next(model.critic.parameters())
    assert int(model.critic.optimizer.state[critic_param]["step"]) == model._n_updates
    assert int(model.actor.optimizer.state[actor_param]["step"]) == model._n_updates // 2


def test_run_separate_learning_rates_and_weight_decay():
    model = DDPGPlus(
        "MlpPolicy",
        "Pendulum-v1",
        actor_learning_rate=1e-4,
        critic_learning_rate=lambda progress: 1e-3 * (0.5 + 0.5 * progress),
        seed=0,
        **(FAST | dict(policy_kwargs=dict(net_arch=[16, 16], critic_weight_decay=1e-2))),
    )
    model.learn(150)
    assert model.actor.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)
    critic_lr = model.critic.optimizer.param_groups[0]["lr"]
    assert 5e-4 <= critic_lr < 6e-4  # the critic's own schedule decayed to its end value
    decays = sorted(group["weight_decay"] for group in model.critic.optimizer.param_groups)
    assert decays == [0.0, 1e-2]  # Linear weights decayed, biases not
    assert all(group.get("weight_decay", 0.0) == 0.0 for group in model.actor.optimizer.param_groups)


@pytest.mark.parametrize("train_freq", [(2, "step"), (1, "episode")])
def test_run_train_freq(train_freq):
    env = gym.make("Pendulum-v1", max_episode_steps=40)
    model = DDPGPlus("MlpPolicy", env, train_freq=train_freq, gradient_steps=-1, seed=0, **FAST)
    model.learn(150)
    assert model._n_updates > 0


def test_run_dict_observations():
    env = SimpleMultiObsEnv(random_start=True, discrete_actions=False)
    model = DDPGPlus("MultiInputPolicy", env, seed=0, n_steps=2, **FAST)
    model.learn(120)
    sample = model.replay_buffer.sample(4)
    assert set(sample.observations) == set(env.observation_space.spaces)


@pytest.mark.parametrize("share_features_extractor", [False, True])
def test_run_images_cnn(share_features_extractor):
    env = FakeImageEnv(screen_height=36, screen_width=36, n_channels=1, discrete=False)
    model = DDPGPlus(
        "CnnPolicy",
        env,
        learning_starts=20,
        batch_size=8,
        buffer_size=200,
        optimize_memory_usage=True,
        policy_kwargs=dict(
            net_arch=[16], features_extractor_kwargs=dict(features_dim=16), share_features_extractor=share_features_extractor
        ),
        seed=0,
    )
    model.learn(60)
    assert model.replay_buffer._obs[""].dtype == np.uint8  # images stay uint8 in the buffer


def test_run_progress_bar_and_callback():
    from stable_baselines3.common.callbacks import BaseCallback

    class CountSteps(BaseCallback):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def _on_step(self) -> bool:
            self.calls += 1
            return self.calls < 80  # stops training early

    callback = CountSteps()
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", seed=0, **FAST)
    model.learn(500, callback=callback, progress_bar=True)
    assert callback.calls == 80
    assert model.num_timesteps == 80


def test_learn_twice_continues_buffer_and_counters():
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", optimize_memory_usage=True, seed=0, **FAST)
    model.learn(100)
    model.learn(100, reset_num_timesteps=False)
    assert model.num_timesteps == 200
    model.learn(60)  # resets the env: the open episode in the buffer is closed as truncated, not lost
    assert model.replay_buffer.size() >= 260


def test_predict_shapes_and_bounds():
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", seed=0, **FAST)
    obs = np.zeros((5, 3), dtype=np.float32)
    actions, _ = model.predict(obs)
    assert actions.shape == (5, 1)
    assert np.all(np.abs(actions) <= 2.0)
    single, _ = model.predict(obs[0])
    assert single.shape == (1,)


def test_train_with_zero_gradient_steps_is_a_no_op():
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", seed=0, **FAST)
    model.learn(100)
    n_updates = model._n_updates
    model.train(gradient_steps=0, batch_size=8)
    assert model._n_updates == n_updates
