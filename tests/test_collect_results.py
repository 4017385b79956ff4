"""research/collect_results.py: how an ablation row names what changed."""
from conftest import load_research


def test_changes_name_the_differences_from_the_previous_run_and_from_the_study():
    cr = load_research("collect_results")
    previous = {"model_name": "vgg_fast", "epochs": 50, "seed": 42}        # recorded before 'precision'
    current = {"model_name": "vgg_mid", "epochs": 50, "seed": 42, "precision": "mixed_bfloat16"}
    # The older run trained in float32 (the default), so the new setting counts as a change.
    assert cr.changes(current, "distribution", previous, "distribution") == \
        "model_name=vgg_mid; precision=mixed_bfloat16"
    assert cr.changes({**previous, "precision": "float32"}, "distribution", previous, "distribution") == "(same)"
    # Against the starting study's settings: every departure, the label rule first.
    study = cr.changes({**cr.BASELINE, "model_name": "vgg_mid"}, "distribution")
    assert study == "label_mode=distribution; model_name=vgg_mid"
    assert cr.changes(dict(cr.BASELINE), "plurality") == "starting-study settings"


def test_copy_only_copies_numbers_and_leaves_the_ablation_table(tmp_path):
    cr = load_research("collect_results")
    results = tmp_path / "runs" / "lc25_s42" / "results"
    results.mkdir(parents=True)
    for name in ("training.json", "history.csv", "predictions.npz"):
        (results / name).write_text("{}", encoding="utf-8")
    out = tmp_path / "committed"
    (out).mkdir()
    (out / "ablation.csv").write_text("run\nkept\n", encoding="utf-8")
    cr.main(["--copy", str(tmp_path / "runs" / "lc25_s42"), "--out", str(out)])
    assert sorted(p.name for p in (out / "runs" / "lc25_s42").iterdir()) == ["history.csv", "training.json"]
    assert (out / "ablation.csv").read_text(encoding="utf-8") == "run\nkept\n"


def _finished_run(root, name="a_w16_s44", evaluated=True, model=True):
    run = root / "work" / name
    (run / "results").mkdir(parents=True)
    for f in ("data.json", "training.json", "history.json", "history.csv", "device_summary.json", "val_probs.npy"):
        (run / "results" / f).write_text("{}", encoding="utf-8")
    if evaluated:
        (run / "results" / "evaluation.json").write_text("{}", encoding="utf-8")
    if model:
        (run / "model").mkdir()
        (run / "model" / "best.keras").write_text("checkpoint", encoding="utf-8")
        (run / "model" / "inference.keras").write_text("float32", encoding="utf-8")
    return run


def test_commit_run_copies_records_and_the_released_model_and_drops_the_resume_state(tmp_path):
    cr = load_research("commit_run")
    run, results = _finished_run(tmp_path), tmp_path / "results"
    (results / "unfinished" / "a_w16_s44" / "model").mkdir(parents=True)
    target = cr.commit_run(run, "resnet_w16_e60_s44_cpu", results, evaluate=lambda r: 1 / 0)
    assert sorted(p.name for p in target.iterdir()) == sorted([*cr.RECORDS, "model.keras"])
    assert (target / "model.keras").read_text() == "float32"          # no optimizer state, not the checkpoint
    assert not (results / "unfinished" / "a_w16_s44").exists()


def test_commit_run_evaluates_an_unevaluated_run_and_refuses_an_unfinished_one(tmp_path):
    import pytest

    cr = load_research("commit_run")
    run = _finished_run(tmp_path, evaluated=False)
    calls = []
    with pytest.raises(FileNotFoundError, match="missing evaluation.json"):
        cr.commit_run(run, "x", tmp_path / "results", evaluate=calls.append)
    assert calls == [run] and not (tmp_path / "results" / "runs" / "x").exists()
    unfinished = _finished_run(tmp_path / "u", model=False)
    with pytest.raises(FileNotFoundError, match="did the run finish"):
        cr.commit_run(unfinished, "y", tmp_path / "results")
    assert not (tmp_path / "results").exists()
