"""research/cumulative_ablation.py and its plan: one lever added per row, every row over the
same seeds, summarised on validation; the report shows the table in its main text."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, load_research
from research.device_runs import base_params, read_plan

PLAN = ROOT / "research" / "plans" / "ablation_cumulative.json"
#: The same ladder around the released width-16 net, short enough for a CPU (several sessions).
PLAN_W16 = ROOT / "research" / "plans" / "ablation_cumulative_w16.json"


@pytest.fixture(scope="module")
def ca():
    return load_research("cumulative_ablation")


def effective_settings(params: dict) -> dict:
    """What a run actually trains with: its config, with the settings a model family fills in
    when left unset (the residual net's random erasing 0.5) read from the built network."""
    from fer_helpers.layers import RandomErasing
    from fer_helpers.training import TrainConfig, model_for

    config = TrainConfig.from_params(params)
    erasing = [layer.probability for layer in model_for(config, 8).layers if isinstance(layer, RandomErasing)]
    return {**dataclasses.asdict(config), "erasing": erasing[0] if erasing else 0.0}


@pytest.mark.parametrize("path, epochs", [(PLAN, 40), (PLAN_W16, 20)])
def test_the_plan_adds_one_lever_per_row_over_the_same_seeds_and_epochs(path, epochs):
    plan = read_plan(path)
    previous = None
    for step in plan["ladder"]:
        params = [base_params(plan, r) for r in plan["runs"] if r["name"] in plan["groups"][step["group"]]]
        assert sorted(p["seed"] for p in params) == [42, 43, 44]
        settings = {k: v for k, v in params[0].items() if k != "seed"}
        assert all({k: v for k, v in p.items() if k != "seed"} == settings for p in params)
        assert settings["epochs"] == epochs and settings["patience"] == 0
        effective = {k: v for k, v in effective_settings(params[0]).items() if k != "seed"}
        if previous is not None:
            # Each row trains differently from the one above, counting what a family's defaults
            # fill in: a row "adding" random erasing to a net that already had it changes nothing.
            changed = {k for k in effective if effective[k] != previous[k]}
            assert changed, f"{step['group']} trains exactly as the row above it"
            if step["group"].endswith("erasing"):
                assert changed == {"erasing"} and (previous["erasing"], effective["erasing"]) == (0.0, 0.5)
        previous = effective
    first, last = (base_params(plan, plan["runs"][i]) for i in (0, -1))
    assert (first["model_name"], first["targets"], first["optimizer"]) == ("baseline", "onehot", "adam")
    assert (last["model_name"], last["optimizer"], last["erasing"]) == ("resnet", "sgd", 0.5)


def test_the_cpu_ladder_ends_at_the_released_recipe():
    """Its last row is the released width-16 run's recipe, seeds and all, at 20 of its 60 epochs;
    its first row is the GPU ladder's (the starting study's CNN and recipe)."""
    plan, gpu = read_plan(PLAN_W16), read_plan(PLAN)
    released = json.loads((ROOT / "results" / "runs" / "resnet_w16_e60_s42_cpu" / "training.json").read_text())["params"]
    last = base_params(plan, next(r for r in plan["runs"] if r["name"] == "c7_oversample_s42"))
    assert {k: released[k] for k in last if k != "epochs" and k in released} == \
        {k: v for k, v in last.items() if k != "epochs" and k in released}
    assert last["epochs"] == 20 and released["epochs"] == 60
    assert base_params(plan, plan["runs"][0]) == {**base_params(gpu, gpu["runs"][0]), "epochs": 20}
    # Seed 42 climbs the whole ladder before seed 43 starts, so a session's runs fill whole seeds.
    assert [r["params"]["seed"] for r in plan["runs"]] == [42] * 7 + [43] * 7 + [44] * 7


def _summary(seed, acc, f1, contempt=0.3, disgust=0.4):
    return {"seed": seed, "plain": {"accuracy": acc, "macro_f1": f1, "recall": {"Contempt": contempt, "Disgust": disgust}}}


def _reports(tmp_path):
    plan = json.loads(PLAN.read_text())
    first = {"c1_study_s42": _summary(42, 0.80, 0.60), "c1_study_s43": _summary(43, 0.82, 0.62),
             "c1_study_s44": _summary(44, 0.81, 0.61)}
    second = {"c2_soft_s42": _summary(42, 0.83, 0.64), "c2_soft_s43": _summary(43, 0.83, 0.66),
              "c2_soft_s44": _summary(44, 0.83, 0.65), "c3_resnet_s42": _summary(42, 0.86, 0.70)}
    paths = []
    for i, done in enumerate((first, second)):      # two leases' reports, merged
        path = tmp_path / f"device_report_{i}.json"
        path.write_text(json.dumps({"plan": plan, "done": done, "failed": {}}))
        paths.append(path)
    return paths


def test_rows_average_every_seed_and_an_unfinished_row_names_its_missing_seeds(ca, tmp_path):
    out = tmp_path / "ablation_cumulative.csv"
    rows = ca.main([*map(str, _reports(tmp_path)), "--out", str(out)])
    assert [r["group"] for r in rows][:3] == ["c1_study", "c2_soft", "c3_resnet"]
    assert rows[0]["val_accuracy_mean"] == pytest.approx(0.81) and rows[0]["val_accuracy_std"] == pytest.approx(0.01)
    assert "delta_accuracy" not in rows[0]
    assert rows[1]["delta_accuracy"] == pytest.approx(0.02) and rows[1]["delta_macro_f1"] == pytest.approx(0.04)
    # Seed by seed the changes are +3, +1, +2 points: sd 1 point, t(0.975, 2 df) = 4.303 → ± 2.48 points.
    assert rows[1]["delta_accuracy_ci95"] == pytest.approx(4.3027 * 0.01 / 3 ** 0.5, rel=1e-4)
    assert rows[2]["missing_seeds"] == "c3_resnet_s43 c3_resnet_s44" and "val_accuracy_mean" not in rows[2]
    table = pd.read_csv(out)
    assert list(table["step"]) == [1, 2, 3, 4, 5, 6] and table.loc[1, "val_recall_Disgust_mean"] == pytest.approx(0.4)
    assert set(table["epochs"]) == {40}


def test_a_step_is_compared_seed_by_seed(ca):
    """The change from the step above is the mean of the same seeds' differences; its interval
    shrinks when every seed moves alike, however far apart the seeds themselves lie."""
    change, half = ca.paired_change({42: 0.70, 43: 0.80, 44: 0.75}, {42: 0.72, 43: 0.82, 44: 0.77})
    assert change == pytest.approx(0.02) and half == pytest.approx(0.0, abs=1e-12)
    change, half = ca.paired_change({42: 0.70, 43: 0.70}, {42: 0.73, 43: 0.69})
    assert change == pytest.approx(0.01) and half == pytest.approx(12.706 * 0.02828427 / 2 ** 0.5, rel=1e-3)
    assert ca.paired_change({42: 0.7}, {42: 0.8}) == (pytest.approx(0.1), None)
    with pytest.raises(ValueError, match="same seeds"):
        ca.paired_change({42: 0.7, 43: 0.7}, {42: 0.7, 44: 0.7})


def test_sessions_that_each_ran_part_of_the_ladder_merge_into_one_table(ca, tmp_path):
    """A CPU session's report (``--only``) holds only its own runs in its plan: merged, every row
    knows its epochs, and rows finish as their seeds arrive from later sessions."""
    plan = json.loads(PLAN_W16.read_text())
    names = [r["name"] for r in plan["runs"]]
    sessions = [names[:3], names[3:14], names[14:]]
    paths = []
    for i, part in enumerate(sessions):
        only = {**plan, "runs": [r for r in plan["runs"] if r["name"] in part]}
        done = {n: _summary(int(n[-2:]), 0.70 + 0.001 * names.index(n), 0.5) for n in part}
        path = tmp_path / f"device_report_{i}.json"
        path.write_text(json.dumps({"plan": only, "done": done, "failed": {}}))
        paths.append(path)
    first = ca.ladder_rows(*ca.merge_reports(paths[:1]))
    assert [r["n_seeds"] for r in first] == [1, 1, 1, 0, 0, 0, 0] and first[3]["epochs"] is None
    rows = ca.ladder_rows(*ca.merge_reports(paths))
    assert [r["epochs"] for r in rows] == [20] * 7 and all(r["n_seeds"] == 3 and not r["missing_seeds"] for r in rows)


def test_a_report_of_another_plan_is_refused(ca, tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"plan": {"runs": []}, "done": {}}))
    with pytest.raises(ValueError, match="no 'ladder'"):
        ca.merge_reports([path])


def test_the_report_shows_the_table_in_its_main_text(ca, demo_run, tmp_path):
    from fer_helpers.report import ReportMeta, render_html

    out = tmp_path / "ablation_cumulative.csv"
    ca.main([*map(str, _reports(tmp_path)), "--out", str(out)])
    html, ctx = render_html(demo_run, ReportMeta(cumulative_csv=str(out)))
    body = html[html.index('id="giris"'):html.index('id="ek"')]          # the main text, not the appendix
    main_text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))
    assert "Birikimli ablasyon" in main_text and "+ oy dağılımı hedefleri (on işaretleyicinin oyları)" in main_text
    assert "%81,00 ± 1,00" in main_text and "+2,00 puan" in main_text and "+0,040" in main_text
    assert "eksik tohumlar: 43, 44" in main_text and "c3_resnet_s43" not in main_text
    assert "Tablo henüz tamamlanmamıştır" in main_text
    # A first CPU session: one seed of the first rows only (its seeds column reads as numbers).
    plan = json.loads(PLAN_W16.read_text())
    part = [r["name"] for r in plan["runs"]][:3]
    report = tmp_path / "device_report_first.json"
    report.write_text(json.dumps({"plan": {**plan, "runs": [r for r in plan["runs"] if r["name"] in part]},
                                  "done": {n: _summary(42, 0.7, 0.5) for n in part}, "failed": {}}))
    first = tmp_path / "ablation_cumulative_w16.csv"
    ca.main([str(report), "--out", str(first)])
    html = render_html(demo_run, ReportMeta(cumulative_csv=str(first)))[0]
    assert "ve aynı 3 tohumla eğitilmiştir" in html and "eksik tohumlar: 43, 44" in html
    assert "aynı epok sayısıyla (40 epok" in main_text
    # The discussion reads the finished steps: here one step, the vote targets, +2 pt.
    assert "Kazanç nereden geliyor? Birikimli ablasyonda" in main_text and "tüm tohumları bitmiş adımlar" in main_text
    assert "doğruluğu en çok artıran adım \"oy dağılımı hedefleri (on işaretleyicinin oyları)\" (+2,00 puan" in main_text
    # The table gives each change with its paired interval, and says what the interval is.
    assert "+2,00 ± 2,48" in main_text and "eşleştirilmiş farkın ortalamasıdır" in main_text
    # Beside the ladder, the short single-seed screen is one sentence (its largest steps), not a recital.
    html = render_html(demo_run, ReportMeta(cumulative_csv=str(out), ablation_csv=str(ROOT / "results" / "ablation.csv")))[0]
    both = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html[html.index('id="tartisma"'):html.index('id="sinirliliklar"')]))
    assert "kısa tarama (6 epok, tek tohum; Ek A.2) en büyük doğruluk kazancını" in both
    assert "adımı çalışma protokolünde doğruluğu" not in both
    assert both.index("Birikimli ablasyonda") < both.index("kısa tarama (6 epok")
    from test_report import find_banned  # the terminology list holds for the plan's wording too

    assert find_banned(main_text, main_end=len(main_text)) == []


def test_until_its_runs_exist_the_main_text_marks_the_table_missing(demo_run, tmp_path):
    import warnings

    from fer_helpers.report import ReportMeta, render_html

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        html, _ = render_html(demo_run, ReportMeta(cumulative_csv=str(tmp_path / "ablation_cumulative.csv")))
    body = html[html.index('id="giris"'):html.index('id="ek"')]
    main_text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))
    assert "Birikimli ablasyon Bu bölüm eksik:" in main_text and "ablation_cumulative.json" in main_text
    assert any("cumulative ablation" in str(w.message) for w in caught)


def test_the_ladder_is_read_over_its_finished_steps_only():
    from fer_helpers.report import ladder_reading

    row = lambda step, acc, d, missing="": {"lever_tr": f"+ adım {step}", "val_accuracy_mean": acc,  # noqa: E731
                                            "delta_accuracy": d, "delta_macro_f1": d / 10 if d != "" else "", "missing_seeds": missing}
    rows = [{**row(1, 0.70, ""), "lever_tr": "başlangıç"}, row(2, 0.75, 0.05), row(3, 0.74, -0.01), row(4, "", "", "c4_s44")]
    reading = ladder_reading(rows)
    assert reading["largest"]["label"] == "adım 2" and [s["label"] for s in reading["lowering"]] == ["adım 3"]
    assert reading["span"] == pytest.approx(0.04) and reading["all_complete"] is False and reading["within"] == []
    # With its paired interval, a change inside it is no change over these seeds, not a loss.
    rows[1]["delta_accuracy_ci95"], rows[2]["delta_accuracy_ci95"] = 0.02, 0.015
    reading = ladder_reading(rows)
    assert [s["label"] for s in reading["within"]] == ["adım 3"] and reading["lowering"] == []
    rows[2]["delta_accuracy_ci95"] = 0.005
    assert [s["label"] for s in ladder_reading(rows)["lowering"]] == ["adım 3"]
    assert ladder_reading(rows[:1]) is None and ladder_reading(None) is None


def test_the_slides_show_the_finished_ladder_steps_as_a_chart_that_fits(ca, demo_run, tmp_path):
    import weasyprint

    from fer_helpers.report import ReportMeta, ladder_chart, render_html, slide_fill

    out = tmp_path / "ablation_cumulative.csv"
    rows = ca.main([*map(str, _reports(tmp_path)), "--out", str(out)])
    assert ladder_chart(rows[:1]) is None and ladder_chart(rows).startswith("data:image/png;base64,")
    html, _ = render_html(demo_run, ReportMeta(cumulative_csv=str(out)), template="slides.html.j2")
    assert "Adım adım: birikimli ablasyon" in html and "40 epok, aynı tohumlar" in html
    fill = slide_fill(weasyprint.HTML(string=html).render())
    assert all(0.5 <= share <= 1.0 for share in fill), fill


def test_a_cpu_sessions_progress_is_kept_in_results(tmp_path):
    """research/ladder_session.sh: the session report, a finished run's records, a stopped (or still
    running) run's resume state, and the merged table; while the runner has written no report yet it
    takes stock of the finished runs itself; without run folders it says so and writes nothing."""
    import os
    import subprocess
    import sys

    plan = json.loads(PLAN_W16.read_text())
    out = tmp_path / "runs" / "cum"
    done, stopped = out / "work" / "c1_study_s42", out / "work" / "c2_soft_s42"
    (done / "results").mkdir(parents=True)
    for f in ("training.json", "history.csv", "data.json"):
        (done / "results" / f).write_text("{}")
    (done / "results" / "device_summary.json").write_text(json.dumps(_summary(42, 0.7, 0.5)))
    (stopped / "model" / "backup").mkdir(parents=True)
    (stopped / "model" / "backup" / "latest.weights.h5").write_bytes(b"w")
    (stopped / "results").mkdir()
    (stopped / "results" / "history.csv").write_text("epoch\n0\n")
    script = ROOT / "research" / "ladder_session.sh"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    run = lambda: subprocess.run(["bash", str(script), str(out), "t1"], cwd=tmp_path, env=env,  # noqa: E731
                                 capture_output=True, text=True)
    nothing = subprocess.run(["bash", str(script), str(tmp_path / "elsewhere"), "t1"], cwd=tmp_path, env=env,
                             capture_output=True, text=True)
    assert nothing.returncode != 0 and "not found" in nothing.stderr
    assert not (tmp_path / "results").exists()
    assert run().returncode == 0                  # no report yet: a snapshot of the run folders
    snapshot = json.loads((out / "device_report.json").read_text())
    assert set(snapshot["done"]) == {"c1_study_s42"} and snapshot["in_progress"] == ["c2_soft_s42"]
    (out / "device_report.json").write_text(json.dumps(
        {"plan": {**plan, "runs": plan["runs"][:2]}, "done": {"c1_study_s42": _summary(42, 0.7, 0.5)}, "failed": {}}))
    assert run().returncode == 0
    results = tmp_path / "results"
    assert (results / "ablation_cumulative_w16" / "device_report_t1.json").is_file()
    assert (results / "ablation_cumulative_w16" / "c1_study_s42" / "device_summary.json").is_file()
    assert (results / "unfinished" / "c2_soft_s42" / "model" / "backup" / "latest.weights.h5").is_file()
    table = pd.read_csv(results / "ablation_cumulative_w16.csv")
    assert table.loc[0, "n_seeds"] == 1 and table.loc[0, "missing_seeds"] == "c1_study_s43 c1_study_s44"


def test_a_session_goes_on_with_its_stopped_runs_then_completes_rows_in_order(ca):
    """The runs still to train: a run with a resume state first, then whole ladder rows, step by step."""
    plan = read_plan(PLAN_W16)
    done = {n: {} for n in ("c1_study_s42", "c1_study_s43", "c1_study_s44", "c2_soft_s42")}
    todo = ca.pending_runs(plan, done, resumable=["c3_resnet_s43"])
    assert todo[:4] == ["c3_resnet_s43", "c2_soft_s43", "c2_soft_s44", "c3_resnet_s42"]
    assert todo[-1] == "c7_oversample_s44" and sorted(todo) == sorted(r["name"] for r in plan["runs"] if r["name"] not in done)
    assert ca.pending_runs(plan, {r["name"]: {} for r in plan["runs"]}) == []


def test_the_session_start_script_resumes_stopped_runs_and_refuses_a_used_folder(tmp_path):
    """research/ladder_start.sh hands the runner the runs the committed records lack (a stopped run
    first, its resume state copied into the new work folder) and the seconds left until STOP_AT's next
    occurrence; it refuses an OUT that exists, a STOP_AT that is not a clock time or is more than 12 h
    away, before anything starts."""
    import datetime
    import os
    import subprocess
    import sys
    import time

    plan = json.loads(PLAN_W16.read_text())
    dest = tmp_path / "results" / "ablation_cumulative_w16"
    dest.mkdir(parents=True)
    (dest / "device_report_a.json").write_text(json.dumps(
        {"plan": plan, "done": {"c1_study_s42": _summary(42, 0.7, 0.5)}, "failed": {}}))
    backup = tmp_path / "results" / "unfinished" / "c2_soft_s42" / "model" / "backup"
    backup.mkdir(parents=True)
    (backup / "latest.weights.h5").write_bytes(b"w")
    # A stand-in interpreter: the table module runs for real, the trainer only records its arguments.
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/bash\nif [ "$2" = research.device_runs ]; then echo "$@" > "{tmp_path}/runner_args"; '
                    f'exit 0; fi\nexec "{sys.executable}" "$@"\n')
    fake.chmod(0o755)
    env = {**os.environ, "PYTHON": str(fake), "PYTHONPATH": str(ROOT), "FER_DATA_DIR": "/data/ferplus"}
    stop = (datetime.datetime.now() + datetime.timedelta(hours=1)).strftime("%Y-%m-%d %H:%M")
    start = lambda out, at: subprocess.run(["bash", str(ROOT / "research" / "ladder_start.sh"), out, at],  # noqa: E731
                                           cwd=tmp_path, env=env, capture_output=True, text=True)

    def runner_args():
        for _ in range(100):                    # the runner starts in the background
            if (tmp_path / "runner_args").is_file():
                break
            time.sleep(0.1)
        return (tmp_path / "runner_args").read_text().split()

    assert start("runs/cum", stop).returncode == 0
    args = runner_args()
    only = args[args.index("--only") + 1].split(",")
    assert only[:3] == ["c2_soft_s42", "c1_study_s43", "c1_study_s44"] and "c1_study_s42" not in only
    assert 3000 < float(args[args.index("--deadline") + 1]) <= 3600
    assert args[args.index("--data") + 1] == "/data/ferplus" and args[args.index("--out") + 1] == "runs/cum"
    assert (tmp_path / "runs" / "cum" / "work" / "c2_soft_s42" / "model" / "backup" / "latest.weights.h5").is_file()
    again = start("runs/cum", stop)
    assert again.returncode != 0 and "exists" in again.stderr
    bad = start("runs/other", "soon")
    assert bad.returncode != 0 and "not a clock time" in bad.stderr and not (tmp_path / "runs" / "other").exists()
    # A bare clock time means its next occurrence (a session that crosses midnight), at most 12 h ahead.
    (tmp_path / "runner_args").unlink()
    later = (datetime.datetime.now() - datetime.timedelta(hours=13)).strftime("%H:%M")
    assert start("runs/late", later).returncode == 0
    args = runner_args()
    assert 11 * 3600 - 120 < float(args[args.index("--deadline") + 1]) <= 11 * 3600
    past = (datetime.datetime.now() - datetime.timedelta(minutes=2)).strftime("%H:%M")
    gone = start("runs/gone", past)
    assert gone.returncode != 0 and "12 h" in gone.stderr and not (tmp_path / "runs" / "gone").exists()


def test_a_run_trained_with_other_settings_than_the_plan_now_asks_is_left_out_and_named(ca, tmp_path, capsys):
    """A ladder step whose run was trained before its plan was corrected (the residual steps
    ran with the net's default random erasing before they were told 0) is stale: its record
    shows it, the merged table leaves it out and counts its seed as missing."""
    plan = read_plan(PLAN_W16)
    report = tmp_path / "device_report_a.json"
    report.write_text(json.dumps({"plan": plan, "done": {"c3_resnet_s42": _summary(42, 0.80, 0.60),
                                                         "c2_soft_s42": _summary(42, 0.70, 0.50)}}))
    for name, erasing in (("c3_resnet_s42", None), ("c2_soft_s42", None)):
        params = {**base_params(plan, next(r for r in plan["runs"] if r["name"] == name)), "erasing": erasing}
        (tmp_path / name).mkdir()
        (tmp_path / name / "training.json").write_text(json.dumps({"params": params}))
    rows = ca.main([str(report), "--out", str(tmp_path / "t.csv"), "--plan", str(PLAN_W16)])
    out = capsys.readouterr().err
    assert "stale, left out" in out and "c3_resnet_s42: erasing: None → 0.0" in out and "c2_soft_s42" not in out
    assert rows[2]["n_seeds"] == 0 and "c3_resnet_s42" in rows[2]["missing_seeds"]
    assert rows[1]["n_seeds"] == 1                     # the baseline never had erasing: its run stands

