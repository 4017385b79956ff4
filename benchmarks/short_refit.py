"""A shorter refit that fits the training budget on this CPU, read by a rule written before it ran.

    python benchmarks/validation_compare.py runs/e36_s42 runs/vgg_mid_bf16_s42_amd \
        --out results/refit36_validation.csv
    python benchmarks/short_refit.py --short runs/e36_s42 --control runs/vgg_mid_bf16_s42_amd \
        --validation results/refit36_validation.csv --rule results/decision_rule_refit36.txt \
        [--refit runs/refit36_s42 ... --long-refit runs/refit_s42 ... --reference runs/vgg_mid_bf16_s42_amd ...]

The 50-epoch refit (benchmarks/learning_curve.py --refit) trains on 1.25x the reference's images
and so takes 1.25x its time. A refit with fewer epochs may fit the budget, at the cost of a shorter
schedule. Step 1 prices that cost on validation only: the short schedule (``--short``, same split as
the reference ``--control``, best validation checkpoint) against the reference, plus the learning
curve's predicted gain from the extra data (``--curve``). The refit is run only on "go".

Step 2 (``--refit``, one run per seed) is the budget measurement: every refit seed's training wall
time against the 60-minute budget. The refit replaces the reference only when every seed the rule
names trained within it; its held-out numbers are reported beside the reference's (``--reference``)
and the longer refit's (``--long-refit``) runs of the same seeds and choose nothing.

Writes ``results/refit36.json``, which the report shows.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from fer_helpers.artifacts import read_json, write_json
from fer_helpers.report import TRAINING_BUDGET_MIN

sys.path.insert(0, str(Path(__file__).resolve().parent))   # sibling scripts import as modules
import learning_curve as lc  # noqa: E402  (finished runs' held-out numbers, the compared keys, seed summaries)

ROOT = Path(__file__).resolve().parents[1]
RULE_SEEDS = (42, 43, 44)


def validation_numbers(run: Path, validation: pd.DataFrame) -> dict:
    """A finished run's validation accuracy and macro-F1 (benchmarks/validation_compare.py's row)."""
    training, _ = lc.finished_run(run)
    match = validation[validation["run"] == run.name]
    if match.empty:
        raise ValueError(f"{run.name}: no row in the validation table; run benchmarks/validation_compare.py on it")
    row = match.iloc[0]
    return {"run": run.name, "seed": training["params"]["seed"], "epochs": training["params"]["epochs"],
            "val_accuracy": float(row["val_accuracy"]), "val_macro_f1": float(row["val_macro_f1"])}


def schedule_verdict(short: dict, control: dict, curve: dict, min_gain: float = 0.003) -> dict:
    """Step 1: the shorter schedule's validation cost plus the curve's predicted refit gain.

    "go" when the predicted accuracy gain is at least ``min_gain`` and the predicted macro-F1 gain is not
    negative; the cost is read on one seed's validation split, so both runs must share that seed.
    """
    if short["seed"] != control["seed"]:
        raise ValueError(f"{short['run']} (seed {short['seed']}) and {control['run']} (seed {control['seed']}) "
                         "are validated on different splits: give runs of one seed")
    cost = {k: round(short[k] - control[k], 4) for k in ("val_accuracy", "val_macro_f1")}
    predicted = {"val_accuracy": round(cost["val_accuracy"] + curve["predicted_refit_gain"], 4),
                 "val_macro_f1": round(cost["val_macro_f1"] + curve["predicted_refit_macro_f1_gain"], 4)}
    go = predicted["val_accuracy"] >= min_gain and predicted["val_macro_f1"] >= 0
    return {"short": short, "control": control, "min_gain": min_gain, "schedule_cost": cost,
            "curve_gain": {"val_accuracy": curve["predicted_refit_gain"],
                           "val_macro_f1": curve["predicted_refit_macro_f1_gain"]},
            "predicted_gain": predicted, "verdict": "go" if go else "stop"}


def paired(rows: list[dict], others: list[dict], what: str) -> list[dict]:
    """The difference of each refit seed from ``others``' run of the same seed, on the compared numbers."""
    by_seed = {o["seed"]: o for o in others}
    out = []
    for r in rows:
        if r["seed"] not in by_seed:
            raise ValueError(f"{r['run']}: no {what} run of seed {r['seed']} among {sorted(by_seed)}")
        o = by_seed[r["seed"]]
        out.append({"seed": r["seed"], "run": r["run"], what: o["run"],
                    "delta": {k: round(r[k] - o[k], 4) for k in lc.COMPARED}})
    return out


def budget_verdict(refits: list[dict], budget_min: float = TRAINING_BUDGET_MIN,
                   seeds: tuple[int, ...] = RULE_SEEDS) -> dict:
    """Step 2: "replace" only when every seed in ``seeds`` has a refit that trained within ``budget_min``."""
    within = {r["seed"]: r["wall_time_min"] <= budget_min for r in refits}
    missing = [s for s in seeds if s not in within]
    over = [s for s, ok in within.items() if not ok]
    if over:
        reason = f"seed(s) {over} trained over {budget_min:g} min"
    elif missing:
        reason = f"seed(s) {missing} not yet run"
    else:
        reason = f"every seed trained within {budget_min:g} min"
    return {"budget_min": budget_min, "seeds_needed": list(seeds), "within_budget": within,
            "over": over, "missing": missing, "verdict": "keep the reference" if over or missing else "replace the reference", "reason": reason}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--short", type=Path, required=True, help="the shorter schedule on the reference's split")
    ap.add_argument("--control", type=Path, required=True, help="the reference run of the same seed")
    ap.add_argument("--validation", type=Path, required=True,
                    help="benchmarks/validation_compare.py's table of --short and --control")
    ap.add_argument("--curve", type=Path, default=ROOT / "results" / "learning_curve.json",
                    help="benchmarks/learning_curve.py's verdict (the predicted refit gain)")
    ap.add_argument("--rule", type=Path, required=True, help="the rule file written before the runs")
    ap.add_argument("--refit", type=Path, nargs="+", help="refit runs of the shorter schedule, one per seed")
    ap.add_argument("--long-refit", type=Path, nargs="+", help="the longer refit's runs of the same seeds")
    ap.add_argument("--reference", type=Path, nargs="+", help="the reference's runs of the same seeds")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "refit36.json")
    args = ap.parse_args(argv)
    given = [x is not None for x in (args.refit, args.long_refit, args.reference)]
    if any(given) and not all(given):
        ap.error("--refit, --long-refit and --reference go together")
    if not args.rule.is_file():
        raise FileNotFoundError(f"{args.rule}: the rule file is missing; write it before the runs")
    validation = pd.read_csv(args.validation)
    curve = read_json(args.curve, "learning-curve verdict")
    out = {"rule": args.rule.as_posix(),
           "schedule": schedule_verdict(validation_numbers(args.short, validation),
                                        validation_numbers(args.control, validation), curve)}
    if args.refit is not None:
        if out["schedule"]["verdict"] != "go":
            raise ValueError("the rule ran no refit after 'stop'; drop --refit")
        refits = [lc.held_out_numbers(r) for r in args.refit]
        if any(not r["checkpoint"].startswith("last epoch") for r in refits):
            raise ValueError("every --refit run must be a refit (train_benchmark.py --refit --monitor none)")
        reference = [lc.held_out_numbers(r) for r in args.reference]
        long_refit = [lc.held_out_numbers(r) for r in args.long_refit]
        out["refit"] = {"runs": refits, "reference_runs": reference, "long_refit_runs": long_refit,
                        "vs_reference": paired(refits, reference, "reference"),
                        "vs_long_refit": paired(refits, long_refit, "long_refit"),
                        "budget": budget_verdict(refits)}
    write_json(args.out, out)
    print({k: v for k, v in out["schedule"].items() if k not in ("short", "control")})
    if "refit" in out:
        for side in ("vs_reference", "vs_long_refit"):
            for p in out["refit"][side]:
                print(side, p["seed"], p["delta"])
        print("budget:", out["refit"]["budget"])


if __name__ == "__main__":
    main()
