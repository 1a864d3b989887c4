"""
SB3 users' code, unchanged but for the import: upstream checkpoints and policy classes, forward hooks, replaced
layers, plain-data noise on load, the global random generators, policy files read by upstream, clear load errors.
"""

import random

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import DDPG, SAC, TD3
from stable_baselines3.td3.policies import Actor as SB3Actor
from stable_baselines3.td3.policies import TD3Policy
from torch import nn

from sb3_ddpg_plus import DDPGPlus
from sb3_ddpg_plus.noise import ScheduledActionNoise
from sb3_ddpg_plus.policies import DDPGPlusPolicy
from tests.conftest import FAST

OBS = np.random.default_rng(0).uniform(-1, 1, size=(5, 3)).astype(np.float32)


@pytest.fixture(scope="module", params=[DDPG, TD3])
def upstream_file(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("upstream") / f"{request.param.__name__}.zip"
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("SB3_LOGDIR", str(path.parent / "sb3_logs"))
        model = request.param("MlpPolicy", "Pendulum-v1", seed=0, **FAST)
        model.learn(100)
        model.save(path)
    return request.param, path


def test_upstream_checkpoint_loads_predicts_and_trains_on(upstream_file):
    upstream_class, path = upstream_file
    upstream = upstream_class.load(path)
    model = DDPGPlus.load(path, env=gym.make("Pendulum-v1"))
    assert isinstance(model.policy, TD3Policy)  # the file's own policy class
    np.testing.assert_array_equal(model.predict(OBS, deterministic=True)[0], upstream.predict(OBS, deterministic=True)[0])
    assert model.policy_delay == upstream.policy_delay
    # Upstream's actor and critic compute what the hand-written path computes: it is used for them too
    assert model._fast_path() is not None and model._fast_path(acting=True) is not None
    before = [param.clone() for param in model.actor.parameters()]
    model.learn(200, reset_num_timesteps=False)
    assert model.num_timesteps == 300
    assert model._n_updates > 0
    assert any(not th.equal(a, b) for a, b in zip(before, model.actor.parameters(), strict=True))


class UserPolicy(TD3Policy):
    """A user's own TD3Policy subclass, as SB3's docs suggest for custom networks."""


@pytest.mark.parametrize("policy", [TD3Policy, UserPolicy])
def test_upstream_policy_classes(policy):
    model = DDPGPlus(policy, "Pendulum-v1", seed=0, **FAST)
    assert type(model.policy) is policy
    model.learn(150)
    assert model._n_updates > 0


def test_upstream_policy_class_refuses_our_policy_only_option():
    with pytest.raises(TypeError, match="critic_weight_decay"):
        DDPGPlus(TD3Policy, "Pendulum-v1", **(FAST | dict(policy_kwargs=dict(critic_weight_decay=0.01))))


def test_load_with_plain_data_noise(tmp_path):
    DDPGPlus("MlpPolicy", "Pendulum-v1", seed=0, **FAST).save(tmp_path / "model.zip")
    model = DDPGPlus.load(
        tmp_path / "model.zip",
        env=gym.make("Pendulum-v1"),
        action_noise={"type": "ornstein-uhlenbeck", "sigma": 0.5},
        param_noise={"initial_stddev": 0.1, "desired_action_stddev": 0.1},
    )
    assert isinstance(model.action_noise, ScheduledActionNoise)
    assert model.param_noise is not None
    model.learn(100)
    assert model.num_timesteps == 100
    # None removes the noise, as in the constructor
    assert DDPGPlus.load(tmp_path / "model.zip", action_noise=None).action_noise is None


def test_load_leaves_global_generators_alone_for_an_unseeded_model(tmp_path):
    DDPGPlus("MlpPolicy", "Pendulum-v1", **FAST).save(tmp_path / "model.zip")
    np.random.seed(123)
    random.seed(123)
    expected = (np.random.random(), random.random())
    np.random.seed(123)
    random.seed(123)
    DDPGPlus.load(tmp_path / "model.zip")
    # (torch's generator moves on, as with upstream: building the networks draws their initial weights)
    assert (np.random.random(), random.random()) == expected
    # Loading in a loop does not replay the same draws
    draws = []
    for _ in range(2):
        DDPGPlus.load(tmp_path / "model.zip")
        draws.append((np.random.random(), th.rand(1).item()))
    assert draws[0][0] != draws[1][0] and draws[0][1] != draws[1][1]


def test_load_reseeds_a_seeded_model_as_upstream(tmp_path):
    DDPGPlus("MlpPolicy", "Pendulum-v1", seed=7, **FAST).save(tmp_path / "ours.zip")
    DDPG("MlpPolicy", "Pendulum-v1", seed=7, **FAST).save(tmp_path / "upstream.zip")
    DDPG.load(tmp_path / "upstream.zip")
    expected = (np.random.random(), random.random(), th.rand(1).item())
    DDPGPlus.load(tmp_path / "ours.zip")
    assert (np.random.random(), random.random(), th.rand(1).item()) == expected


def test_exact_resume_restores_generators_on_request(tmp_path):
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", seed=7, **FAST)
    model.learn(60)
    model.save(tmp_path / "model.zip")
    expected = (np.random.random(), random.random(), th.rand(1).item())
    DDPGPlus.load(tmp_path / "model.zip", restore_rng_state=True)
    assert (np.random.random(), random.random(), th.rand(1).item()) == expected
    DDPG("MlpPolicy", "Pendulum-v1", **FAST).save(tmp_path / "upstream.zip")
    with pytest.raises(ValueError, match="no random generator states"):
        DDPGPlus.load(tmp_path / "upstream.zip", restore_rng_state=True)


def _count_calls(module: nn.Module) -> list[int]:
    calls = [0]

    def hook(*_):
        calls[0] += 1

    module.register_forward_hook(hook)
    return calls


def test_forward_hooks_on_inner_layers_run_in_predict_and_learn():
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", seed=0, **FAST)
    actor_calls = _count_calls(model.actor.mu[0])
    critic_calls = _count_calls(model.critic.qf0[0])
    target_calls = _count_calls(model.actor_target.mu[2])
    model.predict(OBS)
    assert actor_calls[0] == 1
    model.learn(80)  # 30 acting steps and 30 updates after the warm-up
    assert actor_calls[0] >= 1 + 30 + 30  # acting, and the actor loss
    assert critic_calls[0] >= 30 * 2  # critic loss and actor loss
    assert target_calls[0] >= 30
    assert model._fast_path() is None  # the modules are called while hooks exist


def test_backward_hook_on_inner_layer_runs():
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", seed=0, **FAST)
    calls = [0]
    model.critic.qf0[2].register_full_backward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    model.learn(60)
    assert calls[0] > 0


def test_hooks_removed_bring_the_fast_path_back():
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", seed=0, **FAST)
    handle = model.actor.mu[0].register_forward_pre_hook(lambda *_: None)
    assert model._fast_path(acting=True) is None
    handle.remove()
    assert model._fast_path(acting=True) is not None


def _act(model: DDPGPlus, obs: np.ndarray) -> np.ndarray:
    """The action learn() takes (no noise) from obs."""
    model._last_obs = obs
    model.num_timesteps = model.learning_starts
    return model._sample_action(model.learning_starts, None, n_envs=len(obs))[1]


def test_replaced_layer_is_used_when_acting_and_training():
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", seed=0, **FAST)
    _act(model, OBS)  # the fast path has read the layers
    new_layer, new_target_layer = nn.Linear(16, 1), nn.Linear(16, 1)
    model.actor.mu[4] = new_layer
    model.actor_target.mu[4] = new_target_layer
    model.actor.optimizer = th.optim.Adam(model.actor.parameters(), lr=1e-3)
    with th.no_grad():
        expected = model.actor(th.as_tensor(OBS)).numpy()
    np.testing.assert_allclose(_act(model, OBS), expected, atol=1e-6)
    np.testing.assert_allclose(model.predict(OBS, deterministic=True)[0], 2 * expected, atol=1e-5)
    # Training updates the new layer and moves its target towards it
    weight_before, target_before = new_layer.weight.clone(), new_target_layer.weight.clone()
    model.learn(80)
    assert not th.equal(new_layer.weight, weight_before)
    assert not th.equal(new_target_layer.weight, target_before)


def test_frozen_layer_stays_frozen():
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", seed=0, **FAST)
    frozen = model.actor.mu[0]
    frozen.requires_grad_(False)
    before = frozen.weight.clone()
    model.learn(100)
    assert th.equal(frozen.weight, before)
    assert model._n_updates > 0


def test_policy_file_is_read_by_upstream(tmp_path):
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", seed=0, **FAST)
    model.policy.save(tmp_path / "policy.pth")
    upstream_policy = TD3Policy.load(tmp_path / "policy.pth")
    np.testing.assert_array_equal(upstream_policy.predict(OBS)[0], model.predict(OBS)[0])
    model.actor.save(tmp_path / "actor.pth")
    np.testing.assert_array_equal(SB3Actor.load(tmp_path / "actor.pth").predict(OBS)[0], model.predict(OBS)[0])


def test_policy_file_with_our_options_is_ours_only(tmp_path):
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", seed=0, **{**FAST, "policy_kwargs": dict(critic_layer_norm=True)})
    model.policy.save(tmp_path / "policy.pth")
    with pytest.raises(TypeError, match="critic_layer_norm"):
        TD3Policy.load(tmp_path / "policy.pth")
    assert DDPGPlusPolicy.load(tmp_path / "policy.pth").critic_layer_norm


def test_load_of_another_algorithm_names_it(tmp_path):
    SAC("MlpPolicy", "Pendulum-v1", learning_starts=10, buffer_size=100, policy_kwargs=dict(net_arch=[8])).save(
        tmp_path / "sac.zip"
    )
    with pytest.raises(ValueError, match=r"sac\.zip.*SACPolicy.*SAC"):
        DDPGPlus.load(tmp_path / "sac.zip")


def test_load_with_mismatched_parameters_says_so(tmp_path):
    DDPGPlus("MlpPolicy", "Pendulum-v1", **FAST).save(tmp_path / "model.zip")
    with pytest.raises(ValueError, match="do not fit") as error:
        DDPGPlus.load(tmp_path / "model.zip", custom_objects={"policy_kwargs": {"net_arch": [8], "n_critics": 1}})
    assert "size mismatch" in str(error.value)
