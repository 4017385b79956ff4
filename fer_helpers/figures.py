"""Figures with Turkish titles and labels, saved at 200 dpi (plus SVG for charts).

Each function takes plain arrays/dicts and returns a matplotlib Figure;
``save_figure`` writes it and stamps "DEMO — sentetik veri" on demo runs, so
no demo figure can pass for a real result.
"""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from matplotlib.ticker import ScalarFormatter  # noqa: E402

from .demo import DEMO_LABEL  # noqa: E402
from .labels import display_names  # noqa: E402

DPI = 200
sns.set_theme(style="whitegrid", context="paper")
plt.rcParams.update({"figure.dpi": 100, "savefig.bbox": "tight", "font.family": "DejaVu Sans"})


def in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, papermill), where figures are shown inline."""
    import sys

    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return bool(shell) and type(shell).__name__ == "ZMQInteractiveShell"


def _demo_label(fig) -> None:
    # Above the top edge (va="bottom"), so it never covers a title; bbox="tight" keeps it.
    fig.text(0.5, 1.01, DEMO_LABEL, ha="center", va="bottom", fontsize=11, color="white",
             fontweight="bold", bbox={"facecolor": "#c0392b", "edgecolor": "none", "pad": 3})


def figure_image(fig, demo: bool = False, dpi: int = 110):
    """``fig`` as an IPython PNG image, closed: for figures that are looked at, not saved (the
    explorer's), e.g. to append to a widget's output area. ``demo`` marks it as made from demo data."""
    import io

    from IPython.display import Image

    if demo:
        _demo_label(fig)
    decimal_comma(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return Image(data=buf.getvalue())


def show_figure(fig, demo: bool = False, dpi: int = 110) -> None:
    """Show ``fig`` in the notebook as a PNG and close it, whatever matplotlib backend the kernel
    runs (the runner's kernels use Agg, which shows nothing by itself)."""
    from IPython.display import display

    display(figure_image(fig, demo, dpi))


class _CommaFormatter(ScalarFormatter):
    """Matplotlib's default tick labels with a decimal comma, as the Turkish text writes numbers."""

    def __call__(self, x, pos=None):
        return super().__call__(x, pos).replace(".", ",")


_DECIMAL_POINT = re.compile(r"(?<=\d)\.(?=\d)")


def decimal_comma(fig) -> None:
    """Write every number in ``fig`` with a decimal comma: linear tick labels (their formatter)
    and the numbers already in its texts (annotations, cell values, legends, titles)."""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if type(axis.get_major_formatter()) is ScalarFormatter:
                axis.set_major_formatter(_CommaFormatter())
    for text in fig.findobj(Text):
        text.set_text(_DECIMAL_POINT.sub(",", text.get_text()))


def save_figure(fig, name: str, figures_dir, demo: bool = False, vector: bool = True,
                show: bool | None = None) -> Path:
    """Save ``fig`` as ``<name>.png`` (200 dpi) and, for charts, ``<name>.svg``; show it inline
    where it was made when running in a notebook (``show=None``), so the executed notebooks and
    their HTML carry every figure; close it."""
    out = Path(figures_dir)
    out.mkdir(parents=True, exist_ok=True)
    if demo:
        _demo_label(fig)
    decimal_comma(fig)
    png = out / f"{name}.png"
    fig.savefig(png, dpi=DPI)
    if vector:
        fig.savefig(out / f"{name}.svg")
    if in_notebook() if show is None else show:
        from IPython.display import Image, display

        # The saved PNG itself, so what the reader sees is exactly the file in figures/.
        display(Image(filename=str(png), width=min(900, int(fig.get_figwidth() * 100))))
    plt.close(fig)
    return png


def outside_legend(ax, **kwargs) -> None:
    """The legend to the right of the axes, where it cannot cover a bar."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, **kwargs)


def _names(classes, language):
    return display_names(classes, language)


def class_counts_bar(counts: dict[str, dict[str, int]], classes, language: str = "tr"):
    """Grouped bars: images per class in each split (the class imbalance)."""
    names = _names(classes, language)
    splits = [s for s in counts if sum(counts[s].values())]
    split_tr = {"train": "Eğitim", "val": "Doğrulama", "test": "Test"}
    fig, ax = plt.subplots(figsize=(8, 4))
    w = 0.8 / max(1, len(splits))
    for i, s in enumerate(splits):
        vals = [counts[s][c] for c in classes]
        ax.bar(np.arange(len(classes)) + i * w - 0.4 + w / 2, vals, w, label=split_tr.get(s, s))
    ax.set_xticks(range(len(classes)), names, rotation=30, ha="right")
    ax.set_ylabel("Görüntü sayısı")
    ax.set_title("Sınıf dağılımı (bölüm başına)")
    ax.set_xlabel("Sınıf")
    outside_legend(ax, title="Bölüm")
    return fig


#: The report's box for a wide figure (fer_helpers/templates/report.css): the text width and the
#: largest height, in inches. A grid is shrunk into it, and its labels are sized for the shrunk print.
REPORT_FIGURE_BOX_IN = (170 / 25.4, 150 / 25.4)
#: The smallest print size of a per-image label, in points.
MIN_LABEL_PT = 7.0


def printed_scale(width_in: float, height_in: float) -> float:
    """How much a figure of this size is shrunk to fit the report's wide-figure box (≤ 1)."""
    return min(1.0, REPORT_FIGURE_BOX_IN[0] / width_in, REPORT_FIGURE_BOX_IN[1] / height_in)


def label_points(size) -> float:
    """The font size that prints at ``MIN_LABEL_PT`` or more on a figure of ``size`` inches in the report."""
    return MIN_LABEL_PT / printed_scale(*size) + 0.2


def image_grid(images: np.ndarray, titles: list[str] | None = None, ncols: int = 8,
               title: str = "", overlays: np.ndarray | None = None, title_colors=None):
    """A grid of 48×48 images (optionally with heatmap overlays). Labels are sized so that they
    print at least ``MIN_LABEL_PT`` once the grid is shrunk into the report's figure box."""
    n = len(images)
    nrows = max(1, int(np.ceil(n / ncols)))
    # Each row holds its image and its labels' lines: a three-line label (Grad-CAM pairs) needs
    # more room than two, or it runs into the images above.
    lines = max((t.count("\n") + 1 for t in titles), default=0) if titles else 0
    size = (1.1 * ncols, (1.0 + 0.25 * lines) * nrows + (0.3 if title else 0))
    label_pt = label_points(size)
    fig, axes = plt.subplots(nrows, ncols, figsize=size, squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        ax.imshow(images[k], cmap="gray", vmin=0, vmax=255)
        if overlays is not None:
            ax.imshow(overlays[k], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        if titles:
            ax.set_title(titles[k], fontsize=label_pt,
                         color=(title_colors[k] if title_colors is not None else "black"))
    if title:
        fig.suptitle(title, y=1.0, fontsize=max(11, label_pt + 2))
    fig.tight_layout()
    return fig


def augmentation_grid(originals: np.ndarray, variants: np.ndarray):
    """One row per face: the original, then its augmented variants (``variants``: n × k × 48 × 48)."""
    originals, variants = np.asarray(originals), np.asarray(variants)
    n, k = variants.shape[:2]
    if len(originals) != n:
        raise ValueError(f"{len(originals)} original images but variants for {n}")
    rows = np.concatenate([originals[:, None], variants], axis=1).reshape(-1, *originals.shape[1:3])
    titles = [("Özgün" if j == 0 else f"Artırma {j}") for _ in range(n) for j in range(k + 1)]
    return image_grid(rows, titles, ncols=k + 1, title="Veri artırma örnekleri")


def samples_per_class(images, labels, classes, per_class: int = 8, seed: int = 0,
                      language: str = "tr"):
    """``per_class`` random images of each class, one row per class."""
    rng = np.random.default_rng(seed)
    names = _names(classes, language)
    picks, titles = [], []
    for c in range(len(classes)):
        idx = np.flatnonzero(labels == c)
        chosen = rng.choice(idx, size=min(per_class, len(idx)), replace=False) if len(idx) else []
        for j in range(per_class):
            picks.append(images[chosen[j]] if j < len(chosen) else np.zeros((48, 48), np.uint8))
            titles.append(names[c] if j < len(chosen) else "")
    return image_grid(np.stack(picks), titles, ncols=per_class, title="Sınıf başına örnek görüntüler")


def pixel_intensity_plot(images: np.ndarray, labels: np.ndarray, classes, language: str = "tr"):
    """Histogram of pixel intensities and per-class mean brightness."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    sample = images[:: max(1, len(images) // 3000)].ravel()
    a.hist(sample, bins=64, color="#34495e")
    a.set_xlabel("Piksel yoğunluğu (0–255)")
    a.set_ylabel("Frekans")
    a.set_title("Piksel yoğunluğu dağılımı")
    means = [images[labels == c].mean() if (labels == c).any() else np.nan for c in range(len(classes))]
    b.bar(_names(classes, language), means, color="#2980b9")
    b.set_xlabel("Sınıf")
    b.set_ylabel("Ortalama parlaklık")
    b.set_title("Sınıf başına ortalama parlaklık")
    b.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig


def entropy_histogram(entropy: np.ndarray):
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.hist(entropy, bins=30, color="#8e44ad")
    ax.set_xlabel("Oy entropisi (bit) — 0: tüm işaretleyiciler hemfikir")
    ax.set_ylabel("Görüntü sayısı")
    ax.set_title("FER+ işaretleyici uyuşmazlığı")
    return fig


def training_curves(history: dict):
    """Accuracy and loss, train vs validation, per epoch."""
    ep = np.asarray(history["epoch"]) + 1
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.plot(ep, history["accuracy"], label="Eğitim")
    a.plot(ep, history["val_accuracy"], label="Doğrulama")
    a.set_title("Doğruluk")
    a.set_xlabel("Epok")
    a.set_ylabel("Doğruluk")
    b.plot(ep, history["loss"], label="Eğitim")
    b.plot(ep, history["val_loss"], label="Doğrulama")
    b.set_title("Kayıp")
    b.set_xlabel("Epok")
    b.set_ylabel("Kayıp")
    for ax in (a, b):
        ax.legend()
    fig.tight_layout()
    return fig


def confusion_figure_name(protocol: str, normalize: bool) -> str:
    """The file stem of a protocol's confusion-matrix figure, e.g. ``04_karisiklik_p_ferplus_normalize``
    for ``"P-FER+"``; notebook 04 saves under it and the report captions it by it."""
    tag = protocol.replace("+", "plus").replace("-", "_").lower()
    return f"04_karisiklik_{tag}_{'normalize' if normalize else 'sayilar'}"


def confusion_matrix_plot(cm, classes, normalize: bool = False, language: str = "tr", title: str = ""):
    cm = np.asarray(cm, dtype=np.float64)
    if normalize:
        cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    names = _names(classes, language)
    fig, ax = plt.subplots(figsize=(7, 6))
    sns.heatmap(cm, annot=True, fmt=".2f" if normalize else ".0f", cmap="Blues", xticklabels=names,
                yticklabels=names, cbar=True, ax=ax, annot_kws={"fontsize": 8})
    ax.set_xlabel("Tahmin edilen sınıf")
    ax.set_ylabel("Gerçek sınıf")
    ax.set_title(title or ("Karışıklık matrisi (satır normalize)" if normalize else "Karışıklık matrisi (sayılar)"))
    ax.tick_params(axis="x", rotation=35)
    ax.tick_params(axis="y", rotation=0)
    fig.tight_layout()
    return fig


def reliability_diagram(calibration: dict):
    bins = calibration["bins"]
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    mids = [(b["lo"] + b["hi"]) / 2 for b in bins]
    ax.bar(mids, [b["accuracy"] for b in bins], width=1 / calibration["n_bins"], edgecolor="k",
           alpha=0.8, label="Doğruluk")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="Mükemmel kalibrasyon")
    ax.set_xlabel("Güven (en yüksek olasılık)")
    ax.set_ylabel("Doğruluk")
    ax.set_title(f"Güvenilirlik diyagramı (ECE = {calibration['ece']:.3f})")
    ax.legend(loc="upper left")
    return fig


def per_class_bars(per_class: list[dict], language: str = "tr"):
    names = _names([r["class"] for r in per_class], language)
    fig, ax = plt.subplots(figsize=(8, 3.8))
    x = np.arange(len(names))
    for i, (key, label) in enumerate([("precision", "Kesinlik"), ("recall", "Duyarlılık"), ("f1", "F1")]):
        ax.bar(x + (i - 1) * 0.27, [r[key] for r in per_class], 0.27, label=label)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_title("Sınıf başına kesinlik, duyarlılık ve F1")
    ax.set_xlabel("Sınıf")
    ax.set_ylabel("Değer")
    outside_legend(ax)
    return fig


def _outcome_color(true: int, pred: int) -> str:
    """Green for a right prediction, red for a wrong one."""
    return "#1e8449" if true == pred else "#c0392b"


def _outcome_title(names: list[str], true: int, pred: int, confidence: float | None = None) -> str:
    """"G: <true>" (gerçek) over "T: <predicted>" (tahmin), with the confidence when given."""
    shown = "" if confidence is None else f" ({confidence:.0%})"
    return f"G: {names[true]}\nT: {names[pred]}{shown}"


def prediction_titles(true, pred, probs, classes, language: str = "tr") -> tuple[list[str], list[str]]:
    """Titles "G: <true>" over "T: <predicted> (<confidence>)", and their green/red colours."""
    names = _names(classes, language)
    titles = [_outcome_title(names, t, p, probs[i, p]) for i, (t, p) in enumerate(zip(true, pred))]
    return titles, [_outcome_color(t, p) for t, p in zip(true, pred)]


def example_indices(true, pred, correct: bool, n: int = 24, seed: int = 0) -> np.ndarray:
    """Up to ``n`` indices, drawn at random with ``seed``, of right (``correct``) or wrong predictions.

    A fixed seed shows the same faces on every run, so a figure in the report can be discussed.
    """
    candidates = np.flatnonzero((np.asarray(true) == np.asarray(pred)) == correct)
    if not len(candidates):
        return candidates
    return np.random.default_rng(seed).choice(candidates, size=min(n, len(candidates)), replace=False)


def prediction_examples(images, true, probs, classes, correct: bool, n: int = 24, seed: int = 0,
                        language: str = "tr"):
    """A grid of up to ``n`` right (or wrong) predictions with their confidence; None if there are none."""
    true, probs = np.asarray(true), np.asarray(probs)
    pred = probs.argmax(axis=1)
    pick = example_indices(true, pred, correct, n, seed)
    if not len(pick):
        return None
    titles, colors = prediction_titles(true[pick], pred[pick], probs[pick], classes, language)
    return image_grid(np.asarray(images)[pick], titles, ncols=8, title_colors=colors,
                      title="Doğru tahminler" if correct else "Yanlış tahminler")


def confused_pairs_bar(pairs: list[dict], language: str = "tr"):
    from .labels import DISPLAY_NAMES

    names = DISPLAY_NAMES[language]
    labels = [f"{names[p['true']]} → {names[p['predicted']]}" for p in pairs][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(pairs) + 1))
    ax.barh(labels, [p["count"] for p in pairs][::-1], color="#d35400")
    ax.set_xlabel("Hata sayısı")
    ax.set_ylabel("Sınıf çifti (gerçek → tahmin)")
    ax.set_title("En sık karıştırılan sınıf çiftleri (gerçek → tahmin)")
    return fig


def entropy_error_plot(result: dict):
    bins = result["bins"]
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.bar([f"{b['lo']:.2f}–{b['hi']:.2f}" for b in bins], [b["error_rate"] for b in bins], color="#7d3c98")
    ax.set_xlabel("Oy entropisi aralığı (bit)")
    ax.set_ylabel("Hata oranı")
    auc = result.get("auc_entropy_predicts_error")
    # Three decimals, as the report and slides write the same AUC (one value per quantity).
    ax.set_title("Hata oranı ve işaretleyici uyuşmazlığı" + (f" (AUC = {auc:.3f})" if auc is not None else ""))
    ax.tick_params(axis="x", rotation=20)
    return fig


def support_recall_plot(result: dict, language: str = "tr"):
    names = _names(result["classes"], language)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(result["train_support"], result["recall"], s=40, color="#16a085")
    for n, x, y in zip(names, result["train_support"], result["recall"]):
        ax.annotate(n, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("Eğitim örnek sayısı (log)")
    ax.set_ylabel("Test duyarlılığı (recall)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(f"Sınıf desteği ve duyarlılık (Spearman ρ = {result['spearman_rho']:.2f})")
    return fig


def annotator_model_recall_plot(result: dict, language: str = "tr", protocol: str = ""):
    """Per-class recall of one annotator and of the model against the other annotators' label."""
    from .errors import annotator_table

    names = _names(list(result["annotator"]["recall"]), language)
    frame = annotator_table({protocol: result}, language).melt(
        id_vars="Kim", value_vars=names, var_name="Sınıf", value_name="Duyarlılık")
    fig, ax = plt.subplots(figsize=(8, 4))
    sns.barplot(frame, x="Sınıf", y="Duyarlılık", hue="Kim", palette=["#7f8c8d", "#2980b9"], ax=ax)
    ax.set_ylim(0, 1)
    ax.set_xlabel("Sınıf")
    ax.set_ylabel("Duyarlılık (recall)")
    ax.tick_params(axis="x", rotation=30)
    outside_legend(ax)
    where = f" ({protocol})" if protocol else ""
    ax.set_title(f"Kalan işaretleyicilerin etiketine karşı{where}: tek işaretleyici ve model")
    fig.tight_layout()
    return fig


def gradcam_pairs(images, maps_pred, maps_true, true, pred, classes, language: str = "tr"):
    """Each face twice: under the Grad-CAM map of the predicted class, then of the true class.

    Side by side, the pair shows whether a wrong prediction looked at other regions than the
    true class would have; for a right prediction the two maps are the same.
    """
    names = _names(classes, language)
    titles, colors = [], []
    for t, p in zip(true, pred):
        titles += [_outcome_title(names, t, p) + "\n[tahmin]", "[gerçek]"]
        colors += [_outcome_color(t, p)] * 2
    images = np.asarray(images)
    maps = np.stack([maps_pred, maps_true], axis=1).reshape(-1, *images.shape[1:3])
    return image_grid(np.repeat(images, 2, axis=0), titles, ncols=8, overlays=maps, title_colors=colors,
                      title="Grad-CAM: tahmin ve gerçek sınıf")


def class_maps_grid(maps: np.ndarray, classes, language: str = "tr"):
    names = _names(classes, language)
    size = (1.6 * len(classes), 2)
    fig, axes = plt.subplots(1, len(classes), figsize=size)
    for ax, m, n in zip(np.atleast_1d(axes), maps, names):
        ax.axis("off")
        if not np.isnan(m).all():
            ax.imshow(m, cmap="jet", vmin=0, vmax=max(float(np.nanmax(m)), 1e-6))
        ax.set_title(n, fontsize=label_points(size))
    fig.suptitle("Sınıf başına ortalama Grad-CAM haritası (doğru sınıflananlar)")
    fig.tight_layout()
    return fig


def face_detail_figure(image: np.ndarray, detail: dict, names: list[str], vote_names: list[str] | None = None):
    """One face for the explorer: the Grad-CAM maps of the predicted and of the true class, the
    class probabilities and the annotators' votes (``explorer.face_detail``'s dict)."""
    fig, axes = plt.subplots(1, 4, figsize=(13, 3), gridspec_kw={"width_ratios": [1, 1, 1.6, 1.6]})
    for ax, key, label in ((axes[0], "gradcam_predicted", "tahmin"), (axes[1], "gradcam_true", "gerçek")):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        ax.imshow(detail[key], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        cls = detail["predicted"] if key == "gradcam_predicted" else detail["true"]
        ax.set_title(f"Grad-CAM [{label}]: {names[cls]}", fontsize=9)
        ax.axis("off")
    axes[2].barh(names, list(detail["probabilities"].values()), color="#2e86c1")
    axes[2].set_xlim(0, 1)
    axes[2].set_xlabel("olasılık")
    axes[2].invert_yaxis()
    if detail.get("votes") is not None:
        axes[3].barh(vote_names or list(detail["votes"]), list(detail["votes"].values()), color="#7f8c8d")
        axes[3].set_xlabel(f"oy (10 işaretleyici) · entropi {detail['entropy']:.2f} bit")
        axes[3].invert_yaxis()
    else:
        axes[3].axis("off")
    fig.suptitle(f"{detail['name']}: gerçek {names[detail['true']]}, tahmin {names[detail['predicted']]}",
                 fontsize=10)
    fig.tight_layout()
    return fig


def photo_faces_figure(gray: np.ndarray, found: list[dict], names: list[str], title: str = ""):
    """Each face found in a photo (``explorer.analyse_photo``): its box in the photo, the crop
    under the Grad-CAM map of the predicted class, and the class probabilities."""
    fig, axes = plt.subplots(len(found), 3, figsize=(11, 3 * len(found)), squeeze=False,
                             gridspec_kw={"width_ratios": [1.4, 1, 1.6]})
    for row, face in zip(axes, found):
        x, y, w, h = face["box"]
        row[0].imshow(gray, cmap="gray")
        row[0].add_patch(plt.Rectangle((x, y), w, h, fill=False, color="#2ecc71", linewidth=2))
        row[1].imshow(face["crop"], cmap="gray", vmin=0, vmax=255)
        row[1].imshow(face["gradcam"], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        row[1].set_title(f"{names[face['predicted']]} (%{100 * face['probabilities'].max():.0f})", fontsize=10)
        row[2].barh(names, face["probabilities"], color="#2e86c1")
        row[2].set_xlim(0, 1)
        row[2].set_xlabel("olasılık")
        row[2].invert_yaxis()
        row[0].axis("off")
        row[1].axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
