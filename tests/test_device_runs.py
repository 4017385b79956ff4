"""research.device_runs: plans are checked before a (scarce) accelerator lease starts, the
headline is chosen by the plan's rule on validation, and what comes back is packed."""
from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from conftest import ROOT
from fer_helpers.training import TrainConfig
from research.device_runs import base_params, decide, pack, read_plan

PLANS = sorted((ROOT / "research" / "plans").glob("*.json"))


@pytest.mark.parametrize("path", PLANS, ids=[p.stem for p in PLANS])
def test_every_committed_plan_reads_and_every_run_validates(path):
    plan = read_plan(path)
    for run in plan["runs"]:
        params = base_params(plan, run)
        if run.get("teacher"):
            params["distill_from"] = "teacher.npz"
        TrainConfig.from_params(params).validate("distribution")


def _write(tmp_path, plan) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    return path


@pytest.mark.parametrize("plan, message", [
    ({"runs": []}, "non-empty list"),
    ({"runs": [{"name": "a"}]}, "lacks"),
    ({"runs": [{"name": "a", "params": {}}, {"name": "a", "params": {}}]}, "repeat"),
    ({"runs": [{"name": "a", "params": {}, "teacher": "b"}]}, "unknown teacher"),
    ({"runs": [{"name": "a", "params": {}}], "groups": {"g": ["a", "z"]}}, "unknown runs"),
])
def test_bad_plans_are_refused_with_the_reason(tmp_path, plan, message):
    with pytest.raises(SystemExit, match=message):
        read_plan(_write(tmp_path, plan))


def _summary(acc, f1):
    return {"plain": {"accuracy": acc, "macro_f1": f1}, "tta": {"accuracy": acc + 0.01, "macro_f1": f1}}


def test_the_rule_picks_the_group_with_the_best_mean_and_skips_incomplete_groups():
    plan = {"groups": {"a": ["a1", "a2"], "b": ["b1", "b2"], "c": ["c1"]},
            "decide": {"among": ["a", "b", "c"], "metric": "macro_f1", "tie_break": "accuracy", "tta": True}}
    done = {"a1": _summary(0.80, 0.70), "a2": _summary(0.82, 0.70),
            "b1": _summary(0.85, 0.69), "b2": _summary(0.85, 0.70)}
    verdict = decide(plan, done)
    assert verdict["winner"] == "a"                    # macro-F1 first: 0.700 beats 0.695
    assert set(verdict["scores"]) == {"a", "b"}        # c has no finished run
    done["b1"] = _summary(0.85, 0.70)
    assert decide(plan, done)["winner"] == "b"         # a tie on macro-F1: accuracy decides


def test_pack_returns_the_winners_models_and_every_runs_records(tmp_path):
    work = tmp_path / "work"
    for name in ("h1", "s1"):
        (work / name / "results").mkdir(parents=True)
        (work / name / "model").mkdir()
        (work / name / "results" / "history.csv").write_text("epoch\n0\n")
        (work / name / "model" / "inference.keras").write_bytes(b"zip")
        (work / f"{name}.log").write_text("log")
    plan = {"groups": {"headline": ["h1"]}, "return_models": ["s1"]}
    report = {"decision": {"winner": "headline"}, "done": {"h1": {}, "s1": {}}}
    pack(plan, report, work, tmp_path)
    assert (tmp_path / "h1.keras").read_bytes() == b"zip"
    with tarfile.open(tmp_path / "models.tar") as tar:
        assert tar.getnames() == ["s1/model/inference.keras"]
    with tarfile.open(tmp_path / "records.tar.gz") as tar:
        assert {"h1/results/history.csv", "s1/results/history.csv", "logs/h1.log"} <= set(tar.getnames())


def test_the_cpu_models_planned_compute_fits_the_reference_recipes_budget():
    from research.compute_budget import planned_flops, recorded_flops

    budget, n_train = recorded_flops(ROOT / "results" / "runs" / "vgg_mid_bf16_s42_clean")
    assert budget == pytest.approx(6 * 96_217_088 * 25_605 * 50)      # vgg_mid, 50 epochs, oversampled
    plan = read_plan(ROOT / "research" / "plans" / "resnet.json")
    students = [r for r in plan["runs"] if r["name"] in plan["groups"]["cpu_model"]]
    for run in students:
        params = base_params(plan, run)
        assert params["imbalance"] == "oversample" and params["oversample_fraction"] == 0.15
        assert planned_flops(params, n_train) <= budget
