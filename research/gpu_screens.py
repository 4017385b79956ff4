"""The GPU screens of the VGG family (leases 1-9c): their summary table and their rules' verdicts.

From 2026-11-26 to 2026-11-28 lent GPUs (H200, H100) screened epochs, width, augmentation,
bfloat16, weight decay, EMA, MixUp, random erasing, learning rate, batch size, dropout and label
smoothing on the VGG recipe, on the validation share of FER2013Train only. Those leases trained a
PyTorch mirror of the Keras recipe, because Keras' augmentation layers were then too slow under
JAX on a GPU. The package's own Keras models now train on a GPU through the same code as on a CPU
(``research.device_runs``), so every model has one implementation and the mirror is retired; its
code is in the git history (``research/gpu_search.py``, last at commit c460555).

What stays is what the report reads: each lease's records as it returned them
(``results/gpu_search/*.json``), one summary table of them (``results/gpu_search.csv``) and the
verdicts of the rules committed before leases 7-9c ran (``docs/decision_rules/gpu_lease*.txt``;
``SCREENS`` restates their thresholds, ``screen_verdict`` applies them, so the verdicts are
computed, not typed: ``results/gpu_search_verdicts.csv``).

    python -m research.gpu_screens results/gpu_search/*.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from research.decision import UNDECIDED, relative, rule_path, verdict

ROOT = Path(__file__).resolve().parents[1]

#: The configuration the screens varied (``vgg_fast``, 30 epochs, the study's augmentation,
#: AdamW 0.002, batch 64): a record's settings are this with the entry's changes.
BASE = dict(model="vgg_fast", epochs=30, augmentation="study", oversample_fraction=0.15,
            learning_rate=0.002, batch_size=64, label_smoothing=0.0, weight_decay=1e-4,
            precision="float32", seed=42, ema=0.0, mixup=0.0, erase=0.0, dropout=0.4)
#: Settings only the mirror had (leases 5-9): EMA decay, MixUp α, erasing probability; 0 = off.
PROBE_BOUNDS = {"ema": 1.0, "mixup": math.inf, "erase": 1.0}


def settings_of(changes: dict) -> dict:
    """BASE with one screened configuration's changes."""
    return {**BASE, **changes}


#: Runs whose numbers measure a bug, not their settings: kept in ``results/gpu_search/`` as
#: the lease returned them, left out of the summary. Keyed by (lease file, configuration).
EXCLUDED = {("lease5_probes.json" if seed < 44 else "lease6_probes_s44.json", f"mid_e50_{tag}_bf16_s{seed}"):
            "validation left the EMA weights in place of the live ones, so every epoch restarted "
            "from the average (fixed after lease 6)"
            for tag in ("ema", "all3") for seed in (42, 43, 44)}

SUMMARY_COLUMNS = ["name", "model", "n_params", "epochs", "epochs_run", "augmentation", "label_smoothing",
                   "learning_rate", "batch_size", "weight_decay", "dropout", "precision", *PROBE_BOUNDS, "seed",
                   "best_epoch", "val_accuracy", "val_macro_f1", "val_recall_Contempt", "val_recall_Disgust",
                   "last_val_accuracy", "seconds_per_epoch", "gpu", "source"]


@dataclasses.dataclass(frozen=True)
class Screen:
    """One GPU screen decided by a rule committed before it ran (``docs/decision_rules/<rule>.txt``).

    The candidate wins only if all three hold: its mean ``measure`` over ``seeds`` exceeds the
    control's by at least ``min_gain``; at least ``min_ahead`` seeds beat the control's run of
    the same seed on ``measure``; its mean on the other measure is at most ``max_guard_drop``
    below the control's. Runs come from ``sources`` (the lease's files), so a control is always
    the one rerun beside its candidate.
    """

    lease: str
    rule: str
    sources: tuple[str, ...]
    candidate: str                  # configuration name without "_s<seed>"
    control: str = "mid_e50_bf16"
    seeds: tuple[int, ...] = (42, 43, 44)
    measure: str = "val_accuracy"
    min_gain: float = 0.003
    min_ahead: int = 2
    max_guard_drop: float = 0.0


#: Every screen with a rule, in the order they ran. Leases 7-9 and 9c share lease 7's rule
#: (accuracy +0.3 pt, 2 of 3 seeds ahead, macro-F1 not lower); lease 8b decided on macro-F1
#: over six seeds (+0.008, 4 of 6 seeds ahead, accuracy at most 0.2 pt lower).
SCREENS = (
    *(Screen("7", "gpu_lease7", ("lease7_ema.json",), f"mid_e50_{tag}_bf16")
      for tag in ("ema", "ema9995", "ema9998")),
    *(Screen("8", "gpu_lease8", ("lease8_lr_batch.json",), f"mid_e50_{tag}_bf16")
      for tag in ("lr1e3", "lr4e3", "b128")),
    Screen("8b", "gpu_lease8", ("lease8_lr_batch.json", "lease8b_lr4e3_seeds.json"), "mid_e50_lr4e3_bf16",
           seeds=(42, 43, 44, 45, 46, 47), measure="val_macro_f1", min_gain=0.008, min_ahead=4,
           max_guard_drop=0.002),
    *(Screen("9", "gpu_lease9", ("lease9_dropout.json",), f"mid_e50_{tag}_bf16")
      for tag in ("do0", "do2", "do6")),
    Screen("9c", "gpu_lease9", ("lease9c_ls10.json",), "mid_e50_ls10_bf16"),
)

VERDICT_COLUMNS = ["lease", "rule", "candidate", "control", "change", "seeds", "measure", "control_mean",
                   "candidate_mean", "gain", "min_gain", "seeds_ahead", "min_ahead", "guard_measure",
                   "control_guard", "candidate_guard", "max_guard_drop", "criterion", "ahead", "guard", "verdict"]


def screen_verdict(rows: list[dict], screen: Screen) -> dict:
    """Apply ``screen``'s rule to the summary rows (``summarize``) of its lease files.

    ``ADOPT`` if all three conditions hold, ``KEEP`` otherwise, ``UNDECIDED`` if a seed of the
    candidate or the control is missing or was stopped at the budget (the rules do not count
    unfinished runs). Means are over the seeds, from the rounded numbers of the summary table.
    """
    guard_measure = "val_macro_f1" if screen.measure == "val_accuracy" else "val_accuracy"

    def runs(config: str) -> dict[int, dict]:
        found = {}
        for r in rows:
            if (r["source"] in screen.sources and r["seed"] in screen.seeds
                    and r["name"] == f"{config}_s{r['seed']}"):
                if r["seed"] in found:
                    raise ValueError(f"{config} seed {r['seed']} appears twice in {screen.sources}")
                found[r["seed"]] = r
        return found

    cand, ctrl = runs(screen.candidate), runs(screen.control)
    # What the candidate's name adds to the control's: "mid_e50_do2_bf16" against "mid_e50_bf16" → "do2".
    change = "_".join(part for part in screen.candidate.split("_") if part not in screen.control.split("_"))
    row = {"lease": screen.lease, "rule": relative(rule_path(screen.rule)), "candidate": screen.candidate,
               "control": screen.control, "change": change, "seeds": " ".join(map(str, screen.seeds)),
               "measure": screen.measure, "min_gain": screen.min_gain, "min_ahead": screen.min_ahead,
               "guard_measure": guard_measure, "max_guard_drop": screen.max_guard_drop}
    finished = [*cand.values(), *ctrl.values()]
    if len(finished) < 2 * len(screen.seeds) or any(r["epochs_run"] < r["epochs"] for r in finished):
        return {**row, "verdict": UNDECIDED}

    def mean(found: dict, key: str) -> float:
        return float(np.mean([found[s][key] for s in screen.seeds]))

    means = {"control_mean": mean(ctrl, screen.measure), "candidate_mean": mean(cand, screen.measure),
             "control_guard": mean(ctrl, guard_measure), "candidate_guard": mean(cand, guard_measure)}
    gain = means["candidate_mean"] - means["control_mean"]
    ahead = sum(cand[s][screen.measure] > ctrl[s][screen.measure] for s in screen.seeds)
    # A tolerance for float sums: a gain of exactly the threshold passes, as the rules read.
    checks = {"criterion": gain >= screen.min_gain - 1e-9, "ahead": ahead >= screen.min_ahead,
              "guard": means["control_guard"] - means["candidate_guard"] <= screen.max_guard_drop + 1e-9}
    return {**row, **{k: round(v, 6) for k, v in means.items()}, "gain": round(gain, 6), "seeds_ahead": ahead,
            **checks, "verdict": verdict(*checks.values())}


def write_verdicts(rows: list[dict], out_csv: Path, screens=SCREENS) -> list[dict]:
    """Every screen's verdict (``screen_verdict``) as one CSV, in the order the screens ran."""
    import pandas as pd

    verdicts = [screen_verdict(rows, s) for s in screens]
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(verdicts, columns=VERDICT_COLUMNS).to_csv(out_csv, index=False)
    return verdicts


def summarize(search_files: list[Path], out_csv: Path) -> list[dict]:
    """One row per configuration of one or more ``run`` outputs, best validation accuracy first.

    ``epochs_run`` < ``epochs`` marks a run stopped at the lease's budget: its numbers
    are those of an unfinished cosine schedule and are not comparable to finished runs.
    """
    import pandas as pd

    rows = []
    for f in search_files:
        search = json.loads(Path(f).read_text())
        for r in search["results"]:
            if (Path(f).name, r["name"]) in EXCLUDED:
                print(f"left out {Path(f).name}:{r['name']}: {EXCLUDED[(Path(f).name, r['name'])]}")
                continue
            s, best, hist = r["settings"], r["best"], r["history"]
            rows.append({
                "name": r["name"], "model": s["model"], "n_params": r["n_params"], "epochs": s["epochs"],
                "epochs_run": len(hist), "augmentation": s["augmentation"],
                "label_smoothing": s.get("label_smoothing", 0.0),
                "learning_rate": s["learning_rate"], "batch_size": s["batch_size"],   # varied from lease 8
                # Leases 1-2 predate these settings: float32 and weight decay 1e-4 throughout.
                "weight_decay": s.get("weight_decay", 1e-4), "precision": s.get("precision", "float32"),
                "dropout": s.get("dropout", 0.4),                          # varied from lease 9
                **{probe: s.get(probe, 0.0) for probe in PROBE_BOUNDS},   # leases ≥ 5
                "seed": s["seed"],
                "best_epoch": best["epoch"], "val_accuracy": round(best["val_accuracy"], 4),
                "val_macro_f1": round(best["val_macro_f1"], 4),
                "val_recall_Contempt": round(best["val_recall"]["Contempt"], 4),
                "val_recall_Disgust": round(best["val_recall"]["Disgust"], 4),
                "last_val_accuracy": round(r["last"]["val_accuracy"], 4),
                # Median, not mean: lanes start and stop at different times, so contention varies.
                "seconds_per_epoch": round(float(np.median([h["seconds"] for h in hist])), 2),
                "gpu": search.get("gpu", "unknown"), "source": Path(f).name})
    if not rows:
        raise ValueError(f"no results in {[str(f) for f in search_files]}")
    rows.sort(key=lambda row: (row["epochs_run"] < row["epochs"], -row["val_accuracy"]))
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=SUMMARY_COLUMNS).to_csv(out_csv, index=False)
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("search", type=Path, nargs="+", help="lease records (results/gpu_search/*.json)")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "gpu_search.csv")
    ap.add_argument("--verdicts", type=Path, default=ROOT / "results" / "gpu_search_verdicts.csv",
                    help="the rules' verdicts (SCREENS) on these results")
    a = ap.parse_args(argv)
    rows = summarize(a.search, a.out)
    print(f"{len(rows)} configurations → {a.out}")
    verdicts = write_verdicts(rows, a.verdicts)
    for v in verdicts:
        print(f"lease {v['lease']:>3} {v['candidate']:<20} {v['verdict']}")
    print(f"{len(verdicts)} verdicts → {a.verdicts}")


if __name__ == "__main__":
    main()
