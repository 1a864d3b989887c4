import inspect
import sys

import pytest
import torch as th
import yaml

from sb3_ddpg_plus import DDPGPlus
from sb3_ddpg_plus.experiments import zoo_hyperparams
from sb3_ddpg_plus.experiments.zoo_hyperparams import ddpg_plus_hyperparams, read_overrides, to_plain
from sb3_ddpg_plus.hyperparams import (
    dump_hyperparams,
    load_hyperparams,
    make_model,
    move_policy_options,
    to_constructor_kwargs,
    validate_hyperparameters,
)

EXAMPLE = """
policy: MlpPolicy
gamma: 0.98
actor_learning_rate: 0.0003
critic_learning_rate: lin_0.001
buffer_size: !!float 1e4
learning_starts: 50
batch_size: 32
train_freq: [1, step]
action_noise: {type: ornstein-uhlenbeck, sigma: 0.5, schedule: {type: linear, final: 0.1, duration: 1000}}
param_noise: {initial_stddev: 0.2, desired_action_stddev: 0.2}
policy_kwargs: {net_arch: {pi: [16], qf: [32]}, activation_fn: tanh, actor_layer_norm: true}
n_timesteps: 20000
normalize: false
"""


def test_yaml_to_model(tmp_path):
    path = tmp_path / "h.yml"
    path.write_text(EXAMPLE)
    hyperparams = load_hyperparams(path)
    model = make_model(hyperparams, "Pendulum-v1", seed=0)
    assert isinstance(model, DDPGPlus)
    assert model.gamma == 0.98 and model.buffer_size == 10_000 and model.train_freq.frequency == 1
    assert model.policy.activation_fn is th.nn.Tanh
    assert model.actor_lr_schedule(0.5) == pytest.approx(3e-4)
    assert model.critic_lr_schedule(0.5) == pytest.approx(5e-4)
    assert model.param_noise.desired_action_stddev == 0.2
    assert model.action_noise.theta == 0.15
    model.learn(80)


def test_dump_then_load_round_trip(tmp_path):
    hyperparams = load_hyperparams(yaml.safe_load(EXAMPLE))
    dump_hyperparams(hyperparams, tmp_path / "out.yml", header="made by a test")
    text = (tmp_path / "out.yml").read_text()
    assert text.startswith("# made by a test")
    assert load_hyperparams(tmp_path / "out.yml") == hyperparams
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temporary file


def test_env_keyed_file_and_default(tmp_path):
    path = tmp_path / "table.yml"
    path.write_text("default: {gamma: 0.9}\nPendulum-v1: {gamma: 0.98, n_timesteps: !!float 2e4}\n")
    assert load_hyperparams(path, env_id="Pendulum-v1") == {"gamma": 0.98, "n_timesteps": 20000.0}
    assert load_hyperparams(path, env_id="Unknown-v0") == {"gamma": 0.9}


def test_default_hyperparams_are_the_zoos():
    pytest.importorskip("rl_zoo3")
    table = ddpg_plus_hyperparams()
    pendulum = load_hyperparams(table, env_id="Pendulum-v1")
    assert pendulum["gamma"] == 0.98 and pendulum["policy_kwargs"] == {"net_arch": [400, 300]}
    other = load_hyperparams(table, env_id="Unknown-v0")
    assert other["action_noise"] == {"type": "normal", "sigma": 0.1}
    for env_id in table:  # every entry of the zoo's ddpg.yml makes a model's arguments
        to_constructor_kwargs(load_hyperparams(table, env_id=env_id))


def test_default_hyperparams_keep_the_zoos_values_where_not_overridden():
    pytest.importorskip("rl_zoo3")
    # rl-zoo3's ddpg.yml read independently of the package (its Python strings and noise keys are the only rewrite)
    with open(zoo_hyperparams.zoo_hyperparams_dir() / "ddpg.yml", encoding="utf-8") as file:
        zoo = yaml.safe_load(file)
    ours = read_overrides()
    table = ddpg_plus_hyperparams()
    assert set(zoo) <= set(table)
    for env_id, entry in zoo.items():
        overridden = set(ours.get("default", {})) | set(ours.get(env_id, {}))
        expected = to_plain(entry)
        assert {key for key in expected if key not in overridden} <= set(table[env_id])
        for key in set(expected) - overridden:
            assert table[env_id][key] == expected[key], (env_id, key)
        if "noise_type" in entry and "action_noise" not in overridden:
            assert table[env_id]["action_noise"] == {"type": entry["noise_type"], "sigma": entry["noise_std"]}


def test_default_hyperparams_merge_our_differences(tmp_path):
    pytest.importorskip("rl_zoo3")
    overrides = tmp_path / "ours.yml"
    overrides.write_text(
        "default: {policy_kwargs: {critic_layer_norm: true}}\n"
        "MountainCarContinuous-v0:\n"
        "  action_noise: {type: none}\n"
        "  param_noise: {initial_stddev: 0.5, desired_action_stddev: 0.5}\n"
        "Only-Ours-v0: {gamma: 0.9}\n"
    )
    table = ddpg_plus_hyperparams(overrides)
    car = table["MountainCarContinuous-v0"]
    assert car["action_noise"] == {"type": "none"}  # replaced whole, no stale sigma
    assert car["param_noise"] == {"initial_stddev": 0.5, "desired_action_stddev": 0.5}
    assert car["policy_kwargs"] == {"net_arch": [400, 300], "critic_layer_norm": True}  # merged key by key
    assert car["batch_size"] == 256  # the zoo's
    assert table["Only-Ours-v0"]["gamma"] == 0.9 and table["Only-Ours-v0"]["n_timesteps"] == table["default"]["n_timesteps"]
    to_constructor_kwargs(load_hyperparams(table, "MountainCarContinuous-v0"))


def test_default_hyperparams_without_rl_zoo3_name_the_extra(monkeypatch):
    # sys.modules[name] = None: find_spec() and import see rl-zoo3 as not installed; the cached zoo files are dropped
    monkeypatch.setitem(sys.modules, "rl_zoo3", None)
    zoo_hyperparams._read.cache_clear()
    try:
        with pytest.raises(ModuleNotFoundError, match=r"rl-zoo3 is not installed: pip install \"sb3_ddpg_plus\[zoo\]\""):
            ddpg_plus_hyperparams()
    finally:
        zoo_hyperparams._read.cache_clear()


def test_policy_options_move_into_policy_kwargs(tmp_path):
    # n_critics and critic_weight_decay are policy options; files and stored trials that write them at the top level
    # still load, in the policy_kwargs spelling
    old = {"n_critics": 2, "critic_weight_decay": 0.01, "policy_kwargs": {"net_arch": [16]}, "gamma": 0.9}
    new = {"policy_kwargs": {"net_arch": [16], "n_critics": 2, "critic_weight_decay": 0.01}, "gamma": 0.9}
    assert load_hyperparams(old) == new and load_hyperparams(new) == new
    assert move_policy_options({"n_critics": 2}) == {"policy_kwargs": {"n_critics": 2}}
    assert old["policy_kwargs"] == {"net_arch": [16]} and "n_critics" in old  # the input is left alone
    kwargs = to_constructor_kwargs(old)
    assert not {"n_critics", "critic_weight_decay"} & set(kwargs)
    assert kwargs["policy_kwargs"] == {"net_arch": [16], "n_critics": 2, "critic_weight_decay": 0.01}
    assert type(to_constructor_kwargs({"n_critics": 2.0})["policy_kwargs"]["n_critics"]) is int  # YAML's 2e0
    # the same value both ways is one value; the file written uses the new spelling
    assert load_hyperparams({"n_critics": 2, "policy_kwargs": {"n_critics": 2}}) == {"policy_kwargs": {"n_critics": 2}}
    dump_hyperparams(old, tmp_path / "out.yml")
    assert yaml.safe_load((tmp_path / "out.yml").read_text()) == new
    model = make_model(old, "Pendulum-v1", seed=0)
    assert len(model.critic.q_networks) == 2


def test_policy_options_in_a_committed_file_style(tmp_path):
    path = tmp_path / "Pendulum-v1.yml"  # as tuning/hyperparams/*.yml were written
    path.write_text("Pendulum-v1:\n  gamma: 0.92\n  n_critics: 1\n  policy_kwargs:\n    net_arch: [64, 64]\n")
    assert load_hyperparams(path, "Pendulum-v1")["policy_kwargs"] == {"net_arch": [64, 64], "n_critics": 1}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"n_critics": 2, "policy_kwargs": {"n_critics": 3}}, r"`n_critics: 2` and `policy_kwargs.n_critics: 3`"),
        (
            {"critic_weight_decay": 0.0, "policy_kwargs": {"critic_weight_decay": 0.01}},
            r"`critic_weight_decay: 0.0` and `policy_kwargs.critic_weight_decay: 0.01`",
        ),
    ],
)
def test_policy_options_given_both_ways_must_agree(data, message):
    for check in (load_hyperparams, to_constructor_kwargs, validate_hyperparameters):
        with pytest.raises(ValueError, match=message):
            check(data)


def test_errors_name_the_file_and_entry(tmp_path):
    path = tmp_path / "table.yml"
    path.write_text("Pendulum-v1: {gamma: 1.5}\ndefault: {policy_kwargs: {net_arch: [64, 0]}}\n")
    with pytest.raises(ValueError, match=rf"`gamma` must be in .*\(in file {path}, entry 'Pendulum-v1'\)"):
        load_hyperparams(path, "Pendulum-v1")
    with pytest.raises(ValueError, match=r"`policy_kwargs.net_arch`.*entry 'default'") as error:
        load_hyperparams(path, "Other-v0")
    assert isinstance(error.value, AssertionError)  # DDPGPlusInputError, as the constructor raises it


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        ({"gama": 0.9}, ValueError, "Unknown hyperparameter `gama`"),
        ({"gamma": "0.9"}, TypeError, "gamma"),
        ({"batch_size": 1.5}, TypeError, "batch_size"),
        ({"optimize_memory_usage": "yes"}, TypeError, "optimize_memory_usage"),
        # value checks are the constructor's (sb3_ddpg_plus.validation): the same error classes as DDPGPlus(...)
        ({"policy_kwargs": {"net_arch": [64, -1]}}, ValueError, "policy_kwargs.net_arch"),
        ({"policy_kwargs": {"net_arch": [64, 1.5]}}, TypeError, "policy_kwargs.net_arch"),
        ({"policy_kwargs": {"activation_fn": "nn.ReLU"}}, ValueError, "activation_fn"),
        ({"policy_kwargs": {"dropout": 0.1}}, ValueError, "policy_kwargs.dropout"),
        ({"learning_rate": "__import__('os').system('echo pwned')"}, ValueError, "learning_rate"),
        ({"policy": "dict(a=1)"}, ValueError, "policy"),
        ({"train_freq": [1, "hour"]}, ValueError, "train_freq"),
        ({"gamma": 1.5}, ValueError, "gamma"),
        ({"buffer_size": 0}, ValueError, "buffer_size"),
        ({"learning_rate": "lin_-0.1"}, ValueError, "learning_rate"),
        ({"policy_kwargs": {"n_critics": 0}}, ValueError, "policy_kwargs.n_critics"),
        ({"n_critics": 0}, ValueError, "n_critics"),
        ({"policy_kwargs": {"critic_weight_decay": -1.0}}, ValueError, "critic_weight_decay"),
        ({"n_envs": 0}, ValueError, "n_envs"),
        ({"normalize": {"norm_everything": True}}, ValueError, "normalize"),
        (["gamma", 0.9], TypeError, "mapping"),
    ],
)
def test_bad_hyperparameter_data(data, error, message):
    with pytest.raises(error, match=message):
        load_hyperparams(data) if isinstance(data, dict) else to_constructor_kwargs(data)


def test_constructor_arguments_are_checked_by_the_constructors_check():
    # Keys without a file-layer check are the constructor's arguments: validation.check_hyperparameters checks them
    from sb3_ddpg_plus.hyperparams import _SCHEMA
    from sb3_ddpg_plus.validation import check_hyperparameters

    unchecked_here = {key for key, check in _SCHEMA.items() if check is None}
    assert unchecked_here <= set(inspect.signature(check_hyperparameters).parameters)


def test_bad_files(tmp_path):
    with pytest.raises(ValueError, match="Cannot read"):
        load_hyperparams(tmp_path / "missing.yml")
    broken = tmp_path / "broken.yml"
    broken.write_text("gamma: [0.9\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_hyperparams(broken)
    code = tmp_path / "code.yml"
    code.write_text("gamma: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ValueError, match="not valid YAML"):  # safe_load refuses Python tags
        load_hyperparams(code)
