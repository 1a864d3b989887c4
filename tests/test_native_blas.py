"""
The BLAS choice of the native update (:mod:`sb3_ddpg_plus.native_blas`): each library trains the same (to float32
rounding), the choice is made once per machine and shape and kept in the cache folder, small products never time
anything, the environment variable decides when set, and numpy's OpenBLAS follows PyTorch's thread count.
"""

import json

import pytest
import torch as th

from sb3_ddpg_plus import native_blas, native_build, native_update
from tests.test_compiled_update import TD3, assert_same_training, make_model, train_both

needs_both = pytest.mark.skipif(
    native_update.unavailable_reason() is not None or native_blas.numpy_blas() is None or native_blas.torch_blas() is None,
    reason="needs the native update, PyTorch's sgemm_ and numpy's OpenBLAS",
)


@pytest.fixture
def fresh_choices(monkeypatch, tmp_path):
    """A private cache folder and no choice made yet in this process."""
    monkeypatch.setenv(native_build.ENV_CACHE, str(tmp_path))
    monkeypatch.delenv(native_blas.ENV_BLAS, raising=False)
    native_blas._forget()
    yield tmp_path
    native_blas._forget()


@needs_both
@pytest.mark.parametrize("library", ["torch", "numpy"])
@pytest.mark.parametrize("options", [dict(), TD3])
def test_each_library_trains_as_the_eager_update(fresh_choices, monkeypatch, library, options):
    monkeypatch.setenv(native_blas.ENV_BLAS, library)
    updater = native_update.NativeUpdate()
    ours, reference = train_both(make_model(**options), [6, 1, 4], updater)
    assert_same_training(ours, reference)
    assert updater._prepared is not None and updater._prepared.blas.name == library


@needs_both
def test_the_choice_is_made_once_and_kept(fresh_choices, monkeypatch):
    probes = []

    def probe(reference, alternative, rows, inner, columns):
        probes.append((rows, inner, columns))
        return "numpy"

    monkeypatch.setattr(native_blas, "_probe", probe)
    assert native_blas.choose(256, 400, 300).name == "numpy"
    assert native_blas.choose(256, 400, 300).name == "numpy"  # (this process: no second probe)
    native_blas._forget()
    assert native_blas.choose(256, 400, 300).name == "numpy"  # another process: read from the file
    assert probes == [(256, 400, 300)]
    recorded = json.loads((fresh_choices / native_blas.CHOICES_FILE).read_text())
    assert list(recorded.values()) == [{"256x400x300": "numpy"}]
    # Small products never time anything
    assert native_blas.choose(256, 64, 64).name == "torch"
    assert probes == [(256, 400, 300)]


@needs_both
def test_a_damaged_choices_file_is_ignored_and_rewritten(fresh_choices, monkeypatch):
    (fresh_choices / native_blas.CHOICES_FILE).write_text("{not json")
    monkeypatch.setattr(native_blas, "_probe", lambda *args: "torch")
    assert native_blas.choose(256, 400, 300).name == "torch"
    assert json.loads((fresh_choices / native_blas.CHOICES_FILE).read_text())


@needs_both
def test_the_probe_times_both_and_keeps_torch_unless_clearly_slower(fresh_choices):
    reference, alternative = native_blas.torch_blas(), native_blas.numpy_blas()
    state = th.get_rng_state()
    assert native_blas._probe(reference, alternative, 64, 128, 96) in ("torch", "numpy")
    assert th.equal(state, th.get_rng_state())  # the private generator: training's random stream is untouched


@needs_both
def test_both_libraries_compute_the_same_product(fresh_choices):
    a, b = th.randn(33, 17), th.randn(17, 9)
    for blas in (native_blas.torch_blas(), native_blas.numpy_blas()):
        out = th.empty(33, 9)
        with blas.threads_of_torch():
            native_blas._call(blas, 33, 17, 9, a, b, out)
        th.testing.assert_close(out, a @ b, rtol=1e-5, atol=1e-5)


@needs_both
def test_numpy_openblas_follows_torch_threads_for_the_call_only(fresh_choices):
    blas = native_blas.numpy_blas()
    before = blas.set_threads(3)  # (set and read back: returns the previous count)
    blas.set_threads(before)
    seen = []
    with blas.threads_of_torch():
        seen.append(blas.set_threads(th.get_num_threads()))
    assert seen == [th.get_num_threads()]
    assert blas.set_threads(before) == before  # restored after the block


def test_an_unknown_forced_library_is_refused(fresh_choices, monkeypatch):
    monkeypatch.setenv(native_blas.ENV_BLAS, "goto")
    with pytest.raises(ValueError, match="SB3_DDPG_PLUS_BLAS='goto': not an available BLAS"):
        native_blas.choose(256, 400, 300)


@pytest.mark.skipif(native_update.unavailable_reason() is not None, reason="needs the native update")
def test_train_names_a_wrong_blas_setting_and_changes_nothing(fresh_choices, monkeypatch):
    # A setting the user gave is reported, not silently replaced by the eager update
    model = make_model(native_update="auto")
    before = [p.clone() for p in model.critic.parameters()]
    monkeypatch.setenv(native_blas.ENV_BLAS, "goto")
    with pytest.raises(native_blas.BlasSettingError, match="SB3_DDPG_PLUS_BLAS='goto'"):
        model.train(gradient_steps=2, batch_size=32)
    assert all(th.equal(a, b) for a, b in zip(before, model.critic.parameters(), strict=True))
    assert model._n_updates == 0
    monkeypatch.delenv(native_blas.ENV_BLAS)
    model.train(gradient_steps=2, batch_size=32)  # fixed: trains (the path was not turned off)
    assert model._n_updates == 2 and model._native_update._broken is None
