"""benchmarks/short_refit.py: price a shorter schedule on validation, then check the refit's budget per seed."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import load_benchmark

CURVE = {"predicted_refit_gain": 0.009, "predicted_refit_macro_f1_gain": 0.019}


@pytest.fixture(scope="module")
def sr():
    return load_benchmark("short_refit")


def _run(root, name, seed=42, epochs=36, p_seed=0.82, wall_min=55.0, refit=False):
    """A finished run folder as train_benchmark.py --evaluate leaves it (numbers only)."""
    results = root / name / "results"
    results.mkdir(parents=True)
    training = {"params": {"seed": seed, "epochs": epochs}, "epochs_run": epochs, "wall_time_s": wall_min * 60,
                "data": {"split_sizes": {"train": 28385 if refit else 22708}},
                "checkpoint": "last epoch (refit, no validation)" if refit else "best val_accuracy"}
    per_class = [{"class": c, "recall": 0.4} for c in ("Contempt", "Disgust")]
    evaluation = {"protocols": {"P-seed": {"plain": {"accuracy": p_seed, "macro_f1": 0.69, "per_class": per_class}},
                                "P-FER+": {"plain": {"accuracy": p_seed + 0.035, "macro_f1": 0.7}}}}
    (results / "training.json").write_text(json.dumps(training), encoding="utf-8")
    (results / "evaluation.json").write_text(json.dumps(evaluation), encoding="utf-8")
    return root / name


def _val(run, acc, f1, seed=42):
    return {"run": run, "seed": seed, "epochs": 36, "val_accuracy": acc, "val_macro_f1": f1}


def test_schedule_goes_when_the_curve_outweighs_the_shorter_schedule(sr):
    control = _val("ref", 0.8272, 0.6871)
    # 0.5 pt cheaper schedule + 0.9 pt from the data = +0.4 pt predicted (>= 0.3), macro-F1 -0.01 + 0.019 >= 0.
    go = sr.schedule_verdict(_val("e36", 0.8222, 0.6771), control, CURVE)
    assert go["verdict"] == "go"
    assert go["schedule_cost"] == {"val_accuracy": -0.005, "val_macro_f1": -0.01}
    assert go["predicted_gain"] == {"val_accuracy": pytest.approx(0.004), "val_macro_f1": pytest.approx(0.009)}
    # 0.7 pt cheaper leaves +0.2 pt: below the bar; so does a macro-F1 loss larger than the curve's gain.
    assert sr.schedule_verdict(_val("e36", 0.8202, 0.6871), control, CURVE)["verdict"] == "stop"
    assert sr.schedule_verdict(_val("e36", 0.8272, 0.6671), control, CURVE)["verdict"] == "stop"


def test_schedule_cost_needs_one_seed_split(sr):
    with pytest.raises(ValueError, match="different splits"):
        sr.schedule_verdict(_val("e36", 0.82, 0.68, seed=43), _val("ref", 0.82, 0.68), CURVE)


def test_budget_replaces_only_when_every_rule_seed_fits(sr):
    fits = [{"seed": s, "wall_time_min": m} for s, m in ((42, 55.1), (43, 59.9), (44, 60.0))]
    assert sr.budget_verdict(fits)["verdict"] == "replace the reference"
    one = sr.budget_verdict(fits[:1])
    assert one["verdict"] == "keep the reference" and "[43, 44] not yet run" in one["reason"]
    assert (one["missing"], one["over"]) == ([43, 44], [])
    over = sr.budget_verdict([*fits[:2], {"seed": 44, "wall_time_min": 60.2}])
    assert over["verdict"] == "keep the reference" and over["within_budget"][44] is False
    assert "[44] trained over 60 min" in over["reason"]


def test_refits_pair_by_seed_and_refuse_a_missing_partner(sr):
    rows = [{"run": "r42", "seed": 42, **{k: 0.8 for k in sr.lc.COMPARED}}]
    others = [{"run": "c42", "seed": 42, **{k: 0.79 for k in sr.lc.COMPARED}}]
    (pair,) = sr.paired(rows, others, "reference")
    assert pair["reference"] == "c42" and set(pair["delta"].values()) == {0.01}
    with pytest.raises(ValueError, match="no reference run of seed 42"):
        sr.paired(rows, [{**others[0], "seed": 43}], "reference")


def test_main_writes_both_steps(sr, tmp_path):
    e36, ref = _run(tmp_path, "e36_s42"), _run(tmp_path, "ref_s42", epochs=50, p_seed=0.818, wall_min=60.2)
    refit36 = _run(tmp_path, "refit36_s42", p_seed=0.825, wall_min=56.0, refit=True)
    refit50 = _run(tmp_path, "refit_s42", epochs=50, p_seed=0.8272, wall_min=75.8, refit=True)
    val = tmp_path / "val.csv"
    pd.DataFrame([_val("e36_s42", 0.8230, 0.6800), _val("ref_s42", 0.8272, 0.6871)]).to_csv(val, index=False)
    curve, rule, out = tmp_path / "curve.json", tmp_path / "rule.txt", tmp_path / "refit36.json"
    curve.write_text(json.dumps(CURVE), encoding="utf-8")
    rule.write_text("written before", encoding="utf-8")
    base = ["--short", str(e36), "--control", str(ref), "--validation", str(val), "--curve", str(curve),
            "--rule", str(rule), "--out", str(out)]
    sr.main([*base, "--refit", str(refit36), "--long-refit", str(refit50), "--reference", str(ref)])
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["schedule"]["verdict"] == "go"
    assert result["refit"]["vs_reference"][0]["delta"]["p_seed_accuracy"] == pytest.approx(0.007)
    assert result["refit"]["vs_long_refit"][0]["delta"]["p_seed_accuracy"] == pytest.approx(-0.0022)
    assert result["refit"]["budget"]["within_budget"] == {"42": True}
    assert result["refit"]["budget"]["verdict"] == "keep the reference"
    # A control run passed as a refit is refused, and so is a missing rule file.
    with pytest.raises(ValueError, match="must be a refit"):
        sr.main([*base, "--refit", str(ref), "--long-refit", str(refit50), "--reference", str(ref)])
    with pytest.raises(FileNotFoundError, match="rule file is missing"):
        sr.main([*base[:-4], "--rule", str(tmp_path / "none.txt"), "--out", str(out)])
