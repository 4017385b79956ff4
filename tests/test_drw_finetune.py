"""research/drw_finetune.py: a short re-weighted fine-tune of a trained model, decided on validation."""
from __future__ import annotations

import json

import numpy as np
import pytest

import fer_helpers as fh
from conftest import load_research, post_hoc_run

drw = load_research("drw_finetune")


def test_finetune_trains_a_float32_copy_and_leaves_the_released_model_alone():
    import keras

    keras.utils.set_random_seed(0)
    model = fh.build_model("baseline", precision="mixed_bfloat16")
    before = [w.copy() for w in model.get_weights()]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 48, 48), dtype=np.uint8)
    labels = rng.integers(0, 8, 64)
    tuned = drw.finetune(model, images, np.eye(8, dtype=np.float32)[labels],
                         drw.hr.class_weights(labels, 8, 1.0), epochs=1, batch_size=32)
    assert fh.models.model_precision(tuned) == "float32"
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert any(not np.allclose(a, b) for a, b in zip(before, tuned.get_weights()))


@pytest.mark.slow
def test_script_runs_end_to_end_on_demo_data_and_records_its_verdict(tmp_path):
    run = post_hoc_run(tmp_path, "drw", "2026-11-27T04:30:00Z", precision="mixed_bfloat16")
    rule, out, table = run["rule"], run["out"], run["table"]
    result = drw.main(run["args"] + ["--epochs", "1"])
    saved = json.loads(out.read_text())
    assert saved["chosen"] == result["chosen"] and set(saved["candidates"]) == {"plain", "drw q=0.5", "drw q=1"}
    assert set(saved["candidates"]["plain"]) == {"val", "test"} and saved["epochs"] == 1
    assert "=> " in rule.read_text().splitlines()[-1]
    row = load_research("decision").load_decisions(table).iloc[0]
    assert row["name"] == "drw_finetune" and row["decision"] == ("keep" if result["chosen"] == "plain" else "adopt")
