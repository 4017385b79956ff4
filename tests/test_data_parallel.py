"""Data-parallel training (``TrainConfig.data_parallel``) on two CPU devices, under both
backends, each in its own process (device counts are fixed when a backend starts)."""
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from fer_helpers import load_model, predict_proba
from fer_helpers.training import TrainConfig, TrainingConfigError

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "fixtures" / "data_parallel_run.py"
needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed (pip install '.[jax]')")


def _run(backend: str, run_dir: Path, batch_size: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(SCRIPT), str(run_dir), str(batch_size)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("backend", [pytest.param("jax", marks=needs_jax), "tensorflow"])
def test_a_data_parallel_run_splits_batches_over_two_devices_and_its_model_loads_anywhere(tmp_path, backend):
    done = _run(backend, tmp_path / "run", batch_size=64)
    assert done.returncode == 0, done.stderr[-3000:]
    meta = json.loads((tmp_path / "run" / "results" / "training.json").read_text())
    assert meta["compute"]["backend"] == backend and meta["compute"]["replicas"] == 2
    assert meta["params"]["data_parallel"] is True and meta["epochs_run"] == 2
    # Every training image once per epoch; on JAX the odd last batch gets one repeat so two devices split it.
    n = meta["data"]["n_train_used"]
    assert n % 2 == 1
    assert meta["compute"]["images_seen"] == 2 * (n + (backend == "jax"))
    history = json.loads((tmp_path / "run" / "results" / "history.json").read_text())
    assert np.isfinite(history["loss"]).all() and 0 <= min(history["val_accuracy"]) <= 1
    # Trained on two devices, the model loads and predicts here, in this TensorFlow process.
    probs = predict_proba(load_model(tmp_path / "run" / "model" / "best.keras"),
                          np.random.default_rng(0).integers(0, 256, (4, 48, 48), dtype=np.uint8))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
@needs_jax
def test_a_batch_that_two_devices_cannot_split_fails_before_training(tmp_path):
    done = _run("jax", tmp_path / "run", batch_size=63)
    assert done.returncode == 3
    assert "batch_size=63" in done.stderr and "multiple of 2" in done.stderr
    assert not (tmp_path / "run" / "results" / "history.csv").exists()


def test_data_parallel_is_a_flag_and_needs_a_backend_that_has_it(monkeypatch):
    with pytest.raises(TrainingConfigError, match="data_parallel must be true or false"):
        TrainConfig(data_parallel="yes").validate()
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    with pytest.raises(TrainingConfigError, match="data_parallel needs KERAS_BACKEND"):
        TrainConfig(data_parallel=True).validate()


def test_even_batches_see_every_image_each_epoch_in_batches_the_devices_split_evenly():
    from fer_helpers.training import even_batches

    x = np.arange(21)[:, None].astype(np.float32)
    batches = even_batches(x, x.copy(), batch_size=8, seed=0, multiple=4)
    orders = []
    for _ in range(2):
        seen = [batches[i][0][:, 0] for i in range(len(batches))]
        assert [len(b) for b in seen] == [8, 8, 8]             # 21 images + 3 repeats: 24 = 3 × 8
        assert all(len(b) % 4 == 0 for b in seen)
        flat = np.concatenate(seen)
        assert set(flat.astype(int)) == set(range(21))         # every image, once or (3 of them) twice
        orders.append(flat)
        batches.on_epoch_end()
    assert not np.array_equal(orders[0], orders[1])            # reshuffled every epoch


@pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow", reason="TensorFlow path")
def test_tensorflow_replicas_on_cpu_devices_warn_while_onednn_is_on(monkeypatch):
    import tensorflow as tf

    from fer_helpers import training

    class Strategy:                                   # stands in for MirroredStrategy: no devices are split here
        def __init__(self, devices):
            self.num_replicas_in_sync = len(devices)

        def scope(self):
            return contextlib.nullcontext()

    monkeypatch.setattr(training, "parallel_devices", lambda: ["/device:CPU:0", "/device:CPU:1"])
    monkeypatch.setattr(tf.distribute, "MirroredStrategy", Strategy)
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    with pytest.warns(RuntimeWarning, match="TF_ENABLE_ONEDNN_OPTS=0"):
        with training.replicas_scope(True) as replicas:
            assert replicas == 2
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with training.replicas_scope(True) as replicas:
            assert replicas == 2
