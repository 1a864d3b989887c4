"""
``DDPGPlus(compile_update=True)``: the gradient steps of one ``train()`` call as one ``torch.compile``'d loop.

The hand-written update of :mod:`sb3_ddpg_plus.manual_backward` spends most of a [64, 64] gradient step in Python and
in the dispatch of ~90 small operations, not in arithmetic. Here the same update (TD target, critic gradients, Adam,
delayed actor gradients through the first Q-network, Adam, Polyak update) is written as a pure function of tensors
and run as ``torch._higher_order_ops.scan`` over the call's pre-sampled batches, compiled by inductor with its C++
wrapper: one compiled call per ``train()`` call, its body compiled once whatever the number of steps (the scan length
is a dynamic dimension), elementwise work fused into C++ loops, matrix products still PyTorch's kernels.
``benchmarks/results/compiled_train.md`` measures the gain and the compile time (tens of seconds, paid once per
process and network shape; inductor's cache on disk shortens later processes).

What stays as in the eager path: the replay samples (same calls to the buffer, in the same order), the target-policy
noise (drawn step by step from torch's generator, as the eager loop does), the optimizers' ``param_groups`` (read at
every call, so learning-rate schedules take effect) and their state (``exp_avg``, ``exp_avg_sq`` and ``step`` are the
optimizers' own tensors, updated in place, so saving, loading and switching back to the eager path stay exact). The
Adam arithmetic is the fused CPU kernel's: bias corrections in double precision on the host, the rest in float32.

Anything this path does not cover makes :meth:`CompiledUpdate.run` return ``None`` and ``train()`` runs its eager
loop, with one warning per reason: the hand-written path not applying (hooks, layer norm, GPU, ...), prioritized
replay (each step samples from the priorities the previous step wrote, so batches cannot be drawn in advance),
``check_numerics`` and parameter noise (both act between steps), optimizers other than plain Adam, a torch without
``torch.compile``/``scan`` and a failed compilation (no C++ compiler, for one). Nothing of ``torch._dynamo`` or
inductor is imported before the first call.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch as th
from torch import nn
from torch.optim import optimizer as _optimizer_module

from sb3_ddpg_plus.manual_backward import ManualBackward, PlainMLP
from sb3_ddpg_plus.optim import LeanAdam
from sb3_ddpg_plus.train_utils import LossSums, ReplayBatches, min_over_critics, smoothed_target_actions

#: Inductor options: with the C++ wrapper the scan's loop runs without Python between steps (prototype at [64, 64]:
#: 1.6x the eager path's updates per CPU second, 1.3x with the default Python wrapper)
COMPILE_OPTIONS: dict[str, str | int | bool | Callable[..., Any]] = {"cpp_wrapper": True}
#: Fewer groups of ``policy_delay`` steps than this run eagerly: a scan of length 1 would compile a second function
#: (torch specialises dimensions of size 1), and one step gains nothing from the loop
MIN_GROUPS = 2


@dataclass(frozen=True)
class UpdateConfig:
    """
    Everything the compiled function specialises on (a new value compiles a new function).

    :param actor_layers: Linear layers of the actor
    :param critic_layers: Linear layers of each Q-network
    :param n_critics: Number of Q-networks
    :param actor_tanh: Hidden activation of the actor is tanh (else ReLU)
    :param critic_tanh: Hidden activation of the Q-networks is tanh (else ReLU)
    :param features_dim: Width of the observation features (the critic's action columns follow)
    :param policy_delay: Critic steps per actor step: the scan's body is one such group
    :param tau: Polyak coefficient
    :param noise_clip: Limit of the target-policy noise (``None``: no noise)
    :param actor_betas: Adam betas of the actor
    :param actor_eps: Adam epsilon of the actor
    :param actor_weight_decay: Adam (L2) weight decay of each actor parameter
    :param critic_betas: Adam betas of the critic
    :param critic_eps: Adam epsilon of the critic
    :param critic_weight_decay: Adam (L2) weight decay of each critic parameter
    """

    actor_layers: int
    critic_layers: int
    n_critics: int
    actor_tanh: bool
    critic_tanh: bool
    features_dim: int
    policy_delay: int
    tau: float
    noise_clip: float | None
    actor_betas: tuple[float, float]
    actor_eps: float
    actor_weight_decay: tuple[float, ...]
    critic_betas: tuple[float, float]
    critic_eps: float
    critic_weight_decay: tuple[float, ...]


# ---------------------------------------------------------------------------------------------------------------------
# The update as pure functions of tensors (traced by torch.compile; also correct when called eagerly)


def _mlp_forward(x: th.Tensor, params: Sequence[th.Tensor], tanh_hidden: bool, squash: bool) -> list[th.Tensor]:
    # The input and every layer's output after its activation, as PlainMLP.forward
    outputs = [x]
    n_layers = len(params) // 2
    for idx in range(n_layers):
        x = th.nn.functional.linear(x, params[2 * idx], params[2 * idx + 1])
        if idx < n_layers - 1:
            x = th.tanh(x) if tanh_hidden else th.relu(x)
        elif squash:
            x = th.tanh(x)
        outputs.append(x)
    return outputs


def _mlp_backward(
    outputs: list[th.Tensor],
    params: Sequence[th.Tensor],
    grad: th.Tensor,
    tanh_hidden: bool,
    squash: bool,
    parameters: bool,
    input_start: int | None,
) -> tuple[list[th.Tensor], th.Tensor | None]:
    # PlainMLP.backward, returning the gradients instead of writing .grad
    if squash:
        grad = grad * (1 - outputs[-1] * outputs[-1])
    n_layers = len(params) // 2
    grads: list[th.Tensor] = [grad] * (2 * n_layers)  # placeholders, all overwritten when parameters=True
    for idx in range(n_layers - 1, -1, -1):
        weight = params[2 * idx]
        if parameters:
            grads[2 * idx] = grad.t().mm(outputs[idx])
            grads[2 * idx + 1] = grad.sum(0)
        if idx > 0:
            back = grad.mm(weight)
            out = outputs[idx]
            # tanh_backward and threshold_backward(.., 0), the kernels of the eager path
            grad = back * (1 - out * out) if tanh_hidden else th.where(out > 0, back, th.zeros_like(back))
        elif input_start is not None:
            return grads, grad.mm(weight[:, input_start:])
    return grads, None


def _mlp_output(x: th.Tensor, params: Sequence[th.Tensor], tanh_hidden: bool, squash: bool) -> th.Tensor:
    return _mlp_forward(x, params, tanh_hidden, squash)[-1]


def _adam(
    params: Sequence[th.Tensor],
    grads: Sequence[th.Tensor],
    exp_avgs: Sequence[th.Tensor],
    exp_avg_sqs: Sequence[th.Tensor],
    step_size: th.Tensor,
    bias_correction2_sqrt: th.Tensor,
    betas: tuple[float, float],
    eps: float,
    weight_decays: Sequence[float],
) -> tuple[list[th.Tensor], list[th.Tensor], list[th.Tensor]]:
    # PyTorch's fused CPU Adam, element by element (FusedAdamKernel.cpp); step_size = lr / (1 - beta1^t) and
    # sqrt(1 - beta2^t) come from the host, computed in double precision as the kernel does
    beta1, beta2 = betas
    new_params, new_avgs, new_sqs = [], [], []
    for param, grad, exp_avg, exp_avg_sq, weight_decay in zip(
        params, grads, exp_avgs, exp_avg_sqs, weight_decays, strict=True
    ):
        if weight_decay != 0:
            grad = grad + param * weight_decay
        exp_avg = exp_avg * beta1 + grad * (1 - beta1)
        exp_avg_sq = exp_avg_sq * beta2 + grad * grad * (1 - beta2)
        denom = exp_avg_sq.sqrt() / bias_correction2_sqrt + eps
        new_params.append(param - step_size * exp_avg / denom)
        new_avgs.append(exp_avg)
        new_sqs.append(exp_avg_sq)
    return new_params, new_avgs, new_sqs


def _state_slices(cfg: UpdateConfig) -> dict[str, slice]:
    # The flat state list: actor, critic, actor target, critic target, then the Adam moments of actor and critic
    n_actor = 2 * cfg.actor_layers
    n_critic = 2 * cfg.critic_layers * cfg.n_critics
    sizes = [
        ("actor", n_actor),
        ("critic", n_critic),
        ("actor_target", n_actor),
        ("critic_target", n_critic),
        ("actor_avg", n_actor),
        ("actor_sq", n_actor),
        ("critic_avg", n_critic),
        ("critic_sq", n_critic),
    ]
    slices, start = {}, 0
    for name, size in sizes:
        slices[name] = slice(start, start + size)
        start += size
    return slices


def gradient_step(
    cfg: UpdateConfig, state: list[th.Tensor], batch: Sequence[th.Tensor], scalars: Sequence[th.Tensor], update_actor: bool
) -> tuple[list[th.Tensor], th.Tensor, th.Tensor, th.Tensor | None]:
    """
    One gradient step of ``DDPGPlus.train()`` with the hand-written gradients, as a pure function.

    :param cfg: The configuration
    :param state: The flat state (see ``_state_slices``)
    :param batch: ``observations, actions, next_observations, rewards, dones, discounts[, noise]`` of one step
        (observations already flat float32 features)
    :param scalars: Critic ``step_size, sqrt(bias_correction2)`` and, when ``update_actor``, the actor's
    :param update_actor: Whether this step updates the actor and the targets
    :return: The new state, the critic loss, the sum of the first Q-network's values and the actor loss (or ``None``)
    """
    s = _state_slices(cfg)
    actor, critic = state[s["actor"]], state[s["critic"]]
    actor_target, critic_target = state[s["actor_target"]], state[s["critic_target"]]
    per_q = 2 * cfg.critic_layers
    observations, actions, next_observations, rewards, dones, discounts = batch[:6]

    # TD target: min over the target Q-networks at the (noisy) target action
    next_actions = _mlp_output(next_observations, actor_target, cfg.actor_tanh, squash=True)
    if cfg.noise_clip is not None:
        noise = batch[6].clamp(-cfg.noise_clip, cfg.noise_clip)
        next_actions = (next_actions + noise).clamp(-1, 1)
    target_input = th.cat([next_observations, next_actions], dim=1)
    next_q = None
    for k in range(cfg.n_critics):
        q = _mlp_output(target_input, critic_target[k * per_q : (k + 1) * per_q], cfg.critic_tanh, squash=False)
        next_q = q if next_q is None else th.minimum(next_q, q)
    assert next_q is not None
    target_q = rewards + (1 - dones) * discounts * next_q

    # Critic: sum of the Q-networks' MSE, gradient 2 (q - y) / N
    q_input = th.cat([observations, actions], dim=1)
    scale = 2.0 / target_q.numel()
    critic_grads: list[th.Tensor] = []
    critic_loss = th.zeros(())
    q1_sum = th.zeros(())
    for k in range(cfg.n_critics):
        params = critic[k * per_q : (k + 1) * per_q]
        outputs = _mlp_forward(q_input, params, cfg.critic_tanh, squash=False)
        error = outputs[-1] - target_q
        critic_loss = critic_loss + error.square().mean()
        if k == 0:
            q1_sum = outputs[-1].mean()
        grads, _ = _mlp_backward(outputs, params, error * scale, cfg.critic_tanh, False, True, None)
        critic_grads += grads
    critic, critic_avg, critic_sq = _adam(
        critic,
        critic_grads,
        state[s["critic_avg"]],
        state[s["critic_sq"]],
        scalars[0],
        scalars[1],
        cfg.critic_betas,
        cfg.critic_eps,
        cfg.critic_weight_decay,
    )
    actor_avg, actor_sq = state[s["actor_avg"]], state[s["actor_sq"]]
    actor_loss = None
    if update_actor:
        # Actor: -mean(Q_1(s, mu(s))) through the updated first Q-network (its parameters get no gradient)
        q1 = critic[:per_q]
        actor_outputs = _mlp_forward(observations, actor, cfg.actor_tanh, squash=True)
        q_outputs = _mlp_forward(th.cat([observations, actor_outputs[-1]], dim=1), q1, cfg.critic_tanh, squash=False)
        actor_loss = -q_outputs[-1].mean()
        grad_q = th.full_like(q_outputs[-1], -1.0 / q_outputs[-1].numel())
        _, grad_actions = _mlp_backward(q_outputs, q1, grad_q, cfg.critic_tanh, False, False, cfg.features_dim)
        assert grad_actions is not None
        actor_grads, _ = _mlp_backward(actor_outputs, actor, grad_actions, cfg.actor_tanh, True, True, None)
        actor, actor_avg, actor_sq = _adam(
            actor,
            actor_grads,
            actor_avg,
            actor_sq,
            scalars[2],
            scalars[3],
            cfg.actor_betas,
            cfg.actor_eps,
            cfg.actor_weight_decay,
        )
        # Polyak update (the same lerp as FastPath.update_targets)
        critic_target = [th.lerp(t, p, cfg.tau) for t, p in zip(critic_target, critic, strict=True)]
        actor_target = [th.lerp(t, p, cfg.tau) for t, p in zip(actor_target, actor, strict=True)]
    new_state = [*actor, *critic, *actor_target, *critic_target, *actor_avg, *actor_sq, *critic_avg, *critic_sq]
    return new_state, critic_loss, q1_sum, actor_loss


def run_groups(cfg: UpdateConfig, state: list[th.Tensor], xs: list[th.Tensor]) -> th.Tensor:
    """
    The gradient steps of a call as a scan over groups of ``policy_delay`` steps (the last of each updates the actor),
    the final state copied into ``state`` in place.

    :param cfg: The configuration
    :param state: The flat state (parameters, targets, Adam moments: the real tensors)
    :param xs: Per group: the batch tensors ``(groups, policy_delay, batch, ...)``, the critic's Adam scalars
        ``(groups, policy_delay)`` twice and the actor's ``(groups,)`` twice
    :return: Sums over the steps of the critic loss, the first Q-network's mean value and the actor loss
    """
    from torch._higher_order_ops.scan import scan  # (imported when traced: never at package import)

    n_batch = len(xs) - 4

    def body(carry: list[th.Tensor], group: list[th.Tensor]) -> tuple[list[th.Tensor], th.Tensor]:
        sums = []
        actor_loss = th.zeros(())
        for j in range(cfg.policy_delay):
            last = j == cfg.policy_delay - 1
            scalars = [group[n_batch][j], group[n_batch + 1][j]]
            if last:
                scalars += [group[n_batch + 2], group[n_batch + 3]]
            carry, critic_loss, q1_mean, step_actor_loss = gradient_step(
                cfg, carry, [x[j] for x in group[:n_batch]], scalars, last
            )
            sums.append(th.stack([critic_loss, q1_mean]))
            if step_actor_loss is not None:
                actor_loss = step_actor_loss
        totals = th.stack(sums).sum(0)
        return carry, th.cat([totals, actor_loss.reshape(1)])

    if th.compiler.is_compiling():
        final, per_group = scan(body, list(state), list(xs))
    else:
        # Called eagerly (torch.compile replaced, as the tests do): the same body in a Python loop
        final, outputs = list(state), []
        for idx in range(xs[0].shape[0]):
            final, output = body(final, [x[idx] for x in xs])
            outputs.append(output)
        per_group = th.stack(outputs)
    th._foreach_copy_(state, final)
    return per_group.sum(0)


# ---------------------------------------------------------------------------------------------------------------------
# The host side: checks, batches, Adam scalars, optimizer state


class _Unsupported(Exception):
    """A reason to run the eager loop instead (the message is the warning)."""


#: An Adam optimizer's learning rate, betas, eps and each parameter's weight decay (see :func:`_adam_group`)
AdamGroup = tuple[float, tuple[float, float], float, list[float]]


def _adam_group(optimizer: th.optim.Optimizer, params: list[th.Tensor]) -> AdamGroup:
    """
    :return: The learning rate, betas and epsilon shared by the optimizer's groups, and each parameter's weight decay
    :raises _Unsupported: When the optimizer is not plain Adam on exactly these parameters
    """
    # Adam itself or LeanAdam (the same update): a subclass may change the step
    if type(optimizer) not in (th.optim.Adam, LeanAdam):
        raise _Unsupported(f"the optimizer is {type(optimizer).__name__}, not Adam")
    global_hooks = getattr(_optimizer_module, "_global_optimizer_pre_hooks", True) or getattr(
        _optimizer_module, "_global_optimizer_post_hooks", True
    )
    if optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks or global_hooks:
        raise _Unsupported("an optimizer step hook is registered")
    shared = {
        (float(group["lr"]), tuple(float(b) for b in group["betas"]), float(group["eps"])) for group in optimizer.param_groups
    }
    if len(shared) != 1:
        raise _Unsupported("the optimizer's parameter groups have different learning rates, betas or eps")
    for group in optimizer.param_groups:
        if group["amsgrad"] or group["maximize"] or group.get("decoupled_weight_decay", False):
            raise _Unsupported("Adam with amsgrad, maximize or decoupled weight decay")
    decay = {id(p): float(group["weight_decay"]) for group in optimizer.param_groups for p in group["params"]}
    if set(decay) != {id(p) for p in params}:
        raise _Unsupported("the optimizer's parameters are not the networks' parameters")
    lr, betas, eps = shared.pop()
    return lr, (betas[0], betas[1]), eps, [decay[id(p)] for p in params]


def _adam_state(
    optimizer: th.optim.Optimizer, params: list[th.Tensor]
) -> tuple[list[th.Tensor], list[th.Tensor], list[th.Tensor], int]:
    """
    The optimizer's state tensors for the parameters, created as Adam creates them when a parameter has none yet.

    :return: ``exp_avg`` and ``exp_avg_sq`` tensors, the ``step`` tensors and the steps taken so far
    """
    for param in params:
        state = optimizer.state[param]
        if not state:
            # What Adam's _init_group puts there for fused/capturable steps: a 0-d float tensor on the device
            state["step"] = th.zeros((), dtype=th.float32, device=param.device)
            state["exp_avg"] = th.zeros_like(param, memory_format=th.preserve_format)
            state["exp_avg_sq"] = th.zeros_like(param, memory_format=th.preserve_format)
    states = [optimizer.state[param] for param in params]
    steps = [state["step"] for state in states]
    if not all(isinstance(step, th.Tensor) and step.dim() == 0 for step in steps):
        raise _Unsupported("Adam's step counters are not 0-d tensors")
    counts = {float(step) for step in steps}
    if len(counts) != 1:
        raise _Unsupported("the parameters of one optimizer have taken different numbers of steps")
    layouts_ok = all(
        state["exp_avg"].shape == param.shape
        and state["exp_avg"].is_contiguous()
        and state["exp_avg_sq"].is_contiguous()
        and param.is_contiguous()
        for state, param in zip(states, params, strict=True)
    )
    if not layouts_ok:
        raise _Unsupported("parameters or Adam moments are not contiguous")
    return [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], steps, int(counts.pop())


def _adam_scalars(lr: float, betas: tuple[float, float], first_step: int, count: int) -> tuple[th.Tensor, th.Tensor]:
    """
    :return: ``lr / (1 - beta1^t)`` and ``sqrt(1 - beta2^t)`` for ``t = first_step, ..., first_step + count - 1``,
        in double precision and then float32, as the fused kernel computes them
    """
    steps = range(first_step, first_step + count)
    step_size = [lr / (1 - betas[0] ** t) for t in steps]
    bias2 = [math.sqrt(1 - betas[1] ** t) for t in steps]
    return th.tensor(step_size, dtype=th.float32), th.tensor(bias2, dtype=th.float32)


def _is_tanh(mlp: PlainMLP) -> bool:
    return mlp.activation is nn.Tanh


class CompiledUpdate:
    """
    Runs the gradient steps of ``DDPGPlus.train()`` as one compiled loop (see the module's docstring).

    One instance per model (``DDPGPlus`` keeps it outside its saved data); it keeps the compiled functions, one per
    configuration.
    """

    #: The constructor option that selects this path (in warnings)
    option = "compile_update"
    #: Calls with fewer whole groups of ``policy_delay`` steps than this run eagerly
    min_groups = MIN_GROUPS
    #: Whether networks with layer norm are covered
    takes_layer_norm = False

    def __init__(self) -> None:
        self._compiled: dict[UpdateConfig, Callable[..., th.Tensor]] = {}
        self._warned: set[str] = set()
        self._broken: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Compiled functions are neither picklable nor worth copying: a copy compiles (or hits inductor's disk cache)
        return {"_compiled": {}, "_warned": set(), "_broken": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _fall_back(self, reason: str) -> None:
        if reason not in self._warned:
            self._warned.add(reason)
            warnings.warn(f"{self.option}: {reason}; using the eager update", stacklevel=3)

    def run(self, model: Any, manual: ManualBackward | None, gradient_steps: int, batch_size: int) -> LossSums | None:
        """
        The ``gradient_steps`` gradient steps of ``model.train()`` (after its learning-rate update), or nothing.

        :param model: The ``DDPGPlus`` model
        :param manual: The hand-written path of this call (``model._fast_path()``), ``None`` when it does not apply
        :param gradient_steps: Gradient steps of the call
        :param batch_size: Samples per gradient step
        :return: The losses of the call (``model._n_updates`` advanced), or ``None`` when nothing was done and the eager
            loop must run (a one-time warning says why)
        """
        try:
            self._check(model, manual)
        except _Unsupported as reason:
            self._fall_back(str(reason))
            return None
        assert manual is not None
        if gradient_steps <= 0:
            return None
        return self._run(model, manual, gradient_steps, batch_size)

    def _check_backend(self) -> None:
        """:raises _Unsupported: When this torch cannot compile the update"""
        if not callable(getattr(th, "compile", None)):
            raise _Unsupported("this torch has no torch.compile")

    def _check(self, model: Any, manual: ManualBackward | None) -> None:
        if self._broken is not None:
            raise _Unsupported(self._broken)
        if manual is None:
            raise _Unsupported("the hand-written gradients do not apply to this policy or setting")
        self._check_backend()
        if getattr(model.replay_buffer, "prioritized", None) is not None:
            raise _Unsupported("prioritized replay samples each step from the previous step's priorities")
        if model.check_numerics:
            raise _Unsupported("check_numerics checks every step")
        if model.param_noise_exploration is not None:
            raise _Unsupported("parameter noise adapts between gradient steps")
        networks = (manual.actor, manual.actor_target, *manual.q_networks, *manual.q_networks_target)
        if not self.takes_layer_norm and any(network.has_norms for network in networks):
            raise _Unsupported("layer norm is not part of the compiled update")

    def _config(self, model: Any, manual: ManualBackward, actor_group: Any, critic_group: Any) -> UpdateConfig:
        noise = model.target_policy_noise > 0
        return UpdateConfig(
            actor_layers=len(manual.actor.weights),
            critic_layers=len(manual.q_networks[0].weights),
            n_critics=len(manual.q_networks),
            actor_tanh=_is_tanh(manual.actor),
            critic_tanh=_is_tanh(manual.q_networks[0]),
            features_dim=manual.action_columns.start,
            policy_delay=int(model.policy_delay),
            tau=float(model.tau),
            noise_clip=float(model.target_noise_clip) if noise else None,
            actor_betas=actor_group[1],
            actor_eps=actor_group[2],
            actor_weight_decay=tuple(actor_group[3]),
            critic_betas=critic_group[1],
            critic_eps=critic_group[2],
            critic_weight_decay=tuple(critic_group[3]),
        )

    def _run(self, model: Any, manual: ManualBackward, gradient_steps: int, batch_size: int) -> LossSums | None:
        actor_params = manual.actor.parameters()
        critic_params = [p for q_net in manual.q_networks for p in q_net.parameters()]
        q_networks = manual.q_networks + manual.q_networks_target
        if len({(len(q.weights), _is_tanh(q)) for q in q_networks}) != 1:
            self._fall_back("the Q-networks differ in depth or activation")
            return None
        try:
            actor_group = _adam_group(model.actor.optimizer, actor_params)
            critic_group = _adam_group(model.critic.optimizer, critic_params)
        except _Unsupported as reason:
            self._fall_back(str(reason))
            return None
        cfg = self._config(model, manual, actor_group, critic_group)
        targets = [*manual.actor_target.parameters(), *[p for q in manual.q_networks_target for p in q.parameters()]]

        losses = LossSums()
        totals = th.zeros(3)
        # The samples of the eager loop: the same calls to the buffer (ReplayBatches' chunks), viewed per step
        steps_per_sample = ReplayBatches(
            model.replay_buffer, gradient_steps, batch_size, model._vec_normalize_env
        ).steps_per_sample
        remaining = gradient_steps
        while remaining > 0:
            steps = min(steps_per_sample, remaining)
            remaining -= steps
            data = model.replay_buffer.sample(batch_size * steps, env=model._vec_normalize_env)
            fields = _fields(data, model.gamma, steps, batch_size)
            lead, count = (steps, 0) if self._broken is not None else self._split(model._n_updates, cfg.policy_delay, steps)
            for idx in range(lead):
                self._eager_step(model, manual, [f[idx] for f in fields], losses)
            done = lead
            if count:
                before = model._n_updates
                try:
                    totals += self._compiled_groups(
                        model, manual, cfg, actor_group, critic_group, targets, fields, lead, count
                    )
                    done += count
                    losses.n_critic += count
                    # (the steps whose number is a multiple of policy_delay update the actor)
                    losses.n_actor += (before + count) // cfg.policy_delay - before // cfg.policy_delay
                except _Unsupported as reason:
                    self._fall_back(str(reason))
            for idx in range(done, steps):
                self._eager_step(model, manual, [f[idx] for f in fields], losses)
        _add_totals(losses, totals)
        return losses

    def _split(self, updates: int, delay: int, steps: int) -> tuple[int, int]:
        """
        :param updates: Gradient steps taken before the chunk
        :param delay: ``policy_delay``
        :param steps: Gradient steps of the chunk
        :return: How many of its steps run eagerly first, and how many then run on this path (the rest: eagerly).
            Whole groups of ``policy_delay`` steps (the last one updates the actor) are compiled; the steps before
            the first group and after the last run eagerly, as do chunks with fewer than ``min_groups`` groups.
        """
        lead = min((-updates) % delay, steps)
        groups = (steps - lead) // delay
        return (steps, 0) if groups < self.min_groups else (lead, groups * delay)

    def _compiled_groups(
        self,
        model: Any,
        manual: ManualBackward,
        cfg: UpdateConfig,
        actor_group: AdamGroup,
        critic_group: AdamGroup,
        targets: list[th.Tensor],
        fields: list[th.Tensor],
        first: int,
        n_steps: int,
    ) -> th.Tensor:
        """
        Steps ``first, ..., first + n_steps - 1`` of the fields (whole groups of ``policy_delay``), compiled.

        :return: Sums of the critic loss, the first Q-network's mean value and the actor loss over the steps
        :raises _Unsupported: When the optimizer state does not fit or compilation fails (nothing was changed)
        """
        delay = cfg.policy_delay
        groups = n_steps // delay
        actor_params = manual.actor.parameters()
        critic_params = [p for q_net in manual.q_networks for p in q_net.parameters()]
        # Read now, not once per call: an eager step may have created the state or rebuilt LeanAdam's counters
        actor_avg, actor_sq, actor_steps, actor_count = _adam_state(model.actor.optimizer, actor_params)
        critic_avg, critic_sq, critic_steps, critic_count = _adam_state(model.critic.optimizer, critic_params)
        state = [*actor_params, *critic_params, *targets, *actor_avg, *actor_sq, *critic_avg, *critic_sq]
        xs = [f[first : first + n_steps].reshape(groups, delay, *f.shape[1:]) for f in fields]
        rng_state = th.get_rng_state()  # given back if compilation fails: the eager steps then draw the same noise
        if cfg.noise_clip is not None:
            # One draw per step, as the eager loop's randn_like: the same numbers from torch's generator
            shape = xs[1].shape[2:]
            noise = [th.randn(shape).mul_(model.target_policy_noise) for _ in range(n_steps)]
            xs.append(th.stack(noise).reshape(groups, delay, *shape))
        critic_scalars = _adam_scalars(critic_group[0], cfg.critic_betas, critic_count + 1, n_steps)
        xs += [s.reshape(groups, delay) for s in critic_scalars]
        xs += _adam_scalars(actor_group[0], cfg.actor_betas, actor_count + 1, groups)
        try:
            totals = self._execute(cfg, state, xs)
        except _Unsupported:
            th.set_rng_state(rng_state)
            raise
        except Exception as error:  # no C++ compiler, an unsupported torch, ...: the eager path from now on
            th.set_rng_state(rng_state)
            raise self._turned_off(error) from error
        th._foreach_add_(critic_steps, float(n_steps))
        th._foreach_add_(actor_steps, float(groups))
        model._n_updates += n_steps
        return totals

    #: What a failure of :meth:`_execute` is called (in the warning)
    failure = "compilation failed"

    def _turned_off(self, error: Exception) -> _Unsupported:
        """
        Turn this path off for good after an unexpected failure (the eager loop runs from then on).

        :return: The reason, to raise
        """
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        self._broken = f"{self.failure} ({type(error).__name__}: {first_line})"
        self._compiled.clear()
        return _Unsupported(self._broken)

    def _execute(self, cfg: UpdateConfig, state: list[th.Tensor], xs: list[th.Tensor]) -> th.Tensor:
        """
        The groups of steps (see :func:`run_groups`), compiled on the first call of a configuration.

        :raises _Unsupported: When the inputs do not fit this path (nothing was changed); any other exception is a
            failure of the path (nothing was changed either), after which the eager loop runs from then on
        """
        import torch._dynamo  # (torch.compile imports it anyway; never at package import)

        for x in xs:
            # The number of groups varies between calls: one compiled function for all
            torch._dynamo.mark_dynamic(x, 0)
        compiled = self._compiled.get(cfg)
        if compiled is None:
            compiled = self._compiled[cfg] = th.compile(_bind(cfg), fullgraph=True, dynamic=False, options=COMPILE_OPTIONS)
        with th.no_grad():
            return compiled(state, xs)

    @staticmethod
    def _eager_step(model: Any, manual: ManualBackward, batch: list[th.Tensor], losses: LossSums) -> None:
        """One gradient step of ``train()``'s hand-written path (for steps outside whole groups of ``policy_delay``)."""
        observations, actions, next_observations, rewards, dones, discounts = batch
        model._n_updates += 1
        with th.no_grad():
            next_actions = manual.target_actor(next_observations)
            if model.target_policy_noise > 0:
                next_actions = smoothed_target_actions(next_actions, model.target_policy_noise, model.target_noise_clip)
            next_q = min_over_critics(manual.target_critic(next_observations, next_actions))
            target_q = rewards + (1 - dones) * discounts * next_q
        critic_loss, current_q1, _ = manual.critic_backward(observations, actions, target_q)
        losses.add_critic(critic_loss, current_q1)
        model.critic.optimizer.step()
        if model._n_updates % model.policy_delay == 0:
            losses.add_actor(manual.actor_backward(observations))
            model.actor.optimizer.step()
            model._fast.update_targets(model.tau)


def _bind(cfg: UpdateConfig) -> Callable[[list[th.Tensor], list[th.Tensor]], th.Tensor]:
    # A function of tensors only: the configuration is a constant of the traced code
    def update(state: list[th.Tensor], xs: list[th.Tensor]) -> th.Tensor:
        return run_groups(cfg, state, xs)

    return update


def _fields(data: Any, gamma: float, steps: int, batch_size: int) -> list[th.Tensor]:
    """
    :return: Observations (flat float32 features, as FlattenExtractor), actions, next observations, rewards, dones
        and discounts (gamma for every sample without n-step discounts), each shaped ``(steps, batch_size, ...)``
    """
    discounts = data.discounts if data.discounts is not None else th.full_like(data.rewards, gamma)
    fields = [
        data.observations.float().flatten(1),
        data.actions,
        data.next_observations.float().flatten(1),
        data.rewards,
        data.dones,
        discounts,
    ]
    return [f.reshape(steps, batch_size, *f.shape[1:]).contiguous() for f in fields]


def _add_totals(losses: LossSums, totals: th.Tensor) -> None:
    # Adds the compiled steps' sums to what the eager steps recorded (LossSums keeps sums and counts)
    if not losses.n_critic:
        return
    critic, mean_q, actor = totals.unbind()
    losses.critic = critic if losses.critic is None else losses.critic + critic
    losses.mean_q = mean_q if losses.mean_q is None else losses.mean_q + mean_q
    if losses.n_actor:
        losses.actor = actor if losses.actor is None else losses.actor + actor
