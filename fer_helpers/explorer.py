"""What the explorer notebook (08) shows, as plain functions: which test faces match a filter,
one face's probabilities, votes and Grad-CAM maps, and the faces found in a photo.

The notebook only wires these to widgets, so every answer it gives is tested here without a
browser. Grad-CAM maps are computed when a face is selected, once (``GradcamCache``).
"""
from __future__ import annotations

import io
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .data import Dataset, to_gray8
from .gradcam import gradcam_heatmaps
from .inference import crop_face, make_detector
from .labels import CLASSES, VOTE_COLUMNS, display_names, vote_entropy
from .models import predict_proba


def batch_run() -> bool:
    """True in a kernel the runner started (``make report``): nobody is there to use the widgets,
    so the notebook shows its static snapshot only and writes nothing into widget outputs."""
    import os

    return os.environ.get("FER_BATCH") == "1"


#: Sort orders of the face grid.
SORTS = ("confidence_desc", "confidence_asc", "entropy_desc", "entropy_asc", "index")
#: Largest photo (in pixels) the photo demo decodes; larger files get a message, not a crash.
MAX_PHOTO_PIXELS = 40_000_000


@dataclass
class FaceSet:
    """One protocol's test faces with the model's answers: everything the filters look at."""

    images: np.ndarray        # N×48×48 uint8
    labels: np.ndarray        # N true classes
    probs: np.ndarray         # N×K probabilities
    votes: np.ndarray | None  # N×10 annotator votes (FER+), or None
    names: np.ndarray
    classes: tuple[str, ...]
    protocol: str

    @property
    def predicted(self) -> np.ndarray:
        return self.probs.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        return self.probs.max(axis=1)

    @property
    def entropy(self) -> np.ndarray:
        """Annotator disagreement in bits (0 where there are no votes)."""
        return vote_entropy(self.votes) if self.votes is not None else np.zeros(len(self.labels))


def face_set(data: Dataset, predictions: dict[str, np.ndarray], protocol: str) -> FaceSet:
    """Join stored predictions (``evaluation.load_predictions``) with the faces and votes of
    ``data``, by image name."""
    idx = data.indices_of(predictions["names"])
    return FaceSet(images=data.images[idx], labels=np.asarray(predictions["labels"]),
                     probs=np.asarray(predictions["probs"], dtype=np.float32),
                     votes=None if data.votes is None else data.votes[idx],
                     names=np.asarray(predictions["names"]), classes=tuple(data.classes), protocol=protocol)


def select(faces: FaceSet, true_class: int | None = None, predicted_class: int | None = None,
           correct: bool | None = None, confidence=(0.0, 1.0), entropy=(0.0, np.inf),
           sort: str = "confidence_desc", limit: int | None = None) -> np.ndarray:
    """Indices of the faces that pass every filter, in ``sort`` order (``SORTS``).

    ``None`` leaves a filter open; ``confidence`` and ``entropy`` are closed ranges. A
    confusion-matrix cell is ``true_class`` and ``predicted_class`` together.
    """
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {SORTS}, got {sort!r}")
    for name, (low, high) in (("confidence", confidence), ("entropy", entropy)):
        if low > high:
            raise ValueError(f"{name} range must be (low, high) with low ≤ high, got {(low, high)}")
    keep = np.ones(len(faces.labels), dtype=bool)
    if true_class is not None:
        keep &= faces.labels == true_class
    if predicted_class is not None:
        keep &= faces.predicted == predicted_class
    if correct is not None:
        keep &= (faces.labels == faces.predicted) == correct
    keep &= (faces.confidence >= confidence[0]) & (faces.confidence <= confidence[1])
    keep &= (faces.entropy >= entropy[0]) & (faces.entropy <= entropy[1])
    idx = np.flatnonzero(keep)
    if sort != "index":
        key = faces.confidence if sort.startswith("confidence") else faces.entropy
        order = np.argsort(key[idx], kind="stable")
        idx = idx[order[::-1] if sort.endswith("desc") else order]
    return idx[:limit] if limit is not None else idx


class GradcamCache:
    """Grad-CAM maps by (face, class), computed on first request and kept (at most ``size``)."""

    def __init__(self, model, size: int = 256):
        self.model, self.size, self.maps = model, size, OrderedDict()

    def get(self, image: np.ndarray, key, class_index: int) -> np.ndarray:
        k = (key, int(class_index))
        if k not in self.maps:
            self.maps[k] = gradcam_heatmaps(self.model, image[None], int(class_index))[0]
            if len(self.maps) > self.size:
                self.maps.popitem(last=False)
        self.maps.move_to_end(k)
        return self.maps[k]


def face_detail(faces: FaceSet, i: int, cache: GradcamCache | None = None) -> dict:
    """One face: its probabilities and annotator votes by name, true and predicted class, and
    (with a cache) the Grad-CAM maps of the predicted and of the true class."""
    i = int(i)
    if not 0 <= i < len(faces.labels):
        raise IndexError(f"face {i} is not among the {len(faces.labels)} faces")
    pred, true = int(faces.predicted[i]), int(faces.labels[i])
    out = {"index": i, "name": str(faces.names[i]), "true": true, "predicted": pred,
           "probabilities": dict(zip(faces.classes, map(float, faces.probs[i]))),
           "votes": None if faces.votes is None else dict(zip(VOTE_COLUMNS, map(int, faces.votes[i]))),
           "entropy": float(faces.entropy[i])}
    if cache is not None:
        out["gradcam_predicted"] = cache.get(faces.images[i], faces.names[i], pred)
        out["gradcam_true"] = cache.get(faces.images[i], faces.names[i], true)
    return out


def vote_labels(language: str = "tr") -> list[str]:
    """Names of the ten FER+ vote columns (``VOTE_COLUMNS`` order) in ``language``."""
    emotion = dict(zip(CLASSES, display_names(CLASSES, language)))
    extra = {"unknown": {"tr": "belirsiz", "en": "unknown"}, "NF": {"tr": "yüz değil", "en": "not a face"}}
    return [extra[c][language] if c in extra else emotion[c.capitalize()] for c in VOTE_COLUMNS]


# --------------------------------------------------------------------------- photos

def read_photo(content: bytes, name: str = "photo") -> np.ndarray:
    """An uploaded file's bytes as an upright 8-bit gray array; ValueError with a message a
    person can read for anything that is not a photo of a sensible size."""
    try:
        with Image.open(io.BytesIO(content)) as im:
            if im.width * im.height > MAX_PHOTO_PIXELS:
                raise ValueError(f"{name}: {im.width}×{im.height} pixels is too large (at most "
                                 f"{MAX_PHOTO_PIXELS // 1_000_000} megapixels)")
            return np.asarray(to_gray8(ImageOps.exif_transpose(im)), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{name}: not an image file ({exc.__class__.__name__})") from exc


def analyse_photo(gray: np.ndarray, model, detector=None, margin: float = 0.2) -> list[dict]:
    """Every face in a gray photo: box, 48×48 crop, class probabilities and the Grad-CAM map of
    the predicted class (48×48, in [0, 1]). ``detector`` is a ``make_detector`` function
    (MTCNN when None). An empty list means no face was found."""
    detect = detector or make_detector("mtcnn")
    boxes = detect(gray)
    if not boxes:
        return []
    crops = np.stack([crop_face(gray, box, margin) for box in boxes])
    probs = predict_proba(model, crops)
    pred = probs.argmax(axis=1)
    maps = gradcam_heatmaps(model, crops, pred)
    return [{"box": tuple(int(v) for v in box), "crop": crop, "probabilities": p, "predicted": int(k),
             "gradcam": m} for box, crop, p, k, m in zip(boxes, crops, probs, pred, maps)]


def bundled_photos() -> dict[str, Path]:
    """Public-domain example photos that an installed package ships (scikit-image's astronaut)."""
    try:
        from skimage import data as samples
    except ImportError:
        return {}
    folder = Path(samples.__file__).parent
    return {p.stem: p for p in sorted(folder.glob("astronaut.png"))}
