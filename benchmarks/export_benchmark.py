"""Export a model to TFLite (float, int8) and ONNX (float, static int8); record sizes, parity,
CPU throughput and, given the FER+ data, each format's accuracy on both held-out protocols.

    FER_DATA_DIR=/path/to/ferplus python -m benchmarks.export_benchmark --model models/reference.keras

Writes results/benchmarks/export_<model stem>.json. Without data the static int8 ONNX
export is left out: its activation ranges are calibrated on training images (a fixed
random sample of FER2013Train), never on a held-out split.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from fer_helpers import load_model, predict_proba
from fer_helpers.artifacts import machine_info, now_iso, write_json
from fer_helpers.data import load_dataset
from fer_helpers.evaluation import classification_metrics, per_class_recall, protocol_masks
from fer_helpers.export import FORMATS, ONNX_INT8_WEIGHT_BITS, RUNNERS, calibration_sample, export_all
from fer_helpers.models import images_per_second, to_float32

ROOT = Path(__file__).resolve().parents[1]
RARE = ("Contempt", "Disgust")


def protocol_scores(predictors: dict, protocols: dict, classes) -> dict:
    """Per protocol and predictor: accuracy, macro-F1, rare-class recall and top-1 agreement
    with the first predictor (the saved Keras model)."""
    out = {}
    for name, (subset, _) in protocols.items():
        probs = {key: predict(subset.images) for key, predict in predictors.items()}
        first = next(iter(probs.values())).argmax(1)
        rows = {}
        for key, p in probs.items():
            m = classification_metrics(subset.labels, p, classes)
            recall = per_class_recall(m)
            rows[key] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
                         **{f"recall_{c}": recall[c] for c in RARE if c in recall},
                         "top1_agreement": float((p.argmax(1) == first).mean())}
        out[name] = {"n": int(len(subset.labels)), **rows}
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", default=os.environ.get("FER_DATA_DIR"),
                    help="FER+ folder: int8 calibration images and protocol accuracy (default $FER_DATA_DIR)")
    ap.add_argument("--n-images", type=int, default=4096, help="random images for the throughput timing")
    ap.add_argument("--n-calibration", type=int, default=512)
    ap.add_argument("--out", default=None, help="JSON to write (default results/benchmarks/export_<stem>.json)")
    ap.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS), help="formats to export (default: all)")
    ap.add_argument("--card", action="store_true", help="also record the int8 ONNX result in <model>.card.json/.md")
    args = ap.parse_args(argv)
    if args.card and not args.data:
        ap.error("--card records the int8 export's accuracy: give --data or set FER_DATA_DIR")
    model = load_model(args.model)
    images = np.random.default_rng(0).integers(0, 256, (args.n_images, 48, 48), dtype=np.uint8)
    float32 = to_float32(model)
    # Keras first, before any converter runs: measured after them, the same model was about a
    # third slower here (1,574 vs 2,394 images/s for the bfloat16 reference).
    predictors = {"keras": lambda x: predict_proba(model, x), "keras_float32": lambda x: predict_proba(float32, x)}
    result = {"model": args.model, "keras": {"size_mb": Path(args.model).stat().st_size / 2**20},
              "keras_float32": {}}
    for key in predictors:
        result[key]["images_per_second"] = images_per_second(predictors[key], images)
    plurality = load_dataset(args.data, label_mode="plurality") if args.data else None
    formats = tuple(f for f in args.formats if plurality is not None or f != "onnx_int8")
    calibration = (calibration_sample(plurality.get_split("train").images, args.n_calibration)
                   if plurality is not None else None)
    with tempfile.TemporaryDirectory() as tmp:
        summary = export_all(model, tmp, formats, calibration_images=calibration)
        for fmt, s in summary.items():
            predictors[fmt] = RUNNERS[fmt](s["path"])       # loaded once, outside the timing
            result[fmt] = {k: v for k, v in s.items() if k != "path"}
            result[fmt]["images_per_second"] = images_per_second(predictors[fmt], images)
        if plurality is not None:
            majority = load_dataset(args.data, label_mode="majority")
            result["protocols"] = protocol_scores(predictors, protocol_masks(plurality, majority), plurality.classes)
            result["calibration"] = {"images": len(calibration), "split": "train", "seed": 0,
                                     "weight_bits": ONNX_INT8_WEIGHT_BITS}
    result.update(machine=machine_info(), time=now_iso(), n_images=args.n_images)
    write_json(Path(args.out or ROOT / "results" / "benchmarks" / f"export_{Path(args.model).stem}.json"), result)
    if args.card:
        from fer_helpers.release import add_int8_export_to_card

        add_int8_export_to_card(Path(args.model).parent, Path(args.model).stem, result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
    return result


if __name__ == "__main__":
    main()
