"""benchmarks/gpu_search.py: lossless packing for the GPU machine and a valid grid.

The GPU itself is never needed here: these tests check what is prepared on
this machine (the pack) and that every grid entry is a configuration the
package accepts, so a few lent GPU minutes are not lost to a typo.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import load_benchmark, make_ferplus


@pytest.fixture(scope="module")
def gpu_search():
    return load_benchmark("gpu_search")


def test_mosaics_round_trip_exactly(gpu_search):
    rng = np.random.default_rng(0)
    per = gpu_search.MOSAIC_SIDE ** 2
    images = rng.integers(0, 256, size=(per + 37, 48, 48), dtype=np.uint8)   # 2 mosaics, last padded
    mosaics = gpu_search._to_mosaics(images)
    assert len(mosaics) == 2
    assert mosaics[0].shape == (gpu_search.MOSAIC_SIDE * 48,) * 2
    np.testing.assert_array_equal(gpu_search._from_mosaics(mosaics, len(images)), images)
    # Tile (row 0, column 1) of the first mosaic is the second image.
    np.testing.assert_array_equal(mosaics[0][:48, 48:96], images[1])


def test_pack_keeps_the_training_split_and_soft_targets(gpu_search, tmp_path):
    from fer_helpers import load_dataset

    data_dir = make_ferplus(tmp_path / "ferplus", per_split=16)
    gpu_search.pack(str(data_dir), tmp_path / "pack")
    packed = gpu_search.load_pack(tmp_path / "pack")
    data = load_dataset(str(data_dir), label_mode="distribution", val_fraction=0.2, seed=42)
    for split in ("train", "val"):
        part = data.get_split(split)
        np.testing.assert_array_equal(packed[f"x_{split}"], part.images)
        np.testing.assert_allclose(packed[f"y_{split}"], part.soft_labels)
        np.testing.assert_array_equal(packed[f"l_{split}"], part.labels)
    # The held-out splits never travel.
    assert {k for k in packed if k.startswith("x_")} == {"x_train", "x_val"}


def test_missing_pack_is_named(gpu_search, tmp_path):
    with pytest.raises(FileNotFoundError, match="run the 'pack' step first"):
        gpu_search._load_images(tmp_path, "train", 10)


def test_every_grid_entry_is_a_valid_training_config(gpu_search):
    from fer_helpers.models import MODEL_NAMES

    for name, changes in gpu_search.GRID.items():
        s = {**gpu_search.BASE, **changes}
        assert s["model"] in MODEL_NAMES, name
        assert s["augmentation"] in ("study", "strong"), name
        gpu_search.train_config(changes)      # validate() raises for an invalid setting
