"""Commit a finished run's numbers and released-form model to ``results/runs/<dest>/``.

    FER_DATA_DIR=/path/ferplus python -m research.commit_run runs/cpu_w16_s44/work/a_w16_s44 resnet_w16_e60_s44_cpu

A run trained by ``research.device_runs`` (or the notebooks) keeps its records under
``results/`` and its model under ``model/``, beside images it must not commit. This evaluates
the run on the held-out protocols when it has no evaluation yet (``evaluate_run``: reporting
only, nothing is chosen on it), then copies the records the report and the seed summaries read
(data settings, training record, evaluation, history, the plan's validation summary) and the
float32 model without optimizer state into one flat folder, and removes the run's resume state
from ``results/unfinished/`` once the run is committed.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The records a committed run keeps (``fer_helpers.release.run_file`` reads this flat layout).
RECORDS = ("data.json", "training.json", "evaluation.json", "history.csv", "history.json", "device_summary.json")
REQUIRED = ("data.json", "training.json", "evaluation.json", "history.json")


def released_model(run_dir: Path) -> Path:
    """The run's model as it is released: ``inference.keras`` (float32, no optimizer state,
    written by device_runs), else the checkpoint."""
    for name in ("inference.keras", "best.keras"):
        if (run_dir / "model" / name).is_file():
            return run_dir / "model" / name
    raise FileNotFoundError(f"{run_dir / 'model'}: no inference.keras or best.keras (did the run finish?)")


def commit_run(run_dir, dest: str, results_dir=ROOT / "results", evaluate=None) -> Path:
    """Copy a finished run to ``results_dir/runs/dest`` and return that folder.

    ``evaluate`` (default ``fer_helpers.evaluation.evaluate_run``) runs only when the run has
    no ``evaluation.json``. Raises before copying anything when the run is unfinished (no
    model) or a required record is missing, so a half run never lands beside finished ones.
    """
    run_dir, results_dir = Path(run_dir), Path(results_dir)
    model = released_model(run_dir)
    if not (run_dir / "results" / "evaluation.json").is_file():
        if evaluate is None:
            from fer_helpers.evaluation import evaluate_run as evaluate
        evaluate(run_dir)
    missing = [f for f in REQUIRED if not (run_dir / "results" / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{run_dir / 'results'}: missing {', '.join(missing)}")
    target = results_dir / "runs" / dest
    target.mkdir(parents=True, exist_ok=True)
    for name in RECORDS:
        if (run_dir / "results" / name).is_file():
            shutil.copy(run_dir / "results" / name, target / name)
    shutil.copy(model, target / "model.keras")
    shutil.rmtree(results_dir / "unfinished" / run_dir.name, ignore_errors=True)
    return target


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", help="a finished run folder (results/ and model/ inside)")
    ap.add_argument("dest", help="its name under results/runs/")
    ap.add_argument("--results", default=str(ROOT / "results"))
    args = ap.parse_args(argv)
    print(commit_run(args.run_dir, args.dest, args.results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
