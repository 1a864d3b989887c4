import subprocess
import sys

import optuna
import pytest

from sb3_ddpg_plus.zoo import NOISE_TYPES, convert_ddpg_plus_params, sample_ddpg_plus_params

pytest.importorskip("rl_zoo3")


def test_zoo_train_and_enjoy(tmp_path):
    common = [sys.executable, "-m", "sb3_ddpg_plus.zoo"]
    train = [
        *common,
        "train",
        "--algo",
        "ddpg_plus",
        "--env",
        "Pendulum-v1",
        "-n",
        "300",
        "--seed",
        "1",
        "--log-folder",
        str(tmp_path),
        "-params",
        "learning_starts:100",
        "policy_kwargs:dict(net_arch=[16])",
    ]
    result = subprocess.run(train, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "ddpg_plus" / "Pendulum-v1_1" / "Pendulum-v1.zip").exists()
    enjoy = [*common, "enjoy", "--algo", "ddpg_plus", "--env", "Pendulum-v1", "-f", str(tmp_path), "-n", "200", "--no-render"]
    result = subprocess.run(enjoy, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Mean reward" in result.stdout


def test_zoo_usage_error():
    result = subprocess.run([sys.executable, "-m", "sb3_ddpg_plus.zoo"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "usage" in result.stderr


def test_sampler_covers_noise_types_and_none_means_none():
    seen = set()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(60):
        trial = study.ask()
        kwargs = sample_ddpg_plus_params(trial, n_actions=1, n_envs=1, additional_args={})
        noise_type = trial.params["noise_type"]
        seen.add(noise_type)
        if noise_type == "none":
            assert kwargs["action_noise"] == {"type": "none"} and kwargs["param_noise"] is None
        # the converter alone rebuilds the same kwargs (used by --trial-id)
        assert convert_ddpg_plus_params(trial.params) == kwargs
        study.tell(trial, 0.0)
    assert seen == set(NOISE_TYPES)
