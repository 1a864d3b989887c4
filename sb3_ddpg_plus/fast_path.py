"""
The speed layer's one interface: which update path ``train()`` and acting take, and the lists they read.

:class:`FastPath` reads the policy's networks once (the parameter pairs of the target update, the Q-network
parameters frozen during the actor loss, batch-norm statistics, the hand-written gradients of
:mod:`sb3_ddpg_plus.manual_backward`) and keeps snapshots of them. :meth:`FastPath.update` and :meth:`FastPath.acting`
are the one place that decides whether the hand-written path applies: a replaced layer or parameter rebuilds the
lists (and the path, if the networks are still plain MLPs); a hook, a frozen parameter, another device or a torch
without the kernels falls back to calling the modules (autograd). Never an import error, never another computation.
"""

from typing import Any

import torch as th
from stable_baselines3.common.utils import get_parameters_by_name

from sb3_ddpg_plus.manual_backward import ManualBackward, ModuleSnapshot, without_grad


class FastPath:
    """
    :param policy: The policy (``DDPGPlusPolicy`` or SB3's ``TD3Policy``)
    """

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        # The path of the last update (None: no update yet), so that a change is printed once
        self._last_autograd: bool | None = None
        self.refresh()

    def refresh(self) -> None:
        """Read the networks again (after a layer or parameter was replaced)."""
        policy = self.policy
        actor, actor_target, critic, critic_target = policy.actor, policy.actor_target, policy.critic, policy.critic_target
        actor_params = list(actor.parameters())
        critic_params = dict(critic.named_parameters())
        critic_target_params = dict(critic_target.named_parameters())
        # With a shared features extractor the critic holds the actor's extractor: it is trained (and its target
        # updated) through the actor only
        shared = {id(p) for p in actor_params} if policy.share_features_extractor else set()
        names = [name for name, param in critic_params.items() if id(param) not in shared]
        # Target update pairs: one fused lerp per update instead of a loop over tensors
        self.online_params = [critic_params[name] for name in names] + actor_params
        self.target_params = [critic_target_params[name] for name in names] + list(actor_target.parameters())
        # Q-network parameters, frozen while the actor loss is back-propagated (no gradient is computed for them)
        self.q_network_params = [p for q_net in critic.q_networks for p in q_net.parameters()]
        # Running mean and variance of batch norm layers are copied to the targets (GH#996)
        self.batch_norm_stats = get_parameters_by_name(critic, ["running_"]) + get_parameters_by_name(actor, ["running_"])
        self.batch_norm_stats_target = get_parameters_by_name(critic_target, ["running_"]) + get_parameters_by_name(
            actor_target, ["running_"]
        )
        self.manual = ManualBackward.for_policy(policy)
        self._snapshot = ModuleSnapshot([actor, actor_target, critic, critic_target])
        self._actor_snapshot = ModuleSnapshot([actor])

    def update(self, enabled: bool, verbose: int = 0) -> ManualBackward | None:
        """
        Call once per ``train()`` call.

        :param enabled: Whether the hand-written gradients are allowed (``DDPGPlus(manual_backward=...)``)
        :param verbose: At 1 or more, a change of the update path is printed
        :return: The hand-written path for this call, or ``None`` for autograd
        """
        if not self._snapshot.unchanged():
            self.refresh()
        manual = self.manual
        chosen = manual if enabled and manual is not None and manual.usable() else None
        if verbose >= 1 and (chosen is None) != self._last_autograd:
            print(f"DDPGPlus: updates use {'autograd' if chosen is None else 'hand-written gradients'}")
        self._last_autograd = chosen is None
        return chosen

    def acting(self, enabled: bool) -> ManualBackward | None:
        """
        Call once per acting step.

        :param enabled: Whether the hand-written path is allowed
        :return: The path whose ``act`` equals ``actor(obs)``, or ``None`` to call the actor
        """
        if not self._actor_snapshot.unchanged():
            self.refresh()
        manual = self.manual
        return manual if enabled and manual is not None and manual.can_act() else None

    @without_grad
    def update_targets(self, tau: float) -> None:
        """
        Polyak update, fused: ``target <- target + tau * (online - target)``, then batch-norm statistics copied.

        :param tau: The soft update coefficient
        """
        th._foreach_lerp_(self.target_params, self.online_params, tau)
        for stat, target_stat in zip(self.batch_norm_stats, self.batch_norm_stats_target, strict=True):
            target_stat.copy_(stat)
