"""Stochastic weight averaging: train the reference network a little further and average its weights.

    python -m research.swa_finetune --data ../shared/data/ferplus [--model models/vgg_mid.keras]

research/head_rebalance.py and research/drw_finetune.py moved the decision toward the rare
classes and kept plain. Weight averaging asks a different question: is the released model a
sharp point that a flatter neighbour would beat on new faces? SWA (Izmailov et al., 2018)
continues training at a constant learning rate, so the weights keep moving around the minimum,
and averages the weights seen at each epoch's end. The grid, the schedule and the choice were
written down before any run (docs/decision_rules/swa_finetune.txt):

- plain: the released model's float32 copy (this CPU has no native bfloat16);
- swa-lr: 5 epochs from the released weights on the recipe's own training stream (soft targets,
  rare classes oversampled to 0.15, the model's augmentation), AdamW at a constant learning
  rate lr (2e-4, 5e-4); the 5 epoch-end weights averaged, then BatchNorm statistics recomputed;
- controls (not eligible): each lr's last-epoch weights, to show what the averaging adds.

The choice uses validation only; every candidate's and control's test numbers are written next to
it (results/swa_finetune.json), the verdict is appended to the rule and recorded in
results/decisions.csv. One model (seed 42): a post-hoc variant reported separately.
"""
from __future__ import annotations

import time

import numpy as np

from fer_helpers.models import to_float32
from fer_helpers.preprocessing import oversample_indices
from research import drw_finetune as drw  # the fine-tuning loop and the scoring
from research import head_rebalance as hr  # the rule's choice, data loading and publishing

LEARNING_RATES = (2e-4, 5e-4)
OVERSAMPLE_FRACTION = 0.15          # configs/ferplus_vgg_mid.yaml


def make_weight_averager():
    """A Keras callback that keeps the equal-weight mean of the model's weights at each epoch's end.

    ``averager.mean`` is the list of averaged arrays (``model.get_weights()`` order) after
    ``averager.count`` epochs. A running mean keeps one extra copy of the weights in memory.
    """
    import keras

    class WeightAverager(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.mean, self.count = None, 0

        def on_epoch_end(self, epoch, logs=None):
            weights = [np.asarray(w, dtype=np.float64) for w in self.model.get_weights()]
            self.count += 1
            if self.mean is None:
                self.mean = weights
            else:
                self.mean = [m + (w - m) / self.count for m, w in zip(self.mean, weights)]

    return WeightAverager()


def recompute_batchnorm(model, images: np.ndarray, batch_size: int = 64, seed: int = 42) -> int:
    """Replace every BatchNorm layer's moving mean and variance by the mean of its batch statistics
    over one shuffled pass of ``images`` in training mode (augmentation and dropout active, as in
    training); no trainable weight changes. Returns the number of batches.

    Averaged weights never ran together during training, so the moving statistics saved with any
    single epoch do not describe them; without this step the average is usually worse, not better.
    The momentum is set to ``i / (i + 1)`` before batch ``i``, which makes each moving statistic the
    plain mean of the batch statistics seen so far (PyTorch's ``update_bn`` does the same).
    """
    import keras

    bns = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    if not bns:
        return 0
    saved = [bn.momentum for bn in bns]
    order = np.random.default_rng(seed).permutation(len(images))
    n_batches = 0
    try:
        for start in range(0, len(order), batch_size):
            for bn in bns:
                bn.momentum = n_batches / (n_batches + 1)
            x = np.asarray(images[order[start:start + batch_size]], dtype=np.float32)[..., None]
            model(x, training=True)
            n_batches += 1
    finally:
        for bn, momentum in zip(bns, saved):
            bn.momentum = momentum
    return n_batches


def swa_finetune(model, images: np.ndarray, targets: np.ndarray, learning_rate: float, epochs: int = 5,
                 seed: int = 42):
    """(averaged model, last-epoch model): ``epochs`` at a constant ``learning_rate`` from ``model``'s
    float32 copy, the epoch-end weights averaged and BatchNorm recomputed on the same images."""
    import keras

    averager = make_weight_averager()
    last = drw.finetune(model, images, targets, None, epochs=epochs, learning_rate=learning_rate,
                        final_learning_rate=learning_rate, seed=seed, callbacks=[averager])
    averaged = keras.models.clone_model(last)
    averaged.set_weights([m.astype(w.dtype) for m, w in zip(averager.mean, last.get_weights())])
    recompute_batchnorm(averaged, images, seed=seed)
    return averaged, last


def main(argv=None) -> dict:
    ap = hr.post_hoc_parser(__doc__, "swa_finetune")
    ap.add_argument("--epochs", type=int, default=5, help="averaged epochs (the rule fixes 5)")
    ap.add_argument("--learning-rates", type=float, nargs="+", default=list(LEARNING_RATES),
                    help="the grid (the rule fixes 2e-4 and 5e-4)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()

    data, labelled, model = hr.load_post_hoc_inputs(args.data, args.seed, args.model)
    classes = data.classes
    train, val = data.get_split("train"), labelled["val"]
    # The recipe's training stream: every image once, rare classes repeated up to the fraction.
    stream = oversample_indices(train.labels, args.seed, OVERSAMPLE_FRACTION)

    candidates = {"plain": drw.scores_of(to_float32(model), labelled, classes)}
    controls, seconds = {}, {}
    for lr in args.learning_rates:
        t = time.perf_counter()
        averaged, last = swa_finetune(model, train.images[stream], train.soft_labels[stream], lr,
                                      epochs=args.epochs, seed=args.seed)
        seconds[f"swa lr={lr:g}"] = round(time.perf_counter() - t, 1)
        candidates[f"swa lr={lr:g}"] = drw.scores_of(averaged, labelled, classes)
        controls[f"last epoch lr={lr:g}"] = drw.scores_of(last, labelled, classes)

    details = {"epochs": args.epochs, "train_images": int(len(train)), "stream_images": int(len(stream)),
               "val_images": int(len(val)), "precision": "float32", "controls": controls,
               "seconds": {"finetune": seconds, "total": round(time.perf_counter() - t0, 1)}}
    return hr.conclude(args, candidates, details, "swa_finetune", f"post-hoc {args.epochs}-epoch weight averaging")


if __name__ == "__main__":
    main()
