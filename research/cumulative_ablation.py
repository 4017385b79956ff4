"""The cumulative ablation table: one lever added per row, each row's seeds summarised on validation.

    python -m research.cumulative_ablation OUT/device_report.json [more reports ...] \
        --out results/ablation_cumulative.csv
    python -m research.cumulative_ablation REPORTS ... --plan PLAN --pending results/unfinished

Reads the reports ``research.device_runs`` writes for ``research/plans/ablation_cumulative.json``
(the plan travels inside each report; several leases' reports are merged). A row is the plan's
``ladder`` step: its lever in English and Turkish, its epochs, its seeds, and the mean ± sample standard
deviation over them of validation accuracy, macro-F1 and the two rarest classes' recall (without
flip TTA), plus the change in mean accuracy and macro-F1 from the row above with the half-width of
its 95% interval. The seed sets both the validation split and the initialisation, so the change is
read seed by seed: the interval is the paired t interval of the per-seed differences (n − 1 degrees
of freedom), which a change within the seeds' own spread straddles zero. A row is written
only when every seed of it finished; an unfinished one says which seeds are missing, so the
table never averages over fewer seeds than it claims. With ``--plan`` the committed plan is the
authority: a finished run whose recorded settings (its ``training.json`` beside the reports)
differ from what the plan now asks is stale, left out and named, and counts as missing.
``--pending`` writes no table: it prints the runs still to train (missing or stale), comma-separated
for ``research.device_runs --only``, those with a resume state first (``research/ladder_start.sh``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from pathlib import Path

import pandas as pd

from research.device_runs import base_params, read_plan

ROOT = Path(__file__).resolve().parents[1]
RARE = ("Contempt", "Disgust")
COLUMNS = ["step", "group", "lever", "lever_tr", "epochs", "seeds", "n_seeds", "missing_seeds",
           "val_accuracy_mean", "val_accuracy_std", "val_macro_f1_mean", "val_macro_f1_std",
           *(f"val_recall_{c}_mean" for c in RARE), "delta_accuracy", "delta_accuracy_ci95",
           "delta_macro_f1", "delta_macro_f1_ci95"]


def merge_reports(paths) -> tuple[dict, dict]:
    """The plan and every finished run's validation summary across reports. A report of a run
    selection (``--only``) holds only its own runs, so the plan's runs are the union of all."""
    plan, runs, done = None, {}, {}
    for path in paths:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
        if "ladder" not in report.get("plan", {}):
            raise ValueError(f"{path}: not a cumulative-ablation report (its plan has no 'ladder')")
        plan = plan or report["plan"]
        runs.update({r["name"]: r for r in report["plan"].get("runs", [])})
        done.update(report.get("done", {}))
    if plan is None:
        raise ValueError("give at least one device_report.json")
    return {**plan, "runs": list(runs.values())}, done


def stale_runs(plan: dict, done: dict, records: Path) -> dict[str, list[str]]:
    """Finished runs whose recorded training settings (``records/<run>/training.json``) differ
    from the plan's: run name → the settings that differ, "name: recorded → planned". A run
    without a record cannot be checked and is kept."""
    from fer_helpers.training import TrainConfig

    stale = {}
    for run in plan["runs"]:
        record = Path(records) / run["name"] / "training.json"
        if run["name"] not in done or not record.is_file():
            continue
        recorded = json.loads(record.read_text(encoding="utf-8")).get("params")
        if not recorded:
            continue
        planned = dataclasses.asdict(TrainConfig.from_params(base_params(plan, run)))
        differ = [f"{k}: {recorded[k]!r} → {planned[k]!r}" for k in planned if k in recorded and recorded[k] != planned[k]]
        if differ:
            stale[run["name"]] = differ
    return stale


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else None)


def paired_change(before: dict[int, float], after: dict[int, float]) -> tuple[float, float | None]:
    """The mean per-seed change from ``before`` to ``after`` (seed → value, the same seeds) and the
    half-width of its paired 95% t interval (None for a single seed)."""
    from scipy import stats

    if set(before) != set(after):
        raise ValueError(f"paired change needs the same seeds on both steps: {sorted(before)} vs {sorted(after)}")
    diffs = [after[s] - before[s] for s in sorted(after)]
    if len(diffs) < 2:
        return diffs[0], None
    return statistics.mean(diffs), float(stats.t.ppf(0.975, len(diffs) - 1) * statistics.stdev(diffs) / len(diffs) ** 0.5)


def ladder_rows(plan: dict, done: dict) -> list[dict]:
    """One row per ladder step, in order (see the module docstring)."""
    rows, previous, previous_seeds = [], None, {}
    for step, entry in enumerate(plan["ladder"], start=1):
        members = plan["groups"][entry["group"]]
        finished = [done[m] for m in members if m in done]
        epochs = {base_params(plan, r).get("epochs") for r in plan["runs"] if r["name"] in members}
        row = {"step": step, "group": entry["group"], "lever": entry["lever"], "lever_tr": entry["lever_tr"],
               "epochs": epochs.pop() if len(epochs) == 1 else None,
               "seeds": " ".join(str(s["seed"]) for s in finished), "n_seeds": len(finished),
               "missing_seeds": " ".join(m for m in members if m not in done)}
        if len(finished) == len(members):
            plain = [s["plain"] for s in finished]
            row["val_accuracy_mean"], row["val_accuracy_std"] = _mean_std([p["accuracy"] for p in plain])
            row["val_macro_f1_mean"], row["val_macro_f1_std"] = _mean_std([p["macro_f1"] for p in plain])
            for c in RARE:
                row[f"val_recall_{c}_mean"] = statistics.mean(p["recall"][c] for p in plain)
            by_seed = {s["seed"]: s["plain"] for s in finished}
            if previous is not None and "val_accuracy_mean" in previous:
                for metric, column in (("accuracy", "delta_accuracy"), ("macro_f1", "delta_macro_f1")):
                    row[column], row[f"{column}_ci95"] = paired_change(
                        {s: p[metric] for s, p in previous_seeds.items()}, {s: p[metric] for s, p in by_seed.items()})
            previous_seeds = by_seed
        rows.append(row)
        previous = row
    return rows


def pending_runs(plan: dict, done: dict, resumable=()) -> list[str]:
    """The plan's runs not in ``done``, in the order that completes ladder rows soonest: runs with a
    resume state (``resumable``) first, since part of their epochs is paid for, then by ladder step and
    seed (a row is only written once all its seeds finished)."""
    step = {m: i for i, entry in enumerate(plan["ladder"]) for m in plan["groups"][entry["group"]]}
    seed = {r["name"]: base_params(plan, r).get("seed", 0) for r in plan["runs"]}
    todo, resumable = [r["name"] for r in plan["runs"] if r["name"] not in done], set(resumable)
    return sorted(todo, key=lambda n: (n not in resumable, step.get(n, len(step)), seed[n]))


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reports", nargs="+", type=Path, help="device_report.json files of the plan's runs")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "ablation_cumulative.csv")
    ap.add_argument("--plan", type=Path, help="the committed plan: the authority on each run's settings "
                                              "(default: the plan inside the reports)")
    ap.add_argument("--records", type=Path, help="where the finished runs' records are, one folder per run "
                                                 "(default: the first report's folder)")
    ap.add_argument("--pending", type=Path, metavar="UNFINISHED",
                    help="print the runs still to train instead of writing the table; UNFINISHED holds the "
                         "resume states of stopped runs (one folder per run), which come first")
    args = ap.parse_args(argv)
    plan, done = merge_reports(args.reports)
    if args.plan:
        plan = read_plan(args.plan)
        for name, differ in stale_runs(plan, done, args.records or args.reports[0].parent).items():
            print(f"stale, left out (trained with other settings than the plan's): {name}: {'; '.join(differ)}",
                  file=sys.stderr)
            del done[name]
    if args.pending:
        resumable = [backup.parents[1].name for backup in args.pending.glob("*/model/backup")]
        print(",".join(pending_runs(plan, done, resumable)))
        return []
    rows = ladder_rows(plan, done)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=COLUMNS).to_csv(args.out, index=False)
    for r in rows:
        acc = f"{r['val_accuracy_mean']:.4f}" if "val_accuracy_mean" in r else f"missing {r['missing_seeds']}"
        print(f"{r['step']}. {r['group']:<12} {acc}")
    return rows


if __name__ == "__main__":
    main()
