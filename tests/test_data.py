import csv
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import make_fer2013_csv, make_ferplus, make_folders, write_png
from fer_helpers import CLASSES, CLASSES_7, DataError, load_dataset
from fer_helpers.data import detect_layout, parse_pixels, resolve_data_dir, stratified_split
from fer_helpers.demo import make_demo_faces

# ----------------------------------------------------------------------------- layouts

def test_ferplus_layout_plurality(tmp_path):
    ds = load_dataset(make_ferplus(tmp_path / "fp"), label_mode="plurality")
    assert ds.layout == "ferplus" and ds.classes == CLASSES
    assert ds.images.shape[1:] == (48, 48) and ds.images.dtype == np.uint8
    assert ds.votes.shape == (len(ds), 10)
    # 8 rows per split, one with an "unknown" winner → 7 kept per split, 1 counted as excluded
    assert ds.summary()["split_sizes"] == {"train": 7, "val": 7, "test": 7}
    assert ds.excluded == {"FER2013Test": 1, "FER2013Train": 1, "FER2013Valid": 1}


def test_ferplus_majority_and_distribution(tmp_path):
    root = make_ferplus(tmp_path / "fp")
    maj = load_dataset(root, label_mode="majority")
    assert len(maj) == 3 * 5 and sum(maj.excluded.values()) == 3 * 3
    dist = load_dataset(root, label_mode="distribution")
    assert dist.soft_labels.shape == (len(dist), 8)
    # the hard label is the plurality label, whose class holds the largest vote share
    assert np.allclose(dist.soft_labels[np.arange(len(dist)), dist.labels], dist.soft_labels.max(1))


def test_fer2013_csv_with_ferplus_votes(tmp_path):
    root = make_fer2013_csv(tmp_path / "csv", n=30)
    ds = load_dataset(root, label_mode="plurality")
    assert ds.layout == "fer2013csv" and ds.classes == CLASSES
    assert ds.excluded["Training"] >= 1    # the row with no FER+ image name is counted


def test_fer2013_csv_without_new_has_seven_classes(tmp_path):
    root = make_fer2013_csv(tmp_path / "csv", n=30, with_new=False)
    ds = load_dataset(root / "fer2013.csv")
    assert ds.classes == CLASSES_7 and ds.votes is None
    assert ds.summary()["split_sizes"] == {"train": 20, "val": 5, "test": 5}
    # emotion 0 (Angry) → Anger, 6 (Neutral) → Neutral in CLASSES_7 order
    assert ds.classes[ds.labels[0]] == "Anger" and ds.classes[ds.labels[6]] == "Neutral"


def test_class_folders_aliases_conversion_and_val_from_train(tmp_path):
    root = make_folders(tmp_path / "kaggle")
    ds = load_dataset(root, seed=1)
    assert ds.layout == "folders"
    assert ds.classes == tuple(c for c in CLASSES if c != "Contempt")
    assert ds.n_converted == 7      # one RGB 64×64 image per class in train
    assert ds.validation == "from_train(0.2)" and (ds.split == "val").sum() > 0


def test_class_folders_with_validation_folder(tmp_path):
    ds = load_dataset(make_folders(tmp_path / "k", val=True))
    assert ds.validation == "official" and (ds.split == "val").sum() == 7 * 4


# ----------------------------------------------------------------------------- splits

def test_val_from_train_moves_official_val_to_test(tmp_path):
    ds = load_dataset(make_ferplus(tmp_path / "fp", per_split=40), val_fraction=0.25, seed=3)
    assert set(ds.source_split[ds.split == "test"]) == {"FER2013Valid", "FER2013Test"}
    assert set(ds.source_split[ds.split == "val"]) == {"FER2013Train"}


def test_refit_trains_on_the_validation_share_and_keeps_the_held_out_images_held_out(tmp_path):
    from fer_helpers.data import load_run_data, save_data_settings

    path = make_ferplus(tmp_path / "fp", per_split=40)
    split = load_dataset(path, val_fraction=0.25, seed=3)
    refit = load_dataset(path, val_fraction=0.25, seed=3, refit=True)
    assert not (refit.split == "val").any()
    assert ((refit.split == "train") == np.isin(split.split, ["train", "val"])).all()
    assert ((refit.split == "test") == (split.split == "test")).all()
    assert refit.validation == "none (refit: from_train(0.25) trained on)"
    save_data_settings(tmp_path / "run", str(path), "plurality", 0.25, 3, refit=True)
    assert (load_run_data(tmp_path / "run").split == refit.split).all()


def test_refit_refuses_to_train_on_the_layouts_own_validation_images(tmp_path):
    with pytest.raises(ValueError, match="refit=True needs val_fraction > 0"):
        load_dataset(make_ferplus(tmp_path / "fp", per_split=40), refit=True)


def test_stratified_split_is_stratified_and_deterministic():
    labels = np.repeat(np.arange(4), [100, 50, 30, 20])
    a, b = stratified_split(labels, 0.2, seed=7), stratified_split(labels, 0.2, seed=7)
    assert (a == b).all()
    assert np.bincount(labels[a]).tolist() == [20, 10, 6, 4]
    assert not (a == stratified_split(labels, 0.2, seed=8)).all()


# ----------------------------------------------------------------------------- cache

def test_cache_is_reused_and_invalidated(tmp_path):
    root = make_ferplus(tmp_path / "fp")
    cache = tmp_path / "c"
    first = load_dataset(root, cache_dir=cache)
    files = list(cache.glob("*.npz"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    second = load_dataset(root, cache_dir=cache)
    assert list(cache.glob("*.npz"))[0].stat().st_mtime_ns == mtime     # reused, not rewritten
    assert (first.images == second.images).all()
    # Editing a label file invalidates the cache; the old entry is replaced, not kept.
    label = root / "FER2013Train" / "label.csv"
    rows = list(csv.reader(open(label)))
    rows[0][2:12] = ["0", "10", "0", "0", "0", "0", "0", "0", "0", "0"]
    time.sleep(0.01)
    with open(label, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    third = load_dataset(root, cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 1
    assert third.labels[0] == CLASSES.index("Happiness") != first.labels[0]


def test_damaged_cache_is_rebuilt(tmp_path):
    root = make_ferplus(tmp_path / "fp")
    cache = tmp_path / "c"
    load_dataset(root, cache_dir=cache)
    f = next(cache.glob("*.npz"))
    f.write_bytes(b"garbage")
    assert len(load_dataset(root, cache_dir=cache)) == 21


# ----------------------------------------------------------------------------- demo

def test_demo_is_deterministic_and_complete():
    a, b = make_demo_faces(64, seed=5), make_demo_faces(64, seed=5)
    assert all((a[k] == b[k]).all() for k in a)
    assert not (make_demo_faces(64, seed=6)["images"] == a["images"]).all()
    assert set(a["labels"].tolist()) == set(range(8))
    assert a["regions"].any(axis=(1, 2)).all()


def test_demo_through_load_dataset():
    ds = load_dataset("demo")
    assert ds.is_demo and ds.classes == CLASSES and ds.regions is not None
    assert set(ds.split.tolist()) == {"train", "val", "test"}


def test_demo_is_cached_with_its_regions_and_redrawn_when_its_code_changes(tmp_path, monkeypatch):
    from fer_helpers import data, demo

    # A 64-face demo set keeps the three draws below fast; the cache path is the same.
    draw = data._demo_raw
    monkeypatch.setattr(data, "_demo_raw", lambda: draw(n=64))
    cache = tmp_path / "c"
    fresh = load_dataset("demo", use_cache=False)
    first = load_dataset("demo", cache_dir=cache)
    (entry,) = cache.glob("*.npz")
    mtime = entry.stat().st_mtime_ns
    second = load_dataset("demo", cache_dir=cache)
    assert entry.stat().st_mtime_ns == mtime                            # reused, not redrawn
    for ds in (first, second):
        assert ds.is_demo and ds.layout == "demo"
        for key in ("images", "regions", "votes", "labels", "split", "names"):
            assert (getattr(ds, key) == getattr(fresh, key)).all(), key
    # An edited generator is a different demo set: the old entry is replaced.
    edited = tmp_path / "demo.py"
    edited.write_bytes(open(demo.__file__, "rb").read() + b"\n# edited\n")
    monkeypatch.setattr(demo, "__file__", str(edited))
    load_dataset("demo", cache_dir=cache)
    (replaced,) = cache.glob("*.npz")
    assert replaced.name != entry.name


def test_resolve_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("FER_DATA_DIR", raising=False)
    assert resolve_data_dir("") == "demo"
    monkeypatch.setenv("FER_DATA_DIR", str(tmp_path))
    assert resolve_data_dir("") == str(tmp_path.resolve())
    with pytest.raises(DataError, match="does not exist"):
        resolve_data_dir(str(tmp_path / "nope"))


# ----------------------------------------------------------------------------- bad input

def test_missing_path(tmp_path):
    with pytest.raises(DataError, match=r"nope: data path does not exist"):
        load_dataset(tmp_path / "nope")


def test_unknown_layout(tmp_path):
    (tmp_path / "random").mkdir()
    with pytest.raises(DataError, match=r"random: no known FER layout"):
        load_dataset(tmp_path / "random")


def test_label_csv_names_missing_image(tmp_path):
    root = make_ferplus(tmp_path / "fp")
    victim = sorted((root / "FER2013Valid").glob("*.png"))[2]
    victim.unlink()
    with pytest.raises(DataError, match=rf"FER2013Valid/label.csv, row 3: image {victim.name} not found"):
        load_dataset(root)


def test_corrupt_png_is_named(tmp_path):
    root = make_ferplus(tmp_path / "fp")
    victim = sorted((root / "FER2013Test").glob("*.png"))[0]
    victim.write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(DataError, match=rf"{victim.name}: cannot decode image"):
        load_dataset(root)


@pytest.mark.parametrize("pixels, problem", [
    (" ".join(["1"] * 2303), "has 2303 values"),
    (" ".join(["1"] * 2303 + ["x"]), "non-integer"),
    (" ".join(["1"] * 2303 + ["256"]), "0-255"),
])
def test_bad_pixel_string(tmp_path, pixels, problem):
    root = make_fer2013_csv(tmp_path / "csv", n=12, with_new=False)
    lines = (root / "fer2013.csv").read_text().splitlines()
    lines[5] = f'3,"{pixels}",Training'
    (root / "fer2013.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"fer2013.csv, data row 5: pixel .*{problem}"):
        load_dataset(root)


def test_fer2013new_row_count_mismatch(tmp_path):
    root = make_fer2013_csv(tmp_path / "csv", n=12)
    lines = (root / "fer2013new.csv").read_text().splitlines()
    (root / "fer2013new.csv").write_text("\n".join(lines[:-2]) + "\n")
    with pytest.raises(DataError, match=r"fer2013new.csv: has 10 rows but fer2013.csv has 12"):
        load_dataset(root)


def test_unknown_class_folder(tmp_path):
    root = make_folders(tmp_path / "k")
    write_png(root / "train" / "bored" / "0.png")
    with pytest.raises(DataError, match=r"bored: unknown class folder 'bored'"):
        load_dataset(root)


def test_empty_split(tmp_path):
    root = make_folders(tmp_path / "k")
    for f in (root / "test").rglob("*.png"):
        f.unlink()
    with pytest.raises(DataError, match=r"test: empty split"):
        load_dataset(root)


def test_all_zero_vote_row(tmp_path):
    root = make_ferplus(tmp_path / "fp", votes=[[0] * 10, [0, 5, 0, 0, 0, 0, 0, 0, 0, 0]])
    with pytest.raises(DataError, match=r"vote row for fer0000000.png is all zeros"):
        load_dataset(root)


def test_failed_load_writes_no_cache(tmp_path):
    root = make_ferplus(tmp_path / "fp")
    sorted((root / "FER2013Test").glob("*.png"))[0].write_bytes(b"junk")
    with pytest.raises(DataError):
        load_dataset(root, cache_dir=tmp_path / "c")
    assert not list((tmp_path / "c").glob("*")) if (tmp_path / "c").exists() else True


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(-5, 300), min_size=0, max_size=2400))
def test_parse_pixels_property(values):
    text = " ".join(map(str, values))
    ok = len(values) == 2304 and all(0 <= v <= 255 for v in values)
    if ok:
        assert (parse_pixels(text).ravel() == np.array(values)).all()
    else:
        with pytest.raises(DataError, match="row 9"):
            parse_pixels(text, "fer2013.csv, data row 9")


def test_parse_pixels_roundtrip():
    arr = np.arange(2304) % 256
    assert (parse_pixels(" ".join(map(str, arr))) == arr.reshape(48, 48)).all()


def test_detect_layout_on_non_fer_file(tmp_path):
    f = tmp_path / "x.csv"
    f.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="neither an original fer2013.csv"):
        detect_layout(f)


def test_a_packed_bundle_loads_as_its_source_and_can_leave_the_held_out_splits_behind(tmp_path):
    from fer_helpers.data import DataError, pack_dataset

    full = load_dataset("demo", label_mode="distribution", val_fraction=0.2, seed=3)
    bundle = pack_dataset("demo", tmp_path / "demo.npz")
    again = load_dataset(bundle, label_mode="distribution", val_fraction=0.2, seed=3, use_cache=False)
    assert again.layout == "bundle"
    np.testing.assert_array_equal(again.images, full.images)
    np.testing.assert_array_equal(again.split, full.split)
    np.testing.assert_allclose(again.soft_labels, full.soft_labels)
    # A training bundle holds no held-out image, and still gives the same train/val split.
    train_src = [s for s in np.unique(full.source_split) if full.split[full.source_split == s][0] != "test"]
    part = load_dataset(pack_dataset("demo", tmp_path / "train.npz", train_src), label_mode="distribution",
                        val_fraction=0.2, seed=3, use_cache=False)
    assert not (part.split == "test").any()
    for split in ("train", "val"):
        np.testing.assert_array_equal(part.get_split(split).names, full.get_split(split).names)
    with pytest.raises(DataError, match="must end in .npz"):
        pack_dataset("demo", tmp_path / "demo.bin")
    with pytest.raises(DataError, match="no source split"):
        pack_dataset("demo", tmp_path / "x.npz", ["FER2013Nowhere"])
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a data bundle"):
        load_dataset(tmp_path / "bad.npz", use_cache=False)
