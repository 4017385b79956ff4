"""Validation metrics of finished runs: the numbers every configuration choice is made on.

    python -m research.validation_compare runs/study_e30_s42 runs/os30_e30_s42 ... \
        --out results/validation_compare.csv

Each run's best checkpoint predicts its own validation split (the stratified share of
FER2013Train written in ``results/data.json``; a run's seed fixes its split, so runs
with the same seed are compared on the same images). One row per run: the settings
compared so far (model, precision, seed, epochs, oversampling fraction, augmentation), then accuracy,
macro-F1 and per-class recall on validation. No held-out image (FER2013Valid/FER2013Test) is read.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from fer_helpers.artifacts import read_json
from fer_helpers.data import load_run_data
from fer_helpers.evaluation import classification_metrics
from fer_helpers.models import load_model, predict_proba
from fer_helpers.training import recorded_params

ROOT = Path(__file__).resolve().parents[1]


def validation_row(run: Path) -> dict:
    """Accuracy, macro-F1 and per-class recall of ``run``'s best model on its validation split."""
    data = load_run_data(run)
    val = data.get_split("val")
    if not len(val):
        raise ValueError(f"{run}: the run has no validation split (results/data.json)")
    model = load_model(run / "model" / "best.keras", n_classes=len(data.classes))
    m = classification_metrics(val.labels, predict_proba(model, val.images), data.classes)
    params = read_json(run / "results" / "training.json", "training metadata")["params"]
    row = {"run": run.name, "model": params["model_name"], "precision": recorded_params(params)["precision"],
           "seed": params["seed"], "epochs": params["epochs"],
           "oversample_fraction": params.get("oversample_fraction"),
           "augmentation": params.get("augmentation"), "n_val": m["n"],
           "val_accuracy": round(m["accuracy"], 4), "val_macro_f1": round(m["macro_f1"], 4)}
    row.update({f"val_recall_{c['class']}": round(c["recall"], 4) for c in m["per_class"]})
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "validation_compare.csv")
    args = ap.parse_args(argv)
    table = pd.DataFrame([validation_row(r) for r in args.runs])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
