"""research/short_refit.py: price a shorter refit's schedule on validation, before the refit runs."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import load_research

CURVE = {"predicted_refit_gain": 0.009, "predicted_refit_macro_f1_gain": 0.019}


@pytest.fixture(scope="module")
def sr():
    return load_research("short_refit")


def _run(root, name, seed=42, epochs=36):
    """A finished run folder as train_benchmark.py --evaluate leaves it (its metadata only)."""
    results = root / name / "results"
    results.mkdir(parents=True)
    training = {"params": {"seed": seed, "epochs": epochs}, "epochs_run": epochs}
    (results / "training.json").write_text(json.dumps(training), encoding="utf-8")
    (results / "evaluation.json").write_text(json.dumps({"protocols": {}}), encoding="utf-8")
    return root / name


def _val(run, acc, f1, seed=42):
    return {"run": run, "seed": seed, "epochs": 36, "val_accuracy": acc, "val_macro_f1": f1}


def test_schedule_goes_when_the_curve_outweighs_the_shorter_schedule(sr):
    control = _val("ref", 0.8272, 0.6871)
    # 0.5 pt cheaper schedule + 0.9 pt from the data = +0.4 pt predicted (>= 0.3), macro-F1 -0.01 + 0.019 >= 0.
    go = sr.schedule_verdict(_val("e36", 0.8222, 0.6771), control, CURVE)
    assert go["verdict"] == "adopt"
    assert go["schedule_cost"] == {"val_accuracy": -0.005, "val_macro_f1": -0.01}
    assert go["predicted_gain"] == {"val_accuracy": pytest.approx(0.004), "val_macro_f1": pytest.approx(0.009)}
    # 0.7 pt cheaper leaves +0.2 pt: below the bar; so does a macro-F1 loss larger than the curve's gain.
    assert sr.schedule_verdict(_val("e36", 0.8202, 0.6871), control, CURVE)["verdict"] == "keep"
    assert sr.schedule_verdict(_val("e36", 0.8272, 0.6671), control, CURVE)["verdict"] == "keep"


def test_schedule_cost_needs_one_seed_split(sr):
    with pytest.raises(ValueError, match="different splits"):
        sr.schedule_verdict(_val("e36", 0.82, 0.68, seed=43), _val("ref", 0.82, 0.68), CURVE)


def test_main_writes_the_verdict(sr, tmp_path):
    e36, ref = _run(tmp_path, "e36_s42"), _run(tmp_path, "ref_s42", epochs=50)
    val = tmp_path / "val.csv"
    pd.DataFrame([_val("e36_s42", 0.8230, 0.6800), _val("ref_s42", 0.8272, 0.6871)]).to_csv(val, index=False)
    curve, rule, out = tmp_path / "curve.json", tmp_path / "rule.txt", tmp_path / "refit36.json"
    curve.write_text(json.dumps(CURVE), encoding="utf-8")
    rule.write_text("written before", encoding="utf-8")
    base = ["--short", str(e36), "--control", str(ref), "--validation", str(val), "--curve", str(curve),
            "--rule", str(rule), "--out", str(out)]
    sr.main(base)
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["rule"] == rule.as_posix() and result["schedule"]["verdict"] == "adopt"
    assert (result["schedule"]["short"]["epochs"], result["schedule"]["control"]["epochs"]) == (36, 50)
    # A run missing from the validation table and a missing rule file are refused.
    pd.DataFrame([_val("ref_s42", 0.8272, 0.6871)]).to_csv(val, index=False)
    with pytest.raises(ValueError, match="e36_s42: no row in the validation table"):
        sr.main(base)
    with pytest.raises(FileNotFoundError, match="rule file is missing"):
        sr.main([*base[:-4], "--rule", str(tmp_path / "none.txt"), "--out", str(out)])
