"""Checks on the real FER+ data (required in CI, skipped on a machine without it)."""
import numpy as np
import pytest

from fer_helpers import load_dataset

pytestmark = pytest.mark.realdata

EXPECTED = {
    "plurality": {"FER2013Train": 28385, "FER2013Valid": 3555, "FER2013Test": 3545},
    "majority": {"FER2013Train": 25045, "FER2013Valid": 3191, "FER2013Test": 3137},
}


@pytest.mark.parametrize("mode", ["plurality", "majority"])
def test_ferplus_counts(ferplus_dir, mode, tmp_path_factory):
    ds = load_dataset(ferplus_dir, label_mode=mode, cache_dir=tmp_path_factory.getbasetemp() / "realcache")
    assert ds.summary()["source_split_sizes"] == EXPECTED[mode]
    assert ds.images.shape == (sum(EXPECTED[mode].values()), 48, 48)
    assert ds.n_converted == 0


def test_held_out_protocol_split(ferplus_dir, tmp_path_factory):
    ds = load_dataset(ferplus_dir, val_fraction=0.2, seed=42,
                      cache_dir=tmp_path_factory.getbasetemp() / "realcache")
    assert (ds.split == "test").sum() == 3555 + 3545
    assert (ds.split == "val").sum() == pytest.approx(0.2 * 28385, abs=2)
    # Stratified: class shares in train and val agree within a percentage point.
    tr = np.bincount(ds.labels[ds.split == "train"], minlength=8) / (ds.split == "train").sum()
    va = np.bincount(ds.labels[ds.split == "val"], minlength=8) / (ds.split == "val").sum()
    assert np.abs(tr - va).max() < 0.01


def test_committed_single_annotator_numbers_reproduce_from_the_votes(ferplus_dir, tmp_path_factory):
    """The single-annotator side of the README's human comparison
    (results/runs/vgg_mid_bf16_s42_report/error_analysis.json) follows from the FER+ vote counts alone."""
    import json
    from pathlib import Path

    from fer_helpers.errors import annotator_baseline

    committed = json.loads((Path(__file__).resolve().parents[1] / "results" / "runs" / "vgg_mid_bf16_s42_report"
                            / "error_analysis.json").read_text())["annotator_baseline"]
    cache = tmp_path_factory.getbasetemp() / "realcache"
    for protocol, mode, splits in (("P-seed", "plurality", ["FER2013Valid", "FER2013Test"]),
                                   ("P-FER+", "majority", ["FER2013Test"])):
        ds = load_dataset(ferplus_dir, label_mode=mode, cache_dir=cache)
        test = ds.subset(np.isin(ds.source_split, splits))
        got = annotator_baseline(test.votes, mode, test.labels, ds.classes)   # model side unused here
        want = committed[protocol]
        assert got["n_images"] == want["n_images"] and got["n_votes"] == want["n_votes"]
        assert got["annotator"]["accuracy"] == pytest.approx(want["annotator"]["accuracy"], abs=1e-9)
        assert got["annotator"]["macro_f1"] == pytest.approx(want["annotator"]["macro_f1"], abs=1e-9)
