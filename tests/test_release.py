"""Seed summaries and the model card's seed section (small hand-made run folders)."""
import json

import numpy as np
import pytest

from conftest import ROOT
from fer_helpers.release import model_card_markdown, summarize_seeds

CLASSES = ["Anger", "Contempt", "Disgust"]


def _fake_run(root, name, seed, acc, recalls, val_acc, lr=0.002, **params):
    run = root / name
    (run / "results").mkdir(parents=True)
    training = {"params": {"seed": seed, "learning_rate": lr, "model_name": "vgg_fast", **params},
                "best_val_accuracy": val_acc, "wall_time_s": 1800.0 + seed,
                "machine": {"cpu_count": 2, "cpus_usable": 1}}
    per_class = [{"class": c, "recall": r} for c, r in zip(CLASSES, recalls)]
    plain = {"accuracy": acc, "macro_f1": acc - 0.2, "per_class": per_class}
    evaluation = {"protocols": {"P-seed": {"plain": plain, "tta_flip": {"accuracy": acc + 0.01}}}}
    (run / "results" / "training.json").write_text(json.dumps(training))
    (run / "results" / "evaluation.json").write_text(json.dumps(evaluation))
    return run


def test_summarize_seeds_matches_numpy(tmp_path):
    runs = [_fake_run(tmp_path, f"s{i}", 40 + i, acc, [0.5, r, 0.4], 0.78 + i / 100)
            for i, (acc, r) in enumerate([(0.80, 0.30), (0.81, 0.20), (0.79, 0.25)])]
    s = summarize_seeds(runs)
    assert s["seeds"] == [40, 41, 42] and s["runs"] == ["s0", "s1", "s2"]
    acc = s["protocols"]["P-seed"]["accuracy"]
    assert acc["mean"] == pytest.approx(0.80) and acc["std"] == pytest.approx(np.std([0.8, 0.81, 0.79], ddof=1))
    contempt = s["protocols"]["P-seed"]["recall"]["Contempt"]
    assert contempt["values"] == [0.30, 0.20, 0.25] and contempt["mean"] == pytest.approx(0.25)
    assert s["protocols"]["P-seed"]["tta_flip_accuracy"]["mean"] == pytest.approx(0.81)
    assert s["val_accuracy"]["mean"] == pytest.approx(0.79)
    assert "seed" not in s["params"] and s["cpus_usable"] == [1, 1, 1]


def test_seed_summaries_store_the_settings_the_runs_trained_with(tmp_path):
    """Settings a run predates are stored as the defaults it trained with, so the report
    compares summaries of different ages without the training code."""
    runs = [_fake_run(tmp_path, f"s{i}", i, 0.8, [0.5, 0.3, 0.4], 0.79) for i in range(2)]
    params = summarize_seeds(runs)["params"]
    # Recorded before 'precision' existed: trained in float32; no augmentation set: the
    # model's default (strong for VGGs).
    assert params["precision"] == "float32" and params["augmentation"] == "strong"
    assert params["learning_rate"] == 0.002 and params["model_name"] == "vgg_fast" and "seed" not in params


def test_summarize_seeds_refuses_runs_that_differ_in_more_than_the_seed(tmp_path):
    a = _fake_run(tmp_path, "a", 1, 0.8, [0.5, 0.3, 0.4], 0.79)
    b = _fake_run(tmp_path, "b", 2, 0.8, [0.5, 0.3, 0.4], 0.79, lr=0.001)
    with pytest.raises(ValueError, match=r"b: differs from .*a in \['learning_rate'\]"):
        summarize_seeds([a, b])
    with pytest.raises(ValueError, match="at least 2 runs"):
        summarize_seeds([a])
    c = _fake_run(tmp_path, "c", 3, 0.8, [0.5, 0.3, 0.4], 0.79, data_parallel=True)
    with pytest.raises(ValueError, match=r"c: differs .* in \['data_parallel'\]"):
        summarize_seeds([a, c])


def test_a_setting_one_run_predates_counts_as_its_default(tmp_path):
    """A run recorded before ``data_parallel`` existed trained on one device, like one
    that records ``data_parallel: false``: the two differ only in the seed."""
    old = _fake_run(tmp_path, "old", 42, 0.80, [0.5, 0.3, 0.4], 0.79)
    new = _fake_run(tmp_path, "new", 43, 0.82, [0.5, 0.3, 0.4], 0.80, data_parallel=False)
    s = summarize_seeds([old, new])
    assert s["seeds"] == [42, 43] and s["params"]["data_parallel"] is False
    assert s["protocols"]["P-seed"]["accuracy"]["mean"] == pytest.approx(0.81)


def test_seed_summaries_carry_the_runs_training_flops_where_recorded(tmp_path):
    runs = [_fake_run(tmp_path, f"s{i}", i, 0.8, [0.5, 0.3, 0.4], 0.79) for i in range(2)]
    assert "training_flops" not in summarize_seeds(runs)          # records that say nothing of it
    for i, run in enumerate(runs):
        t = json.loads((run / "results" / "training.json").read_text())
        t["compute"] = {"training_flops": 1e14 + i * 1e12, "images_seen": 10}
        (run / "results" / "training.json").write_text(json.dumps(t))
    flops = summarize_seeds(runs)["training_flops"]
    assert flops["values"] == [1e14, 1.01e14] and flops["mean"] == pytest.approx(1.005e14)


def test_a_run_recorded_before_flops_were_counted_is_priced_from_its_settings():
    """The committed VGG-Orta runs predate the count: priced from their model and images seen,
    they cost what the model's layer shapes × images give (6 × forward MACs per image)."""
    from fer_helpers.models import build_model, forward_macs
    from fer_helpers.training import recorded_flops

    t = json.loads((ROOT / "results" / "runs" / "vgg_mid_bf16_s42_clean" / "training.json").read_text())
    assert "compute" not in t
    macs = forward_macs(build_model("vgg_mid", 8))
    assert recorded_flops(t) == pytest.approx(6 * macs * t["data"]["n_train_used"] * t["epochs_run"])


def test_a_committed_flat_copy_of_a_run_is_read_like_the_run(tmp_path):
    """results/runs/<run>/ keeps a run's records without the results/ and model/ folders."""
    from fer_helpers.release import run_file

    nested = _fake_run(tmp_path, "nested", 42, 0.80, [0.5, 0.3, 0.4], 0.79)
    flat = tmp_path / "flat"
    flat.mkdir()
    for f in (nested / "results").iterdir():
        (flat / f.name).write_text(f.read_text().replace('"seed": 42', '"seed": 43'))
    (flat / "model.keras").write_text("")
    assert run_file(nested, "training.json") == nested / "results" / "training.json"
    assert run_file(flat, "training.json") == flat / "training.json"
    assert run_file(flat, "best.keras") == flat / "model.keras"
    # Neither layout holds the file: the run folder's path, which the error message names.
    assert run_file(nested, "best.keras") == nested / "model" / "best.keras"
    assert summarize_seeds([nested, flat])["seeds"] == [42, 43]


def test_model_card_shows_the_seed_table(tmp_path):
    runs = [_fake_run(tmp_path, f"s{i}", i, 0.8 + i / 100, [0.5, 0.3, 0.4], 0.79) for i in range(3)]
    metric = {"description": "d", "n": 10, "accuracy": 0.8, "accuracy_ci95": [0.7, 0.9], "macro_f1": 0.6,
              "macro_f1_ci95": [0.5, 0.7], "ece": 0.05, "recall": {c: 0.5 for c in CLASSES},
              "tta_flip_accuracy": None}
    card = {"file": "m.keras", "architecture": "vgg_fast", "n_params": 1, "size_mb": 1.0, "sha256": "0" * 64,
            "classes": CLASSES, "input": "i", "output": "o",
            "training_data": {"data_settings": {}, "train_images": 1, "val_images": 1, "validation": "v"},
            "training": {"epochs_run": 1, "best_epoch": 1, "wall_time_s": 60, "seed": 0,
                         "machine": {"cpu_count": 2, "cpus_usable": 1}},
            "metrics": {"P-seed": metric}, "seeds": summarize_seeds(runs)}
    md = model_card_markdown(card)
    assert "3 seeds (0, 1, 2): mean ± std" in md
    assert "| P-seed | 81.00% ± 1.00% |" in md
    assert "1 of the machine's 2 CPU cores" in md
    # The card's validation accuracy is the checkpoint metric, not the decision table's number.
    assert "argmax of the vote distribution" in md and "validation_compare.py" in md
    # Older cards have no precision (float32); a bfloat16 model's card says so and how to get float32.
    assert "- Compute: float32" in md
    # Runs that count their training FLOPs show them beside the wall time; older runs have none.
    assert "training FLOPs" not in md
    compute = {"training_flops": 7.2e14, "images_seen": 1536300}
    md_flops = model_card_markdown({**card, "training": {**card["training"], "compute": compute}})
    assert "seed 0; 7.20e+14 training FLOPs (1,536,300 images seen)" in md_flops
    md = model_card_markdown({**card, "precision": "mixed_bfloat16"})
    assert "- Compute: mixed_bfloat16 (bfloat16 convolutions" in md and "to_float32" in md
    # A run that recorded its CPU names it and whether it runs bfloat16 natively; older runs did not.
    assert "native bfloat16" not in md
    for flags, native in ((["avx2", "avx512_vnni"], "no"), (["avx512_bf16", "amx_bf16"], "avx512_bf16, amx_bf16")):
        machine = {"cpu_count": 2, "cpus_usable": 2, "cpu_model": "Xeon X", "cpu_flags": flags}
        md = model_card_markdown({**card, "training": {**card["training"], "machine": machine},
                                  "inference": {"images_per_second": 600.0, "batch_size": 512, "n_images": 4096,
                                                "machine": machine, "time": "t"}})
        assert f"min on 2 CPU cores, Xeon X, native bfloat16: {native}, seed 0" in md
        assert f"600 images/s through `predict_proba` (batch 512, 2 CPU cores, Xeon X, native bfloat16: {native}, t)" in md


def test_verify_release_checks_a_bfloat16_model_and_its_portable_float32_copy(tmp_path):
    import fer_helpers as fh
    from fer_helpers.models import to_float32
    from fer_helpers.release import check_batch, verify_release

    model = fh.build_model("vgg_fast", precision="mixed_bfloat16", seed=0)
    model.save(tmp_path / "m.keras")
    batch = check_batch()
    bf16 = fh.predict_proba(model, batch)
    f32 = fh.predict_proba(to_float32(model), batch)
    assert 0 < np.abs(bf16 - f32).max() < 0.05          # bfloat16 rounding: visible, small
    check = {"probabilities": bf16.tolist(), "tolerance": 1e-4}
    (tmp_path / "m.check.json").write_text(json.dumps(check))
    assert verify_release(tmp_path, "m") < 1e-6
    # An older check file without float32 values: the float32 check refuses rather than compare bf16 to fp32.
    with pytest.raises(ValueError, match=r"m\.check\.json: no 'probabilities_float32'"):
        verify_release(tmp_path, "m", float32=True)
    (tmp_path / "m.check.json").write_text(json.dumps({**check, "probabilities_float32": f32.tolist()}))
    assert verify_release(tmp_path, "m", float32=True) < 1e-6


def _released(tmp_path, source_run=None, committed=True):
    """A repository-like folder: models/m.keras with a card naming ``source_run``, and that run's files."""
    models = tmp_path / "repo" / "models"
    models.mkdir(parents=True)
    (models / "m.keras").write_bytes(b"not read here")
    if source_run is not None:
        (models / "m.card.json").write_text(json.dumps({"name": "m", "source_run": source_run}))
    if committed and source_run:
        run = tmp_path / "repo" / "results" / "runs" / source_run
        run.mkdir(parents=True)
        (run / "training.json").write_text(json.dumps({"params": {"epochs": 2}, "epochs_run": 2}))
        (run / "history.json").write_text(json.dumps({"epoch": [1, 2], "accuracy": [0.5, 0.6]}))
    return models / "m.keras"


def test_a_pretrained_model_brings_its_committed_training_record_and_history(tmp_path):
    from fer_helpers.release import record_pretrained_model, source_training_run

    model = _released(tmp_path, "train_s42")
    assert source_training_run(model) == (tmp_path / "repo" / "results" / "runs" / "train_s42").resolve()
    results = tmp_path / "run" / "results"
    record = record_pretrained_model(model, {"n_images": 3}, results)
    assert record["params"] is None and record["source_run"] == "results/runs/train_s42"
    assert record["source_training"] == {"params": {"epochs": 2}, "epochs_run": 2}
    assert json.loads((results / "history.json").read_text())["accuracy"] == [0.5, 0.6]
    assert json.loads((results / "training.json").read_text()) == record


@pytest.mark.parametrize("source_run, committed", [(None, False), ("gone_s42", False)])
def test_a_pretrained_model_without_a_committed_run_drops_a_stale_history(tmp_path, source_run, committed):
    from fer_helpers.release import record_pretrained_model, source_training_run

    model = _released(tmp_path, source_run, committed)
    assert source_training_run(model) is None
    results = tmp_path / "run" / "results"
    results.mkdir(parents=True)
    (results / "history.json").write_text("{}")          # left by an earlier run of another model
    record = record_pretrained_model(model, {}, results)
    assert "source_run" not in record and "source_training" not in record
    assert not (results / "history.json").exists()


def test_the_int8_export_is_recorded_in_the_card_beside_the_models_own_numbers(tmp_path):
    from fer_helpers.release import add_int8_export_to_card

    card = json.loads((ROOT / "models" / "reference.card.json").read_text())
    card.pop("int8_onnx", None)
    (tmp_path / "m.card.json").write_text(json.dumps(card))
    scores = lambda a, f: {"accuracy": a, "macro_f1": f, "recall_Contempt": 0.2, "top1_agreement": 1.0}  # noqa: E731
    bench = {"onnx_int8": {"images_per_second": 2539.9, "size_mb": 1.158},
             "protocols": {"P-seed": {"n": 10, "keras": scores(0.8223, 0.6827),
                                      "onnx_int8": {**scores(0.8215, 0.6797), "top1_agreement": 0.9917}}},
             "calibration": {"images": 512, "split": "train", "seed": 0},
             "machine": {"cpu_count": 2, "cpu_model": "Xeon", "cpu_flags": ["avx512_vnni"]}, "time": "t"}
    add_int8_export_to_card(tmp_path, "m", bench)
    stored = json.loads((tmp_path / "m.card.json").read_text())["int8_onnx"]
    assert stored["protocols"]["P-seed"] == {"model": {"accuracy": 0.8223, "macro_f1": 0.6827},
                                             "int8": {"accuracy": 0.8215, "macro_f1": 0.6797, "top1_agreement": 0.9917}}
    md = (tmp_path / "m.md").read_text()
    assert ("activation ranges from 512 training images, 8-bit weights): 2,540 images/s, 1.16 MB (2 CPU cores, "
            "Xeon, native bfloat16: no, t); P-seed accuracy 82.15%, macro-F1 0.680 (this model 82.23%, 0.683; "
            "top-1 agreement 99.17%).") in md
    # A record of the 7-bit graph says so (one from before weight_bits was recorded had 8-bit weights).
    add_int8_export_to_card(tmp_path, "m", {**bench, "calibration": {**bench["calibration"], "weight_bits": 7}})
    assert "activation ranges from 512 training images, 7-bit weights): 2,540" in (tmp_path / "m.md").read_text()
    with pytest.raises(ValueError, match="run it with --data"):
        add_int8_export_to_card(tmp_path, "m", {"onnx_int8": {}})
