"""Export a model to TFLite (float, int8) and ONNX; record sizes, parity and CPU throughput.

    python benchmarks/export_benchmark.py --model models/reference.keras

Writes results/benchmarks/export_<model stem>.json.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from fer_helpers import load_model, predict_proba
from fer_helpers.artifacts import machine_info, now_iso, write_json
from fer_helpers.export import FORMATS, RUNNERS, export_all
from fer_helpers.models import images_per_second

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--n-images", type=int, default=2048)
    ap.add_argument("--out", default=None, help="JSON to write (default results/benchmarks/export_<stem>.json)")
    args = ap.parse_args(argv)
    model = load_model(args.model)
    images = np.random.default_rng(0).integers(0, 256, (args.n_images, 48, 48), dtype=np.uint8)
    # Keras first, before any converter runs: measured after them, the same model was about a
    # third slower here (1,574 vs 2,394 images/s for the bfloat16 reference).
    result = {"model": args.model, "keras": {"size_mb": Path(args.model).stat().st_size / 2**20,
              "images_per_second": images_per_second(lambda x: predict_proba(model, x), images)}}
    with tempfile.TemporaryDirectory() as tmp:
        summary = export_all(model, tmp, FORMATS)
        for fmt, s in summary.items():
            result[fmt] = {k: v for k, v in s.items() if k != "path"}
            result[fmt]["images_per_second"] = images_per_second(lambda x: RUNNERS[fmt](s["path"], x), images)
    result.update(machine=machine_info(), time=now_iso(), n_images=args.n_images)
    write_json(Path(args.out or ROOT / "results" / "benchmarks" / f"export_{Path(args.model).stem}.json"), result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
    return result


if __name__ == "__main__":
    main()
