"""Time the first (decode) load and the cached reload of a FER data set.

    python -m benchmarks.data_benchmark --data ../shared/data/ferplus

Targets (issue 2): first load of the FER+ layout < 15 s, cached reload < 1 s on this machine.
Writes results/benchmarks/data_benchmark.json.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from fer_helpers import load_dataset
from fer_helpers.artifacts import machine_info, now_iso, write_json
from fer_helpers.data import resolve_data_dir

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("FER_DATA_DIR", "demo"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "results" / "benchmarks" / "data_benchmark.json"))
    args = ap.parse_args(argv)
    data = resolve_data_dir(args.data)
    result = {"data": data, "machine": machine_info(), "time": now_iso(), "first_load_s": [], "reload_s": []}
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as cache:   # an empty cache: a true first load
            t = time.perf_counter()
            ds = load_dataset(data, cache_dir=cache)
            result["first_load_s"].append(time.perf_counter() - t)
            t = time.perf_counter()
            load_dataset(data, cache_dir=cache)
            result["reload_s"].append(time.perf_counter() - t)
    result.update(n_images=len(ds), first_load_best_s=min(result["first_load_s"]),
                  reload_best_s=min(result["reload_s"]),
                  meets_targets=min(result["first_load_s"]) < 15 and min(result["reload_s"]) < 1)
    write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
    return result


if __name__ == "__main__":
    main()
