"""How long the explorer (notebook 08) takes to answer one selection: filter the faces, draw
the grid, and show one face's detail with both Grad-CAM maps computed anew (a cold cache).

Uses the committed reference model on the built-in demo faces (no data needed) and reports the
median of ``--repeats`` selections, each on a different face.

    python -m benchmarks.explorer_benchmark --out results/benchmarks/explorer.json
"""
from __future__ import annotations

import argparse
import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import fer_helpers as fh  # noqa: E402
from fer_helpers import explorer, figures  # noqa: E402
from fer_helpers.artifacts import machine_info, now_iso, write_json  # noqa: E402
from fer_helpers.models import predict_proba  # noqa: E402
from fer_helpers.runner import PROJECT_ROOT  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(PROJECT_ROOT / "models" / "reference.keras"))
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    data = fh.load_dataset("demo")
    test = data.get_split("test")
    model = fh.load_model(args.model)
    faces = explorer.face_set(data, {"names": test.names, "labels": test.labels,
                                     "probs": predict_proba(model, test.images)}, "test")
    cache = explorer.GradcamCache(model)
    explorer.face_detail(faces, 0, cache)          # warm-up: builds the Grad-CAM graph once
    # detail: both Grad-CAM maps computed anew (a face not seen before) and the detail figure drawn.
    steps = {"select_s": [], "grid_s": [], "detail_cold_s": [], "total_s": []}
    for k in range(1, args.repeats + 1):
        t0 = time.perf_counter()
        idx = explorer.select(faces, correct=bool(k % 2), limit=24)
        t1 = time.perf_counter()
        plt.close(figures.image_grid(faces.images[idx], [str(i) for i in idx]))
        t2 = time.perf_counter()
        i = int(idx[k % len(idx)]) if len(idx) else k
        detail = explorer.face_detail(faces, i, cache)
        plt.close(figures.face_detail_figure(faces.images[i], detail, list(faces.classes)))
        t3 = time.perf_counter()
        for key, value in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
            steps[key].append(value)
    result = {"date": now_iso(), "machine": machine_info(), "model": args.model, "repeats": args.repeats,
              **{key: float(np.median(v)) for key, v in steps.items()}}
    print({k: round(v, 3) for k, v in result.items() if k.endswith("_s")})
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
