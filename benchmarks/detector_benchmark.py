"""Face detectors on faces as photos show them: recall, false positives and speed.

FER2013Test faces (48×48) are upscaled to a random size of 40–200 px and pasted at a random
place into a 256×256 canvas of smooth random texture, one face per canvas; a detection counts
when its box overlaps the pasted square with IoU ≥ 0.3 (a detector's box is tighter than a FER
crop, which has margin around the face). Also runs on scikit-image's astronaut photo (one face).
The canvases show FER pixels, so they are built in memory and never written.

    FER_DATA_DIR=/path/to/ferplus python -m benchmarks.detector_benchmark --n 100 --out results/benchmarks/detectors.json
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from PIL import Image
from scipy import ndimage

from fer_helpers.artifacts import machine_info, now_iso, write_json
from fer_helpers.data import load_dataset, resolve_data_dir
from fer_helpers.inference import DETECTORS, make_detector

CANVAS = 256


def canvases(faces: np.ndarray, n: int, seed: int = 0) -> tuple[list[np.ndarray], list[tuple]]:
    """``n`` canvases, each with one face pasted at a random size and place, and its box."""
    rng = np.random.default_rng(seed)
    images, boxes = [], []
    for i in range(n):
        texture = ndimage.gaussian_filter(rng.normal(0, 1, (CANVAS, CANVAS)), sigma=rng.uniform(3, 12))
        canvas = np.clip(120 + 45 * texture / (texture.std() + 1e-9), 0, 255).astype(np.uint8)
        size = int(rng.integers(40, 201))
        x, y = (int(v) for v in rng.integers(0, CANVAS - size + 1, 2))
        face = np.asarray(Image.fromarray(faces[i % len(faces)]).resize((size, size), Image.Resampling.BICUBIC))
        canvas[y:y + size, x:x + size] = face
        images.append(canvas)
        boxes.append((x, y, size, size))
    return images, boxes


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    return inter / (aw * ah + bw * bh - inter)


def score(detect, images, boxes, threshold: float = 0.3) -> dict:
    found, false_pos, t0 = 0, 0, time.perf_counter()
    detections = [detect(img) for img in images]
    seconds = time.perf_counter() - t0
    for dets, truth in zip(detections, boxes):
        hits = [d for d in dets if iou(d, truth) >= threshold]
        found += bool(hits)
        false_pos += len(dets) - min(len(hits), 1)
    return {"recall": found / len(images), "false_positives_per_image": false_pos / len(images),
            "images_per_second": len(images) / seconds, "n": len(images)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="FER data (default: FER_DATA_DIR)")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--out", help="JSON file to write")
    args = ap.parse_args(argv)
    data = load_dataset(resolve_data_dir(args.data))
    test = data.subset(np.isin(data.source_split, ["FER2013Test", "PrivateTest"])) if not data.is_demo else data
    images, boxes = canvases(test.images, args.n)
    from skimage import color
    from skimage import data as samples

    astronaut = (color.rgb2gray(samples.astronaut()) * 255).astype(np.uint8)
    result = {"date": now_iso(), "machine": machine_info(), "data": data.summary()["layout"],
              "is_demo": data.is_demo, "canvas": CANVAS, "face_sizes": [40, 200], "iou_threshold": 0.3,
              "detectors": {}}
    for name in DETECTORS:
        detect = make_detector(name)
        detect(images[0])                     # warm-up (MTCNN builds its networks)
        entry = score(detect, images, boxes)
        entry["astronaut_faces"] = len(detect(astronaut))
        result["detectors"][name] = entry
        print(f"{name:6s} recall {entry['recall']:.2f} · false positives/image "
              f"{entry['false_positives_per_image']:.2f} · {entry['images_per_second']:.1f} images/s · "
              f"astronaut: {entry['astronaut_faces']} face(s)", flush=True)
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
