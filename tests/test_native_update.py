"""
The native update (:mod:`sb3_ddpg_plus.native_update`) trains exactly as the eager hand-written path: same parameters,
targets, optimizer state and logged losses after calls of several steps, within float32 rounding (its sums over the
batch run in row order: 1e-5 relative, as the compiled path's tests). Where it does not apply, ``train()`` warns once
and runs the eager loop.
"""

import copy
import re
import warnings

import numpy as np
import pytest
import torch as th

from sb3_ddpg_plus import DDPGPlus, native_build, native_update
from sb3_ddpg_plus.native_update import NativeUpdate
from tests.envs import WideActionEnv
from tests.test_compiled_update import BATCH, TD3, assert_same_training, compiled_train, make_model, train_both

needs_kernel = pytest.mark.skipif(
    native_update.unavailable_reason() is not None, reason=f"native update not available: {native_update.unavailable_reason()}"
)


def wide_model(**options):
    """Six actions: the skinny products the kernel computes transposed, and target noise of six columns."""
    options = {"policy_kwargs": dict(net_arch=[16, 16]), "native_update": False, **options}
    model = DDPGPlus("MlpPolicy", WideActionEnv(), learning_starts=10_000, batch_size=BATCH, seed=0, **options)
    model.learn(200)
    model._current_progress_remaining = 1.0
    return model


def train_warned_and_reference(ours, reference, warning):
    """Four gradient steps of each from the same RNG states: ``ours`` warns ``warning``, the reference nothing."""
    for model_ in (ours, reference):
        np.random.seed(3)
        th.manual_seed(3)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model_.train(gradient_steps=4, batch_size=BATCH)
        messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        if model_ is ours:
            assert any(re.search(warning, message) for message in messages), messages
        else:
            assert not any("native" in message for message in messages), messages


@needs_kernel
@pytest.mark.parametrize(
    "make, options",
    [
        (make_model, dict()),
        (make_model, TD3),
        (make_model, dict(n_steps=3, actor_learning_rate=1e-4, policy_kwargs=dict(net_arch=[16], critic_weight_decay=0.01))),
        (make_model, dict(policy_kwargs=dict(net_arch=[16, 16], activation_fn=th.nn.Tanh))),
        (make_model, dict(policy_kwargs=dict(net_arch=[16, 8, 16]))),
        # Layer norm after hidden layers (the layer-norm policies; the recommended configuration's networks)
        (make_model, dict(policy_kwargs=dict(net_arch=[16, 16], actor_layer_norm=True, critic_layer_norm=True))),
        (make_model, {**TD3, "policy_kwargs": dict(net_arch=[16, 16], n_critics=2, critic_layer_norm=True)}),
        (wide_model, dict(policy_kwargs=dict(net_arch=[16, 16], actor_layer_norm=True, activation_fn=th.nn.Tanh))),
        (wide_model, dict()),
        (wide_model, TD3),
    ],
)
def test_same_training_as_eager(make, options):
    # Calls of different lengths: with policy_delay 2, calls that start and end inside a group of two steps, and
    # calls of one step (critic only, then critic and actor)
    updater = NativeUpdate()
    calls = []
    original = updater._compiled_groups
    updater._compiled_groups = lambda *args: calls.append(args[-1]) or original(*args)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the native path applies: no fallback warning
        ours, reference = train_both(make(**options), [6, 5, 1, 1, 4, 1], updater)
    # Layer norm: its row means and variances are summed in another order than PyTorch's kernel (Welford, in
    # vectorised chunks), so the paths drift apart a little more (2e-5 relative at most after these 18 steps)
    layer_norm = any(key.endswith("layer_norm") for key in options.get("policy_kwargs", {}))
    assert_same_training(ours, reference, tol=1e-4 if layer_norm else 1e-5)
    assert calls == [6, 5, 1, 1, 4, 1]  # every step ran in C, none eagerly


@needs_kernel
def test_first_call_creates_adam_state_and_then_continues_eagerly():
    model = make_model(**TD3)
    assert not model.actor.optimizer.state
    ours, reference = train_both(model, [4], NativeUpdate())
    assert_same_training(ours, reference)
    for m in (ours, reference):
        np.random.seed(5)
        th.manual_seed(5)
        m.train(gradient_steps=3, batch_size=BATCH)  # the eager path, on the state the native path left
    assert_same_training(ours, reference)


@needs_kernel
def test_the_constructor_option_runs_train_through_it(tmp_path):
    model = make_model()
    reference, ours = copy.deepcopy(model), copy.deepcopy(model)
    ours.native_update = True
    calls = []
    original = ours._native_update._compiled_groups
    ours._native_update._compiled_groups = lambda *args: calls.append(1) or original(*args)
    for model_ in (reference, ours):
        np.random.seed(3)
        th.manual_seed(3)
        model_.train(gradient_steps=6, batch_size=BATCH)
    assert calls  # the C loop ran
    assert_same_training(ours, reference)
    # Saved with the option, without the updater; loaded, it trains through it again
    ours.save(tmp_path / "model.zip")
    loaded = DDPGPlus.load(tmp_path / "model.zip")
    assert loaded.native_update is True and isinstance(loaded._native_update, NativeUpdate)
    assert DDPGPlus("MlpPolicy", "Pendulum-v1").native_update == "auto"  # on by default wherever it applies


@needs_kernel
def test_default_model_learns_through_it():
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", learning_starts=50, batch_size=32, seed=0)
    calls = []
    original = model._native_update._compiled_groups
    model._native_update._compiled_groups = lambda *args: calls.append(1) or original(*args)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.learn(60)
    assert model._n_updates == 10 and len(calls) == 10


@needs_kernel
def test_gradients_end_in_grad_as_after_the_eager_loop():
    # First a call with no actor step (policy_delay 2): the actor's .grad stays None, as after the eager loop
    ours, reference = train_both(make_model(**TD3), [1], NativeUpdate())
    assert all(p.grad is None for p in ours.actor.parameters())
    assert all(p.grad is None for p in reference.actor.parameters())
    ours, reference = train_both(make_model(**TD3), [4, 3], NativeUpdate())
    for name in ("actor", "critic"):
        for (param_name, p), q in zip(
            getattr(ours, name).named_parameters(), getattr(reference, name).parameters(), strict=True
        ):
            th.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=param_name)


def test_auto_falls_back_silently_and_true_warns():
    options = dict(replay_buffer_kwargs=dict(prioritized="per"))
    for setting, expect_warning in (("auto", False), (True, True)):
        model = make_model(native_update=setting, **options)
        reference = copy.deepcopy(model)
        reference.native_update = False
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for model_ in (model, reference):
                np.random.seed(3)
                th.manual_seed(3)
                model_.train(gradient_steps=3, batch_size=BATCH)
        assert any("native_update: prioritized replay" in str(w.message) for w in caught) == expect_warning
        assert_same_training(model, reference)  # the eager update, exactly


@needs_kernel
@pytest.mark.parametrize(
    "options, reason",
    [
        (dict(manual_backward=False), "hand-written gradients do not apply"),
        (dict(replay_buffer_kwargs=dict(prioritized="per")), "prioritized replay"),
        (dict(check_numerics=True), "check_numerics"),
        (dict(policy_kwargs=dict(net_arch=[16, 16], optimizer_class=th.optim.AdamW)), "not Adam"),
    ],
)
def test_falls_back_when_not_applicable(options, reason):
    model = make_model(native_update=True, **options)
    updater = NativeUpdate()
    with pytest.warns(UserWarning, match=f"native_update: .*{reason}"):
        assert compiled_train(model, updater, 4) is None
    assert model._n_updates == 0  # nothing done: train() runs its eager loop
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per reason
        assert compiled_train(model, updater, 4) is None


def test_falls_back_without_the_kernel(monkeypatch, tmp_path):
    """Switched off (as without a C compiler): one warning naming why, then the eager update, the same training."""
    monkeypatch.setenv(native_build.ENV_SWITCH, "0")
    native_update._forget()
    try:
        assert native_update.load_kernel() is None
        assert native_update.unavailable_reason() == "disabled by SB3_DDPG_PLUS_NATIVE=0"
        model = make_model()
        reference, ours = copy.deepcopy(model), copy.deepcopy(model)
        ours.native_update = True
        train_warned_and_reference(ours, reference, "native_update: the C kernel is not available: disabled by")
        assert_same_training(ours, reference)
        # A compiler that fails: the reason says so
        monkeypatch.delenv(native_build.ENV_SWITCH)
        monkeypatch.setenv(native_build.ENV_CACHE, str(tmp_path / "cache"))
        monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
        native_update._forget()
        assert native_update.load_kernel() is None
        assert "could not build or load the C kernels" in native_update.unavailable_reason()
    finally:
        monkeypatch.undo()
        native_update._forget()


@needs_kernel
def test_an_unexpected_failure_falls_back_for_good_without_changing_anything(monkeypatch):
    model = make_model(**TD3)
    model.native_update = True
    reference = copy.deepcopy(model)
    reference.native_update = False

    def broken(*args):
        raise OSError("something unexpected")

    monkeypatch.setattr(native_update, "_pointers", broken)
    train_warned_and_reference(model, reference, "native update failed.*OSError: something unexpected")
    assert_same_training(model, reference)  # the eager steps, with the same target noise
    assert model._native_update._broken is not None


def test_bad_option_value_is_refused():
    with pytest.raises((TypeError, ValueError), match="native_update"):
        DDPGPlus("MlpPolicy", "Pendulum-v1", native_update="yes")
