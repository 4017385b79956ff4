"""Training-step time of the package's models on the current Keras backend and device.

Times ``model.fit`` steps (after the first, which compiles) for a few model / augmentation
settings on random uint8 faces, so that a slow part of the step (the network, the
augmentation layers, the input pipeline) shows up by difference. Prints one JSON line per
setting, with the device the weights live on.

    KERAS_BACKEND=jax python -m benchmarks.step_time --steps 12 --deadline 200
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

SETTINGS = [  # (width, augmentation, erasing)
    (16, "none", 0.0), (16, "wide", 0.0), (16, "wide", 0.5), (32, "wide", 0.5), (32, "none", 0.0)]


def time_setting(width: int, augmentation: str, erasing: float, steps: int, batch: int) -> dict:
    import keras

    from fer_helpers.models import build_model

    model = build_model("resnet", width=width, augmentation=augmentation, erasing=erasing)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
                  loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch * (steps + 1), 48, 48, 1), dtype=np.uint8)
    y = np.eye(8, dtype=np.float32)[rng.integers(0, 8, len(x))]
    times = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch_i, logs=None):
            self.t = time.perf_counter()

        def on_train_batch_end(self, batch_i, logs=None):
            times.append(time.perf_counter() - self.t)

    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, callbacks=[Clock()])
    var = model.trainable_variables[0].value
    device = str(getattr(var, "devices", lambda: getattr(var, "device", "?"))())
    return {"width": width, "augmentation": augmentation, "erasing": erasing, "batch": batch,
            "first_step_s": round(times[0], 3), "median_step_s": round(float(np.median(times[1:])), 4),
            "backend": keras.backend.backend(), "weights_on": device}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--deadline", type=float, default=600, help="seconds; settings not started by then are skipped")
    args = ap.parse_args(argv)
    t0 = time.time()
    for width, aug, erasing in SETTINGS:
        if time.time() - t0 > args.deadline:
            print(json.dumps({"skipped": [width, aug, erasing]}), flush=True)
            continue
        print(json.dumps(time_setting(width, aug, erasing, args.steps, args.batch)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
