"""The example grids that notebooks 04 and 05 draw: which faces they pick and how they title them."""
import numpy as np
import pytest

from fer_helpers import figures

CLASSES = ["Anger", "Happiness", "Neutral"]


@pytest.fixture
def predictions():
    true = np.array([0, 1, 2, 1, 0, 2, 1, 1])
    pred = np.array([0, 1, 1, 1, 2, 2, 0, 1])      # wrong at indices 2, 4, 6
    probs = np.full((len(pred), 3), 0.1)
    probs[np.arange(len(pred)), pred] = 0.8
    images = np.arange(len(pred) * 48 * 48, dtype=np.float64).reshape(-1, 48, 48) % 256
    return images, true, pred, probs


def _titles(fig):
    return [ax.get_title() for ax in fig.axes if ax.get_title()]


def test_example_indices_draws_only_the_asked_outcome_reproducibly(predictions):
    _, true, pred, _ = predictions
    wrong = figures.example_indices(true, pred, correct=False, n=24, seed=3)
    assert sorted(wrong) == [2, 4, 6]               # fewer than n: every wrong one, none twice
    right = figures.example_indices(true, pred, correct=True, n=3, seed=3)
    assert len(right) == 3 and set(right) <= {0, 1, 3, 5, 7}
    assert list(right) == list(figures.example_indices(true, pred, correct=True, n=3, seed=3))
    assert len(figures.example_indices(true, true, correct=False)) == 0


def test_prediction_examples_titles_true_and_predicted_class_in_the_chosen_language(predictions):
    images, true, _, probs = predictions
    fig = figures.prediction_examples(images, true, probs, CLASSES, correct=False, seed=0, language="en")
    titles = _titles(fig)
    assert sorted(titles) == sorted(["G: Neutral\nT: Happiness (80%)", "G: Anger\nT: Neutral (80%)",
                                     "G: Happiness\nT: Anger (80%)"])
    assert fig._suptitle.get_text() == "Yanlış tahminler"
    colors = {ax.title.get_color() for ax in fig.axes if ax.get_title()}
    assert colors == {"#c0392b"}                    # every wrong prediction titled in red
    tr = _titles(figures.prediction_examples(images, true, probs, CLASSES, correct=False, seed=0, language="tr"))
    assert any("Mutluluk" in t for t in tr)
    assert figures.prediction_examples(images, true, np.eye(3)[true], CLASSES, correct=False) is None


def test_gradcam_pairs_puts_the_predicted_class_map_before_the_true_class_map(predictions):
    images, true, pred, _ = predictions
    maps_pred = np.zeros((len(pred), 48, 48))
    maps_true = np.ones((len(pred), 48, 48))
    fig = figures.gradcam_pairs(images[:2], maps_pred[:2], maps_true[:2], true[:2], pred[:2], CLASSES, "en")
    shown = [ax for ax in fig.axes if ax.get_images()]
    assert len(shown) == 4                          # two faces, each with both maps
    overlays = [ax.get_images()[1].get_array() for ax in shown]
    assert [float(o.mean()) for o in overlays] == [0.0, 1.0, 0.0, 1.0]
    faces = [ax.get_images()[0].get_array() for ax in shown]
    np.testing.assert_array_equal(faces[0], faces[1])
    assert [ax.get_title() for ax in shown] == ["G: Anger\nT: Anger\n[tahmin]", "[gerçek]",
                                                 "G: Happiness\nT: Happiness\n[tahmin]", "[gerçek]"]


def test_augmentation_grid_shows_each_original_before_its_variants():
    originals = np.stack([np.full((48, 48), 10.0), np.full((48, 48), 200.0)])
    variants = np.stack([np.full((3, 48, 48), 11.0), np.full((3, 48, 48), 201.0)])
    fig = figures.augmentation_grid(originals, variants)
    shown = [ax for ax in fig.axes if ax.get_images()]
    assert [float(ax.get_images()[0].get_array().mean()) for ax in shown] == [10, 11, 11, 11, 200, 201, 201, 201]
    assert [ax.get_title() for ax in shown[:4]] == ["Özgün", "Artırma 1", "Artırma 2", "Artırma 3"]
    with pytest.raises(ValueError, match="3 original images but variants for 2"):
        figures.augmentation_grid(np.concatenate([originals, originals[:1]]), variants)
