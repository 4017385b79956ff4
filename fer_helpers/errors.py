"""Error analysis: which classes are confused, where the model is confidently wrong,
whether errors follow annotator disagreement, how a single annotator would score,
and whether rare classes really fail.
"""
from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score, roc_auc_score

from .labels import CLASSES, DISPLAY_NAMES, leave_one_out_votes, vote_distribution


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


def _weighted_scores(y_true: np.ndarray, y_pred: np.ndarray, weight: np.ndarray, classes) -> dict:
    labels = list(range(len(classes)))
    recall = recall_score(y_true, y_pred, labels=labels, average=None, sample_weight=weight, zero_division=0)
    return {"accuracy": float(accuracy_score(y_true, y_pred, sample_weight=weight)),
            "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", sample_weight=weight,
                                       zero_division=0)),
            "recall": {c: float(r) for c, r in zip(classes, recall)}}


def annotator_baseline(votes: np.ndarray, label_mode: str, y_pred: np.ndarray, classes) -> dict:
    """A single FER+ annotator against the other annotators' label, and the model on the same labels.

    Both are scored on the same references: for each image and each annotator who named an
    emotion, the label of the remaining votes under ``label_mode`` (``leave_one_out_votes``),
    weighted by vote count, so an image weighs as much as its annotators. The model's score
    here differs a little from its test score, whose label uses every vote. Votes of
    ``unknown``/``NF`` name no class; their share is reported and they are left out of both.
    """
    loo = leave_one_out_votes(votes, label_mode)
    named = loo["vote"] >= 0
    total = int(loo["weight"].sum())
    if not named.any():
        raise ValueError("no annotator names an emotion that the other annotators' votes can be scored "
                         f"against ({len(votes)} images under the {label_mode!r} rule)")
    row, vote, others, weight = (loo[k][named] for k in ("row", "vote", "others", "weight"))
    return {
        "label_mode": label_mode, "n_images": int(np.unique(row).size), "n_votes": int(weight.sum()),
        "unnamed_vote_share": float(1 - weight.sum() / total) if total else 0.0,
        "annotator": _weighted_scores(others, vote, weight, classes),
        "model": _weighted_scores(others, np.asarray(y_pred)[row], weight, classes),
    }


def annotator_table(baselines: dict[str, dict], language: str = "tr"):
    """``annotator_baseline`` results per protocol as one table: a row per protocol and scorer."""
    import pandas as pd

    who = {"annotator": "Tek işaretleyici", "model": "Model"}
    return pd.DataFrame([{"Protokol": protocol, "Kim": label, "Doğruluk": b[key]["accuracy"],
                          "Makro-F1": b[key]["macro_f1"],
                          **{DISPLAY_NAMES[language][c]: r for c, r in b[key]["recall"].items()}}
                         for protocol, b in baselines.items() for key, label in who.items()])


def support_vs_recall(per_class: list[dict], train_counts: dict[str, int]) -> dict:
    """Test the claim "rare classes fail": Spearman correlation of training support and recall."""
    names = [r["class"] for r in per_class]
    support = np.array([train_counts.get(c, 0) for c in names], dtype=np.float64)
    recall = np.array([r["recall"] for r in per_class])
    res = stats.spearmanr(support, recall)
    return {"classes": names, "train_support": support.astype(int).tolist(), "recall": recall.tolist(),
            "spearman_rho": float(res.statistic), "spearman_p": float(res.pvalue)}


def votes_for_predicted(distribution: np.ndarray, y_pred: np.ndarray, classes) -> dict:
    """How far the annotators back the model's wrong answers: for each error, the share of its
    emotion votes given to the predicted class (``distribution``: N×8 vote shares in ``CLASSES``
    order; ``classes``: the run's class names, ``y_pred`` indexing them). Returns the per-error
    shares, how many errors got at least one vote for the predicted class, and their mean."""
    columns = np.array([CLASSES.index(classes[k]) for k in y_pred], dtype=np.int64)
    shares = distribution[np.arange(len(columns)), columns].astype(float)
    return {"shares": shares.tolist(), "n": int(len(shares)), "with_votes": int((shares > 0).sum()),
            "mean_share": float(shares.mean()) if len(shares) else 0.0}


def analyze_run(run_dir, top_pairs: int = 10, top_errors: int = 24) -> dict:
    """Error analysis of a run's primary protocol; writes ``results/error_analysis.json``.

    Returns the JSON numbers plus the images and labels of the most confident
    errors for the figure.
    """
    from pathlib import Path

    from .artifacts import read_json, run_paths, write_json
    from .data import load_run_data
    from .evaluation import PROTOCOL_LABEL_MODES, load_predictions
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
        result["annotator_baseline"] = {}
        for name in evaluation["protocols"]:
            preds = pred_set if name == primary else load_predictions(run_dir, name)
            rows = data.indices_of(preds["names"])
            result["annotator_baseline"][name] = annotator_baseline(
                data.votes[rows], PROTOCOL_LABEL_MODES.get(name, data.label_mode), preds["probs"].argmax(axis=1),
                classes)
    worst = most_confident_errors(y_true, probs, top_errors)
    result["most_confident_errors"] = [
        {"name": str(pred_set["names"][i]), "true": classes[y_true[i]], "predicted": classes[y_pred[i]],
         "confidence": float(probs[i, y_pred[i]])} for i in worst]
    if data.votes is not None and len(worst):
        # Is the model's most confident "error" one that some annotators also saw?
        backed = votes_for_predicted(vote_distribution(data.votes[idx[worst]]), y_pred[worst], classes)
        for error, share in zip(result["most_confident_errors"], backed.pop("shares")):
            error["votes_for_predicted"] = share
        result["confident_error_votes"] = backed
    write_json(Path(paths["results"]) / "error_analysis.json", result)
    return {**result, "worst_images": data.images[idx[worst]], "worst_true": y_true[worst],
            "worst_pred": y_pred[worst], "worst_probs": probs[worst], "classes": classes}
