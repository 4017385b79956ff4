"""Inference throughput (images/s) and file size of a .keras model on this CPU.

    python -m benchmarks.inference_benchmark --model models/reference.keras [--float32]

Feeds uint8 48×48 images through ``fer_helpers.predict_proba`` (the public path),
after one warm-up call, and reports the best of several timed repeats.
Writes results/benchmarks/inference_<model stem>.json.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from fer_helpers import load_model, predict_proba
from fer_helpers.artifacts import machine_info, now_iso, write_json
from fer_helpers.models import count_params, model_precision, to_float32

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--n-images", type=int, default=4096)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=None)
    ap.add_argument("--float32", action="store_true",
                    help="compute in float32 (fer_helpers.models.to_float32): faster on CPUs without "
                         "native bfloat16 (no avx512_bf16/AMX); outputs differ by bfloat16 rounding only")
    ap.add_argument("--card", action="store_true", help="also record the result in <model>.card.json/.md")
    args = ap.parse_args(argv)
    if args.card and args.float32:
        ap.error("--card records the model as it is saved; run it without --float32")
    path = Path(args.model)
    model = load_model(path)
    if args.float32:
        model = to_float32(model)
    images = np.random.default_rng(0).integers(0, 256, (args.n_images, 48, 48), dtype=np.uint8)
    predict_proba(model, images[: args.batch_size], batch_size=args.batch_size)   # warm-up / tracing
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        predict_proba(model, images, batch_size=args.batch_size)
        times.append(time.perf_counter() - t)
    result = {"model": str(path), "n_params": count_params(model), "precision": model_precision(model),
              "file_mb": path.stat().st_size / 2**20,
              "n_images": args.n_images, "batch_size": args.batch_size, "seconds": times,
              "images_per_second": args.n_images / min(times), "machine": machine_info(), "time": now_iso()}
    suffix = "_float32" if args.float32 else ""
    out = Path(args.out or ROOT / "results" / "benchmarks" / f"inference_{path.stem}{suffix}.json")
    write_json(out, result)
    if args.card:
        from fer_helpers.release import add_inference_to_card

        add_inference_to_card(path.parent, path.stem, result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
    return result


if __name__ == "__main__":
    main()
