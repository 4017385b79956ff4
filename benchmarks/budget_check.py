"""Will a training recipe fit the 60-minute budget on *this* CPU? Measured in about two minutes.

    python -m benchmarks.budget_check --config configs/ferplus_vgg_mid.yaml [-p precision=float32]

"2 CPU cores" is not one speed: the bfloat16 reference trained in 49 min on a CPU that runs
bfloat16 natively (AMX / AVX512-BF16), while a CPU that emulates it is an order of magnitude
slower. Before committing an hour to a run, this script trains the config's model with the
config's recipe (optimizer, loss, augmentation, precision, determinism) for two short epochs on
the built-in demo set, times the second one's training steps (the first pays for tracing),
measures inference speed, and projects a full run on FER+ (25,605 training and 5,677 validation images per epoch
by default). Writes results/benchmarks/budget_<config stem>[_<overrides>].json.

The projection assumes time scales with the number of steps, which holds for these
fixed-size inputs; it leaves out data loading (seconds, cached), tracing and checkpoint writes.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fer_helpers.artifacts import machine_info, now_iso, write_json
from fer_helpers.data import load_dataset
from fer_helpers.models import images_per_second, load_model, predict_proba
from fer_helpers.report import TRAINING_BUDGET_MIN
from fer_helpers.runner import load_config, parse_overrides
from fer_helpers.training import TrainConfig, train_model

ROOT = Path(__file__).resolve().parents[1]


def make_step_timer():
    """A Keras callback that times consecutive training steps of the last epoch.

    Timing steps, not the whole epoch, leaves out the per-epoch costs (validation set-up,
    checkpoint writes) that weigh heavily in a 21-step demo epoch but little in a 400-step one.
    """
    import keras

    class StepTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.ends = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

        def step_seconds(self) -> float:
            return float(np.median(np.diff(self.ends)))

    return StepTimer()


def project(step_s: float, batch_size: int, infer_ips: float, epochs: int, n_train: int, n_val: int) -> dict:
    """Minutes for ``epochs`` epochs of ``n_train`` training and ``n_val`` validation images."""
    epoch_s = math.ceil(n_train / batch_size) * step_s + n_val / infer_ips
    return {"epoch_seconds": epoch_s, "run_minutes": epochs * epoch_s / 60}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "configs" / "ferplus_vgg_mid.yaml"))
    ap.add_argument("-p", "--param", action="append", default=[], help="override a param: name=value")
    ap.add_argument("--n-train", type=int, default=25605, help="training images per epoch to project")
    ap.add_argument("--n-val", type=int, default=5677, help="validation images per epoch to project")
    ap.add_argument("--budget-min", type=float, default=TRAINING_BUDGET_MIN)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    params = {**load_config(args.config).get("params", {}), **parse_overrides(args.param)}
    full = TrainConfig.from_params(params)
    # Two epochs on the demo set with the same recipe; the schedule's length does not change a step's cost.
    probe = dataclasses.replace(full, epochs=2, patience=0)
    data = load_dataset("demo", label_mode=params.get("label_mode", "plurality"),
                        val_fraction=params.get("val_fraction", 0.2), seed=full.seed)
    n_train, n_val = int((data.split == "train").sum()), int((data.split == "val").sum())
    with tempfile.TemporaryDirectory() as tmp:
        timer = make_step_timer()
        res = train_model(data, probe, tmp, verbose=0, extra_callbacks=[timer])
        history = pd.read_csv(Path(tmp) / "results" / "history.csv")
        model = load_model(res.model_path)
        infer_ips = images_per_second(lambda x: predict_proba(model, x), data.get_split("val").images)
    step_s = timer.step_seconds()
    result = {"config": args.config, "overrides": parse_overrides(args.param),
              "model_name": full.model_name, "precision": full.precision, "epochs": full.epochs,
              "probe": {"data": "demo", "train_images": n_train, "val_images": n_val,
                        "epoch2_seconds": float(history["seconds"].iloc[-1])},
              "batch_size": full.batch_size, "step_seconds": step_s,
              "train_images_per_second": full.batch_size / step_s, "inference_images_per_second": infer_ips,
              "projected_for": {"train_images": args.n_train, "val_images": args.n_val},
              **project(step_s, full.batch_size, infer_ips, full.epochs, args.n_train, args.n_val),
              "budget_minutes": args.budget_min, "machine": machine_info(), "time": now_iso()}
    result["fits_budget"] = result["run_minutes"] <= args.budget_min
    suffix = "".join(f"_{k}-{v}" for k, v in result["overrides"].items())
    out = Path(args.out or ROOT / "results" / "benchmarks" / f"budget_{Path(args.config).stem}{suffix}.json")
    write_json(out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
    return result


if __name__ == "__main__":
    main()
