"""Test-set metrics: per-class report, confusion matrix, bootstrap CIs, McNemar, calibration.

All functions take integer labels and an N×K probability matrix and return
plain dicts ready for JSON, so notebook 04 and the report share one source of
numbers. Metric definitions are sklearn's.
"""
from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score, log_loss

from .data import Dataset

#: The two named evaluation protocols for FER+ data.
PROTOCOLS = {
    "P-seed": "plurality labels on FER2013Valid + FER2013Test (the starting study's protocol)",
    "P-FER+": "majority labels on FER2013Test (the FER+ paper's protocol)",
}
#: The protocols in Turkish, for the notebooks' and the report's prose (the JSON keeps ``PROTOCOLS``);
#: "test" is the own test split of a layout without the FER+ protocols.
PROTOCOLS_TR = {
    "P-seed": "FER2013Valid + FER2013Test üzerinde çoğulluk (plurality) etiketleri (başlangıç çalışmasının protokolü)",
    "P-FER+": "FER2013Test üzerinde çoğunluk (majority) etiketleri (FER+ makalesinin protokolü)",
    "test": "veri düzeninin kendi test bölümü",
}
#: The protocols' names in the text and figures, defined once in the report's introduction. "Çalışma
#: protokolü" is the starting study's (P-seed in the result files), not a random seed.
PROTOCOL_NAMES = {"P-seed": "çalışma protokolü", "P-FER+": "FER+ protokolü", "test": "test bölümü"}


def protocol_name(name, capital: bool = False) -> str:
    """A protocol's Turkish name: "P-seed" → "çalışma protokolü" (``capital``: "Çalışma protokolü")."""
    text = PROTOCOL_NAMES.get(str(name), str(name))
    return text[:1].upper() + text[1:] if capital else text


#: ``contamination_note`` in Turkish.
CONTAMINATION_TR = ("FER2013Valid doğrulama bölümü olarak kullanıldı (model seçimi, erken durdurma); bu yüzden "
                    "çalışma protokolü doğrulama görüntüleri içerir ve temiz bir test sayısı değildir.")
#: The vote rule behind each protocol's labels (other test sets use the run's label mode).
PROTOCOL_LABEL_MODES = {"P-seed": "plurality", "P-FER+": "majority"}


def _normalised(probs: np.ndarray) -> np.ndarray:
    p = np.clip(probs, 1e-7, 1)
    return p / p.sum(axis=1, keepdims=True)


def classification_metrics(y_true: np.ndarray, probs: np.ndarray, classes) -> dict:
    """Accuracy, loss, macro/weighted averages and the per-class table (sklearn)."""
    y_true = np.asarray(y_true)
    probs = np.asarray(probs, dtype=np.float64)
    k = len(classes)
    if probs.ndim != 2 or probs.shape[1] != k:
        raise ValueError(f"probabilities have shape {probs.shape}, expected N×{k} for {k} classes")
    if len(y_true) != len(probs):
        raise ValueError(f"{len(y_true)} labels but {len(probs)} predictions")
    y_pred = probs.argmax(axis=1)
    labels = list(range(k))
    report = classification_report(y_true, y_pred, labels=labels, target_names=list(classes),
                                   output_dict=True, zero_division=0)
    per_class = [{"class": c, "precision": report[c]["precision"], "recall": report[c]["recall"],
                  "f1": report[c]["f1-score"], "support": int(report[c]["support"])}
                 for c in classes]
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "loss": negative_log_likelihood(y_true, probs),
        "macro_f1": float(report["macro avg"]["f1-score"]),
        "weighted_f1": float(report["weighted avg"]["f1-score"]),
        "macro_precision": float(report["macro avg"]["precision"]),
        "macro_recall": float(report["macro avg"]["recall"]),
        "weighted_precision": float(report["weighted avg"]["precision"]),
        "weighted_recall": float(report["weighted avg"]["recall"]),
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "text_report": classification_report(y_true, y_pred, labels=labels,
                                              target_names=list(classes), digits=4, zero_division=0),
    }


def bootstrap_ci(y_true: np.ndarray, y_pred: np.ndarray, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> dict:
    """Percentile bootstrap CIs of accuracy and macro-F1 (images resampled with replacement).

    ``seed`` seeds the resampling only. Every entry point (notebook 04, the ``evaluate`` command,
    the benchmarks that write model cards) keeps the default, so the same predictions give the
    same interval wherever they are scored, whatever seed the model was trained with.
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive number of bootstrap resamples, got {n_boot!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    rng = np.random.default_rng(seed)
    n = len(y_true)
    labels = np.unique(np.concatenate([y_true, y_pred]))
    acc, f1 = np.empty(n_boot), np.empty(n_boot)
    for b in range(n_boot):
        i = rng.integers(0, n, n)
        acc[b] = np.mean(y_true[i] == y_pred[i])
        f1[b] = f1_score(y_true[i], y_pred[i], labels=labels, average="macro", zero_division=0)
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return {"level": level, "n_boot": n_boot,
            "accuracy": [float(np.percentile(acc, lo)), float(np.percentile(acc, hi))],
            "macro_f1": [float(np.percentile(f1, lo)), float(np.percentile(f1, hi))]}


def mcnemar_test(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict:
    """Exact McNemar test of two classifiers on the same images.

    ``b`` counts images only A gets right, ``c`` those only B gets right; under
    the null both are equally likely, so min(b, c) is Binomial(b + c, 1/2).
    """
    y_true = np.asarray(y_true)
    a_ok, b_ok = np.asarray(pred_a) == y_true, np.asarray(pred_b) == y_true
    b, c = int((a_ok & ~b_ok).sum()), int((~a_ok & b_ok).sum())
    p = 1.0 if b + c == 0 else float(stats.binomtest(min(b, c), b + c, 0.5).pvalue)
    return {"table": [[int((a_ok & b_ok).sum()), b], [c, int((~a_ok & ~b_ok).sum())]],
            "only_a_correct": b, "only_b_correct": c, "p_value": p}


#: Candidate strengths for the prior correction, chosen on validation.
PRIOR_TAUS = tuple(np.round(np.arange(0.0, 1.01, 0.05), 2))


def prior_correction(probs: np.ndarray, prior: np.ndarray, tau: float) -> np.ndarray:
    """Post-hoc logit adjustment (Menon et al., 2021): ``p_c / prior_c**tau``, renormalised.

    A network trained on imbalanced data leans towards frequent classes; dividing
    by the training prior to the power ``tau`` moves decisions towards the rare
    ones without retraining. ``tau=0`` leaves the probabilities unchanged.
    """
    prior = np.clip(np.asarray(prior, dtype=np.float64), 1e-6, None)
    logits = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, None)) - tau * np.log(prior)
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return (out / out.sum(axis=1, keepdims=True)).astype(np.float32)


def choose_prior_tau(val_probs: np.ndarray, val_labels: np.ndarray, prior: np.ndarray,
                     taus=PRIOR_TAUS) -> dict:
    """The ``tau`` with the highest macro-F1 on the validation split (ties: the smaller one).

    Only validation images enter this choice; the test protocols are then
    evaluated once with the chosen value.
    """
    labels = np.arange(len(prior))
    curve = [float(f1_score(val_labels, prior_correction(val_probs, prior, t).argmax(1), labels=labels,
                            average="macro", zero_division=0)) for t in taus]
    best = int(np.argmax(curve))       # argmax returns the first, i.e. the smallest tau, on ties
    return {"tau": float(taus[best]), "val_macro_f1": curve[best], "val_macro_f1_at_0": curve[0],
            "taus": [float(t) for t in taus], "val_macro_f1_curve": curve}


def per_class_recall(metrics: dict) -> dict[str, float]:
    """``{class: recall}`` from the per-class table of ``classification_metrics``."""
    return {r["class"]: r["recall"] for r in metrics["per_class"]}


def temperature_scale(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities whose logits are divided by ``temperature`` (Guo et al., 2017), renormalised.

    ``T > 1`` softens over-confident predictions, ``T < 1`` sharpens them; the arg-max, and so
    every accuracy, recall and F1, stays the same: only calibration changes.
    """
    logits = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, None)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def negative_log_likelihood(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Mean ``-log p(true class)`` (sklearn's log loss): the metrics' "loss", and the quantity
    temperature scaling minimises."""
    probs = np.asarray(probs, dtype=np.float64)
    # float32 softmax rows sum to 1 only within rounding; renormalise for sklearn.
    return float(log_loss(y_true, _normalised(probs), labels=list(range(probs.shape[1]))))


def fit_temperature(val_probs: np.ndarray, val_labels: np.ndarray, bounds=(0.05, 20.0)) -> dict:
    """The temperature with the lowest validation negative log-likelihood, and what it changes there.

    One parameter, searched over ``log T`` within ``bounds`` (scipy's bounded scalar search);
    only validation images enter, the test protocols are then rescaled once with it.
    """
    from scipy.optimize import minimize_scalar

    def nll(log_t: float) -> float:
        return negative_log_likelihood(val_labels, temperature_scale(val_probs, float(np.exp(log_t))))

    best = minimize_scalar(nll, bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded")
    temperature = float(np.exp(best.x))
    scaled = temperature_scale(val_probs, temperature)
    return {"temperature": temperature, "val_nll_before": negative_log_likelihood(val_labels, val_probs),
            "val_nll_after": negative_log_likelihood(val_labels, scaled),
            "val_ece_before": expected_calibration_error(val_labels, val_probs)["ece"],
            "val_ece_after": expected_calibration_error(val_labels, scaled)["ece"]}


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> dict:
    """ECE over equal-width confidence bins, with the bins for a reliability diagram."""
    probs = np.asarray(probs)
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(y_true)
    edges = np.linspace(0, 1, n_bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    bins, ece = [], 0.0
    for k in range(n_bins):
        m = which == k
        if m.any():
            gap = abs(correct[m].mean() - conf[m].mean())
            ece += m.mean() * gap
            bins.append({"lo": float(edges[k]), "hi": float(edges[k + 1]), "count": int(m.sum()),
                         "accuracy": float(correct[m].mean()), "confidence": float(conf[m].mean())})
    return {"ece": float(ece), "n_bins": n_bins, "bins": bins}


def protocol_masks(data_plurality: Dataset, data_majority: Dataset | None = None) -> dict:
    """Which images each named protocol evaluates, as ``{name: (Dataset, description)}``.

    On the FER+ layout (and fer2013.csv with FER+ votes): P-seed and P-FER+.
    On other layouts: the layout's own test split, named "test".
    """
    src = data_plurality.source_split
    out = {}
    if data_plurality.layout == "ferplus" or set(src.tolist()) & {"PublicTest", "PrivateTest"}:
        val_name = "FER2013Valid" if data_plurality.layout == "ferplus" else "PublicTest"
        test_name = "FER2013Test" if data_plurality.layout == "ferplus" else "PrivateTest"
        out["P-seed"] = (data_plurality.subset(np.isin(src, [val_name, test_name])), PROTOCOLS["P-seed"])
        if data_majority is not None and data_majority.votes is not None:
            out["P-FER+"] = (data_majority.subset(data_majority.source_split == test_name),
                             PROTOCOLS["P-FER+"])
    else:
        out["test"] = (data_plurality.get_split("test"), "the layout's own test split")
    return out


def contamination_note(data: Dataset, protocol: str) -> str | None:
    """Say when a protocol's images were used for validation (then it is no test number)."""
    if protocol == "P-seed" and data.validation == "official":
        return ("FER2013Valid served as the validation split (selection/early stopping), so "
                "P-seed includes validation images and is not a clean test number.")
    return None


# --------------------------------------------------------------------------- the whole stage

def protocol_sets(run_dir) -> tuple[dict, Dataset]:
    """A run's protocol test sets (``{name: (Dataset, description)}``) and its training data."""
    from .data import load_run_data

    data = load_run_data(run_dir)
    plurality = data if data.label_mode != "majority" else load_run_data(run_dir, "plurality")
    majority = load_run_data(run_dir, "majority") if data.votes is not None else None
    return protocol_masks(plurality, majority), data


def evaluate_model(model, images, labels, classes, tta: bool = False, n_boot: int = 1000,
                   seed: int = 0) -> tuple[dict, np.ndarray]:
    """Metrics, bootstrap CI and calibration of one model on one image set."""
    from .models import predict_proba

    probs = predict_proba(model, images, flip_tta=tta)
    return score_probabilities(labels, probs, classes, n_boot, seed), probs


def score_probabilities(labels, probs, classes, n_boot: int = 1000, seed: int = 0) -> dict:
    """Metrics, bootstrap CI and calibration of a probability matrix (no model needed)."""
    m = classification_metrics(labels, probs, classes)
    m["ci"] = bootstrap_ci(labels, np.asarray(probs).argmax(axis=1), n_boot=n_boot, seed=seed)
    m["calibration"] = expected_calibration_error(labels, probs)
    return m


def evaluate_run(run_dir, tta: bool = True, n_boot: int = 1000, seed: int = 0) -> dict:
    """Evaluate ``model/best.keras`` of a run on every protocol; write JSON and predictions.

    Also evaluates ``compare/model/best.keras`` when present (e.g. the baseline)
    on the same images and runs McNemar's test against it. When the run has a
    validation split, a prior correction (``prior_correction``) is tuned on it
    and every protocol is also reported with it (``prior_adjusted``, separate
    from the plain number, like flip-TTA), and so is a temperature
    (``fit_temperature``; each protocol's ECE and NLL after scaling under
    ``temperature_scaled``, beside the plain ``calibration.ece`` and ``loss``). Writes ``results/evaluation.json``
    and ``results/predictions.npz``.
    """
    from pathlib import Path

    from .artifacts import run_paths, save_arrays, write_json
    from .models import load_model, predict_proba

    paths = run_paths(run_dir)
    sets, data = protocol_sets(run_dir)
    k = len(data.classes)
    model = load_model(paths["model"] / "best.keras", n_classes=k)
    compare_path = Path(run_dir) / "compare" / "model" / "best.keras"
    compare = load_model(compare_path, n_classes=k) if compare_path.is_file() else None
    out = {"classes": list(data.classes), "is_demo": data.is_demo, "validation": data.validation,
           "train_label_mode": data.label_mode, "protocols": {}}
    arrays, prior, adjustment, scaling = {}, None, None, None
    train_labels, val = data.get_split("train").labels, data.get_split("val")
    if len(train_labels) and len(val):
        val_probs = predict_proba(model, val.images)
        prior = np.bincount(train_labels, minlength=k) / len(train_labels)
        adjustment = choose_prior_tau(val_probs, val.labels, prior)
        out["prior_adjustment"] = {**adjustment, "prior": prior.tolist(),
                                   "method": "p_c / prior_c^tau, tau chosen on validation macro-F1"}
        scaling = fit_temperature(val_probs, val.labels)
        out["temperature_scaling"] = {**scaling, "method": "softmax(log p / T), T chosen on validation NLL"}
    for name, (subset, description) in sets.items():
        entry = {"description": description, "n": int(len(subset)),
                 "contamination": contamination_note(data, name)}
        entry["plain"], probs = evaluate_model(model, subset.images, subset.labels, data.classes,
                                               n_boot=n_boot, seed=seed)
        if tta:
            entry["tta_flip"], _ = evaluate_model(model, subset.images, subset.labels, data.classes,
                                                  tta=True, n_boot=n_boot, seed=seed)
        if adjustment is not None:
            adjusted = prior_correction(probs, prior, adjustment["tau"])
            entry["prior_adjusted"] = {**score_probabilities(subset.labels, adjusted, data.classes, n_boot, seed),
                                       "tau": adjustment["tau"]}
        if scaling is not None:       # calibration only: the arg-max, hence accuracy, is unchanged
            scaled = temperature_scale(probs, scaling["temperature"])
            entry["temperature_scaled"] = {"ece": expected_calibration_error(subset.labels, scaled)["ece"],
                                           "nll": negative_log_likelihood(subset.labels, scaled)}
        arrays.update({f"{name}__probs": probs, f"{name}__labels": subset.labels,
                       f"{name}__names": subset.names})
        if compare is not None:
            entry["compare"], cprobs = evaluate_model(compare, subset.images, subset.labels,
                                                      data.classes, n_boot=n_boot, seed=seed)
            entry["mcnemar"] = mcnemar_test(subset.labels, probs.argmax(1), cprobs.argmax(1))
            arrays[f"{name}__compare_probs"] = cprobs
        out["protocols"][name] = entry
    out["primary"] = "P-seed" if "P-seed" in sets else next(iter(sets))
    write_json(paths["results"] / "evaluation.json", out)
    save_arrays(paths["results"] / "predictions.npz", **arrays)
    return out


def load_predictions(run_dir, protocol: str) -> dict[str, np.ndarray]:
    """Probabilities, labels and image names that notebook 04 stored for ``protocol``."""
    from pathlib import Path

    from .artifacts import ArtifactError, load_arrays

    arrays = load_arrays(Path(run_dir) / "results" / "predictions.npz",
                         "predictions (written by notebook 04)")
    keys = {k.split("__", 1)[1]: v for k, v in arrays.items() if k.startswith(f"{protocol}__")}
    if "probs" not in keys:
        raise ArtifactError(f"{run_dir}/results/predictions.npz: no predictions for protocol {protocol!r}")
    return keys


def evaluate_ensemble(run_dirs, n_boot: int = 1000, seed: int = 0) -> dict:
    """Score the average of several runs' stored test probabilities (a probability ensemble).

    Uses each run's ``predictions.npz`` (no model is reloaded), so the runs must
    have been evaluated on the same protocols; images are matched by name and a
    mismatch is an error rather than a silently misaligned average.
    """
    from pathlib import Path

    from .artifacts import read_json

    run_dirs = [Path(r) for r in run_dirs]
    if len(run_dirs) < 2:
        raise ValueError(f"an ensemble needs at least 2 runs, got {len(run_dirs)}")
    first = read_json(run_dirs[0] / "results" / "evaluation.json", "evaluation")
    out = {"runs": [r.name for r in run_dirs], "protocols": {}}
    for name in first["protocols"]:
        sets = [load_predictions(r, name) for r in run_dirs]
        for r, s in zip(run_dirs[1:], sets[1:]):
            if not np.array_equal(s["names"], sets[0]["names"]):
                raise ValueError(f"{r}: its {name} predictions are not for the same images as {run_dirs[0]}'s")
        probs = np.mean([s["probs"] for s in sets], axis=0)
        out["protocols"][name] = score_probabilities(sets[0]["labels"], probs, first["classes"], n_boot, seed)
    return out
