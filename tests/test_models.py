import zipfile

import numpy as np
import pytest

import fer_helpers as fh
from fer_helpers.models import ModelError, count_params, load_model, model_table


def test_baseline_has_the_study_parameter_count():
    model = fh.build_model("baseline")
    assert count_params(model) == 684_552
    types = [r["type"] for r in model_table(model)]
    assert types.count("Conv2D") == 3 and types.count("MaxPooling2D") == 3 and types.count("Dense") == 2


# The three larger VGG variants take the longest and share their blocks with vgg_fast: full suite only.
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in {"vgg", "vgg_mid", "vgg_wide"} else n
                                  for n in fh.MODEL_NAMES])
def test_each_model_overfits_a_tiny_batch(name):
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (16, 48, 48, 1)).astype("float32")
    y = np.eye(8)[np.arange(16) % 8]
    # The residual family is tested at width 8: its default width only makes the test slower.
    extra = {"width": 8, "erasing": 0.0, "l2": 0.0} if name == "resnet" else {}
    model = fh.build_model(name, augmentation="none", **extra)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit(x, y, epochs=60, batch_size=16, verbose=0).history
    # Training-mode fit (BatchNorm's moving statistics need more steps than a tiny batch gives).
    assert hist["accuracy"][-1] == 1.0
    assert hist["loss"][-1] < 0.1 * hist["loss"][0]


def test_vgg_variants_have_the_documented_size():
    fast, vgg = fh.build_model("vgg_fast"), fh.build_model("vgg")
    assert count_params(vgg) == 1_177_576 and count_params(fast) == 658_424
    # vgg_mid = vgg without its second 48×48 conv (3×3×32×32 + 32 weights, 4×32 BatchNorm).
    assert count_params(fh.build_model("vgg_mid")) == 1_177_576 - (9 * 32 * 32 + 32) - 4 * 32
    convs = [r for r in model_table(fast) if r["type"] == "Conv2D"]
    assert len(convs) == 7 and convs[0]["output_shape"] == "(N, 48, 48, 24)"
    with pytest.raises(ValueError, match="4 stage widths"):
        fh.models.build_vgg(widths=(8, 16), convs=(1, 1))


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model name 'resnet9000'"):
        fh.build_model("resnet9000")


def test_predict_proba_shape_and_order(tmp_path):
    model = fh.build_model("baseline")
    imgs = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    p = fh.predict_proba(model, imgs)
    assert p.shape == (5, 8) and np.allclose(p.sum(1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="48×48"):
        fh.predict_proba(model, imgs[:, :40])


def test_save_and_safe_load_roundtrip(tmp_path):
    model = fh.build_model("baseline")
    path = tmp_path / "m.keras"
    model.save(path)
    imgs = np.random.default_rng(1).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    loaded = load_model(path, n_classes=8)
    assert np.allclose(fh.predict_proba(model, imgs), fh.predict_proba(loaded, imgs), atol=1e-6)
    with pytest.raises(ModelError, match="8 outputs but the data has 7 classes"):
        load_model(path, n_classes=7)


def test_missing_and_truncated_model_files(tmp_path):
    with pytest.raises(ModelError, match="nope.keras: model file not found"):
        load_model(tmp_path / "nope.keras")
    model = fh.build_model("baseline")
    path = tmp_path / "m.keras"
    model.save(path)
    data = path.read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="cut.keras: not a valid .keras archive"):
        load_model(tmp_path / "cut.keras")


def test_lambda_layer_is_refused_in_safe_mode(tmp_path):
    import keras

    inp = keras.Input((48, 48, 1))
    out = keras.layers.Lambda(lambda t: t * 2.0)(inp)
    out = keras.layers.Dense(8, activation="softmax")(keras.layers.Flatten()(out))
    path = tmp_path / "lambda.keras"
    keras.Model(inp, out).save(path)
    with pytest.raises(ModelError, match="lambda.keras: refused in safe mode"):
        load_model(path)


def test_wrong_input_shape_is_refused(tmp_path):
    import keras

    inp = keras.Input((64, 64, 1))
    out = keras.layers.Dense(8, activation="softmax")(keras.layers.Flatten()(inp))
    path = tmp_path / "big.keras"
    keras.Model(inp, out).save(path)
    assert zipfile.is_zipfile(path)
    with pytest.raises(ModelError, match="big.keras: model expects input"):
        load_model(path)


def test_serving_model_drops_augmentation_and_predicts_identically():
    from fer_helpers.models import serving_model

    model = fh.build_model("vgg")
    served = serving_model(model)
    assert served is serving_model(model)                  # built once
    assert not any(layer.name.startswith("aug_") for layer in served.layers)
    assert count_params(served) == count_params(model)
    x = np.random.default_rng(2).integers(0, 256, (6, 48, 48, 1)).astype("float32")
    assert np.allclose(model.predict(x, verbose=0), fh.predict_proba(model, x), atol=1e-6)


def test_mixed_bfloat16_model_keeps_float32_weights_stem_and_head(tmp_path):
    from fer_helpers.models import model_precision, to_float32

    model = fh.build_model("vgg_fast", precision="mixed_bfloat16")
    policies = {layer.name: layer.dtype_policy.name for layer in model.layers}
    assert policies["stage2_1_conv"] == "mixed_bfloat16" and policies["stage4_2_bn"] == "mixed_bfloat16"
    # Pixels and augmentation stay float32; the softmax head too (probabilities, not bf16 steps).
    assert policies["rescale"] == policies["aug_flip"] == policies["predictions"] == "float32"
    assert {w.dtype for w in model.weights} == {"float32"}
    assert count_params(model) == count_params(fh.build_model("vgg_fast"))
    assert model_precision(model) == "mixed_bfloat16"
    # The policy survives a safe-mode round trip, and the float32 copy agrees within bf16 rounding.
    path = tmp_path / "bf16.keras"
    model.save(path)
    loaded = load_model(path)
    assert model_precision(loaded) == "mixed_bfloat16"
    x = np.random.default_rng(3).integers(0, 256, (16, 48, 48)).astype("uint8")
    p_bf16 = fh.predict_proba(loaded, x)
    assert p_bf16.dtype == np.float32 and np.allclose(p_bf16.sum(1), 1, atol=1e-5)
    assert np.array_equal(p_bf16, fh.predict_proba(model, x))
    f32 = to_float32(loaded)
    assert model_precision(f32) == "float32" and to_float32(f32) is f32
    assert np.abs(fh.predict_proba(f32, x) - p_bf16).max() < 0.02
    with pytest.raises(ValueError, match="unknown precision 'float16'"):
        fh.build_model("vgg", precision="float16")


def test_gradcam_of_a_mixed_precision_model_is_float32_and_close_to_its_float32_copy():
    import keras

    from fer_helpers.gradcam import gradcam_heatmaps
    from fer_helpers.models import to_float32

    keras.utils.set_random_seed(1)
    model = fh.build_model("vgg_fast", precision="mixed_bfloat16")
    x = np.random.default_rng(4).integers(0, 256, (4, 48, 48)).astype("uint8")
    maps = gradcam_heatmaps(model, x, class_index=2)
    assert maps.dtype == np.float32 and maps.shape == (4, 48, 48) and np.isfinite(maps).all()
    assert np.abs(maps - gradcam_heatmaps(to_float32(model), x, class_index=2)).mean() < 0.05
