import pytest
import torch as th
import yaml

from sb3_ddpg_plus import DDPGPlus
from sb3_ddpg_plus.hyperparams import dump_hyperparams, load_hyperparams, make_model, to_constructor_kwargs
from sb3_ddpg_plus.zoo import DEFAULT_HYPERPARAMS

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


def test_env_keyed_file_and_default():
    pendulum = load_hyperparams(DEFAULT_HYPERPARAMS, env_id="Pendulum-v1")
    assert pendulum["gamma"] == 0.98
    other = load_hyperparams(DEFAULT_HYPERPARAMS, env_id="Unknown-v0")
    assert other["action_noise"] == {"type": "normal", "sigma": 0.1}
    for env_id in ("MountainCarContinuous-v0", "HalfCheetahBulletEnv-v0", "HopperBulletEnv-v0"):
        to_constructor_kwargs(load_hyperparams(DEFAULT_HYPERPARAMS, env_id=env_id))


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        ({"gama": 0.9}, ValueError, "Unknown hyperparameter `gama`"),
        ({"gamma": "0.9"}, TypeError, "gamma"),
        ({"batch_size": 1.5}, TypeError, "batch_size"),
        ({"optimize_memory_usage": "yes"}, TypeError, "optimize_memory_usage"),
        ({"policy_kwargs": {"net_arch": [64, -1]}}, TypeError, "net_arch"),
        ({"policy_kwargs": {"activation_fn": "nn.ReLU"}}, ValueError, "activation_fn"),
        ({"policy_kwargs": {"dropout": 0.1}}, ValueError, "policy_kwargs.dropout"),
        ({"learning_rate": "__import__('os').system('echo pwned')"}, ValueError, "learning_rate"),
        ({"policy": "dict(a=1)"}, ValueError, "policy"),
        ({"train_freq": [1, "hour"]}, TypeError, "train_freq"),
        ({"normalize": {"norm_everything": True}}, ValueError, "normalize"),
        (["gamma", 0.9], TypeError, "mapping"),
    ],
)
def test_bad_hyperparameter_data(data, error, message):
    with pytest.raises(error, match=message):
        load_hyperparams(data) if isinstance(data, dict) else to_constructor_kwargs(data)


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
