"""research/learning_curve.py: is the reference recipe short of data? Read off validation only."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from conftest import load_research


@pytest.fixture(scope="module")
def lc():
    return load_research("learning_curve")


def _run(root, name, cap, val_acc, p_seed=0.8, epochs_run=50, full=22708, macro_f1=0.6, checkpoint=None):
    """A finished run folder as train_benchmark.py --evaluate leaves it (numbers only)."""
    results = root / name / "results"
    results.mkdir(parents=True)
    training = {"params": {"seed": 42, "epochs": 50, "max_train_images": cap}, "epochs_run": epochs_run,
                "data": {"split_sizes": {"train": full, "val": 5677, "test": 7100}}, "wall_time_s": 3600.0,
                **({"checkpoint": checkpoint} if checkpoint else {})}    # runs before refits recorded none
    per_class = [{"class": c, "recall": r} for c, r in (("Contempt", 0.3), ("Disgust", 0.5), ("Fear", 0.6))]
    plain = {"accuracy": p_seed, "macro_f1": macro_f1, "per_class": per_class}
    evaluation = {"protocols": {"P-seed": {"plain": plain},
                                "P-FER+": {"plain": {"accuracy": p_seed + 0.03, "macro_f1": 0.7}}}}
    (results / "training.json").write_text(json.dumps(training), encoding="utf-8")
    (results / "evaluation.json").write_text(json.dumps(evaluation), encoding="utf-8")
    return None if val_acc is None else {"run": name, "val_accuracy": val_acc, "val_macro_f1": val_acc - 0.15}


def _rows(accs, shares=(0.25, 0.5, 0.75, 1.0)):
    return [{"share": s, "val_accuracy": a, "val_macro_f1": a - 0.15} for s, a in zip(shares, accs)]


def test_share_counts_images_before_oversampling(lc):
    data = {"data": {"split_sizes": {"train": 22708}}}
    assert lc.training_share({**data, "params": {"max_train_images": 5677}}) == (5677, pytest.approx(0.25, abs=1e-4))
    assert lc.training_share({**data, "params": {"max_train_images": None}}) == (22708, 1.0)
    assert lc.training_share({**data, "params": {"max_train_images": 10**6}}) == (22708, 1.0)   # a cap above the split


def test_slope_is_the_change_per_doubling(lc):
    shares = [0.25, 0.5, 0.75, 1.0]
    assert lc.doubling_slope(shares, [0.8 + 0.012 * math.log2(s) for s in shares]) == pytest.approx(0.012)
    with pytest.raises(ValueError, match="two different training shares"):
        lc.doubling_slope([1.0, 1.0], [0.8, 0.81])


def test_verdict_needs_a_steep_enough_curve_that_still_rises(lc):
    # 1.2 pt per doubling predicts 1.2 · log2(1.25) = 0.39 pt for the refit: above 0.3 pt.
    steep = lc.curve_verdict(_rows([0.82 - 0.024, 0.82 - 0.012, 0.82 - 0.005, 0.82]))
    assert steep["verdict"] == "adopt"
    assert steep["predicted_refit_gain"] == pytest.approx(steep["slope_per_doubling"] * math.log2(1.25), abs=1e-5)
    assert steep["last_step"] == pytest.approx(0.005) and steep["last_step_from_share"] == 0.75
    # A flat curve (0.2 pt per doubling) predicts less than 0.3 pt.
    assert lc.curve_verdict(_rows([0.816, 0.818, 0.819, 0.82]))["verdict"] == "keep"
    # Steep on average but falling at the end: the data has stopped helping.
    falling = lc.curve_verdict(_rows([0.78, 0.80, 0.823, 0.82]))
    assert falling["slope_per_doubling"] * math.log2(1.25) >= 0.003 and falling["verdict"] == "keep"
    # Order of the rows does not matter; the full split must be there.
    assert lc.curve_verdict(_rows([0.82, 0.78, 0.80, 0.815], shares=(1.0, 0.25, 0.5, 0.75)))["verdict"] == "adopt"
    with pytest.raises(ValueError, match="share 1"):
        lc.curve_verdict(_rows([0.78, 0.80, 0.81], shares=(0.25, 0.5, 0.75)))


def test_main_writes_the_curve_and_refuses_runs_it_cannot_place(lc, tmp_path):
    runs = tmp_path / "runs"
    val = [_run(runs, "lc25", 5677, 0.79), _run(runs, "lc50", 11354, 0.805), _run(runs, "lc75", 17031, 0.815),
           _run(runs, "ref", None, 0.82, p_seed=0.82)]
    table = tmp_path / "val.csv"
    pd.DataFrame(val).to_csv(table, index=False)
    rule = tmp_path / "rule.txt"
    rule.write_text("Written 2026-11-28T07:27:00Z\n", encoding="utf-8")
    out = tmp_path / "results" / "learning_curve"
    args = [*(str(runs / n) for n in ("ref", "lc50", "lc25", "lc75")), "--validation", str(table),
            "--rule", str(rule), "--out", str(out)]
    lc.main(args)
    curve = pd.read_csv(out.with_suffix(".csv"))
    assert list(curve["run"]) == ["lc25", "lc50", "lc75", "ref"]          # ordered by share
    assert list(curve["n_train"]) == [5677, 11354, 17031, 22708]
    assert curve.loc[3, "p_seed_accuracy"] == 0.82 and curve.loc[3, "p_ferplus_accuracy"] == 0.85
    verdict = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert verdict["rule"] == rule.as_posix() and verdict["points"] == 4 and verdict["verdict"] == "adopt"
    assert [r["run"] for r in verdict["rows"]] == list(curve["run"])     # the report reads the rows from here
    # A run missing from the validation table, an unfinished run, a missing rule: each named.
    pd.DataFrame(val[1:]).to_csv(table, index=False)
    with pytest.raises(ValueError, match="lc25: no row in the validation table"):
        lc.main(args)
    pd.DataFrame(val).to_csv(table, index=False)
    _run(runs, "short", 5677, 0.7, epochs_run=12)
    with pytest.raises(ValueError, match="12 of 50 epochs"):
        lc.main([str(runs / "short"), *args[1:]])
    with pytest.raises(FileNotFoundError, match="rule file is missing"):
        lc.main([*args[:-3], str(tmp_path / "none.txt"), "--out", str(out)])


def test_refit_check_reads_one_seed_against_its_control_by_the_rule(lc, tmp_path):
    runs = tmp_path / "runs"
    _run(runs, "ref", None, 0.82, p_seed=0.818, macro_f1=0.687)
    _run(runs, "refit", None, None, p_seed=0.823, macro_f1=0.69, full=28385,
         checkpoint="last epoch (refit, no validation)")
    control, refit = lc.held_out_numbers(runs / "ref"), lc.held_out_numbers(runs / "refit")
    assert control["checkpoint"] == "best val_accuracy" and refit["n_train"] == 28385
    assert refit["recall_contempt"] == 0.3 and refit["wall_time_min"] == 60.0
    check = lc.refit_check(refit, control)
    assert check["delta"]["p_seed_accuracy"] == pytest.approx(0.005)
    assert check["reading"] == "consistent with the curve"
    # Less than 0.3 pt, or a lower macro-F1, is not confirmed.
    assert lc.refit_check({**refit, "p_seed_accuracy": 0.820}, control)["reading"] == "not confirmed by one seed"
    assert lc.refit_check({**refit, "p_seed_macro_f1": 0.68}, control)["reading"] == "not confirmed by one seed"
    with pytest.raises(ValueError, match="must share a seed"):
        lc.refit_check({**refit, "seed": 43}, control)
    with pytest.raises(ValueError, match="ref is no refit"):
        lc.refit_check(control, control)


def test_main_adds_the_refit_check_only_with_its_rule(lc, tmp_path):
    runs = tmp_path / "runs"
    val = [_run(runs, "lc25", 5677, 0.79), _run(runs, "lc50", 11354, 0.805), _run(runs, "ref", None, 0.82)]
    _run(runs, "refit", None, None, p_seed=0.79, full=28385, checkpoint="last epoch (refit, no validation)")
    table, rule, refit_rule = tmp_path / "val.csv", tmp_path / "rule.txt", tmp_path / "refit_rule.txt"
    pd.DataFrame(val).to_csv(table, index=False)
    rule.write_text("Written before\n", encoding="utf-8")
    out = tmp_path / "lc"
    args = [*(str(runs / n) for n in ("lc25", "lc50", "ref")), "--validation", str(table), "--rule", str(rule),
            "--out", str(out), "--refit", str(runs / "refit"), "--control", str(runs / "ref")]
    with pytest.raises(SystemExit):                       # --refit without its rule
        lc.main(args)
    with pytest.raises(FileNotFoundError, match="refit_rule.txt: the rule file is missing"):
        lc.main([*args, "--refit-rule", str(refit_rule)])
    refit_rule.write_text("Written before the refit\n", encoding="utf-8")
    lc.main([*args, "--refit-rule", str(refit_rule)])
    check = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))["refit_check"]
    assert check["rule"] == refit_rule.as_posix() and check["reading"] == "not confirmed by one seed"
    assert check["delta"]["p_seed_accuracy"] == pytest.approx(-0.01)


def test_seed_summary_gives_both_sides_mean_and_spread(lc, tmp_path):
    runs = tmp_path / "runs"
    pairs = []
    for seed, (ref_acc, refit_acc) in {42: (0.818, 0.827), 43: (0.817, 0.825), 44: (0.822, 0.826)}.items():
        _run(runs, f"ref_s{seed}", None, 0.82, p_seed=ref_acc)
        _run(runs, f"refit_s{seed}", None, None, p_seed=refit_acc, full=28385,
             checkpoint="last epoch (refit, no validation)")
        refit, control = (lc.held_out_numbers(runs / f"{n}_s{seed}") for n in ("refit", "ref"))
        pairs.append(lc.refit_check({**refit, "seed": seed}, {**control, "seed": seed}))
    summary = lc.seed_summary(pairs)
    assert summary["seeds"] == [42, 43, 44] and [r["run"] for r in summary["refit_runs"]] == [
        "refit_s42", "refit_s43", "refit_s44"]
    assert summary["refit"]["p_seed_accuracy"] == {"mean": 0.826, "std": 0.001}
    assert summary["control"]["p_seed_accuracy"]["mean"] == 0.819
    assert summary["control"]["p_seed_accuracy"]["std"] == pytest.approx(0.0026, abs=1e-4)
    assert summary["delta"]["p_seed_accuracy"] == pytest.approx(0.007)
    assert summary["refit"]["wall_time_min"] == {"mean": 60.0, "std": 0.0}
    with pytest.raises(ValueError, match=r"at least two different seeds, got \[42, 42\]"):
        lc.seed_summary([pairs[0], pairs[0]])
    with pytest.raises(ValueError, match="at least two different seeds"):
        lc.seed_summary(pairs[:1])


def test_main_summarizes_several_refit_seeds_against_their_controls(lc, tmp_path):
    runs = tmp_path / "runs"
    val = [_run(runs, "lc25", 5677, 0.79), _run(runs, "lc50", 11354, 0.805),
           _run(runs, "ref", None, 0.82, p_seed=0.818)]
    for name, acc in (("refit", 0.823), ("refit43", 0.824)):
        _run(runs, name, None, None, p_seed=acc, full=28385, checkpoint="last epoch (refit, no validation)")
    _run(runs, "ref43", None, 0.82, p_seed=0.81)
    for name in ("refit43", "ref43"):               # the same fixture, another seed
        path = runs / name / "results" / "training.json"
        training = json.loads(path.read_text(encoding="utf-8"))
        training["params"]["seed"] = 43
        path.write_text(json.dumps(training), encoding="utf-8")
    table, rule = tmp_path / "val.csv", tmp_path / "rule.txt"
    pd.DataFrame(val).to_csv(table, index=False)
    rule.write_text("Written before\n", encoding="utf-8")
    out = tmp_path / "lc"
    args = [*(str(runs / n) for n in ("lc25", "lc50", "ref")), "--validation", str(table), "--rule", str(rule),
            "--refit-rule", str(rule), "--out", str(out), "--refit", str(runs / "refit"), str(runs / "refit43")]
    with pytest.raises(SystemExit):                       # one control for two refits
        lc.main([*args, "--control", str(runs / "ref")])
    with pytest.raises(ValueError, match="must share a seed"):      # the controls in the wrong order
        lc.main([*args, "--control", str(runs / "ref43"), str(runs / "ref")])
    lc.main([*args, "--control", str(runs / "ref"), str(runs / "ref43")])
    check = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))["refit_check"]
    # The rule reads the first seed alone; the summary holds both.
    assert check["refit"]["seed"] == 42 and check["delta"]["p_seed_accuracy"] == pytest.approx(0.005)
    assert check["reading"] == "consistent with the curve"
    assert check["seeds"]["seeds"] == [42, 43]
    assert check["seeds"]["delta"]["p_seed_accuracy"] == pytest.approx(0.0095)
