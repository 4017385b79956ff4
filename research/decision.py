"""Decision rules: one folder of rule files, one verdict vocabulary, one decisions table.

Every screen in this project is decided by a rule written (and committed) before its candidate
trained, kept in ``docs/decision_rules/`` (``RULES_DIR``). Whatever the rule's tests are, its
verdict is one of ``ADOPT`` (the candidate replaces the reference), ``KEEP`` (the reference
stays) or ``UNDECIDED`` (the runs the rule needs are not all there); ``verdict`` turns the
rule's tests into that word. Verdicts go to ``results/decisions.csv`` (``record``) and are
appended to the rule file, timestamped (``append_to_rule``).

The common rule — one candidate against the reference over the same seeds — is applied here:

    python -m research.decision strong_aug_mid --rule docs/decision_rules/strong_aug_mid.txt \
        --reference runs/vgg_mid_bf16_s42_clean runs/vgg_mid_bf16_s43 runs/vgg_mid_bf16_s44 \
        --candidate runs/strong_mid_s42_clean runs/strong_mid_s43 runs/strong_mid_s44 \
        --budget-min 60 --append-to-rule

Its three tests, fixed in the rule file before the candidate's first epoch (other screens —
the GPU leases, the learning curve, the post-hoc heads — state their own tests in their rule
files and reach their verdict through ``verdict``):

- criterion: the candidate's mean validation macro-F1 over its seeds beats the reference's;
- guard: its mean validation accuracy is at most ``--guard-pt`` points (0.5) lower;
- budget: its first run (seed 42, trained alone on the 2 cores) took at most ``--budget-min``
  minutes (the run's ``training.json``).

The candidate is adopted only if all of them hold. The numbers come from
``results/validation_compare.csv`` (research/validation_compare.py), where runs with the same
seed share one validation split; no test image is read. The verdict becomes one row of
``results/decisions.csv``, replacing an earlier row with the same name, and the report shows
that table. With ``--append-to-rule`` it is also appended to the rule file, timestamped.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import re
from pathlib import Path

import pandas as pd

from fer_helpers.artifacts import read_json

ROOT = Path(__file__).resolve().parents[1]
RULES_DIR = ROOT / "docs" / "decision_rules"
ADOPT, KEEP, UNDECIDED = "adopt", "keep", "undecided"
COLUMNS = ["name", "rule", "written", "decided", "seeds", "reference_runs", "candidate_runs",
           "reference_val_macro_f1", "candidate_val_macro_f1", "reference_val_accuracy", "candidate_val_accuracy",
           "reference_val_macro_f1_per_seed", "candidate_val_macro_f1_per_seed", "guard_pt",
           "timed_run", "timed_run_min", "budget_min", "criterion", "guard", "budget", "decision", "note"]


def verdict(*tests: bool | None) -> str:
    """``ADOPT`` if every test the rule has passes, else ``KEEP``; ``None`` marks a test this rule
    does not have (e.g. no budget)."""
    return ADOPT if all(t is not False for t in tests) else KEEP


def rule_path(name: str) -> Path:
    """The rule file of the screen ``name`` (``docs/decision_rules/<name>.txt``)."""
    return RULES_DIR / f"{name}.txt"


def relative(path: Path) -> str:
    """``path`` as the decisions table names it: relative to the repository where it is inside."""
    path = Path(path).resolve()
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def append_to_rule(rule: Path, decided: str, script: str, text: str) -> None:
    """Append a timestamped verdict to the rule file it applies."""
    with open(rule, "a", encoding="utf-8") as fh:
        fh.write(f"Decision {decided} ({script}; test numbers not consulted):\n{text}\n")


def rule_written_at(rule: Path) -> str:
    """The timestamp of the rule's first line ("Written <time>, ..."), which predates its results."""
    first = Path(rule).read_text(encoding="utf-8").splitlines()[:1]
    match = re.match(r"Written (\S+?),?\s", first[0] + " ") if first else None
    if not match:
        raise ValueError(f"{rule}: the first line must start with 'Written <time>' (when the rule was written)")
    return match.group(1)


def validation_rows(validation: pd.DataFrame, runs: list[str], source: str) -> pd.DataFrame:
    """The rows of ``runs`` (run folder names or paths) in the validation table, in that order."""
    names = [Path(r).name for r in runs]
    missing = [n for n in names if n not in set(validation["run"])]
    if missing:
        raise ValueError(f"{source}: no validation row for {missing}; "
                         "run research/validation_compare.py with these runs first")
    return validation.set_index("run").loc[names]


def training_minutes(run: str, results_root: Path = ROOT / "results" / "runs") -> float:
    """Wall time of a finished run in minutes, from its folder or from its committed copy."""
    candidates = [Path(run) / "results" / "training.json", results_root / Path(run).name / "training.json"]
    for path in candidates:
        if path.is_file():
            return read_json(path, "training metadata")["wall_time_s"] / 60
    raise FileNotFoundError(f"{run}: no training metadata at {' or '.join(map(str, candidates))}")


def decide(validation: pd.DataFrame, reference: list[str], candidate: list[str], *, timed_minutes=None,
           budget_min=None, guard_pt: float = 0.5, source: str = "validation table") -> dict:
    """Criterion, guard and budget of one rule, and its verdict (``ADOPT`` or ``KEEP``).

    ``reference`` and ``candidate`` must cover the same seeds: a seed fixes the validation
    split, so only then do both means average over the same images.
    """
    ref = validation_rows(validation, reference, source)
    cand = validation_rows(validation, candidate, source)
    if sorted(ref["seed"]) != sorted(cand["seed"]):
        raise ValueError(f"{source}: reference seeds {sorted(ref['seed'])} and candidate seeds "
                         f"{sorted(cand['seed'])} differ, so their validation splits differ")
    criterion = bool(cand["val_macro_f1"].mean() > ref["val_macro_f1"].mean())
    guard = bool(cand["val_accuracy"].mean() >= ref["val_accuracy"].mean() - guard_pt / 100)
    if budget_min is None:
        budget = None
    elif timed_minutes is None:
        raise ValueError("a budget needs the timed run's minutes")
    else:
        budget = bool(timed_minutes <= budget_min)
    per_seed = lambda t: " ".join(f"{x:.4f}" for x in t["val_macro_f1"])          # noqa: E731
    return {"seeds": " ".join(str(s) for s in cand["seed"]),
            "reference_runs": " ".join(ref.index), "candidate_runs": " ".join(cand.index),
            "reference_val_macro_f1": round(ref["val_macro_f1"].mean(), 4),
            "candidate_val_macro_f1": round(cand["val_macro_f1"].mean(), 4),
            "reference_val_accuracy": round(ref["val_accuracy"].mean(), 4),
            "candidate_val_accuracy": round(cand["val_accuracy"].mean(), 4),
            "reference_val_macro_f1_per_seed": per_seed(ref), "candidate_val_macro_f1_per_seed": per_seed(cand),
            "guard_pt": guard_pt, "timed_run_min": None if timed_minutes is None else round(timed_minutes, 1),
            "budget_min": budget_min, "criterion": criterion, "guard": guard, "budget": budget,
            "decision": verdict(criterion, guard, budget)}


def summary(name: str, d: dict) -> str:
    """The verdict in the words of the rule files."""
    passed = lambda ok: "passed" if ok else "failed"                                # noqa: E731
    lines = [f"{name}: mean validation macro-F1 {d['candidate_val_macro_f1']:.4f} ({d['candidate_val_macro_f1_per_seed']}) "
             f"vs reference {d['reference_val_macro_f1']:.4f} ({d['reference_val_macro_f1_per_seed']}) "
             f"-> criterion {passed(d['criterion'])}",
             f"  mean validation accuracy {d['candidate_val_accuracy']:.2%} vs {d['reference_val_accuracy']:.2%} "
             f"(may drop {d['guard_pt']} pt) -> guard {passed(d['guard'])}"]
    if d["budget"] is not None:
        lines.append(f"  timed run {d['timed_run_min']:.1f} min <= {d['budget_min']:g} -> budget {passed(d['budget'])}")
    lines.append("  => ADOPT" if d["decision"] == ADOPT else "  => KEEP the reference")
    return "\n".join(lines)


def load_decisions(table: Path) -> pd.DataFrame:
    """The decisions table as text, so a missing budget stays an empty cell and True/False stay booleans."""
    return pd.read_csv(table, dtype=str, keep_default_na=False) if table.is_file() else pd.DataFrame(columns=COLUMNS)


def record(table: Path, row: dict) -> pd.DataFrame:
    """Write ``row`` into the decisions table, replacing a row with the same name."""
    old = load_decisions(table)
    text = {k: "" if row.get(k) is None else str(row[k]) for k in COLUMNS}
    new = pd.concat([old[old["name"] != row["name"]], pd.DataFrame([text])], ignore_index=True)[COLUMNS]
    new = new.sort_values("decided", kind="stable").reset_index(drop=True)
    table.parent.mkdir(parents=True, exist_ok=True)
    new.to_csv(table, index=False)
    return new


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", help="the candidate's name in the rule (e.g. strong_aug_mid)")
    ap.add_argument("--rule", type=Path, required=True, help="docs/decision_rules/*.txt")
    ap.add_argument("--reference", nargs="+", required=True, help="the reference's runs, one per seed")
    ap.add_argument("--candidate", nargs="+", required=True, help="the candidate's runs, same seeds")
    ap.add_argument("--timed-run", help="the run whose wall time meets the budget (default: the first candidate run)")
    ap.add_argument("--budget-min", type=float, default=None, help="minutes; omit for rules without a budget")
    ap.add_argument("--guard-pt", type=float, default=0.5)
    ap.add_argument("--note", default="", help="what else the rule checked (e.g. an inference gate)")
    ap.add_argument("--decided", help="timestamp to record (default: now); for decisions taken earlier by hand")
    ap.add_argument("--validation", type=Path, default=ROOT / "results" / "validation_compare.csv")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "decisions.csv")
    ap.add_argument("--append-to-rule", action="store_true", help="append the verdict to the rule file")
    args = ap.parse_args(argv)

    written = rule_written_at(args.rule)
    timed = args.timed_run or args.candidate[0]
    minutes = training_minutes(timed) if args.budget_min is not None else None
    d = decide(pd.read_csv(args.validation), args.reference, args.candidate, timed_minutes=minutes,
               budget_min=args.budget_min, guard_pt=args.guard_pt, source=str(args.validation))
    decided = args.decided or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    row = {**d, "name": args.name, "rule": relative(args.rule), "written": written, "decided": decided,
           "timed_run": Path(timed).name if minutes is not None else "", "note": args.note}
    text = summary(args.name, row)
    print(text)
    record(args.out, row)
    if args.append_to_rule:
        append_to_rule(args.rule, decided, "research/decision.py", text)


if __name__ == "__main__":
    main()
