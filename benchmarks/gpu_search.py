"""A wider search on a lent GPU: how far do epochs, width and augmentation take our VGGs?

The reference model must train on 2 CPU cores in ≤ 60 min, which allows about
20-45 epochs of ``vgg_fast``. A GPU, when one is lent for a few minutes, answers
the questions the CPU budget cannot: does accuracy keep rising with more epochs,
with a wider net, with stronger augmentation? The answers choose what to spend the
CPU budget on. Everything here is selected on **validation only** (the same
stratified 20% of FER2013Train as every CPU run); FER2013Valid and FER2013Test do
not travel to the GPU machine at all.

The GPU machine has no TensorFlow, so this runs Keras 3 on JAX with the package's
own models, optimiser, schedule, loss and oversampling (``fer_helpers``); only the
input pipeline differs (Keras' NumPy adapter instead of our tf.data one).

    # here: pack train+val as lossless PNG mosaics (fits the 64 MiB transfer limit)
    python benchmarks/gpu_search.py pack --data ../shared/data/ferplus --out .devdata
    # there: run the grid, 6 trainings at a time on one GPU
    KERAS_BACKEND=jax python benchmarks/gpu_search.py run --pack .devdata --out $OUT/search.json

Status (2026-11-26, one H200 lent for 15 minutes): the whole path ran there (data,
models, a 1-epoch smoke run on 600 images), but that smoke epoch took 80 s for 11
steps, i.e. XLA compilation dominates, and no full epoch finished within 460 s with
12 trainings at a time nor within 170 s with 2, so the grid gave no numbers. Likely
(not established): every new batch shape compiles anew (the last, partial batch of
fit and predict) and parallel compiles share 16 CPU cores. To try next: fixed batch
shapes (drop the remainder, pad predict), JAX's persistent compilation cache, fewer
lanes.

Results: ``results/gpu_search.json`` (one entry per configuration: settings,
per-epoch validation history, epoch seconds, best-epoch validation accuracy,
macro-F1 and per-class recall).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MOSAIC_SIDE = 64        # images per mosaic row and column (3072×3072 px PNG)
BASE = dict(model="vgg_fast", epochs=20, augmentation="study", oversample_fraction=0.15,
            learning_rate=0.002, batch_size=64, seed=42)
#: The grid, most informative first (a timeout keeps what finished). Each name says
#: what differs from BASE: the final CPU configuration with study augmentation.
GRID = {
    "fast_e20": {},                                       # = the CPU run final_s42_studyaug (val 79.60%)
    "fast_e45": {"epochs": 45},                           # what 60 min on 2 CPU cores allows
    "vgg_e20": {"model": "vgg"},
    "fast_e45_strong": {"epochs": 45, "augmentation": "strong"},
    "fast_e80": {"epochs": 80},
    "vgg_e45": {"model": "vgg", "epochs": 45},
    "fast_e45_os30": {"epochs": 45, "oversample_fraction": 0.3},
    "wide_e45": {"model": "vgg_wide", "epochs": 45},
    "vgg_e80_strong": {"model": "vgg", "epochs": 80, "augmentation": "strong"},
    "wide_e80_strong": {"model": "vgg_wide", "epochs": 80, "augmentation": "strong"},
    "fast_e30": {"epochs": 30},
    "fast_e45_b128": {"epochs": 45, "batch_size": 128, "learning_rate": 0.004},
}


# --------------------------------------------------------------------------- pack (here)

def _to_mosaics(images: np.ndarray) -> list[np.ndarray]:
    """N×48×48 uint8 → square mosaics of MOSAIC_SIDE² tiles (the last one zero-padded)."""
    per = MOSAIC_SIDE * MOSAIC_SIDE
    out = []
    for start in range(0, len(images), per):
        tiles = np.zeros((per, 48, 48), np.uint8)
        chunk = images[start:start + per]
        tiles[:len(chunk)] = chunk
        out.append(tiles.reshape(MOSAIC_SIDE, MOSAIC_SIDE, 48, 48).transpose(0, 2, 1, 3)
                   .reshape(MOSAIC_SIDE * 48, MOSAIC_SIDE * 48))
    return out


def _from_mosaics(mosaics: list[np.ndarray], n: int) -> np.ndarray:
    tiles = [m.reshape(MOSAIC_SIDE, 48, MOSAIC_SIDE, 48).transpose(0, 2, 1, 3).reshape(-1, 48, 48)
             for m in mosaics]
    return np.concatenate(tiles)[:n]


def pack(data_dir: str, out: Path, seed: int = 42) -> None:
    """Write train/val images as PNG mosaics and their soft targets/labels as one .npz."""
    from PIL import Image

    from fer_helpers import load_dataset

    data = load_dataset(data_dir, label_mode="distribution", val_fraction=0.2, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split in ("train", "val"):
        part = data.get_split(split)
        for i, m in enumerate(_to_mosaics(part.images)):
            Image.fromarray(m).save(out / f"{split}_{i:02d}.png", optimize=False)
        arrays.update({f"y_{split}": part.soft_labels.astype(np.float32),
                       f"l_{split}": part.labels, f"n_{split}": len(part)})
        # Packing must be lossless: decode and compare.
        back = _load_images(out, split, len(part))
        if not np.array_equal(back, part.images):
            raise RuntimeError(f"{out}: PNG mosaics of {split} do not decode to the same pixels")
    np.savez_compressed(out / "targets.npz", classes=np.array(data.classes), **arrays)
    print(f"packed {arrays['n_train']} train + {arrays['n_val']} val images into {out}")


def _load_images(folder: Path, split: str, n: int) -> np.ndarray:
    from PIL import Image

    files = sorted(folder.glob(f"{split}_*.png"))
    if not files:
        raise FileNotFoundError(f"{folder}: no {split}_*.png mosaics (run the 'pack' step first)")
    return _from_mosaics([np.asarray(Image.open(f)) for f in files], n)


def load_pack(folder: Path) -> dict:
    z = np.load(folder / "targets.npz")
    out = {k: z[k] for k in z.files}
    for split in ("train", "val"):
        out[f"x_{split}"] = _load_images(folder, split, int(out[f"n_{split}"]))
    return out


# --------------------------------------------------------------------------- one training (there)

def train_config(settings: dict):
    """The package's TrainConfig for one grid entry (BASE with its changes), validated."""
    from fer_helpers.training import TrainConfig

    s = {**BASE, **settings}
    return TrainConfig(model_name=s["model"], epochs=s["epochs"], batch_size=s["batch_size"],
                       learning_rate=s["learning_rate"], optimizer="adamw", schedule="cosine",
                       warmup_epochs=1, targets="soft", imbalance="oversample",
                       oversample_fraction=s["oversample_fraction"], augmentation=s["augmentation"],
                       seed=s["seed"]).validate("distribution")


def train_one(name: str, settings: dict, pack_dir: Path, out_json: Path, smoke: bool = False) -> None:
    """Train one configuration; rewrite ``out_json`` after every epoch (a kill keeps the epochs run)."""
    import keras

    from fer_helpers.evaluation import classification_metrics
    from fer_helpers.models import build_model
    from fer_helpers.preprocessing import oversample_indices
    from fer_helpers.training import _make_optimizer, make_loss

    s = {**BASE, **settings}
    out_json.parent.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(s["seed"])
    d = load_pack(pack_dir)
    if smoke:   # a quick check of the whole path before a GPU is spent on it
        s["epochs"] = 1
        for split, n in (("train", 600), ("val", 300)):
            for k in ("x", "y", "l"):
                d[f"{k}_{split}"] = d[f"{k}_{split}"][:n]
    classes = [str(c) for c in d["classes"]]
    idx = oversample_indices(d["l_train"], s["seed"], s["oversample_fraction"])
    x_train, y_train = d["x_train"][idx][..., None].astype(np.float32), d["y_train"][idx]
    x_val = d["x_val"][..., None].astype(np.float32)
    config = train_config(s)
    steps = int(np.ceil(len(x_train) / config.batch_size))
    model = build_model(config.model_name, len(classes), config.augmentation, config.seed)
    model.compile(optimizer=_make_optimizer(config, steps), loss=make_loss(config), metrics=["accuracy"])
    record = {"name": name, "settings": s, "backend": keras.backend.backend(),
              "n_params": int(model.count_params()), "n_train_used": int(len(x_train)),
              "history": [], "best": None}

    class Track(keras.callbacks.Callback):
        """Per-epoch validation metrics; keeps the best epoch's (by val accuracy) like the CPU checkpoint."""

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self.t0
            probs = self.model.predict(x_val, batch_size=1024, verbose=0)
            m = classification_metrics(d["l_val"], probs, classes)
            row = {"epoch": epoch + 1, "seconds": round(seconds, 2), "loss": float(logs["loss"]),
                   "val_accuracy": m["accuracy"], "val_macro_f1": m["macro_f1"]}
            record["history"].append(row)
            if record["best"] is None or m["accuracy"] > record["best"]["val_accuracy"]:
                record["best"] = {"epoch": epoch + 1, "val_accuracy": m["accuracy"],
                                  "val_macro_f1": m["macro_f1"],
                                  "val_recall": {r["class"]: r["recall"] for r in m["per_class"]}}
            out_json.write_text(json.dumps(record, indent=1))

    t0 = time.perf_counter()
    model.fit(x_train, y_train, batch_size=config.batch_size, epochs=config.epochs, shuffle=True,
              callbacks=[Track()], verbose=0)
    record["wall_s"] = round(time.perf_counter() - t0, 1)
    record["finished"] = True
    out_json.write_text(json.dumps(record, indent=1))


# --------------------------------------------------------------------------- the grid (there)

def run_grid(pack_dir: Path, out: Path, names: list[str], lanes: int, work: Path,
             smoke: bool = False) -> None:
    """Run ``names`` from GRID, ``lanes`` processes at a time; merge results into ``out`` every 10 s."""
    import platform

    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
           "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "jax")}
    queue, running = list(names), {}
    started = time.time()

    def merge():
        results = [json.loads(p.read_text()) for n in names if (p := work / f"{n}.json").is_file()]
        out.write_text(json.dumps({"machine": platform.node(), "gpu": _gpu_name(),
                                   "elapsed_s": round(time.time() - started, 1),
                                   "selection": "validation only (stratified 20% of FER2013Train)",
                                   "results": results}, indent=1))

    while queue or running:
        while queue and len(running) < lanes:
            n = queue.pop(0)
            log = open(work / f"{n}.log", "w")
            running[n] = subprocess.Popen([sys.executable, __file__, "one", n, "--pack", str(pack_dir),
                                           "--work", str(work), *(["--smoke"] if smoke else [])], env=env, stdout=log, stderr=subprocess.STDOUT)
        time.sleep(10)
        for n, p in list(running.items()):
            if p.poll() is not None:
                print(f"{n}: exit {p.returncode} after {time.time() - started:.0f} s", flush=True)
                if p.returncode:
                    print((work / f"{n}.log").read_text()[-3000:], flush=True)
                del running[n]
        merge()
    merge()


def _gpu_name() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--data", default=os.environ.get("FER_DATA_DIR"))
    p.add_argument("--out", type=Path, default=ROOT / ".devdata")
    r = sub.add_parser("run")
    r.add_argument("--pack", type=Path, default=ROOT / ".devdata")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--configs", nargs="*", default=list(GRID))
    r.add_argument("--lanes", type=int, default=6)
    r.add_argument("--work", type=Path, default=Path("/tmp/gpu_search"))
    r.add_argument("--smoke", action="store_true", help="each configuration: 1 epoch on 600 images")
    o = sub.add_parser("one")
    o.add_argument("name", choices=list(GRID))
    o.add_argument("--pack", type=Path, required=True)
    o.add_argument("--work", type=Path, required=True)
    o.add_argument("--smoke", action="store_true", help="1 epoch on 600 images")
    a = ap.parse_args(argv)
    if a.cmd == "pack":
        if not a.data:
            ap.error("give --data or set FER_DATA_DIR")
        pack(a.data, a.out)
    elif a.cmd == "run":
        unknown = sorted(set(a.configs) - set(GRID))
        if unknown:
            ap.error(f"unknown configurations {unknown}; choose from {list(GRID)}")
        run_grid(a.pack, a.out, a.configs, a.lanes, a.work, a.smoke)
    else:
        train_one(a.name, GRID[a.name], a.pack, a.work / f"{a.name}.json", a.smoke)


if __name__ == "__main__":
    main()
