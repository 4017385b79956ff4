"""The committed models (reference and others with a card): safe loading, stored check values,
their cards' numbers on real data, and the skip-training option."""
import json
from pathlib import Path

import numpy as np
import pytest

import fer_helpers as fh
from fer_helpers.release import check_batch, verify_release

MODELS = Path(__file__).resolve().parents[1] / "models"
NAMES = sorted(p.name.removesuffix(".card.json") for p in MODELS.glob("*.card.json"))

pytestmark = pytest.mark.skipif(not (MODELS / "reference.keras").is_file(), reason="no reference model committed")


def test_the_reference_model_is_among_the_released_models():
    assert "reference" in NAMES


def test_reference_card_summarises_at_least_three_seeds_including_its_own():
    card = json.loads((MODELS / "reference.card.json").read_text())
    seeds = card["seeds"]
    assert len(seeds["seeds"]) >= 3 and card["training"]["seed"] in seeds["seeds"]
    i = seeds["seeds"].index(card["training"]["seed"])
    for protocol, m in card["metrics"].items():
        assert seeds["protocols"][protocol]["accuracy"]["values"][i] == pytest.approx(m["accuracy"])


#: How far a bfloat16 model's probabilities may move between CPUs: its stored check values
#: come from the CPU that released it (AMX), and a CPU that emulates bfloat16 rounds
#: differently (seen: 2.9e-4 on a Xeon without AMX/AVX512-BF16). One bfloat16 unit of
#: rounding, 2**-8, bounds that; the float32 copy's check stays exact on every CPU.
BFLOAT16_CROSS_CPU_TOL = 2**-8


@pytest.mark.parametrize("name", NAMES)
def test_model_loads_safely_and_reproduces_its_check_batch(name):
    precision = json.loads((MODELS / f"{name}.card.json").read_text()).get("precision", "float32")
    assert verify_release(MODELS, name) < (1e-4 if precision == "float32" else BFLOAT16_CROSS_CPU_TOL)
    assert verify_release(MODELS, name, float32=True) < 1e-4     # the portable check
    card = json.loads((MODELS / f"{name}.card.json").read_text())
    assert card["classes"] == list(fh.CLASSES) and card["file"] == f"{name}.keras"
    assert (MODELS / f"{name}.keras").stat().st_size <= 10 * 2**20
    model = fh.load_model(MODELS / f"{name}.keras")
    assert card.get("precision", "float32") == fh.models.model_precision(model)
    probs = fh.predict_proba(model, check_batch())
    assert np.allclose(probs.sum(1), 1, atol=1e-5)


@pytest.mark.realdata
@pytest.mark.slow   # evaluates each released model on the whole FER2013Test split
@pytest.mark.parametrize("name", NAMES)
def test_card_p_ferplus_accuracy_reproduces_on_the_real_test_set(name, ferplus_dir, tmp_path_factory):
    card = json.loads((MODELS / f"{name}.card.json").read_text())
    data = fh.load_dataset(ferplus_dir, label_mode="majority",
                           cache_dir=tmp_path_factory.getbasetemp() / "realcache")
    test = data.subset(data.source_split == "FER2013Test")
    assert len(test) == card["metrics"]["P-FER+"]["n"] == 3137
    probs = fh.predict_proba(fh.load_model(MODELS / f"{name}.keras"), test.images)
    acc = float((probs.argmax(1) == test.labels).mean())
    assert abs(acc - card["metrics"]["P-FER+"]["accuracy"]) <= 0.001


@pytest.mark.slow
def test_skip_training_option_evaluates_a_given_model_on_demo_data(tmp_path, monkeypatch):
    from fer_helpers.runner import RunSpec, run

    monkeypatch.delenv("FER_DATA_DIR", raising=False)
    run_dir = run(RunSpec(runs_dir=tmp_path / "runs", figures_dir=tmp_path / "f", reports_dir=tmp_path / "r",
                          run_name="given", notebooks=["03", "04"],
                          params={"data_dir": "demo", "pretrained_model": str(MODELS / "reference.keras"),
                                  "compare_model": str(MODELS / "vgg_mid.keras"), "n_boot": 20}))
    training = json.loads((run_dir / "results" / "training.json").read_text())
    assert training["pretrained_model"].endswith("reference.keras")
    assert not (run_dir / "results" / "history.csv").exists()      # nothing was trained
    # The card names the model's training run; its committed record and curves come with it.
    card = json.loads((MODELS / "reference.card.json").read_text())
    assert training["source_run"] == f"results/runs/{card['source_run']}"
    assert training["source_training"]["epochs_run"] == card["training"]["epochs_run"]
    history = json.loads((run_dir / "results" / "history.json").read_text())
    assert len(history["epoch"]) == card["training"]["epochs_run"]
    assert (run_dir / "figures" / "03_egitim_egrileri.png").is_file()
    ev = json.loads((run_dir / "results" / "evaluation.json").read_text())
    assert ev["is_demo"] and 0 <= ev["protocols"]["test"]["plain"]["accuracy"] <= 1
    # The given compare model (the previous release) is not trained but scored on the same images.
    assert not (run_dir / "compare" / "results" / "training.json").exists()
    assert json.loads((run_dir / "compare" / "results" / "model_table.json").read_text())["model"] == "vgg_mid"
    test = ev["protocols"]["test"]
    assert test["mcnemar"]["only_a_correct"] + test["mcnemar"]["only_b_correct"] <= test["n"]
    assert 0 <= test["compare"]["accuracy"] <= 1
