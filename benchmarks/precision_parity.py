"""Does a bfloat16 model give the same answers when it computes in float32?

    FER_DATA_DIR=/path/to/ferplus python -m benchmarks.precision_parity \
        --model models/vgg_mid.keras --out results/benchmarks/precision_parity_vgg_mid.json

The reference model computes in bfloat16, which is fast only on CPUs that execute it
natively (``avx512_bf16`` or AMX); elsewhere TensorFlow emulates it and inference is an
order of magnitude slower. ``fer_helpers.models.to_float32`` keeps the weights and
computes in float32. This script measures, on both held-out protocols (P-seed and P-FER+),
each precision's accuracy and macro-F1, how often the two agree on the top class, the
largest probability difference, and each one's throughput on this CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from fer_helpers.artifacts import machine_info, now_iso, write_json
from fer_helpers.data import load_dataset
from fer_helpers.evaluation import classification_metrics, protocol_masks
from fer_helpers.models import load_model, model_precision, predict_proba, to_float32

ROOT = Path(__file__).resolve().parents[1]


def compare(models: dict, images: np.ndarray, labels: np.ndarray, classes) -> dict:
    """Metrics of each model on one image set, and how far the first two disagree."""
    out, probs = {}, {}
    for name, model in models.items():
        predict_proba(model, images[:64])                      # warm-up / tracing
        t = time.perf_counter()
        probs[name] = predict_proba(model, images)
        seconds = time.perf_counter() - t
        m = classification_metrics(labels, probs[name], classes)
        out[name] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
                     "images_per_second": len(images) / seconds}
    a, b = probs.values()
    out["top1_agreement"] = float((a.argmax(1) == b.argmax(1)).mean())
    out["max_abs_diff"] = float(np.abs(a - b).max())
    out["n"] = int(len(labels))
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", default=os.environ.get("FER_DATA_DIR"))
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if not args.data:
        ap.error("give --data or set FER_DATA_DIR to the FER+ folder")
    path = Path(args.model)
    model = load_model(path)
    if model_precision(model) == "float32":
        ap.error(f"{path}: the model already computes in float32; nothing to compare")
    models = {"saved": model, "float32": to_float32(model)}
    plurality = load_dataset(args.data, label_mode="plurality")
    majority = load_dataset(args.data, label_mode="majority")
    result = {"model": str(path), "precision_saved": model_precision(model), "protocols": {}}
    for name, (subset, _) in protocol_masks(plurality, majority).items():
        result["protocols"][name] = compare(models, subset.images, subset.labels, plurality.classes)
    result.update(machine=machine_info(), time=now_iso())
    out = Path(args.out or ROOT / "results" / "benchmarks" / f"precision_parity_{path.stem}.json")
    write_json(out, result)
    print(json.dumps(result["protocols"], indent=1))
    return result


if __name__ == "__main__":
    main()
