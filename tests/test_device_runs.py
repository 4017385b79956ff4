"""research.device_runs: plans are checked before a (scarce) accelerator lease starts, the
headline is chosen by the plan's rule on validation, and what comes back is packed."""
from __future__ import annotations

import dataclasses
import json
import tarfile
from pathlib import Path

import pytest

from conftest import ROOT
from fer_helpers.training import TrainConfig
from research.device_runs import base_params, decide, pack, read_plan, select_runs

PLANS = sorted((ROOT / "research" / "plans").glob("*.json"))


@pytest.mark.parametrize("path", PLANS, ids=[p.stem for p in PLANS])
def test_every_committed_plan_reads_and_every_run_validates(path):
    plan = read_plan(path)
    assert plan["runs"], f"{path.name}: a plan without runs"
    for run in plan["runs"]:
        params = base_params(plan, run)
        if run.get("teacher"):
            params["distill_from"] = "teacher.npz"
        config = TrainConfig.from_params(params)
        config.validate("distribution")                 # raises on any invalid setting
        carried = run["params"].keys() & {f.name for f in dataclasses.fields(config)}
        assert {k: getattr(config, k) for k in carried} == {k: run["params"][k] for k in carried}, \
            f"{run['name']}: a setting was not carried"


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
    # A teacher of another seed trained on the student's validation images.
    ({"runs": [{"name": "t", "params": {"seed": 42}}, {"name": "s", "teacher": "t", "params": {"seed": 43}}]},
     "validation split differs .seed 42 vs 43"),
    ({"defaults": {"seed": 1}, "runs": [{"name": "t", "params": {"val_fraction": 0.1}},
                                         {"name": "s", "teacher": "t", "params": {}}]}, "val_fraction"),
])
def test_bad_plans_are_refused_with_the_reason(tmp_path, plan, message):
    with pytest.raises(SystemExit, match=message):
        read_plan(_write(tmp_path, plan))


def test_only_keeps_the_given_order_and_refuses_an_unknown_name():
    plan = {"runs": [{"name": n, "params": {}} for n in ("a", "b", "c")]}
    assert [r["name"] for r in select_runs(plan, ["c", "a", "c"])] == ["c", "a"]
    with pytest.raises(SystemExit, match="no run named x"):
        select_runs(plan, ["a", "x"])


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


def test_the_report_is_written_after_every_finished_run_so_a_stopped_session_keeps_it(tmp_path, monkeypatch):
    """A CPU session ends (or its machine is reset) long before a plan is done: after each finished
    run the report already holds it, and names what has not finished."""
    import types

    import research.device_runs as dr

    work, seen = tmp_path / "work", []

    def fake_spawn(run, plan, args, work, teacher_file):
        results = work / run["name"] / "results"
        results.mkdir(parents=True)
        (results / "device_summary.json").write_text(json.dumps(_summary(0.8, 0.6)))
        return types.SimpleNamespace(poll=lambda: 0, returncode=0), open(work / f"{run['name']}.log", "w")

    def spy(out, plan, done, failed, wall_s, in_progress=None):
        seen.append((sorted(done), list(in_progress or [])))
        return real(out, plan, done, failed, wall_s, in_progress)

    real = dr.write_report
    monkeypatch.setattr(dr, "_spawn", fake_spawn)
    monkeypatch.setattr(dr, "write_report", spy)
    monkeypatch.setattr(dr.time, "sleep", lambda s: None)
    monkeypatch.setattr(dr, "pack", lambda *a: None)
    plan = {"runs": [{"name": n, "params": {}} for n in ("a", "b")]}
    args = types.SimpleNamespace(out=str(tmp_path), work=str(work), deadline=None, parallel=1)
    dr.run_plan(plan, args)
    assert seen[0] == (["a"], ["b"]) and seen[-1] == (["a", "b"], [])
    final = json.loads((tmp_path / "device_report.json").read_text())
    assert set(final["done"]) == {"a", "b"} and "in_progress" not in final
    # A runner that wrote no report: a snapshot of its run folders (one of them still training).
    (tmp_path / "device_report.json").unlink()
    (work / "c").mkdir()
    snap = dr.snapshot_report({"runs": [*plan["runs"], {"name": "c", "params": {}}, {"name": "d", "params": {}}]},
                              tmp_path, work)
    assert set(snap["done"]) == {"a", "b"} and snap["in_progress"] == ["c"]   # d never started here


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


def test_a_finished_runs_teacher_file_covers_fer2013train_only_on_its_own_split(tmp_path):
    """--teacher-from: a committed run (flat records, model.keras) becomes a teacher file for the
    plan's student; it holds probabilities for FER2013Train's images and none from Valid/Test."""
    import numpy as np

    import fer_helpers as fh
    from conftest import make_ferplus
    from research.device_runs import main

    data = make_ferplus(tmp_path / "ferplus", per_split=6)
    run = tmp_path / "teacher_run"
    run.mkdir()
    fh.build_model("baseline").save(run / "model.keras")
    (run / "training.json").write_text(json.dumps({"params": {"seed": 3, "label_mode": "distribution",
                                                              "val_fraction": 0.2}, "compute": {"flops": 1.0}}))
    plan = _write(tmp_path, {"runs": [{"name": "t", "params": {}},
                                      {"name": "s", "teacher": "t", "params": {}}]})
    # Only the student is kept, so its teacher is outside the kept runs; a past deadline stops before training.
    main(["--plan", str(plan), "--only", "s", "--teacher-from", str(run), "--data", str(data),
          "--out", str(tmp_path / "out"), "--deadline", "-1"])
    with np.load(tmp_path / "out" / "work" / "t" / "results" / "teacher_probs.npz") as f:
        names, probs = f["names"], f["probs"].astype(np.float32)
        source = json.loads(str(f["source"]))
        held_out = f["held_out"]
    train = {line.split(",")[0] for line in (data / "FER2013Train" / "label.csv").read_text().splitlines()}
    assert set(names) <= train and len(names) == 5        # every labelled Train image (one row is "unknown")
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-2)
    assert source["run"] == "teacher_run" and source["params"]["seed"] == 3
    # What the teacher was trained without is recorded: the validation split its own seed draws.
    own_val = fh.load_dataset(data, label_mode="distribution", val_fraction=0.2, seed=3).get_split("val")
    assert len(held_out) > 0 and set(held_out) == set(own_val.names)


def test_teacher_from_refuses_a_plan_without_exactly_one_outside_teacher(tmp_path):
    from research.device_runs import main

    plan = _write(tmp_path, {"runs": [{"name": "t", "params": {}}, {"name": "s", "teacher": "t", "params": {}}]})
    with pytest.raises(SystemExit, match="exactly one teacher"):
        main(["--plan", str(plan), "--teacher-from", str(tmp_path), "--data", str(tmp_path), "--out", str(tmp_path / "o")])
