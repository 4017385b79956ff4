"""Collect finished run folders into the committed results/ and build the ablation table.

    python benchmarks/collect_results.py runs/baseline_e15 runs/baseline_e60 runs/vgg_soft_e18

For each run: copies results/*.json|csv (numbers only: no images, no arrays) to
results/runs/<name>/, and writes one row per run to results/ablation.csv with
the validation accuracy used for choices, both protocols' test numbers, per-class
recall on P-seed and wall time. The "changes" column lists every parameter that
differs from the starting study's baseline settings.
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
from pathlib import Path

import pandas as pd

from fer_helpers.artifacts import read_json
from fer_helpers.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
BASELINE = dataclasses.asdict(TrainConfig())
IGNORED = {"max_train_images", "deterministic", "monitor"}


def changes(params: dict, label_mode: str) -> str:
    diff = [f"{k}={v}" for k, v in params.items()
            if k not in IGNORED and k in BASELINE and v != BASELINE[k]]
    if label_mode != "plurality":
        diff.insert(0, f"label_mode={label_mode}")
    return "; ".join(diff) or "starting-study settings"


def row(run: Path) -> dict:
    tr = read_json(run / "results" / "training.json", "training metadata")
    ev = read_json(run / "results" / "evaluation.json", "evaluation (run notebook 04 / evaluate_run)")
    data = read_json(run / "results" / "data.json", "data settings")
    out = {"run": run.name, "model": tr["params"]["model_name"], "n_params": tr["model"]["n_params"],
           "changes": changes(tr["params"], data["label_mode"]), "epochs_run": tr["epochs_run"],
           "best_epoch": tr["best_epoch"], "wall_time_min": round(tr["wall_time_s"] / 60, 1),
           "val_accuracy": round(tr["best_val_accuracy"], 4)}
    for name, p in ev["protocols"].items():
        m = p["plain"]
        key = name.replace("-", "_").replace("+", "plus")
        out[f"{key}_accuracy"] = round(m["accuracy"], 4)
        out[f"{key}_macro_f1"] = round(m["macro_f1"], 4)
        if "tta_flip" in p:
            out[f"{key}_tta_accuracy"] = round(p["tta_flip"]["accuracy"], 4)
        if name == "P-seed":
            out.update({f"recall_{r['class']}": round(r["recall"], 3) for r in m["per_class"]})
    return out


def main(argv=None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--out", default=str(ROOT / "results"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    rows = []
    for run in map(Path, args.runs):
        dest = out / "runs" / run.name
        dest.mkdir(parents=True, exist_ok=True)
        for f in sorted((run / "results").glob("*")):
            if f.suffix in (".json", ".csv"):
                shutil.copy(f, dest / f.name)
        rows.append(row(run))
    table = pd.DataFrame(rows)
    table.to_csv(out / "ablation.csv", index=False)
    print(table.drop(columns=[c for c in table if c.startswith("recall_")]).to_string(index=False))
    return table


if __name__ == "__main__":
    main()
