"""research/gpu_search.py: lossless packing, a valid grid and a faithful PyTorch mirror.

The GPU itself is never needed here: these tests check what is prepared on
this machine (the pack), that every grid entry is a configuration the package
accepts, that the mirror's schedule, layouts and augmentation ranges are the
Keras recipe's, and the summary the report reads. The tests that build the
mirror itself need PyTorch, which the project does not depend on; they skip
without it (``pip install torch`` to run them).
"""
from __future__ import annotations

import dataclasses
import inspect
import json

import numpy as np
import pytest

from conftest import load_research, make_ferplus


@pytest.fixture(scope="module")
def gpu_search():
    return load_research("gpu_search")


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

    assert len(set(gpu_search.GRID)) == len(gpu_search.GRID)
    for name, changes in gpu_search.GRID.items():
        s = gpu_search.settings_of(changes)
        assert s["model"] in MODEL_NAMES or s["model"] in gpu_search.EXTRA_VARIANTS, name
        assert s["augmentation"] in ("study", "strong"), name
        gpu_search.stage_layout(s["model"])
        gpu_search.train_config(changes)      # validate() raises for an invalid setting
    # BASE is the reference recipe the CPU runs use; its model and epochs stay those the search
    # started from (vgg_fast, 30), since every grid entry's name is written relative to it. The
    # reference in force (vgg_mid, bfloat16, 50 epochs) is a named grid entry.
    import yaml

    ref = yaml.safe_load((gpu_search.ROOT / "configs" / "ferplus_reference.yaml").read_text())["params"]
    base = gpu_search.BASE
    keys = ("augmentation", "oversample_fraction", "learning_rate", "weight_decay", "seed")
    assert [base[k] for k in keys] == [ref[k] for k in keys]
    assert (base["model"], base["epochs"]) == ("vgg_fast", 30)
    from fer_helpers.models import build_vgg

    assert base["dropout"] == inspect.signature(build_vgg).parameters["dropout"].default
    assert gpu_search.GRID["fast_e50_s42"] == {"epochs": 50}
    assert gpu_search.GRID["mid_e50_bf16_s42"] == {"model": ref["model_name"], "epochs": ref["epochs"],
                                                  "precision": ref["precision"], "seed": ref["seed"]}


def test_mirror_schedule_is_keras_cosine_decay_with_warmup(gpu_search):
    from fer_helpers.training import _make_optimizer

    config = gpu_search.train_config({"epochs": 5})
    keras_lr = _make_optimizer(config, steps_per_epoch=7)._learning_rate
    for step in range(36):
        assert gpu_search.lr_at_step(step, 0.002, 7, 5) == pytest.approx(float(keras_lr(step)), rel=1e-5)


def test_mirror_layouts_are_the_package_layouts(gpu_search):
    from fer_helpers.models import VGG_VARIANTS

    for name, layout in VGG_VARIANTS.items():
        assert gpu_search.stage_layout(name) == layout
    with pytest.raises(ValueError, match="no VGG layout for 'resnet'"):
        gpu_search.stage_layout("resnet")


def test_keras_contrast_range_the_mirror_copies():
    """Keras 3's RandomContrast(0.2) draws factors from [1.0, 1.2] (not [0.8, 1.2]); the mirror does too."""
    import keras

    from fer_helpers.preprocessing import augmentation_layers

    contrast = [layer for layer in augmentation_layers("study") if layer.name == "aug_contrast"][0]
    x = np.zeros((4000, 4, 4, 1), np.float32)
    f = np.asarray(contrast.get_random_transformation(x, training=True)["contrast_factor"]).ravel()
    assert f.min() >= 1.0 and 1.18 < f.max() <= 1.2
    assert isinstance(contrast, keras.layers.RandomContrast)


def test_mirror_matches_keras_models_and_augmentation(gpu_search):
    torch = pytest.importorskip("torch")
    from fer_helpers.models import build_model
    from fer_helpers.preprocessing import augmentation_layers

    for name in ("vgg_fast", "vgg"):
        keras_model = build_model(name, 8, "study", 42)
        n_keras = sum(int(np.prod(w.shape)) for w in keras_model.trainable_weights)
        assert sum(p.numel() for p in gpu_search.torch_vgg(name).parameters()) == n_keras
    # Dropout (lease 9): the same rates, stage by stage and in the head, for each setting.
    import keras

    from fer_helpers.models import build_vgg

    widths, convs = gpu_search.stage_layout("vgg_mid")
    for rate in (0.0, 0.2, 0.6):
        keras_rates = [layer.rate for layer in build_vgg(8, "study", 42, widths, convs, dropout=rate).layers
                       if isinstance(layer, keras.layers.Dropout)]
        torch_rates = [m.p for m in gpu_search.torch_vgg("vgg_mid", 8, rate).modules()
                       if isinstance(m, torch.nn.Dropout)]
        assert torch_rates == pytest.approx(keras_rates) and len(keras_rates) == 5
    # Augmentation: same ranges, so the same statistics of the change on a batch.
    rng = np.random.default_rng(0)
    x = rng.random((1500, 48, 48, 1), dtype=np.float32)
    import keras

    pipeline = keras.Sequential([keras.Input((48, 48, 1))] + augmentation_layers("study", 42))
    k = np.asarray(pipeline(x, training=True))
    t = gpu_search.augment_batch(torch.from_numpy(x.transpose(0, 3, 1, 2)), "study",
                                 torch.Generator().manual_seed(0)).numpy().transpose(0, 2, 3, 1)
    assert t.shape == k.shape
    for stat in (np.mean, np.std):
        assert stat(t) == pytest.approx(stat(k), rel=0.05)
    assert np.abs(t - x).mean() == pytest.approx(np.abs(k - x).mean(), rel=0.1)


def test_summary_table_from_a_search(gpu_search, tmp_path):
    def result(name, epochs, run, acc, **settings):
        hist = [{"epoch": e, "seconds": 2.0 + e % 2, "loss": 1.0, "val_accuracy": acc - 0.01,
                 "val_macro_f1": 0.6} for e in range(1, run + 1)]
        best = {"epoch": run, "val_accuracy": acc, "val_macro_f1": 0.61,
                "val_recall": {"Contempt": 0.25, "Disgust": 0.5}}
        return {"name": name, "settings": gpu_search.settings_of({"epochs": epochs, **settings}),
                "n_params": 657032, "history": hist, "best": best, "last": best}

    search = tmp_path / "lease.json"
    search.write_text(json.dumps({"gpu": "NVIDIA H200", "results": [
        result("stopped", 50, 20, 0.83), result("a", 30, 30, 0.81),
        result("b", 27, 27, 0.82, model="vgg", learning_rate=0.004, batch_size=128)]}))
    old = json.loads(search.read_text())
    for key in ("precision", "weight_decay"):      # leases 1-2 predate these settings
        del old["results"][1]["settings"][key]
    search.write_text(json.dumps(old))
    rows = gpu_search.summarize([search], tmp_path / "out.csv")
    assert {(r["precision"], r["weight_decay"]) for r in rows} == {("float32", 1e-4)}
    # Finished runs first, best first; the run stopped at the budget last, however good.
    assert [r["name"] for r in rows] == ["b", "a", "stopped"]
    assert rows[0]["model"] == "vgg" and rows[2]["epochs_run"] == 20 and rows[2]["epochs"] == 50
    assert rows[1]["seconds_per_epoch"] == 2.5 and rows[1]["val_recall_Contempt"] == 0.25
    assert [(r["learning_rate"], r["batch_size"]) for r in rows] == [(0.004, 128), (0.002, 64), (0.002, 64)]
    text = (tmp_path / "out.csv").read_text().splitlines()
    assert text[0].split(",") == gpu_search.SUMMARY_COLUMNS and len(text) == 4
    # A run listed as measuring a bug stays in its lease file but not in the summary.
    lease5 = tmp_path / "lease5_probes.json"
    lease5.write_text(json.dumps({"results": [result("mid_e50_ema_bf16_s42", 50, 50, 0.80, ema=0.999),
                                              result("mid_e50_mixup_bf16_s42", 50, 50, 0.82, mixup=0.2)]}))
    assert ("lease5_probes.json", "mid_e50_ema_bf16_s42") in gpu_search.EXCLUDED
    rows = gpu_search.summarize([lease5], tmp_path / "out5.csv")
    assert [(r["name"], r["mixup"], r["ema"]) for r in rows] == [("mid_e50_mixup_bf16_s42", 0.2, 0.0)]
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"results": []}))
    with pytest.raises(ValueError, match="no results"):
        gpu_search.summarize([empty], tmp_path / "x.csv")


def test_probe_settings_are_checked(gpu_search):
    assert gpu_search.settings_of({})["ema"] == 0.0
    assert gpu_search.GRID["mid_e50_all3_bf16_s43"] == {"model": "vgg_mid", "epochs": 50, "seed": 43,
                                                       "precision": "mixed_bfloat16", "ema": 0.999,
                                                       "mixup": 0.2, "erase": 0.5}
    assert gpu_search.GRID["mid_e50_do2_bf16_s44"]["dropout"] == 0.2
    for bad in ({"ema": 1.0}, {"erase": -0.1}, {"mixup": -1}, {"dropout": 1.0}):
        with pytest.raises(ValueError, match=f"{next(iter(bad))}="):
            gpu_search.train_config(bad)


def test_mixup_mixes_images_and_targets_with_one_weight_per_image(gpu_search):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((256, 1, 48, 48), dtype=np.float32))
    y = torch.from_numpy(rng.dirichlet(np.ones(8), 256).astype(np.float32))
    xm, ym = gpu_search.mixup_batch(x, y, 0.2, np.random.default_rng(1))
    torch.testing.assert_close(ym.sum(1), torch.ones(256))          # still distributions
    # Each mixed image is w·x_i + (1-w)·x_j, and its target mixes with the same w and j.
    w = np.random.default_rng(1).beta(0.2, 0.2, 256).astype(np.float32)
    j = np.random.default_rng(1)
    j.beta(0.2, 0.2, 256)
    perm = j.permutation(256)
    torch.testing.assert_close(ym, torch.from_numpy(w[:, None]) * y + torch.from_numpy(1 - w[:, None]) * y[perm])
    torch.testing.assert_close(xm[3], float(w[3]) * x[3] + float(1 - w[3]) * x[perm[3]])
    assert ((w < 0.1) | (w > 0.9)).mean() > 0.5        # Beta(0.2, 0.2): mostly near one image


def test_erasing_replaces_one_rectangle_with_the_given_probability(gpu_search):
    torch = pytest.importorskip("torch")
    x = torch.full((2000, 1, 48, 48), 2.0)          # outside [0, 1]: erased pixels are recognisable
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(gpu_search.erase_batch(x, 0.0, gen), x)
    erased = gpu_search.erase_batch(x, 0.5, gen) != 2.0
    frac = erased.float().mean(dim=(1, 2, 3))
    hit = frac > 0
    assert 0.45 < hit.float().mean() < 0.55
    assert frac[hit].min() >= 1 / (48 * 48) and frac[hit].max() <= 0.27
    assert 0.08 < frac[hit].mean() < 0.16           # area uniform in 2-25%, clipped at the borders
    rows = erased[hit][:, 0].any(dim=2)             # one rectangle: erased rows are contiguous
    span = rows.float().argmax(1)
    assert all(r[s:s + int(r.sum())].all() for r, s in zip(rows, span))


def _smoke_train(gpu_search, tmp_path, name: str) -> dict:
    """One grid entry for 2 epochs on a tiny pack, in its own process as on the GPU machine
    (torch beside TensorFlow in one process can crash while importing its compiler stack)."""
    import subprocess
    import sys

    pack = tmp_path / "pack"
    if not pack.is_dir():
        gpu_search.pack(str(make_ferplus(tmp_path / "ferplus", per_split=16)), pack)
    subprocess.run([sys.executable, "-m", "research.gpu_search", "one", name,
                    "--pack", str(pack), "--work", str(tmp_path), "--smoke"],
                   check=True, capture_output=True, cwd=gpu_search.ROOT)
    return json.loads((tmp_path / f"{name}.json").read_text())


@pytest.mark.parametrize("name", ["fast_e50_bf16", "fast_e50_wd05", "mid_e50_all3_bf16_s42"])
def test_mirror_trains_bf16_and_weight_decay_entries(gpu_search, tmp_path, name):
    pytest.importorskip("torch")
    record = _smoke_train(gpu_search, tmp_path, name)
    assert record["finished"] and len(record["history"]) == 2
    assert record["settings"]["precision"] == gpu_search.GRID[name].get("precision", "float32")
    assert record["settings"]["weight_decay"] == gpu_search.GRID[name].get("weight_decay", 1e-4)
    assert all(np.isfinite(h["loss"]) for h in record["history"])
    assert record["settings"]["ema"] == gpu_search.GRID[name].get("ema", 0.0)


def test_weight_average_is_only_validated_never_trained_on(gpu_search, tmp_path):
    """The EMA weights are swapped in for validation and the live ones back for training, so
    training losses are those of the same run without EMA. (Leases 5-6 ran without the swap
    back: each epoch restarted from the average; those runs are excluded from the summary.)"""
    pytest.importorskip("torch")
    plain = _smoke_train(gpu_search, tmp_path, "mid_e50_bf16_s42")
    averaged = _smoke_train(gpu_search, tmp_path, "mid_e50_ema_bf16_s42")
    assert [h["loss"] for h in averaged["history"]] == pytest.approx([h["loss"] for h in plain["history"]],
                                                                    rel=1e-6)


def _screen_rows(control, candidate, source="lease.json", f1=(0.67, 0.68), epochs_run=50):
    """Summary rows of a control and a candidate: ``control``/``candidate`` = accuracy per seed 42, 43, ..."""
    rows = []
    for config, accs, macro_f1 in (("ctrl", control, f1[0]), ("cand", candidate, f1[1])):
        rows += [{"name": f"{config}_s{seed}", "seed": seed, "val_accuracy": acc, "val_macro_f1": macro_f1,
                  "epochs": 50, "epochs_run": epochs_run, "source": source}
                 for seed, acc in zip(range(42, 42 + len(accs)), accs)]
    return rows


def test_screen_verdicts_apply_the_written_rule(gpu_search):
    screen = gpu_search.Screen("1", "rule.txt", ("lease.json",), "cand", control="ctrl")
    verdict = lambda rows: gpu_search.screen_verdict(rows, screen)     # noqa: E731
    ctrl = (0.830, 0.825, 0.828)
    won = verdict(_screen_rows(ctrl, (0.834, 0.829, 0.829)))
    assert won["verdict"] == "adopt" and won["seeds_ahead"] == 3 and won["gain"] == pytest.approx(0.003)
    # Each condition alone sinks a candidate: the gain (0.29 pt), the seeds (one seed carries
    # a +1.2 pt mean), the other measure (macro-F1 lower).
    assert verdict(_screen_rows(ctrl, (0.8329, 0.8279, 0.8309)))["criterion"] is False
    one_seed = verdict(_screen_rows(ctrl, (0.866, 0.824, 0.827)))
    assert (one_seed["criterion"], one_seed["ahead"], one_seed["verdict"]) == (True, False, "keep")
    worse_f1 = verdict(_screen_rows(ctrl, (0.84, 0.84, 0.84), f1=(0.68, 0.6799)))
    assert (worse_f1["guard"], worse_f1["verdict"]) == (False, "keep")
    # Unfinished or missing runs leave it undecided; other leases' runs are not its control.
    assert verdict(_screen_rows(ctrl, (0.84, 0.84, 0.84), epochs_run=20))["verdict"] == "undecided"
    assert verdict(_screen_rows(ctrl[:2], (0.84, 0.84, 0.84)))["verdict"] == "undecided"
    assert verdict(_screen_rows(ctrl, (0.84,) * 3, source="other.json"))["verdict"] == "undecided"
    with pytest.raises(ValueError, match="seed 42 appears twice"):
        verdict(_screen_rows(ctrl, (0.84,) * 3) + _screen_rows(ctrl, (0.84,) * 3)[:1])
    # A macro-F1 rule (lease 8b): the guard is on accuracy, with a tolerance.
    f1_screen = dataclasses.replace(screen, measure="val_macro_f1", min_gain=0.008, min_ahead=1, max_guard_drop=0.002)
    lower_acc = gpu_search.screen_verdict(_screen_rows(ctrl, tuple(a - 0.0015 for a in ctrl), f1=(0.67, 0.68)),
                                          f1_screen)
    assert lower_acc["verdict"] == "adopt" and lower_acc["guard_measure"] == "val_accuracy"


def test_committed_verdicts_are_those_of_the_committed_results(gpu_search, tmp_path):
    """results/gpu_search_verdicts.csv is what SCREENS' rules give on results/gpu_search.csv, and
    the numbers each rule file states by hand agree with it."""
    import pandas as pd

    rows = pd.read_csv(gpu_search.ROOT / "results" / "gpu_search.csv").to_dict("records")
    fresh = gpu_search.write_verdicts(rows, tmp_path / "verdicts.csv")
    committed = pd.read_csv(gpu_search.ROOT / "results" / "gpu_search_verdicts.csv")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "verdicts.csv"), committed)
    by = {(v["lease"], v["candidate"]): v for v in fresh}
    ema = by[("7", "mid_e50_ema9995_bf16")]           # lease7_rule.txt: +0.18 pt, 3 of 3 ahead
    assert (round(ema["gain"] * 100, 2), ema["seeds_ahead"], ema["verdict"]) == (0.18, 3, "keep")
    lr = by[("8b", "mid_e50_lr4e3_bf16")]             # lease8_rule.txt: macro-F1 +0.0009, 4 of 6
    assert (round(lr["gain"], 4), lr["seeds_ahead"], lr["verdict"]) == (0.0009, 4, "keep")
    ls = by[("9c", "mid_e50_ls10_bf16")]              # lease9_rule.txt: +0.11 pt, macro-F1 0.0001 lower
    assert (round(ls["gain"] * 100, 2), ls["guard"], ls["verdict"]) == (0.11, False, "keep")
    assert [v["change"] for v in fresh if v["lease"] == "9"] == ["do0", "do2", "do6"]
    assert round(ls["control_guard"] - ls["candidate_guard"], 4) == 0.0001
    assert all((gpu_search.ROOT / v["rule"]).is_file() for v in fresh)       # each rule is committed
