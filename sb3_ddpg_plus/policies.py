"""
Actor and critic networks for DDPGPlus, modelled on SB3's TD3 policies, with layer norm options.

Layer norm follows the parameter-noise paper and SB2's ``LnMlpPolicy``: Linear -> LayerNorm -> activation on every
hidden layer, none on the output layer (built with SB3's ``create_mlp(post_linear_modules=[nn.LayerNorm])``).
"""

import math
from collections.abc import Mapping
from typing import Any, cast

import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BaseModel, BasePolicy
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    NatureCNN,
    create_mlp,
    get_actor_critic_arch,
)
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn
from torch.nn import functional as F
from torch.nn.modules import module as _torch_module

from sb3_ddpg_plus.matmul import linear
from sb3_ddpg_plus.optim import LeanAdam, lean_adam_available
from sb3_ddpg_plus.validation import DDPGPlusInputError, check_float, check_int, check_net_arch


def _hidden_modules(layer_norm: bool) -> list[type[nn.Module]] | None:
    return [nn.LayerNorm] if layer_norm else None


def mlp_forward(mlp: nn.Module, x: th.Tensor) -> th.Tensor:
    """
    Run an MLP built by ``create_mlp`` without ``nn.Module.__call__`` for its common layers: the same functions
    (``F.linear``, ``F.layer_norm``, ...) on the same parameters, minus ~3 us of call overhead per layer, which is a
    tenth of a small network's update. A module with a hook (forward or backward, its own or a global one) or with
    a ``forward`` set on the instance is called normally, as are other layers (dropout, custom ones), so the result
    and the hooks are what ``mlp(x)`` gives.

    :param mlp: The MLP
    :param x: Its input
    :return: Its output
    """
    if has_global_hooks() or is_hooked(mlp):
        return mlp(x)
    for layer in mlp:  # type: ignore[attr-defined]
        layer = cast(Any, layer)  # nn.Module attributes are typed as Tensor | Module
        kind = type(layer)
        if is_hooked(layer):
            x = layer(x)
        elif kind is nn.Linear:
            x = linear(x, layer.weight, layer.bias)
        elif kind is nn.ReLU:
            x = F.relu(x)
        elif kind is nn.Tanh:
            x = th.tanh(x)
        elif kind is nn.LayerNorm:
            x = F.layer_norm(x, layer.normalized_shape, layer.weight, layer.bias, layer.eps)
        else:
            x = layer(x)
    return x


def _features(model: BaseModel, obs: PyTorchObs, features_extractor: BaseFeaturesExtractor) -> th.Tensor:
    # Fast path for the default extractor on Box observations: preprocess_obs + FlattenExtractor is a float cast
    # and a flatten (unless a hook on the extractor must run)
    if (
        type(features_extractor) is FlattenExtractor
        and isinstance(obs, th.Tensor)
        and model._flat_box_obs
        and not is_hooked(features_extractor)
        and not is_hooked(features_extractor.flatten)
        and not has_global_hooks()
    ):
        return obs.float().flatten(1)
    return model.extract_features(obs, features_extractor)


def has_global_hooks() -> bool:
    """:return: Whether a global module hook is registered (``torch.nn.modules.module.register_module_*_hook``)"""
    return bool(
        _torch_module._global_forward_hooks
        or _torch_module._global_forward_pre_hooks
        or _torch_module._global_backward_hooks
        or _torch_module._global_backward_pre_hooks
    )


def is_hooked(module: nn.Module) -> bool:
    """
    :param module: A module
    :return: Whether calling it would run more than its class's ``forward`` (its own hooks, or a ``forward`` set
        on the instance)
    """
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or module._backward_hooks
        or module._backward_pre_hooks
        or "forward" in module.__dict__
    )


def _is_flat_box(observation_space: spaces.Space) -> bool:
    from stable_baselines3.common.preprocessing import is_image_space

    return isinstance(observation_space, spaces.Box) and not is_image_space(observation_space)


class Actor(BasePolicy):
    """
    Deterministic actor ``mu(s)`` with a tanh output in the scaled ``[-1, 1]`` action space.

    :param observation_space: Observation space
    :param action_space: Action space
    :param net_arch: Units per hidden layer
    :param features_extractor: Network to extract features
    :param features_dim: Number of features
    :param activation_fn: Activation function
    :param normalize_images: Whether to divide images by 255
    :param layer_norm: Whether to add LayerNorm after each hidden Linear layer (before the activation)
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: list[int],
        features_extractor: nn.Module,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        layer_norm: bool = False,
    ):
        super().__init__(
            observation_space,
            action_space,
            features_extractor=features_extractor,
            normalize_images=normalize_images,
            squash_output=True,
        )
        self.net_arch = net_arch
        self.features_dim = features_dim
        self.activation_fn = activation_fn
        self.layer_norm = layer_norm
        action_dim = get_action_dim(self.action_space)
        actor_net = create_mlp(
            features_dim,
            action_dim,
            net_arch,
            activation_fn,
            squash_output=True,
            post_linear_modules=_hidden_modules(layer_norm),
        )
        self.mu = nn.Sequential(*actor_net)
        self._flat_box_obs = _is_flat_box(observation_space)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            dict(
                net_arch=self.net_arch,
                features_dim=self.features_dim,
                activation_fn=self.activation_fn,
                features_extractor=self.features_extractor,
            )
        )
        if self.layer_norm:
            # Only when used, so that upstream's td3 Actor.load reads the file of an actor without it
            data["layer_norm"] = True
        return data

    def forward(self, obs: PyTorchObs) -> th.Tensor:
        return mlp_forward(self.mu, _features(self, obs, self.features_extractor))

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        # The actor is deterministic: exploration noise is added by the algorithm in `_sample_action` only,
        # so `predict()` (whose default is deterministic=False) never explores.
        return self(observation)


class Critic(BaseModel):
    """
    One or more Q-networks ``Q(s, a)``; the action is concatenated with the features at the input, as in SB3.

    :param observation_space: Observation space
    :param action_space: Action space
    :param net_arch: Units per hidden layer
    :param features_extractor: Network to extract features
    :param features_dim: Number of features
    :param activation_fn: Activation function
    :param normalize_images: Whether to divide images by 255
    :param n_critics: Number of Q-networks (2 for TD3's clipped double Q-learning)
    :param share_features_extractor: Whether the features extractor is the actor's (then it is trained by the
        actor loss only)
    :param layer_norm: Whether to add LayerNorm after each hidden Linear layer (before the activation)
    """

    features_extractor: BaseFeaturesExtractor

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: list[int],
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        n_critics: int = 1,
        share_features_extractor: bool = False,
        layer_norm: bool = False,
    ):
        super().__init__(
            observation_space, action_space, features_extractor=features_extractor, normalize_images=normalize_images
        )
        action_dim = get_action_dim(self.action_space)
        self.share_features_extractor = share_features_extractor
        self.n_critics = n_critics
        self.layer_norm = layer_norm
        self.q_networks: list[nn.Module] = []
        for idx in range(n_critics):
            q_net = nn.Sequential(
                *create_mlp(
                    features_dim + action_dim, 1, net_arch, activation_fn, post_linear_modules=_hidden_modules(layer_norm)
                )
            )
            self.add_module(f"qf{idx}", q_net)
            self.q_networks.append(q_net)
        self._flat_box_obs = _is_flat_box(observation_space)

    def forward(self, obs: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, ...]:
        # A shared features extractor is learned through the actor loss only (as in SB3)
        with th.set_grad_enabled(not self.share_features_extractor):
            features = _features(self, obs, self.features_extractor)
        qvalue_input = th.cat([features, actions], dim=1)
        return tuple(mlp_forward(q_net, qvalue_input) for q_net in self.q_networks)

    def q1_forward(self, obs: th.Tensor, actions: th.Tensor) -> th.Tensor:
        """Q-value of the first network only (the actor loss needs no more)."""
        with th.no_grad():
            features = _features(self, obs, self.features_extractor)
        return mlp_forward(self.q_networks[0], th.cat([features, actions], dim=1))


class DDPGPlusPolicy(BasePolicy):
    """
    Actor, critic and their target networks for DDPGPlus.

    :param observation_space: Observation space
    :param action_space: Action space
    :param lr_schedule: Learning rate schedule (the algorithm sets each optimizer's rate at every update)
    :param net_arch: Units per hidden layer, the same for both networks (list) or ``dict(pi=[...], qf=[...])``
    :param activation_fn: Activation function
    :param features_extractor_class: Features extractor to use
    :param features_extractor_kwargs: Keyword arguments for the features extractor
    :param normalize_images: Whether to divide images by 255
    :param optimizer_class: The optimizer to use (``th.optim.Adam`` by default)
    :param optimizer_kwargs: Keyword arguments for both optimizers, excluding the learning rate
    :param n_critics: Number of Q-networks (1 for DDPG, 2 for TD3)
    :param share_features_extractor: Whether the critic uses the actor's features extractor
    :param actor_layer_norm: LayerNorm on the actor's hidden layers (needed by parameter noise)
    :param critic_layer_norm: LayerNorm on the critic's hidden layers
    :param critic_weight_decay: L2 penalty on the critic's Linear weights only (not biases, not LayerNorm);
        the DDPG paper used 1e-2
    """

    actor: Actor
    actor_target: Actor
    critic: Critic
    critic_target: Critic

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        n_critics: int = 1,
        share_features_extractor: bool = False,
        actor_layer_norm: bool = False,
        critic_layer_norm: bool = False,
        critic_weight_decay: float = 0.0,
    ):
        check_net_arch(net_arch)
        super().__init__(
            observation_space,
            action_space,
            features_extractor_class,
            features_extractor_kwargs,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            squash_output=True,
            normalize_images=normalize_images,
        )
        if not isinstance(action_space, spaces.Box):
            raise DDPGPlusInputError(f"DDPGPlusPolicy needs a Box action space, got {action_space}")
        n_critics = check_int("n_critics", n_critics, 1)
        check_float("critic_weight_decay", critic_weight_decay, 0.0, math.inf, high_open=True)
        if net_arch is None:
            net_arch = [256, 256] if features_extractor_class == NatureCNN else [400, 300]
        actor_arch, critic_arch = get_actor_critic_arch(net_arch)

        self.net_arch = net_arch
        self.activation_fn = activation_fn
        self.actor_layer_norm = actor_layer_norm
        self.critic_layer_norm = critic_layer_norm
        self.critic_weight_decay = critic_weight_decay
        self.share_features_extractor = share_features_extractor
        self.net_args = {
            "observation_space": self.observation_space,
            "action_space": self.action_space,
            "net_arch": actor_arch,
            "activation_fn": self.activation_fn,
            "normalize_images": normalize_images,
        }
        self.actor_kwargs = {**self.net_args, "layer_norm": actor_layer_norm}
        self.critic_kwargs = {
            **self.net_args,
            "net_arch": critic_arch,
            "n_critics": n_critics,
            "share_features_extractor": share_features_extractor,
            "layer_norm": critic_layer_norm,
        }
        self._build(lr_schedule)

    def _build(self, lr_schedule: Schedule) -> None:
        # The features extractor of the actor is never shared with its target
        self.actor = self.make_actor(features_extractor=None)
        self.actor_target = self.make_actor(features_extractor=None)
        self.actor_target.load_state_dict(self.actor.state_dict())
        self.actor.optimizer = self._make_optimizer(self.actor.parameters(), lr=lr_schedule(1))

        if self.share_features_extractor:
            self.critic = self.make_critic(features_extractor=self.actor.features_extractor)
            self.critic_target = self.make_critic(features_extractor=self.actor_target.features_extractor)
        else:
            self.critic = self.make_critic(features_extractor=None)
            self.critic_target = self.make_critic(features_extractor=None)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic.optimizer = self._make_optimizer(self._critic_param_groups(), lr=lr_schedule(1))
        # Target networks are only evaluated
        self.actor_target.set_training_mode(False)
        self.critic_target.set_training_mode(False)

    def _make_optimizer(self, params: Any, lr: float) -> th.optim.Optimizer:
        """
        The configured optimizer. Plain Adam (the default, with no ``fused``/``foreach`` choice) becomes
        :class:`~sb3_ddpg_plus.optim.LeanAdam`: the same update with PyTorch's fused kernel and a cached step, 3x
        cheaper per step for small networks. It is a subclass of ``th.optim.Adam`` with the same ``state_dict``.
        """
        kwargs = dict(self.optimizer_kwargs)
        optimizer_class = self.optimizer_class
        if (
            optimizer_class is th.optim.Adam
            and not {"fused", "foreach"} & set(kwargs)
            and self.device.type in ("cpu", "cuda")
            and lean_adam_available()
        ):
            optimizer_class = LeanAdam
        return optimizer_class(params, lr=lr, **kwargs)  # type: ignore[call-arg]

    def _critic_param_groups(self) -> list[dict[str, Any]]:
        """Critic parameters, with weight decay on Linear/Conv weights only when ``critic_weight_decay > 0``."""
        params = [p for p in self.critic.parameters() if p.requires_grad]
        if self.critic_weight_decay == 0:
            return [{"params": params}]
        decayed_ids = {
            id(module.weight)
            for module in self.critic.modules()
            if isinstance(module, nn.Linear | nn.Conv2d) and module.weight.requires_grad
        }
        decayed = [p for p in params if id(p) in decayed_ids]
        others = [p for p in params if id(p) not in decayed_ids]
        return [{"params": decayed, "weight_decay": self.critic_weight_decay}, {"params": others, "weight_decay": 0.0}]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            dict(
                net_arch=self.net_arch,
                activation_fn=self.net_args["activation_fn"],
                n_critics=self.critic_kwargs["n_critics"],
                lr_schedule=self._dummy_schedule,  # not needed to load the policy alone
                optimizer_class=self.optimizer_class,
                optimizer_kwargs=self.optimizer_kwargs,
                features_extractor_class=self.features_extractor_class,
                features_extractor_kwargs=self.features_extractor_kwargs,
                share_features_extractor=self.share_features_extractor,
            )
        )
        # Our own arguments only when they differ from their defaults, so that a file of a policy that uses none
        # of them is read back by upstream's TD3Policy.load as well
        for name, default in (("actor_layer_norm", False), ("critic_layer_norm", False), ("critic_weight_decay", 0.0)):
            if getattr(self, name) != default:
                data[name] = getattr(self, name)
        return data

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> Actor:
        actor_kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        return Actor(**actor_kwargs).to(self.device)

    def make_critic(self, features_extractor: BaseFeaturesExtractor | None = None) -> Critic:
        critic_kwargs = self._update_features_extractor(self.critic_kwargs, features_extractor)
        return Critic(**critic_kwargs).to(self.device)

    def forward(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self._predict(observation, deterministic=deterministic)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        # Always the clean actor: exploration never leaks into predict()
        return self.actor(observation)

    def set_training_mode(self, mode: bool) -> None:
        """
        Put the policy in training or evaluation mode (affects batch norm and dropout).

        Called twice per environment step by the off-policy loop: setting the flag on a cached module list is much
        cheaper than ``Module.train()``'s recursive walk.

        :param mode: True for training mode, False for evaluation mode
        """
        modules = self.__dict__.get("_training_modules")
        if modules is None:
            modules = [*self.actor.modules(), *self.critic.modules()]
            self.__dict__["_training_modules"] = modules
        for module in modules:
            module.__dict__["training"] = mode
        self.__dict__["training"] = mode


MlpPolicy = DDPGPlusPolicy


class CnnPolicy(DDPGPlusPolicy):
    """
    DDPGPlus policy for image observations: :class:`DDPGPlusPolicy` with the NatureCNN features extractor by default.
    """

    def __init__(self, *args: Any, features_extractor_class: type[BaseFeaturesExtractor] = NatureCNN, **kwargs: Any):
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)  # type: ignore[misc]


class MultiInputPolicy(DDPGPlusPolicy):
    """
    DDPGPlus policy for Dict observation spaces: :class:`DDPGPlusPolicy` with the CombinedExtractor by default.
    """

    def __init__(self, *args: Any, features_extractor_class: type[BaseFeaturesExtractor] = CombinedExtractor, **kwargs: Any):
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)  # type: ignore[misc]


def ddpg_policy_kwargs(policy_class: Any, policy_kwargs: Mapping[str, Any], param_noise: bool) -> dict[str, Any]:
    """
    The ``policy_kwargs`` DDPGPlus builds its policy with (and saves, so that loading rebuilds the same policy).

    :param policy_class: The policy class (ours, or SB3's ``TD3Policy`` or a subclass)
    :param policy_kwargs: The user's ``policy_kwargs``; a copy is returned, never this dict, which may be shared
        with other models, upstream ones included
    :param param_noise: Whether parameter noise is on: our actor then gets layer norm unless told otherwise, as
        layer norm makes perturbations of every layer comparable (Plappert et al., "especially important")
    :return: The keyword arguments, with one critic unless ``n_critics`` is given (SB3's DDPG; ``TD3Policy``'s own
        default is 2)
    """
    kwargs = dict(policy_kwargs)
    kwargs.setdefault("n_critics", 1)
    if param_noise and isinstance(policy_class, type) and issubclass(policy_class, DDPGPlusPolicy):
        kwargs.setdefault("actor_layer_norm", True)
    return kwargs
