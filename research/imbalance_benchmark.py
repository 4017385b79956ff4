"""Compare class-imbalance strategies on the validation split (short schedule).

    python -m research.imbalance_benchmark --data ../shared/data/ferplus --epochs 6

Trains the baseline once per strategy (none, class_weight, oversample, focal loss)
with everything else fixed, and scores each on the *validation* split (a stratified
20% of FER2013Train): accuracy, macro-F1 and per-class recall. The test splits are
not touched. Writes results/benchmarks/imbalance.csv.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd

from fer_helpers import load_dataset, load_model, predict_proba
from fer_helpers.data import resolve_data_dir
from fer_helpers.evaluation import classification_metrics
from fer_helpers.training import TrainConfig, train_model

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = {
    "none": {},
    "class_weight": {"imbalance": "class_weight"},
    "oversample": {"imbalance": "oversample", "oversample_fraction": 0.15},
    "focal_gamma2": {"loss": "focal", "focal_gamma": 2.0},
}


def main(argv=None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("FER_DATA_DIR", "demo"))
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--model", default="baseline")
    ap.add_argument("--runs-dir", default=str(ROOT / "runs" / "imbalance"))
    ap.add_argument("--out", default=str(ROOT / "results" / "benchmarks" / "imbalance.csv"))
    args = ap.parse_args(argv)
    data = load_dataset(resolve_data_dir(args.data), val_fraction=0.2, seed=42)
    val = data.get_split("val")
    rows = []
    for name, kw in STRATEGIES.items():
        cfg = TrainConfig(model_name=args.model, epochs=args.epochs, patience=0, **kw)
        res = train_model(data, cfg, Path(args.runs_dir) / name, verbose=0)
        m = classification_metrics(val.labels, predict_proba(load_model(res.model_path), val.images), data.classes)
        rows.append({"strategy": name, "epochs": args.epochs, "val_accuracy": round(m["accuracy"], 4),
                     "val_macro_f1": round(m["macro_f1"], 4), "wall_time_s": round(res.metadata["wall_time_s"], 1),
                     **{f"val_recall_{r['class']}": round(r["recall"], 3) for r in m["per_class"]}})
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    return table


if __name__ == "__main__":
    main()
