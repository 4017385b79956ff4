"""The width-16 ResNet's lever table is read from the committed runs, not typed."""
import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import load_research

ROOT = Path(__file__).resolve().parents[1]


def test_each_lever_row_is_its_runs_numbers_against_the_base_run(tmp_path):
    levers = load_research("levers_w16")
    table = levers.lever_table()
    assert table.loc[0, "run"] == levers.BASE and table.loc[0, "differs_from_base"] == "(base)"
    assert table.loc[0, ["val_accuracy_vs_base", "val_macro_f1_vs_base"]].tolist() == [0, 0]
    by_run = table.set_index("run")
    # The erasing row differs from the base in that one setting, at the same compute and seed.
    noerase = by_run.loc["resnet_w16_noerase_e60_s42_cpu"]
    assert noerase["differs_from_base"] == "erasing=0.0" and noerase["seed"] == 42
    assert noerase["training_flops"] == by_run.loc[levers.BASE, "training_flops"]
    # The architecture row trades resolution for width at (within 1%) the same compute.
    stem2 = by_run.loc["resnet_w32stem2_e60_s42_cpu"]
    assert stem2["differs_from_base"] == "width=32; stem_stride=2"
    assert stem2["training_flops"] == pytest.approx(noerase["training_flops"], rel=0.01)
    for run, row in by_run.iterrows():
        val = json.loads((levers.RUNS / run / "device_summary.json").read_text())["plain"]
        assert row["val_accuracy"] == pytest.approx(val["accuracy"], abs=5e-5)
        assert row["val_accuracy_vs_base"] == pytest.approx(row["val_accuracy"] - table.loc[0, "val_accuracy"], abs=1e-4)
    # The optimizer row: AdamW with decoupled decay instead of Nesterov SGD with L2, nothing else.
    adamw = by_run.loc["resnet_w16_adamw_e60_s42_cpu"]
    assert "optimizer=adamw" in adamw["differs_from_base"] and "weight_decay_mode=decoupled" in adamw["differs_from_base"]
    keys = {pair.split("=")[0] for pair in adamw["differs_from_base"].split("; ")}
    assert keys == {"optimizer", "learning_rate", "weight_decay", "weight_decay_mode", "warmup_epochs", "cosine_alpha"}
    assert adamw["training_flops"] == by_run.loc[levers.BASE, "training_flops"]
    # Each row names the rule written before it ran, where there was one, and the file exists.
    assert noerase["rule"] == "w16_noerase.txt" and stem2["rule"] == "w32_stem2.txt"
    assert all((ROOT / "docs" / "decision_rules" / r).is_file() for r in table["rule"] if r)
    # The committed CSV is this table.
    committed = pd.read_csv(ROOT / "results" / "levers_resnet_w16.csv")
    assert committed["run"].tolist() == table["run"].tolist()
    assert committed["val_accuracy"].tolist() == pytest.approx(table["val_accuracy"].tolist())
