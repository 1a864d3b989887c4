"""
The compiled update (:mod:`sb3_ddpg_plus.compiled_update`) trains exactly as the eager hand-written path: same
parameters, targets, optimizer state and logged losses after a call of several steps, within float32 rounding (the
compiled kernels sum in another order and may fuse multiply-adds: 1e-5 relative, where the two paths differ by
~3e-7 after 16 steps on this machine). Most tests run the same function without compiling it (``torch.compile``
replaced by the identity: ``scan`` then runs eagerly), which checks the arithmetic in a second; the ``slow`` ones
compile it (tens of seconds each).
"""

import copy
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch as th

from sb3_ddpg_plus import DDPGPlus
from sb3_ddpg_plus.compiled_update import CompiledUpdate

TOL = 1e-5
BATCH = 32

TD3 = dict(policy_delay=2, target_policy_noise=0.2, target_noise_clip=0.5, policy_kwargs=dict(net_arch=[16, 16], n_critics=2))


def make_model(**options):
    # native_update off unless given: the reference of these tests is the eager loop
    options = {"policy_kwargs": dict(net_arch=[16, 16]), "native_update": False, **options}
    model = DDPGPlus("MlpPolicy", "Pendulum-v1", learning_starts=10_000, batch_size=BATCH, seed=0, **options)
    model.learn(200)  # fills the buffer only
    model._current_progress_remaining = 1.0
    return model


def compiled_train(model, updater, steps):
    """What ``DDPGPlus.train()`` does with ``compile_update=True``: its preamble, then the compiled update."""
    model.policy.set_training_mode(True)
    model._update_learning_rate([model.actor.optimizer, model.critic.optimizer])
    losses = updater.run(model, model._fast_path(), steps, BATCH)
    if losses is not None:
        losses.record(model.logger)
    return losses


def assert_same_training(ours, reference, tol=TOL):
    assert ours._n_updates == reference._n_updates
    for name in ("actor", "critic", "actor_target", "critic_target"):
        for p, q in zip(getattr(ours, name).parameters(), getattr(reference, name).parameters(), strict=True):
            th.testing.assert_close(p, q, rtol=tol, atol=tol)
    for name in ("actor", "critic"):
        state, ref_state = getattr(ours, name).optimizer.state_dict(), getattr(reference, name).optimizer.state_dict()
        assert state["param_groups"] == ref_state["param_groups"]
        for idx, ref in ref_state["state"].items():
            assert float(state["state"][idx]["step"]) == float(ref["step"])
            for key in ("exp_avg", "exp_avg_sq"):
                th.testing.assert_close(state["state"][idx][key], ref[key], rtol=tol, atol=tol * 1e-3)
    logged, ref_logged = ours.logger.name_to_value, reference.logger.name_to_value
    for key in ("train/critic_loss", "train/mean_q", "train/actor_loss"):
        assert logged[key] == pytest.approx(ref_logged[key], rel=tol, abs=tol)


def train_both(model, steps_per_call, updater, seed=1):
    """The same calls, eager and through ``updater``, from the same model, RNG states and buffer."""
    reference, ours = copy.deepcopy(model), copy.deepcopy(model)
    for idx, steps in enumerate(steps_per_call):
        np.random.seed(seed + idx)
        th.manual_seed(seed + idx)
        reference.train(gradient_steps=steps, batch_size=BATCH)
        np.random.seed(seed + idx)
        th.manual_seed(seed + idx)
        assert compiled_train(ours, updater, steps) is not None
    return ours, reference


@pytest.fixture
def uncompiled(monkeypatch):
    """``torch.compile`` as the identity: the compiled update's function runs eagerly (fast, same arithmetic)."""
    monkeypatch.setattr(th, "compile", lambda fn, **kwargs: fn)


@pytest.mark.parametrize(
    "options",
    [
        dict(),
        TD3,
        dict(n_steps=3, actor_learning_rate=1e-4, policy_kwargs=dict(net_arch=[16, 16], critic_weight_decay=1e-2)),
        dict(policy_kwargs=dict(net_arch=[16, 16], activation_fn=th.nn.Tanh)),
    ],
)
def test_same_training_as_eager(uncompiled, options):
    # Several calls of different lengths: with policy_delay 2, whole groups and the steps around them (eager)
    ours, reference = train_both(make_model(**options), [6, 5, 1, 4], CompiledUpdate())
    assert_same_training(ours, reference)


def test_learning_rate_changes_take_effect(uncompiled):
    model = make_model(learning_rate=lambda progress: 1e-3 * progress)
    updater = CompiledUpdate()
    reference, ours = copy.deepcopy(model), copy.deepcopy(model)
    for progress in (1.0, 0.5, 0.25):
        for m in (reference, ours):
            m._current_progress_remaining = progress
        np.random.seed(0)
        reference.train(gradient_steps=4, batch_size=BATCH)
        np.random.seed(0)
        compiled_train(ours, updater, 4)
        assert ours.actor.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * progress)
    assert_same_training(ours, reference)


def test_optimizer_state_is_the_optimizers(uncompiled, tmp_path):
    model = make_model(**TD3)
    model.train(gradient_steps=2, batch_size=BATCH)  # the eager path creates the state (LeanAdam's counters)
    tensors = {
        name: [(s["exp_avg"], s["exp_avg_sq"]) for s in getattr(model, name).optimizer.state.values()]
        for name in ("actor", "critic")
    }
    updater = CompiledUpdate()
    compiled_train(model, updater, 8)
    for name in ("actor", "critic"):
        optimizer = getattr(model, name).optimizer
        # Updated in place: the same tensors, the counters advanced (2 + 8 critic steps, 1 + 4 actor steps)
        assert [(s["exp_avg"], s["exp_avg_sq"]) for s in optimizer.state.values()] == tensors[name]
        assert {float(s["step"]) for s in optimizer.state.values()} == {10.0 if name == "critic" else 5.0}
    # Saved and loaded, then trained eagerly or compiled: the same
    model.save(tmp_path / "model.zip")
    loaded = DDPGPlus.load(tmp_path / "model.zip")
    loaded.set_logger(model.logger)
    loaded.replay_buffer = copy.deepcopy(model.replay_buffer)  # (not in the file)
    loaded._current_progress_remaining = 1.0
    ours, reference = train_both(loaded, [4], CompiledUpdate())
    assert_same_training(ours, reference)
    # Switching back to the eager path continues the same optimizer state
    eager_after, reference_after = copy.deepcopy(ours), copy.deepcopy(reference)
    for m in (eager_after, reference_after):
        np.random.seed(5)
        th.manual_seed(5)
        m.train(gradient_steps=3, batch_size=BATCH)
    assert_same_training(eager_after, reference_after)


def test_first_call_creates_adam_state(uncompiled):
    model = make_model()
    assert not model.actor.optimizer.state
    ours, reference = train_both(model, [4], CompiledUpdate())
    assert_same_training(ours, reference)


def test_falls_back_when_compile_raises(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(th, "compile", broken)
    updater = CompiledUpdate()
    with pytest.warns(UserWarning, match="compilation failed.*no C\\+\\+ compiler"):
        ours, reference = train_both(make_model(**TD3), [6], updater)
    assert_same_training(ours, reference)
    # Eager from then on, without compiling again or warning again
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compiled_train(ours, updater, 4) is None


def test_falls_back_when_compiled_call_raises(monkeypatch):
    def compile_that_fails(fn, **kwargs):
        def call(*args):
            raise RuntimeError("InvalidCxxCompiler")

        return call

    monkeypatch.setattr(th, "compile", compile_that_fails)
    with pytest.warns(UserWarning, match="compilation failed"):
        ours, reference = train_both(make_model(), [5], CompiledUpdate())
    assert_same_training(ours, reference)


@pytest.mark.parametrize(
    "options, reason",
    [
        (dict(policy_kwargs=dict(net_arch=[16, 16], critic_layer_norm=True)), "layer norm is not part of the compiled update"),
        (dict(manual_backward=False), "hand-written gradients do not apply"),
        (dict(replay_buffer_kwargs=dict(prioritized="per")), "prioritized replay"),
        (dict(check_numerics=True), "check_numerics"),
        (dict(policy_kwargs=dict(net_arch=[16, 16], optimizer_class=th.optim.AdamW)), "not Adam"),
    ],
)
def test_falls_back_when_not_applicable(uncompiled, options, reason):
    model = make_model(**options)
    updater = CompiledUpdate()
    with pytest.warns(UserWarning, match=reason):
        assert compiled_train(model, updater, 4) is None
    assert model._n_updates == 0  # nothing done: train() runs its eager loop
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per reason
        assert compiled_train(model, updater, 4) is None


def test_no_compiler_import_at_package_import():
    code = (
        "import sys, torch; before = set(sys.modules); import sb3_ddpg_plus, sb3_ddpg_plus.compiled_update; "
        "new = [m for m in set(sys.modules) - before if m.startswith(('torch._dynamo', 'torch._inductor'))]; "
        "assert not new, new"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
@pytest.mark.parametrize("options", [dict(), TD3])
def test_compiled_same_training_as_eager(options):
    # The real compilation (inductor, C++ wrapper): one compile, then calls of other lengths reuse it
    updater = CompiledUpdate()
    ours, reference = train_both(make_model(**options), [6, 8, 4], updater)
    assert_same_training(ours, reference)
    assert len(updater._compiled) == 1


def test_the_constructor_option_runs_train_through_it(uncompiled):
    """``DDPGPlus(compile_update=True)``: ``train()`` takes the compiled update, with the eager path's result."""
    model = make_model()
    reference, ours = copy.deepcopy(model), copy.deepcopy(model)
    ours.compile_update = True
    for model_ in (reference, ours):
        np.random.seed(3)
        th.manual_seed(3)
        model_.train(gradient_steps=6, batch_size=BATCH)
    assert ours._compiled_update._compiled  # the compiled function was built and used
    assert_same_training(ours, reference)
    assert DDPGPlus("MlpPolicy", "Pendulum-v1", compile_update=True).compile_update
