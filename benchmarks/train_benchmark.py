"""Train models on real FER data under the held-out protocol and record speed and accuracy.

Protocol: validation is a stratified 20% of FER2013Train (as in the starting
study); FER2013Valid and FER2013Test are never seen in training or selection.

    python -m benchmarks.train_benchmark --data ../shared/data/ferplus \
        --model baseline --epochs 15 --patience 0 --out runs/baseline_e15_s42

Writes the run folder (model, history, training.json) and appends a row to
``results/benchmarks/train_benchmark.csv``; ``--evaluate`` then writes
``results/evaluation.json`` (P-seed and P-FER+) for ``collect_results.py``.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import pandas as pd

from fer_helpers import load_dataset
from fer_helpers.data import resolve_data_dir, save_data_settings
from fer_helpers.training import TrainConfig, train_model

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("FER_DATA_DIR", "demo"))
    ap.add_argument("--out", required=True, help="run folder")
    ap.add_argument("--label-mode", default="plurality")
    ap.add_argument("--val-fraction", type=float, default=0.2)
    ap.add_argument("--refit", action="store_true",
                    help="train on the validation share too (no validation: needs --monitor none)")
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("max_train_images", "augmentation"):
            ap.add_argument("--" + f.name.replace("_", "-"), default=None,
                            type=int if f.name == "max_train_images" else str)
        elif f.type in ("int", "float", "str"):
            ap.add_argument("--" + f.name.replace("_", "-"), default=f.default,
                            type={"int": int, "float": float, "str": str}[f.type])
    ap.add_argument("--model", dest="model_name", default="baseline")
    ap.add_argument("--evaluate", action="store_true",
                    help="afterwards evaluate the best checkpoint on both held-out protocols")
    args = vars(ap.parse_args(argv))
    data_dir, label_mode, val_fraction = resolve_data_dir(args.pop("data")), args.pop("label_mode"), args.pop("val_fraction")
    refit = args.pop("refit")
    data = load_dataset(data_dir, label_mode=label_mode, val_fraction=val_fraction, seed=args["seed"],
                        refit=refit)
    out, evaluate = Path(args.pop("out")), args.pop("evaluate")
    # Later stages (evaluation, Grad-CAM, report) reload exactly this data and split.
    save_data_settings(out, data_dir, label_mode, val_fraction, args["seed"], refit)
    config = TrainConfig.from_params(args)
    result = train_model(data, config, out)
    meta = result.metadata
    best_val = meta["best_val_accuracy"]       # None for a refit: it has no validation split
    row = {"run": str(out), "data": meta["data"]["source"], "model": config.model_name,
           "n_params": meta["model"]["n_params"], "epochs_run": meta["epochs_run"],
           "wall_time_s": round(meta["wall_time_s"], 1),
           "mean_epoch_s": round(meta["mean_epoch_seconds"], 2),
           "train_images_per_s": round(meta["images_per_second"], 1),
           "best_epoch": meta["best_epoch"], "best_val_accuracy": None if best_val is None else round(best_val, 4),
           "cpu_count": meta["machine"]["cpu_count"], "end_time": meta["end_time"]}
    table = ROOT / "results" / "benchmarks" / "train_benchmark.csv"
    table.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([row]).to_csv(table, mode="a", header=not table.exists(), index=False)
    print(row)
    if evaluate:
        from fer_helpers.evaluation import evaluate_run

        evaluate_run(out)


if __name__ == "__main__":
    main()
