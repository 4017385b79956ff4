"""Training loop: losses, imbalance handling, callbacks, resume and run metadata.

``train_model(data, config, run_dir)`` trains on ``data``'s train split, selects
on its val split (checkpoint, early stopping, learning-rate schedule), and never
touches its test split. A refit (data without a val split, ``monitor="none"``)
has nothing to select on: it keeps the last epoch. A killed run started again
with the same arguments resumes from its last finished epoch (Keras
``BackupAndRestore``) and the history it writes has neither gaps nor duplicate epochs.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .artifacts import (
    accelerator_devices,
    atomic_write_bytes,
    data_fingerprint,
    git_commit,
    library_versions,
    machine_info,
    now_iso,
    run_paths,
    write_json,
)
from .data import Dataset
from .labels import CLASSES
from .models import (
    MODEL_NAMES,
    PRECISIONS,
    build_model,
    check_stem_stride,
    check_width,
    count_params,
    default_augmentation,
    forward_macs,
    training_flops,
)
from .preprocessing import IMBALANCE_STRATEGIES, balanced_class_weights, oversample_indices, training_targets

LOSSES = ("crossentropy", "focal")
SCHEDULES = ("plateau", "cosine")
OPTIMIZERS = ("adam", "adamw", "sgd")
#: How weight decay acts: "decoupled" shrinks the weights in the optimizer step (AdamW; Keras'
#: SGD ``weight_decay``), "l2" adds (weight_decay / 2)·‖w‖² of conv and dense kernels to the
#: loss, the classic SGD weight decay (not for the baseline, which is kept as the study had it).
WEIGHT_DECAY_MODES = ("decoupled", "l2")
BACKENDS = ("tensorflow", "jax", "torch")
#: Backends whose data-parallel training this package wires up (``TrainConfig.data_parallel``).
PARALLEL_BACKENDS = ("tensorflow", "jax")
#: "none" is a refit's: nothing is monitored and the last epoch is kept.
MONITORS = ("val_accuracy", "val_loss", "none")


class TrainingConfigError(ValueError):
    """Raised before any training starts when a parameter is invalid."""


@dataclass
class TrainConfig:
    """Every knob of a training run; stored verbatim in the run's metadata.

    Defaults reproduce the starting study: Adam 1e-3, batch 64, up to 60
    epochs, ReduceLROnPlateau, early stopping, one-hot cross-entropy.
    ``patience=0`` disables early stopping (the study's "train all epochs").
    """

    model_name: str = "baseline"
    epochs: int = 60
    batch_size: int = 64
    learning_rate: float = 1e-3
    patience: int = 10
    reduce_lr_patience: int = 5
    reduce_lr_factor: float = 0.5
    min_learning_rate: float = 1e-6
    loss: str = "crossentropy"
    focal_gamma: float = 2.0
    label_smoothing: float = 0.0
    targets: str = "onehot"
    imbalance: str = "none"
    oversample_fraction: float = 0.5
    optimizer: str = "adam"
    weight_decay: float = 1e-4
    schedule: str = "plateau"
    warmup_epochs: int = 0
    augmentation: str | None = None
    width: int | None = None
    stem_stride: int | None = None
    erasing: float | None = None
    momentum: float = 0.9
    weight_decay_mode: str = "decoupled"
    cosine_alpha: float = 0.01
    distill_from: str | None = None
    distill_weight: float = 0.5
    distill_temperature: float = 2.0
    precision: str = "float32"
    seed: int = 42
    max_train_images: int | None = None
    monitor: str = "val_accuracy"
    deterministic: bool = True
    #: Replicate the model on every local accelerator (else every host CPU device) and split each
    #: batch between them: keras.distribution.DataParallel on JAX, tf.distribute.MirroredStrategy
    #: on TensorFlow. ``batch_size`` stays the global batch.
    data_parallel: bool = False

    @property
    def selects_on_validation(self) -> bool:
        """False for a refit: no metric is monitored and the last epoch is kept."""
        return self.monitor != "none"

    @property
    def monitor_mode(self) -> str:
        """"max" for an accuracy, "min" for a loss: which way the monitored metric improves."""
        return "max" if "acc" in self.monitor else "min"

    @classmethod
    def from_params(cls, params: dict) -> "TrainConfig":
        """The training settings among ``params`` (a config's or a CLI's); other keys, e.g. data paths, are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in params.items() if k in names})

    def validate(self, label_mode: str | None = None) -> "TrainConfig":
        """Raise TrainingConfigError for any invalid or incompatible setting."""
        def bad(msg):
            raise TrainingConfigError(msg)
        if self.model_name not in MODEL_NAMES:
            bad(f"unknown model name {self.model_name!r}; choose one of {MODEL_NAMES}")
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v <= 0:
                bad(f"{name} must be a positive integer, got {v!r}")
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0
                and math.isfinite(self.learning_rate)):
            bad(f"learning_rate must be a positive number, got {self.learning_rate!r}")
        if not isinstance(self.patience, int) or self.patience < 0:
            bad(f"patience must be an integer ≥ 0 (0 = no early stopping), got {self.patience!r}")
        if self.imbalance not in IMBALANCE_STRATEGIES:
            bad(f"unknown imbalance strategy {self.imbalance!r}; choose one of {IMBALANCE_STRATEGIES}")
        if self.loss not in LOSSES:
            bad(f"unknown loss {self.loss!r}; choose one of {LOSSES}")
        if self.focal_gamma < 0:
            bad(f"focal_gamma must be ≥ 0, got {self.focal_gamma}")
        if not 0 <= self.label_smoothing < 1:
            bad(f"label_smoothing must lie in [0, 1), got {self.label_smoothing}")
        if self.targets not in ("onehot", "soft"):
            bad(f"targets must be 'onehot' or 'soft', got {self.targets!r}")
        if self.targets == "soft" and label_mode is not None and label_mode != "distribution":
            bad(f"targets='soft' trains on FER+ vote distributions and needs "
                f"label_mode='distribution', but the data was loaded with {label_mode!r}")
        if self.schedule not in SCHEDULES:
            bad(f"unknown schedule {self.schedule!r}; choose one of {SCHEDULES}")
        if self.optimizer not in OPTIMIZERS:
            bad(f"unknown optimizer {self.optimizer!r}; choose one of {OPTIMIZERS}")
        if self.precision not in PRECISIONS:
            bad(f"unknown precision {self.precision!r}; choose one of {PRECISIONS}")
        try:
            check_width(self.model_name, self.width)
            check_stem_stride(self.model_name, self.stem_stride)
        except ValueError as exc:
            bad(str(exc))
        if self.erasing is not None and (self.model_name == "baseline" or not 0 <= self.erasing <= 1):
            bad(f"erasing is a probability in [0, 1] for the VGGs and 'resnet', got {self.erasing!r} "
                f"for {self.model_name!r}")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            bad(f"weight_decay must be ≥ 0, got {self.weight_decay!r}")
        if not (isinstance(self.momentum, (int, float)) and 0 <= self.momentum < 1):
            bad(f"momentum must lie in [0, 1), got {self.momentum!r}")
        if self.weight_decay_mode not in WEIGHT_DECAY_MODES:
            bad(f"unknown weight_decay_mode {self.weight_decay_mode!r}; choose one of {WEIGHT_DECAY_MODES}")
        if self.weight_decay_mode == "l2" and self.model_name == "baseline":
            bad("weight_decay_mode='l2' puts the penalty in the layers of the VGGs and 'resnet'; "
                "the baseline takes 'decoupled'")
        if not 0 <= self.cosine_alpha <= 1:
            bad(f"cosine_alpha (final learning rate as a fraction of the peak) must lie in [0, 1], "
                f"got {self.cosine_alpha}")
        if self.distill_from is not None:
            if self.targets != "soft":
                bad("distill_from mixes the teacher's probabilities into the vote distributions: "
                    f"it needs targets='soft', got {self.targets!r}")
            if not 0 < self.distill_weight <= 1:
                bad(f"distill_weight must lie in (0, 1], got {self.distill_weight}")
            if not self.distill_temperature > 0:
                bad(f"distill_temperature must be > 0, got {self.distill_temperature}")
        backend = check_backend()
        if not isinstance(self.data_parallel, bool):
            bad(f"data_parallel must be true or false, got {self.data_parallel!r}")
        if self.data_parallel and backend not in PARALLEL_BACKENDS:
            bad(f"data_parallel needs KERAS_BACKEND in {PARALLEL_BACKENDS}, got {backend!r}")
        if self.monitor not in MONITORS:
            bad(f"monitor must be one of {MONITORS}, got {self.monitor!r}")
        if not self.selects_on_validation and (self.schedule == "plateau" or self.patience > 0):
            bad("monitor='none' (a refit without validation) needs schedule='cosine' and patience=0: "
                f"ReduceLROnPlateau and early stopping watch a validation metric "
                f"(got schedule={self.schedule!r}, patience={self.patience})")
        return self


def recorded_params(params: dict) -> dict:
    """A run's recorded training parameters, completed with ``TrainConfig``'s defaults.

    A run recorded before a setting existed trained with that setting's default
    (e.g. float32 before ``precision``), so comparisons between runs of different
    ages see the value each run actually used.
    """
    return {**dataclasses.asdict(TrainConfig()), **params}


def effective_params(params: dict) -> dict:
    """``recorded_params`` with an unset augmentation named as the model's default, so two
    runs' settings compare like with like (e.g. ``None`` on a VGG is ``"strong"``)."""
    full = recorded_params(params)
    return {**full, "augmentation": full["augmentation"] or default_augmentation(full["model_name"])}


def make_loss(config: TrainConfig):
    """Keras loss for the config: categorical cross-entropy or focal loss (alpha = 1)."""
    import keras

    if config.loss == "focal":
        # alpha=1 so that gamma=0 is exactly cross-entropy; class balance is a separate lever.
        return keras.losses.CategoricalFocalCrossentropy(
            alpha=1.0, gamma=config.focal_gamma, label_smoothing=config.label_smoothing)
    return keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)


def _make_optimizer(config: TrainConfig, steps_per_epoch: int):
    import keras

    lr = config.learning_rate
    if config.schedule == "cosine":
        total = max(1, config.epochs * steps_per_epoch)
        warm = min(config.warmup_epochs * steps_per_epoch, total - 1)
        lr = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=lr / 10 if warm else lr, decay_steps=total - warm,
            alpha=config.cosine_alpha, warmup_target=lr if warm else None, warmup_steps=warm)
    if config.optimizer == "sgd":
        decay = config.weight_decay if config.weight_decay_mode == "decoupled" else None
        return keras.optimizers.SGD(learning_rate=lr, momentum=config.momentum, nesterov=True,
                                    weight_decay=decay or None)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=lr, weight_decay=config.weight_decay)
    return keras.optimizers.Adam(learning_rate=lr)


def check_backend() -> str:
    """The Keras backend in use; a clear error when it is unknown or its library is not installed."""
    import importlib.util

    name = os.environ.get("KERAS_BACKEND", "tensorflow")
    if name not in BACKENDS:
        raise TrainingConfigError(f"KERAS_BACKEND={name!r} is not a backend this package trains with; "
                                  f"choose one of {BACKENDS}")
    if importlib.util.find_spec(name) is None:
        raise TrainingConfigError(f"KERAS_BACKEND={name!r} but {name} is not installed "
                                  f"(pip install {name}, or unset KERAS_BACKEND for TensorFlow)")
    return name


def model_for(config: TrainConfig, n_classes: int):
    """The untrained network a config describes (architecture, augmentation, precision,
    and for residual nets width, stem stride, random erasing and the L2 penalty)."""
    extra = {}
    if config.model_name != "baseline":
        l2 = config.weight_decay / 2 if config.weight_decay_mode == "l2" else 0.0
        extra = {"erasing": config.erasing, "l2": l2}
        if config.model_name == "resnet":
            extra["width"] = config.width
            extra["stem_stride"] = config.stem_stride
    return build_model(config.model_name, n_classes, config.augmentation, config.seed, config.precision,
                       **extra)


def planned_flops(params: dict, n_train_used: int) -> float:
    """Training FLOPs of a run with ``params`` that trains on ``n_train_used`` images an epoch
    (after oversampling) for ``params["epochs"]`` epochs: the model the settings describe,
    priced by ``models.training_flops`` before anything trains."""
    config = TrainConfig.from_params(params)
    return training_flops(model_for(config, len(CLASSES)), int(n_train_used) * config.epochs)


def recorded_flops(training: dict) -> float:
    """A finished run's training FLOPs from its ``training.json`` record: as counted, or for a
    run recorded before FLOPs were counted, priced from its settings and the images it saw."""
    if training.get("compute"):
        return float(training["compute"]["training_flops"])
    params = {**training["params"], "epochs": int(training["epochs_run"])}
    return planned_flops(params, int(training["data"]["n_train_used"]))


def set_seeds(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and the backend; on TensorFlow optionally make ops deterministic
    (JAX is deterministic on a CPU as it is; on a GPU XLA's reductions may reorder)."""
    import keras

    keras.utils.set_random_seed(seed)
    if deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


# --------------------------------------------------------------------------- data parallelism

def parallel_devices() -> list[str]:
    """The devices a data-parallel run replicates over: every accelerator, else every CPU device
    the backend sees (one, unless split on purpose, e.g. JAX's
    ``XLA_FLAGS=--xla_force_host_platform_device_count=2``)."""
    import keras

    if keras.backend.backend() == "jax":
        return list(keras.distribution.list_devices())
    import tensorflow as tf

    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return [d.name for d in devices]


@contextlib.contextmanager
def replicas_scope(enabled: bool):
    """Build, compile and fit inside this scope; it yields the number of model replicas.

    Data parallelism keeps one copy of the weights on every device, gives each device an
    equal slice of every batch and averages the gradients, so a run on n devices follows
    the same recipe as on one (same global batch, same learning rate) in about 1/n of the
    time. Disabled, the scope does nothing and yields 1.
    """
    import keras

    if not enabled:
        yield 1
        return
    devices = parallel_devices()
    if keras.backend.backend() == "jax":
        with keras.distribution.DataParallel(devices=devices).scope():
            yield len(devices)
        return
    import tensorflow as tf

    if len(devices) > 1 and all("CPU" in d for d in devices) and os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0":
        # TensorFlow's oneDNN kernels are not safe when several CPU replicas run them at once:
        # on CPUs with AVX-512/AMX such a run can abort with heap corruption mid-epoch.
        warnings.warn("data_parallel over several TensorFlow CPU devices with oneDNN enabled can crash; "
                      "set TF_ENABLE_ONEDNN_OPTS=0 before TensorFlow starts", RuntimeWarning, stacklevel=3)
    strategy = tf.distribute.MirroredStrategy(devices=devices)
    with strategy.scope():
        yield strategy.num_replicas_in_sync


def even_batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, multiple: int):
    """Shuffled batches over in-memory arrays whose sizes all divide by ``multiple``.

    JAX's data parallelism splits every batch evenly across the devices, so a last batch of,
    say, 3 images cannot go to 2 devices. Each epoch takes a fresh seeded permutation and
    completes it with its own first images up to a multiple of ``multiple`` (fewer than
    ``multiple`` repeats): every image is still seen once per epoch.
    """
    import keras

    class EvenBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.epoch = 0
            self.order = self._order()

        def _order(self):
            order = np.random.default_rng([seed, self.epoch]).permutation(len(x))
            return np.concatenate([order, order[:(-len(order)) % multiple]])

        def __len__(self):
            return math.ceil(len(self.order) / batch_size)

        def __getitem__(self, i):
            idx = self.order[i * batch_size:(i + 1) * batch_size]
            return x[idx], y[idx]

        def on_epoch_end(self):
            self.epoch += 1
            self.order = self._order()

    return EvenBatches()


# --------------------------------------------------------------------------- callbacks

def control_callbacks(config: TrainConfig) -> list:
    """The callbacks that steer training by the monitored validation metric: ReduceLROnPlateau
    under the plateau schedule (a cosine schedule sets the rate itself) and early stopping
    unless ``patience=0``."""
    import keras

    mode = config.monitor_mode
    found = []
    if config.schedule == "plateau":
        found.append(keras.callbacks.ReduceLROnPlateau(
            monitor=config.monitor, mode=mode, factor=config.reduce_lr_factor,
            patience=config.reduce_lr_patience, min_lr=config.min_learning_rate))
    if config.patience > 0:
        found.append(keras.callbacks.EarlyStopping(monitor=config.monitor, mode=mode,
                                                   patience=config.patience))
    return found


def _keras_callback_base():
    import keras

    return keras.callbacks.Callback


def make_history_logger(csv_path: Path, json_path: Path):
    """A callback that rewrites the history CSV/JSON after every epoch, keyed by epoch.

    On a resumed run it keeps only the epochs before the resume point, so the
    file never holds a gap or a duplicate.
    """
    class HistoryLogger(_keras_callback_base()):
        def on_train_begin(self, logs=None):
            start = getattr(self.model, "_initial_epoch", None) or 0
            self.rows = []
            if csv_path.is_file() and start > 0:
                old = pd.read_csv(csv_path)
                self.rows = old[old["epoch"] < start].to_dict("records")
            self._t = time.perf_counter()

        def on_epoch_begin(self, epoch, logs=None):
            self._t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            row = {"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}}
            row["learning_rate"] = float(np.asarray(self.model.optimizer.learning_rate))
            row["seconds"] = time.perf_counter() - self._t
            self.rows = [r for r in self.rows if r["epoch"] != epoch] + [row]
            frame = pd.DataFrame(self.rows).sort_values("epoch")
            atomic_write_bytes(csv_path, frame.to_csv(index=False).encode())
            write_json(json_path, frame.to_dict("list"))

    return HistoryLogger()


def make_progress_line(epochs: int, stream=None):
    """A callback that writes one line per epoch (epoch, elapsed time, ETA, validation accuracy)
    to the process's own stderr, which a notebook run under papermill leaves on the terminal:
    ``make report`` shows training progress instead of minutes of silence."""
    import sys

    class ProgressLine(_keras_callback_base()):
        def on_train_begin(self, logs=None):
            self._t0, self._start = time.perf_counter(), getattr(self.model, "_initial_epoch", None) or 0

        def on_epoch_end(self, epoch, logs=None):
            done = epoch + 1 - self._start
            elapsed = time.perf_counter() - self._t0
            left = elapsed / max(done, 1) * (epochs - epoch - 1)
            val = (logs or {}).get("val_accuracy")
            print(f"[fer_helpers] epok/epoch {epoch + 1}/{epochs} · {elapsed / 60:.1f} dk · kalan/ETA ≈ "
                  f"{left / 60:.1f} dk" + (f" · val_accuracy {val:.4f}" if val is not None else ""),
                  file=stream or sys.__stderr__, flush=True)

    return ProgressLine()


def make_nan_guard(state: dict):
    """TerminateOnNaN that says so clearly and records it for the metadata."""
    import keras

    class NanGuard(keras.callbacks.TerminateOnNaN):
        def on_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not np.isfinite(float(loss)):
                state["terminated_on_nan"] = True
                print(f"\n[fer_helpers] Kayıp NaN/sonsuz oldu (batch {batch}); eğitim durduruldu. "
                      "Son iyi kontrol noktası (best.keras) korunuyor. "
                      "Loss became NaN/inf: training stopped, the last good checkpoint is kept.")
            super().on_batch_end(batch, logs)

    return NanGuard()


def make_state_restorer(csv_path: Path, monitor: str, mode: str, callbacks: list):
    """After a resume, give checkpoint/early-stopping/plateau callbacks their memory back.

    Keras rebuilds these callbacks fresh, so without this a resumed run would
    overwrite ``best.keras`` with a worse model and restart its patience count.
    """
    class StateRestorer(_keras_callback_base()):
        def on_train_begin(self, logs=None):
            start = getattr(self.model, "_initial_epoch", None) or 0
            if start == 0 or not csv_path.is_file():
                return
            hist = pd.read_csv(csv_path)
            hist = hist[hist["epoch"] < start]
            if monitor not in hist or hist.empty:
                return
            values = hist[monitor].to_numpy()
            best_i = int(np.nanargmax(values) if mode == "max" else np.nanargmin(values))
            since = len(values) - 1 - best_i
            for cb in callbacks:
                if hasattr(cb, "best"):
                    cb.best = float(values[best_i])
                if hasattr(cb, "wait"):
                    cb.wait = since
                if hasattr(cb, "best_epoch"):
                    cb.best_epoch = int(hist["epoch"].iloc[best_i])

    return StateRestorer()


# --------------------------------------------------------------------------- training

@dataclass
class TrainResult:
    model_path: Path
    history: pd.DataFrame
    metadata: dict


def _train_arrays(data: Dataset, config: TrainConfig):
    train = data.get_split("train")
    if config.max_train_images and len(train) > config.max_train_images:
        # Quick mode: a stratified subset keeps every class represented.
        from .data import stratified_split

        frac = config.max_train_images / len(train)
        train = train.subset(stratified_split(train.labels, frac, config.seed))
    val = data.get_split("val")
    k = len(data.classes)
    y_train = training_targets(train.labels, k, train.soft_labels, config.targets)
    if config.distill_from:
        # The student's validation names go along: the teacher must not have trained on them.
        teacher = teacher_probabilities(config.distill_from, train.names, data.classes,
                                        validation=data.get_split("val").names)
        y_train = distillation_targets(y_train, teacher, config.distill_weight, config.distill_temperature)
    y_val = training_targets(val.labels, k, val.soft_labels, config.targets)
    x_train, x_val = train.images[..., None], val.images[..., None]
    class_weight = None
    if config.imbalance == "class_weight":
        class_weight = balanced_class_weights(train.labels, k)
    elif config.imbalance == "oversample":
        idx = oversample_indices(train.labels, config.seed, config.oversample_fraction)
        x_train, y_train = x_train[idx], y_train[idx]
    return x_train, y_train, x_val, y_val, class_weight


def save_teacher_probabilities(path, names: np.ndarray, probs: np.ndarray, classes, source: dict, *,
                               held_out) -> Path:
    """Write a teacher's class probabilities on training images for distillation: image names,
    an N×K float16 matrix (no pixels), the names of the images the teacher was *not* trained on
    (``held_out``: its validation split) and what produced them (``source``, e.g. the teacher's
    run and its training FLOPs).

    ``held_out`` is what lets a student prove its validation is clean: a teacher that trained on
    the student's validation images would pass what it learnt there on through its probabilities.
    """
    import io
    import json

    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 2 or probs.shape != (len(names), len(classes)):
        raise ValueError(f"probs must be {len(names)}×{len(classes)}, got {probs.shape}")
    buf = io.BytesIO()
    np.savez_compressed(buf, names=np.asarray(names).astype(str), probs=probs.astype(np.float16),
                        classes=np.asarray(classes), held_out=np.asarray(held_out).astype(str),
                        source=np.array(json.dumps(source)))
    return atomic_write_bytes(Path(path), buf.getvalue())


def teacher_probabilities(path, names: np.ndarray, classes, validation=()) -> np.ndarray:
    """The teacher's probabilities for ``names`` (rows in that order), from
    ``save_teacher_probabilities``'s file; a clear error for a missing file, other classes, an
    image the teacher never saw, or a ``validation`` image (the student's) the teacher trained on."""
    path = Path(path)
    if not path.is_file():
        raise TrainingConfigError(f"{path}: teacher probabilities not found (distill_from)")
    try:
        with np.load(path, allow_pickle=False) as z:
            t_names, t_probs, t_classes = z["names"], z["probs"].astype(np.float32), tuple(z["classes"])
            held_out = set(z["held_out"]) if "held_out" in z.files else None
    except (OSError, ValueError, KeyError) as exc:
        raise TrainingConfigError(f"{path}: not a teacher-probability file ({exc})") from exc
    if t_classes != tuple(classes):
        raise TrainingConfigError(f"{path}: teacher classes {t_classes} differ from the data's {tuple(classes)}")
    row = {n: i for i, n in enumerate(t_names)}
    missing = [n for n in names if n not in row]
    if missing:
        raise TrainingConfigError(f"{path}: no teacher probabilities for {len(missing)} training image(s), "
                                  f"e.g. {missing[0]}")
    validation = list(validation)
    if validation:
        if held_out is None:
            raise TrainingConfigError(f"{path}: the file does not record which images its teacher was trained "
                                      "without (held_out), so the student's validation cannot be shown to be "
                                      "clean; write it again with save_teacher_probabilities")
        seen = [n for n in validation if n not in held_out]
        if seen:
            raise TrainingConfigError(
                f"{path}: the teacher was trained on {len(seen)} of the student's {len(validation)} validation "
                f"images (e.g. {seen[0]}); distil from a teacher with the student's validation split "
                "(same seed and val_fraction), or the student's validation numbers are not held out")
    return t_probs[[row[n] for n in names]]


def distillation_targets(targets: np.ndarray, teacher: np.ndarray, weight: float,
                         temperature: float = 1.0) -> np.ndarray:
    """(1 − weight)·targets + weight·teacher^(1/T), the teacher renormalised after softening.

    A temperature T > 1 lifts the teacher's small probabilities, which carry what it learnt
    about similar classes (Hinton et al., 2015): that Contempt looks like Neutral, say.
    """
    soft = np.power(np.clip(teacher, 1e-8, 1.0), 1.0 / temperature)
    soft /= soft.sum(axis=1, keepdims=True)
    return ((1 - weight) * targets + weight * soft).astype(np.float32)


def make_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int = 0, shuffle: bool = False):
    """What ``model.fit`` reads: on TensorFlow a tf.data pipeline over in-memory arrays (index
    batches, reshuffled every epoch, gathered); on other backends the arrays themselves, which
    Keras batches and shuffles with the seeded NumPy generator.

    tf.data's autotuning is switched off on purpose. Keras' own pipeline for NumPy
    inputs is autotuned, and destroying its iterator at every epoch end waited on
    tf.data's background threads: on 2 CPU cores we measured stalls of up to ~50 s
    per ~90 s epoch with zero CPU use (py-spy: in ``~IteratorResource`` →
    ``UnboundedThreadPool``). Without autotuning the stalls are gone.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return x, y
    import tensorflow as tf

    x_t, y_t = tf.constant(x), tf.constant(y)
    ds = tf.data.Dataset.range(len(x))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(lambda i: (tf.gather(x_t, i), tf.gather(y_t, i))).prefetch(2)
    options = tf.data.Options()
    options.autotune.enabled = False
    options.deterministic = True
    return ds.with_options(options)


def _fit_inputs(x, y, config: TrainConfig, shuffle: bool, replicas: int = 1) -> dict:
    """``model.fit`` arguments for one split, on any backend and any number of replicas."""
    import keras

    if replicas > 1 and keras.backend.backend() == "jax":
        if shuffle:
            return {"x": even_batches(x, y, config.batch_size, config.seed, replicas), "shuffle": False}
        # Validation: pad to a multiple of the replicas with weight-0 copies, which the
        # accuracy ignores (the loss averages over them as zeros: < replicas/len(x) off).
        pad = (-len(x)) % replicas
        idx = np.concatenate([np.arange(len(x)), np.zeros(pad, dtype=int)])
        weight = np.concatenate([np.ones(len(x)), np.zeros(pad)]).astype(np.float32)
        return {"x": x[idx], "y": y[idx], "sample_weight": weight, "batch_size": config.batch_size,
                "shuffle": False}
    data = make_dataset(x, y, config.batch_size, config.seed, shuffle=shuffle)
    if isinstance(data, tuple):
        return {"x": data[0], "y": data[1], "batch_size": config.batch_size, "shuffle": shuffle}
    return {"x": data, "shuffle": False}   # the dataset reshuffles itself every epoch


def _validation_data(inputs: dict | None):
    """``_fit_inputs``' dictionary as ``model.fit``'s ``validation_data``."""
    if inputs is None or "y" not in inputs:
        return inputs and inputs["x"]
    return tuple(inputs[k] for k in ("x", "y", "sample_weight") if k in inputs)


def train_model(data: Dataset, config: TrainConfig, run_dir, verbose: int = 2,
                extra_callbacks: list | None = None) -> TrainResult:
    """Train ``config.model_name`` on ``data`` and write everything into ``run_dir``.

    Writes ``model/best.keras`` (best on validation; a refit's last epoch), ``results/history.csv``
    and ``.json`` (every epoch), and ``results/training.json`` (parameters,
    versions, data fingerprint, timings, best epoch).
    """
    config.validate(data.label_mode)
    has_val = bool((data.split == "val").any())
    if has_val != config.selects_on_validation:
        raise TrainingConfigError(
            f"monitor={config.monitor!r} but the data has {'a' if has_val else 'no'} validation split: "
            "a refit (load_dataset(refit=True)) trains with monitor='none', every other run monitors "
            "'val_accuracy' or 'val_loss'")
    paths = run_paths(run_dir)
    set_seeds(config.seed, config.deterministic)
    x_train, y_train, x_val, y_val, class_weight = _train_arrays(data, config)
    steps = math.ceil(len(x_train) / config.batch_size)
    with replicas_scope(config.data_parallel) as replicas:
        if config.batch_size % replicas:
            raise TrainingConfigError(f"batch_size={config.batch_size} does not split evenly across "
                                      f"{replicas} devices (data_parallel); choose a multiple of {replicas}")
        model = model_for(config, len(data.classes))
        model.compile(optimizer=_make_optimizer(config, steps), loss=make_loss(config),
                      metrics=["accuracy"])
        return _fit_and_record(model, data, config, paths, (x_train, y_train, x_val, y_val, class_weight),
                               replicas, has_val, verbose, extra_callbacks)


def _fit_and_record(model, data: Dataset, config: TrainConfig, paths: dict, arrays: tuple, replicas: int,
                    has_val: bool, verbose: int, extra_callbacks: list | None) -> TrainResult:
    """``train_model``'s second half: callbacks, ``model.fit`` and the run's metadata."""
    import keras

    x_train, y_train, x_val, y_val, class_weight = arrays

    best_path = paths["model"] / "best.keras"
    csv_path, json_path = paths["results"] / "history.csv", paths["results"] / "history.json"
    mode = config.monitor_mode
    state = {"terminated_on_nan": False}
    # A refit has no validation metric: its checkpoint is rewritten every epoch, so best.keras
    # (the name every later stage loads) holds the last epoch.
    checkpoint = keras.callbacks.ModelCheckpoint(best_path, monitor=config.monitor, mode=mode,
                                                 save_best_only=has_val)
    stateful = [checkpoint, *control_callbacks(config)]
    callbacks = [keras.callbacks.BackupAndRestore(str(paths["model"] / "backup"))]
    callbacks += [make_history_logger(csv_path, json_path),
                  make_state_restorer(csv_path, config.monitor, mode, stateful), *stateful,
                  make_nan_guard(state), *(extra_callbacks or [])]
    if os.environ.get("FER_PROGRESS"):      # set by the runner for its notebook kernels
        callbacks.append(make_progress_line(config.epochs))

    started, t0 = now_iso(), time.perf_counter()
    fit = _fit_inputs(x_train, y_train, config, shuffle=True, replicas=replicas)
    val = _fit_inputs(x_val, y_val, config, shuffle=False, replicas=replicas) if has_val else None
    model.fit(**fit, validation_data=_validation_data(val), epochs=config.epochs, class_weight=class_weight,
              callbacks=callbacks, verbose=verbose)
    wall = time.perf_counter() - t0

    history = pd.read_csv(csv_path) if csv_path.is_file() else pd.DataFrame()
    # A resumed run's wall time is that of all its epochs, not only of this process.
    resumed_from = int(getattr(model, "_initial_epoch", None) or 0)
    this_call = wall
    if resumed_from and "seconds" in history:
        wall = float(history["seconds"].sum())
    best_row = None
    if not history.empty and config.monitor in history:
        vals = history[config.monitor]
        best_row = history.loc[vals.idxmax() if mode == "max" else vals.idxmin()]
    epochs_run = int(len(history))
    per_epoch = len(fit["x"].order) if isinstance(fit["x"], keras.utils.PyDataset) else len(x_train)
    images_seen = int(per_epoch) * epochs_run
    metadata = {
        "params": dataclasses.asdict(config),
        "model": {"name": config.model_name, "n_params": count_params(model),
                  "n_classes": len(data.classes), "forward_macs": forward_macs(model)},
        # The budget unit: counted from the layers' shapes and the images seen, not from a clock.
        "compute": {"images_seen": images_seen, "training_flops": training_flops(model, images_seen),
                    "backend": keras.backend.backend(), "devices": accelerator_devices(),
                    "replicas": replicas},
        "data": {**data.summary(), "fingerprint": data_fingerprint(data.images, data.labels),
                 "n_train_used": int(len(x_train)), "n_val": int(len(x_val))},
        "class_weight": class_weight,
        "versions": library_versions(), "machine": machine_info(), "git_commit": git_commit(),
        "start_time": started, "end_time": now_iso(), "wall_time_s": wall,
        "resumed_from_epoch": resumed_from, "wall_time_this_process_s": this_call,
        "epochs_run": epochs_run,
        "train_seconds_total": float(history["seconds"].sum()) if "seconds" in history else wall,
        "mean_epoch_seconds": float(history["seconds"].mean()) if "seconds" in history else None,
        "images_per_second": (len(x_train) * epochs_run / float(history["seconds"].sum())
                              if "seconds" in history and history["seconds"].sum() > 0 else None),
        "best_epoch": int(best_row["epoch"]) + 1 if best_row is not None else None,
        "best_val_accuracy": float(best_row["val_accuracy"]) if best_row is not None else None,
        "best_val_loss": float(best_row["val_loss"]) if best_row is not None else None,
        "stopped_early": bool(config.patience > 0 and epochs_run < config.epochs
                              and not state["terminated_on_nan"]),
        "terminated_on_nan": state["terminated_on_nan"],
        "checkpoint": f"best {config.monitor}" if has_val else "last epoch (refit, no validation)",
        "model_path": str(best_path),
        "test_split_used": False,
    }
    write_json(paths["results"] / "training.json", metadata)
    return TrainResult(model_path=best_path, history=history, metadata=metadata)
