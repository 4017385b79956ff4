"""The width-16 ResNet's one-lever rows (issue #38's ablation, the part a CPU can train): each
committed run beside the base run of the same seed, with what it changes and its validation
numbers (the ones every screen reads), then both protocols' test numbers for the record.

    python -m research.levers_w16            # writes results/levers_resnet_w16.csv
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from fer_helpers.artifacts import read_json
from fer_helpers.release import run_file
from research.collect_results import changes

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "results" / "runs"
#: The base run first; every other row is compared with it (same seed, same validation share).
BASE = "resnet_w16_e60_s42_cpu"
#: Each lever run: its lever in English (the CSV's) and in Turkish (the report's appendix), and the
#: screen rule written before it ran (docs/decision_rules/; empty for runs that predate the rules).
LEVERS = {"resnet_w16_e30_s42_cpu": ("epochs (30; also without rare-class oversampling)",
                                     "epok sayısı (30; nadir sınıf çoğaltması da yok)", ""),
          "resnet_w16_noerase_e60_s42_cpu": ("random erasing", "rastgele silme yok", "w16_noerase.txt"),
          "resnet_w16_sd_e60_s42_cpu": ("distillation (teacher: the base run itself)",
                                        "damıtma (öğretmen: temel çalışmanın kendisi)", ""),
          "resnet_w32stem2_e60_s42_cpu": ("architecture and width at the same FLOPs (stride-2 stem, width 32)",
                                          "mimari ve genişlik, aynı hesapla (iki adımlı giriş evrişimi, genişlik 32)",
                                          "w32_stem2.txt"),
          "resnet_w16_adamw_e60_s42_cpu": ("optimizer (AdamW 2e-3, decoupled weight decay 1e-4, cosine to 1%)",
                                           "iyileştirici (AdamW; ayrık ağırlık azalması)", "w16_adamw.txt")}


def settings(run: Path) -> tuple[dict, str]:
    """A run's training settings and label mode."""
    return (read_json(run_file(run, "training.json"), "training record")["params"],
            read_json(run_file(run, "data.json"), "data settings")["label_mode"])


def lever_row(run: Path, base: tuple[dict, str] | None, lever: tuple[str, str, str]) -> dict:
    """One run's row: its settings against the base run's (``base``: its ``settings``; None for
    the base row), validation (plain and flip-TTA), the held-out protocols' accuracy and
    macro-F1, and its training FLOPs."""
    training = read_json(run_file(run, "training.json"), "training record")
    val = read_json(run_file(run, "device_summary.json"), "validation summary")
    evaluation = read_json(run_file(run, "evaluation.json"), "evaluation")
    label_mode = read_json(run_file(run, "data.json"), "data settings")["label_mode"]
    if base is None:
        differs = "(base)"
    else:
        differs = changes(training["params"], label_mode, *base)
        # A path (the teacher's file) by its file name: the folder was the training machine's.
        differs = "; ".join(f"{k}={Path(v).name}" if "/" in v else f"{k}={v}"
                            for k, v in (pair.split("=", 1) for pair in differs.split("; ")))
    out = {"run": run.name, "lever": lever[0], "lever_tr": lever[1], "rule": lever[2], "differs_from_base": differs,
           "seed": training["params"]["seed"],
           "epochs": training["epochs_run"], "training_flops": training["compute"]["training_flops"],
           "val_accuracy": round(val["plain"]["accuracy"], 4), "val_macro_f1": round(val["plain"]["macro_f1"], 4),
           "val_tta_accuracy": round(val["tta"]["accuracy"], 4)}
    for name, p in evaluation["protocols"].items():
        key = name.replace("-", "_").replace("+", "plus")
        out[f"{key}_accuracy"] = round(p["plain"]["accuracy"], 4)
        out[f"{key}_macro_f1"] = round(p["plain"]["macro_f1"], 4)
    return out


def lever_table(runs_dir: Path = RUNS, base: str = BASE, levers: dict = LEVERS) -> pd.DataFrame:
    """The base row, then one row per lever run, with each run's validation difference from the base."""
    base_settings = settings(runs_dir / base)
    rows = [lever_row(runs_dir / base, None, ("base", "temel çalışma (yayımlanan model)", ""))]
    rows += [lever_row(runs_dir / name, base_settings, lever) for name, lever in levers.items()]
    table = pd.DataFrame(rows)
    table["val_accuracy_vs_base"] = (table["val_accuracy"] - table.loc[0, "val_accuracy"]).round(4)
    table["val_macro_f1_vs_base"] = (table["val_macro_f1"] - table.loc[0, "val_macro_f1"]).round(4)
    return table


def main(argv=None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "results" / "levers_resnet_w16.csv"))
    args = ap.parse_args(argv)
    table = lever_table()
    table.to_csv(args.out, index=False)
    print(table.to_string(index=False))
    return table


if __name__ == "__main__":
    main()
