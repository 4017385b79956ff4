"""A wider search on a lent GPU: how far do epochs, width and augmentation take our VGGs?

The reference model must train on 2 CPU cores in ≤ 60 min, which allows about
50 epochs of ``vgg_fast``. A GPU, when one is lent for a few minutes, answers the
questions the CPU budget cannot: does validation accuracy keep rising with more
epochs, with a wider net, with stronger augmentation, and where is the ceiling of
this model family? The answers choose what to spend the CPU budget on. Everything
here is selected on **validation only** (the same stratified 20% of FER2013Train as
every CPU run); FER2013Valid and FER2013Test do not travel to the GPU machine.

The GPU machine has PyTorch but no TensorFlow, so the search trains a **PyTorch
mirror** of the package's Keras recipe (``torch_vgg``, ``augment_batch``,
``lr_at_step``): the same VGG stages, BatchNorm (momentum 0.9, ε 10⁻³), dropout,
Glorot initialisation, augmentation (flip, ±10° rotation, optional ±10% shift and
zoom, brightness ±0.15, contrast factor 1.0–1.2, with Keras' clipping), soft-target
cross-entropy, AdamW (ε 10⁻⁷, weight decay 10⁻⁴), cosine decay with linear warm-up,
the package's own rare-class oversampling and the checkpoint rule (best validation
accuracy). Random streams differ from TensorFlow's, so ``fast_e30_s42`` is run as a
calibration against the CPU run with the same settings and split: 81.45% vs 81.47%
validation accuracy, macro-F1 0.660 vs 0.660 (H200, 2026-11-26). A ``precision`` of
"mixed_bfloat16" runs the forward pass under ``torch.autocast(bfloat16)`` with a
float32 loss, as Keras' policy of that name does (float32 weights and softmax head).

Why not Keras itself on the GPU (measured on this machine's CPU, 2026-11-26):
on JAX, a training step of ``vgg_fast`` with the augmentation layers took 2.5 s
(0.33 s without them), the likely reason the earlier JAX attempt finished no epoch
in its window; on Keras' torch backend each step costs about 23 ms of Python overhead,
i.e. 11 s per epoch whatever the GPU, too slow for a 10-minute lease.

    # here: pack train+val as lossless PNG mosaics (fits the 64 MiB transfer limit)
    python -m research.gpu_search pack --data ../shared/data/ferplus --out .devdata
    # there: every configuration in its own process, results merged every 10 s
    python -m research.gpu_search run --pack .devdata --out $OUT/search.json --budget 500

    # here: one table of every lease's results and the verdicts of the rules (what the report shows)
    python -m research.gpu_search summarize results/gpu_search/*.json

Leases: 1-2 on an H200 (epochs, width, augmentation; equal CPU cost), 3-4 on an H100
(bfloat16 compute, which the CPU runs about twice as fast; seed spread of ``vgg`` in bf16),
5-6 on an H100 (2026-11-27: EMA, MixUp and random erasing on the reference recipe; the EMA
runs of those leases are invalid and listed in ``EXCLUDED``), 7 on an H100 (EMA again, fixed,
at decays 0.999, 0.9995 and 0.9998, with the plain recipe rerun beside it), 8 and 8b on an
H200 (2026-11-28: peak learning rate and batch size), 9 and 9c on an H200 (dropout; label
smoothing). From lease 7 on, each screen has a rule committed before it ran
(``docs/decision_rules/gpu_lease*.txt``); ``SCREENS`` restates each rule's thresholds and
``screen_verdict`` applies them to the summary table, so the verdicts are computed, not typed.

Results: ``results/gpu_search/*.json`` as each lease returned them (per configuration:
settings, per-epoch validation history and seconds, best-epoch validation accuracy,
macro-F1 and per-class recall, and the last epoch's), ``results/gpu_search.csv`` and
``results/gpu_search_verdicts.csv``.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from research.decision import UNDECIDED, relative, rule_path, verdict

ROOT = Path(__file__).resolve().parents[1]

MOSAIC_SIDE = 64        # images per mosaic row and column (3072×3072 px PNG)
BASE = dict(model="vgg_fast", epochs=30, augmentation="study", oversample_fraction=0.15,
            learning_rate=0.002, batch_size=64, label_smoothing=0.0, weight_decay=1e-4,
            precision="float32", seed=42, ema=0.0, mixup=0.0, erase=0.0, dropout=0.4)
#: Mirror-only probes (leases 5-6), none of them in the package yet, each with a Keras 3
#: counterpart a CPU candidate would use: ``ema`` = decay of an exponential moving
#: average of the weights, validated and checkpointed in place of the live weights
#: (``keras.optimizers.AdamW(use_ema=True, ema_momentum=...)``; BatchNorm statistics stay
#: the live model's, as there); ``mixup`` = Beta(α, α) per-image mixing weight of images
#: and soft targets with a shuffled copy of the batch (``keras.layers.MixUp(alpha)``);
#: ``erase`` = probability of one random rectangle (2-25% of the face, aspect 0.3-3.3)
#: filled with uniform noise, after the other augmentation (``keras.layers.RandomErasing``).
#: All three cost next to nothing on the CPU, so they fit the 60-minute budget as they are.
#: Each maps to the upper bound of its setting (0 = off).
PROBE_BOUNDS = {"ema": 1.0, "mixup": math.inf, "erase": 1.0}
#: Every mirror-only setting's upper bound (its lower bound is 0). ``dropout`` (lease 9) is
#: ``build_vgg``'s argument: the head's rate and the cap of the stages' 0.1·stage rates
#: (BASE's 0.4 is the package's default: stages 0.1-0.4, head 0.4). The package's
#: TrainConfig does not vary it; a CPU candidate would add it there.
MIRROR_BOUNDS = {**PROBE_BOUNDS, "dropout": 1.0}
#: Stage widths and conv counts: the package's ``VGG_VARIANTS`` plus ``vgg_xl``, a
#: ceiling probe (too slow for the CPU budget, so not in the package).
EXTRA_VARIANTS = {"vgg_xl": ((64, 128, 256, 512), (2, 2, 2, 2))}
#: The grid, most important first: lanes start in this order, and a budget stop keeps
#: every finished run and the per-epoch history of unfinished ones. Each name says what
#: differs from BASE, the reference configuration when the search began (CPU: study_e30_s4x;
#: the reference now trains 50 epochs, i.e. ``fast_e50_s42``). All
#: runs use the seed-42 split (the pack); other seeds change initialisation, batch order
#: and augmentation only.
GRID = {
    "fast_e30_s42": {},                                   # calibration against the CPU run
    "fast_e50_s42": {"epochs": 50},                       # what 60 min on 2 CPU cores allows
    "fast_e80": {"epochs": 80},                           # beyond the CPU budget: the epoch trend
    "wide_e50": {"model": "vgg_wide", "epochs": 50},      # capacity
    "vgg_e50": {"model": "vgg", "epochs": 50},
    "xl_e50_strong": {"model": "vgg_xl", "epochs": 50, "augmentation": "strong"},   # ceiling probe
    "wide_e50_strong": {"model": "vgg_wide", "epochs": 50, "augmentation": "strong"},
    "fast_e120": {"epochs": 120},
    "fast_e30_s43": {"seed": 43}, "fast_e50_s43": {"epochs": 50, "seed": 43},     # seed spread
    "fast_e30_s44": {"seed": 44}, "fast_e50_s44": {"epochs": 50, "seed": 44},
    "fast_e50_strong": {"epochs": 50, "augmentation": "strong"},
    "fast_e50_ls10": {"epochs": 50, "label_smoothing": 0.1},
    # Equal CPU cost (≈ 57 min of 2 cores at 58/125/280 s per epoch): capacity or epochs?
    "vgg_e27": {"model": "vgg", "epochs": 27},
    "wide_e12": {"model": "vgg_wide", "epochs": 12},
    "vgg_e27_strong": {"model": "vgg", "epochs": 27, "augmentation": "strong"},
    "wide_e12_strong": {"model": "vgg_wide", "epochs": 12, "augmentation": "strong"},
    # Lease 3: bfloat16 compute (Keras "mixed_bfloat16") runs about twice as fast on this
    # machine's CPU (AMX), so wider nets fit the 60-min budget. Does it cost accuracy
    # (fast_e50_bf16 vs fast_e50_s42, vgg_e50_bf16 vs vgg_e50), and what do the epochs a
    # bf16 'vgg'/'vgg_wide' can afford on 2 cores give? Plus decoupled weight decay.
    "fast_e50_bf16": {"epochs": 50, "precision": "mixed_bfloat16"},
    "vgg_e50_bf16": {"model": "vgg", "epochs": 50, "precision": "mixed_bfloat16"},
    "vgg_e40_bf16": {"model": "vgg", "epochs": 40, "precision": "mixed_bfloat16"},
    "vgg_e35_bf16": {"model": "vgg", "epochs": 35, "precision": "mixed_bfloat16"},
    "wide_e25_bf16": {"model": "vgg_wide", "epochs": 25, "precision": "mixed_bfloat16"},
    "wide_e25_strong_bf16": {"model": "vgg_wide", "epochs": 25, "augmentation": "strong",
                             "precision": "mixed_bfloat16"},
    "vgg_e40_strong_bf16": {"model": "vgg", "epochs": 40, "augmentation": "strong",
                            "precision": "mixed_bfloat16"},
    "fast_e50_wd05": {"epochs": 50, "weight_decay": 0.05},
    "vgg_e40_wd05_bf16": {"model": "vgg", "epochs": 40, "weight_decay": 0.05,
                          "precision": "mixed_bfloat16"},
    "vgg_e40_bf16_s43": {"model": "vgg", "epochs": 40, "precision": "mixed_bfloat16", "seed": 43},
    # Lease 4 (same session): seed spread of the bf16 candidates.
    **{f"vgg_e{e}{aug}_bf16_s{seed}": {"model": "vgg", "epochs": e, "precision": "mixed_bfloat16", "seed": seed,
                                        **({"augmentation": "strong"} if aug else {})}
       for e, aug, seed in [(45, "", 42), (45, "", 43), (45, "", 44), (40, "", 44), (40, "_strong", 43),
                            (40, "_strong", 44), (50, "", 43)]},
    "wide_e25_strong_bf16_s43": {"model": "vgg_wide", "epochs": 25, "augmentation": "strong",
                                 "precision": "mixed_bfloat16", "seed": 43},
    "wide_e25_strong_bf16_s44": {"model": "vgg_wide", "epochs": 25, "augmentation": "strong",
                                 "precision": "mixed_bfloat16", "seed": 44},
    # Not yet run: 'vgg_mid' (vgg's widths, one 48×48 conv), the bf16 candidate that passes the
    # inference target on the CPU (docs/decision_rules/vgg_mid_bf16.txt).
    # Seeds 45-47: lease 8b's new seeds of the plain recipe (below).
    **{f"mid_e50_bf16_s{seed}": {"model": "vgg_mid", "epochs": 50, "precision": "mixed_bfloat16", "seed": seed}
       for seed in (42, 43, 44, 45, 46, 47)},
    # Leases 5-6: cheap levers on the CPU reference recipe (vgg_mid, bf16, 50 epochs), against
    # the plain recipe's seeds above. Lease 7: EMA again after the fix, at three decays (horizons
    # of about 1,000, 2,000 and 5,000 steps, i.e. 2.5, 5 and 12.5 of the reference's 401-step
    # epochs), against the plain recipe's seeds rerun in the same lease
    # (docs/decision_rules/gpu_lease7.txt).
    **{f"mid_e50_{tag}_bf16_s{seed}": {"model": "vgg_mid", "epochs": 50, "precision": "mixed_bfloat16",
                                       "seed": seed, **probe}
       for tag, probe in [("ema", {"ema": 0.999}), ("mixup", {"mixup": 0.2}), ("erase", {"erase": 0.5}),
                          ("all3", {"ema": 0.999, "mixup": 0.2, "erase": 0.5}),
                          ("ema9995", {"ema": 0.9995}), ("ema9998", {"ema": 0.9998})]
       for seed in (42, 43, 44)},
    # Lease 8: the optimiser's step size, never screened on the reference: peak learning rate
    # halved and doubled, and batch 128 at the doubled rate (linear scaling; half the steps,
    # though on the AMD EPYC an epoch takes as long: 68.7 vs 68.9 s in budget_check), against the
    # plain recipe rerun in the same lease (docs/decision_rules/gpu_lease8.txt). Lease 8b (same
    # session): lr 0.004 had raised mean validation macro-F1 by 0.009, the measure the CPU rule
    # (research/decision.py) decides on, so it and the plain recipe got three new seeds, 45-47.
    **{f"mid_e50_{tag}_bf16_s{seed}": {"model": "vgg_mid", "epochs": 50, "precision": "mixed_bfloat16",
                                       "seed": seed, **change}
       for tag, change, seeds in [("lr1e3", {"learning_rate": 0.001}, (42, 43, 44)),
                                  ("lr4e3", {"learning_rate": 0.004}, (42, 43, 44, 45, 46, 47)),
                                  ("b128", {"batch_size": 128, "learning_rate": 0.004}, (42, 43, 44))]
       for seed in seeds},
    # Lease 9: dropout, never screened on the reference (docs/decision_rules/gpu_lease9.txt):
    # none at all, 0.2 (stages 0.1/0.2/0.2/0.2, head 0.2) and 0.6 (stages as now, head 0.6),
    # against the plain recipe rerun in the same lease.
    **{f"mid_e50_do{round(rate * 10)}_bf16_s{seed}": {"model": "vgg_mid", "epochs": 50,
                                                    "precision": "mixed_bfloat16", "seed": seed, "dropout": rate}
       for rate in (0.0, 0.2, 0.6) for seed in (42, 43, 44)},
    # Lease 9c (same session): label smoothing 0.1 on the reference, never run to the end on it.
    **{f"mid_e50_ls10_bf16_s{seed}": {"model": "vgg_mid", "epochs": 50, "precision": "mixed_bfloat16",
                                      "seed": seed, "label_smoothing": 0.1}
       for seed in (42, 43, 44)},
    # The weight-decay screen on the CPU reference (docs/decision_rules/wd05_mid.txt).
    **{f"mid_e50_wd05_bf16_s{seed}": {"model": "vgg_mid", "epochs": 50, "precision": "mixed_bfloat16",
                                      "weight_decay": 0.05, "seed": seed}
       for seed in (42, 43, 44)},
}
DEFAULT_LANES = 8


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


# --------------------------------------------------------------------------- the recipe (both)

def settings_of(changes: dict) -> dict:
    """BASE with one grid entry's changes."""
    return {**BASE, **changes}


def train_config(changes: dict):
    """The package's TrainConfig for one grid entry, validated: the recipe the mirror follows.

    ``vgg_xl`` is not a package model (a ceiling probe); it is validated as ``vgg``.
    """
    from fer_helpers.training import TrainConfig

    s = settings_of(changes)
    for setting, high in MIRROR_BOUNDS.items():
        if not 0 <= s[setting] < high:
            raise ValueError(f"{setting}={s[setting]!r}: expected a value in [0, {high})")
    return TrainConfig(model_name="vgg" if s["model"] in EXTRA_VARIANTS else s["model"],
                       epochs=s["epochs"], batch_size=s["batch_size"],
                       learning_rate=s["learning_rate"], optimizer="adamw", schedule="cosine",
                       warmup_epochs=1, targets="soft", imbalance="oversample",
                       oversample_fraction=s["oversample_fraction"], augmentation=s["augmentation"],
                       label_smoothing=s["label_smoothing"], weight_decay=s["weight_decay"],
                       precision=s["precision"], seed=s["seed"]).validate("distribution")


def stage_layout(model: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(widths, convs) of a VGG variant: the package's table plus EXTRA_VARIANTS."""
    from fer_helpers.models import VGG_VARIANTS

    table = {**VGG_VARIANTS, **EXTRA_VARIANTS}
    if model not in table:
        raise ValueError(f"no VGG layout for {model!r}; choose one of {sorted(table)}")
    return table[model]


def lr_at_step(step: int, base_lr: float, steps_per_epoch: int, epochs: int,
               warmup_epochs: int = 1, alpha: float = 0.01) -> float:
    """Keras ``CosineDecay`` as the package configures it (``training._make_optimizer``).

    Linear warm-up from base_lr/10 to base_lr over the warm-up steps, then cosine
    decay to alpha·base_lr over the remaining steps.
    """
    total = max(1, epochs * steps_per_epoch)
    warm = min(warmup_epochs * steps_per_epoch, total - 1)
    if warm and step < warm:
        start = base_lr / 10
        return start + (base_lr - start) * step / warm
    progress = min(step - warm, total - warm) / (total - warm)
    return base_lr * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * progress)) + alpha)


# --------------------------------------------------------------------------- the PyTorch mirror (there)

def torch_vgg(model: str, n_classes: int = 8, dropout: float = 0.4):
    """``fer_helpers.models.build_vgg`` in PyTorch: conv(bias)-BN-ReLU stages, max-pool and
    dropout min(0.1·stage, ``dropout``) after each, global average pooling, dropout ``dropout``
    (0.4, build_vgg's default), dense softmax head."""
    import torch
    from torch import nn

    widths, convs = stage_layout(model)
    layers, c_in = [], 1
    for stage, (width, n_convs) in enumerate(zip(widths, convs), start=1):
        for _ in range(n_convs):
            # Keras BatchNormalization(momentum=0.9, epsilon=1e-3) = torch momentum 0.1.
            layers += [nn.Conv2d(c_in, width, 3, padding=1), nn.BatchNorm2d(width, eps=1e-3, momentum=0.1),
                       nn.ReLU(inplace=True)]
            c_in = width
        layers += [nn.MaxPool2d(2), nn.Dropout(min(0.1 * stage, dropout))]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, n_classes)]
    net = nn.Sequential(*layers)
    for m in net.modules():                   # Keras' initialisers: Glorot uniform, zero bias
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return net.to(memory_format=torch.channels_last)


def augment_batch(x, strength: str, gen):
    """The package's augmentation layers on a B×1×48×48 batch in [0, 1] (training only).

    Order and ranges follow ``preprocessing.augmentation_layers``: horizontal flip,
    rotation ±10°, (strong: shift ±10%, zoom ±10%), one affine resampling with
    bilinear interpolation and edge ("nearest") fill, brightness ±0.15 clipped to
    [0, 1], contrast factor around each image's mean, clipped to [0, 255] as Keras
    does. Keras 3's ``RandomContrast(0.2)`` draws its factor from [1.0, 1.2], not
    [0.8, 1.2] (measured; ``tests/test_gpu_search.py`` pins it), so the mirror does too.
    """
    import torch
    import torch.nn.functional as F

    b, dev = x.shape[0], x.device
    def u(*shape):
        return torch.rand(*shape, device=dev, generator=gen)
    x = torch.where((u(b) < 0.5)[:, None, None, None], x.flip(3), x)
    angle = (u(b) * 2 - 1) * (10 / 360) * 2 * math.pi
    scale = torch.ones(b, device=dev)
    shift = torch.zeros(b, 2, device=dev)
    if strength == "strong":
        shift = (u(b, 2) * 2 - 1) * 0.2            # ±10% of the side = ±0.2 in [-1, 1] coordinates
        scale = 1 + (u(b) * 2 - 1) * 0.1
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    x = (x + (u(b, 1, 1, 1) * 2 - 1) * 0.15).clamp(0, 1)
    mean = x.mean(dim=(2, 3), keepdim=True)
    return ((x - mean) * (1.0 + 0.2 * u(b, 1, 1, 1)) + mean).clamp(0, 255)


def mixup_batch(x, y, alpha: float, rng: np.random.Generator):
    """MixUp as ``keras.layers.MixUp`` does it: one Beta(α, α) weight per image, partner = a
    shuffled copy of the batch; soft targets are mixed with the same weight."""
    import torch

    b = x.shape[0]
    w = torch.from_numpy(rng.beta(alpha, alpha, b).astype(np.float32)).to(x.device)
    perm = torch.from_numpy(rng.permutation(b)).to(x.device)
    return (w[:, None, None, None] * x + (1 - w[:, None, None, None]) * x[perm],
            w[:, None] * y + (1 - w[:, None]) * y[perm])


def erase_batch(x, p: float, gen):
    """Random erasing: with probability p, one rectangle of 2-25% of the image (aspect ratio
    0.3-3.3, log-uniform) is replaced by uniform noise in [0, 1]."""
    import torch

    b, _, h, w = x.shape
    dev = x.device
    def u(*shape):
        return torch.rand(*shape, device=dev, generator=gen)
    area = (0.02 + u(b) * 0.23) * h * w
    ratio = torch.exp(math.log(0.3) + u(b) * (math.log(3.3) - math.log(0.3)))
    eh = (area * ratio).sqrt().clamp(1, h)
    ew = (area / ratio).sqrt().clamp(1, w)
    top = u(b) * (h - eh)
    left = u(b) * (w - ew)
    rows = torch.arange(h, device=dev)[None, :, None]
    cols = torch.arange(w, device=dev)[None, None, :]
    box = ((rows >= top[:, None, None]) & (rows < (top + eh)[:, None, None])
           & (cols >= left[:, None, None]) & (cols < (left + ew)[:, None, None]))
    box = box & (u(b) < p)[:, None, None]
    return torch.where(box[:, None], u(b, 1, h, w), x)


@contextlib.contextmanager
def weights_swapped(params: list, values: list | None):
    """Inside the block the parameters hold ``values`` (e.g. their moving average); on exit,
    whatever happens inside, they hold their own weights again. ``None`` changes nothing."""
    if values is None:
        yield
        return
    live = [q.detach().clone() for q in params]
    for q, v in zip(params, values):
        q.data.copy_(v)
    try:
        yield
    finally:
        for q, v in zip(params, live):
            q.data.copy_(v)


def train_one(name: str, changes: dict, pack_dir: Path, out_json: Path, smoke: bool = False) -> None:
    """Train one configuration; rewrite ``out_json`` after every epoch (a stop keeps the epochs run)."""
    import torch

    from fer_helpers.evaluation import classification_metrics, per_class_recall
    from fer_helpers.preprocessing import oversample_indices

    s = settings_of(changes)
    config = train_config(changes)                       # raises for an invalid entry
    out_json.parent.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    torch.manual_seed(s["seed"])
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    gen = torch.Generator(device=dev).manual_seed(s["seed"])
    d = load_pack(pack_dir)
    if smoke:   # a quick check of the whole path before a GPU is spent on it
        s["epochs"] = 2
        for split, n in (("train", 640), ("val", 320)):
            for k in ("x", "y", "l"):
                d[f"{k}_{split}"] = d[f"{k}_{split}"][:n]
    classes = [str(c) for c in d["classes"]]
    idx = oversample_indices(d["l_train"], s["seed"], s["oversample_fraction"])
    x_train = torch.from_numpy(d["x_train"][idx]).to(dev)[:, None]        # uint8 on the device
    y_train = torch.from_numpy(d["y_train"][idx]).to(dev)
    if s["label_smoothing"]:
        y_train = y_train * (1 - s["label_smoothing"]) + s["label_smoothing"] / len(classes)
    x_val = torch.from_numpy(d["x_val"]).to(dev)[:, None]
    net = torch_vgg(s["model"], len(classes), s["dropout"]).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=s["learning_rate"], eps=1e-7,
                            weight_decay=config.weight_decay)
    bf16 = config.precision == "mixed_bfloat16"
    params = list(net.parameters())
    ema = [q.detach().clone() for q in params] if s["ema"] else None
    np_rng = np.random.default_rng(s["seed"])
    bs, n = s["batch_size"], len(x_train)
    steps = math.ceil(n / bs)
    record = {"name": name, "settings": s, "engine": f"torch {torch.__version__} ({dev.type})",
              "n_params": sum(p.numel() for p in net.parameters()), "n_train_used": n,
              "history": [], "best": None}

    def as_input(xb):
        return (xb.float() / 255).contiguous(memory_format=torch.channels_last)

    def validate() -> dict:
        # With EMA, the averaged weights are validated (and checkpointed); training goes on
        # from the live ones.
        net.eval()
        with weights_swapped(params, ema), torch.no_grad(), \
                torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            probs = torch.cat([net(as_input(x_val[i:i + 1024])).float().softmax(1)
                               for i in range(0, len(x_val), 1024)]).cpu().numpy()
        net.train()
        return classification_metrics(d["l_val"], probs, classes)

    step, t_start = 0, time.perf_counter()
    for epoch in range(1, s["epochs"] + 1):
        t0 = time.perf_counter()
        order = torch.randperm(n, device=dev, generator=gen)
        total_loss = torch.zeros((), device=dev)
        for i in range(steps):
            for group in opt.param_groups:
                group["lr"] = lr_at_step(step, s["learning_rate"], steps, s["epochs"])
            batch = order[i * bs:(i + 1) * bs]
            xb = augment_batch(as_input(x_train[batch]), s["augmentation"], gen)
            yb = y_train[batch]
            if s["erase"]:
                xb = erase_batch(xb, s["erase"], gen)
            if s["mixup"]:
                xb, yb = mixup_batch(xb, yb, s["mixup"], np_rng)
            # Keras' mixed_bfloat16: bf16 convolutions, float32 weights and softmax head.
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                logits = net(xb)
            loss = -(yb * logits.float().log_softmax(1)).sum(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                with torch.no_grad():
                    torch._foreach_lerp_(ema, params, 1 - s["ema"])
            total_loss += loss.detach()
            step += 1
        m = validate()
        row = {"epoch": epoch, "seconds": round(time.perf_counter() - t0, 2),
               "loss": float(total_loss) / steps, "val_accuracy": m["accuracy"],
               "val_macro_f1": m["macro_f1"]}
        record["history"].append(row)
        summary = {"epoch": epoch, "val_accuracy": m["accuracy"], "val_macro_f1": m["macro_f1"],
                   "val_recall": per_class_recall(m)}
        # The CPU runs' checkpoint rule: keep the epoch with the best validation accuracy.
        if record["best"] is None or m["accuracy"] > record["best"]["val_accuracy"]:
            record["best"] = summary
        record["last"] = summary
        record["wall_s"] = round(time.perf_counter() - t_start, 1)
        out_json.write_text(json.dumps(record, indent=1))
    record["finished"] = True
    out_json.write_text(json.dumps(record, indent=1))


# --------------------------------------------------------------------------- the grid (there)

def run_grid(pack_dir: Path, out: Path, names: list[str], lanes: int, work: Path,
             budget_s: float = 500, smoke: bool = False) -> None:
    """Run ``names`` from GRID, ``lanes`` processes at a time; merge results into ``out`` every 10 s.

    After ``budget_s`` seconds the remaining processes are stopped, so the lease
    ends with every finished run and the per-epoch history of unfinished ones.
    """
    import platform
    import signal

    work.mkdir(parents=True, exist_ok=True)
    queue, running = list(names), {}
    started = time.time()

    def merge(stopped: list[str]):
        results = [json.loads(p.read_text()) for n in names if (p := work / f"{n}.json").is_file()]
        out.write_text(json.dumps({"machine": platform.node(), "gpu": _gpu_name(),
                                   "elapsed_s": round(time.time() - started, 1), "budget_s": budget_s,
                                   "lanes": lanes, "stopped_at_budget": stopped,
                                   "never_started": queue,
                                   "selection": "validation only (stratified 20% of FER2013Train)",
                                   "results": results}, indent=1))

    while queue or running:
        while queue and len(running) < lanes:
            n = queue.pop(0)
            log = open(work / f"{n}.log", "w")
            running[n] = subprocess.Popen([sys.executable, __file__, "one", n, "--pack", str(pack_dir),
                                           "--work", str(work), *(["--smoke"] if smoke else [])],
                                          stdout=log, stderr=subprocess.STDOUT)
        time.sleep(10)
        for n, p in list(running.items()):
            if p.poll() is not None:
                print(f"{n}: exit {p.returncode} after {time.time() - started:.0f} s", flush=True)
                if p.returncode:
                    print((work / f"{n}.log").read_text()[-3000:], flush=True)
                del running[n]
        if time.time() - started > budget_s:
            for n, p in running.items():
                p.send_signal(signal.SIGKILL)
                p.wait()
            print(f"budget of {budget_s:.0f} s reached: stopped {sorted(running)}, "
                  f"never started {queue}", flush=True)
            merge(sorted(running))
            return
        merge([])
    merge([])


#: Runs whose numbers measure a bug, not their settings: kept in ``results/gpu_search/`` as
#: the lease returned them, left out of the summary. Keyed by (lease file, configuration).
EXCLUDED = {("lease5_probes.json" if seed < 44 else "lease6_probes_s44.json", f"mid_e50_{tag}_bf16_s{seed}"):
            "validation left the EMA weights in place of the live ones, so every epoch restarted "
            "from the average (fixed after lease 6)"
            for tag in ("ema", "all3") for seed in (42, 43, 44)}

SUMMARY_COLUMNS = ["name", "model", "n_params", "epochs", "epochs_run", "augmentation", "label_smoothing",
                   "learning_rate", "batch_size", "weight_decay", "dropout", "precision", *PROBE_BOUNDS, "seed",
                   "best_epoch", "val_accuracy", "val_macro_f1", "val_recall_Contempt", "val_recall_Disgust",
                   "last_val_accuracy", "seconds_per_epoch", "gpu", "source"]


@dataclasses.dataclass(frozen=True)
class Screen:
    """One GPU screen decided by a rule committed before it ran (``docs/decision_rules/<rule>.txt``).

    The candidate wins only if all three hold: its mean ``measure`` over ``seeds`` exceeds the
    control's by at least ``min_gain``; at least ``min_ahead`` seeds beat the control's run of
    the same seed on ``measure``; its mean on the other measure is at most ``max_guard_drop``
    below the control's. Runs come from ``sources`` (the lease's files), so a control is always
    the one rerun beside its candidate.
    """

    lease: str
    rule: str
    sources: tuple[str, ...]
    candidate: str                  # configuration name without "_s<seed>"
    control: str = "mid_e50_bf16"
    seeds: tuple[int, ...] = (42, 43, 44)
    measure: str = "val_accuracy"
    min_gain: float = 0.003
    min_ahead: int = 2
    max_guard_drop: float = 0.0


#: Every screen with a rule, in the order they ran. Leases 7-9 and 9c share lease 7's rule
#: (accuracy +0.3 pt, 2 of 3 seeds ahead, macro-F1 not lower); lease 8b decided on macro-F1
#: over six seeds (+0.008, 4 of 6 seeds ahead, accuracy at most 0.2 pt lower).
SCREENS = (
    *(Screen("7", "gpu_lease7", ("lease7_ema.json",), f"mid_e50_{tag}_bf16")
      for tag in ("ema", "ema9995", "ema9998")),
    *(Screen("8", "gpu_lease8", ("lease8_lr_batch.json",), f"mid_e50_{tag}_bf16")
      for tag in ("lr1e3", "lr4e3", "b128")),
    Screen("8b", "gpu_lease8", ("lease8_lr_batch.json", "lease8b_lr4e3_seeds.json"), "mid_e50_lr4e3_bf16",
           seeds=(42, 43, 44, 45, 46, 47), measure="val_macro_f1", min_gain=0.008, min_ahead=4,
           max_guard_drop=0.002),
    *(Screen("9", "gpu_lease9", ("lease9_dropout.json",), f"mid_e50_{tag}_bf16")
      for tag in ("do0", "do2", "do6")),
    Screen("9c", "gpu_lease9", ("lease9c_ls10.json",), "mid_e50_ls10_bf16"),
)

VERDICT_COLUMNS = ["lease", "rule", "candidate", "control", "change", "seeds", "measure", "control_mean",
                   "candidate_mean", "gain", "min_gain", "seeds_ahead", "min_ahead", "guard_measure",
                   "control_guard", "candidate_guard", "max_guard_drop", "criterion", "ahead", "guard", "verdict"]


def screen_verdict(rows: list[dict], screen: Screen) -> dict:
    """Apply ``screen``'s rule to the summary rows (``summarize``) of its lease files.

    ``ADOPT`` if all three conditions hold, ``KEEP`` otherwise, ``UNDECIDED`` if a seed of the
    candidate or the control is missing or was stopped at the budget (the rules do not count
    unfinished runs). Means are over the seeds, from the rounded numbers of the summary table.
    """
    guard_measure = "val_macro_f1" if screen.measure == "val_accuracy" else "val_accuracy"

    def runs(config: str) -> dict[int, dict]:
        found = {}
        for r in rows:
            if (r["source"] in screen.sources and r["seed"] in screen.seeds
                    and r["name"] == f"{config}_s{r['seed']}"):
                if r["seed"] in found:
                    raise ValueError(f"{config} seed {r['seed']} appears twice in {screen.sources}")
                found[r["seed"]] = r
        return found

    cand, ctrl = runs(screen.candidate), runs(screen.control)
    # What the candidate's name adds to the control's: "mid_e50_do2_bf16" against "mid_e50_bf16" → "do2".
    change = "_".join(part for part in screen.candidate.split("_") if part not in screen.control.split("_"))
    row = {"lease": screen.lease, "rule": relative(rule_path(screen.rule)), "candidate": screen.candidate,
               "control": screen.control, "change": change, "seeds": " ".join(map(str, screen.seeds)),
               "measure": screen.measure, "min_gain": screen.min_gain, "min_ahead": screen.min_ahead,
               "guard_measure": guard_measure, "max_guard_drop": screen.max_guard_drop}
    finished = [*cand.values(), *ctrl.values()]
    if len(finished) < 2 * len(screen.seeds) or any(r["epochs_run"] < r["epochs"] for r in finished):
        return {**row, "verdict": UNDECIDED}

    def mean(found: dict, key: str) -> float:
        return float(np.mean([found[s][key] for s in screen.seeds]))

    means = {"control_mean": mean(ctrl, screen.measure), "candidate_mean": mean(cand, screen.measure),
             "control_guard": mean(ctrl, guard_measure), "candidate_guard": mean(cand, guard_measure)}
    gain = means["candidate_mean"] - means["control_mean"]
    ahead = sum(cand[s][screen.measure] > ctrl[s][screen.measure] for s in screen.seeds)
    # A tolerance for float sums: a gain of exactly the threshold passes, as the rules read.
    checks = {"criterion": gain >= screen.min_gain - 1e-9, "ahead": ahead >= screen.min_ahead,
              "guard": means["control_guard"] - means["candidate_guard"] <= screen.max_guard_drop + 1e-9}
    return {**row, **{k: round(v, 6) for k, v in means.items()}, "gain": round(gain, 6), "seeds_ahead": ahead,
            **checks, "verdict": verdict(*checks.values())}


def write_verdicts(rows: list[dict], out_csv: Path, screens=SCREENS) -> list[dict]:
    """Every screen's verdict (``screen_verdict``) as one CSV, in the order the screens ran."""
    import pandas as pd

    verdicts = [screen_verdict(rows, s) for s in screens]
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(verdicts, columns=VERDICT_COLUMNS).to_csv(out_csv, index=False)
    return verdicts


def summarize(search_files: list[Path], out_csv: Path) -> list[dict]:
    """One row per configuration of one or more ``run`` outputs, best validation accuracy first.

    ``epochs_run`` < ``epochs`` marks a run stopped at the lease's budget: its numbers
    are those of an unfinished cosine schedule and are not comparable to finished runs.
    """
    import pandas as pd

    rows = []
    for f in search_files:
        search = json.loads(Path(f).read_text())
        for r in search["results"]:
            if (Path(f).name, r["name"]) in EXCLUDED:
                print(f"left out {Path(f).name}:{r['name']}: {EXCLUDED[(Path(f).name, r['name'])]}")
                continue
            s, best, hist = r["settings"], r["best"], r["history"]
            rows.append({
                "name": r["name"], "model": s["model"], "n_params": r["n_params"], "epochs": s["epochs"],
                "epochs_run": len(hist), "augmentation": s["augmentation"],
                "label_smoothing": s.get("label_smoothing", 0.0),
                "learning_rate": s["learning_rate"], "batch_size": s["batch_size"],   # varied from lease 8
                # Leases 1-2 predate these settings: float32 and weight decay 1e-4 throughout.
                "weight_decay": s.get("weight_decay", 1e-4), "precision": s.get("precision", "float32"),
                "dropout": s.get("dropout", 0.4),                          # varied from lease 9
                **{probe: s.get(probe, 0.0) for probe in PROBE_BOUNDS},   # leases ≥ 5
                "seed": s["seed"],
                "best_epoch": best["epoch"], "val_accuracy": round(best["val_accuracy"], 4),
                "val_macro_f1": round(best["val_macro_f1"], 4),
                "val_recall_Contempt": round(best["val_recall"]["Contempt"], 4),
                "val_recall_Disgust": round(best["val_recall"]["Disgust"], 4),
                "last_val_accuracy": round(r["last"]["val_accuracy"], 4),
                # Median, not mean: lanes start and stop at different times, so contention varies.
                "seconds_per_epoch": round(float(np.median([h["seconds"] for h in hist])), 2),
                "gpu": search.get("gpu", "unknown"), "source": Path(f).name})
    if not rows:
        raise ValueError(f"no results in {[str(f) for f in search_files]}")
    rows.sort(key=lambda row: (row["epochs_run"] < row["epochs"], -row["val_accuracy"]))
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=SUMMARY_COLUMNS).to_csv(out_csv, index=False)
    return rows


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
    r.add_argument("--lanes", type=int, default=DEFAULT_LANES, help="processes at a time")
    r.add_argument("--budget", type=float, default=500, help="seconds before unfinished runs are stopped")
    r.add_argument("--work", type=Path, default=Path("/tmp/gpu_search"))
    r.add_argument("--smoke", action="store_true", help="each configuration: 2 epochs on 640 images")
    m = sub.add_parser("summarize", help="results of one or more 'run' outputs as one CSV")
    m.add_argument("search", type=Path, nargs="+")
    m.add_argument("--out", type=Path, default=ROOT / "results" / "gpu_search.csv")
    m.add_argument("--verdicts", type=Path, default=ROOT / "results" / "gpu_search_verdicts.csv",
                   help="the rules' verdicts (SCREENS) on these results")
    o = sub.add_parser("one")
    o.add_argument("name", choices=list(GRID))
    o.add_argument("--pack", type=Path, required=True)
    o.add_argument("--work", type=Path, required=True)
    o.add_argument("--smoke", action="store_true", help="2 epochs on 640 images")
    a = ap.parse_args(argv)
    if a.cmd == "pack":
        if not a.data:
            ap.error("give --data or set FER_DATA_DIR")
        pack(a.data, a.out)
    elif a.cmd == "run":
        unknown = sorted(set(a.configs) - set(GRID))
        if unknown:
            ap.error(f"unknown configurations {unknown}; choose from {list(GRID)}")
        run_grid(a.pack, a.out, a.configs, a.lanes, a.work, a.budget, a.smoke)
    elif a.cmd == "summarize":
        rows = summarize(a.search, a.out)
        print(f"{len(rows)} configurations → {a.out}")
        verdicts = write_verdicts(rows, a.verdicts)
        for v in verdicts:
            print(f"lease {v['lease']:>3} {v['candidate']:<20} {v['verdict']}")
        print(f"{len(verdicts)} verdicts → {a.verdicts}")
    else:
        train_one(a.name, GRID[a.name], a.pack, a.work / f"{a.name}.json", a.smoke)


if __name__ == "__main__":
    main()
