"""Loading FER data from any of its usual layouts into one small dataclass.

``load_dataset(path, label_mode=...)`` is the one public entry point. It
detects the layout, decodes the images once (then reuses a cached ``.npz``),
turns FER+ votes into labels, and assigns train/val/test splits. Images that
a label rule excludes are counted in ``Dataset.excluded``, never dropped
silently.

Layouts:

* ``ferplus``  - the official FER+ folders ``FER2013Train/``, ``FER2013Valid/``,
  ``FER2013Test/`` with PNGs and a ``label.csv`` each.
* ``fer2013csv`` - the original ``fer2013.csv`` (emotion, pixels, Usage), joined
  row by row with ``fer2013new.csv`` for FER+ votes when that file is beside it.
* ``folders`` - class-per-folder trees (``train/``, ``test/``, optional
  ``validation/`` or ``val/``), as in the Kaggle mirrors.
* ``demo`` - the built-in synthetic faces (``path="demo"``).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from . import demo
from .labels import (
    CLASSES,
    CLASSES_7,
    FER2013_EMOTIONS,
    FOLDER_ALIASES,
    LABEL_MODES,
    VOTE_COLUMNS,
    labels_from_votes,
    vote_distribution,
)

IMAGE_SIZE = 48
FERPLUS_SPLITS = {"FER2013Train": "train", "FER2013Valid": "val", "FER2013Test": "test"}
CSV_USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
FOLDER_SPLITS = {"train": "train", "training": "train", "validation": "val", "val": "val",
                 "valid": "val", "test": "test", "testing": "test"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
_CACHE_VERSION = 2
#: Largest vote count accepted in a label file (FER+ has 10 annotators; votes are stored as int16).
MAX_VOTES = 1000
DEMO_PATH = "demo"


class DataError(ValueError):
    """Raised when a data source is missing, malformed or in no known layout."""


@dataclass
class RawData:
    """What a layout reader decodes, before label rules and splits (this is cached)."""

    images: np.ndarray            # N×48×48 uint8
    names: np.ndarray             # N identifiers (file name or csv row)
    source_split: np.ndarray      # N names of the original split (folder or Usage)
    split: np.ndarray             # N of "train"/"val"/"test" (the layout's own split)
    classes: tuple[str, ...]
    votes: np.ndarray | None = None       # N×10 FER+ votes, or None
    labels: np.ndarray | None = None      # N hard labels where the layout has no votes
    pre_excluded: dict[str, int] = field(default_factory=dict)  # dropped while reading
    n_converted: int = 0
    regions: np.ndarray | None = None     # demo only: N×48×48 expression-region masks
    label_file: str = ""                  # file the votes/labels came from (for messages)


@dataclass
class Dataset:
    """Images with labels, ready for preprocessing.

    ``labels`` index ``classes``; ``votes`` are the raw FER+ counts (columns in
    ``fer_helpers.labels.VOTE_COLUMNS`` order) or None; ``soft_labels`` is the
    vote distribution (``distribution`` mode only); ``split`` says where each
    image serves (train/val/test) and ``source_split`` where it came from.
    """

    images: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    classes: tuple[str, ...]
    votes: np.ndarray | None
    soft_labels: np.ndarray | None
    names: np.ndarray
    source_split: np.ndarray
    label_mode: str
    layout: str
    source: str
    excluded: dict[str, int]
    n_converted: int = 0
    regions: np.ndarray | None = None
    validation: str = "official"   # "official" or "from_train(<fraction>)"

    @property
    def is_demo(self) -> bool:
        return self.layout == "demo"

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask) -> "Dataset":
        """A new Dataset with only the rows selected by a boolean mask or index array."""
        take = lambda a: None if a is None else a[mask]  # noqa: E731
        return replace(
            self, images=self.images[mask], labels=self.labels[mask], split=self.split[mask],
            votes=take(self.votes), soft_labels=take(self.soft_labels), names=self.names[mask],
            source_split=self.source_split[mask], regions=take(self.regions),
        )

    def get_split(self, name: str) -> "Dataset":
        """Rows whose ``split`` equals ``name`` ("train", "val" or "test")."""
        return self.subset(self.split == name)

    def indices_of(self, names) -> np.ndarray:
        """Row indices of the images called ``names`` (e.g. names stored with predictions)."""
        position = {n: i for i, n in enumerate(self.names.tolist())}
        try:
            return np.array([position[n] for n in np.asarray(names).tolist()], dtype=np.int64)
        except KeyError as exc:
            raise DataError(f"{self.source}: image {exc.args[0]!r} is not in this data set") from exc

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per split and class: ``{split: {class: count}}``."""
        out = {}
        for s in ("train", "val", "test"):
            lab = self.labels[self.split == s]
            out[s] = {c: int((lab == i).sum()) for i, c in enumerate(self.classes)}
        return out

    def summary(self) -> dict:
        """A JSON-ready description for run metadata and the report."""
        return {
            "layout": self.layout, "source": self.source, "is_demo": self.is_demo,
            "label_mode": self.label_mode, "classes": list(self.classes),
            "validation": self.validation, "n_images": int(len(self)),
            "split_sizes": {s: int((self.split == s).sum()) for s in ("train", "val", "test")},
            "source_split_sizes": {s: int((self.source_split == s).sum())
                                   for s in sorted(set(self.source_split.tolist()))},
            "counts": self.counts(), "excluded": dict(self.excluded),
            "n_converted": int(self.n_converted), "has_votes": self.votes is not None,
        }


# --------------------------------------------------------------------------- layout detection

def _child(path: Path, name: str) -> Path | None:
    """Case-insensitive lookup of a direct child called ``name``."""
    if not path.is_dir():
        return None
    for entry in path.iterdir():
        if entry.name.lower() == name.lower():
            return entry
    return None


def detect_layout(path: str | os.PathLike) -> str:
    """Name of the layout found at ``path``; raises DataError naming what was looked for."""
    p = Path(path)
    if str(path) == DEMO_PATH:
        return "demo"
    if not p.exists():
        raise DataError(f"{p}: data path does not exist")
    if p.is_file():
        if p.suffix.lower() == ".npz":
            return "bundle"
        if p.suffix.lower() == ".csv" and _csv_header(p)[:3] == ["emotion", "pixels", "Usage"]:
            return "fer2013csv"
        raise DataError(f"{p}: a file, but neither an original fer2013.csv "
                        "(expected the header 'emotion,pixels,Usage') nor a .npz bundle (pack_dataset)")
    if _child(p, "FER2013Train") is not None:
        return "ferplus"
    if _child(p, "fer2013.csv") is not None:
        return "fer2013csv"
    if _child(p, "train") is not None and _child(p, "test") is not None:
        return "folders"
    raise DataError(
        f"{p}: no known FER layout. Expected one of: FER2013Train/ FER2013Valid/ FER2013Test/ "
        "(FER+ official), fer2013.csv (original, optionally with fer2013new.csv), or "
        "train/ test/ [validation/] with one folder per class.")


def _csv_header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return next(csv.reader(f), [])


# --------------------------------------------------------------------------- image decoding

def to_gray8(im: Image.Image) -> Image.Image:
    """An 8-bit gray ("L") copy of a PIL image. 16- and 32-bit gray images are scaled from their
    full range (PIL's own conversion clips them, which turns a 16-bit face all white)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return Image.fromarray(np.clip(np.round(arr * (255.0 / top)), 0, 255).astype(np.uint8), "L")
    if im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        scale = 255.0 if arr.max() <= 1.0 else 1.0
        return Image.fromarray(np.clip(np.round(arr * scale), 0, 255).astype(np.uint8), "L")
    return im if im.mode == "L" else im.convert("L")


def decode_image(path: Path) -> tuple[np.ndarray, bool]:
    """48×48 uint8 grayscale array from an image file, and whether it was converted."""
    try:
        with Image.open(path) as im:
            im.load()
            converted = im.mode != "L" or im.size != (IMAGE_SIZE, IMAGE_SIZE)
            im = to_gray8(im)
            if im.size != (IMAGE_SIZE, IMAGE_SIZE):
                im = im.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
            return np.asarray(im, dtype=np.uint8), converted
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: cannot decode image ({exc})") from exc


def _decode_many(paths: list[Path]) -> tuple[np.ndarray, int]:
    """Decode images in parallel threads (PIL's decoder releases the GIL)."""
    out = np.empty((len(paths), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    n_converted = 0
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        for i, (arr, conv) in enumerate(pool.map(decode_image, paths, chunksize=256)):
            out[i] = arr
            n_converted += conv
    return out, n_converted


# --------------------------------------------------------------------------- FER+ official layout

def _read_label_csv(path: Path) -> tuple[list[str], np.ndarray]:
    """Image names and N×10 vote counts from a FER+ ``label.csv`` (no header)."""
    names, votes, seen = [], [], {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        for row_no, row in enumerate(csv.reader(f), start=1):
            if not row:
                continue
            if len(row) != 2 + len(VOTE_COLUMNS):
                raise DataError(f"{path}, row {row_no}: expected {2 + len(VOTE_COLUMNS)} fields "
                                f"(name, face box, {len(VOTE_COLUMNS)} votes), got {len(row)}")
            try:
                counts = [int(v) for v in row[2:]]
            except ValueError as exc:
                raise DataError(f"{path}, row {row_no}: vote counts must be integers ({exc})") from exc
            if min(counts) < 0:
                raise DataError(f"{path}, row {row_no}: negative vote count")
            if max(counts) > MAX_VOTES:
                raise DataError(f"{path}, row {row_no}: vote count {max(counts)} is implausible "
                                f"(FER+ has 10 annotators per image; at most {MAX_VOTES} accepted)")
            if row[0] in seen:
                raise DataError(f"{path}, row {row_no}: image {row[0]} is listed twice "
                                f"(first in row {seen[row[0]]}); each image needs one row of votes")
            seen[row[0]] = row_no
            names.append(row[0])
            votes.append(counts)
    return names, np.array(votes, dtype=np.int16).reshape(-1, len(VOTE_COLUMNS))


def _read_ferplus(root: Path) -> RawData:
    images, names, src, splits, votes, n_conv = [], [], [], [], [], 0
    for folder_name, split in FERPLUS_SPLITS.items():
        folder = _child(root, folder_name)
        if folder is None:
            if split == "val":
                continue  # validation then comes from train
            raise DataError(f"{root}: FER+ layout without {folder_name}/")
        label_csv = folder / "label.csv"
        if not label_csv.is_file():
            raise DataError(f"{folder}: missing label.csv")
        row_names, row_votes = _read_label_csv(label_csv)
        if not row_names:
            raise DataError(f"{label_csv}: empty split (no rows)")
        paths = [folder / n for n in row_names]
        for row_no, p in enumerate(paths, start=1):
            if not p.is_file():
                raise DataError(f"{label_csv}, row {row_no}: image {p.name} not found in {folder}")
        imgs, conv = _decode_many(paths)
        images.append(imgs)
        names += row_names
        src += [folder_name] * len(row_names)
        splits += [split] * len(row_names)
        votes.append(row_votes)
        n_conv += conv
    return RawData(
        images=np.concatenate(images), names=np.array(names), source_split=np.array(src),
        split=np.array(splits), classes=CLASSES, votes=np.concatenate(votes), n_converted=n_conv,
        label_file=str(root / "*/label.csv"),
    )


# --------------------------------------------------------------------------- original fer2013.csv

def parse_pixels(text: str, where: str = "pixels") -> np.ndarray:
    """48×48 uint8 image from fer2013.csv's space-separated pixel string.

    Raises DataError naming ``where`` unless the string holds exactly 2,304
    integers in 0-255.
    """
    parts = str(text).split()
    n = IMAGE_SIZE * IMAGE_SIZE
    if len(parts) != n:
        raise DataError(f"{where}: pixel string has {len(parts)} values, expected {n}")
    try:
        values = np.array([int(v) for v in parts], dtype=np.int64)
    except ValueError as exc:
        raise DataError(f"{where}: pixel string contains a non-integer value ({exc})") from exc
    if values.min() < 0 or values.max() > 255:
        raise DataError(f"{where}: pixel values must lie in 0-255, "
                        f"found {values.min()}..{values.max()}")
    return values.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE)


def _read_fer2013_csv(path: Path) -> RawData:
    csv_path = path if path.is_file() else _child(path, "fer2013.csv")
    new_path = _child(csv_path.parent, "fer2013new.csv")
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise DataError(f"{csv_path}: empty file (no data rows)")
    missing = {"emotion", "pixels", "Usage"} - set(rows[0])
    if missing:
        raise DataError(f"{csv_path}: missing column(s) {sorted(missing)}")
    images = np.empty((len(rows), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    usage = []
    for i, row in enumerate(rows):
        where = f"{csv_path}, data row {i + 1}"
        images[i] = parse_pixels(row["pixels"], where)
        if row["Usage"] not in CSV_USAGE:
            raise DataError(f"{where}: unknown Usage {row['Usage']!r}, expected {sorted(CSV_USAGE)}")
        usage.append(row["Usage"])
    names = np.array([f"fer2013.csv:{i + 1}" for i in range(len(rows))])
    usage = np.array(usage)
    if new_path is None:
        try:
            emo = np.array([int(r["emotion"]) for r in rows])
        except ValueError as exc:
            raise DataError(f"{csv_path}: emotion column must hold integers 0-6 ({exc})") from exc
        if emo.min() < 0 or emo.max() > 6:
            bad = int(np.flatnonzero((emo < 0) | (emo > 6))[0])
            raise DataError(f"{csv_path}, data row {bad + 1}: emotion {emo[bad]} outside 0-6")
        labels = np.array([CLASSES_7.index(FER2013_EMOTIONS[e]) for e in emo])
        return RawData(images=images, names=names, source_split=usage,
                       split=np.array([CSV_USAGE[u] for u in usage]), classes=CLASSES_7,
                       labels=labels, label_file=str(csv_path))
    # FER+ votes: fer2013new.csv has one row per fer2013.csv row, same order.
    with open(new_path, newline="", encoding="utf-8-sig") as f:
        new_rows = list(csv.DictReader(f))
    if len(new_rows) != len(rows):
        raise DataError(f"{new_path}: has {len(new_rows)} rows but {csv_path.name} has "
                        f"{len(rows)}; the files must match row by row")
    missing = set(VOTE_COLUMNS) - set(new_rows[0]) if new_rows else set(VOTE_COLUMNS)
    if missing:
        raise DataError(f"{new_path}: missing vote column(s) {sorted(missing)}")
    has_label = np.array([bool((r.get("Image name") or "").strip()) for r in new_rows])
    votes = np.zeros((len(rows), len(VOTE_COLUMNS)), dtype=np.int16)
    for i, r in enumerate(new_rows):
        if has_label[i]:
            try:
                counts = [int(r[c]) for c in VOTE_COLUMNS]
            except ValueError as exc:
                raise DataError(f"{new_path}, data row {i + 1}: vote counts must be integers") from exc
            if min(counts) < 0 or max(counts) > MAX_VOTES:
                raise DataError(f"{new_path}, data row {i + 1}: vote counts must lie in 0..{MAX_VOTES}, "
                                f"got {counts}")
            votes[i] = counts
    pre = {u: int(((usage == u) & ~has_label).sum()) for u in CSV_USAGE if ((usage == u) & ~has_label).any()}
    keep = has_label
    return RawData(images=images[keep], names=names[keep], source_split=usage[keep],
                   split=np.array([CSV_USAGE[u] for u in usage[keep]]), classes=CLASSES,
                   votes=votes[keep], pre_excluded=pre, label_file=str(new_path))


# --------------------------------------------------------------------------- class-per-folder trees

def _read_folders(root: Path) -> RawData:
    entries = []  # (path, class name, split, source split)
    for split_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        split = FOLDER_SPLITS.get(split_dir.name.lower())
        if split is None:
            continue
        class_dirs = [p for p in sorted(split_dir.iterdir()) if p.is_dir()]
        if not class_dirs:
            raise DataError(f"{split_dir}: empty split (no class folders)")
        n_before = len(entries)
        for class_dir in class_dirs:
            cls = FOLDER_ALIASES.get(class_dir.name.lower())
            if cls is None:
                raise DataError(f"{class_dir}: unknown class folder {class_dir.name!r}; "
                                f"expected one of {sorted(FOLDER_ALIASES)}")
            for f in sorted(class_dir.iterdir()):
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                    entries.append((f, cls, split, split_dir.name))
        if len(entries) == n_before:
            raise DataError(f"{split_dir}: empty split (no images in its class folders)")
    present = {e[1] for e in entries}
    classes = tuple(c for c in CLASSES if c in present)
    images, n_conv = _decode_many([e[0] for e in entries])
    return RawData(
        images=images, names=np.array([str(e[0].relative_to(root)) for e in entries]),
        source_split=np.array([e[3] for e in entries]), split=np.array([e[2] for e in entries]),
        classes=classes, labels=np.array([classes.index(e[1]) for e in entries]),
        n_converted=n_conv, label_file=str(root),
    )


def _demo_raw(n: int = 2400, seed: int = 0) -> RawData:
    faces = demo.make_demo_faces(n=n, seed=seed)
    src = np.char.add("Demo", np.char.capitalize(faces["split"]))
    return RawData(images=faces["images"], names=np.array([f"demo:{i}" for i in range(n)]),
                   source_split=src, split=faces["split"], classes=CLASSES, votes=faces["votes"],
                   regions=faces["regions"], label_file="demo")


#: One reader per layout. The demo set has no path to read; it is drawn (and then cached)
#: like any layout is decoded, because drawing takes seconds and every notebook loads it.
READERS = {"ferplus": _read_ferplus, "fer2013csv": _read_fer2013_csv, "folders": _read_folders,
           "demo": lambda _path: _demo_raw()}


# --------------------------------------------------------------------------- cache

def default_cache_dir() -> Path:
    """``$FER_CACHE_DIR`` if set, else ``~/.cache/fer_helpers``."""
    return Path(os.environ.get("FER_CACHE_DIR") or Path.home() / ".cache" / "fer_helpers")


def _signature(path: Path, layout: str) -> dict:
    """Sizes/mtimes of what a layout reads, so any edit invalidates the cache."""
    if layout == "demo":
        # The demo set is a pure function of its generator's code, so the code's
        # hash is its signature: editing ``demo.py`` draws the faces anew.
        code = hashlib.sha1(Path(demo.__file__).read_bytes()).hexdigest()
        return {"path": DEMO_PATH, "layout": layout, "version": _CACHE_VERSION, "code": code}

    def stat(p: Path) -> list:
        s = p.stat()
        return [p.name, s.st_size, s.st_mtime_ns]
    sig = {"path": str(path.resolve()), "layout": layout, "version": _CACHE_VERSION}
    if path.is_file():
        sig["files"] = [stat(path)] + ([stat(n)] if (n := _child(path.parent, "fer2013new.csv")) else [])
        return sig
    # Every file's name, size and modification time (one stat each, about 0.1 s for FER+'s
    # 35,000 images): an image replaced in place changes its entry even when its folder's
    # listing and modification time do not. The entries are hashed, so the key stays short.
    digest = hashlib.sha1()

    def add_files(folder: str, entries) -> None:
        for entry in entries:
            if entry.is_file():
                st = entry.stat()
                digest.update(f"{folder}/{entry.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())

    for sub in sorted(os.scandir(path), key=lambda e: e.name):
        if sub.is_file() and sub.name.lower().endswith(".csv"):
            digest.update(repr(stat(Path(sub.path))).encode())
        elif sub.is_dir():
            entries = sorted(os.scandir(sub.path), key=lambda e: e.name)
            add_files(sub.name, entries)
            for inner in (e for e in entries if e.is_dir()):       # class folders one level down
                add_files(f"{sub.name}/{inner.name}", sorted(os.scandir(inner.path), key=lambda e: e.name))
    sig["files"] = digest.hexdigest()
    return sig


def _cache_paths(path: Path, layout: str, cache_dir: Path) -> tuple[Path, str]:
    sig = _signature(path, layout)
    prefix = hashlib.sha1(sig["path"].encode()).hexdigest()[:12]
    key = hashlib.sha1(json.dumps(sig, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir / f"{prefix}-{key}.npz", prefix


def _raw_arrays(raw: RawData) -> dict[str, np.ndarray]:
    """A RawData as named arrays for ``np.savez`` (``_load_raw`` reads them back)."""
    arrays = {k: getattr(raw, k) for k in ("images", "names", "source_split", "split",
                                           "votes", "labels", "regions") if getattr(raw, k) is not None}
    meta = {"classes": list(raw.classes), "pre_excluded": raw.pre_excluded,
            "n_converted": raw.n_converted, "label_file": raw.label_file}
    return {**arrays, "meta": np.array(json.dumps(meta))}


def _save_raw(raw: RawData, target: Path, prefix: str) -> None:
    from .artifacts import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, **_raw_arrays(raw))       # uncompressed: the cached reload must stay well under 1 s
    # Temporary file + rename: a killed process never leaves half a cache.
    atomic_write_bytes(target, buf.getvalue())
    for old in target.parent.glob(f"{prefix}-*.npz"):
        if old != target:
            old.unlink(missing_ok=True)


def _raw_from_arrays(arrays) -> RawData:
    """The inverse of ``_raw_arrays``: a RawData from named arrays (an open npz or a dict)."""
    meta = json.loads(str(arrays["meta"]))
    get = lambda k: arrays[k] if k in arrays else None  # noqa: E731
    return RawData(images=arrays["images"], names=arrays["names"], source_split=arrays["source_split"],
                   split=arrays["split"], votes=get("votes"), labels=get("labels"), regions=get("regions"),
                   classes=tuple(meta["classes"]), pre_excluded=meta["pre_excluded"],
                   n_converted=meta["n_converted"], label_file=meta["label_file"])


def _load_raw(path: Path) -> RawData:
    with np.load(path, allow_pickle=False) as z:
        return _raw_from_arrays({k: z[k] for k in z.files})


def _read_bundle(path: Path) -> RawData:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        # The pixels travel as one lossless PNG of the images stacked vertically: PNG's row
        # filters make it about a fifth smaller than the deflated array.
        png = arrays.pop("images_png")
        with Image.open(io.BytesIO(png.tobytes())) as im:
            arrays["images"] = np.asarray(im, dtype=np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
        return _raw_from_arrays(arrays)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: not a data bundle written by pack_dataset ({exc})") from exc


def pack_dataset(path, target, source_splits=None) -> Path:
    """Write the decoded images and votes/labels of ``path`` (any layout) into one ``.npz``
    bundle, itself a layout that ``load_dataset`` reads: a single file that carries a data set
    to a machine without the original folders (e.g. a lent GPU). ``source_splits`` keeps only
    those original splits (e.g. ``["FER2013Train"]``: a training machine then never holds the
    held-out images). It holds pixels: never commit it."""
    raw, _ = read_raw(path)
    target = Path(target)
    if target.suffix.lower() != ".npz":
        raise DataError(f"{target}: a data bundle's name must end in .npz")
    arrays = _raw_arrays(raw)
    if source_splits is not None:
        unknown = set(source_splits) - set(np.unique(raw.source_split))
        if unknown:
            raise DataError(f"{path}: no source split {sorted(unknown)}; it has {sorted(set(raw.source_split))}")
        keep = np.isin(raw.source_split, list(source_splits))
        arrays = {k: (v[keep] if v.ndim and len(v) == len(keep) else v) for k, v in arrays.items()}
    png = io.BytesIO()
    Image.fromarray(arrays.pop("images").reshape(-1, IMAGE_SIZE)).save(png, "PNG", compress_level=9)
    from .artifacts import atomic_write_bytes

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays, images_png=np.frombuffer(png.getvalue(), dtype=np.uint8))
    return atomic_write_bytes(target, buf.getvalue())


READERS["bundle"] = _read_bundle


def read_raw(path, cache_dir=None, use_cache: bool = True) -> tuple[RawData, str]:
    """Decoded images and votes/labels of ``path`` and its layout name, via the cache."""
    layout = detect_layout(path)
    p = Path(path)
    if not use_cache:
        return READERS[layout](p), layout
    cache_file, prefix = _cache_paths(p, layout, Path(cache_dir) if cache_dir else default_cache_dir())
    if cache_file.is_file():
        try:
            return _load_raw(cache_file), layout
        except (OSError, ValueError, KeyError):
            cache_file.unlink(missing_ok=True)  # a damaged cache is rebuilt, not trusted
    raw = READERS[layout](p)
    _save_raw(raw, cache_file, prefix)
    return raw, layout


# --------------------------------------------------------------------------- splits and labels

def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask choosing a stratified, seeded ``fraction`` of rows (sklearn)."""
    from sklearn.model_selection import train_test_split

    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must lie in (0, 1), got {fraction}")
    idx = np.arange(len(labels))
    # Classes with a single example cannot be stratified; they stay in train.
    uniq, cnt = np.unique(labels, return_counts=True)
    strat_ok = np.isin(labels, uniq[cnt >= 2])
    n_val = int(np.ceil(fraction * strat_ok.sum()))
    if n_val >= len(uniq[cnt >= 2]) and strat_ok.sum() - n_val >= len(uniq[cnt >= 2]):
        _, val_idx = train_test_split(idx[strat_ok], test_size=fraction, random_state=seed,
                                      stratify=labels[strat_ok])
    else:
        # Too few images for sklearn's stratifier: take round(fraction·count), at least one,
        # of every class with two or more images.
        rng = np.random.default_rng(seed)
        val_idx = np.concatenate([
            rng.choice(np.flatnonzero(labels == c), size=max(1, round(fraction * n)), replace=False)
            for c, n in zip(uniq, cnt) if n >= 2])
    mask = np.zeros(len(labels), dtype=bool)
    mask[val_idx] = True
    return mask


def resolve_data_dir(value: str | None = None) -> str:
    """An explicit path, else ``$FER_DATA_DIR``, else ``"demo"`` (the built-in demo data)."""
    value = (str(value) if value else "").strip() or os.environ.get("FER_DATA_DIR", "").strip()
    if not value or value == DEMO_PATH:
        return DEMO_PATH
    path = Path(value).expanduser().resolve()
    if not path.exists():
        raise DataError(f"{path}: data path does not exist (from data_dir / FER_DATA_DIR)")
    return str(path)


def pixel_statistics(data: Dataset) -> dict:
    """Mean and standard deviation of pixel intensities per split (0-255 scale)."""
    out = {}
    for s in ("train", "val", "test"):
        imgs = data.images[data.split == s]
        if len(imgs):
            out[s] = {"mean": float(imgs.mean()), "std": float(imgs.std()),
                      "min": int(imgs.min()), "max": int(imgs.max())}
    return out


def load_dataset(path=DEMO_PATH, label_mode: str = "plurality", val_fraction: float | None = None,
                 seed: int = 42, cache_dir=None, use_cache: bool = True, refit: bool = False) -> Dataset:
    """Load FER images and labels from ``path`` (or the demo set with ``path="demo"``).

    Parameters
    ----------
    path : str or Path
        A folder or file in one of the supported layouts, or ``"demo"``.
    label_mode : {"plurality", "majority", "distribution"}
        How FER+ votes become labels (ignored by layouts without votes, which
        carry their own single label).
    val_fraction : float or None
        If given, a stratified, seeded fraction of train becomes the
        validation split, and the layout's own validation images join the
        test split (so that both stay held out). Layouts without a validation
        split use 0.2 when this is None.
    seed : int
        Seed of that split.
    refit : bool
        Put the validation share drawn from train (``val_fraction``) back into
        train, leaving no validation split: the final fit on all training
        images once every choice has been made on validation. The held-out
        images stay held out; the split is drawn first, so a refit trains on
        exactly the images its validated twin trained and selected on.
    """
    if label_mode not in LABEL_MODES:
        raise ValueError(f"label_mode must be one of {LABEL_MODES}, got {label_mode!r}")
    raw, layout = read_raw(path, cache_dir=cache_dir, use_cache=use_cache)
    excluded = dict(raw.pre_excluded)
    soft = None
    if raw.votes is not None:
        zero = raw.votes.sum(axis=1) == 0
        if zero.any():
            i = int(np.flatnonzero(zero)[0])
            raise DataError(f"{raw.label_file}: vote row for {raw.names[i]} is all zeros "
                            f"({int(zero.sum())} such row(s)); every image needs at least one vote")
        labels = labels_from_votes(raw.votes, label_mode)
        if label_mode == "distribution":
            soft = vote_distribution(raw.votes)
    else:
        labels = raw.labels
    keep = labels >= 0
    for s in np.unique(raw.source_split[~keep]):
        excluded[str(s)] = excluded.get(str(s), 0) + int((raw.source_split[~keep] == s).sum())
    ds = Dataset(
        images=raw.images, labels=labels.astype(np.int64), split=raw.split.astype("<U5"),
        classes=tuple(raw.classes), votes=raw.votes, soft_labels=soft, names=raw.names,
        source_split=raw.source_split, label_mode=label_mode, layout=layout, source=str(path),
        excluded=excluded, n_converted=raw.n_converted, regions=raw.regions,
    ).subset(keep)
    if val_fraction is None and not (ds.split == "val").any():
        val_fraction = 0.2
    if val_fraction:
        split = ds.split.copy()
        split[split == "val"] = "test"       # the official validation images stay held out
        train = np.flatnonzero(split == "train")
        split[train[stratified_split(ds.labels[train], val_fraction, seed)]] = "val"
        ds.split = split
        ds.validation = f"from_train({val_fraction:g})"
    if refit:
        if not val_fraction:
            # Without a share drawn from train, the validation images are the layout's own
            # held-out ones (FER2013Valid), and training on them would spoil the P-seed protocol.
            raise ValueError("refit=True needs val_fraction > 0: only a validation share drawn from "
                             "train may join train; the layout's own validation images stay held out")
        ds.split = np.where(ds.split == "val", "train", ds.split)
        ds.validation = f"none (refit: from_train({val_fraction:g}) trained on)"
    # A bundle packed from the training images alone (pack_dataset's source_splits) has no
    # held-out split, by design: it trains, and evaluation happens where the held-out data is.
    required = [s for s in ("train", "val", "test") if not (s == "val" and refit)
                and not (s == "test" and layout == "bundle")]
    for s in required:
        if not (ds.split == s).any():
            raise DataError(f"{path}: empty split {s!r} after applying label mode {label_mode!r}")
    return ds


# --------------------------------------------------------------------------- run-folder hand-off

def save_data_settings(run_dir, data_dir: str, label_mode: str, val_fraction: float | None,
                       seed: int, refit: bool = False) -> dict:
    """Record how notebook 03 loaded its data, so later stages load exactly the same split."""
    from .artifacts import write_json

    settings = {"data_dir": str(data_dir), "label_mode": label_mode,
                "val_fraction": val_fraction or None, "seed": int(seed), "refit": bool(refit)}
    write_json(Path(run_dir) / "results" / "data.json", settings)
    return settings


def load_run_data(run_dir, label_mode: str | None = None) -> Dataset:
    """The dataset a run trained on (``results/data.json``), optionally with another label mode."""
    from .artifacts import read_json

    s = read_json(Path(run_dir) / "results" / "data.json", "data settings (written by notebook 03)")
    return load_dataset(s["data_dir"], label_mode=label_mode or s["label_mode"],
                        val_fraction=s["val_fraction"], seed=s["seed"], refit=s.get("refit", False))
