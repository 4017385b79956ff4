"""research/validation_compare.py: the validation numbers configuration choices are made on."""
from __future__ import annotations

import numpy as np
import pandas as pd

from conftest import load_research


def test_rows_use_the_runs_own_validation_split(demo_run, tmp_path):
    from fer_helpers.data import load_run_data

    vc = load_research("validation_compare")
    out = tmp_path / "vc.csv"
    vc.main([str(demo_run), "--out", str(out)])
    row = pd.read_csv(out).iloc[0]
    data = load_run_data(demo_run)
    val = data.get_split("val")
    assert row["n_val"] == len(val) > 0
    assert row["precision"] == "float32" and row["model"] == "baseline"
    recalls = np.array([row[f"val_recall_{c}"] for c in data.classes])
    assert ((0 <= recalls) & (recalls <= 1)).all()
    # Accuracy is the support-weighted mean of per-class recall: the columns agree.
    support = np.bincount(val.labels, minlength=len(data.classes))
    assert abs((recalls * support).sum() / support.sum() - row["val_accuracy"]) < 1e-3
