"""fer_helpers.explorer: the filters, the detail of one face and the photo pipeline, without a browser."""
from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

import fer_helpers as fh
from fer_helpers.explorer import FaceSet, GradcamCache, analyse_photo, bundled_photos, face_detail, read_photo, select
from fer_helpers.inference import make_detector


def _faces() -> FaceSet:
    #            true  predicted (arg-max)  confidence    votes → entropy
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.7, 0.3], [0.55, 0.45]], dtype=np.float32)
    votes = np.zeros((5, 10), dtype=np.int16)
    votes[:, 0] = [10, 5, 10, 6, 4]
    votes[:, 1] = [0, 5, 0, 4, 6]
    images = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    return FaceSet(images=images, labels=np.array([0, 0, 1, 1, 0]), probs=probs, votes=votes,
                   names=np.array([f"f{i}.png" for i in range(5)]), classes=("Neutral", "Happiness"),
                   protocol="P-seed")


def test_filters_pick_exactly_the_matching_faces():
    faces = _faces()
    assert list(select(faces, correct=True, sort="index")) == [0, 2, 4]
    assert list(select(faces, correct=False, sort="index")) == [1, 3]
    assert list(select(faces, true_class=0, predicted_class=1, sort="index")) == [1]      # a confusion cell
    assert list(select(faces, confidence=(0.6, 0.85), sort="index")) == [1, 2, 3]
    assert list(select(faces, entropy=(0.5, 2.0), sort="index")) == [1, 3, 4]             # annotators split


def test_sort_orders_and_limit():
    faces = _faces()
    assert list(select(faces)) == [0, 2, 3, 1, 4]                 # most confident first
    assert list(select(faces, sort="confidence_asc", limit=2)) == [4, 1]
    assert list(select(faces, sort="entropy_desc"))[:2] == [1, 4]
    with pytest.raises(ValueError, match="sort must be one of"):
        select(faces, sort="random")
    with pytest.raises(ValueError, match="low ≤ high"):
        select(faces, confidence=(0.9, 0.1))


def test_the_detail_of_a_face_names_its_probabilities_votes_and_both_maps_once():
    faces = _faces()
    model = fh.build_model("baseline", n_classes=2)
    cache = GradcamCache(model)
    detail = face_detail(faces, 1, cache)
    assert detail["true"] == 0 and detail["predicted"] == 1
    assert detail["probabilities"] == pytest.approx({"Neutral": 0.4, "Happiness": 0.6})
    assert detail["votes"]["neutral"] == 5 and detail["votes"]["happiness"] == 5
    assert detail["gradcam_predicted"].shape == (48, 48) and detail["gradcam_true"].shape == (48, 48)
    t = time.perf_counter()
    face_detail(faces, 1, cache)                                   # cached: no new Grad-CAM
    assert time.perf_counter() - t < 0.1 and len(cache.maps) == 2
    with pytest.raises(IndexError):
        face_detail(faces, 9)


def test_a_photo_gives_its_faces_probabilities_and_an_overlay_of_the_right_size():
    path = bundled_photos()["astronaut"]
    gray = read_photo(path.read_bytes(), path.name)
    found = analyse_photo(gray, fh.build_model("baseline"), make_detector("haar"))
    assert len(found) == 1
    face = found[0]
    assert face["crop"].shape == (48, 48) and face["gradcam"].shape == (48, 48)
    assert face["probabilities"].sum() == pytest.approx(1, abs=1e-4)
    assert 0 <= face["gradcam"].min() and face["gradcam"].max() <= 1


def test_photos_that_are_not_photos_get_a_message():
    with pytest.raises(ValueError, match="notes.txt: not an image file"):
        read_photo(b"hello", "notes.txt")
    buf = io.BytesIO()
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(buf, "PNG")
    blank = read_photo(buf.getvalue(), "blank.png")
    assert analyse_photo(blank, fh.build_model("baseline"), make_detector("haar")) == []


def test_a_huge_photo_gets_a_message(monkeypatch):
    import fer_helpers.explorer as explorer

    monkeypatch.setattr(explorer, "MAX_PHOTO_PIXELS", 50)
    buf = io.BytesIO()
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(buf, "PNG")
    with pytest.raises(ValueError, match="too large"):
        read_photo(buf.getvalue(), "big.png")


def test_vote_columns_have_names_in_both_languages():
    from fer_helpers.explorer import vote_labels

    assert vote_labels("tr")[:2] == ["Nötr", "Mutluluk"] and vote_labels("tr")[-2:] == ["belirsiz", "yüz değil"]
    assert vote_labels("en")[-1] == "not a face" and len(vote_labels("en")) == 10


def test_the_detail_and_photo_figures_draw_what_the_explorer_returns():
    import matplotlib.pyplot as plt

    from fer_helpers import figures

    faces = _faces()
    detail = face_detail(faces, 1, GradcamCache(fh.build_model("baseline", n_classes=2)))
    fig = figures.face_detail_figure(faces.images[1], detail, ["Nötr", "Mutluluk"])
    assert len(fig.axes) == 4 and "gerçek Nötr, tahmin Mutluluk" in fig._suptitle.get_text()
    plt.close(fig)
    found = [{"box": (1, 2, 20, 20), "crop": faces.images[0], "gradcam": np.zeros((48, 48)),
              "probabilities": np.array([0.3, 0.7]), "predicted": 1}]
    fig = figures.photo_faces_figure(np.zeros((60, 60), dtype=np.uint8), found, ["Nötr", "Mutluluk"], "x.png")
    assert len(fig.axes) == 3 and fig.axes[1].get_title() == "Mutluluk (%70)"
    plt.close(fig)


def test_the_explorer_benchmark_times_one_selection(tmp_path):
    import json

    from conftest import ROOT, load_benchmark

    bench = load_benchmark("explorer_benchmark")
    out = tmp_path / "explorer.json"
    assert bench.main(["--model", str(ROOT / "models" / "reference.keras"), "--repeats", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert 0 < result["select_s"] <= result["total_s"] and result["detail_cold_s"] > 0
