"""Learning curve of the reference recipe: validation accuracy against the share of training images.

    python -m research.validation_compare runs/lc25_s42 runs/lc50_s42 runs/lc75_s42 runs/ref_s42_amd \
        --out results/learning_curve_validation.csv
    python -m research.learning_curve runs/lc25_s42 runs/lc50_s42 runs/lc75_s42 runs/ref_s42_amd \
        --validation results/learning_curve_validation.csv --rule docs/decision_rules/learning_curve.txt

The runs differ only in ``--max-train-images`` (a stratified share of the training split; the
validation split stays the same). Whether more data would help is read off the curve, on
validation only: the least-squares slope of validation accuracy against log2(share), in points per
doubling, times log2(1.25) predicts what refitting on all of FER2013Train (the 20% validation share
added back) would gain. The rule (written before the runs) calls the refit worth three seeds when
that prediction is at least ``--min-gain`` and the last step of the curve (largest share below 100% →
100%) still rises. Each run's held-out numbers (P-seed, P-FER+) sit beside the curve and play no
part in the verdict.

Writes ``results/learning_curve.csv`` (one row per run) and ``results/learning_curve.json`` (the
slopes, the prediction, the verdict and the same rows), which the report shows.

The prediction is then checked on the held-out protocols: ``--refit runs/refit_s42 --control
runs/ref_s42_amd --refit-rule docs/decision_rules/refit.txt`` adds a ``refit_check`` block (one
refit seed against the same seed of the reference, read by the rule written before the refit ran).
More refit seeds, each with the reference run of its seed (``--refit runs/refit_s42 runs/refit_s43
runs/refit_s44 --control runs/ref_s42_amd runs/ref_s43_amd runs/ref_s44_amd``), add the mean ± std of
both sides (``refit_check.seeds``); the rule's one-seed reading stays that of the first pair.
Neither decides anything: the test numbers choose no setting.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd

from fer_helpers.artifacts import read_json, write_json
from research import decision

ROOT = Path(__file__).resolve().parents[1]
REFIT_FACTOR = 1.25     # all of FER2013Train over its 80% training split
# The held-out numbers a refit is compared on (held_out_numbers' keys), P-seed recalls last.
COMPARED = ("p_seed_accuracy", "p_seed_macro_f1", "p_ferplus_accuracy", "p_ferplus_macro_f1",
            "recall_contempt", "recall_disgust")


def training_share(training: dict) -> tuple[int, float]:
    """Training images a run used before oversampling, and their share of the full training split."""
    full = int(training["data"]["split_sizes"]["train"])
    cap = training["params"].get("max_train_images")
    used = min(int(cap), full) if cap else full
    return used, used / full


def finished_run(run: Path) -> tuple[dict, dict]:
    """A run's training metadata and evaluation; a run stopped before its last epoch is refused."""
    training = read_json(run / "results" / "training.json", "training metadata")
    evaluation = read_json(run / "results" / "evaluation.json", "evaluation")
    if training["epochs_run"] < training["params"]["epochs"]:
        raise ValueError(f"{run}: {training['epochs_run']} of {training['params']['epochs']} epochs ran; "
                         "only a finished run counts")
    return training, evaluation


def protocol_numbers(evaluation: dict) -> dict:
    """Plain accuracy and macro-F1 on P-seed and P-FER+, as ``p_seed_accuracy`` ... ``p_ferplus_macro_f1``."""
    out = {}
    for name, key in (("P-seed", "p_seed"), ("P-FER+", "p_ferplus")):
        plain = evaluation["protocols"][name]["plain"]
        out[f"{key}_accuracy"] = round(plain["accuracy"], 4)
        out[f"{key}_macro_f1"] = round(plain["macro_f1"], 4)
    return out


def validation_numbers(run: Path, validation: pd.DataFrame) -> dict:
    """``run``'s validation accuracy and macro-F1 in research/validation_compare.py's table (matched by folder name)."""
    match = validation[validation["run"] == run.name]
    if match.empty:
        raise ValueError(f"{run.name}: no row in the validation table; run research/validation_compare.py on it")
    return {k: float(match.iloc[0][k]) for k in ("val_accuracy", "val_macro_f1")}


def curve_row(run: Path, validation: pd.DataFrame) -> dict:
    """One point of the curve: ``run``'s share, its validation numbers and its held-out numbers."""
    training, evaluation = finished_run(run)
    used, share = training_share(training)
    return {"run": run.name, "seed": training["params"]["seed"], "n_train": used, "share": round(share, 4),
            **validation_numbers(run, validation), **protocol_numbers(evaluation)}


def doubling_slope(shares, values) -> float:
    """Least-squares slope of ``values`` against log2(``shares``): the change per doubling of the data."""
    x = np.log2(np.asarray(shares, dtype=float))
    if len(np.unique(x)) < 2:
        raise ValueError("a slope needs at least two different training shares")
    return float(np.polyfit(x, np.asarray(values, dtype=float), 1)[0])


def curve_verdict(rows: list[dict], min_gain: float = 0.003) -> dict:
    """Apply the rule: the predicted refit gain in validation accuracy, and whether the curve still rises;
    ``ADOPT`` names a refit on all of FER2013Train as the next lever, ``KEEP`` leaves the recipe's data as is."""
    rows = sorted(rows, key=lambda r: r["share"])
    if len(rows) < 3 or rows[-1]["share"] != 1:
        raise ValueError("the rule needs at least three points, the last on the full training split (share 1)")
    shares = [r["share"] for r in rows]
    factor = math.log2(REFIT_FACTOR)
    slope = doubling_slope(shares, [r["val_accuracy"] for r in rows])
    f1_slope = doubling_slope(shares, [r["val_macro_f1"] for r in rows])
    last_step = rows[-1]["val_accuracy"] - rows[-2]["val_accuracy"]
    gain_ok, still_rising = slope * factor >= min_gain, last_step > 0
    return {"points": len(rows), "refit_factor": REFIT_FACTOR, "min_gain": min_gain,
            "slope_per_doubling": round(slope, 5), "predicted_refit_gain": round(slope * factor, 5),
            "macro_f1_slope_per_doubling": round(f1_slope, 5),
            "predicted_refit_macro_f1_gain": round(f1_slope * factor, 5),
            "last_step_from_share": rows[-2]["share"], "last_step": round(last_step, 5),
            "verdict": decision.verdict(gain_ok, still_rising)}      # ADOPT: a refit is the next lever


def held_out_numbers(run: Path) -> dict:
    """A finished run's plain P-seed / P-FER+ accuracy and macro-F1 and its rare-class P-seed recalls."""
    training, evaluation = finished_run(run)
    out = {"run": run.name, "seed": training["params"]["seed"],
           "n_train": int(training["data"]["split_sizes"]["train"]),     # before oversampling
           "checkpoint": training.get("checkpoint", f"best {training['params'].get('monitor', 'val_accuracy')}"),
           "wall_time_min": round(training["wall_time_s"] / 60, 1), **protocol_numbers(evaluation)}
    recall = {r["class"]: r["recall"] for r in evaluation["protocols"]["P-seed"]["plain"]["per_class"]}
    out.update({f"recall_{c.lower()}": round(recall[c], 3) for c in ("Contempt", "Disgust")})
    return out


def refit_check(refit: dict, control: dict, min_gain: float = 0.003) -> dict:
    """Read one refit seed against the same seed of the reference, as the refit rule fixed in advance:
    "consistent with the curve" when P-seed accuracy gains at least ``min_gain`` and macro-F1 does not fall."""
    if refit["seed"] != control["seed"]:
        raise ValueError(f"the refit ({refit['run']}, seed {refit['seed']}) and its control "
                         f"({control['run']}, seed {control['seed']}) must share a seed")
    if not refit["checkpoint"].startswith("last epoch"):
        raise ValueError(f"{refit['run']} is no refit (checkpoint: {refit['checkpoint']}); "
                         "train it with train_benchmark.py --refit --monitor none")
    delta = {k: round(refit[k] - control[k], 4) for k in COMPARED}
    consistent = delta["p_seed_accuracy"] >= min_gain and delta["p_seed_macro_f1"] >= 0
    return {"min_gain": min_gain, "refit": refit, "control": control, "delta": delta,
            "reading": "consistent with the curve" if consistent else "not confirmed by one seed"}


def seed_summary(pairs: list[dict]) -> dict:
    """Mean ± std (ddof=1) of the refit runs and of their controls over seeds, and the difference of the means.

    ``pairs`` are ``refit_check`` results, one per seed, so each pair already shares a seed and each
    refit is known to be one; a seed given twice is refused, since it would count one seed's noise twice.
    """
    seeds = [p["refit"]["seed"] for p in pairs]
    if len(pairs) < 2 or len(set(seeds)) < len(seeds):
        raise ValueError(f"a seed summary needs at least two different seeds, got {seeds}")

    def side(rows: list[dict]) -> dict:
        stats = {}
        for key in (*COMPARED, "wall_time_min"):
            values = np.array([r[key] for r in rows], dtype=float)
            stats[key] = {"mean": round(float(values.mean()), 4), "std": round(float(values.std(ddof=1)), 4)}
        return stats

    refits, controls = [p["refit"] for p in pairs], [p["control"] for p in pairs]
    summary = {"seeds": seeds, "refit_runs": refits, "control_runs": controls,
               "refit": side(refits), "control": side(controls)}
    summary["delta"] = {k: round(summary["refit"][k]["mean"] - summary["control"][k]["mean"], 4) for k in COMPARED}
    return summary


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--validation", type=Path, required=True,
                    help="research/validation_compare.py's table of the runs")
    ap.add_argument("--rule", type=Path, required=True, help="the rule file written before the runs")
    ap.add_argument("--min-gain", type=float, default=0.003,
                    help="predicted validation-accuracy gain that calls for a refit")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "learning_curve")
    ap.add_argument("--refit", type=Path, nargs="+",
                    help="refit runs (train_benchmark.py --refit) to check the prediction on; "
                         "the first is the rule's seed")
    ap.add_argument("--control", type=Path, nargs="+", help="the reference run of each refit's seed, in the same order")
    ap.add_argument("--refit-rule", type=Path, help="the rule file written before the refit ran")
    args = ap.parse_args(argv)
    given = [x is not None for x in (args.refit, args.control, args.refit_rule)]
    if any(given) and not all(given):
        ap.error("--refit, --control and --refit-rule go together")
    if args.refit is not None and len(args.refit) != len(args.control):
        ap.error(f"{len(args.refit)} refit runs but {len(args.control)} controls: give one control per refit")
    for rule in (args.rule, args.refit_rule):
        if rule is not None and not rule.is_file():
            raise FileNotFoundError(f"{rule}: the rule file is missing; write it before the runs")
    validation = pd.read_csv(args.validation)
    rows = sorted((curve_row(r, validation) for r in args.runs), key=lambda r: r["share"])
    verdict = {"rule": args.rule.as_posix(), **curve_verdict(rows, args.min_gain), "rows": rows}
    if args.refit is not None:
        pairs = [refit_check(held_out_numbers(r), held_out_numbers(c), args.min_gain)
                 for r, c in zip(args.refit, args.control)]
        verdict["refit_check"] = {"rule": args.refit_rule.as_posix(), **pairs[0]}
        if len(pairs) > 1:
            verdict["refit_check"]["seeds"] = seed_summary(pairs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    table.to_csv(args.out.with_suffix(".csv"), index=False)
    write_json(args.out.with_suffix(".json"), verdict)
    print(table.to_string(index=False))
    print({k: v for k, v in verdict.items() if k not in ("rows", "refit_check")})
    check = verdict.get("refit_check")
    if check:
        print("refit check:", check["delta"], check["reading"])
        if "seeds" in check:
            print("refit seeds", check["seeds"]["seeds"], "difference of the means:", check["seeds"]["delta"])


if __name__ == "__main__":
    main()
