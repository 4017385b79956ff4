"""From a Dataset to what a network trains on: scaling, targets, augmentation, balancing.

The models carry their own ``Rescaling(1/255)`` layer, so saved models take
raw 0-255 pixels. The functions here exist for the notebooks to *show* each
step and for the training loop to build its targets.
"""
from __future__ import annotations

import numpy as np

IMBALANCE_STRATEGIES = ("none", "class_weight", "oversample")


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8 N×48×48 → float32 N×48×48×1 in [0, 1] (what the model's Rescaling layer does)."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    return images.astype(np.float32) / 255.0


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Integer labels → N×n_classes float32 one-hot rows."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, got {labels.min()}..{labels.max()}")
    return np.eye(n_classes, dtype=np.float32)[labels]


def training_targets(labels: np.ndarray, n_classes: int, soft_labels: np.ndarray | None = None,
                     targets: str = "onehot") -> np.ndarray:
    """One-hot targets, or the FER+ vote distribution when ``targets="soft"``."""
    if targets == "onehot":
        return one_hot(labels, n_classes)
    if targets == "soft":
        if soft_labels is None:
            raise ValueError("targets='soft' needs vote distributions: load the data with "
                             "label_mode='distribution'")
        return np.asarray(soft_labels, dtype=np.float32)
    raise ValueError(f"targets must be 'onehot' or 'soft', got {targets!r}")


def class_examples(labels: np.ndarray, candidates: np.ndarray, count: int = 3) -> list[int]:
    """Indices of the first image among ``candidates`` of each of the first ``count`` classes
    that occur among them (a class missing from the candidates, e.g. from a small slice's
    training split, is skipped rather than failing)."""
    candidates = np.asarray(candidates)
    present = np.unique(labels[candidates])[:count]
    return [int(candidates[labels[candidates] == c][0]) for c in present]


def target_examples(labels: np.ndarray, n_classes: int,
                    soft_labels: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The training targets of a few images under every encoding the data allows: ``"onehot"``
    always (the starting study's), ``"soft"`` (the FER+ vote distribution) when the data was
    loaded with its votes (``label_mode="distribution"``)."""
    found = {"onehot": training_targets(labels, n_classes)}
    if soft_labels is not None:
        found["soft"] = training_targets(labels, n_classes, soft_labels, "soft")
    return found


def balanced_class_weights(labels: np.ndarray, n_classes: int) -> dict[int, float]:
    """sklearn's 'balanced' weights n / (k · count_c); absent classes get weight 1."""
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(labels)
    w = compute_class_weight("balanced", classes=present, y=labels)
    weights = {c: 1.0 for c in range(n_classes)}
    weights.update({int(c): float(v) for c, v in zip(present, w)})
    return weights


def oversample_indices(labels: np.ndarray, seed: int, min_fraction: float = 0.5) -> np.ndarray:
    """Row indices where each class appears at least ``min_fraction`` × the largest class.

    Rare classes are repeated (sampled with replacement) until they reach that
    size; the result is shuffled with ``seed``.
    """
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    target = int(np.ceil(min_fraction * counts.max()))
    parts = [np.arange(len(labels))]
    for c, n in zip(classes, counts):
        if n < target:
            parts.append(rng.choice(np.flatnonzero(labels == c), size=target - n, replace=True))
    idx = np.concatenate(parts)
    return idx[rng.permutation(len(idx))]


#: Augmentation sets by name (see ``augmentation_layers``).
AUGMENTATIONS = ("none", "study", "strong", "wide")


def augmentation_layers(strength: str = "study", seed: int = 42, erasing: float = 0.0) -> list:
    """Keras preprocessing layers used inside the model (active only in training).

    ``"study"`` follows the starting study: horizontal flip, small rotation
    (±10°), brightness and contrast jitter. ``"strong"`` adds shift and zoom.
    ``"wide"`` is the usual recipe for residual nets on small faces: flip, ±15° rotation,
    ±15% scale, ±12% shift with mirrored borders, brightness ±0.2, contrast ×0.7–1.3
    (the package's own fused layers, ``fer_helpers.layers``).
    ``"none"`` returns no layers. ``erasing`` > 0 appends random erasing (8–20 px squares)
    with that probability.
    """
    from keras import layers

    if strength not in AUGMENTATIONS:
        raise ValueError(f"augmentation must be one of {AUGMENTATIONS}, got {strength!r}")
    if not 0 <= erasing <= 1:
        raise ValueError(f"erasing must be a probability in [0, 1], got {erasing}")
    out = []
    if strength == "wide":
        from .layers import RandomAffine, RandomBrightnessContrast

        # One resampling for flip, rotation, scale and shift, with mirrored borders: no flat
        # bands for the net to learn as a cue, and fast on every backend (see RandomAffine).
        out = [RandomAffine(rotation=15, zoom=0.15, shift=0.12, seed=seed, name="aug_affine"),
               RandomBrightnessContrast(0.2, 0.3, seed=seed + 4, name="aug_photometric")]
    elif strength != "none":
        out = [
            layers.RandomFlip("horizontal", seed=seed, name="aug_flip"),
            layers.RandomRotation(10 / 360, fill_mode="nearest", seed=seed + 1,
                                  name="aug_rotate"),
        ]
        if strength == "strong":
            out += [layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed + 2,
                                             name="aug_shift"),
                    layers.RandomZoom(0.1, fill_mode="nearest", seed=seed + 3,
                                      name="aug_zoom")]
        # Brightness/contrast operate on the [0, 1] scale the Rescaling layer produced.
        out += [layers.RandomBrightness(0.15, value_range=(0.0, 1.0), seed=seed + 4,
                                        name="aug_brightness"),
                layers.RandomContrast(0.2, seed=seed + 5, name="aug_contrast")]
    if erasing > 0:
        from .layers import RandomErasing

        out.append(RandomErasing(erasing, 8, 20, seed=seed + 6, name="aug_erase"))
    return out


def augment_examples(images: np.ndarray, n_variants: int = 5, strength: str = "study",
                     seed: int = 42, erasing: float = 0.0) -> np.ndarray:
    """``n_variants`` augmented copies of each image (uint8), to show augmentation in notebook 02."""
    import keras

    pipeline = keras.Sequential(augmentation_layers(strength, seed, erasing))
    x = normalize(images)
    out = np.stack([np.asarray(pipeline(x, training=True)) for _ in range(n_variants)], axis=1)
    return np.clip(out[..., 0] * 255, 0, 255).astype(np.uint8)
