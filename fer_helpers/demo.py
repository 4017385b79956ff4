"""Built-in demo data: procedurally drawn 48×48 grayscale "faces" for the 8 classes.

A fresh machine has no FER data, yet the whole pipeline must still run. These
synthetic faces carry each expression in the same places a real face does —
mouth curve and opening, eyebrow angle and height, eye opening — under random
position, scale, rotation, brightness and noise, so a CNN has something real to
learn and Grad-CAM has a known answer (``regions`` marks mouth, brows and eyes).

Nothing here is a real result: every figure and report built from it says so.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .labels import CLASSES, VOTE_COLUMNS

DEMO_LABEL = "DEMO — sentetik veri"
DEMO_BANNER = "DEMO — sentetik veri; gerçek sonuç değildir"

# Expression parameters per class: mouth curve (+ smile), mouth opening, mouth
# asymmetry, brow angle (+ inner ends down, as in anger), brow raise, eye opening.
_EXPRESSIONS = {
    "Anger":     dict(curve=-0.25, open=0.05, asym=0.0, brow=0.55, raise_=-0.15, eye=0.65),
    "Contempt":  dict(curve=0.05, open=0.0, asym=0.65, brow=0.1, raise_=0.0, eye=0.85),
    "Disgust":   dict(curve=-0.55, open=0.25, asym=0.0, brow=0.3, raise_=-0.2, eye=0.45),
    "Fear":      dict(curve=-0.15, open=0.55, asym=0.0, brow=-0.45, raise_=0.3, eye=1.3),
    "Happiness": dict(curve=0.75, open=0.3, asym=0.0, brow=0.0, raise_=0.05, eye=0.8),
    "Neutral":   dict(curve=0.0, open=0.0, asym=0.0, brow=0.0, raise_=0.0, eye=1.0),
    "Sadness":   dict(curve=-0.65, open=0.0, asym=0.0, brow=-0.55, raise_=0.05, eye=0.75),
    "Surprise":  dict(curve=0.0, open=1.0, asym=0.0, brow=0.0, raise_=0.5, eye=1.35),
}
#: Share of each class, imbalanced like FER+ (Contempt and Disgust are rare).
CLASS_SHARES = np.array([0.09, 0.03, 0.03, 0.06, 0.25, 0.28, 0.11, 0.15])
_SCALE = 4          # draw at 4× resolution, then downsample: smooth strokes
_CANVAS = 48 * _SCALE


def _draw_face(p: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One face and its expression-region mask at ``_CANVAS`` resolution."""
    s = _SCALE
    bg = int(rng.integers(20, 90))
    skin = int(rng.integers(140, 220))
    feat = int(rng.integers(10, 60))
    img = Image.new("L", (_CANVAS, _CANVAS), bg)
    mask = Image.new("L", (_CANVAS, _CANVAS), 0)
    d, m = ImageDraw.Draw(img), ImageDraw.Draw(mask)
    cx, cy = _CANVAS / 2, _CANVAS / 2
    d.ellipse([cx - 17 * s, cy - 21 * s, cx + 17 * s, cy + 22 * s], fill=skin)
    w = max(1, int(2.4 * s))
    # Eyes: ellipses whose height is the eye opening.
    eye_h = 3.2 * p["eye"] * s
    for side in (-1, 1):
        ex, ey = cx + side * 7.5 * s, cy - 5 * s
        d.ellipse([ex - 4 * s, ey - eye_h / 2, ex + 4 * s, ey + eye_h / 2], fill=feat)
        m.rectangle([ex - 6 * s, ey - 5 * s, ex + 6 * s, ey + 4 * s], fill=255)
        # Brows: a line tilted by the brow angle, lifted by the brow raise.
        by = cy - (11 + 4 * p["raise_"]) * s
        inner = (cx + side * 3 * s, by + p["brow"] * 5 * s)
        outer = (cx + side * 12 * s, by - p["brow"] * 5 * s)
        d.line([inner, outer], fill=feat, width=w + s // 2)
        m.rectangle([min(inner[0], outer[0]) - 2 * s, by - 6 * s,
                     max(inner[0], outer[0]) + 2 * s, by + 6 * s], fill=255)
    # Nose: a short stroke (and wrinkles when disgust raises the upper lip).
    d.line([(cx, cy - 2 * s), (cx - 1.5 * s, cy + 5 * s)], fill=feat + 40, width=w)
    # Mouth: a quadratic curve through three points; opening adds a lower lip.
    my, half = cy + 11 * s, 8 * s
    xs = np.linspace(-1, 1, 25)
    corner_lift = p["curve"] * 6 * s
    upper = [(cx + x * half, my - corner_lift * x * x - p["asym"] * 3 * s * max(x, 0) ** 2)
             for x in xs]
    d.line(upper, fill=feat, width=w)
    if p["open"] > 0.02:
        lower = [(cx + x * half, y + p["open"] * 7 * s * (1 - x * x)) for x, (_, y) in zip(xs, upper)]
        d.polygon(upper + lower[::-1], fill=max(0, feat - 10))
    m.rectangle([cx - half - 3 * s, my - 6 * s, cx + half + 3 * s, my + 10 * s], fill=255)
    return np.asarray(img, dtype=np.float32), np.asarray(mask, dtype=np.float32)


def _transform(arr: np.ndarray, angle: float, scale: float, dx: float, dy: float,
               fill: float) -> np.ndarray:
    """Rotate/scale/shift a canvas-sized array (one affine map) and downsample to 48×48."""
    # PIL's affine transform maps each *output* pixel back to an input pixel,
    # so we pass the inverse map: un-shift, un-rotate, un-scale around the centre.
    c = _CANVAS / 2
    t = np.deg2rad(angle)
    a, b = np.cos(t) / scale, np.sin(t) / scale
    ox, oy = c - dx * _SCALE, c - dy * _SCALE
    coeffs = (a, b, c - a * ox - b * oy, -b, a, c + b * ox - a * oy)
    im = Image.fromarray(arr).transform((_CANVAS, _CANVAS), Image.Transform.AFFINE, coeffs,
                                        resample=Image.Resampling.BILINEAR, fillcolor=fill)
    return np.asarray(im.resize((48, 48), Image.Resampling.BOX), dtype=np.float32)


def _demo_votes(true_cls: int, confuse_cls: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Ten synthetic annotator votes; the true class always keeps at least 6."""
    k = int(rng.integers(6, 11))
    votes = np.zeros(len(VOTE_COLUMNS), dtype=np.int16)
    col = {c.capitalize(): i for i, c in enumerate(VOTE_COLUMNS[:8])}
    votes[col[CLASSES[true_cls]]] = k
    rest = 10 - k
    if rest:
        n_unknown = int(rng.integers(0, 2)) if rest > 1 else 0
        votes[VOTE_COLUMNS.index("unknown")] = n_unknown
        votes[col[CLASSES[confuse_cls]]] += rest - n_unknown
    return votes, (10 - k) / 10


def make_demo_faces(n: int = 2400, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` synthetic faces, deterministic in ``seed``.

    Returns a dict with ``images`` (n×48×48 uint8), ``labels`` (``CLASSES``
    indices), ``votes`` (n×10), ``regions`` (n×48×48 bool: mouth, brows, eyes)
    and ``split`` (70% train, 15% val, 15% test).
    """
    if n < 8:
        raise ValueError(f"demo set needs at least 8 images (one per class), got {n}")
    rng = np.random.default_rng(seed)
    labels = rng.choice(len(CLASSES), size=n, p=CLASS_SHARES / CLASS_SHARES.sum())
    labels[: len(CLASSES)] = np.arange(len(CLASSES))  # every class appears at least once
    images = np.empty((n, 48, 48), dtype=np.uint8)
    regions = np.empty((n, 48, 48), dtype=bool)
    votes = np.empty((n, len(VOTE_COLUMNS)), dtype=np.int16)
    for i, y in enumerate(labels):
        confuse = int(rng.choice([c for c in range(len(CLASSES)) if c != y]))
        votes[i], ambiguity = _demo_votes(int(y), confuse, rng)
        # Ambiguous faces drift toward the confused expression, like real ones.
        a, b = _EXPRESSIONS[CLASSES[y]], _EXPRESSIONS[CLASSES[confuse]]
        mix = 0.5 * ambiguity
        params = {k: (1 - mix) * a[k] + mix * b[k] + rng.normal(0, 0.05) for k in a}
        face, mask = _draw_face(params, rng)
        angle, scale = rng.uniform(-12, 12), rng.uniform(0.9, 1.15)
        dx, dy = rng.uniform(-3, 3, size=2)
        face = _transform(face, angle, scale, dx, dy, fill=float(face[0, 0]))
        regions[i] = _transform(mask, angle, scale, dx, dy, fill=0.0) > 127
        face = face * rng.uniform(0.8, 1.15) + rng.normal(0, rng.uniform(2, 8), face.shape)
        images[i] = np.clip(face, 0, 255).astype(np.uint8)
    split = np.array(["train"] * n, dtype="<U5")
    order = rng.permutation(n)
    split[order[int(0.7 * n): int(0.85 * n)]] = "val"
    split[order[int(0.85 * n):]] = "test"
    return {"images": images, "labels": labels, "votes": votes, "regions": regions, "split": split}
