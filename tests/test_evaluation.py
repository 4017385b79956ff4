import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from fer_helpers.errors import (
    annotator_baseline,
    annotator_table,
    errors_vs_entropy,
    support_vs_recall,
    top_confused_pairs,
    votes_for_predicted,
)
from fer_helpers.evaluation import bootstrap_ci, classification_metrics, expected_calibration_error, mcnemar_test
from fer_helpers.gradcam import gradcam_heatmaps, mass_in_region, sanity_check

CLASSES3 = ("A", "B", "C")


@pytest.fixture
def toy():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    logits = rng.normal(size=(300, 3)) + 2.0 * np.eye(3)[y]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, probs


def test_metrics_match_sklearn(toy):
    y, probs = toy
    m = classification_metrics(y, probs, CLASSES3)
    pred = probs.argmax(1)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["weighted_f1"] == pytest.approx(f1_score(y, pred, average="weighted"))
    p, r, f, s = precision_recall_fscore_support(y, pred)
    assert [c["recall"] for c in m["per_class"]] == pytest.approx(r.tolist())
    assert np.trace(m["confusion_matrix"]) == (pred == y).sum()


def test_metrics_refuse_class_count_mismatch(toy):
    y, probs = toy
    with pytest.raises(ValueError, match="expected N×4"):
        classification_metrics(y, probs, CLASSES3 + ("D",))


def test_bootstrap_ci_covers_point_estimate(toy):
    y, probs = toy
    pred = probs.argmax(1)
    ci = bootstrap_ci(y, pred, n_boot=300, seed=1)
    assert ci["accuracy"][0] <= accuracy_score(y, pred) <= ci["accuracy"][1]
    assert ci["macro_f1"][0] <= f1_score(y, pred, average="macro") <= ci["macro_f1"][1]
    assert ci["accuracy"][1] - ci["accuracy"][0] < 0.15


def test_mcnemar_on_hand_computed_table():
    # 10 images: A right & B wrong on 6, B right & A wrong on 1, both right on 3.
    y = np.zeros(10, dtype=int)
    a = np.array([0] * 6 + [1] + [0] * 3)
    b = np.array([1] * 6 + [0] + [0] * 3)
    res = mcnemar_test(y, a, b)
    assert res["only_a_correct"] == 6 and res["only_b_correct"] == 1
    # exact two-sided binomial: 2 · P(X ≤ 1 | n=7, p=½) = 2 · 8/128
    assert res["p_value"] == pytest.approx(16 / 128)
    assert res["table"] == [[3, 6], [1, 0]]


def test_ece_zero_for_perfectly_calibrated_bins():
    probs = np.array([[1.0, 0.0]] * 10)
    assert expected_calibration_error(np.zeros(10, int), probs)["ece"] == pytest.approx(0.0)
    assert expected_calibration_error(np.ones(10, int), probs)["ece"] == pytest.approx(1.0)


def test_confused_pairs_and_support_recall():
    y = np.array([0, 0, 0, 1, 1, 2])
    p = np.array([1, 1, 0, 0, 1, 2])
    pairs = top_confused_pairs(y, p, CLASSES3)
    assert pairs[0] == {"true": "A", "predicted": "B", "count": 2, "share_of_true": pytest.approx(2 / 3)}
    res = support_vs_recall([{"class": "A", "recall": 0.2}, {"class": "B", "recall": 0.5},
                             {"class": "C", "recall": 0.9}], {"A": 10, "B": 100, "C": 1000})
    assert res["spearman_rho"] == pytest.approx(1.0)


def test_errors_vs_entropy_detects_dependence():
    rng = np.random.default_rng(0)
    ent = rng.uniform(0, 2, 500)
    y = np.zeros(500, int)
    pred = (rng.uniform(0, 2, 500) < ent).astype(int)    # wrong more often when entropy is high
    res = errors_vs_entropy(y, pred, ent)
    assert res["auc_entropy_predicts_error"] > 0.7
    assert res["mean_entropy_wrong"] > res["mean_entropy_correct"]


def test_annotator_baseline_scores_annotator_and_model_on_the_same_labels():
    from fer_helpers.labels import CLASSES
    neutral = CLASSES.index("Neutral")
    # Image 0: ten votes Neutral. Image 1: a 5-5 split, where each annotator disagrees with the
    # other nine. Image 2: nine Happiness votes and one NF (names no class: left out of both).
    votes = np.array([[10, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                      [5, 5, 0, 0, 0, 0, 0, 0, 0, 0],
                      [0, 9, 0, 0, 0, 0, 0, 0, 0, 1]])
    res = annotator_baseline(votes, "plurality", np.array([neutral, neutral, neutral]), CLASSES)
    assert res["n_images"] == 3 and res["n_votes"] == 29
    assert res["unnamed_vote_share"] == pytest.approx(1 / 30)
    # Annotator: 10 + 0 + 9 of 29 weighted votes agree with the rest.
    assert res["annotator"]["accuracy"] == pytest.approx(19 / 29)
    # Model (always Neutral): image 0 right (10), image 1 right against the 5 rests that say
    # Neutral, wrong against the 5 that say Happiness, image 2 wrong (9).
    assert res["model"]["accuracy"] == pytest.approx(15 / 29)
    assert res["model"]["recall"]["Happiness"] == 0.0
    assert res["annotator"]["recall"]["Happiness"] == pytest.approx(9 / 14)
    table = annotator_table({"P-seed": res}, "tr")
    assert table["Kim"].tolist() == ["Tek işaretleyici", "Model"]
    assert table["Mutluluk"].tolist() == [res["annotator"]["recall"]["Happiness"], 0.0]
    assert "Happiness" in annotator_table({"P-seed": res}, "en").columns
    # One vote per image leaves nothing to agree with: a clear error, not an empty score.
    with pytest.raises(ValueError, match="no annotator"):
        annotator_baseline(np.array([[1, 0, 0, 0, 0, 0, 0, 0, 0, 0]]), "plurality", np.array([neutral]), CLASSES)


# ----------------------------------------------------------------------------- Grad-CAM

def quadrant_model():
    """A tiny model with two feature maps: the top-left quadrant and the rest of the image.

    Class 1's score is the mean of the quadrant map, class 0's the mean of the rest,
    so Grad-CAM for class 1 must weight only the quadrant map.
    """
    import keras

    inp = keras.Input((48, 48, 1))
    x = keras.layers.Rescaling(1 / 255)(inp)
    # Crop the top-left quadrant and pad it back: the image with zeros outside the quadrant.
    quad = keras.layers.ZeroPadding2D(((0, 24), (0, 24)))(keras.layers.Cropping2D(((0, 24), (0, 24)))(x))
    rest = keras.layers.Subtract()([x, quad])
    feats = keras.layers.Concatenate(name="features")([rest, quad])
    scores = keras.layers.GlobalAveragePooling2D()(feats)
    return keras.Model(inp, keras.layers.Softmax()(scores))


def test_gradcam_lights_up_the_quadrant_that_decides():
    model = quadrant_model()
    imgs = np.random.default_rng(0).integers(50, 200, (4, 48, 48), dtype=np.uint8)
    maps = gradcam_heatmaps(model, imgs, class_index=1, layer_name="features")
    assert maps.shape == (4, 48, 48) and maps.max() <= 1.0
    region = np.zeros((4, 48, 48), bool)
    region[:, :24, :24] = True
    # All the mass is in the decisive quadrant (bilinear resizing may bleed a pixel or two).
    assert mass_in_region(maps, region)["mean_mass_share"] > 0.95


def test_sanity_check_passes_for_gradcam_and_fails_for_weight_independent_stub():
    import fer_helpers as fh

    model = fh.build_model("baseline", augmentation="none")
    imgs = np.random.default_rng(0).integers(0, 256, (6, 48, 48), dtype=np.uint8)
    # A "saliency" that only echoes the input ignores the weights entirely: it must fail.
    stub = sanity_check(lambda m, x: x.astype(float) / 255, model, imgs)
    assert stub["mean_abs_rank_correlation"] == pytest.approx(1.0) and not stub["passed"]
    assert stub["mean_centered_rank_correlation"] == pytest.approx(1.0)
    real = sanity_check(lambda m, x: gradcam_heatmaps(m, x, 0), model, imgs)
    assert real["mean_abs_rank_correlation"] < stub["mean_abs_rank_correlation"]
    assert len(real["per_randomisation"]) == real["n_randomisations"] == 5


def test_run_folder_without_predictions_names_the_file(tmp_path):
    from fer_helpers.artifacts import ArtifactError, write_json
    from fer_helpers.errors import analyze_run

    write_json(tmp_path / "results" / "evaluation.json", {"primary": "test", "protocols": {}})
    with pytest.raises(ArtifactError, match=r"predictions.npz: predictions \(written by notebook 04\) not found"):
        analyze_run(tmp_path)


def test_prior_correction_identity_at_zero_and_favours_rare_classes():
    from fer_helpers.evaluation import prior_correction

    probs = np.array([[0.6, 0.4], [0.5, 0.5]], dtype=np.float32)
    prior = np.array([0.9, 0.1])
    assert np.allclose(prior_correction(probs, prior, 0.0), probs, atol=1e-6)
    adj = prior_correction(probs, prior, 1.0)
    assert np.allclose(adj.sum(1), 1) and adj.argmax(1).tolist() == [1, 1]
    # p / prior, renormalised, by hand for the first row
    expected = np.array([0.6 / 0.9, 0.4 / 0.1])
    assert np.allclose(adj[0], expected / expected.sum(), atol=1e-6)


def test_choose_prior_tau_fixes_a_classifier_biased_to_the_frequent_class():
    from fer_helpers.evaluation import choose_prior_tau

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 200)
    # Informative but shifted towards class 0, as a net trained on 90/10 data would be.
    signal = np.where(labels == 1, 0.35, 0.05) + rng.normal(0, 0.05, len(labels))
    probs = np.stack([1 - signal, signal], axis=1).clip(1e-3, 1)
    choice = choose_prior_tau(probs, labels, np.array([0.9, 0.1]))
    assert choice["tau"] > 0 and choice["val_macro_f1"] > choice["val_macro_f1_at_0"] + 0.2
    # Already balanced predictions: no tau helps, and the tie goes to tau = 0.
    balanced = np.eye(2)[labels] * 0.8 + 0.1
    assert choose_prior_tau(balanced, labels, np.array([0.5, 0.5]))["tau"] == 0.0


def test_ensemble_averages_stored_probabilities_and_checks_the_images(tmp_path):
    from fer_helpers.artifacts import save_arrays
    from fer_helpers.evaluation import evaluate_ensemble

    labels = np.array([0, 1, 1, 0])
    names = np.array(["a", "b", "c", "d"])
    # r2 gets image c wrong; averaged with r1 it is right again.
    runs = {"r1": [[0.9, 0.1], [0.45, 0.55], [0.2, 0.8], [0.9, 0.1]],
            "r2": [[0.8, 0.2], [0.1, 0.9], [0.6, 0.4], [0.7, 0.3]]}
    for run, probs in runs.items():
        (tmp_path / run / "results").mkdir(parents=True)
        (tmp_path / run / "results" / "evaluation.json").write_text(
            '{"classes": ["A", "B"], "protocols": {"test": {}}}')
        save_arrays(tmp_path / run / "results" / "predictions.npz", test__probs=np.array(probs, "float32"),
                    test__labels=labels, test__names=names)
    ens = evaluate_ensemble([tmp_path / "r1", tmp_path / "r2"], n_boot=20)
    assert ens["protocols"]["test"]["accuracy"] == 1.0 and ens["runs"] == ["r1", "r2"]
    save_arrays(tmp_path / "r2" / "results" / "predictions.npz", test__probs=np.array(runs["r2"], "float32"),
                test__labels=labels, test__names=names[::-1])
    with pytest.raises(ValueError, match="not for the same images"):
        evaluate_ensemble([tmp_path / "r1", tmp_path / "r2"])


def test_temperature_scaling_keeps_every_decision_and_recovers_a_known_overconfidence():
    from fer_helpers.evaluation import expected_calibration_error, fit_temperature, negative_log_likelihood, temperature_scale

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 1.5, (4000, 8))
    true = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(8, p=p) for p in true])       # labels drawn from calibrated probabilities
    over = np.exp(3 * logits) / np.exp(3 * logits).sum(1, keepdims=True)   # the same ranking, 3x too sharp
    np.testing.assert_allclose(temperature_scale(over, 1.0), over, atol=1e-9)
    assert (temperature_scale(over, 2.5).argmax(1) == over.argmax(1)).all()
    fit = fit_temperature(over, labels)
    assert fit["temperature"] == pytest.approx(3.0, rel=0.1)
    assert fit["val_nll_after"] < fit["val_nll_before"] and fit["val_ece_after"] < fit["val_ece_before"]
    scaled = temperature_scale(over, fit["temperature"])
    assert negative_log_likelihood(labels, scaled) == pytest.approx(fit["val_nll_after"])
    assert expected_calibration_error(labels, scaled)["ece"] < 0.03


def test_votes_for_the_predicted_class_of_an_error_come_from_its_vote_distribution():
    from fer_helpers.labels import CLASSES

    # Two errors: the first predicted Happiness (30% of its votes), the second Fear (no votes).
    dist = np.zeros((2, 8))
    dist[0, CLASSES.index("Happiness")], dist[0, CLASSES.index("Neutral")] = 0.3, 0.7
    dist[1, CLASSES.index("Sadness")] = 1.0
    classes = ["Fear", "Happiness", "Neutral"]          # a run's own class order, indexed by y_pred
    out = votes_for_predicted(dist, np.array([1, 0]), classes)
    assert out["shares"] == pytest.approx([0.3, 0.0]) and out["n"] == 2 and out["with_votes"] == 1
    assert out["mean_share"] == pytest.approx(0.15)
    assert votes_for_predicted(np.zeros((0, 8)), np.array([], dtype=int), classes)["n"] == 0
