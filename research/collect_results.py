"""Collect finished run folders into the committed results/ and build the ablation table.

    python -m research.collect_results runs/baseline_e15_s42 runs/baseline_e60_s42 runs/vgg_soft_e18_s42 \
        --seeds runs/final_s42 runs/final_s43 runs/final_s44

For each run: copies results/*.json|csv (numbers only: no images, no arrays) to
results/runs/<name>/, and writes one row per run to results/ablation.csv with
the validation accuracy used for choices, both protocols' test numbers, per-class
recall on P-seed and wall time. The "changes" column lists every parameter that
differs from the starting study's baseline settings; "added" lists what differs
from the row before it (so a table ordered lever by lever reads as an ablation).
``--seeds`` also writes results/seeds_summary.json|csv: mean ± std of runs that
differ only in their seed (``fer_helpers.release.summarize_seeds``); ``--seeds-out``
names another file for another configuration's seeds (then no run list is needed); ``--ensemble``
writes results/ensemble.json, the averaged probabilities of the given runs; ``--copy`` only copies
runs' numbers (no table row).
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pandas as pd

from fer_helpers.artifacts import read_json, write_json
from fer_helpers.evaluation import evaluate_ensemble
from fer_helpers.release import summarize_seeds
from fer_helpers.training import recorded_params

ROOT = Path(__file__).resolve().parents[1]
BASELINE = recorded_params({})      # the starting study's settings: TrainConfig's defaults
IGNORED = {"max_train_images", "deterministic", "monitor"}


def changes(params: dict, label_mode: str, reference: dict | None = None,
            reference_label_mode: str = "plurality") -> str:
    # A setting the reference run predates had its default value there (e.g. precision float32).
    ref = recorded_params(reference) if reference else BASELINE
    diff = [f"{k}={v}" for k, v in params.items() if k not in IGNORED and k in ref and v != ref[k]]
    if label_mode != reference_label_mode:
        diff.insert(0, f"label_mode={label_mode}")
    return "; ".join(diff) or ("starting-study settings" if not reference else "(same)")


def row(run: Path, previous: Path | None = None) -> dict:
    tr = read_json(run / "results" / "training.json", "training metadata")
    ev = read_json(run / "results" / "evaluation.json", "evaluation (run notebook 04 / evaluate_run)")
    data = read_json(run / "results" / "data.json", "data settings")
    added = ""
    if previous is not None:
        prev_params = read_json(previous / "results" / "training.json", "training metadata")["params"]
        prev_mode = read_json(previous / "results" / "data.json", "data settings")["label_mode"]
        added = changes(tr["params"], data["label_mode"], prev_params, prev_mode)
    out = {"run": run.name, "model": tr["params"]["model_name"], "n_params": tr["model"]["n_params"],
           "changes": changes(tr["params"], data["label_mode"]), "added": added,
           "epochs_run": tr["epochs_run"],
           "best_epoch": tr["best_epoch"], "wall_time_min": round(tr["wall_time_s"] / 60, 1),
           "cpus": tr["machine"].get("cpus_usable") or tr["machine"]["cpu_count"],
           "val_accuracy": round(tr["best_val_accuracy"], 4)}
    for name, p in ev["protocols"].items():
        m = p["plain"]
        key = name.replace("-", "_").replace("+", "plus")
        out[f"{key}_accuracy"] = round(m["accuracy"], 4)
        out[f"{key}_macro_f1"] = round(m["macro_f1"], 4)
        if "tta_flip" in p:
            out[f"{key}_tta_accuracy"] = round(p["tta_flip"]["accuracy"], 4)
        if "prior_adjusted" in p:
            a = p["prior_adjusted"]
            out[f"{key}_prior_tau"] = a["tau"]
            out[f"{key}_prior_accuracy"] = round(a["accuracy"], 4)
            out[f"{key}_prior_macro_f1"] = round(a["macro_f1"], 4)
        if name == "P-seed":
            out.update({f"recall_{r['class']}": round(r["recall"], 3) for r in m["per_class"]})
    return out


def main(argv=None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="*", help="rows of results/ablation.csv, in order (none: table kept)")
    ap.add_argument("--seeds", nargs="*", default=[], help="runs of one configuration, different seeds")
    ap.add_argument("--seeds-out", default="seeds_summary",
                    help="file stem of the seed summary (another configuration's seeds: another stem)")
    ap.add_argument("--ensemble", nargs="*", default=[],
                    help="runs whose stored test probabilities are averaged (results/ensemble.json)")
    ap.add_argument("--copy", nargs="*", default=[],
                    help="runs whose numbers are only copied to results/runs/ (e.g. the learning curve's)")
    ap.add_argument("--out", default=str(ROOT / "results"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    rows, previous = [], None
    table_runs = [Path(r) for r in args.runs]
    for run in dict.fromkeys(map(Path, [*args.runs, *args.seeds, *args.ensemble, *args.copy])):   # each once, in order
        dest = out / "runs" / run.name
        dest.mkdir(parents=True, exist_ok=True)
        for f in sorted((run / "results").glob("*")):
            if f.suffix in (".json", ".csv"):
                shutil.copy(f, dest / f.name)
        if run in table_runs:
            rows.append(row(run, previous))
            previous = run
    table = pd.DataFrame(rows)
    if rows:
        table.to_csv(out / "ablation.csv", index=False)
    if args.seeds:
        summary = summarize_seeds(args.seeds)
        write_json(out / f"{args.seeds_out}.json", summary)
        flat = [{"protocol": name, "measure": measure, "mean": round(v["mean"], 4), "std": round(v["std"], 4),
                 "values": " ".join(f"{x:.4f}" for x in v["values"])}
                for name, p in summary["protocols"].items()
                for measure, v in [("accuracy", p["accuracy"]), ("macro_f1", p["macro_f1"]),
                                   *([("tta_flip_accuracy", p["tta_flip_accuracy"])] if "tta_flip_accuracy" in p else []),
                                   *[(f"recall_{c}", r) for c, r in p["recall"].items()]]]
        pd.DataFrame(flat).to_csv(out / f"{args.seeds_out}.csv", index=False)
        print(pd.DataFrame(flat).head(6).to_string(index=False))
    if args.ensemble:
        ens = evaluate_ensemble(args.ensemble)
        trainings = [read_json(Path(r) / "results" / "training.json", "training metadata") for r in args.ensemble]
        ens["training_wall_time_min"] = [round(t["wall_time_s"] / 60, 1) for t in trainings]
        ens["cpus_usable"] = [t["machine"].get("cpus_usable") for t in trainings]
        for m in ens["protocols"].values():
            m.pop("text_report", None)
        write_json(out / "ensemble.json", ens)
        print("ensemble", {n: round(m["accuracy"], 4) for n, m in ens["protocols"].items()})
    if rows:
        print(table.drop(columns=[c for c in table if c.startswith("recall_")]).to_string(index=False))
    return table


if __name__ == "__main__":
    main()
