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


def test_figures_write_numbers_with_a_decimal_comma_as_the_text_does():
    import matplotlib.pyplot as plt

    from fer_helpers.figures import decimal_comma

    fig, ax = plt.subplots()
    ax.plot([0, 0.5, 1], [0.1, 0.25, 0.9])
    ax.text(0.2, 0.5, "ECE 0.034")
    ax.set_xlabel("Güven (0.0–1.0)")
    decimal_comma(fig)
    fig.canvas.draw()
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks and all("." not in t for t in ticks) and any("," in t for t in ticks)
    assert ax.texts[0].get_text() == "ECE 0,034" and ax.get_xlabel() == "Güven (0,0–1,0)"
    plt.close(fig)


def test_gradcam_examples_are_half_misclassified():
    import numpy as np

    from fer_helpers.gradcam import pick_examples

    true = np.array([0, 1, 2, 3, 4, 5, 6, 7] * 10)
    pred = true.copy()
    pred[:5] = (pred[:5] + 1) % 8                    # five errors among 80 images
    pick = pick_examples(true, pred, 8, np.random.default_rng(0))
    assert len(pick) == 8 and list(pick) == sorted(pick) and len(set(pick)) == 8
    assert (true[pick] != pred[pick]).sum() == 4     # half of them wrong
    few = pick_examples(true, pred, 16, np.random.default_rng(0))
    assert (true[few] != pred[few]).sum() == 5 and len(few) == 16   # all five errors, the rest correct
    assert len(pick_examples(true, true, 6, np.random.default_rng(0))) == 6    # no errors: all correct


def test_grid_labels_print_at_least_7_points_in_the_report():
    import numpy as np

    from fer_helpers.figures import MIN_LABEL_PT, class_maps_grid, image_grid, printed_scale

    for n, ncols in ((24, 8), (64, 8), (32, 8), (6, 3)):
        fig = image_grid(np.zeros((n, 48, 48), np.uint8), ["G: Küçümseme\nT: Nötr (%83)"] * n, ncols=ncols, title="t")
        printed = fig.axes[0].title.get_fontsize() * printed_scale(*fig.get_size_inches())
        assert printed >= MIN_LABEL_PT, (n, ncols, printed)
    from fer_helpers.labels import CLASSES

    fig = class_maps_grid(np.random.default_rng(0).random((8, 6, 6)), list(CLASSES), language="en")
    assert fig.axes[0].title.get_fontsize() * printed_scale(*fig.get_size_inches()) >= MIN_LABEL_PT


def test_every_chart_names_both_axes_and_keeps_its_legend_off_the_bars():
    import numpy as np

    from fer_helpers import figures
    from fer_helpers.labels import CLASSES

    classes = list(CLASSES)
    counts = {s: {c: 10 + i for i, c in enumerate(classes)} for s in ("train", "val", "test")}
    per_class = [{"class": c, "precision": 0.5, "recall": 0.6, "f1": 0.55} for c in classes]
    history = {"epoch": [0, 1], "accuracy": [0.5, 0.6], "val_accuracy": [0.4, 0.5], "loss": [1, 0.8], "val_loss": [1.1, 0.9]}
    images, labels = np.zeros((16, 48, 48), np.uint8), np.arange(16) % 8
    charts = [figures.class_counts_bar(counts, classes), figures.per_class_bars(per_class),
              figures.confused_pairs_bar([{"true": "Sadness", "predicted": "Neutral", "count": 5}]),
              figures.training_curves(history), figures.entropy_histogram(np.linspace(0, 2, 50)),
              figures.pixel_intensity_plot(images, labels, classes)]
    for fig in charts:
        for ax in fig.axes:
            assert ax.get_xlabel() and ax.get_ylabel(), (ax.get_title(), ax.get_xlabel(), ax.get_ylabel())
    for fig in charts[:2]:                      # bar charts: the legend sits right of the axes
        legend = fig.axes[0].get_legend()
        assert legend is not None and legend.get_bbox_to_anchor().x0 >= fig.axes[0].get_position().x1 * fig.bbox.width - 1
