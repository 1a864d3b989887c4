"""
The DDPG/TD3 losses' gradients for plain MLP policies, written by hand: the same update as autograd's, with less
overhead.

For small networks on a CPU, autograd's bookkeeping (recording the graph, then the engine walking it) costs more
than the arithmetic: with [64, 64] networks and batch 256 it is about half of a gradient step. A plain MLP
(Linear layers with one elementwise activation between them, and optionally a layer norm before each activation, as
in the layer-norm policies and so the recommended configuration) has a backward pass that fits in a few lines. For
such policies the critic and actor gradients are computed here with the same kernels autograd would call (``mm``,
``threshold_backward``/``tanh_backward``, ``native_layer_norm_backward``, ``sum``), written straight into each
parameter's ``.grad``. The optimizers then step exactly as after ``loss.backward()``. Anything else (dropout, custom
extractors, images, gradient hooks, GPU) goes through autograd. ``tests/test_train_reference.py`` checks both paths
against a plain reference update.

The networks are read once, when the path is built; :class:`ModuleSnapshot` notices anything done to them since
(a layer replaced, a parameter reassigned, a forward or backward hook registered, a ``forward`` patched on an
instance), so that the algorithm rebuilds the path or falls back to calling the modules. The path never computes
something other than what the modules say.
"""

import functools
import itertools
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import ContinuousCritic
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import FlattenExtractor
from stable_baselines3.td3.policies import Actor as SB3Actor
from torch import nn
from torch.nn import functional as F
from torch.nn.modules import module as _torch_module

from sb3_ddpg_plus.matmul import is_skinny, linear, matmul, transposed_linear
from sb3_ddpg_plus.policies import Actor, Critic, has_global_hooks

# Derivative of each supported hidden activation, from its output (the kernels autograd's ReLU and Tanh backward
# call). Looked up once; a torch without them turns the hand-written path off instead of failing the import.
try:
    _tanh_backward = th.ops.aten.tanh_backward.default
    _threshold_backward = th.ops.aten.threshold_backward.default
    # Layer norm's forward (which also returns the mean and 1/std its backward needs) and backward: the kernels that
    # F.layer_norm and autograd's LayerNorm backward call
    _native_layer_norm = th.ops.aten.native_layer_norm.default
    _native_layer_norm_backward = th.ops.aten.native_layer_norm_backward.default
    KERNELS_AVAILABLE = True
except (AttributeError, RuntimeError):  # pragma: no cover - depends on the torch build
    _tanh_backward = _threshold_backward = _native_layer_norm = _native_layer_norm_backward = None  # type: ignore[assignment]
    KERNELS_AVAILABLE = False
_ACTIVATION_BACKWARD = {
    nn.ReLU: lambda grad, out: _threshold_backward(grad, out, 0),
    nn.Tanh: _tanh_backward,
}
_ACTIVATION_FORWARD = {nn.ReLU: th.relu_, nn.Tanh: th.tanh_}
# Forward methods that compute mu(flatten(obs)) and q_i(cat(flatten(obs), action)): ours and upstream's
_ACTOR_FORWARDS = (Actor.forward, SB3Actor.forward)
_CRITIC_FORWARDS = (Critic.forward, ContinuousCritic.forward)
_CRITIC_Q1_FORWARDS = (Critic.q1_forward, ContinuousCritic.q1_forward)


_F = TypeVar("_F", bound=Callable[..., Any])
# torch's private switch of grad mode (what th.no_grad() calls inside); the public th.set_grad_enabled where a torch
# does not have it
_set_grad_enabled: Callable[[bool], Any] = getattr(th._C, "_set_grad_enabled", None) or th.set_grad_enabled


def without_grad(function: _F) -> _F:
    """
    Decorator: ``function`` runs with autograd off, as under ``@th.no_grad()``, for less overhead per call (no
    context-manager object; nothing to switch when grad mode is already off). Called several times per environment
    step, where ``th.no_grad()``'s cost (about 2 us) is large next to a small network's forward pass.

    :param function: The function
    :return: The decorated function
    """

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not th.is_grad_enabled():
            return function(*args, **kwargs)
        _set_grad_enabled(False)
        try:
            return function(*args, **kwargs)
        finally:
            _set_grad_enabled(True)

    return wrapper  # type: ignore[return-value]


class LayerOutputs(list):  # type: ignore[type-arg]
    """
    What :meth:`PlainMLP.forward` returns: the input and every layer's output (a list), plus, per hidden layer with
    layer norm, what its backward pass needs (``norms[idx]``: the norm's input, mean and 1/std; ``None`` without one).
    """

    norms: list[tuple[th.Tensor, th.Tensor, th.Tensor] | None]


@dataclass
class PlainMLP:
    """
    An MLP ``Linear [-> LayerNorm] -> act -> ... -> Linear [-> Tanh]``, as ``create_mlp`` builds it, without extra
    modules or with a LayerNorm after hidden Linear layers (``post_linear_modules=[nn.LayerNorm]``, the layer-norm
    policies).

    :param linears: The Linear layers, input first
    :param activation: The hidden activation's class (``nn.ReLU`` or ``nn.Tanh``)
    :param squash: Whether the output goes through tanh (the actor)
    :param norms: Per hidden layer, its LayerNorm (with weight and bias) or ``None``; default: none
    """

    linears: list[nn.Linear]
    activation: type[nn.Module]
    squash: bool
    norms: list[nn.LayerNorm | None] | None = None

    def __post_init__(self) -> None:
        if self.norms is None:
            self.norms = [None] * (len(self.linears) - 1)
        self.has_norms = any(norm is not None for norm in self.norms)
        # The Parameter objects themselves (updated in place by the optimizers, load_state_dict and .to()), read
        # without nn.Module's attribute lookup in the hot loop
        self.weights = [layer.weight for layer in self.linears]
        self.biases = [layer.bias for layer in self.linears]
        self.skinny_weight_grad = [is_skinny(layer.out_features, layer.in_features) for layer in self.linears]
        # Per batch size: which layers' products are computed transposed (matmul.transposed_linear, looked up once per
        # batch size: the inputs are 2-D and every layer has a bias)
        self._transposed: dict[int, list[bool]] = {}
        self._not_transposed = [False] * len(self.linears)
        self._activation_forward = _ACTIVATION_FORWARD[self.activation]
        self._activation_backward = _ACTIVATION_BACKWARD[self.activation]

    @classmethod
    def from_sequential(cls, mlp: nn.Module, squash: bool) -> "PlainMLP | None":
        """
        :param mlp: An ``nn.Sequential``
        :param squash: Whether its output must be squashed by tanh
        :return: Its plain description, or ``None`` when it is anything else (layer norm, dropout, no bias, ...)
        """
        if not isinstance(mlp, nn.Sequential):
            return None
        layers = list(mlp)
        if squash:
            if not layers or type(layers[-1]) is not nn.Tanh:
                return None
            layers = layers[:-1]
        # Hidden blocks Linear [-> LayerNorm] -> activation, then the output Linear
        linears: list[nn.Module] = []
        norms: list[nn.LayerNorm | None] = []
        activations: list[nn.Module] = []
        position = 0
        while True:
            if position == len(layers):
                return None
            linears.append(layers[position])
            position += 1
            if position == len(layers):
                break
            norm = layers[position]
            if type(norm) is nn.LayerNorm:
                if not _plain_layer_norm(norm, linears[-1]):
                    return None
                norms.append(norm)
                position += 1
            else:
                norms.append(None)
            if position == len(layers):
                return None
            activations.append(layers[position])
            position += 1
        if not all(type(layer) is nn.Linear and layer.bias is not None for layer in linears):
            return None
        kinds = {type(layer) for layer in activations}
        if len(kinds) > 1 or not kinds <= set(_ACTIVATION_BACKWARD):
            return None
        activation = kinds.pop() if kinds else nn.ReLU
        return cls(linears, activation, squash, norms)  # type: ignore[arg-type]

    def _orientation(self, inputs: th.Tensor) -> list[bool]:
        """:return: Whether each layer's product is computed transposed for these inputs (never for other than 2-D)"""
        if inputs.dim() != 2:
            return self._not_transposed
        rows = inputs.shape[0]
        transposed = self._transposed.get(rows)
        if transposed is None:
            transposed = [transposed_linear(rows, layer.in_features, layer.out_features) for layer in self.linears]
            self._transposed[rows] = transposed
        return transposed

    def parameters(self) -> list[th.Tensor]:
        params = [param for pair in zip(self.weights, self.biases, strict=True) for param in pair]
        return params + [param for norm in self.norms or () if norm is not None for param in (norm.weight, norm.bias)]

    def forward(self, inputs: th.Tensor) -> list[th.Tensor]:
        """
        :param inputs: A batch of inputs
        :return: The input and every layer's output (after its activation), the network's output last
        """
        if self.has_norms:
            return self._forward_with_norms(inputs)
        activation = self._activation_forward
        outputs = [inputs]
        last = len(self.weights) - 1
        x = inputs
        for idx, (weight, bias, transposed) in enumerate(
            zip(self.weights, self.biases, self._orientation(inputs), strict=True)
        ):
            x = th.addmm(bias.unsqueeze(1), weight, x.t()).t() if transposed else F.linear(x, weight, bias)
            if idx < last:
                x = activation(x)
            elif self.squash:
                x = x.tanh_()
            outputs.append(x)
        return outputs

    def _forward_with_norms(self, inputs: th.Tensor) -> "LayerOutputs":
        """:meth:`forward` for networks with layer norm, which also keeps what the norms' backward needs."""
        activation = self._activation_forward
        outputs = LayerOutputs([inputs])
        outputs.norms = []
        norms = self.norms
        assert norms is not None
        last = len(self.weights) - 1
        x = inputs
        for idx, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = linear(x, weight, bias)
            if idx < last:
                norm = norms[idx]
                if norm is None:
                    outputs.norms.append(None)
                else:
                    pre_norm = x
                    x, mean, rstd = _native_layer_norm(pre_norm, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
                    outputs.norms.append((pre_norm, mean, rstd))
                x = activation(x)  # (in place: on the norm's output, never on pre_norm)
            elif self.squash:
                x = x.tanh_()
            outputs.append(x)
        return outputs

    def output(self, inputs: th.Tensor) -> th.Tensor:
        """
        :param inputs: A batch of inputs
        :return: The network's output, as ``forward(inputs)[-1]`` (nothing is kept for a backward pass)
        """
        activation = self._activation_forward
        last = len(self.weights) - 1
        norms = self.norms if self.has_norms else None
        x = inputs
        for idx, (weight, bias, transposed) in enumerate(
            zip(self.weights, self.biases, self._orientation(inputs), strict=True)
        ):
            x = th.addmm(bias.unsqueeze(1), weight, x.t()).t() if transposed else F.linear(x, weight, bias)
            if idx < last:
                if norms is not None and (norm := norms[idx]) is not None:
                    x = F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
                x = activation(x)
        return x.tanh_() if self.squash else x

    def backward(
        self, outputs: list[th.Tensor], grad_output: th.Tensor, accumulate_parameters: bool, input_columns: slice | None
    ) -> th.Tensor | None:
        """
        Back-propagate ``grad_output`` (the loss's gradient with respect to the network's output).

        :param outputs: What ``forward`` returned
        :param grad_output: Gradient of the loss with respect to the output
        :param accumulate_parameters: Write the parameters' gradients into their ``.grad`` (overwriting it)
        :param input_columns: Columns of the input whose gradient is wanted (``None``: none)
        :return: The gradient with respect to those input columns, or ``None``
        """
        activation_backward = self._activation_backward
        grad = _tanh_backward(grad_output, outputs[-1]) if self.squash else grad_output
        for idx in range(len(self.weights) - 1, -1, -1):
            weight = self.weights[idx]
            if accumulate_parameters:
                weight_grad = _grad_buffer(weight)
                if self.skinny_weight_grad[idx]:
                    weight_grad.copy_(th.mm(outputs[idx].t(), grad).t())
                else:
                    th.mm(grad.t(), outputs[idx], out=weight_grad)
                th.sum(grad, 0, out=_grad_buffer(self.biases[idx]))
            if idx > 0:
                grad = activation_backward(matmul(grad, weight), outputs[idx])  # type: ignore[operator]
                if self.has_norms:
                    grad = self._norm_backward(idx - 1, outputs, grad, accumulate_parameters)
            elif input_columns is not None:
                return matmul(grad, weight[:, input_columns])
        return None

    def _norm_backward(self, idx: int, outputs: list[th.Tensor], grad: th.Tensor, accumulate_parameters: bool) -> th.Tensor:
        """
        Back-propagate through hidden layer ``idx``'s layer norm, if it has one, as autograd would (the same kernel).

        :param idx: The hidden layer
        :param outputs: What :meth:`forward` returned (a :class:`LayerOutputs`)
        :param grad: Gradient with respect to the norm's output
        :param accumulate_parameters: Write the norm's weight and bias gradients into their ``.grad`` (overwriting it)
        :return: Gradient with respect to the norm's input (``grad`` itself without a norm)
        """
        assert self.norms is not None and isinstance(outputs, LayerOutputs)
        norm = self.norms[idx]
        saved = outputs.norms[idx]
        if norm is None or saved is None:
            return grad
        pre_norm, mean, rstd = saved
        mask = [True, accumulate_parameters, accumulate_parameters]
        grad_input, grad_weight, grad_bias = _native_layer_norm_backward(
            grad, pre_norm, norm.normalized_shape, mean, rstd, norm.weight, norm.bias, mask
        )
        if accumulate_parameters:
            _write_grad(norm.weight, grad_weight)
            _write_grad(norm.bias, grad_bias)
        return grad_input


def _plain_layer_norm(norm: nn.LayerNorm, previous: nn.Module) -> bool:
    """:return: Whether ``norm`` normalises the whole output of the Linear layer ``previous``, with weight and bias"""
    return (
        norm.weight is not None
        and norm.bias is not None
        and isinstance(previous, nn.Linear)
        and tuple(norm.normalized_shape) == (previous.out_features,)
    )


def _write_grad(param: th.Tensor, grad: th.Tensor) -> None:
    """Overwrite the parameter's ``.grad`` with ``grad`` (a fresh tensor): taken as it is when there is none yet."""
    if param.grad is None or param.grad.shape != param.shape or not param.grad.is_contiguous():
        param.grad = grad
    else:
        param.grad.copy_(grad)


def _grad_buffer(param: th.Tensor) -> th.Tensor:
    """The parameter's ``.grad``, reused when it has the right layout (it is overwritten, as after zero_grad)."""
    grad = param.grad
    if grad is None or grad.shape != param.shape or not grad.is_contiguous():
        grad = param.grad = th.empty_like(param, memory_format=th.contiguous_format)
    return grad


_requires_grad = operator.attrgetter("requires_grad")
_gradient_hooks = operator.attrgetter("_backward_hooks")
_post_accumulate_hooks = operator.attrgetter("_post_accumulate_grad_hooks")


def _has_gradient_hooks(params: list[th.Tensor]) -> bool:
    # Hooks on a parameter's gradient run inside autograd only: such parameters keep the autograd path
    return any(map(_gradient_hooks, params)) or any(map(_post_accumulate_hooks, params))


# Counts registrations of modules, parameters and buffers on any module (assignments such as ``mu[4] = layer`` or
# ``layer.weight = Parameter(...)``), through torch's global registration hooks: a snapshot whose count is unchanged
# needs no structural comparison. Installed with the first snapshot, not at import.
_registrations = [0]
_watching = [False]


def _count_registration(*_: object) -> None:
    _registrations[0] += 1


def _watch_registrations() -> None:
    if _watching[0]:
        return
    for name in (
        "register_module_module_registration_hook",
        "register_module_parameter_registration_hook",
        "register_module_buffer_registration_hook",
    ):
        register = getattr(_torch_module, name, None)
        if register is None:  # an older torch: every check compares the structure
            _registrations[0] = -1
            return
        register(_count_registration)
    _watching[0] = True


class ModuleSnapshot:
    """
    The structure of some networks when the snapshot was taken: each module's children and parameters (the
    objects themselves) and the critics' ``q_networks`` lists, plus the modules' hook dictionaries. Checked once per
    ``train()`` call and once per acting step, so the checks avoid Python loops: structure is compared only after
    a module, parameter or buffer was registered somewhere, and the hook dictionaries are tested in one ``any``.

    :param roots: The networks
    """

    def __init__(self, roots: Iterable[Any]) -> None:
        _watch_registrations()
        self._stamp = _registrations[0]
        self.roots = list(roots)
        modules: dict[int, nn.Module] = {}
        for root in self.roots:
            for module in root.modules():
                modules.setdefault(id(module), module)
        self.modules = list(modules.values())
        self._children = [tuple(module._modules.values()) for module in self.modules]
        self._parameters = [tuple(module._parameters.values()) for module in self.modules]
        self._q_networks = [(root, tuple(root.q_networks)) for root in self.roots if hasattr(root, "q_networks")]
        # The dictionaries hooks are registered in (filled and emptied in place by register_*_hook and handle.remove())
        self._hook_dicts = [
            hooks
            for module in self.modules
            for hooks in (module._forward_hooks, module._forward_pre_hooks, module._backward_hooks, module._backward_pre_hooks)
        ]
        self._instance_dicts = [module.__dict__ for module in self.modules]

    def unchanged(self) -> bool:
        """:return: Whether no module, parameter or Q-network list was replaced, added or removed since"""
        for root, q_networks in self._q_networks:
            if not _same(root.q_networks, q_networks):
                return False
        if self._stamp == _registrations[0] and self._stamp >= 0:
            return True
        for module, children, parameters in zip(self.modules, self._children, self._parameters, strict=True):
            if not _same(module._modules.values(), children) or not _same(module._parameters.values(), parameters):
                return False
        # Registrations elsewhere (another model built, say): nothing to compare again until the next one
        self._stamp = _registrations[0]
        return True

    def hooked(self) -> bool:
        """:return: Whether any module has a hook (its own or a global one) or a ``forward`` set on the instance"""
        return (
            has_global_hooks()
            or any(self._hook_dicts)
            or any(map(operator.contains, self._instance_dicts, itertools.repeat("forward")))
        )


def _same(current: Iterable[object], saved: tuple[object, ...]) -> bool:
    # Identity, not equality: parameters are tensors, whose == is elementwise
    current = tuple(current)
    return len(current) == len(saved) and all(a is b for a, b in zip(current, saved, strict=True))


class ManualBackward:
    """
    Critic and actor gradients of DDPG/TD3 for plain MLP policies, without autograd.

    Build with :meth:`for_policy`, which returns ``None`` when the policy is not eligible.

    :param actor: The actor's network (``actor.mu``)
    :param q_networks: The critic's Q-networks
    :param actor_target: The target actor's network
    :param q_networks_target: The target critic's Q-networks
    :param features_dim: Width of the critic's features (its input is ``[features, actions]``)
    """

    def __init__(
        self,
        actor: PlainMLP,
        q_networks: list[PlainMLP],
        actor_target: PlainMLP,
        q_networks_target: list[PlainMLP],
        features_dim: int,
    ) -> None:
        self.actor = actor
        self.q_networks = q_networks
        self.actor_target = actor_target
        self.q_networks_target = q_networks_target
        self.action_columns = slice(features_dim, None)
        self._params = actor.parameters() + [param for q_net in q_networks for param in q_net.parameters()]
        # The modules these layers were read from (set by for_policy; empty snapshots otherwise)
        self.actor_snapshot = ModuleSnapshot([])
        self.snapshot = ModuleSnapshot([])

    @classmethod
    def for_policy(cls, policy: Any) -> "ManualBackward | None":
        """
        :param policy: A ``DDPGPlusPolicy`` or an upstream ``TD3Policy`` (as loaded from an SB3 DDPG/TD3 file)
        :return: The hand-written update for it, or ``None`` unless its actor and critic are plain MLPs on flat
            Box observations with the default (parameter-free) features extractor, and their classes compute
            ``mu(flatten(obs))`` and ``q(cat(flatten(obs), action))`` (ours and upstream's do)
        """
        if not KERNELS_AVAILABLE:
            return None
        actors = (policy.actor, policy.actor_target)
        critics = (policy.critic, policy.critic_target)
        observation_space = policy.observation_space
        if not isinstance(observation_space, spaces.Box) or is_image_space(observation_space):
            return None
        for net in actors + critics:
            if type(net.features_extractor) is not FlattenExtractor:
                return None
        if not all(type(net).forward in _ACTOR_FORWARDS for net in actors):
            return None
        if not all(type(net).forward in _CRITIC_FORWARDS and type(net).q1_forward in _CRITIC_Q1_FORWARDS for net in critics):
            return None
        actor_mlps = [PlainMLP.from_sequential(actor.mu, squash=True) for actor in actors]
        q_mlps = [[PlainMLP.from_sequential(q_net, squash=False) for q_net in critic.q_networks] for critic in critics]
        if any(mlp is None for mlp in actor_mlps + q_mlps[0] + q_mlps[1]) or not q_mlps[0]:
            return None
        features_dim = policy.critic.features_extractor.features_dim
        manual = cls(actor_mlps[0], q_mlps[0], actor_mlps[1], q_mlps[1], features_dim)  # type: ignore[arg-type]
        manual.actor_snapshot = ModuleSnapshot([policy.actor])
        manual.snapshot = ModuleSnapshot([*actors, *critics])
        return manual

    def usable(self) -> bool:
        """
        :return: Whether the gradients may be computed here: the parameters are on the CPU (the only device this
            path was measured on), trainable and free of gradient hooks, and no module has a hook (the caller checks
            ``snapshot.unchanged()`` first)
        """
        params = self._params
        return (
            params[0].is_cpu
            and all(map(_requires_grad, params))
            and not _has_gradient_hooks(params)
            and not self.snapshot.hooked()
        )

    def can_act(self) -> bool:
        """:return: Whether :meth:`act` computes what ``actor(obs)`` would (CPU, no hook on the actor's modules)"""
        return self._params[0].is_cpu and not self.actor_snapshot.hooked()

    @staticmethod
    def _features(observations: th.Tensor) -> th.Tensor:
        # FlattenExtractor on a flat Box: what Actor/Critic compute. A float32 batch of vectors (what the buffer
        # samples) is returned as is, which is what both calls return for it, without their two dispatches
        if observations.dtype is th.float32 and observations.dim() == 2:
            return observations
        return observations.float().flatten(1)

    @without_grad
    def act(self, observations: th.Tensor) -> th.Tensor:
        """:return: The actor's actions, as ``policy.actor(observations)`` (acting: no gradient)"""
        return self.actor.output(self._features(observations))

    @without_grad
    def target_actor(self, observations: th.Tensor) -> th.Tensor:
        """:return: The target actor's actions, as ``policy.actor_target(observations)``"""
        return self.actor_target.output(self._features(observations))

    @without_grad
    def target_critic(self, observations: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, ...]:
        """:return: The target Q-values, as ``policy.critic_target(observations, actions)``"""
        qvalue_input = th.cat([self._features(observations), actions], dim=1)
        return tuple(q_net.output(qvalue_input) for q_net in self.q_networks_target)

    @without_grad
    def critic_backward(
        self,
        observations: th.Tensor,
        actions: th.Tensor,
        target_q_values: th.Tensor,
        weights: th.Tensor | None = None,
        huber: bool = False,
        td_errors: bool = False,
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
        """
        Gradient of the critic loss ``sum_i mean(w * l(Q_i(s, a) - y))`` into the Q-networks' ``.grad``, with
        ``l(e) = e^2`` (MSE) or the Huber loss with ``delta=1`` (LAP), ``w = 1`` unless importance weights are given
        (PER): what :func:`~sb3_ddpg_plus.train_utils.critic_loss` computes.

        :param observations: Observations ``s``
        :param actions: Actions ``a`` (scaled)
        :param target_q_values: TD targets ``y``
        :param weights: Importance-sampling weights, shape ``(batch, 1)``, or ``None``
        :param huber: Huber loss (``delta=1``) instead of the squared error
        :param td_errors: Also return the largest absolute TD error over the Q-networks, per sample
        :return: The critic loss, the first Q-network's values, and the absolute TD errors or ``None`` (detached)
        """
        qvalue_input = th.cat([self._features(observations), actions], dim=1)
        scale = 1.0 / target_q_values.numel()
        critic_loss = None
        current_q1 = None
        td_abs = None
        for q_net in self.q_networks:
            outputs = q_net.forward(qvalue_input)
            error = outputs[-1] - target_q_values
            abs_error = error.abs() if huber or td_errors else None
            if td_errors:
                assert abs_error is not None
                td_abs = abs_error if td_abs is None else th.maximum(td_abs, abs_error)
            if abs_error is not None and huber:
                # l(e) = e^2 / 2 for |e| < 1, |e| - 1/2 beyond; l'(e) = clamp(e, -1, 1)
                per_sample = th.where(abs_error < 1.0, 0.5 * error.square(), abs_error - 0.5)
                grad = error.clamp_(-1.0, 1.0).mul_(scale)
            else:
                per_sample = error.square()
                grad = error.mul_(2.0 * scale)  # d mean(e^2) / d q = 2 (q - y) / N, in place (error is not read again)
            if weights is not None:
                per_sample = per_sample * weights
                grad = grad.mul_(weights)
            loss = per_sample.mean()
            critic_loss = loss if critic_loss is None else critic_loss + loss
            current_q1 = outputs[-1] if current_q1 is None else current_q1
            q_net.backward(outputs, grad, accumulate_parameters=True, input_columns=None)
        assert critic_loss is not None and current_q1 is not None
        return critic_loss, current_q1, td_abs

    @without_grad
    def actor_backward(self, observations: th.Tensor) -> th.Tensor:
        """
        Gradient of the actor loss ``-mean(Q_1(s, mu(s)))`` into the actor's ``.grad`` (the critic's gradients are
        not computed, as when its parameters are frozen).

        :param observations: Observations ``s``
        :return: The actor loss (detached)
        """
        features = self._features(observations)
        actor_outputs = self.actor.forward(features)
        q_net = self.q_networks[0]
        q_outputs = q_net.forward(th.cat([features, actor_outputs[-1]], dim=1))
        actor_loss = q_outputs[-1].mean().neg_()
        grad_q = th.full_like(q_outputs[-1], -1.0 / q_outputs[-1].numel())
        grad_actions = q_net.backward(q_outputs, grad_q, accumulate_parameters=False, input_columns=self.action_columns)
        assert grad_actions is not None
        self.actor.backward(actor_outputs, grad_actions, accumulate_parameters=True, input_columns=None)
        return actor_loss
