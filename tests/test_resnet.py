"""Residual nets, their augmentation layers, the SGD recipe, FLOPs, distillation and the
one-code-path promise (a model trained under JAX loads and predicts the same under TensorFlow)."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fer_helpers as fh
from conftest import ROOT
from fer_helpers.layers import RandomAffine, RandomBrightnessContrast, RandomErasing
from fer_helpers.models import build_model, count_params, forward_macs, load_model, predict_proba, training_flops
from fer_helpers.training import (
    TrainConfig,
    TrainingConfigError,
    distillation_targets,
    save_teacher_probabilities,
    teacher_probabilities,
    train_model,
)

FIXTURES = ROOT / "tests" / "fixtures"


@pytest.mark.parametrize("width, params", [(16, 703_320), (32, 2_801_320), (64, 11_181_384)])
def test_resnet18_widths_have_the_recipes_parameter_counts(width, params):
    # 0.7 M / 2.8 M / 11.2 M: the three nets of the recipe this family reproduces.
    model = build_model("resnet", width=width)
    assert count_params(model) == params
    assert model.name == f"resnet18_w{width}"
    assert model.output_shape == (None, 8)


def test_a_stride_2_stem_buys_twice_the_width_for_the_same_flops():
    # The CPU-budget architecture lever: first stage at 24×24, width 32 (2.8 M weights) for
    # the multiply-adds of the full-resolution width-16 net (0.7 M weights).
    narrow = build_model("resnet", width=16)
    strided = build_model("resnet", width=32, stem_stride=2)
    assert count_params(strided) == 2_801_320 and strided.name == "resnet18_w32_stem2"
    assert strided.get_layer("stem_conv").output.shape[1:3] == (24, 24)
    assert strided.get_layer("stage4_2_out").output.shape[1:3] == (3, 3)
    assert abs(forward_macs(strided) / forward_macs(narrow) - 1) < 0.01
    assert build_model("resnet", width=16, stem_stride=1).name == narrow.name
    with pytest.raises(ValueError, match="stem_stride applies to model 'resnet' only"):
        build_model("vgg_mid", stem_stride=2)
    # A config reaches the same net: the training record prices what was trained.
    config = TrainConfig(model_name="resnet", width=32, stem_stride=2).validate()
    assert fh.training.model_for(config, 8).name == "resnet18_w32_stem2"


def test_forward_macs_match_a_hand_count_and_flops_are_six_per_mac():
    import keras

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)            # 8·8·4 outputs × 3·3·1
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same")(x)      # 4·4·6 outputs × 3·3·4
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2)(x)                               # 6 × 2
    model = keras.Model(inputs, outputs)
    macs = 8 * 8 * 4 * 9 + 4 * 4 * 6 * 9 * 4 + 6 * 2
    assert forward_macs(model) == macs
    assert training_flops(model, 10) == 6 * macs * 10


def test_random_erasing_fills_one_square_with_noise_in_training_only():
    x = np.full((64, 48, 48, 1), 0.5, dtype=np.float32)
    layer = RandomErasing(1.0, 8, 20, seed=0)
    out = np.asarray(layer(x, training=True))
    changed = (out != 0.5).reshape(64, -1).sum(axis=1)
    assert ((changed >= 8 * 8 * 0.9) & (changed <= 20 * 20)).all()   # noise may hit 0.5 by chance
    assert out.min() >= 0 and out.max() <= 1
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    np.testing.assert_array_equal(np.asarray(RandomErasing(0.0, seed=0)(x, training=True)), x)
    half = (np.asarray(RandomErasing(0.5, seed=1)(x, training=True)) != 0.5).reshape(64, -1).any(axis=1)
    assert 16 <= half.sum() <= 48


def test_random_affine_is_exact_at_zero_and_flips_or_keeps_each_image():
    x = np.random.default_rng(0).random((8, 48, 48, 1)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(RandomAffine(0, 0, 0, flip=False)(x, training=True)), x)
    out = np.asarray(RandomAffine(0, 0, 0, flip=True, seed=3)(x, training=True))
    kept = [np.allclose(o, i) for o, i in zip(out, x)]
    flipped = [np.allclose(o, i[:, ::-1]) for o, i in zip(out, x)]
    assert all(k or f for k, f in zip(kept, flipped)) and any(flipped) and any(kept)
    moved = np.asarray(RandomAffine(15, 0.15, 0.12, seed=0)(x, training=True))
    # Bilinear reads of mirrored pixels stay inside the input's range and change the image.
    assert moved.min() >= x.min() - 1e-6 and moved.max() <= x.max() + 1e-6 and not np.allclose(moved, x)
    np.testing.assert_array_equal(np.asarray(RandomAffine(seed=0)(x, training=False)), x)


def test_brightness_contrast_stay_in_range():
    x = np.random.default_rng(0).random((8, 48, 48, 1)).astype(np.float32)
    out = np.asarray(RandomBrightnessContrast(0.2, 0.3, seed=0)(x, training=True))
    assert out.min() >= 0 and out.max() <= 1 and not np.allclose(out, x)


@pytest.mark.parametrize("kwargs", [dict(probability=1.5), dict(min_size=30, max_size=20)])
def test_random_erasing_refuses_bad_settings(kwargs):
    with pytest.raises(ValueError):
        RandomErasing(**kwargs)


def test_a_resnet_with_its_own_layers_saves_loads_in_safe_mode_and_strips_augmentation(tmp_path):
    model = build_model("resnet", width=8)
    model.save(tmp_path / "r.keras")
    loaded = load_model(tmp_path / "r.keras")
    x = np.random.default_rng(1).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    np.testing.assert_allclose(predict_proba(loaded, x), predict_proba(model, x), atol=1e-6)
    stripped = fh.models.strip_augmentation(model)
    assert not any(type(layer).__name__ in ("RandomAffine", "RandomErasing", "RandomBrightnessContrast")
                   for layer in stripped.layers)
    np.testing.assert_allclose(stripped.predict(x[..., None].astype("float32"), verbose=0),
                               model.predict(x[..., None].astype("float32"), verbose=0), atol=1e-6)


def test_a_model_trained_under_jax_predicts_the_same_under_tensorflow():
    # Fixture made by tests/fixtures/make_jax_model.py under KERAS_BACKEND=jax.
    from fixtures.make_jax_model import fixed_inputs

    model = load_model(FIXTURES / "jax_resnet8.keras")
    np.testing.assert_allclose(predict_proba(model, fixed_inputs()), np.load(FIXTURES / "jax_resnet8_probs.npy"),
                               atol=2e-5)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed (pip install '.[jax]')")
def test_the_jax_backend_trains_and_saves_through_the_same_code(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, str(FIXTURES / "make_jax_model.py"), str(tmp_path)], check=True, env=env,
                   cwd=ROOT, timeout=600)
    from fixtures.make_jax_model import fixed_inputs

    model = load_model(tmp_path / "jax_resnet8.keras")
    np.testing.assert_allclose(predict_proba(model, fixed_inputs()), np.load(tmp_path / "jax_resnet8_probs.npy"),
                               atol=2e-5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(model_name="resnet_v9"), "unknown model name"),
    (dict(model_name="resnet", width=12), "unknown resnet width"),
    (dict(model_name="resnet", width=0), "positive integer"),
    (dict(model_name="vgg_mid", width=16), "resnet' only"),
    (dict(model_name="resnet", weight_decay=-1e-4), "weight_decay must be ≥ 0"),
    (dict(model_name="resnet", optimizer="sgd", momentum=1.0), r"momentum must lie in \[0, 1\)"),
    (dict(model_name="resnet", momentum=-0.1), "momentum"),
    (dict(model_name="baseline", weight_decay_mode="l2"), "baseline takes 'decoupled'"),
    (dict(model_name="resnet", erasing=1.5), "erasing"),
    (dict(model_name="resnet", stem_stride=3), "stem_stride must be one of"),
    (dict(model_name="resnet", stem_stride=True), "stem_stride must be one of"),
    (dict(model_name="vgg_mid", stem_stride=2), "stem_stride applies to model 'resnet' only"),
    (dict(model_name="resnet", distill_from="t.npz"), "targets='soft'"),
])
def test_bad_residual_settings_fail_before_training(kwargs, message):
    with pytest.raises(TrainingConfigError, match=message):
        TrainConfig(**kwargs).validate()


def test_a_backend_that_is_unknown_or_not_installed_fails_before_training(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "theano")
    with pytest.raises(TrainingConfigError, match="not a backend"):
        TrainConfig().validate()
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(TrainingConfigError, match="torch is not installed"):
        TrainConfig().validate()


def test_the_soft_target_sgd_recipe_trains_on_demo_data_and_records_its_flops(tmp_path):
    data = fh.load_dataset("demo", label_mode="distribution")
    config = TrainConfig(model_name="resnet", width=8, targets="soft", optimizer="sgd", learning_rate=0.05,
                         weight_decay=5e-4, weight_decay_mode="l2", schedule="cosine", warmup_epochs=1,
                         cosine_alpha=0.0, batch_size=64, epochs=2, patience=0, max_train_images=256)
    result = train_model(data, config, tmp_path / "run", verbose=0)
    meta = json.loads((tmp_path / "run" / "results" / "training.json").read_text())
    assert len(result.history) == 2 and np.isfinite(result.history["loss"]).all()
    compute = meta["compute"]
    assert compute["images_seen"] == 2 * meta["data"]["n_train_used"]
    assert compute["training_flops"] == 6 * meta["model"]["forward_macs"] * compute["images_seen"]
    assert compute["backend"] == "tensorflow"
    # The L2 penalty sits in the layers: 2.5e-4 = weight_decay / 2 on every conv kernel.
    model = load_model(result.model_path)
    conv = model.get_layer("stem_conv")
    assert conv.kernel_regularizer.get_config()["l2"] == pytest.approx(2.5e-4)


def test_distillation_mixes_softened_teacher_probabilities_into_the_targets():
    votes = np.array([[1.0, 0.0], [0.5, 0.5]], dtype=np.float32)
    teacher = np.array([[0.8, 0.2], [0.9, 0.1]], dtype=np.float32)
    mixed = distillation_targets(votes, teacher, weight=0.5, temperature=1.0)
    np.testing.assert_allclose(mixed, 0.5 * votes + 0.5 * teacher, atol=1e-6)
    soft = distillation_targets(votes, teacher, weight=1.0, temperature=2.0)
    expected = np.sqrt(teacher) / np.sqrt(teacher).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(soft, expected, atol=1e-6)
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0, atol=1e-6)


def test_teacher_probabilities_round_trip_and_name_what_is_missing(tmp_path):
    names = np.array(["a.png", "b.png", "c.png"])
    probs = np.random.default_rng(0).dirichlet(np.ones(8), 3).astype(np.float32)
    path = save_teacher_probabilities(tmp_path / "t.npz", names, probs, fh.CLASSES, {"run": "x"}, held_out=["b.png"])
    got = teacher_probabilities(path, np.array(["c.png", "a.png"]), fh.CLASSES)
    np.testing.assert_allclose(got, probs[[2, 0]], atol=1e-3)     # stored as float16
    with pytest.raises(TrainingConfigError, match="d.png"):
        teacher_probabilities(path, np.array(["d.png"]), fh.CLASSES)
    with pytest.raises(TrainingConfigError, match="not found"):
        teacher_probabilities(tmp_path / "none.npz", names, fh.CLASSES)
    with pytest.raises(TrainingConfigError, match="classes"):
        teacher_probabilities(path, names, fh.CLASSES[:7])


def test_a_teacher_that_trained_on_the_students_validation_images_is_refused(tmp_path):
    names = np.array(["a.png", "b.png", "c.png"])
    probs = np.full((3, 8), 1 / 8, dtype=np.float32)
    path = save_teacher_probabilities(tmp_path / "t.npz", names, probs, fh.CLASSES, {}, held_out=["b.png"])
    # The student validates on b.png, which the teacher never trained on: clean.
    assert teacher_probabilities(path, names[[0, 2]], fh.CLASSES, validation=["b.png"]).shape == (2, 8)
    # Validating on c.png, which the teacher trained on, would leak it through the targets.
    with pytest.raises(TrainingConfigError, match="trained on 1 of the student's 2 validation images.*c.png"):
        teacher_probabilities(path, names[[0]], fh.CLASSES, validation=["b.png", "c.png"])
    # A file that does not say what its teacher was trained without cannot vouch for it.
    legacy = tmp_path / "legacy.npz"
    np.savez(legacy, names=names, probs=probs, classes=np.asarray(fh.CLASSES))
    with pytest.raises(TrainingConfigError, match="held_out"):
        teacher_probabilities(legacy, names, fh.CLASSES, validation=["b.png"])


def test_distillation_trains_a_student_from_a_teacher_file(tmp_path):
    data = fh.load_dataset("demo", label_mode="distribution", val_fraction=0.2, seed=42)
    train = data.subset(data.split != "test")
    probs = np.full((len(train), len(data.classes)), 1 / len(data.classes), dtype=np.float32)
    teacher = save_teacher_probabilities(tmp_path / "t.npz", train.names, probs, data.classes, {},
                                         held_out=data.get_split("val").names)
    config = TrainConfig(model_name="resnet", width=8, targets="soft", optimizer="sgd", learning_rate=0.05,
                         schedule="cosine", batch_size=64, epochs=1, patience=0, max_train_images=128,
                         distill_from=str(teacher), distill_weight=0.5, seed=42)
    result = train_model(data, config, tmp_path / "student", verbose=0)
    assert result.metadata["params"]["distill_from"] == str(teacher)
    # The same teacher with a student of another seed (another validation split) is refused before training.
    other = dataclasses.replace(config, seed=config.seed + 1)
    with pytest.raises(TrainingConfigError, match="validation images"):
        train_model(fh.load_dataset("demo", label_mode="distribution", val_fraction=0.2, seed=other.seed), other,
                    tmp_path / "student2", verbose=0)
