"""Error analysis: which classes are confused, where the model is confidently wrong,
whether errors follow annotator disagreement, and whether rare classes really fail.
"""
from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.metrics import confusion_matrix, roc_auc_score


def top_confused_pairs(y_true: np.ndarray, y_pred: np.ndarray, classes, top: int = 10) -> list[dict]:
    """Off-diagonal confusion-matrix cells, largest first, with the share of the true class."""
    cm = confusion_matrix(y_true, y_pred, labels=list(range(len(classes))))
    support = cm.sum(axis=1)
    pairs = [{"true": classes[i], "predicted": classes[j], "count": int(cm[i, j]),
              "share_of_true": float(cm[i, j] / support[i]) if support[i] else 0.0}
             for i in range(len(classes)) for j in range(len(classes)) if i != j and cm[i, j] > 0]
    return sorted(pairs, key=lambda p: -p["count"])[:top]


def most_confident_errors(y_true: np.ndarray, probs: np.ndarray, top: int = 16) -> np.ndarray:
    """Indices of wrong predictions, most confident first."""
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != y_true)
    return wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")][:top]


def errors_vs_entropy(y_true: np.ndarray, y_pred: np.ndarray, entropy: np.ndarray,
                      n_bins: int = 5) -> dict:
    """Is the model wrong mostly where annotators disagree?

    Returns the error rate per entropy quantile bin, the ROC-AUC of vote
    entropy as a predictor of an error (0.5 = unrelated), and the mean entropy
    of correct vs wrong predictions with a Mann-Whitney U test.
    """
    wrong = np.asarray(y_pred) != np.asarray(y_true)
    entropy = np.asarray(entropy, dtype=np.float64)
    edges = np.unique(np.quantile(entropy, np.linspace(0, 1, n_bins + 1)))
    which = np.clip(np.digitize(entropy, edges[1:-1], right=True), 0, len(edges) - 2)
    bins = [{"lo": float(edges[k]), "hi": float(edges[k + 1]), "count": int((which == k).sum()),
             "error_rate": float(wrong[which == k].mean())}
            for k in range(len(edges) - 1) if (which == k).any()]
    both = wrong.any() and (~wrong).any()
    return {
        "auc_entropy_predicts_error": float(roc_auc_score(wrong, entropy)) if both else None,
        "mean_entropy_correct": float(entropy[~wrong].mean()) if (~wrong).any() else None,
        "mean_entropy_wrong": float(entropy[wrong].mean()) if wrong.any() else None,
        "mannwhitney_p": float(stats.mannwhitneyu(entropy[wrong], entropy[~wrong]).pvalue) if both else None,
        "bins": bins, "n": int(len(wrong)), "error_rate": float(wrong.mean()),
    }


def support_vs_recall(per_class: list[dict], train_counts: dict[str, int]) -> dict:
    """Test the claim "rare classes fail": Spearman correlation of training support and recall."""
    names = [r["class"] for r in per_class]
    support = np.array([train_counts.get(c, 0) for c in names], dtype=np.float64)
    recall = np.array([r["recall"] for r in per_class])
    res = stats.spearmanr(support, recall)
    return {"classes": names, "train_support": support.astype(int).tolist(), "recall": recall.tolist(),
            "spearman_rho": float(res.statistic), "spearman_p": float(res.pvalue)}


def analyze_run(run_dir, top_pairs: int = 10, top_errors: int = 24) -> dict:
    """Error analysis of a run's primary protocol; writes ``results/error_analysis.json``.

    Returns the JSON numbers plus the images and labels of the most confident
    errors for the figure.
    """
    from pathlib import Path

    from .artifacts import read_json, run_paths, write_json
    from .data import load_run_data
    from .evaluation import load_predictions
    from .labels import vote_entropy

    paths = run_paths(run_dir)
    evaluation = read_json(paths["results"] / "evaluation.json", "evaluation (written by notebook 04)")
    primary = evaluation["primary"]
    pred_set = load_predictions(run_dir, primary)
    probs, y_true = pred_set["probs"], pred_set["labels"]
    y_pred = probs.argmax(axis=1)
    data = load_run_data(run_dir, "plurality" if primary == "P-seed" else None)
    classes = data.classes
    idx = data.indices_of(pred_set["names"])
    per_class = evaluation["protocols"][primary]["plain"]["per_class"]
    train_counts = data.counts()["train"]
    result = {
        "protocol": primary, "n": int(len(y_true)), "is_demo": data.is_demo,
        "top_confused_pairs": top_confused_pairs(y_true, y_pred, classes, top_pairs),
        "support_vs_recall": support_vs_recall(per_class, train_counts),
    }
    if data.votes is not None:
        result["entropy"] = errors_vs_entropy(y_true, y_pred, vote_entropy(data.votes[idx]))
    worst = most_confident_errors(y_true, probs, top_errors)
    result["most_confident_errors"] = [
        {"name": str(pred_set["names"][i]), "true": classes[y_true[i]], "predicted": classes[y_pred[i]],
         "confidence": float(probs[i, y_pred[i]])} for i in worst]
    write_json(Path(paths["results"]) / "error_analysis.json", result)
    return {**result, "worst_images": data.images[idx[worst]], "worst_true": y_true[worst],
            "worst_pred": y_pred[worst], "worst_probs": probs[worst], "classes": classes}
