"""A shorter refit that fits the training budget on this CPU, priced on validation by a rule written before it ran.

    python -m research.validation_compare runs/e36_s42 runs/vgg_mid_bf16_s42_amd \
        --out results/refit36_validation.csv
    python -m research.short_refit --short runs/e36_s42 --control runs/vgg_mid_bf16_s42_amd \
        --validation results/refit36_validation.csv --rule docs/decision_rules/refit36.txt

The 50-epoch refit (research/learning_curve.py --refit) trains on 1.25x the reference's images
and so takes 1.25x its time. A refit with fewer epochs may fit the budget, at the cost of a shorter
schedule. The rule prices that cost on validation only: the short schedule (``--short``, same split
as the reference ``--control``, best validation checkpoint) against the reference, plus the learning
curve's predicted gain from the extra data (``--curve``). The shorter refit is run only on ``ADOPT``.

Writes ``results/refit36.json``, which the report shows.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from fer_helpers.artifacts import read_json, write_json
from research import decision
from research import learning_curve as lc  # finished runs and their rows in the validation table

ROOT = Path(__file__).resolve().parents[1]


def schedule_row(run: Path, validation: pd.DataFrame) -> dict:
    """A finished run's seed, epochs and validation numbers (research/validation_compare.py's row)."""
    training, _ = lc.finished_run(run)
    return {"run": run.name, "seed": training["params"]["seed"], "epochs": training["params"]["epochs"],
            **lc.validation_numbers(run, validation)}


def schedule_verdict(short: dict, control: dict, curve: dict, min_gain: float = 0.003) -> dict:
    """The shorter schedule's validation cost plus the curve's predicted refit gain.

    ``ADOPT`` (run the shorter refit) when the predicted accuracy gain is at least ``min_gain`` and the predicted macro-F1 gain is not
    negative; the cost is read on one seed's validation split, so both runs must share that seed.
    """
    if short["seed"] != control["seed"]:
        raise ValueError(f"{short['run']} (seed {short['seed']}) and {control['run']} (seed {control['seed']}) "
                         "are validated on different splits: give runs of one seed")
    cost = {k: round(short[k] - control[k], 4) for k in ("val_accuracy", "val_macro_f1")}
    predicted = {"val_accuracy": round(cost["val_accuracy"] + curve["predicted_refit_gain"], 4),
                 "val_macro_f1": round(cost["val_macro_f1"] + curve["predicted_refit_macro_f1_gain"], 4)}
    return {"short": short, "control": control, "min_gain": min_gain, "schedule_cost": cost,
            "curve_gain": {"val_accuracy": curve["predicted_refit_gain"],
                           "val_macro_f1": curve["predicted_refit_macro_f1_gain"]},
            "predicted_gain": predicted,
            "verdict": decision.verdict(predicted["val_accuracy"] >= min_gain, predicted["val_macro_f1"] >= 0)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--short", type=Path, required=True, help="the shorter schedule on the reference's split")
    ap.add_argument("--control", type=Path, required=True, help="the reference run of the same seed")
    ap.add_argument("--validation", type=Path, required=True,
                    help="research/validation_compare.py's table of --short and --control")
    ap.add_argument("--curve", type=Path, default=ROOT / "results" / "learning_curve.json",
                    help="research/learning_curve.py's verdict (the predicted refit gain)")
    ap.add_argument("--rule", type=Path, required=True, help="the rule file written before the runs")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "refit36.json")
    args = ap.parse_args(argv)
    if not args.rule.is_file():
        raise FileNotFoundError(f"{args.rule}: the rule file is missing; write it before the runs")
    validation = pd.read_csv(args.validation)
    curve = read_json(args.curve, "learning-curve verdict")
    out = {"rule": args.rule.as_posix(),
           "schedule": schedule_verdict(schedule_row(args.short, validation),
                                        schedule_row(args.control, validation), curve)}
    write_json(args.out, out)
    print({k: v for k, v in out["schedule"].items() if k not in ("short", "control")})


if __name__ == "__main__":
    main()
