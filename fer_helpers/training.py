"""Training loop: losses, imbalance handling, callbacks, resume and run metadata.

``train_model(data, config, run_dir)`` trains on ``data``'s train split, selects
on its val split (checkpoint, early stopping, learning-rate schedule), and never
touches its test split. A refit (data without a val split, ``monitor="none"``)
has nothing to select on: it keeps the last epoch. A killed run started again
with the same arguments resumes from its last finished epoch (Keras
``BackupAndRestore``) and the history it writes has neither gaps nor duplicate epochs.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .artifacts import (atomic_write_bytes, data_fingerprint, git_commit, library_versions,
                        machine_info, now_iso, run_paths, write_json)
from .data import Dataset
from .models import MODEL_NAMES, PRECISIONS, build_model, count_params, default_augmentation
from .preprocessing import (IMBALANCE_STRATEGIES, balanced_class_weights, oversample_indices,
                            training_targets)

LOSSES = ("crossentropy", "focal")
SCHEDULES = ("plateau", "cosine")
OPTIMIZERS = ("adam", "adamw")
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
    precision: str = "float32"
    seed: int = 42
    max_train_images: int | None = None
    monitor: str = "val_accuracy"
    deterministic: bool = True

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
            initial_learning_rate=lr / 10 if warm else lr, decay_steps=total - warm, alpha=0.01,
            warmup_target=lr if warm else None, warmup_steps=warm)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=lr, weight_decay=config.weight_decay)
    return keras.optimizers.Adam(learning_rate=lr)


def set_seeds(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and TensorFlow; optionally make TF ops deterministic."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


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
    y_val = training_targets(val.labels, k, val.soft_labels, config.targets)
    x_train, x_val = train.images[..., None], val.images[..., None]
    class_weight = None
    if config.imbalance == "class_weight":
        class_weight = balanced_class_weights(train.labels, k)
    elif config.imbalance == "oversample":
        idx = oversample_indices(train.labels, config.seed, config.oversample_fraction)
        x_train, y_train = x_train[idx], y_train[idx]
    return x_train, y_train, x_val, y_val, class_weight


def make_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int = 0, shuffle: bool = False):
    """A tf.data pipeline over in-memory arrays: index batches, reshuffled every epoch, gathered.

    tf.data's autotuning is switched off on purpose. Keras' own pipeline for NumPy
    inputs is autotuned, and destroying its iterator at every epoch end waited on
    tf.data's background threads: on 2 CPU cores we measured stalls of up to ~50 s
    per ~90 s epoch with zero CPU use (py-spy: in ``~IteratorResource`` →
    ``UnboundedThreadPool``). Without autotuning the stalls are gone (95 s epochs
    instead of 135-145 s for ``vgg_fast`` on one core).
    """
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


def train_model(data: Dataset, config: TrainConfig, run_dir, verbose: int = 2,
                extra_callbacks: list | None = None) -> TrainResult:
    """Train ``config.model_name`` on ``data`` and write everything into ``run_dir``.

    Writes ``model/best.keras`` (best on validation; a refit's last epoch), ``results/history.csv``
    and ``.json`` (every epoch), and ``results/training.json`` (parameters,
    versions, data fingerprint, timings, best epoch).
    """
    import keras

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

    model = build_model(config.model_name, len(data.classes), config.augmentation, config.seed,
                        config.precision)
    model.compile(optimizer=_make_optimizer(config, steps), loss=make_loss(config),
                  metrics=["accuracy"])

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

    started, t0 = now_iso(), time.perf_counter()
    model.fit(make_dataset(x_train, y_train, config.batch_size, config.seed, shuffle=True),
              validation_data=make_dataset(x_val, y_val, config.batch_size) if has_val else None,
              epochs=config.epochs, class_weight=class_weight, callbacks=callbacks, verbose=verbose,
              shuffle=False)   # the dataset reshuffles itself every epoch
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
    metadata = {
        "params": dataclasses.asdict(config),
        "model": {"name": config.model_name, "n_params": count_params(model),
                  "n_classes": len(data.classes)},
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
