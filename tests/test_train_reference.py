"""
One ``train()`` step of DDPGPlus equals a plain reference computation of the DDPG/TD3 update: speed work never
changes the algorithm. The reference is written the textbook way (separate Adam optimizers with the default
single-tensor implementation, autograd through the critic, Polyak update by hand).
"""

import copy

import numpy as np
import pytest
import torch as th
from stable_baselines3.td3.policies import TD3Policy
from torch.nn import functional as F

from sb3_ddpg_plus import DDPGPlus
from tests.envs import WideActionEnv

TOL = 1e-6


def reference_update(
    actor, critic, actor_target, critic_target, data, gamma, tau, lr_actor, lr_critic, update_actor, huber=False
):
    actor_opt = th.optim.Adam(actor.parameters(), lr=lr_actor, foreach=False)
    critic_opt = th.optim.Adam(critic.parameters(), lr=lr_critic, foreach=False)
    with th.no_grad():
        next_q = th.cat(critic_target(data.next_observations, actor_target(data.next_observations)), dim=1)
        next_q = next_q.min(dim=1, keepdim=True).values
        discounts = data.discounts if data.discounts is not None else gamma
        target = data.rewards + (1 - data.dones) * discounts * next_q
    weights = getattr(data, "weights", None)
    if huber:  # LAP: Huber loss with delta 1, no weights
        critic_loss = sum(F.smooth_l1_loss(q, target, beta=1.0) for q in critic(data.observations, data.actions))
    elif weights is not None:  # PER: importance-weighted squared errors
        critic_loss = sum((weights * (q - target) ** 2).mean() for q in critic(data.observations, data.actions))
    else:
        critic_loss = sum(F.mse_loss(q, target) for q in critic(data.observations, data.actions))
    critic_opt.zero_grad()
    critic_loss.backward()
    critic_opt.step()
    actor_loss = None
    if update_actor:
        actor_loss = -critic(data.observations, actor(data.observations))[0].mean()
        actor_opt.zero_grad()
        actor_loss.backward()
        actor_opt.step()
        with th.no_grad():
            for net, target_net in ((critic, critic_target), (actor, actor_target)):
                for param, target_param in zip(net.parameters(), target_net.parameters(), strict=True):
                    target_param.mul_(1 - tau).add_(tau * param)
    return critic_loss.item(), None if actor_loss is None else actor_loss.item()


@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(n_steps=3),
        dict(policy_kwargs=dict(net_arch=[32, 32], n_critics=2)),
        dict(actor_learning_rate=1e-4, critic_learning_rate=3e-3),
        dict(policy_kwargs=dict(net_arch=[32, 32], actor_layer_norm=True, critic_layer_norm=True)),
        # Upstream's policy class (as in a file saved by SB3's DDPG or TD3), with one and two critics
        dict(policy=TD3Policy, policy_kwargs=dict(net_arch=[32, 32], n_critics=1)),
        dict(policy=TD3Policy, policy_kwargs=dict(net_arch=[32, 32], n_critics=2)),
        # Prioritised replay: importance weights (PER), Huber loss (LAP), with one and two critics
        dict(replay_buffer_kwargs=dict(prioritized="per")),
        dict(replay_buffer_kwargs=dict(prioritized="lap"), policy_kwargs=dict(net_arch=[32, 32], n_critics=2)),
    ],
)
@pytest.mark.parametrize("manual_backward", [True, False])
def test_one_train_step_matches_reference(options, manual_backward):
    options = dict(options)
    policy_kwargs = options.pop("policy_kwargs", dict(net_arch=[32, 32]))
    model = DDPGPlus(
        options.pop("policy", "MlpPolicy"),
        "Pendulum-v1",
        learning_starts=64,
        batch_size=64,
        seed=3,
        policy_kwargs=policy_kwargs,
        manual_backward=manual_backward,
        **options,
    )
    model.learn(64)  # fills the buffer, no update yet
    assert model._n_updates == 0
    # (layer norm included: the hand-written path covers it)
    assert (model._fast_path() is not None) == manual_backward
    # A fixed batch, served to train()
    np.random.seed(0)
    if getattr(model.replay_buffer, "prioritized", None):
        # Unequal priorities, so that PER's importance weights differ from 1 (all new transitions share the max)
        first = model.replay_buffer.sample(64)
        model.replay_buffer.update_priorities(first.indices, th.linspace(0.01, 5.0, 64))
    batch = model.replay_buffer.sample(64)
    if getattr(batch, "weights", None) is not None:
        assert batch.weights.std() > 0
    model.replay_buffer.sample = lambda batch_size, env=None: batch  # type: ignore[method-assign]

    actor, critic = copy.deepcopy(model.actor), copy.deepcopy(model.critic)
    actor_target, critic_target = copy.deepcopy(model.actor_target), copy.deepcopy(model.critic_target)
    for net in (actor, critic):
        net.set_training_mode(True)
    lr_actor = model.actor_lr_schedule(1.0)
    lr_critic = model.critic_lr_schedule(1.0)
    huber = options.get("replay_buffer_kwargs", {}).get("prioritized") == "lap"
    ref_critic_loss, ref_actor_loss = reference_update(
        actor, critic, actor_target, critic_target, batch, model.gamma, model.tau, lr_actor, lr_critic, True, huber
    )

    model._current_progress_remaining = 1.0
    model.train(gradient_steps=1, batch_size=64)
    logged = model.logger.name_to_value
    assert logged["train/critic_loss"] == pytest.approx(ref_critic_loss, rel=TOL, abs=TOL)
    assert logged["train/actor_loss"] == pytest.approx(ref_actor_loss, rel=TOL, abs=TOL)
    for ours, ref in (
        (model.actor, actor),
        (model.critic, critic),
        (model.actor_target, actor_target),
        (model.critic_target, critic_target),
    ):
        for (name, param), ref_param in zip(ours.named_parameters(), ref.parameters(), strict=True):
            assert th.allclose(param, ref_param, atol=TOL, rtol=0), name


@pytest.mark.parametrize("env", ["Pendulum-v1", WideActionEnv])
def test_td3_target_smoothing_and_delay_match_reference(env):
    """
    policy_delay=2: the first step updates the critic only; target noise is drawn from torch's generator, row by row
    as SB3 draws it (with six actions the hand-written path computes the target actions as a transposed view).
    """
    model = DDPGPlus(
        "MlpPolicy",
        env if isinstance(env, str) else env(),
        learning_starts=64,
        batch_size=64,
        seed=5,
        policy_delay=2,
        target_policy_noise=0.2,
        target_noise_clip=0.5,
        policy_kwargs=dict(net_arch=[32, 32], n_critics=2),
    )
    model.learn(64)
    np.random.seed(0)
    batch = model.replay_buffer.sample(64)
    model.replay_buffer.sample = lambda batch_size, env=None: batch  # type: ignore[method-assign]
    actor_before = [p.clone() for p in model.actor.parameters()]
    critic_target_before = [p.clone() for p in model.critic_target.parameters()]

    critic, critic_target, actor_target = copy.deepcopy(model.critic), copy.deepcopy(model.critic_target), model.actor_target
    th.manual_seed(123)
    with th.no_grad():
        next_actions = actor_target(batch.next_observations)
        # SB3's randn_like of its actor's output, a contiguous tensor: the numbers row by row
        noise = (th.randn(next_actions.shape) * 0.2).clamp(-0.5, 0.5)
        next_actions = (next_actions + noise).clamp(-1, 1)
        next_q = th.cat(critic_target(batch.next_observations, next_actions), dim=1).min(dim=1, keepdim=True).values
        target = batch.rewards + (1 - batch.dones) * model.gamma * next_q
    critic.set_training_mode(True)
    ref_loss = sum(F.mse_loss(q, target) for q in critic(batch.observations, batch.actions)).item()

    th.manual_seed(123)
    model._current_progress_remaining = 1.0
    model.train(gradient_steps=1, batch_size=64)
    assert model.logger.name_to_value["train/critic_loss"] == pytest.approx(ref_loss, rel=TOL)
    # Delayed: neither the actor nor the targets moved on the first update
    assert all(th.equal(a, b) for a, b in zip(actor_before, model.actor.parameters(), strict=True))
    assert all(th.equal(a, b) for a, b in zip(critic_target_before, model.critic_target.parameters(), strict=True))


def test_sample_chunking_does_not_change_training(monkeypatch):
    """Several gradient steps per train() share one replay sample; its size cap changes nothing but memory."""
    import sb3_ddpg_plus.train_utils as train_utils_module

    def trained(chunk_bytes):
        monkeypatch.setattr(train_utils_module, "SAMPLE_CHUNK_BYTES", chunk_bytes)
        model = DDPGPlus(
            "MlpPolicy",
            "Pendulum-v1",
            learning_starts=64,
            batch_size=32,
            train_freq=4,
            gradient_steps=4,
            seed=1,
            policy_kwargs=dict(net_arch=[16]),
        )
        model.learn(200)
        return model

    one_sample, per_step = trained(1 << 30), trained(1)
    for a, b in zip(one_sample.policy.parameters(), per_step.policy.parameters(), strict=True):
        assert th.equal(a, b)


def test_split_samples_gives_the_slices_of_each_field():
    """The parts of a chunk: each field's consecutive slices, for dict observations, missing fields and arrays too."""
    from stable_baselines3.common.type_aliases import DictReplayBufferSamples

    from sb3_ddpg_plus.train_utils import split_samples

    n, length = 10, 4
    obs = {"a": th.arange(n * 2.0).reshape(n, 2), "b": th.arange(n * 1.0).reshape(n, 1)}
    dones = np.arange(n * 1.0).reshape(n, 1)  # a custom buffer's array
    data = DictReplayBufferSamples(obs, th.arange(n * 3.0).reshape(n, 3), obs, dones, th.ones(n, 1))
    assert data.discounts is None
    parts = split_samples(data, length)
    assert [len(part.rewards) for part in parts] == [4, 4, 2]
    for idx, part in enumerate(parts):
        window = slice(idx * length, (idx + 1) * length)
        assert type(part) is DictReplayBufferSamples and part.discounts is None
        assert all(th.equal(part.observations[key], obs[key][window]) for key in obs)
        assert all(th.equal(part.next_observations[key], obs[key][window]) for key in obs)
        assert th.equal(part.actions, data.actions[window])
        assert np.array_equal(part.dones, dones[window])
        assert th.equal(part.rewards, data.rewards[window])
