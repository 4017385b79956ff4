import dataclasses
import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import fer_helpers as fh
from fer_helpers.preprocessing import balanced_class_weights, oversample_indices
from fer_helpers.training import TrainConfig, TrainingConfigError, make_loss, train_model


def small_demo():
    return fh.load_dataset("demo")


def test_focal_loss_matches_hand_computation():
    y = np.array([[0.0, 1.0, 0.0]])
    p = np.array([[0.2, 0.7, 0.1]])
    focal = make_loss(TrainConfig(loss="focal", focal_gamma=2.0))
    expected = -(1 - 0.7) ** 2 * np.log(0.7)
    assert float(focal(y, p)) == pytest.approx(expected, rel=1e-5)
    ce = make_loss(TrainConfig(loss="focal", focal_gamma=0.0))
    assert float(ce(y, p)) == pytest.approx(-np.log(0.7), rel=1e-5)


def test_soft_target_cross_entropy_matches_hand_computation():
    y = np.array([[0.5, 0.5, 0.0]])
    p = np.array([[0.25, 0.5, 0.25]])
    assert float(make_loss(TrainConfig())(y, p)) == pytest.approx(-(0.5 * np.log(0.25) + 0.5 * np.log(0.5)), rel=1e-5)


def test_balanced_class_weights_on_known_distribution():
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    w = balanced_class_weights(labels, 4)
    assert w[0] == pytest.approx(100 / (3 * 60)) and w[2] == pytest.approx(100 / (3 * 10))
    assert w[3] == 1.0   # absent class


def test_target_examples_show_soft_targets_only_when_votes_were_loaded():
    from fer_helpers.preprocessing import target_examples

    labels = np.array([1, 0])
    votes = np.array([[0.3, 0.7, 0.0], [1.0, 0.0, 0.0]])
    plain = target_examples(labels, 3)
    assert list(plain) == ["onehot"] and plain["onehot"].tolist() == [[0, 1, 0], [1, 0, 0]]
    both = target_examples(labels, 3, votes)
    assert list(both) == ["onehot", "soft"] and np.allclose(both["soft"], votes)


def test_class_examples_take_one_image_per_class_present_among_the_candidates():
    from fer_helpers.preprocessing import class_examples

    labels = np.array([2, 0, 2, 1, 0, 3])
    assert class_examples(labels, np.arange(6)) == [1, 3, 0]
    # Class 1 occurs only outside the candidates (e.g. a small slice's training split): skipped.
    assert class_examples(labels, np.array([0, 1, 2, 4, 5])) == [1, 0, 5]
    assert class_examples(labels, np.array([0, 2]), count=3) == [0]


def test_oversampling_raises_rare_classes():
    labels = np.array([0] * 100 + [1] * 10)
    idx = oversample_indices(labels, seed=0, min_fraction=0.5)
    assert np.bincount(labels[idx]).tolist() == [100, 50]
    assert (oversample_indices(labels, seed=0) == idx).all()


@pytest.mark.parametrize("kwargs, message", [
    ({"model_name": "nope"}, "unknown model name"),
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"epochs": -3}, "epochs must be a positive integer"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
    ({"learning_rate": 0.0}, "learning_rate must be a positive number"),
    ({"learning_rate": -1e-3}, "learning_rate must be a positive number"),
    ({"imbalance": "smote"}, "unknown imbalance strategy 'smote'"),
    ({"precision": "float16"}, "unknown precision 'float16'"),
])
def test_invalid_config_fails_before_training(kwargs, message):
    with pytest.raises(TrainingConfigError, match=message):
        TrainConfig(**kwargs).validate("plurality")


def test_a_refit_without_validation_cannot_use_a_validation_schedule():
    with pytest.raises(TrainingConfigError, match="needs schedule='cosine' and patience=0"):
        TrainConfig(monitor="none", patience=0).validate("plurality")      # plateau schedule
    with pytest.raises(TrainingConfigError, match="needs schedule='cosine' and patience=0"):
        TrainConfig(monitor="none", schedule="cosine", patience=3).validate("plurality")
    TrainConfig(monitor="none", schedule="cosine", patience=0).validate("plurality")


def test_refit_keeps_the_last_epoch_and_the_monitor_must_match_the_data(tmp_path):
    import keras

    refit = fh.load_dataset("demo", val_fraction=0.2, refit=True)
    config = TrainConfig(epochs=2, patience=0, schedule="cosine", monitor="none", max_train_images=300)
    with pytest.raises(TrainingConfigError, match="no validation split"):
        train_model(refit, dataclasses.replace(config, monitor="val_accuracy"), tmp_path / "a", verbose=0)
    with pytest.raises(TrainingConfigError, match="has a validation split"):
        train_model(small_demo(), config, tmp_path / "b", verbose=0)

    final = {}

    class LastWeights(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            final["weights"] = self.model.get_weights()

    res = train_model(refit, config, tmp_path / "c", verbose=0, extra_callbacks=[LastWeights()])
    saved = fh.load_model(res.model_path).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(saved, final["weights"]))
    assert res.history["epoch"].tolist() == [0, 1] and "val_accuracy" not in res.history
    meta = res.metadata
    assert meta["checkpoint"] == "last epoch (refit, no validation)"
    assert meta["best_epoch"] is None and meta["data"]["n_val"] == 0

    # Evaluation reloads the refit split; with no validation images it tunes no prior or temperature.
    from fer_helpers.data import save_data_settings
    from fer_helpers.evaluation import evaluate_run

    save_data_settings(tmp_path / "c", "demo", "plurality", 0.2, 42, refit=True)
    out = evaluate_run(tmp_path / "c", tta=False, n_boot=10)
    assert out["validation"].startswith("none (refit")
    assert "prior_adjustment" not in out and "temperature_scaling" not in out
    assert out["protocols"]["test"]["n"] == int((refit.split == "test").sum())


def test_soft_targets_need_distribution_labels():
    with pytest.raises(TrainingConfigError, match="needs label_mode='distribution'"):
        TrainConfig(targets="soft").validate("plurality")
    TrainConfig(targets="soft").validate("distribution")


def _what_training_builds(config: TrainConfig, data) -> str:
    """Everything training derives from a config before the first step: optimizer and learning-rate
    schedule, loss, the callbacks that steer it, and the (oversampled) training arrays."""
    import keras

    from fer_helpers.training import _make_optimizer, _train_arrays, control_callbacks

    x_train, _, _, _, class_weight = _train_arrays(data, config)
    steering = [(type(c).__name__, {k: getattr(c, k, None) for k in ("factor", "patience", "min_lr")})
                for c in control_callbacks(config)]
    optimizer = keras.optimizers.serialize(_make_optimizer(config, 10))
    optimizer["config"].pop("name")           # "adam", "adam_1", ...: a counter, not a setting
    return json.dumps([optimizer, keras.losses.serialize(make_loss(config)), steering, len(x_train),
                       class_weight], sort_keys=True, default=str)


def test_settings_the_report_marks_as_switched_off_have_no_effect():
    """report.SETTING_CONDITIONS says which recorded setting acts only with another one's value;
    the report marks it "etkisiz" otherwise. Check each against what training builds: changing
    the setting changes something when the condition holds and nothing for any other value."""
    from fer_helpers.preprocessing import IMBALANCE_STRATEGIES
    from fer_helpers.report import SETTING_CONDITIONS
    from fer_helpers.training import LOSSES, OPTIMIZERS, SCHEDULES

    choices = {"schedule": SCHEDULES, "optimizer": OPTIMIZERS, "loss": LOSSES, "imbalance": IMBALANCE_STRATEGIES}
    data = small_demo()
    for name, (other, needed) in SETTING_CONDITIONS.items():
        value = getattr(TrainConfig(), name)
        changed = {name: value * 2 + 1 if isinstance(value, int) else value / 2}
        for setting in choices[other]:
            config = TrainConfig(**{other: setting, "targets": "onehot", "patience": 0})
            before = _what_training_builds(config, data)
            after = _what_training_builds(dataclasses.replace(config, **changed), data)
            assert (before != after) == (setting in needed), (name, other, setting)


def test_training_writes_history_and_metadata(tmp_path):
    data = small_demo()
    res = train_model(data, TrainConfig(epochs=2, patience=0, max_train_images=300), tmp_path, verbose=0)
    assert res.model_path.is_file()
    hist = pd.read_csv(tmp_path / "results" / "history.csv")
    assert hist["epoch"].tolist() == [0, 1]
    meta = json.loads((tmp_path / "results" / "training.json").read_text())
    for key in ("params", "versions", "start_time", "end_time", "wall_time_s", "images_per_second",
                "best_epoch", "git_commit", "machine"):
        assert key in meta
    assert meta["data"]["fingerprint"]["n_images"] == len(data)
    assert meta["test_split_used"] is False and meta["params"]["seed"] == 42
    assert {"cpu_model", "cpu_flags", "cpus_usable"} <= set(meta["machine"])


def test_cpu_features_name_the_cpu_and_its_speed_flags(tmp_path):
    from fer_helpers.artifacts import cpu_features

    # Two processors as /proc/cpuinfo lists them; only the flags that decide speed are kept.
    block = "processor\t: {}\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: fpu sse2 avx2 avx512f amx_bf16 amx_tile\n\n"
    (tmp_path / "cpuinfo").write_text(block.format(0) + block.format(1))
    assert cpu_features(tmp_path / "cpuinfo") == {"cpu_model": "Intel(R) Xeon(R) Platinum 8480+",
                                                  "cpu_flags": ["avx2", "avx512f", "amx_tile", "amx_bf16"]}
    # Without /proc/cpuinfo (macOS, Windows) the flags are unknown, not "none".
    assert cpu_features(tmp_path / "missing")["cpu_flags"] is None


def test_two_runs_with_one_seed_are_identical(tmp_path):
    data = small_demo()
    cfg = dict(epochs=2, patience=0, max_train_images=300)
    a = train_model(data, TrainConfig(**cfg), tmp_path / "a", verbose=0).history
    b = train_model(data, TrainConfig(**cfg), tmp_path / "b", verbose=0).history
    cols = ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert np.allclose(a[cols].to_numpy(), b[cols].to_numpy(), atol=1e-6)


@pytest.mark.slow   # bfloat16 is emulated on CPUs without AMX, and the test trains twice
def test_mixed_bfloat16_training_is_seeded_and_saves_a_mixed_model(tmp_path):
    from fer_helpers.models import load_model, model_precision

    data = small_demo()
    cfg = dict(model_name="vgg_fast", epochs=2, patience=0, max_train_images=200, precision="mixed_bfloat16")
    a = train_model(data, TrainConfig(**cfg), tmp_path / "a", verbose=0)
    b = train_model(data, TrainConfig(**cfg), tmp_path / "b", verbose=0).history
    cols = ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert np.isfinite(a.history[cols].to_numpy()).all()
    assert np.allclose(a.history[cols].to_numpy(), b[cols].to_numpy(), atol=1e-6)
    assert model_precision(load_model(a.model_path)) == "mixed_bfloat16"
    assert a.metadata["params"]["precision"] == "mixed_bfloat16"


def test_nan_loss_stops_with_message_and_keeps_checkpoint(tmp_path, capsys):
    import keras

    class Explode(keras.callbacks.Callback):
        """After one good epoch, make the learning rate absurd so the loss diverges."""
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                self.model.optimizer.learning_rate.assign(1e30)

    data = small_demo()
    res = train_model(data, TrainConfig(epochs=4, patience=0, max_train_images=300), tmp_path,
                      verbose=0, extra_callbacks=[Explode()])
    assert res.metadata["terminated_on_nan"] is True
    assert "NaN" in capsys.readouterr().out
    assert res.metadata["epochs_run"] < 4
    # The checkpoint of the good first epoch survives and still predicts finite probabilities.
    probs = fh.predict_proba(fh.load_model(res.model_path), data.images[:8])
    assert np.isfinite(probs).all()


RESUME_SCRIPT = textwrap.dedent("""
    import os, sys, keras
    import fer_helpers as fh
    from fer_helpers.training import TrainConfig, train_model

    kill_after = int(sys.argv[2])

    class Killer(keras.callbacks.Callback):
        # Dies in the middle of epoch index kill_after (after two of its batches).
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if kill_after and self.epoch == kill_after and batch == 2:
                os._exit(17)   # a hard kill: no cleanup, like SIGKILL

    data = fh.load_dataset("demo")
    train_model(data, TrainConfig(epochs=4, patience=0, max_train_images=300), sys.argv[1],
                verbose=0, extra_callbacks=[Killer()])
""")


@pytest.mark.slow
def test_resume_after_kill_has_no_gap_or_duplicate(tmp_path):
    script = tmp_path / "resume.py"
    script.write_text(RESUME_SCRIPT)
    run = tmp_path / "run"
    first = subprocess.run([sys.executable, str(script), str(run), "2"], capture_output=True, text=True)
    assert first.returncode == 17, first.stderr[-2000:]
    assert pd.read_csv(run / "results" / "history.csv")["epoch"].tolist() == [0, 1]
    second = subprocess.run([sys.executable, str(script), str(run), "0"], capture_output=True, text=True)
    assert second.returncode == 0, second.stderr[-2000:]
    hist = pd.read_csv(run / "results" / "history.csv")
    assert hist["epoch"].tolist() == [0, 1, 2, 3]
    meta = json.loads((run / "results" / "training.json").read_text())
    assert meta["epochs_run"] == 4
    # Weights were restored, not re-initialised: the first resumed epoch starts from a trained
    # model, so its loss is below the loss of the very first epoch. (Shuffling and augmentation
    # RNG state are not part of Keras' backup, so the curve need not equal an uninterrupted run.)
    assert hist["loss"].iloc[2] < hist["loss"].iloc[0]


def test_the_progress_line_gives_epoch_elapsed_time_and_eta():
    import io

    from fer_helpers.training import make_progress_line

    stream = io.StringIO()
    line = make_progress_line(epochs=4, stream=stream)

    class Model:
        _initial_epoch = 0

    line.set_model(Model())
    line.on_train_begin()
    line.on_epoch_end(0, {"val_accuracy": 0.5})
    text = stream.getvalue()
    assert "epok/epoch 1/4" in text and "kalan/ETA" in text and "val_accuracy 0.5000" in text
