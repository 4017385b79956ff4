"""research/gpu_screens.py: the GPU screens' summary table and their rules' verdicts (what the
report's appendix reads), recomputed from the committed lease records."""
from __future__ import annotations

import dataclasses
import json

import pytest

from conftest import load_research


@pytest.fixture(scope="module")
def gpu_screens():
    return load_research("gpu_screens")


def test_summary_table_from_a_search(gpu_screens, tmp_path):
    def result(name, epochs, run, acc, **settings):
        hist = [{"epoch": e, "seconds": 2.0 + e % 2, "loss": 1.0, "val_accuracy": acc - 0.01,
                 "val_macro_f1": 0.6} for e in range(1, run + 1)]
        best = {"epoch": run, "val_accuracy": acc, "val_macro_f1": 0.61,
                "val_recall": {"Contempt": 0.25, "Disgust": 0.5}}
        return {"name": name, "settings": gpu_screens.settings_of({"epochs": epochs, **settings}),
                "n_params": 657032, "history": hist, "best": best, "last": best}

    search = tmp_path / "lease.json"
    search.write_text(json.dumps({"gpu": "NVIDIA H200", "results": [
        result("stopped", 50, 20, 0.83), result("a", 30, 30, 0.81),
        result("b", 27, 27, 0.82, model="vgg", learning_rate=0.004, batch_size=128)]}))
    old = json.loads(search.read_text())
    for key in ("precision", "weight_decay"):      # leases 1-2 predate these settings
        del old["results"][1]["settings"][key]
    search.write_text(json.dumps(old))
    rows = gpu_screens.summarize([search], tmp_path / "out.csv")
    assert {(r["precision"], r["weight_decay"]) for r in rows} == {("float32", 1e-4)}
    # Finished runs first, best first; the run stopped at the budget last, however good.
    assert [r["name"] for r in rows] == ["b", "a", "stopped"]
    assert rows[0]["model"] == "vgg" and rows[2]["epochs_run"] == 20 and rows[2]["epochs"] == 50
    assert rows[1]["seconds_per_epoch"] == 2.5 and rows[1]["val_recall_Contempt"] == 0.25
    assert [(r["learning_rate"], r["batch_size"]) for r in rows] == [(0.004, 128), (0.002, 64), (0.002, 64)]
    text = (tmp_path / "out.csv").read_text().splitlines()
    assert text[0].split(",") == gpu_screens.SUMMARY_COLUMNS and len(text) == 4
    # A run listed as measuring a bug stays in its lease file but not in the summary.
    lease5 = tmp_path / "lease5_probes.json"
    lease5.write_text(json.dumps({"results": [result("mid_e50_ema_bf16_s42", 50, 50, 0.80, ema=0.999),
                                              result("mid_e50_mixup_bf16_s42", 50, 50, 0.82, mixup=0.2)]}))
    assert ("lease5_probes.json", "mid_e50_ema_bf16_s42") in gpu_screens.EXCLUDED
    rows = gpu_screens.summarize([lease5], tmp_path / "out5.csv")
    assert [(r["name"], r["mixup"], r["ema"]) for r in rows] == [("mid_e50_mixup_bf16_s42", 0.2, 0.0)]
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"results": []}))
    with pytest.raises(ValueError, match="no results"):
        gpu_screens.summarize([empty], tmp_path / "x.csv")



def _screen_rows(control, candidate, source="lease.json", f1=(0.67, 0.68), epochs_run=50):
    """Summary rows of a control and a candidate: ``control``/``candidate`` = accuracy per seed 42, 43, ..."""
    rows = []
    for config, accs, macro_f1 in (("ctrl", control, f1[0]), ("cand", candidate, f1[1])):
        rows += [{"name": f"{config}_s{seed}", "seed": seed, "val_accuracy": acc, "val_macro_f1": macro_f1,
                  "epochs": 50, "epochs_run": epochs_run, "source": source}
                 for seed, acc in zip(range(42, 42 + len(accs)), accs)]
    return rows


def test_screen_verdicts_apply_the_written_rule(gpu_screens):
    screen = gpu_screens.Screen("1", "rule.txt", ("lease.json",), "cand", control="ctrl")
    verdict = lambda rows: gpu_screens.screen_verdict(rows, screen)     # noqa: E731
    ctrl = (0.830, 0.825, 0.828)
    won = verdict(_screen_rows(ctrl, (0.834, 0.829, 0.829)))
    assert won["verdict"] == "adopt" and won["seeds_ahead"] == 3 and won["gain"] == pytest.approx(0.003)
    # Each condition alone sinks a candidate: the gain (0.29 pt), the seeds (one seed carries
    # a +1.2 pt mean), the other measure (macro-F1 lower).
    assert verdict(_screen_rows(ctrl, (0.8329, 0.8279, 0.8309)))["criterion"] is False
    one_seed = verdict(_screen_rows(ctrl, (0.866, 0.824, 0.827)))
    assert (one_seed["criterion"], one_seed["ahead"], one_seed["verdict"]) == (True, False, "keep")
    worse_f1 = verdict(_screen_rows(ctrl, (0.84, 0.84, 0.84), f1=(0.68, 0.6799)))
    assert (worse_f1["guard"], worse_f1["verdict"]) == (False, "keep")
    # Unfinished or missing runs leave it undecided; other leases' runs are not its control.
    assert verdict(_screen_rows(ctrl, (0.84, 0.84, 0.84), epochs_run=20))["verdict"] == "undecided"
    assert verdict(_screen_rows(ctrl[:2], (0.84, 0.84, 0.84)))["verdict"] == "undecided"
    assert verdict(_screen_rows(ctrl, (0.84,) * 3, source="other.json"))["verdict"] == "undecided"
    with pytest.raises(ValueError, match="seed 42 appears twice"):
        verdict(_screen_rows(ctrl, (0.84,) * 3) + _screen_rows(ctrl, (0.84,) * 3)[:1])
    # A macro-F1 rule (lease 8b): the guard is on accuracy, with a tolerance.
    f1_screen = dataclasses.replace(screen, measure="val_macro_f1", min_gain=0.008, min_ahead=1, max_guard_drop=0.002)
    lower_acc = gpu_screens.screen_verdict(_screen_rows(ctrl, tuple(a - 0.0015 for a in ctrl), f1=(0.67, 0.68)),
                                          f1_screen)
    assert lower_acc["verdict"] == "adopt" and lower_acc["guard_measure"] == "val_accuracy"


def test_committed_verdicts_are_those_of_the_committed_results(gpu_screens, tmp_path):
    """results/gpu_search_verdicts.csv is what SCREENS' rules give on results/gpu_search.csv, and
    the numbers each rule file states by hand agree with it."""
    import pandas as pd

    rows = pd.read_csv(gpu_screens.ROOT / "results" / "gpu_search.csv").to_dict("records")
    fresh = gpu_screens.write_verdicts(rows, tmp_path / "verdicts.csv")
    committed = pd.read_csv(gpu_screens.ROOT / "results" / "gpu_search_verdicts.csv")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "verdicts.csv"), committed)
    by = {(v["lease"], v["candidate"]): v for v in fresh}
    ema = by[("7", "mid_e50_ema9995_bf16")]           # lease7_rule.txt: +0.18 pt, 3 of 3 ahead
    assert (round(ema["gain"] * 100, 2), ema["seeds_ahead"], ema["verdict"]) == (0.18, 3, "keep")
    lr = by[("8b", "mid_e50_lr4e3_bf16")]             # lease8_rule.txt: macro-F1 +0.0009, 4 of 6
    assert (round(lr["gain"], 4), lr["seeds_ahead"], lr["verdict"]) == (0.0009, 4, "keep")
    ls = by[("9c", "mid_e50_ls10_bf16")]              # lease9_rule.txt: +0.11 pt, macro-F1 0.0001 lower
    assert (round(ls["gain"] * 100, 2), ls["guard"], ls["verdict"]) == (0.11, False, "keep")
    assert [v["change"] for v in fresh if v["lease"] == "9"] == ["do0", "do2", "do6"]
    assert round(ls["control_guard"] - ls["candidate_guard"], 4) == 0.0001
    assert all((gpu_screens.ROOT / v["rule"]).is_file() for v in fresh)       # each rule is committed
