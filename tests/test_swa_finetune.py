"""research/swa_finetune.py: weight averaging after a short constant-rate fine-tune, decided on validation."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import load_research, post_hoc_run

swa = load_research("swa_finetune")


def test_weight_averager_keeps_the_mean_of_the_epoch_end_weights():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="categorical_crossentropy")
    seen = []

    class Recorder(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(self.model.get_weights())

    averager = swa.make_weight_averager()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 4)), np.eye(3)[rng.integers(0, 3, 32)]
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[averager, Recorder()])
    assert averager.count == 3
    for i, mean in enumerate(averager.mean):
        np.testing.assert_allclose(mean, np.mean([w[i] for w in seen], axis=0), rtol=1e-6, atol=1e-7)
    assert not np.allclose(seen[0][0], seen[-1][0])        # the weights did move between epochs


def test_recompute_batchnorm_sets_the_plain_mean_of_the_batch_statistics_and_restores_momentum():
    import keras

    model = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.BatchNormalization(momentum=0.9)])
    bn = model.layers[-1]
    kernel = [w.copy() for w in model.get_weights() if w.shape == (1,)][:2]     # gamma, beta
    images = np.concatenate([np.full((64, 48, 48), 10, np.uint8), np.full((64, 48, 48), 30, np.uint8)])
    assert swa.recompute_batchnorm(model, images, batch_size=64) == 2
    # Shuffled batches mix the two halves; either way the mean of the two batch means is 20.
    np.testing.assert_allclose(np.asarray(bn.moving_mean), [20.0], rtol=1e-5)
    assert bn.momentum == 0.9
    assert all(np.array_equal(a, b) for a, b in zip(kernel, [np.asarray(bn.gamma), np.asarray(bn.beta)]))


@pytest.mark.slow
def test_script_runs_end_to_end_on_demo_data_and_records_its_verdict(tmp_path):
    run = post_hoc_run(tmp_path, "swa", "2026-11-27T06:40:00Z", precision="mixed_bfloat16")
    rule, out, table = run["rule"], run["out"], run["table"]
    result = swa.main(run["args"] + ["--epochs", "2", "--learning-rates", "1e-3"])
    saved = json.loads(out.read_text())
    assert saved["chosen"] == result["chosen"] and set(saved["candidates"]) == {"plain", "swa lr=0.001"}
    assert set(saved["controls"]) == {"last epoch lr=0.001"} and saved["epochs"] == 2
    assert set(saved["candidates"]["plain"]) == {"val", "test"}
    assert saved["stream_images"] >= saved["train_images"]              # rare classes repeated, none dropped
    assert "=> " in rule.read_text().splitlines()[-1]
    row = load_research("decision").load_decisions(table).iloc[0]
    assert row["name"] == "swa_finetune" and row["decision"] == ("keep" if result["chosen"] == "plain" else "adopt")
