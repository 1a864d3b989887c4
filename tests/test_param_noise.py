import copy

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv
from torch import nn

from sb3_ddpg_plus import AdaptiveParamNoiseSpec, DDPGPlus, make_param_noise
from sb3_ddpg_plus.param_noise import action_distance, check_perturbable, make_perturbed_copy, perturb, perturbable_parameters
from tests.conftest import FAST

PARAM_NOISE = {"initial_stddev": 0.1, "desired_action_stddev": 0.1}


def test_spec_adapts_in_the_right_direction():
    spec = AdaptiveParamNoiseSpec(initial_stddev=0.1, desired_action_stddev=0.2, adoption_coefficient=1.01)
    spec.adapt(0.5)  # too far: shrink
    assert spec.current_stddev == pytest.approx(0.1 / 1.01)
    spec.adapt(0.05)  # too close: grow
    spec.adapt(0.05)
    assert spec.current_stddev == pytest.approx(0.1 * 1.01)


def test_spec_desired_distance_schedule():
    spec = AdaptiveParamNoiseSpec(0.2, 0.2, schedule={"type": "linear", "final": 0.05, "duration": 100})
    spec.num_steps = 50
    assert spec.desired_action_stddev == pytest.approx(0.125)


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"initial_stddev": -0.1}, ValueError),
        ({"desired_action_stddev": 0.0}, ValueError),
        ({"adoption_coefficient": 1.0}, ValueError),
        ({"stddev": 0.1}, ValueError),
        ("0.1", TypeError),
    ],
)
def test_bad_param_noise_specs(config, error):
    with pytest.raises(error):
        make_param_noise(config)


def _actor(layer_norm=True):
    model = DDPGPlus(
        "MlpPolicy",
        "Pendulum-v1",
        policy_kwargs=dict(net_arch=[64, 64], actor_layer_norm=layer_norm),
        seed=0,
        **{k: v for k, v in FAST.items() if k != "policy_kwargs"},
    )
    return model


def test_layer_norm_parameters_are_copied_not_perturbed():
    model = _actor(layer_norm=True)
    actor = model.actor
    # make the LayerNorm parameters distinguishable from their defaults
    with th.no_grad():
        for module in actor.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    perturbed = make_perturbed_copy(actor)
    perturb(actor, perturbed, stddev=0.5, seed=1)
    for (name, param), (_, new) in zip(actor.named_parameters(), perturbed.named_parameters(), strict=True):
        module = actor.get_submodule(name.rsplit(".", 1)[0])
        if isinstance(module, nn.LayerNorm):
            assert th.equal(param, new), name
        else:
            assert not th.equal(param, new), name  # every Linear weight and bias, output layer included
    assert len(perturbable_parameters(actor)) == 6
    assert not any(p.requires_grad for p in perturbed.parameters())


def test_same_seed_same_perturbation_and_source_untouched():
    actor = _actor().actor
    snapshot = copy.deepcopy(actor.state_dict())
    first, second = make_perturbed_copy(actor), make_perturbed_copy(actor)
    perturb(actor, first, 0.3, seed=7)
    perturb(actor, second, 0.3, seed=7)
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert th.equal(a, b)
    for key, value in actor.state_dict().items():
        assert th.equal(value, snapshot[key])


def test_repeated_adaptation_reaches_desired_distance():
    """On a fixed actor, adaptation settles the measured distance within 20% of the desired one."""
    actor = _actor().actor
    actor.set_training_mode(False)
    observations = th.as_tensor(np.random.default_rng(0).uniform(-1, 1, size=(256, 3)), dtype=th.float32)
    spec = AdaptiveParamNoiseSpec(initial_stddev=1e-3, desired_action_stddev=0.2)
    scratch = make_perturbed_copy(actor)
    distances = []
    for seed in range(1500):
        perturb(actor, scratch, spec.current_stddev, seed)
        distance = action_distance(actor, scratch, observations)
        spec.adapt(distance)
        distances.append(distance)
    settled = np.mean(distances[-300:])
    assert abs(settled - 0.2) / 0.2 < 0.2
    assert spec.current_stddev > 1e-3  # it grew from a far too small start


def test_training_with_param_noise_adapts_and_logs(tmp_path):
    from stable_baselines3.common.logger import configure

    model = DDPGPlus("MlpPolicy", "Pendulum-v1", param_noise=PARAM_NOISE, param_noise_adaption_interval=10, seed=0, **FAST)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(400, log_interval=1)
    import csv

    with open(tmp_path / "progress.csv") as handle:
        rows = list(csv.DictReader(handle))
    distances = [float(r["rollout/param_noise_distance"]) for r in rows if r.get("rollout/param_noise_distance")]
    stds = [float(r["rollout/param_noise_std"]) for r in rows if r.get("rollout/param_noise_std")]
    assert distances and stds
    assert model.param_noise.current_stddev != 0.1  # it adapted
    assert "train/mean_q" in rows[-1]


def test_perturbations_are_per_env_and_resampled_at_episode_end():
    env = DummyVecEnv([lambda: gym.make("Pendulum-v1", max_episode_steps=30)] * 2)
    model = DDPGPlus("MlpPolicy", env, param_noise=PARAM_NOISE, seed=0, **FAST)
    model.learn(60)
    first, second = (next(iter(a.parameters())).clone() for a in model.param_noise_exploration.perturbed_actors)
    assert not th.equal(first, second)  # each environment explores with its own perturbation
    seeds_before = model.param_noise_exploration.seeds.copy()
    model.learn(60, reset_num_timesteps=False)  # both episodes end again
    assert np.all(model.param_noise_exploration.seeds != seeds_before)


def test_targets_and_trained_actor_never_perturbed():
    model = DDPGPlus(
        "MlpPolicy",
        "Pendulum-v1",
        param_noise=PARAM_NOISE,
        seed=0,
        learning_starts=1000,
        **{k: v for k, v in FAST.items() if k != "learning_starts"},
    )
    # learning never starts: the only thing that could change the networks is the noise
    actor_state = copy.deepcopy(model.actor.state_dict())
    target_state = copy.deepcopy(model.actor_target.state_dict())
    model.learn(300)
    model.param_noise_exploration.start(model.actor, n_envs=1, new_episodes=True)
    model.param_noise_exploration.resample(model.actor, np.array([0]))
    for key, value in model.actor.state_dict().items():
        assert th.equal(value, actor_state[key])
    for key, value in model.actor_target.state_dict().items():
        assert th.equal(value, target_state[key])


def test_predict_and_evaluation_are_noise_free():
    model = DDPGPlus(
        "MlpPolicy",
        "Pendulum-v1",
        param_noise={"initial_stddev": 1.0, "desired_action_stddev": 1.0},
        action_noise={"type": "normal", "sigma": 0.5},
        seed=0,
        **FAST,
    )
    model.learn(200)
    obs = np.random.default_rng(0).uniform(-1, 1, size=(8, 3)).astype(np.float32)
    with th.no_grad():
        clean = model.policy.unscale_action(model.actor(th.as_tensor(obs)).numpy())
    for deterministic in (False, True):
        actions, _ = model.predict(obs, deterministic=deterministic)
        np.testing.assert_allclose(actions, clean, atol=1e-6)
    # evaluate_policy gives the same return twice on a deterministic env (no noise anywhere)
    env = gym.make("Pendulum-v1")
    env.reset(seed=3)
    first, _ = evaluate_policy(model, env, n_eval_episodes=1, deterministic=False)
    env.reset(seed=3)
    second, _ = evaluate_policy(model, env, n_eval_episodes=1, deterministic=False)
    assert first == second


def test_save_load_keeps_sigma_and_rebuilds_perturbation(tmp_path):
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", param_noise=PARAM_NOISE, param_noise_adaption_interval=5, seed=0, **FAST)
    model.learn(200)
    sigma = model.param_noise.current_stddev
    seeds = model.param_noise_exploration.seeds.copy()
    perturbed = [p.clone() for p in model.param_noise_exploration.perturbed_actors[0].parameters()]
    model.save(tmp_path / "model.zip")
    loaded = DDPGPlus.load(tmp_path / "model.zip", env=gym.make("Pendulum-v1"))
    assert loaded.param_noise.current_stddev == sigma
    np.testing.assert_array_equal(loaded.param_noise_exploration.seeds, seeds)
    loaded.param_noise_exploration.start(loaded.actor, n_envs=1, new_episodes=False)
    # rebuilt from the same seed on the same actor weights (the actor did not change since the last resampling)
    model.actor.load_state_dict(loaded.actor.state_dict())
    perturb(model.actor, model.param_noise_exploration.perturbed_actors[0], sigma, int(seeds[0]))
    for a, b in zip(
        model.param_noise_exploration.perturbed_actors[0].parameters(),
        loaded.param_noise_exploration.perturbed_actors[0].parameters(),
        strict=True,
    ):
        assert th.equal(a, b)
    assert len(perturbed) == len(list(loaded.param_noise_exploration.perturbed_actors[0].parameters()))
    assert loaded.policy.actor_layer_norm


def test_actor_without_linear_layers_is_refused():
    class Identity(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(ValueError, match="Linear or Conv"):
        check_perturbable(Identity())
