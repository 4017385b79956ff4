"""Shared fixtures: small generated data sets in every layout, and the real FER+ data."""
from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.hookimpl(tryfirst=True)   # before ``-m`` deselects, so the marker added here counts
def pytest_collection_modifyitems(items):
    """Tests on the shared demo run are integration tests (the run executes every notebook), so
    they are marked ``slow``; they go first, so under pytest-xdist the first worker builds the
    run while the other works through the rest instead of waiting on the run's lock."""
    on_demo_run = [item for item in items if "demo_run" in getattr(item, "fixturenames", ())]
    for item in on_demo_run:
        item.add_marker(pytest.mark.slow)
    first = set(map(id, on_demo_run))
    items.sort(key=lambda item: id(item) not in first)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Each test gets its own data cache, so no test sees another's cached arrays."""
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))


def load_benchmark(name: str):
    """Import ``benchmarks/<name>.py`` as ``benchmarks.<name>`` (what ``python -m benchmarks.<name>`` runs)."""
    import importlib

    return importlib.import_module(f"benchmarks.{name}")


def load_research(name: str):
    """Import ``research/<name>.py`` (the screens, decision rules and summaries apart from the package)."""
    import importlib

    return importlib.import_module(f"research.{name}")


def post_hoc_run(tmp_path: Path, name: str, written: str, precision: str = "float32") -> dict:
    """Files for a post-hoc benchmark's end-to-end run on demo data: a small saved vgg_fast
    model, a rule written at ``written``, and the command-line arguments that point the script
    at them (``{"args", "rule", "out", "table"}``)."""
    import keras

    import fer_helpers as fh

    keras.utils.set_random_seed(0)
    model = tmp_path / "vgg_fast.keras"
    fh.build_model("vgg_fast", augmentation="study", precision=precision).save(model)
    rule, out, table = tmp_path / "rule.txt", tmp_path / f"{name}.json", tmp_path / "decisions.csv"
    rule.write_text(f"Written {written}, before the numbers.\n")
    args = ["--data", "demo", "--model", str(model), "--out", str(out), "--rule", str(rule), "--decisions", str(table)]
    return {"args": args, "rule": rule, "out": out, "table": table}


def real_data_dir() -> Path | None:
    """FER_DATA_DIR, else ../shared/data/ferplus beside the checkout; None if absent."""
    for cand in (os.environ.get("FER_DATA_DIR"), ROOT.parent / "shared" / "data" / "ferplus"):
        if cand and (Path(cand) / "FER2013Train" / "label.csv").is_file():
            return Path(cand)
    return None


@pytest.fixture(scope="session")
def ferplus_dir() -> Path:
    path = real_data_dir()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but the FER+ data set was not found (FER_DATA_DIR or ../shared/data/ferplus)")
        pytest.skip("FER+ data set not available")
    return path


def write_png(path: Path, value: int = 128, size=(48, 48), mode="L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    arr = rng.integers(0, 256, size=(size[1], size[0]) + ((3,) if mode == "RGB" else ()), dtype=np.uint8)
    Image.fromarray(arr, mode=mode).save(path)


#: Hand-made vote rows (neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF)
VOTE_ROWS = [
    [6, 2, 0, 0, 0, 0, 0, 0, 2, 0],   # neutral, clear
    [0, 9, 1, 0, 0, 0, 0, 0, 0, 0],   # happiness
    [0, 0, 4, 0, 0, 0, 4, 0, 2, 0],   # tie surprise/fear: plurality → surprise (first max); majority excluded
    [0, 0, 0, 0, 5, 1, 1, 1, 1, 1],   # anger: singles dropped → 5 of 5 → majority anger
    [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],   # all singles: plurality neutral; majority excluded
    [0, 0, 0, 0, 0, 0, 0, 0, 7, 3],   # unknown wins: excluded everywhere
    [0, 0, 0, 0, 0, 0, 0, 6, 0, 4],   # contempt 6 vs NF 4
    [0, 0, 0, 2, 0, 8, 0, 0, 0, 0],   # disgust
]


def make_ferplus(root: Path, per_split: int = 8, votes=None) -> Path:
    """A tiny official-layout FER+ tree: 3 splits, PNGs, label.csv without header."""
    votes = votes or VOTE_ROWS
    for s_i, split in enumerate(("FER2013Train", "FER2013Valid", "FER2013Test")):
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "label.csv", "w", newline="") as f:
            w = csv.writer(f)
            for i in range(per_split):
                name = f"fer{s_i:02d}{i:05d}.png"
                write_png(folder / name, value=s_i * 100 + i)
                w.writerow([name, "(0, 0, 48, 48)", *votes[i % len(votes)]])
    return root


def make_fer2013_csv(root: Path, n: int = 30, with_new: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    usages = ["Training"] * (n - 10) + ["PublicTest"] * 5 + ["PrivateTest"] * 5
    with open(root / "fer2013.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        for i in range(n):
            w.writerow([i % 7, " ".join(map(str, rng.integers(0, 256, 2304))), usages[i]])
    if with_new:
        cols = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF"]
        with open(root / "fer2013new.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["Usage", "Image name", *cols])
            for i in range(n):
                name = "" if i == 3 else f"fer{i:07d}.png"   # one row without FER+ labels
                w.writerow([usages[i], name, *VOTE_ROWS[i % len(VOTE_ROWS)]])
    return root


def make_folders(root: Path, classes=("angry", "happy", "Sad", "surprised", "neutral", "fear", "disgust"),
                 per_class: int = 4, val: bool = False) -> Path:
    splits = ("train", "test") + (("validation",) if val else ())
    for split in splits:
        for c_i, cls in enumerate(classes):
            for i in range(per_class):
                rgb = (i == 0 and split == "train")  # a few colour / wrong-size images to convert
                write_png(root / split / cls / f"{i}.png", value=c_i * 10 + i,
                          size=(64, 64) if rgb else (48, 48), mode="RGB" if rgb else "L")
    return root


def _build_demo_run(tmp: Path) -> Path:
    """One quick demo run of every notebook (01-07) through the run command: a comparison
    model, a cross-dataset folder, published outputs."""
    from fer_helpers.runner import RunSpec, run

    extra = make_folders(tmp / "başka veri")
    saved = os.environ.pop("FER_DATA_DIR", None)
    try:
        return run(RunSpec(runs_dir=tmp / "runs", figures_dir=tmp / "figures", reports_dir=tmp / "reports",
                           run_name="demo_quick", params={
                               "quick": True, "model_name": "baseline", "n_boot": 50, "n_sanity": 8,
                               "n_images": 8, "compare_model_name": "baseline", "extra_eval_dirs": str(extra)}))
    finally:
        if saved is not None:
            os.environ["FER_DATA_DIR"] = saved


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The demo run shared by the runner and report tests (read-only: copy it to change it).

    It takes minutes, so it is built once per test session even under pytest-xdist: the
    first worker that needs it builds it under a file lock in the folder all workers share,
    the others wait and reuse it (pytest-xdist's recipe for once-only session fixtures).
    """
    from filelock import FileLock

    if os.environ.get("FER_TEST_DEMO_RUN"):
        # A demo run built before (tests/conftest.py: _build_demo_run), reused while iterating on report tests.
        return Path(os.environ["FER_TEST_DEMO_RUN"])
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    done = base / "demo_run.txt"
    with FileLock(str(base / "demo_run.lock")):
        if not done.is_file():
            tmp = base / "demo_run"
            shutil.rmtree(tmp, ignore_errors=True)   # a worker that failed before leaves no half run
            done.write_text(str(_build_demo_run(tmp)))
    return Path(done.read_text())
