"""Using a trained model outside the notebooks: faces in real photos, other data sets.

* ``predict_paths`` finds faces in arbitrary photos with OpenCV's Haar cascade
  (shipped inside ``opencv-python-headless``, so it works offline), crops each
  with a margin, converts it to 48×48 gray and predicts the class
  probabilities. Images that are already 48×48 gray skip detection. A file
  that cannot be read, or a photo without a face, becomes a row that says so;
  the batch goes on.
* ``evaluate_dataset`` evaluates a model on any supported layout whose class
  set may be a subset of the model's (predictions renormalised over the shared
  classes).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from .data import IMAGE_SUFFIXES, Dataset, to_gray8
from .evaluation import bootstrap_ci, classification_metrics, expected_calibration_error
from .labels import CLASSES, CLASSES_7, display_names
from .models import ModelError, predict_proba


@dataclass
class FacePrediction:
    """One row of ``predict``: a face in a file (or why there is none)."""

    file: str
    face: int = -1                       # index of the face in the file, -1 for none
    box: tuple[int, int, int, int] | None = None   # x, y, width, height in the original image
    label: str | None = None
    confidence: float | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    status: str = "ok"                   # "ok", "no face found", "pre-cropped", or "error: …"

    def as_dict(self) -> dict:
        d = asdict(self)
        d["box"] = list(self.box) if self.box else None
        return d


def model_classes(model) -> tuple[str, ...]:
    """Class names of a model's outputs: 8 → FER+ classes, 7 → original FER2013 classes."""
    n = int(model.output_shape[-1])
    if n == len(CLASSES):
        return CLASSES
    if n == len(CLASSES_7):
        return CLASSES_7
    raise ModelError(f"model has {n} outputs; expected {len(CLASSES)} (FER+) or {len(CLASSES_7)} (FER2013) classes")


def _folder_images(folder: Path, problems: list[tuple[Path, str]]) -> list[Path]:
    """Image files under ``folder``, recursively, each real folder once (a symlink loop is
    followed no further), with the subfolders that could not be read added to ``problems``."""
    found, seen = [], set()

    def walk(d: Path):
        try:
            key = d.resolve()
            if key in seen:
                problems.append((d, "folder link loop, skipped"))
                return
            seen.add(key)
            entries = sorted(d.iterdir())
        except OSError as exc:
            problems.append((d, f"cannot read folder ({exc.__class__.__name__})"))
            return
        for e in entries:
            if e.is_dir():
                walk(e)
            elif e.is_file() and e.suffix.lower() in IMAGE_SUFFIXES:
                found.append(e)

    walk(folder)
    return found


def image_files(paths, problems: list | None = None) -> list[Path]:
    """Files named directly, plus image files found (recursively) in named folders, in order.
    A folder without images and an unreadable subfolder go to ``problems`` as (path, reason)."""
    out, problems = [], problems if problems is not None else []
    for p in map(Path, paths):
        if p.is_dir():
            found = _folder_images(p, problems)
            if not found:
                problems.append((p, "no image files in this folder"))
            out += found
        else:
            out.append(p)
    return out


def read_gray(path: Path) -> np.ndarray:
    """Any image file as a 2-D uint8 gray array (raises ValueError naming the file)."""
    if not path.exists():
        raise ValueError(f"{path}: file not found")
    try:
        with Image.open(path) as im:
            # A phone stores a portrait photo sideways with an EXIF orientation tag; apply it, or
            # the detector looks for upright faces in a rotated picture.
            return np.asarray(to_gray8(ImageOps.exif_transpose(im)), dtype=np.uint8)
    except Image.DecompressionBombError as exc:
        raise ValueError(f"{path}: image too large to decode safely ({exc})") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{path}: not a readable image ({exc.__class__.__name__})") from exc


#: Face detectors ``predict`` offers: MTCNN (Zhang et al., 2016; its weights ship inside the
#: ``mtcnn`` wheel, it runs on TensorFlow) finds far more faces than OpenCV's Haar cascade, which
#: stays as the light fallback (benchmarks/detector_benchmark.py measures both).
DETECTORS = ("mtcnn", "haar")


def _cascade():
    import cv2

    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"{path}: OpenCV face cascade could not be loaded")
    return cascade


def detect_faces(gray: np.ndarray, cascade=None, min_size: int = 30) -> list[tuple[int, int, int, int]]:
    """Face boxes (x, y, w, h), largest first, from OpenCV's frontal-face Haar cascade."""
    cascade = cascade or _cascade()
    boxes = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size))
    return sorted((tuple(int(v) for v in b) for b in boxes), key=lambda b: -b[2] * b[3])


def make_detector(name: str = "mtcnn", min_size: int = 30, min_confidence: float = 0.9):
    """A function gray image → face boxes (x, y, w, h), largest first, for detector ``name``.

    MTCNN looks at a three-channel image; a gray photo is given as three equal channels.
    Boxes below ``min_size`` pixels or MTCNN's ``min_confidence`` are dropped.
    """
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; choose one of {DETECTORS}")
    if name == "haar":
        cascade = _cascade()
        return lambda gray: detect_faces(gray, cascade, min_size)
    try:
        from mtcnn import MTCNN
    except ImportError as exc:
        raise ValueError("the mtcnn detector needs the 'mtcnn' package (pip install mtcnn); "
                         "--detector haar works without it") from exc
    mtcnn = MTCNN()

    def detect(gray: np.ndarray) -> list[tuple[int, int, int, int]]:
        found = mtcnn.detect_faces(np.repeat(gray[..., None], 3, axis=2))
        boxes = [tuple(max(0, int(v)) for v in f["box"]) for f in found if f["confidence"] >= min_confidence]
        boxes = [b for b in boxes if min(b[2], b[3]) >= min_size]
        return sorted(boxes, key=lambda b: -b[2] * b[3])

    return detect


def crop_face(gray: np.ndarray, box, margin: float = 0.2) -> np.ndarray:
    """A square crop around ``box`` enlarged by ``margin`` on each side, resized to 48×48."""
    x, y, w, h = box
    side = int(round(max(w, h) * (1 + 2 * margin)))
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    # Pad with edge pixels where the enlarged square leaves the image.
    pad = max(0, -x0, -y0, x0 + side - gray.shape[1], y0 + side - gray.shape[0])
    padded = np.pad(gray, pad, mode="edge") if pad else gray
    crop = padded[y0 + pad: y0 + pad + side, x0 + pad: x0 + pad + side]
    return np.asarray(Image.fromarray(crop).resize((48, 48), Image.Resampling.BILINEAR), dtype=np.uint8)


def predict_paths(paths, model, language: str = "en", margin: float = 0.2, batch_size: int = 256,
                  progress: bool = False, detector: str | None = "mtcnn") -> list[FacePrediction]:
    """Predict every face in every file; never stops on a bad file.

    ``detector`` names the face detector (``DETECTORS``); ``None`` takes every image as one
    face already cropped, whatever its size (resized to 48×48). A 48×48 image is always
    taken as a crop.
    """
    classes = model_classes(model)
    detect = None
    rows: list[FacePrediction] = []
    crops: list[np.ndarray] = []
    problems: list[tuple[Path, str]] = []
    files = image_files(paths, problems)
    # Every input gets a row: folders without images and unreadable subfolders too.
    rows += [FacePrediction(file=str(p), status=f"error: {why}") for p, why in problems]
    iterator = files
    if progress:
        from tqdm import tqdm

        iterator = tqdm(files, desc="görüntüler / images", unit="file")
    for f in iterator:
        try:
            gray = read_gray(f)
        except ValueError as exc:
            rows.append(FacePrediction(file=str(f), status=f"error: {exc}"))
            continue
        if gray.shape == (48, 48) or detector is None:
            h, w = gray.shape
            rows.append(FacePrediction(file=str(f), face=0, box=(0, 0, w, h), status="pre-cropped"))
            crops.append(gray if gray.shape == (48, 48) else
                         np.asarray(Image.fromarray(gray).resize((48, 48), Image.Resampling.BILINEAR)))
            continue
        detect = detect or make_detector(detector)
        boxes = detect(gray)
        if not boxes:
            rows.append(FacePrediction(file=str(f), status="no face found"))
        for k, box in enumerate(boxes):
            rows.append(FacePrediction(file=str(f), face=k, box=box))
            crops.append(crop_face(gray, box, margin))
    if crops:
        probs = predict_proba(model, np.stack(crops), batch_size=batch_size)
        names = display_names(classes, language)
        with_face = [r for r in rows if r.face >= 0]
        for r, p in zip(with_face, probs):
            k = int(p.argmax())
            r.label, r.confidence = names[k], float(p[k])
            r.probabilities = {n: float(v) for n, v in zip(names, p)}
    return rows


def unique_name(folder: Path, stem: str, suffix: str, used: set[str]) -> Path:
    """``folder/stem+suffix``, or ``stem_2``, ``stem_3``, … when an earlier output of this call took
    the name (two inputs a/photo.jpg and b/photo.jpg must not overwrite each other)."""
    name, k = f"{stem}{suffix}", 1
    while name in used:
        k += 1
        name = f"{stem}_{k}{suffix}"
    used.add(name)
    return folder / name


def check_output_folder(path) -> Path:
    """``path`` as a folder that can be written, checked before any work (a clear error, not a
    traceback after minutes of predictions)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path}: exists and is not a folder")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"{path}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"{path}: {probe} is not writable")
    return path


def annotate(rows: list[FacePrediction], out_dir) -> list[Path]:
    """Copies of the input photos with a box and "label (confidence)" per face."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 16)   # Turkish letters need a real font
    except OSError:
        font = ImageFont.load_default()
    written = []
    by_file: dict[str, list[FacePrediction]] = {}
    for r in rows:
        if r.face >= 0:
            by_file.setdefault(r.file, []).append(r)
    used: set[str] = set()
    for file, faces in by_file.items():
        with Image.open(file) as im:
            # The boxes were found on the upright picture (read_gray applies EXIF orientation).
            canvas = ImageOps.exif_transpose(im).convert("RGB")
        draw = ImageDraw.Draw(canvas)
        for r in faces:
            x, y, w, h = r.box
            draw.rectangle([x, y, x + w, y + h], outline=(46, 204, 113), width=max(1, canvas.width // 200))
            draw.text((x, max(0, y - 18)), f"{r.label} ({r.confidence:.0%})", fill=(46, 204, 113), font=font)
        target = unique_name(out_dir, f"{Path(file).stem}_annotated", ".png", used)
        canvas.save(target)
        written.append(target)
    return written


def evaluate_dataset(model, data: Dataset, split: str | None = "test", n_boot: int = 1000,
                     seed: int = 0) -> dict:
    """Metrics of ``model`` on ``data`` restricted to the classes both know.

    The model's probabilities are kept only for the shared classes and
    renormalised, so a data set without, say, Contempt is scored fairly.
    """
    classes = model_classes(model)
    shared = [c for c in data.classes if c in classes]
    if len(shared) < 2:
        raise ValueError(f"{data.source}: shares only {shared} with the model; need at least two classes")
    subset = data.get_split(split) if split else data
    keep = np.isin(np.asarray(data.classes)[subset.labels], shared)
    subset = subset.subset(keep)
    labels = np.array([shared.index(data.classes[y]) for y in subset.labels], dtype=np.int64)
    probs = predict_proba(model, subset.images)[:, [classes.index(c) for c in shared]]
    probs = probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)
    m = classification_metrics(labels, probs, shared)
    m["ci"] = bootstrap_ci(labels, probs.argmax(axis=1), n_boot=n_boot, seed=seed)
    m["calibration"] = expected_calibration_error(labels, probs)
    return {"source": data.source, "layout": data.layout, "split": split or "all",
            "shared_classes": shared, "model_classes": list(classes),
            "dropped_classes": [c for c in data.classes if c not in classes],
            "n": int(len(labels)), "metrics": m}
