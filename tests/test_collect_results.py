"""benchmarks/collect_results.py: how an ablation row names what changed."""
from conftest import load_benchmark


def test_changes_name_the_differences_from_the_previous_run_and_from_the_study():
    cr = load_benchmark("collect_results")
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
