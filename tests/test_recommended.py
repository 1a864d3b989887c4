import pytest
import yaml

from benchmarks.algos import hyperparams_for
from sb3_ddpg_plus import DDPGPlus
from sb3_ddpg_plus.recommended import RECOMMENDED_FILE, recommended_hyperparams, recommended_kwargs

CONFIG = {
    "default": {
        "policy": "MlpPolicy",
        "gamma": 0.98,
        "learning_starts": 50,
        "batch_size": 32,
        "buffer_size": 1000,
        "n_steps": 3,
        "policy_delay": 2,
        "target_policy_noise": 0.2,
        "target_noise_clip": 0.5,
        "action_noise": {"type": "normal", "sigma": 0.1},
        "replay_buffer_kwargs": {"prioritized": "lap"},
        "policy_kwargs": {"net_arch": [16, 16], "n_critics": 2, "critic_layer_norm": True},
        "n_timesteps": 30000,
    }
}


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "recommended.yml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


def test_recommended_kwargs_build_a_model_in_one_line(config_file):
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", **recommended_kwargs(config_file))
    assert model.gamma == 0.98 and model.policy_delay == 2 and model.n_steps == 3
    assert len(model.critic.q_networks) == 2 and model.replay_buffer.prioritized == "lap"
    model.learn(80)
    assert model._n_updates > 0


def test_budget_is_the_users_and_overrides_merge(config_file):
    assert "n_timesteps" not in recommended_hyperparams(config_file)
    kwargs = recommended_kwargs(config_file, policy_kwargs={"net_arch": [8]}, gamma=0.9)
    # net_arch replaced, the other policy options kept
    assert kwargs["policy_kwargs"]["net_arch"] == [8] and kwargs["policy_kwargs"]["n_critics"] == 2
    assert kwargs["gamma"] == 0.9 and "policy" not in kwargs


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no recommended configuration"):
        recommended_hyperparams(tmp_path / "nothing.yml")


@pytest.mark.skipif(not RECOMMENDED_FILE.exists(), reason="no recommended configuration shipped yet")
def test_shipped_configuration_is_one_default_section_used_by_the_benchmark():
    data = yaml.safe_load(RECOMMENDED_FILE.read_text())
    assert list(data) == ["default"]  # one configuration for every env, no per-env entries
    hyperparams = recommended_hyperparams()
    assert hyperparams_for("ddpg_plus_recommended", "HopperBulletEnv-v0", budget=100) == {**hyperparams, "n_timesteps": 100}
    DDPGPlus("MlpPolicy", "MountainCarContinuous-v0", **recommended_kwargs())


@pytest.mark.skipif(not RECOMMENDED_FILE.exists(), reason="no recommended configuration shipped yet")
def test_zoo_reads_the_recommended_module_for_any_env():
    import importlib

    table = importlib.import_module("sb3_ddpg_plus.recommended").hyperparams
    assert list(table) == ["default"] and table["default"]["n_timesteps"] > 0
