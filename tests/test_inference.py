"""Predicting on real photos, evaluating on other data sets, exporting — and their bad input."""
import json

import numpy as np
import pytest
from PIL import Image

import fer_helpers as fh
from conftest import make_folders
from fer_helpers.__main__ import main
from fer_helpers.inference import crop_face, detect_faces, evaluate_dataset, predict_paths
from fer_helpers.models import ModelError


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    import keras

    path = tmp_path_factory.mktemp("model") / "m.keras"
    keras.utils.set_random_seed(0)      # the same untrained weights on every run
    fh.build_model("baseline").save(path)
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A real face photo (scikit-image's astronaut), a photo without a face, a 48×48 crop,
    a non-image file — in a folder whose name has a space and Turkish letters."""
    from skimage import data

    root = tmp_path_factory.mktemp("photos") / "fotoğraflar ve yüzler"
    root.mkdir()
    Image.fromarray(data.astronaut()).save(root / "astronot ğüş.png")
    Image.fromarray(data.coffee()).save(root / "kahve.jpg")
    Image.fromarray(np.full((48, 48), 128, np.uint8)).save(root / "kırpılmış.png")
    (root / "notlar.png").write_text("this is not an image")
    return root


def test_haar_detector_finds_the_astronaut():
    from skimage import color, data

    gray = (color.rgb2gray(data.astronaut()) * 255).astype(np.uint8)
    boxes = detect_faces(gray)
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    assert 150 < x + w / 2 < 260 and 80 < y + h / 2 < 180     # the face, not the flag or the suit
    assert crop_face(gray, boxes[0]).shape == (48, 48)


@pytest.mark.parametrize("name", ["mtcnn", "haar"])
def test_each_detector_finds_the_astronaut_and_no_face_in_coffee(name):
    from skimage import color, data

    from fer_helpers.inference import make_detector

    detect = make_detector(name)
    boxes = detect((color.rgb2gray(data.astronaut()) * 255).astype(np.uint8))
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    assert 150 < x + w / 2 < 260 and 80 < y + h / 2 < 180
    assert detect((color.rgb2gray(data.coffee()) * 255).astype(np.uint8)) == []
    with pytest.raises(ValueError, match="unknown detector"):
        make_detector("viola")


def test_no_detect_takes_each_image_as_one_cropped_face(tmp_path, model_file):
    from PIL import Image

    path = tmp_path / "big_crop.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (120, 100), dtype=np.uint8)).save(path)
    rows = predict_paths([path], fh.load_model(model_file), detector=None)
    assert len(rows) == 1 and rows[0].status == "pre-cropped" and rows[0].box == (0, 0, 100, 120)
    assert sum(rows[0].probabilities.values()) == pytest.approx(1, abs=1e-4)


def test_crop_near_the_border_is_padded():
    gray = np.arange(100 * 100, dtype=np.uint32).reshape(100, 100).astype(np.uint8)
    assert crop_face(gray, (0, 0, 40, 40), margin=0.5).shape == (48, 48)


def test_predict_rows_for_face_no_face_crop_and_bad_file(photos, model_file):
    rows = predict_paths([photos], fh.load_model(model_file), language="tr")
    by = {r.file.split("/")[-1]: r for r in rows}
    assert by["astronot ğüş.png"].status == "ok" and by["astronot ğüş.png"].box is not None
    assert sum(by["astronot ğüş.png"].probabilities.values()) == pytest.approx(1, abs=1e-4)
    assert set(by["astronot ğüş.png"].probabilities) == set(fh.display_names(fh.CLASSES, "tr"))
    assert by["kahve.jpg"].status == "no face found" and by["kahve.jpg"].label is None
    assert by["kırpılmış.png"].status == "pre-cropped" and by["kırpılmış.png"].label
    assert by["notlar.png"].status.startswith("error:") and "notlar.png" in by["notlar.png"].status


def test_predict_cli_json_and_annotate(photos, model_file, tmp_path, capsys):
    code = main(["predict", str(photos / "astronot ğüş.png"), str(photos / "notlar.png"), "--model",
                 str(model_file), "--json", "--quiet", "--annotate", str(tmp_path / "ann")])
    assert code == 1            # one input (notlar.png) failed: the exit code says so
    out = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in out] == ["ok", out[1]["status"]] and out[1]["status"].startswith("error")
    assert (tmp_path / "ann" / "astronot ğüş_annotated.png").is_file()


def test_float32_option_predicts_the_same_faces_with_a_bfloat16_model(photos, tmp_path, capsys):
    import keras

    keras.utils.set_random_seed(0)
    path = tmp_path / "bf16.keras"
    fh.build_model("baseline", precision="mixed_bfloat16").save(path)
    crop = str(photos / "kırpılmış.png")
    outs = []
    for extra in ([], ["--float32"]):
        assert main(["predict", crop, "--model", str(path), "--json", "--quiet", *extra]) == 0
        outs.append(json.loads(capsys.readouterr().out)[0]["probabilities"])
    assert outs[0].keys() == outs[1].keys()
    diff = max(abs(outs[0][k] - outs[1][k]) for k in outs[0])
    assert 0 < diff < 0.02       # another computation (float32), the same model: bfloat16 rounding only


def test_predict_refuses_a_model_with_the_wrong_class_count(tmp_path, photos):
    import keras

    inp = keras.Input((48, 48, 1))
    path = tmp_path / "five.keras"
    keras.Model(inp, keras.layers.Dense(5, activation="softmax")(keras.layers.Flatten()(inp))).save(path)
    with pytest.raises(ModelError, match="model has 5 outputs"):
        predict_paths([photos], fh.load_model(path))


def test_evaluate_on_a_class_subset(tmp_path, model_file):
    # Kaggle-style tree without Contempt and without Neutral.
    root = make_folders(tmp_path / "kaggle", classes=("angry", "happy", "sad", "surprised", "fear", "disgust"))
    data = fh.load_dataset(root)
    res = evaluate_dataset(fh.load_model(model_file), data, n_boot=50)
    assert res["shared_classes"] == ["Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise"]
    assert res["n"] == 6 * 4 and len(res["metrics"]["confusion_matrix"]) == 6
    assert 0 <= res["metrics"]["accuracy"] <= 1


def test_evaluate_cli_writes_artifacts(tmp_path, model_file):
    root = make_folders(tmp_path / "kaggle")
    assert main(["evaluate", "--data", str(root), "--model", str(model_file), "--out", str(tmp_path / "ev"),
                 "--n-boot", "20", "--float32"]) == 0     # a float32 model is used as it is
    res = json.loads((tmp_path / "ev" / "evaluation_external.json").read_text())
    assert res["layout"] == "folders" and (tmp_path / "ev" / "karisiklik_harici.png").is_file()


def test_missing_model_gives_a_clear_cli_error(tmp_path, capsys):
    assert main(["predict", str(tmp_path), "--model", str(tmp_path / "none.keras")]) == 1
    assert "none.keras: model file not found" in capsys.readouterr().err


@pytest.mark.slow
def test_export_parity(tmp_path, model_file):
    from fer_helpers.export import export_all, tflite_runner

    model = fh.load_model(model_file)
    images = np.random.default_rng(0).integers(0, 256, (64, 48, 48), dtype=np.uint8)
    summary = export_all(model, tmp_path, formats=("tflite", "tflite_int8", "onnx"), check_images=images)
    for fmt, s in summary.items():
        # Float exports must agree exactly; dynamic-range int8 is held to its probability error.
        assert s["max_abs_diff"] < (5e-3 if fmt == "tflite_int8" else 1e-5), fmt
        if fmt != "tflite_int8":
            assert s["top1_agreement"] == 1.0, fmt
    # The untrained model's outputs are nearly uniform, so int8 may flip a near-tie (seen: 60 of
    # 64 agreeing): every image where it disagrees must be one whose two best float
    # probabilities lie within the int8 error of each other.
    ref = fh.predict_proba(model, images)
    int8 = tflite_runner(summary["tflite_int8"]["path"])(images)
    top2 = np.sort(ref, axis=1)[:, -2:]
    flipped = ref.argmax(1) != int8.argmax(1)
    assert flipped.mean() == pytest.approx(1 - summary["tflite_int8"]["top1_agreement"])
    assert np.all(top2[flipped, 1] - top2[flipped, 0] <= 2 * summary["tflite_int8"]["max_abs_diff"])
    assert summary["tflite_int8"]["size_mb"] < summary["tflite"]["size_mb"] / 2


@pytest.mark.slow
def test_a_mixed_precision_model_exports_as_its_float32_copy(tmp_path):
    import keras

    from fer_helpers.export import export_all, tflite_runner
    from fer_helpers.models import to_float32

    keras.utils.set_random_seed(0)
    model = fh.build_model("vgg_fast", precision="mixed_bfloat16")
    images = np.random.default_rng(1).integers(0, 256, (32, 48, 48), dtype=np.uint8)
    summary = export_all(model, tmp_path, formats=("tflite",), check_images=images)["tflite"]
    # TFLite has no bfloat16 kernels: the graph is the float32 copy's, exactly …
    exported = tflite_runner(summary["path"])(images)
    assert np.abs(exported - fh.predict_proba(to_float32(model), images)).max() < 1e-5
    # … and differs from the bfloat16 model by bfloat16 rounding only.
    assert summary["max_abs_diff"] < 0.02


@pytest.fixture(scope="module")
def onnx_exports(tmp_path_factory, model_file):
    """The untrained model as float ONNX and as static int8 ONNX (calibrated on demo training images)."""
    from fer_helpers.export import calibration_sample, export_all

    images = np.random.default_rng(0).integers(0, 256, (64, 48, 48), dtype=np.uint8)
    train = fh.load_dataset("demo").get_split("train").images
    summary = export_all(fh.load_model(model_file), tmp_path_factory.mktemp("onnx"), formats=("onnx", "onnx_int8"),
                         check_images=images, calibration_images=calibration_sample(train, 128))
    return summary, images


def test_calibration_sample_is_a_fixed_subset_of_the_training_images():
    from fer_helpers.export import calibration_sample

    train = np.arange(10 * 48 * 48, dtype=np.int64).reshape(10, 48, 48)    # every image distinct
    a, b = calibration_sample(train, 4), calibration_sample(train, 4)
    assert np.array_equal(a, b) and len({int(x[0, 0]) for x in a}) == 4
    assert len(calibration_sample(train, 512)) == 10                       # capped at what there is
    with pytest.raises(ValueError, match="no training images"):
        calibration_sample(train[:0])


@pytest.mark.slow
def test_static_int8_onnx_export_quantises_weights_and_activations(onnx_exports, model_file):
    import onnx
    from onnx import numpy_helper

    summary, images = onnx_exports
    assert summary["onnx"]["max_abs_diff"] < 1e-5 and summary["onnx"]["top1_agreement"] == 1.0
    int8 = summary["onnx_int8"]
    assert int8["size_mb"] < summary["onnx"]["size_mb"] / 2
    graph = onnx.load(int8["path"]).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    assert any(t.data_type == onnx.TensorProto.INT8 for t in graph.initializer)
    # The weights (the int8 tensors of two or more axes; zero points are scalars or per channel)
    # use 7 bits: on an x86 CPU without VNNI, full-range int8 pairs overflow ONNX Runtime's int16 sums.
    weights = [numpy_helper.to_array(t) for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    weights = [w for w in weights if w.ndim >= 2]
    assert weights and max(int(np.abs(w.astype(np.int16)).max()) for w in weights) <= 64
    # As for int8 TFLite: on an untrained model's near-uniform outputs, every image whose top
    # class changes must be a near-tie within the int8 error.
    ref = fh.predict_proba(fh.load_model(model_file), images)
    got = fh.predict_proba(fh.load_model(int8["path"]), images)
    assert np.abs(got - ref).max() == pytest.approx(int8["max_abs_diff"], abs=1e-6)
    top2 = np.sort(ref, axis=1)[:, -2:]
    flipped = ref.argmax(1) != got.argmax(1)
    assert np.all(top2[flipped, 1] - top2[flipped, 0] <= 2 * int8["max_abs_diff"])


@pytest.mark.slow
def test_an_onnx_export_loads_and_predicts_like_the_keras_model(onnx_exports, model_file, tmp_path):
    from fer_helpers.models import OnnxModel

    summary, images = onnx_exports
    onnx_model = fh.load_model(summary["onnx"]["path"], n_classes=8)
    assert isinstance(onnx_model, OnnxModel) and onnx_model.input_shape == (None, 48, 48, 1)
    keras_model = fh.load_model(model_file)
    for tta in (False, True):
        assert np.abs(fh.predict_proba(onnx_model, images, flip_tta=tta)
                      - fh.predict_proba(keras_model, images, flip_tta=tta)).max() < 1e-5
    with pytest.raises(ModelError, match="7 classes"):
        fh.load_model(summary["onnx"]["path"], n_classes=7)
    # The command line takes it like a .keras file.
    root = make_folders(tmp_path / "kaggle")
    assert main(["evaluate", "--data", str(root), "--model", summary["onnx_int8"]["path"], "--out",
                 str(tmp_path / "ev"), "--n-boot", "20", "--float32", "--no-figures"]) == 0
    assert json.loads((tmp_path / "ev" / "evaluation_external.json").read_text())["n"] > 0


def test_a_damaged_onnx_file_is_named_in_the_error(tmp_path):
    bad = tmp_path / "kırık.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(ModelError, match="kırık.onnx: cannot load ONNX model"):
        fh.load_model(bad)


def test_int8_onnx_export_needs_training_images_to_calibrate(model_file, tmp_path, monkeypatch, capsys):
    from fer_helpers.export import export_all

    with pytest.raises(ValueError, match="calibration_images"):
        export_all(fh.load_model(model_file), tmp_path, formats=("onnx_int8",))
    monkeypatch.delenv("FER_DATA_DIR", raising=False)
    assert main(["export", "--model", str(model_file), "--out", str(tmp_path / "x"), "--formats", "onnx_int8"]) == 1
    assert "--calibration-data" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()          # nothing half-written
