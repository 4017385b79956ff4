"""Deferred re-weighting: fine-tune the whole reference network briefly with rare classes weighted up.

    python -m research.drw_finetune --data ../shared/data/ferplus [--model models/vgg_mid.keras]

research/head_rebalance.py left the features alone and changed only the last layer; Contempt
did not move, which points at the features. Deferred re-weighting (Cao et al., 2019) lets the
features move too: after training on the natural class mix, a short phase weights each image by
``n_c^-q``. The grid, the schedule and the choice were written down before any run
(docs/decision_rules/drw_finetune.txt):

- plain: the released model's float32 copy (this CPU has no native bfloat16);
- drw-q: 5 epochs from the released weights, soft targets, weights ``n_c^-q`` (q = 0.5, 1),
  the model's own augmentation, AdamW with a cosine learning rate from 1e-4 to 1e-6.

The choice uses validation only; every candidate's test numbers are written next to it
(results/drw_finetune.json), the verdict is appended to the rule and recorded in
results/decisions.csv. One model (seed 42): a post-hoc variant reported separately.
"""
from __future__ import annotations

import math
import time

import numpy as np

from fer_helpers.evaluation import classification_metrics
from fer_helpers.models import predict_proba, to_float32
from fer_helpers.training import set_seeds
from research import head_rebalance as hr  # the rule's choice, weights, summary and decisions row

QS = (0.5, 1.0)


def finetune(model, images: np.ndarray, targets: np.ndarray, weights: np.ndarray | None, epochs: int = 5,
             learning_rate: float = 1e-4, final_learning_rate: float = 1e-6, weight_decay: float = 1e-4,
             batch_size: int = 64, seed: int = 42, callbacks=()):
    """A float32 copy of ``model`` trained further on ``images`` with per-image ``weights``
    (``None``: equal weights); the learning rate follows a cosine from ``learning_rate`` to
    ``final_learning_rate`` (equal values: constant).

    The copy keeps the model's augmentation layers, which are active in ``fit``; the
    released model itself is never changed.
    """
    import keras

    set_seeds(seed)
    net = keras.models.clone_model(to_float32(model))
    net.set_weights(model.get_weights())
    steps = math.ceil(len(images) / batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=epochs * steps,
                                                      alpha=final_learning_rate / learning_rate)
    net.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=weight_decay),
                loss=keras.losses.CategoricalCrossentropy())
    x = np.asarray(images, dtype=np.float32)[..., None]
    net.fit(x, targets, sample_weight=weights, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=2,
            callbacks=list(callbacks))
    return net


def scores_of(model, labelled: dict, classes) -> dict:
    """Accuracy, macro-F1 and per-class recall of ``model`` on each named labelled set (a Dataset)."""
    return {name: hr.summary(classification_metrics(d.labels, predict_proba(model, d.images), classes))
            for name, d in labelled.items()}


def main(argv=None) -> dict:
    ap = hr.post_hoc_parser(__doc__, "drw_finetune")
    ap.add_argument("--epochs", type=int, default=5, help="fine-tuning epochs (the rule fixes 5)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()

    data, labelled, model = hr.load_post_hoc_inputs(args.data, args.seed, args.model)
    classes, k = data.classes, len(data.classes)
    train, val = data.get_split("train"), labelled["val"]

    candidates = {"plain": scores_of(to_float32(model), labelled, classes)}
    seconds = {}
    for q in QS:
        t = time.perf_counter()
        tuned = finetune(model, train.images, train.soft_labels, hr.class_weights(train.labels, k, q),
                         epochs=args.epochs, seed=args.seed)
        seconds[f"drw q={q:g}"] = round(time.perf_counter() - t, 1)
        candidates[f"drw q={q:g}"] = scores_of(tuned, labelled, classes)

    details = {"epochs": args.epochs, "train_images": int(len(train)), "val_images": int(len(val)),
               "precision": "float32", "seconds": {"finetune": seconds, "total": round(time.perf_counter() - t0, 1)}}
    return hr.conclude(args, candidates, details, "drw_finetune", f"post-hoc {args.epochs}-epoch fine-tune")


if __name__ == "__main__":
    main()
