import copy

import pytest
import torch as th

from sb3_ddpg_plus.optim import LeanAdam


def _groups(net, weight_decay=0.0):
    return [
        {"params": [net[0].weight, net[3].weight], "weight_decay": weight_decay},
        {"params": [net[0].bias, net[1].weight, net[1].bias, net[3].bias], "weight_decay": 0.0},
    ]


def _pair(weight_decay=0.0):
    th.manual_seed(0)
    net = th.nn.Sequential(th.nn.Linear(5, 16), th.nn.LayerNorm(16), th.nn.ReLU(), th.nn.Linear(16, 1))
    twin = copy.deepcopy(net)
    return net, twin, th.optim.Adam(_groups(net, weight_decay), lr=1e-3), LeanAdam(_groups(twin, weight_decay), lr=1e-3)


def _train_step(net, optimizer, x, lean=False):
    optimizer.zero_grad(set_to_none=True)
    net(x).pow(2).mean().backward()
    optimizer.lean_step() if lean else optimizer.step()


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
@pytest.mark.parametrize("lean", [False, True])
def test_same_updates_as_adam(weight_decay, lean):
    net, twin, adam, lean_adam = _pair(weight_decay)
    x = th.randn(32, 5)
    for step in range(30):
        if step == 15:  # learning-rate schedules write the groups' lr
            for optimizer in (adam, lean_adam):
                for group in optimizer.param_groups:
                    group["lr"] = 3e-4
        _train_step(net, adam, x)
        _train_step(twin, lean_adam, x, lean=lean)
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        assert th.allclose(a, b, atol=1e-6, rtol=0)
    # Adam's state format: a LeanAdam state loads into Adam and back, and both go on with the same step counts
    # (LeanAdam keeps the counters as elements of one tensor: each is still advanced once per step)
    # (deep copies, as after saving and loading: load_state_dict keeps the very step tensors it is given)
    adam_copy = th.optim.Adam(_groups(net), lr=1e-3)
    adam_copy.load_state_dict(copy.deepcopy(lean_adam.state_dict()))
    lean_adam.load_state_dict(copy.deepcopy(lean_adam.state_dict()))
    _train_step(twin, lean_adam, x, lean=lean)
    _train_step(net, adam_copy, x)
    for optimizer in (adam_copy, lean_adam):
        assert [float(state["step"]) for state in optimizer.state.values()] == [31.0] * 6


def test_hooks_still_run():
    net, _, _, optimizer = _pair()
    calls = []
    optimizer.register_step_post_hook(lambda opt, args, kwargs: calls.append(1))
    x = th.randn(4, 5)
    for _ in range(3):
        _train_step(net, optimizer, x, lean=True)
    assert len(calls) == 3


def test_closure_and_missing_gradients_fall_back():
    net, _, _, optimizer = _pair()
    x = th.randn(4, 5)
    _train_step(net, optimizer, x)

    def closure():
        optimizer.zero_grad()
        loss = net(x).pow(2).mean()
        loss.backward()
        return loss

    assert optimizer.step(closure) is not None
    # only part of the network gets gradients: Adam's own step handles it
    optimizer.zero_grad(set_to_none=True)
    net[3](th.randn(4, 16)).sum().backward()
    before = net[0].weight.clone()
    optimizer.lean_step()
    assert th.equal(before, net[0].weight)


def test_missing_gradient_in_a_later_group_steps_each_parameter_once():
    net, twin, adam, lean_adam = _pair()
    x = th.randn(8, 5)
    for _ in range(3):  # past the first step: LeanAdam's fast path is set up
        _train_step(net, adam, x)
        _train_step(twin, lean_adam, x, lean=True)
    # Every parameter has a gradient except one in the second group (the first group is complete)
    th.manual_seed(1)
    for optimizer, model in ((adam, net), (lean_adam, twin)):
        optimizer.zero_grad(set_to_none=True)
        th.manual_seed(1)
        for param in model.parameters():
            param.grad = th.randn_like(param)
        model[1].bias.grad = None
    adam.step()
    lean_adam.lean_step()
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        assert th.allclose(a, b, atol=1e-6, rtol=0)
