"""Hostile but fair inputs: each gets a clear error naming the file or argument, or is handled
right; none gives a silent wrong answer."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

import fer_helpers as fh
from conftest import make_fer2013_csv, make_ferplus
from fer_helpers.data import DataError, decode_image, load_dataset
from fer_helpers.inference import read_gray
from fer_helpers.models import check_images
from fer_helpers.runner import RunError, discover_notebooks


@pytest.fixture(scope="module")
def tiny_model():
    return fh.build_model("baseline")


def test_predict_proba_refuses_images_scaled_to_unit_range(tiny_model):
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    with pytest.raises(ValueError, match="multiply by 255"):
        fh.predict_proba(tiny_model, fh.preprocessing.normalize(faces))
    probs = fh.predict_proba(tiny_model, faces.astype(np.float64))   # floats on the 0–255 scale are fine
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("images, message", [
    (np.full((2, 48, 48), np.nan, dtype=np.float32), "NaN or infinite"),
    (np.full((2, 48, 48), np.inf, dtype=np.float32), "NaN or infinite"),
    (np.full((2, 48, 48), 40000, dtype=np.uint16), "0..255"),
    (np.full((2, 48, 48), -3, dtype=np.int16), "0..255"),
    (np.ones((2, 48, 48), dtype=bool), "dtype bool"),
    (np.zeros((2, 32, 32), dtype=np.uint8), "N×48×48"),
])
def test_predict_proba_refuses_what_is_not_a_pixel_array(tiny_model, images, message):
    with pytest.raises(ValueError, match=message):
        fh.predict_proba(tiny_model, images)


def test_predict_proba_on_no_images_returns_no_rows(tiny_model):
    out = fh.predict_proba(tiny_model, np.zeros((0, 48, 48), dtype=np.uint8))
    assert out.shape == (0, 8)


FLOAT_PIXELS = st.one_of(st.floats(-300, 70000, width=32), st.floats(0, 1, width=32), st.sampled_from([np.nan, np.inf]))
PIXEL_ARRAYS = st.one_of(
    hnp.arrays(st.sampled_from([np.float32, np.float64]), (2, 48, 48), elements=FLOAT_PIXELS),
    hnp.arrays(np.float32, (2, 48, 48), elements=st.floats(0, 1, width=32)),
    hnp.arrays(np.uint8, (2, 48, 48)),
    hnp.arrays(np.int32, (2, 48, 48), elements=st.integers(-300, 70000)),
)


@settings(max_examples=80, deadline=None)
@given(PIXEL_ARRAYS)
def test_the_input_contract_accepts_exactly_finite_pixels_on_the_0_255_scale(images):
    finite = np.isfinite(images).all()
    in_range = finite and images.min() >= 0 and images.max() <= 255
    unit = np.issubdtype(images.dtype, np.floating) and finite and 0 < images.max() <= 1
    if in_range and not unit:
        out = check_images(images)
        assert out.dtype == np.float32 and out.shape == (2, 48, 48, 1)
        np.testing.assert_array_equal(out[..., 0], images.astype(np.float32))
    else:
        with pytest.raises(ValueError):
            check_images(images)


def test_sixteen_bit_images_keep_their_contrast(tmp_path):
    ramp = (np.linspace(0, 65535, 48 * 48).reshape(48, 48)).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    for gray in (decode_image(path)[0], read_gray(path)):
        assert gray.min() == 0 and gray.max() == 255
        assert 100 < gray.mean() < 155          # a ramp, not an all-white square


def test_exif_orientation_is_applied_to_photos(tmp_path):
    upright = np.zeros((60, 40), dtype=np.uint8)
    upright[:10] = 255                           # a bright band at the top of the upright picture
    stored = Image.fromarray(np.rot90(upright))  # a camera stores it turned
    exif = Image.Exif()
    exif[0x0112] = 6                             # "rotate 90° clockwise to display"
    path = tmp_path / "phone.jpg"
    stored.save(path, exif=exif, quality=95)
    gray = read_gray(path)
    assert gray.shape == (60, 40) and gray[:10].mean() > 200 and gray[-10:].mean() < 50


def test_a_duplicate_image_in_label_csv_is_refused_with_both_rows(tmp_path):
    root = make_ferplus(tmp_path / "fp")
    label = root / "FER2013Train" / "label.csv"
    rows = label.read_text().splitlines()
    label.write_text("\n".join(rows + [rows[0]]) + "\n")
    with pytest.raises(DataError, match=r"label.csv, row 9: image fer0000000.png is listed twice \(first in row 1\)"):
        load_dataset(root, use_cache=False)


def test_an_implausible_vote_count_is_refused_not_overflowed(tmp_path):
    root = make_ferplus(tmp_path / "fp")
    label = root / "FER2013Test" / "label.csv"
    rows = label.read_text().splitlines()
    rows[2] = rows[2].rsplit(",", 1)[0] + ",40000"
    label.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match="row 3: vote count 40000 is implausible"):
        load_dataset(root, use_cache=False)


def test_a_byte_order_mark_at_the_start_of_label_files_is_accepted(tmp_path):
    root = make_ferplus(tmp_path / "fp")
    label = root / "FER2013Train" / "label.csv"
    label.write_bytes(b"\xef\xbb\xbf" + label.read_bytes())
    plain = load_dataset(make_ferplus(tmp_path / "plain"), use_cache=False)
    assert len(load_dataset(root, use_cache=False)) == len(plain)
    csv_root = make_fer2013_csv(tmp_path / "csv")
    for name in ("fer2013.csv", "fer2013new.csv"):
        (csv_root / name).write_bytes(b"\xef\xbb\xbf" + (csv_root / name).read_bytes())
    assert len(load_dataset(csv_root / "fer2013.csv", use_cache=False)) > 0


def test_an_unknown_notebook_number_is_refused(tmp_path):
    books = discover_notebooks(fh.runner.PROJECT_ROOT / "notebooks", ["1", "3"])
    assert [b.name[:2] for b in books] == ["01", "03"]
    with pytest.raises(RunError, match=r"unknown notebook number\(s\) \['abc'\]"):
        discover_notebooks(fh.runner.PROJECT_ROOT / "notebooks", ["1", "abc"])


def test_zero_bootstrap_resamples_are_refused_with_the_argument_named():
    y = np.array([0, 1, 1, 0])
    with pytest.raises(ValueError, match="n_boot must be a positive number"):
        fh.evaluation.bootstrap_ci(y, y, n_boot=0)


@pytest.mark.parametrize("text, message", [
    ("3\n", "got a int"), ("- a\n- b\n", "got a list"), ("params:\n  - 1\n", "'params' must be a mapping"),
    ("notebooks: 3\n", "'notebooks' must be a list"),
])
def test_configs_of_the_wrong_shape_are_refused_naming_the_file(tmp_path, text, message):
    from fer_helpers.runner import load_config

    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(RunError, match=message) as info:
        load_config(path)
    assert "bad.yaml" in str(info.value)


def test_a_binary_config_names_the_file(tmp_path):
    from fer_helpers.runner import load_config

    path = tmp_path / "model.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(RunError, match="model.yaml: not a text file"):
        load_config(path)


def test_predict_gives_every_input_a_row_and_fails_when_one_fails(tmp_path, capsys):
    from fer_helpers.__main__ import main

    good = tmp_path / "face.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)).save(good)
    (tmp_path / "empty").mkdir()
    model = tmp_path / "m.keras"
    fh.build_model("baseline").save(model)
    code = main(["predict", str(good), str(tmp_path / "missing.png"), str(tmp_path / "empty"),
                 "--model", str(model), "--json", "--quiet"])
    out = capsys.readouterr().out
    assert code == 1
    assert "face.png" in out and "missing.png" in out and "no image files in this folder" in out
    assert main(["predict", str(good), "--model", str(model), "--quiet"]) == 0


def test_annotated_copies_of_photos_with_one_name_do_not_overwrite_each_other(tmp_path):
    from fer_helpers.inference import FacePrediction, annotate

    rows = []
    for folder in ("a", "b"):
        path = tmp_path / folder / "photo.png"
        path.parent.mkdir()
        Image.fromarray(np.zeros((60, 60), dtype=np.uint8)).save(path)
        rows.append(FacePrediction(file=str(path), face=0, box=(5, 5, 40, 40), label="Nötr", confidence=0.9))
    written = annotate(rows, tmp_path / "out")
    assert len(written) == 2 and len({p.name for p in written}) == 2 and all(p.is_file() for p in written)


@pytest.mark.parametrize("command", ["evaluate", "export"])
def test_outputs_under_a_file_are_refused_before_any_work(tmp_path, capsys, command):
    from fer_helpers.__main__ import main

    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    args = [command, "--out", str(blocker / "sub")] + (["--data", "demo"] if command == "evaluate" else [])
    assert main(args) == 1
    assert "is a file, not a folder" in capsys.readouterr().err


def test_a_partial_run_adds_to_what_is_published_and_a_full_run_replaces_it(tmp_path):
    from fer_helpers.runner import _publish

    published = tmp_path / "figures"
    published.mkdir()
    (published / "04_karisiklik.png").write_bytes(b"from notebook 04")
    partial = tmp_path / "run_figures"
    partial.mkdir()
    (partial / "01_dagilim.png").write_bytes(b"from notebook 01")
    _publish(partial, published, prune=False)
    assert sorted(p.name for p in published.iterdir()) == ["01_dagilim.png", "04_karisiklik.png"]
    _publish(partial, published, prune=True)
    assert sorted(p.name for p in published.iterdir()) == ["01_dagilim.png"]


def test_ctrl_c_during_a_notebook_is_recorded_in_the_run_record(tmp_path, monkeypatch):
    import json

    import papermill

    from fer_helpers.runner import RunSpec, run

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", interrupted)
    spec = RunSpec(params={}, run_name="ctrlc", notebooks=["01"], publish=False, runs_dir=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run(spec, log=lambda *a: None)
    record = json.loads((tmp_path / "ctrlc" / "results" / "run.json").read_text())
    assert record["status"] == "interrupted in 01_veri_kesfi.ipynb" and "end_time" in record


def test_an_image_replaced_in_place_is_read_anew_not_from_the_cache(tmp_path):
    import os

    root = make_ferplus(tmp_path / "fp")
    cache = tmp_path / "cache"
    before = load_dataset(root, cache_dir=cache)
    folder = root / "FER2013Train"
    image = folder / "fer0000000.png"
    folder_times = (folder.stat().st_atime_ns, folder.stat().st_mtime_ns)
    Image.fromarray(np.full((48, 48), 7, dtype=np.uint8)).save(image)
    os.utime(folder, ns=folder_times)           # the folder's listing and time look unchanged
    after = load_dataset(root, cache_dir=cache)
    i = int(np.flatnonzero(after.names == "fer0000000.png")[0])
    assert (after.images[i] == 7).all() and not (before.images[i] == 7).all()


def test_a_huge_image_is_reported_and_the_batch_goes_on(tmp_path, monkeypatch):
    from fer_helpers.inference import predict_paths

    small, big = tmp_path / "a_small.png", tmp_path / "b_big.png"
    Image.fromarray(np.zeros((48, 48), dtype=np.uint8)).save(small)
    Image.fromarray(np.zeros((300, 300), dtype=np.uint8)).save(big)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)   # 300×300 is then a "decompression bomb"
    rows = predict_paths([small, big], fh.build_model("baseline"), detector="haar")
    by = {r.file.split("/")[-1]: r for r in rows}
    assert by["a_small.png"].status == "pre-cropped" and by["a_small.png"].label
    assert by["b_big.png"].status.startswith("error:") and "too large" in by["b_big.png"].status


def test_a_folder_link_loop_is_reported_once_not_followed(tmp_path):
    from fer_helpers.inference import image_files

    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    Image.fromarray(np.zeros((48, 48), dtype=np.uint8)).save(root / "sub" / "face.png")
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)
    problems = []
    files = image_files([root], problems)
    assert [f.name for f in files] == ["face.png"]
    assert any("link loop" in why for _, why in problems)
