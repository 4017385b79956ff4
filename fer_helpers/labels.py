"""Class order, display names and the FER+ vote-to-label rules.

This is the bottom of the package: it imports nothing from ``fer_helpers``.
Every other module takes its class order from here, so the order used by the
data loader, the model's output layer, the metrics and the report is one and
the same.
"""
from __future__ import annotations

import numpy as np

#: The starting study's class order; model outputs and ``Dataset.labels`` follow it.
CLASSES: tuple[str, ...] = (
    "Anger", "Contempt", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise",
)
#: The original FER2013 labels have no Contempt class.
CLASSES_7: tuple[str, ...] = tuple(c for c in CLASSES if c != "Contempt")

#: Turkish display names (default) and English ones, switchable with ``language``.
DISPLAY_NAMES: dict[str, dict[str, str]] = {
    "tr": {
        "Anger": "Öfke", "Contempt": "Küçümseme", "Disgust": "İğrenme", "Fear": "Korku",
        "Happiness": "Mutluluk", "Neutral": "Nötr", "Sadness": "Üzüntü", "Surprise": "Şaşkınlık",
    },
    "en": {c: c for c in CLASSES},
}

#: Column order of the ten FER+ vote counts in ``label.csv`` / ``fer2013new.csv``.
VOTE_COLUMNS: tuple[str, ...] = (
    "neutral", "happiness", "surprise", "sadness", "anger",
    "disgust", "fear", "contempt", "unknown", "NF",
)
#: Index in ``CLASSES`` of each of the first eight vote columns.
_VOTE_TO_CLASS = np.array([CLASSES.index(name.capitalize()) for name in VOTE_COLUMNS[:8]])

#: Original fer2013.csv ``emotion`` codes (0..6) as class names.
FER2013_EMOTIONS: tuple[str, ...] = (
    "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Neutral",
)

LABEL_MODES = ("majority", "plurality", "distribution")

#: Folder-name aliases of class-per-folder trees (Kaggle FER2013 / FER2013Plus mirrors).
FOLDER_ALIASES: dict[str, str] = {
    "anger": "Anger", "angry": "Anger",
    "contempt": "Contempt",
    "disgust": "Disgust", "disgusted": "Disgust",
    "fear": "Fear", "fearful": "Fear", "scared": "Fear",
    "happiness": "Happiness", "happy": "Happiness",
    "neutral": "Neutral",
    "sadness": "Sadness", "sad": "Sadness",
    "surprise": "Surprise", "surprised": "Surprise",
}


def display_names(classes=CLASSES, language: str = "tr") -> list[str]:
    """Human-readable names of ``classes`` in ``language`` ("tr" or "en")."""
    if language not in DISPLAY_NAMES:
        raise ValueError(f"language must be one of {sorted(DISPLAY_NAMES)}, got {language!r}")
    return [DISPLAY_NAMES[language][c] for c in classes]


def _check_votes(votes: np.ndarray) -> np.ndarray:
    votes = np.asarray(votes)
    if votes.ndim != 2 or votes.shape[1] != len(VOTE_COLUMNS):
        raise ValueError(f"votes must be an N×{len(VOTE_COLUMNS)} array, got shape {votes.shape}")
    if (votes < 0).any():
        raise ValueError("votes must be non-negative counts")
    return votes


def plurality_labels(votes: np.ndarray) -> np.ndarray:
    """Plurality label per row in ``CLASSES`` indices, -1 where excluded.

    The argmax runs over all ten vote columns and the first maximum wins, as in
    the Kaggle FER2013Plus mirror and the starting study; a row whose winner is
    ``unknown`` or ``NF`` is excluded (-1).
    """
    votes = _check_votes(votes)
    winner = votes.argmax(axis=1)
    labels = np.full(len(votes), -1, dtype=np.int64)
    is_emotion = winner < 8
    labels[is_emotion] = _VOTE_TO_CLASS[winner[is_emotion]]
    return labels


def majority_labels(votes: np.ndarray) -> np.ndarray:
    """FER+ paper majority label per row in ``CLASSES`` indices, -1 where excluded.

    Single votes (count 1) are treated as annotator noise and dropped; the top
    class must then hold strictly more than half of the remaining votes and be
    an emotion (not ``unknown``/``NF``), otherwise the row is excluded.
    """
    votes = _check_votes(votes)
    kept = np.where(votes > 1, votes, 0)
    total = kept.sum(axis=1)
    winner = kept.argmax(axis=1)
    top = kept.max(axis=1)
    ok = (total > 0) & (2 * top > total) & (winner < 8)
    labels = np.full(len(votes), -1, dtype=np.int64)
    labels[ok] = _VOTE_TO_CLASS[winner[ok]]
    return labels


def vote_distribution(votes: np.ndarray) -> np.ndarray:
    """Soft targets (N×8, ``CLASSES`` order) from the eight emotion vote counts.

    Rows with no emotion vote get all zeros; callers exclude them through the
    plurality label, which is -1 for such rows.
    """
    votes = _check_votes(votes).astype(np.float64)
    dist = np.zeros((len(votes), len(CLASSES)), dtype=np.float64)
    dist[:, _VOTE_TO_CLASS] = votes[:, :8]
    total = dist.sum(axis=1, keepdims=True)
    np.divide(dist, total, out=dist, where=total > 0)
    return dist.astype(np.float32)


def vote_entropy(votes: np.ndarray) -> np.ndarray:
    """Shannon entropy (bits) of the ten-way annotator vote distribution per row.

    0 means every annotator agreed; higher means more disagreement.
    """
    votes = _check_votes(votes).astype(np.float64)
    p = votes / np.maximum(votes.sum(axis=1, keepdims=True), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log2(p), 0.0)
    return terms.sum(axis=1)


def leave_one_out_votes(votes: np.ndarray, label_mode: str) -> dict[str, np.ndarray]:
    """Each annotator's vote against the label that the *other* annotators give.

    A single annotator is the human yardstick for a model trained on crowd labels: the
    test label is itself a vote among about ten people, so no one (and no model) can
    agree with it everywhere. For every image and every vote column holding a vote, one
    vote is taken out and ``label_mode``'s rule labels the remaining votes. Identical votes
    of one image meet the same remaining votes, so each (image, column) pair is one row
    weighted by its vote count instead of one row per person.

    Returns arrays ``row`` (image index), ``vote`` (the annotator's class in ``CLASSES``
    indices, -1 for ``unknown``/``NF``), ``others`` (the remaining votes' label) and
    ``weight`` (how many annotators cast that vote). Pairs whose remaining votes give no
    label (-1 under the rule, or no votes at all) are left out: there is nothing to agree with.
    """
    votes = _check_votes(votes)
    vote_class = np.concatenate([_VOTE_TO_CLASS, [-1, -1]])
    parts = {"row": [], "vote": [], "others": [], "weight": []}
    for col in range(len(VOTE_COLUMNS)):
        rows = np.flatnonzero(votes[:, col] > 0)
        rest = votes[rows].copy()
        rest[:, col] -= 1
        others = labels_from_votes(rest, label_mode)
        keep = (others >= 0) & (rest.sum(axis=1) > 0)   # a lone vote leaves no one to agree with
        parts["row"].append(rows[keep])
        parts["vote"].append(np.full(keep.sum(), vote_class[col], dtype=np.int64))
        parts["others"].append(others[keep])
        parts["weight"].append(votes[rows[keep], col].astype(np.int64))
    return {k: np.concatenate(v) for k, v in parts.items()}


def labels_from_votes(votes: np.ndarray, label_mode: str) -> np.ndarray:
    """Hard labels for ``label_mode`` (distribution mode uses the plurality label)."""
    if label_mode == "majority":
        return majority_labels(votes)
    if label_mode in ("plurality", "distribution"):
        return plurality_labels(votes)
    raise ValueError(f"label_mode must be one of {LABEL_MODES}, got {label_mode!r}")
