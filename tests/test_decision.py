"""research/decision.py: a rule written before training, applied to validation numbers."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, load_research


@pytest.fixture(scope="module")
def dc():
    return load_research("decision")


def _table(ref_f1, ref_acc, cand_f1, cand_acc, seeds=(42, 43, 44)):
    rows = [{"run": f"ref_s{s}", "seed": s, "val_macro_f1": f, "val_accuracy": a} for s, f, a in zip(seeds, ref_f1, ref_acc)]
    rows += [{"run": f"cand_s{s}", "seed": s, "val_macro_f1": f, "val_accuracy": a}
             for s, f, a in zip(seeds, cand_f1, cand_acc)]
    return pd.DataFrame(rows)


REF, CAND = ["runs/ref_s42", "runs/ref_s43", "runs/ref_s44"], ["runs/cand_s42", "runs/cand_s43", "runs/cand_s44"]


def test_adopts_only_when_criterion_guard_and_budget_all_hold(dc):
    better = _table([0.66, 0.66, 0.66], [0.82] * 3, [0.67, 0.66, 0.66], [0.818] * 3)
    d = dc.decide(better, REF, CAND, timed_minutes=49.3, budget_min=60)
    assert (d["criterion"], d["guard"], d["budget"], d["decision"]) == (True, True, True, "adopt")
    assert d["candidate_val_macro_f1"] == pytest.approx(0.6633, abs=1e-4)
    assert d["candidate_val_macro_f1_per_seed"] == "0.6700 0.6600 0.6600"
    # Each failure alone keeps the reference.
    assert dc.decide(better, REF, CAND, timed_minutes=61.0, budget_min=60)["decision"] == "keep"
    worse_acc = _table([0.66] * 3, [0.82] * 3, [0.67] * 3, [0.814] * 3)            # 0.6 pt lower
    d = dc.decide(worse_acc, REF, CAND, timed_minutes=50, budget_min=60)
    assert (d["criterion"], d["guard"], d["decision"]) == (True, False, "keep")
    tie = _table([0.66] * 3, [0.82] * 3, [0.66] * 3, [0.83] * 3)                    # must be higher, not equal
    assert dc.decide(tie, REF, CAND)["criterion"] is False
    # A rule without a budget decides on criterion and guard.
    d = dc.decide(better, REF, CAND)
    assert d["budget"] is None and d["decision"] == "adopt"


def test_refuses_runs_it_cannot_compare(dc):
    t = _table([0.66] * 3, [0.82] * 3, [0.67] * 3, [0.82] * 3)
    with pytest.raises(ValueError, match=r"vc\.csv: no validation row for \['cand_s45'\]"):
        dc.decide(t, REF, CAND[:2] + ["runs/cand_s45"], source="vc.csv")
    other_seeds = pd.concat([t[t.run.str.startswith("ref")],
                             _table([], [], [0.67] * 3, [0.82] * 3, seeds=(1, 2, 3))])
    with pytest.raises(ValueError, match="validation splits differ"):
        dc.decide(other_seeds, REF, ["cand_s1", "cand_s2", "cand_s3"])
    with pytest.raises(ValueError, match="timed run"):
        dc.decide(t, REF, CAND, budget_min=60)


def test_rule_time_is_read_from_its_first_line(dc, tmp_path):
    rule = tmp_path / "rule.txt"
    rule.write_text("Written 2026-11-26T12:59:24Z, before any CPU training.\ncriterion: ...\n", encoding="utf-8")
    assert dc.rule_written_at(rule) == "2026-11-26T12:59:24Z"
    rule.write_text("criterion: ...\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"rule\.txt: the first line must start with 'Written <time>'"):
        dc.rule_written_at(rule)


def test_main_records_one_row_per_rule_and_appends_the_verdict(dc, tmp_path):
    vc = tmp_path / "vc.csv"
    _table([0.66] * 3, [0.82] * 3, [0.65] * 3, [0.81] * 3).to_csv(vc, index=False)
    run = tmp_path / "runs" / "cand_s42"
    (run / "results").mkdir(parents=True)
    (run / "results" / "training.json").write_text(json.dumps({"wall_time_s": 3246.0}))
    rule = tmp_path / "decision_rule_x.txt"
    rule.write_text("Written 2026-11-26T12:59:24Z, before any training.\n", encoding="utf-8")
    out = tmp_path / "decisions.csv"
    args = ["x", "--rule", str(rule), "--reference", *REF, "--candidate", str(run), "runs/cand_s43", "runs/cand_s44",
            "--budget-min", "60", "--validation", str(vc), "--out", str(out)]
    dc.main(args + ["--append-to-rule", "--decided", "2026-11-26T17:00:00Z"])
    dc.main(args + ["--decided", "2026-11-26T17:05:00Z"])                          # decided again: replaced
    table = pd.read_csv(out)
    assert list(table.columns) == dc.COLUMNS and len(table) == 1
    row = table.iloc[0]
    assert (row["decision"], row["timed_run"], row["timed_run_min"], row["written"], row["decided"]) == (
        "keep", "cand_s42", 54.1, "2026-11-26T12:59:24Z", "2026-11-26T17:05:00Z")
    text = rule.read_text(encoding="utf-8")
    assert text.count("Decision 2026-11-26T17:00:00Z") == 1 and "criterion failed" in text and "KEEP" in text


def test_committed_decisions_follow_from_the_committed_validation_table(dc):
    """Each recorded verdict is reproduced from results/validation_compare.csv (no hand-typed outcome)."""
    table = ROOT / "results" / "decisions.csv"
    if not table.is_file():
        pytest.skip("no decisions recorded yet")
    validation = pd.read_csv(ROOT / "results" / "validation_compare.csv")
    for row in dc.load_decisions(table).to_dict("records"):
        number = lambda key: float(row[key]) if row[key] else None                  # noqa: E731
        if row["name"] in ("head_rebalance", "drw_finetune", "swa_finetune"):   # one model, post hoc: own file
            hr = load_research("head_rebalance")
            result = json.loads((ROOT / "results" / f"{row['name']}.json").read_text())
            assert hr.choose({n: c["val"] for n, c in result["candidates"].items()})[0] == result["chosen"]
            expected = hr.decision_row(result, ROOT / row["rule"], name=row["name"])
            for key in ("decision", "written", "criterion", "guard"):
                assert str(expected[key]) == row[key], (row["name"], key)
            for key in ("candidate_val_macro_f1", "reference_val_macro_f1", "candidate_val_accuracy"):
                assert expected[key] == pytest.approx(number(key)), (row["name"], key)
            continue
        d = dc.decide(validation, row["reference_runs"].split(), row["candidate_runs"].split(),
                      timed_minutes=number("timed_run_min"), budget_min=number("budget_min"),
                      guard_pt=number("guard_pt"))
        assert d["decision"] == row["decision"], row["name"]
        assert d["candidate_val_macro_f1"] == pytest.approx(number("candidate_val_macro_f1")), row["name"]
        assert d["reference_val_macro_f1"] == pytest.approx(number("reference_val_macro_f1")), row["name"]
        if row["timed_run"]:     # the budget's minutes are those the committed run metadata records
            assert round(dc.training_minutes(row["timed_run"]), 1) == number("timed_run_min"), row["name"]
        assert (ROOT / row["rule"]).is_file(), row["rule"]


def test_every_committed_verdict_uses_one_vocabulary_and_names_a_committed_rule(dc):
    """One verdict vocabulary (adopt / keep / undecided) and one folder of rule files, whichever
    script decided: the decisions table, the GPU screens, the learning curve, the short refit."""
    words = {dc.ADOPT, dc.KEEP, dc.UNDECIDED}
    table = dc.load_decisions(ROOT / "results" / "decisions.csv")
    gpu = pd.read_csv(ROOT / "results" / "gpu_search_verdicts.csv")
    curve = json.loads((ROOT / "results" / "learning_curve.json").read_text())
    refit = json.loads((ROOT / "results" / "refit36.json").read_text())
    verdicts = [*table["decision"], *gpu["verdict"], curve["verdict"], refit["schedule"]["verdict"]]
    assert set(verdicts) <= words and dc.ADOPT in verdicts and dc.KEEP in verdicts
    rules = {*table["rule"], *gpu["rule"], curve["rule"], curve["refit_check"]["rule"], refit["rule"]}
    for name in ("drw_finetune", "head_rebalance", "swa_finetune"):
        rules.add(json.loads((ROOT / "results" / f"{name}.json").read_text())["rule"])
    assert {Path(r).parent.as_posix() for r in rules} == {"docs/decision_rules"}
    assert all((ROOT / r).is_file() for r in rules), sorted(r for r in rules if not (ROOT / r).is_file())
    for path in dc.RULES_DIR.glob("*.txt"):          # every rule says when it was written, before its results
        assert dc.rule_written_at(path) < "2027", path


def test_the_verdict_adopts_only_when_every_test_the_rule_has_passes(dc):
    assert dc.verdict(True, True) == dc.ADOPT
    assert dc.verdict(True, None) == dc.ADOPT          # None: the rule has no such test (e.g. no budget)
    assert dc.verdict(True, False, None) == dc.KEEP
