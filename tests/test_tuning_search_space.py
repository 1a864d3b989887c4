"""
The search space (``sb3_ddpg_plus.experiments.search_space``, shared by ``python -m tuning`` and the zoo's
``-optimize``) yields configurations that the package's hyperparameter loader and DDPGPlus accept.
"""

import gymnasium as gym
import optuna
import pytest

from sb3_ddpg_plus.experiments.search_space import (
    NET_ARCHS,
    NOISE_TYPES,
    PARAM_DEFAULTS,
    buffer_size_choices,
    fixed_trial,
    learning_starts_choices,
    sample_hyperparams,
)
from sb3_ddpg_plus.hyperparams import load_hyperparams, make_model

NOISE_PARAMS = {"normal_sigma", "ou_sigma", "param_sigma"}


def _sample_many(budget: int, n: int = 60) -> list[optuna.trial.FrozenTrial]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda trial: len(sample_hyperparams(trial, budget=budget)), n_trials=n)
    return study.trials


@pytest.mark.parametrize("noise_type", NOISE_TYPES)
def test_noise_params_sampled_only_for_their_type(noise_type):
    base = sample_hyperparams(fixed_trial(_fixed_params(noise_type)), budget=5000)
    action_noise = base["action_noise"]
    if noise_type == "none":
        # "No noise" means no noise at all: explicit type none and no parameter noise (rl-zoo3's None arm is fake).
        assert action_noise == {"type": "none"}
        assert "param_noise" not in base
    elif noise_type == "param":
        assert action_noise == {"type": "none"}
        assert base["param_noise"]["desired_action_stddev"] == pytest.approx(0.1)
        assert base["policy_kwargs"]["actor_layer_norm"] is True
    elif noise_type == "param+normal":
        assert action_noise == {"type": "normal", "sigma": pytest.approx(0.2)}
        assert base["param_noise"]["initial_stddev"] == pytest.approx(0.1)
    elif noise_type == "normal":
        assert action_noise == {"type": "normal", "sigma": pytest.approx(0.2)}
        assert "param_noise" not in base
    else:
        assert action_noise == {"type": "ornstein-uhlenbeck", "sigma": pytest.approx(0.5)}
        assert "param_noise" not in base


def _fixed_params(noise_type: str) -> dict:
    params = {
        "one_minus_gamma": 0.02,
        "actor_learning_rate": 1e-3,
        "critic_learning_rate": 1e-3,
        "tau": 0.005,
        "batch_size": 64,
        "buffer_size": 10_000,
        "learning_starts": 100,
        "train_freq": 4,
        "updates_per_step": 0.5,
        "net_arch": "tiny",
        "layer_norm": False,
        "n_steps": 3,
        "td3_tricks": True,
        "noise_type": noise_type,
        "normal_sigma": 0.2,
        "ou_sigma": 0.5,
        "param_sigma": 0.1,
    }
    return params


def test_sampled_noise_params_match_noise_type():
    for trial in _sample_many(budget=50_000):
        noise_type = trial.params["noise_type"]
        expected = {
            "none": set(),
            "normal": {"normal_sigma"},
            "ornstein-uhlenbeck": {"ou_sigma"},
            "param": {"param_sigma"},
            "param+normal": {"normal_sigma", "param_sigma"},
        }[noise_type]
        assert NOISE_PARAMS & set(trial.params) == expected


def test_every_sample_loads_and_builds_a_model():
    env = gym.make("Pendulum-v1")
    for trial in _sample_many(budget=3000, n=25):
        hyperparams = sample_hyperparams(optuna.trial.FixedTrial(trial.params), budget=3000)
        loaded = load_hyperparams(hyperparams)
        assert loaded["gradient_steps"] >= 1
        model = make_model(loaded, env)
        assert model.learning_starts == hyperparams["learning_starts"]
        if hyperparams["action_noise"]["type"] == "none":
            assert model.action_noise is None
        assert model.replay_buffer.prioritized == trial.params["prioritized"]


def test_budget_bounds_warmup_and_buffer():
    assert learning_starts_choices(3000) == [100, 500]
    assert max(learning_starts_choices(1_000_000)) == 20_000
    assert learning_starts_choices(50) == [100]  # always one choice, even for absurdly small budgets
    assert buffer_size_choices(3000) == [10_000]
    assert buffer_size_choices(100_000) == [10_000, 50_000, 200_000]
    for trial in _sample_many(budget=3000, n=20):
        assert trial.params["learning_starts"] <= 3000 // 4


def test_space_holds_the_zoos_network_sizes_and_prioritized_replay():
    assert [256, 256] in NET_ARCHS.values() and [400, 300] in NET_ARCHS.values()
    seen = {trial.params["prioritized"] for trial in _sample_many(budget=3000, n=40)}
    assert seen == {None, "per", "lap"}
    per = sample_hyperparams(fixed_trial({**_fixed_params("normal"), "prioritized": "per"}), budget=5000)
    assert per["replay_buffer_kwargs"] == {"prioritized": "per"}


def test_version_1_params_rebuild_the_same_configuration():
    # Trials of a version-1 study have no `prioritized` param: it defaults to uniform replay, and the configuration is
    # exactly what version 1 sampled (no replay_buffer_kwargs key at all).
    assert PARAM_DEFAULTS == {"prioritized": None}
    old_params = _fixed_params("param+normal")
    rebuilt = sample_hyperparams(fixed_trial(old_params), budget=5000)
    assert "replay_buffer_kwargs" not in rebuilt
    assert rebuilt == sample_hyperparams(optuna.trial.FixedTrial({**old_params, "prioritized": None}), budget=5000)
    with pytest.raises(ValueError):  # a plain FixedTrial cannot rebuild it: the new param is missing
        sample_hyperparams(optuna.trial.FixedTrial(old_params), budget=5000)


def test_without_a_budget_the_budget_bound_knobs_are_not_sampled():
    # rl-zoo3 does not tell its sampler the budget: buffer_size and learning_starts stay the zoo file's.
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    hyperparams = sample_hyperparams(trial, budget=None)
    assert "buffer_size" not in hyperparams and "learning_starts" not in hyperparams
    assert not {"buffer_size", "learning_starts"} & set(trial.params)
