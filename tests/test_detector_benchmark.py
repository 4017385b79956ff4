"""benchmarks/detector_benchmark.py: the overlap rule, the canvases, and a run on real faces."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import load_benchmark

bench = load_benchmark("detector_benchmark")


def test_iou_of_known_boxes():
    assert bench.iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert bench.iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert bench.iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_each_canvas_holds_its_face_where_the_box_says():
    faces = np.full((3, 48, 48), 255, dtype=np.uint8)
    images, boxes = bench.canvases(faces, 5, seed=1)
    for img, (x, y, w, h) in zip(images, boxes):
        assert img.shape == (bench.CANVAS, bench.CANVAS) and 40 <= w == h <= 200
        assert (img[y:y + h, x:x + w] >= 250).all()      # bicubic upscaling of a white face stays white


def test_scoring_counts_hits_and_false_positives():
    boxes = [(10, 10, 50, 50), (100, 100, 60, 60)]
    detections = iter([[(12, 12, 45, 45), (200, 200, 30, 30)], []])
    result = bench.score(lambda img: next(detections), [None, None], boxes)
    assert result["recall"] == 0.5 and result["false_positives_per_image"] == 0.5


@pytest.mark.realdata
@pytest.mark.slow
def test_the_benchmark_runs_on_real_faces(ferplus_dir, tmp_path):
    out = tmp_path / "detectors.json"
    assert bench.main(["--data", str(ferplus_dir), "--n", "12", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["detectors"]) == {"mtcnn", "haar"}
    assert result["detectors"]["mtcnn"]["astronaut_faces"] == 1


def test_the_readme_quotes_the_committed_detector_measurement():
    from conftest import ROOT

    result = json.loads((ROOT / "results" / "benchmarks" / "detectors.json").read_text())
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    mtcnn, haar = (round(100 * result["detectors"][d]["recall"]) for d in ("mtcnn", "haar"))
    assert f"MTCNN %{mtcnn}'" in readme and f"Haar %{haar}'" in readme
