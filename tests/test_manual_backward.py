"""
The hand-written gradients (``manual_backward.py``) equal autograd's: for which policies they are used, the gradients
themselves on many shapes, and training with them against training with autograd.
"""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.envs import FakeImageEnv, SimpleMultiObsEnv
from torch import nn
from torch.nn import functional as F

from sb3_ddpg_plus import DDPGPlus
from sb3_ddpg_plus.manual_backward import ManualBackward, PlainMLP
from sb3_ddpg_plus.matmul import linear, matmul
from sb3_ddpg_plus.policies import DDPGPlusPolicy

TOL = 1e-6


def make_policy(obs_shape=(3,), action_dim=1, **policy_kwargs):
    obs_space = spaces.Box(-1.0, 1.0, obs_shape, dtype=np.float32)
    action_space = spaces.Box(-2.0, 2.0, (action_dim,), dtype=np.float32)
    return DDPGPlusPolicy(obs_space, action_space, lambda _: 1e-3, **policy_kwargs)


def autograd_gradients(policy, observations, actions, target):
    """Critic and actor gradients the textbook way: autograd, critic frozen for the actor loss."""
    critic_loss = sum(F.mse_loss(q, target) for q in policy.critic(observations, actions))
    policy.critic.zero_grad(set_to_none=True)
    critic_loss.backward()
    critic_grads = [p.grad.clone() for q_net in policy.critic.q_networks for p in q_net.parameters()]
    for p in policy.critic.parameters():
        p.requires_grad_(False)
    actor_loss = -policy.critic(observations, policy.actor(observations))[0].mean()
    policy.actor.zero_grad(set_to_none=True)
    actor_loss.backward()
    for p in policy.critic.parameters():
        p.requires_grad_(True)
    actor_grads = [p.grad.clone() for p in policy.actor.mu.parameters()]
    return critic_loss.item(), actor_loss.item(), critic_grads, actor_grads


@pytest.mark.parametrize(
    "obs_shape, action_dim, policy_kwargs",
    [
        ((3,), 1, dict(net_arch=[64, 64])),  # Pendulum
        ((26,), 6, dict(net_arch=[64, 64])),  # HalfCheetahBullet: skinny products in both directions
        ((2,), 1, dict(net_arch=[400, 300])),
        ((5,), 3, dict(net_arch=[16, 32, 8])),
        ((4, 3), 2, dict(net_arch=[32, 32])),  # flattened observations
        ((3,), 1, dict(net_arch=[])),  # linear actor and critic
        ((6,), 2, dict(net_arch=[32, 32], activation_fn=nn.Tanh)),
        ((6,), 2, dict(net_arch=[32, 32], n_critics=2)),
        ((6,), 2, dict(net_arch=dict(pi=[16], qf=[48, 24]))),
        # Layer norm after the hidden Linear layers: actor only, critic only, both (two critics), with Tanh
        ((3,), 1, dict(net_arch=[64, 64], actor_layer_norm=True)),
        ((26,), 6, dict(net_arch=[64, 64], critic_layer_norm=True)),
        ((6,), 2, dict(net_arch=[256, 256], actor_layer_norm=True, critic_layer_norm=True, n_critics=2)),
        ((5,), 3, dict(net_arch=[16, 32, 8], activation_fn=nn.Tanh, actor_layer_norm=True, critic_layer_norm=True)),
    ],
)
def test_gradients_equal_autograd(obs_shape, action_dim, policy_kwargs):
    th.manual_seed(0)
    policy = make_policy(obs_shape, action_dim, **policy_kwargs)
    manual = ManualBackward.for_policy(policy)
    assert manual is not None
    batch = 256
    observations = th.randn(batch, *obs_shape)
    actions = th.rand(batch, action_dim) * 2 - 1
    target = th.randn(batch, 1)

    ref_critic_loss, ref_actor_loss, ref_critic_grads, ref_actor_grads = autograd_gradients(
        policy, observations, actions, target
    )
    policy.zero_grad(set_to_none=True)
    critic_loss, current_q1, _ = manual.critic_backward(observations, actions, target)
    actor_loss = manual.actor_backward(observations)

    with th.no_grad():
        next_actions = policy.actor_target(observations)
        assert th.allclose(manual.target_actor(observations), next_actions, atol=TOL, rtol=0)
        assert th.allclose(manual.act(observations), policy.actor(observations), atol=TOL, rtol=0)
        assert th.allclose(manual.act(observations[:1]), policy.actor(observations[:1]), atol=TOL, rtol=0)
        for q, ref in zip(
            manual.target_critic(observations, next_actions), policy.critic_target(observations, next_actions), strict=True
        ):
            assert th.allclose(q, ref, atol=TOL, rtol=0)
    assert critic_loss.item() == pytest.approx(ref_critic_loss, rel=TOL, abs=TOL)
    assert actor_loss.item() == pytest.approx(ref_actor_loss, rel=TOL, abs=TOL)
    assert th.allclose(current_q1, policy.critic(observations, actions)[0], atol=TOL, rtol=0)
    critic_grads = [p.grad for q_net in policy.critic.q_networks for p in q_net.parameters()]
    actor_grads = [p.grad for p in policy.actor.mu.parameters()]
    assert len(critic_grads + actor_grads) == len(manual._params)  # layer norms' weights and biases included
    for grad, ref in zip(critic_grads + actor_grads, ref_critic_grads + ref_actor_grads, strict=True):
        assert grad.shape == ref.shape
        assert th.allclose(grad, ref, atol=TOL, rtol=1e-5)


@pytest.mark.parametrize(
    "policy_kwargs",
    [
        dict(activation_fn=nn.LeakyReLU),
        dict(activation_fn=nn.ELU),
    ],
)
def test_not_plain_mlps_use_autograd(policy_kwargs):
    assert ManualBackward.for_policy(make_policy(**policy_kwargs)) is None


def test_plain_mlp_rejects_other_layers():
    assert PlainMLP.from_sequential(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1)), squash=False) is not None
    assert PlainMLP.from_sequential(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1)), squash=True) is None
    assert PlainMLP.from_sequential(nn.Sequential(nn.Linear(3, 4), nn.Dropout(), nn.Linear(4, 1)), squash=False) is None
    assert PlainMLP.from_sequential(nn.Sequential(nn.Linear(3, 4, bias=False)), squash=False) is None
    assert PlainMLP.from_sequential(nn.Sequential(nn.Linear(3, 4), nn.ReLU()), squash=False) is None
    mixed = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 1))
    assert PlainMLP.from_sequential(mixed, squash=False) is None
    # Layer norm: after a hidden Linear layer, over its whole output, with weight and bias; nowhere else
    normed = PlainMLP.from_sequential(nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.ReLU(), nn.Linear(4, 1)), False)
    assert normed is not None and normed.has_norms
    for layers in (
        [nn.Linear(3, 4), nn.LayerNorm(4, elementwise_affine=False), nn.ReLU(), nn.Linear(4, 1)],
        [nn.Linear(3, 4), nn.LayerNorm(4, bias=False), nn.ReLU(), nn.Linear(4, 1)],
        [nn.Linear(3, 4), nn.ReLU(), nn.LayerNorm(4), nn.Linear(4, 1)],  # after the activation
        [nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1), nn.LayerNorm(1)],  # on the output
        [nn.Linear(3, 4), nn.LayerNorm(4), nn.LayerNorm(4), nn.ReLU(), nn.Linear(4, 1)],
    ):
        assert PlainMLP.from_sequential(nn.Sequential(*layers), squash=False) is None


def test_image_and_dict_observations_use_autograd():
    image_model = DDPGPlus("CnnPolicy", FakeImageEnv(screen_height=36, screen_width=36, n_channels=1, discrete=False))
    assert image_model._fast.manual is None
    dict_model = DDPGPlus("MultiInputPolicy", SimpleMultiObsEnv(random_start=False, discrete_actions=False))
    assert dict_model._fast.manual is None


def spy_on_manual(model, monkeypatch):
    calls = {"manual": 0}
    original = ManualBackward.critic_backward

    def counting(self, *args, **kwargs):
        calls["manual"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ManualBackward, "critic_backward", counting)
    return calls


def test_default_model_trains_with_manual_backward(monkeypatch):
    # (native_update off: by default the C loop of sb3_ddpg_plus.native_update runs the same update where it can)
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", learning_starts=50, batch_size=32, seed=0, native_update=False)
    calls = spy_on_manual(model, monkeypatch)
    model.learn(60)
    assert model._n_updates == 10
    assert calls["manual"] == 10


def test_switch_off_and_gradient_hooks_use_autograd(monkeypatch):
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", learning_starts=50, batch_size=32, seed=0, manual_backward=False)
    calls = spy_on_manual(model, monkeypatch)
    model.learn(60)
    assert calls["manual"] == 0 and model._n_updates == 10

    # A gradient hook runs inside autograd only: a policy with one keeps the autograd path (and its hook runs)
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", learning_starts=50, batch_size=32, seed=0)
    hook_calls = []
    model.critic.qf0[0].weight.register_hook(lambda grad: hook_calls.append(1))
    model.learn(60)
    assert calls["manual"] == 0
    assert len(hook_calls) == 10


def test_acting_uses_the_lean_forward_unless_the_actor_has_hooks(monkeypatch):
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", learning_starts=0, seed=0)
    model.learn(1)  # sets _last_obs
    lean_calls = []
    original_act = ManualBackward.act

    def counting_act(self, observations):
        lean_calls.append(1)
        return original_act(self, observations)

    monkeypatch.setattr(ManualBackward, "act", counting_act)
    model.action_noise = None
    action, buffer_action = model._sample_action(learning_starts=0)
    assert len(lean_calls) == 1
    with th.no_grad():
        expected = model.actor(th.as_tensor(model._last_obs)).numpy()
    assert np.allclose(buffer_action, expected, atol=TOL)
    assert np.allclose(action, model.policy.unscale_action(expected), atol=1e-5)

    # A forward hook on the actor must run: acting then goes through the module
    hook_calls = []
    handle = model.actor.register_forward_hook(lambda module, args, output: hook_calls.append(1))
    model._sample_action(learning_starts=0)
    assert len(lean_calls) == 1 and len(hook_calls) == 1
    handle.remove()
    model.manual_backward = False
    model._sample_action(learning_starts=0)
    assert len(lean_calls) == 1


def test_manual_backward_is_saved_and_loaded(tmp_path):
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", manual_backward=False, learning_starts=10, batch_size=8)
    model.save(tmp_path / "model.zip")
    loaded = DDPGPlus.load(tmp_path / "model.zip")
    assert loaded.manual_backward is False
    assert loaded._fast.manual is not None  # eligible: only switched off


@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(
            policy_kwargs=dict(net_arch=[32, 32], n_critics=2), policy_delay=2, target_policy_noise=0.2, target_noise_clip=0.5
        ),
        dict(policy_kwargs=dict(net_arch=[32, 32], critic_weight_decay=1e-2), actor_learning_rate=1e-4, n_steps=3),
    ],
)
def test_training_matches_autograd_training(options):
    """Many updates: the two paths stay together (float rounding differs slightly, the algorithm does not)."""

    def trained(manual_backward):
        model = DDPGPlus(
            "MlpPolicy",
            gym.make("Pendulum-v1"),
            learning_starts=64,
            batch_size=64,
            seed=7,
            action_noise={"type": "normal", "sigma": 0.1},
            manual_backward=manual_backward,
            **{"policy_kwargs": dict(net_arch=[32, 32]), **options},
        )
        model.learn(264)
        return model

    manual, autograd = trained(True), trained(False)
    assert manual._n_updates == autograd._n_updates == 200
    for (name, param), ref in zip(manual.policy.named_parameters(), autograd.policy.parameters(), strict=True):
        assert th.allclose(param, ref, atol=1e-4, rtol=0), name
    for key in ("train/critic_loss", "train/actor_loss", "train/mean_q"):
        assert manual.logger.name_to_value[key] == pytest.approx(autograd.logger.name_to_value[key], rel=1e-3, abs=1e-5)


@pytest.mark.parametrize(
    "rows, inner, columns", [(256, 64, 6), (256, 64, 1), (64, 256, 3), (6, 256, 64), (1, 3, 64), (256, 1, 64)]
)
def test_matmul_orientation_gives_the_same_product(rows, inner, columns):
    left, right, bias = th.randn(rows, inner), th.randn(inner, columns), th.randn(columns)
    assert th.allclose(matmul(left, right), left @ right, atol=1e-5)
    assert th.allclose(linear(left, right.t(), bias), F.linear(left, right.t(), bias), atol=1e-5)
    assert th.allclose(linear(left, right.t(), None), F.linear(left, right.t()), atol=1e-5)


def test_transposed_linear_follows_the_rule_and_probes_large_layers_once(monkeypatch):
    import sb3_ddpg_plus.matmul as matmul_module

    calls = []

    def probe(rows, in_features, out_features):
        calls.append((rows, in_features, out_features))
        return True

    monkeypatch.setattr(matmul_module, "_probed", {})
    monkeypatch.setattr(matmul_module, "_probe_transposed", probe)
    assert matmul_module.transposed_linear(256, 64, 6)  # skinny: always transposed, no probe
    assert not matmul_module.transposed_linear(256, 64, 64)  # small: never, no probe
    assert matmul_module.transposed_linear(256, 400, 300) and matmul_module.transposed_linear(256, 400, 300)
    assert calls == [(256, 400, 300)]  # probed once


def test_probe_leaves_the_global_random_stream_and_returns_a_choice():
    from sb3_ddpg_plus.matmul import _probe_transposed

    th.manual_seed(3)
    expected = th.rand(4)
    th.manual_seed(3)
    choice = _probe_transposed(128, 256, 128, rounds=2)
    assert isinstance(choice, bool)
    assert th.equal(th.rand(4), expected)


@pytest.mark.parametrize("transposed", [False, True])
def test_either_orientation_of_large_layers_trains_the_same(monkeypatch, transposed):
    """Whatever the probe picks for large layers, forward values and training are those of F.linear."""
    import sb3_ddpg_plus.matmul as matmul_module

    def trained(force):
        monkeypatch.setattr(matmul_module, "_probed", {})
        monkeypatch.setattr(matmul_module, "PROBE_MIN_FLOPS", 0)
        monkeypatch.setattr(matmul_module, "_probe_transposed", lambda *_: force)
        model = DDPGPlus(
            "MlpPolicy",
            "Pendulum-v1",
            learning_starts=64,
            batch_size=32,
            seed=0,
            policy_kwargs=dict(net_arch=[32, 24]),
            native_update=False,  # (the eager update is the one that uses these orientations)
        )
        model.learn(150)
        assert model._fast.manual is not None and model._fast.manual.actor._transposed[32] == [force] * 3
        return model

    reference, model = trained(False), trained(transposed)
    for param, ref in zip(model.policy.parameters(), reference.policy.parameters(), strict=True):
        th.testing.assert_close(param, ref, rtol=TOL, atol=TOL)
