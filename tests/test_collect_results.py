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
