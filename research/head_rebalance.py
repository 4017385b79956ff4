"""Is the Contempt gap in the classifier head or in the features? A post-hoc test on one model.

    python -m research.head_rebalance --data ../shared/data/ferplus [--model models/vgg_mid.keras]

Decoupling (Kang et al., ICLR 2020) keeps a trained network and changes only its last Dense
layer: if re-weighting the head alone lifts the rare classes on validation, the features
already separate them and the head's bias toward frequent classes was the problem; if not,
the features are the limit. The rule, its grid and its guard were written before any number
(docs/decision_rules/head_rebalance.txt):

- plain: the trained head;
- tau-norm: head weights ``w_c / ||w_c||^tau`` without bias (no training);
- cRT-q: the head re-trained on frozen features with soft targets and per-image weights
  ``n_c^-q`` (q = 0.5: square-root balancing, q = 1: full balancing).

Features are the 256-d global-average-pooling output of the saved model on the seed-42 split
(training images and their mirror images; validation). The choice uses validation only; the
test numbers of every candidate are written next to it (results/head_rebalance.json), the
verdict is appended to the rule and recorded in results/decisions.csv (research/decision.py's
table). One model (seed 42): a post-hoc variant reported separately.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from fer_helpers.artifacts import machine_info, now_iso, write_json
from fer_helpers.data import load_dataset
from fer_helpers.evaluation import classification_metrics, per_class_recall, protocol_masks
from fer_helpers.models import load_model, predict_proba
from research import decision

ROOT = Path(__file__).resolve().parents[1]

TAUS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
QS = (0.5, 1.0)
MIN_GAIN, MAX_ACC_DROP = 0.005, 0.005


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def extract_features(model, *image_sets: np.ndarray, layer: str = "gap", batch_size: int = 512) -> list[np.ndarray]:
    """The ``layer`` output (float32) of ``model`` for each set of N×48×48 uint8 images (inference mode)."""
    import keras

    # The saved model's own graph (its augmentation layers are identity at inference); the layer's
    # first output is the one in that graph, even after serving_model() reused the layer.
    head = keras.Model(model.inputs, model.get_layer(layer).output)
    return [np.asarray(head.predict(np.asarray(images, dtype=np.float32)[..., None], batch_size=batch_size,
                                    verbose=0), dtype=np.float32) for images in image_sets]


def tau_normalize(kernel: np.ndarray, tau: float) -> np.ndarray:
    """Kang et al.'s tau-normalisation: each class's weight vector divided by its norm**tau.

    Frequent classes grow larger weight vectors during training; tau = 1 removes that
    advantage entirely, tau = 0 leaves the head as it is. The bias is dropped.
    """
    norms = np.linalg.norm(kernel, axis=0, keepdims=True)
    return kernel / np.maximum(norms, 1e-12) ** tau


def class_weights(labels: np.ndarray, n_classes: int, q: float) -> np.ndarray:
    """Per-image weights ``n_c^-q`` for each image's class ``c``, scaled to mean 1."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    w = counts[labels] ** -q          # every class that occurs has a count of at least 1
    return (w / w.mean()).astype(np.float32)


def retrain_head(features: np.ndarray, targets: np.ndarray, weights: np.ndarray, kernel: np.ndarray,
                 bias: np.ndarray, epochs: int = 20, learning_rate: float = 1e-3, weight_decay: float = 1e-4,
                 batch_size: int = 512, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """Classifier re-training (cRT): a softmax layer, started from the trained head, fitted on
    frozen features with soft targets and per-image weights; returns its kernel and bias."""
    import keras

    keras.utils.set_random_seed(seed)
    head = keras.Sequential([keras.Input((features.shape[1],)),
                             keras.layers.Dense(kernel.shape[1], activation="softmax")])
    head.layers[-1].set_weights([kernel, bias])
    head.compile(optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay),
                 loss="categorical_crossentropy")
    head.fit(features, targets, sample_weight=weights, epochs=epochs, batch_size=batch_size,
             shuffle=True, verbose=0)
    new_kernel, new_bias = head.layers[-1].get_weights()
    return new_kernel, new_bias


def rule_tests(plain: dict, candidate: dict) -> tuple[bool, bool]:
    """The rule's criterion (macro-F1 at least MIN_GAIN above plain) and guard (accuracy drop ≤ MAX_ACC_DROP)."""
    return (candidate["macro_f1"] >= plain["macro_f1"] + MIN_GAIN,
            candidate["accuracy"] >= plain["accuracy"] - MAX_ACC_DROP)


def choose(val_scores: dict) -> tuple[str, list[str]]:
    """The rule: of the heads passing both tests, the one with the highest validation macro-F1; else plain."""
    plain = val_scores["plain"]
    lines, best, best_f1 = [], "plain", -1.0
    for name, s in val_scores.items():
        if name == "plain":
            continue
        beats, guard = rule_tests(plain, s)
        lines.append(f"  {name}: validation macro-F1 {s['macro_f1']:.4f} vs plain {plain['macro_f1']:.4f} "
                     f"({'criterion passed' if beats else 'criterion failed'}), accuracy {s['accuracy']:.2%} vs "
                     f"{plain['accuracy']:.2%} ({'guard passed' if guard else 'guard failed'})")
        if guard and beats and s["macro_f1"] > best_f1:
            best, best_f1 = name, s["macro_f1"]
    return best, lines


def decision_row(result: dict, rule: Path, name: str = "head_rebalance", what: str = "post-hoc head only") -> dict:
    """The verdict as a row of results/decisions.csv: plain vs the chosen candidate, or, when plain
    stays, vs the candidate with the highest validation macro-F1."""
    val = {name: c["val"] for name, c in result["candidates"].items()}
    best = result["chosen"] if result["chosen"] != "plain" else max(
        (n for n in val if n != "plain"), key=lambda n: val[n]["macro_f1"])
    plain, cand = val["plain"], val[best]
    criterion, guard = rule_tests(plain, cand)
    return {"name": name, "rule": decision.relative(rule), "written": decision.rule_written_at(rule),
            "decided": result["time"], "seeds": str(result["seed"]),
            "reference_runs": f"{result['model']} (plain)",
            "candidate_runs": f"{best} ({'chosen' if best == result['chosen'] else 'best'} of {len(val) - 1} "
                              "candidates on validation)",
            "reference_val_macro_f1": round(plain["macro_f1"], 4), "candidate_val_macro_f1": round(cand["macro_f1"], 4),
            "reference_val_accuracy": round(plain["accuracy"], 4), "candidate_val_accuracy": round(cand["accuracy"], 4),
            "guard_pt": MAX_ACC_DROP * 100,
            "criterion": criterion, "guard": guard,
            "decision": decision.KEEP if result["chosen"] == "plain" else decision.ADOPT,
            "note": f"{what}, one model; criterion needs +{MIN_GAIN} validation macro-F1; "
                    f"chosen: {result['chosen']}"}


def post_hoc_parser(doc: str, name: str) -> argparse.ArgumentParser:
    """The options every post-hoc check of the released model shares; its files are named after ``name``."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="FER+ folder (official layout)")
    ap.add_argument("--model", default=str(ROOT / "models" / "vgg_mid.keras"))
    ap.add_argument("--seed", type=int, default=42, help="the model's training seed (gives its validation split)")
    ap.add_argument("--out", default=str(ROOT / "results" / f"{name}.json"))
    ap.add_argument("--rule", default=str(decision.rule_path(name)))
    ap.add_argument("--decisions", default=str(ROOT / "results" / "decisions.csv"),
                    help="the decisions table the report shows (one row, replaced on a re-run)")
    return ap


def load_post_hoc_inputs(data_dir: str, seed: int, model_path: str):
    """The model's training data (vote-distribution targets, its seed's validation split), the
    labelled sets it is scored on (``{"val": ..., protocol name: ...}``, all Datasets on the same
    images) and the model."""
    data = load_dataset(data_dir, label_mode="distribution", val_fraction=0.2, seed=seed)
    protocols = protocol_masks(load_dataset(data_dir, label_mode="plurality", val_fraction=0.2, seed=seed),
                               load_dataset(data_dir, label_mode="majority", val_fraction=0.2, seed=seed))
    labelled = {"val": data.get_split("val"), **{name: subset for name, (subset, _) in protocols.items()}}
    return data, labelled, load_model(model_path, n_classes=len(data.classes))


def conclude(args, candidates: dict, details: dict, name: str, what: str) -> dict:
    """Apply the rule to ``candidates`` (``{name: {"val": ..., <test sets>: ...}}``, ``"plain"`` among
    them) and publish the verdict: the results file (``details`` joined in), the rule's appended
    decision, the decisions-table row; print it and return the results."""
    chosen, lines = choose({n: c["val"] for n, c in candidates.items()})
    result = {"model": Path(args.model).name, "seed": args.seed, "rule": decision.relative(args.rule), **details,
              "chosen": chosen, "candidates": candidates, "machine": machine_info(), "time": now_iso()}
    publish(result, lines, args.out, args.rule, args.decisions, f"{name}.py", name, what)
    return result


def publish(result: dict, lines: list[str], out, rule, decisions, script: str, name: str, what: str) -> None:
    """Write the results file, append the verdict to the rule, record it in the decisions table, print."""
    write_json(out, result)
    chosen = result["chosen"]
    text = "\n".join([*lines, f"  => {'KEEP plain' if chosen == 'plain' else 'ADOPT ' + chosen}"])
    decision.append_to_rule(rule, result["time"], f"research/{script}", text)
    decision.record(Path(decisions), decision_row(result, Path(rule), name=name, what=what))
    print(text)
    print(json.dumps({n: {s: {m: round(v, 4) for m, v in x.items() if m != "recall"} for s, x in sc.items()}
                      for n, sc in result["candidates"].items()}, indent=1))


def summary(metrics: dict) -> dict:
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "recall": per_class_recall(metrics)}


def main(argv=None) -> dict:
    args = post_hoc_parser(__doc__, "head_rebalance").parse_args(argv)
    t0 = time.perf_counter()

    data, labelled, model = load_post_hoc_inputs(args.data, args.seed, args.model)
    classes, k = data.classes, len(data.classes)
    train, val = data.get_split("train"), labelled["val"]
    kernel, bias = model.get_layer("predictions").get_weights()

    # Features: training images and their mirror images (the model trained with flips), validation, tests.
    f_plain, f_mirror, *f_eval = extract_features(model, train.images, train.images[:, :, ::-1],
                                                  *(d.images for d in labelled.values()))
    f_train = np.concatenate([f_plain, f_mirror])
    y_train = np.concatenate([train.labels, train.labels])
    t_train = np.concatenate([train.soft_labels, train.soft_labels])
    feats = {name: (f, d.labels) for (name, d), f in zip(labelled.items(), f_eval)}
    t_features = time.perf_counter() - t0

    # The head on extracted features must reproduce the model's own predictions.
    check = predict_proba(model, val.images[:512])
    agreement = float((softmax(feats["val"][0][:512] @ kernel + bias).argmax(1) == check.argmax(1)).mean())
    if agreement < 0.999:
        raise RuntimeError(f"features do not reproduce the model's predictions (top-1 agreement {agreement:.4f})")

    heads = {"plain": (kernel, bias)}
    for tau in TAUS:
        heads[f"tau-norm {tau:g}"] = (tau_normalize(kernel, tau), np.zeros_like(bias))
    for q in QS:
        heads[f"cRT q={q:g}"] = retrain_head(f_train, t_train, class_weights(y_train, k, q), kernel, bias,
                                            seed=args.seed)

    scores = {name: {split: summary(classification_metrics(y, softmax(f @ w + b), classes))
                     for split, (f, y) in feats.items()} for name, (w, b) in heads.items()}
    features = {"layer": "gap", "train_images": int(len(train)), "train_rows_with_mirrors": int(len(f_train)),
                "val_images": int(len(val)), "head_agreement_with_model": agreement}
    seconds = {"features": round(t_features, 1), "total": round(time.perf_counter() - t0, 1)}
    return conclude(args, scores, {"features": features, "seconds": seconds}, "head_rebalance", "post-hoc head only")


if __name__ == "__main__":
    main()
