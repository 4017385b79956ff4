"""Grad-CAM (Selvaraju et al., 2017) and the model-randomisation sanity check.

Grad-CAM weights each feature map A^k of the last convolutional layer by the
spatial mean of the class score's gradient, α_k^c = (1/Z) Σ_ij ∂y^c/∂A^k_ij,
and keeps the positive part of the weighted sum, L^c = ReLU(Σ_k α_k^c A^k).
The sanity check of Adebayo et al. (2018) randomises the model's weights: a
map that does not change then cannot be explaining the model.
"""
from __future__ import annotations

import numpy as np
from scipy import stats


def find_last_conv_layer(model) -> str:
    """Name of the last convolutional feature map: the last ReLU with a 4-D output (the
    post-activation output of a conv block, or of a residual block after its addition),
    else the last Conv2D."""
    import keras

    for layer in reversed(model.layers):
        if isinstance(layer, keras.layers.ReLU) and len(layer.output.shape) == 4:
            return layer.name
    for layer in reversed(model.layers):
        if isinstance(layer, keras.layers.Conv2D):
            return layer.name
    raise ValueError(f"model {model.name!r} has no Conv2D layer for Grad-CAM")


def _grad_model(model, layer_name: str):
    import keras

    return keras.Model(model.inputs, [model.get_layer(layer_name).output, model.output])


def gradcam_heatmaps(model, images: np.ndarray, class_index=None, layer_name: str | None = None,
                     batch_size: int = 64) -> np.ndarray:
    """Grad-CAM maps (N×48×48, each scaled to [0, 1]) for N uint8 images.

    ``class_index`` is an int, an array of N ints, or None for each image's
    predicted class.
    """
    import tensorflow as tf

    layer_name = layer_name or find_last_conv_layer(model)
    grad_model = _grad_model(model, layer_name)
    x_all = np.asarray(images, dtype=np.float32)
    if x_all.ndim == 3:
        x_all = x_all[..., None]
    n = len(x_all)
    if class_index is None or np.isscalar(class_index):
        cls_all = None if class_index is None else np.full(n, int(class_index))
    else:
        cls_all = np.asarray(class_index, dtype=np.int64)
    out = np.empty((n, x_all.shape[1], x_all.shape[2]), dtype=np.float32)
    for s in range(0, n, batch_size):
        x = tf.convert_to_tensor(x_all[s:s + batch_size])
        with tf.GradientTape() as tape:
            # Watch the input: ops are recorded only downstream of watched tensors, and a
            # model need not have trainable weights before the chosen layer.
            tape.watch(x)
            conv, preds = grad_model(x, training=False)
            cls = (tf.argmax(preds, axis=1) if cls_all is None
                   else tf.convert_to_tensor(cls_all[s:s + batch_size]))
            score = tf.gather(preds, cls, axis=1, batch_dims=1)
        # A mixed-precision model's feature maps are bfloat16; the map is computed in float32.
        grads, conv = tf.cast(tape.gradient(score, conv), tf.float32), tf.cast(conv, tf.float32)
        alpha = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)        # α_k^c
        cam = tf.nn.relu(tf.reduce_sum(alpha * conv, axis=-1))            # L^c
        cam = tf.image.resize(cam[..., None], x.shape[1:3], method="bilinear")[..., 0]
        cam = cam.numpy()
        peak = cam.reshape(len(cam), -1).max(axis=1)[:, None, None]
        out[s:s + batch_size] = np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)
    return out


def mean_class_maps(model, images: np.ndarray, labels: np.ndarray, n_classes: int,
                    layer_name: str | None = None, max_per_class: int = 200) -> np.ndarray:
    """Average Grad-CAM map per class over correctly classified images (K×48×48, NaN if none)."""
    from .models import predict_proba

    pred = predict_proba(model, images).argmax(axis=1)
    maps = np.full((n_classes, images.shape[1], images.shape[2]), np.nan, dtype=np.float32)
    for c in range(n_classes):
        idx = np.flatnonzero((labels == c) & (pred == c))[:max_per_class]
        if len(idx):
            maps[c] = gradcam_heatmaps(model, images[idx], c, layer_name).mean(axis=0)
    return maps


def randomized_copy(model, seed: int = 0):
    """A clone of ``model`` with every weight re-drawn at random (cascading randomisation, all layers)."""
    import keras

    clone = keras.models.clone_model(model)
    rng = np.random.default_rng(seed)
    clone.set_weights([rng.normal(0, np.std(w) + 1e-3, w.shape).astype(w.dtype)
                       if w.ndim > 1 else w for w in model.get_weights()])
    return clone


def map_rank_correlation(maps_a: np.ndarray, maps_b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation between paired maps (one value per image)."""
    out = []
    for a, b in zip(maps_a, maps_b):
        a, b = a.ravel(), b.ravel()
        out.append(0.0 if a.std() == 0 or b.std() == 0 else stats.spearmanr(a, b).statistic)
    return np.asarray(out, dtype=np.float64)


def sanity_check(saliency_fn, model, images: np.ndarray, seeds=(0, 1, 2, 3, 4),
                 threshold: float = 0.5) -> dict:
    """Adebayo et al. model-randomisation test for any ``saliency_fn(model, images) -> maps``.

    The trained model's maps are compared with those of several fully
    randomised copies (one draw is too noisy to judge by). Two numbers:

    * ``mean_abs_rank_correlation`` — mean |Spearman ρ| per image, the paper's measure;
    * ``mean_centered_rank_correlation`` — the same after removing each model's
      batch-mean map, so that a spatial prior shared by any CNN (faces sit in the
      middle) cannot pass for weight dependence.

    The check passes when both stay below ``threshold``. A saliency method that
    ignores the weights scores 1.0 on both and fails.
    """
    trained = saliency_fn(model, images)
    centre = lambda m: m - m.mean(axis=0, keepdims=True)  # noqa: E731
    raw, centred = [], []
    for seed in seeds:
        random_maps = saliency_fn(randomized_copy(model, seed), images)
        raw.append(map_rank_correlation(trained, random_maps))
        centred.append(map_rank_correlation(centre(trained), centre(random_maps)))
    raw, centred = np.stack(raw), np.stack(centred)
    mean_abs, mean_centred = float(np.abs(raw).mean()), float(np.abs(centred).mean())
    return {"mean_rank_correlation": float(raw.mean()), "mean_abs_rank_correlation": mean_abs,
            "per_randomisation": raw.mean(axis=1).round(4).tolist(),
            "mean_centered_rank_correlation": mean_centred, "threshold": threshold,
            "n_images": int(len(images)), "n_randomisations": len(seeds),
            "passed": bool(mean_abs < threshold and mean_centred < threshold)}


def mass_in_region(maps: np.ndarray, regions: np.ndarray) -> dict:
    """Share of each map's total mass inside a boolean region, with the region's area share.

    The area share is what a map spread uniformly would get, i.e. the chance level.
    """
    maps = np.asarray(maps, dtype=np.float64)
    total = maps.reshape(len(maps), -1).sum(axis=1)
    inside = (maps * regions).reshape(len(maps), -1).sum(axis=1)
    share = np.divide(inside, total, out=np.zeros_like(total), where=total > 0)
    return {"mean_mass_share": float(share.mean()), "median_mass_share": float(np.median(share)),
            "mean_region_area_share": float(regions.reshape(len(regions), -1).mean()),
            "n_images": int(len(maps))}


def pick_examples(true, pred, n_images: int, rng) -> np.ndarray:
    """Indices of ``n_images`` test images to explain, sorted: half of them misclassified (as many
    as there are), the rest correct, each half drawn at random. Explaining only random images
    would show mostly correct ones; the errors are what a reader wants to see explained."""
    true, pred = np.asarray(true), np.asarray(pred)
    wrong, right = np.flatnonzero(true != pred), np.flatnonzero(true == pred)
    n = min(n_images, len(true))
    n_wrong = min(len(wrong), n // 2)
    n_right = min(len(right), n - n_wrong)
    n_wrong = min(len(wrong), n - n_right)
    chosen = np.concatenate([rng.choice(wrong, size=n_wrong, replace=False), rng.choice(right, size=n_right, replace=False)])
    return np.sort(chosen.astype(int))


def explain_run(run_dir, n_images: int = 16, n_sanity: int = 32, layer_name: str | None = None,
                seed: int = 0) -> dict:
    """Grad-CAM for a run's model on its primary test set; writes ``results/gradcam.json``.

    Returns the JSON numbers plus arrays for the figures: chosen ``images`` (half of them
    misclassified, ``pick_examples``),
    their ``true``/``pred`` labels, maps for the predicted and the true class,
    and the per-class mean maps.
    """
    from pathlib import Path

    from scipy.stats import spearmanr

    from .artifacts import read_json, run_paths, write_json
    from .evaluation import protocol_sets
    from .models import load_model, predict_proba

    paths = run_paths(run_dir)
    sets, data = protocol_sets(run_dir)
    evaluation = read_json(paths["results"] / "evaluation.json", "evaluation (written by notebook 04)")
    primary = evaluation["primary"]
    test = sets[primary][0]
    model = load_model(paths["model"] / "best.keras", n_classes=len(data.classes))
    layer_name = layer_name or find_last_conv_layer(model)
    rng = np.random.default_rng(seed)
    predicted = predict_proba(model, test.images).argmax(axis=1)
    pick = pick_examples(test.labels, predicted, n_images, rng)
    images, true, pred = test.images[pick], test.labels[pick], predicted[pick]
    maps_pred = gradcam_heatmaps(model, images, pred, layer_name)
    maps_true = gradcam_heatmaps(model, images, true, layer_name)
    class_maps = mean_class_maps(model, test.images, test.labels, len(data.classes), layer_name)
    sanity_pick = rng.choice(len(test), size=min(n_sanity, len(test)), replace=False)
    sanity = sanity_check(lambda m, x: gradcam_heatmaps(m, x, None, layer_name), model,
                          test.images[sanity_pick], seeds=tuple(seed + k for k in range(5)))
    wrong = true != pred
    # On a misclassified face: do the predicted and the true class's maps look at the same place?
    same_place = [spearmanr(a.ravel(), b.ravel())[0] for a, b in zip(maps_pred[wrong], maps_true[wrong])]
    same_place = [r for r in same_place if np.isfinite(r)]
    result = {"layer": layer_name, "protocol": primary, "n_images": int(len(pick)),
              "n_misclassified": int(wrong.sum()),
              "wrong_pred_true_rank_correlation": float(np.mean(same_place)) if same_place else None,
              "image_names": test.names[pick].tolist(), "sanity_check": sanity,
              "is_demo": data.is_demo}
    if test.regions is not None:
        # Demo faces: we know where the expression is drawn (mouth, brows, eyes).
        all_maps = gradcam_heatmaps(model, test.images, None, layer_name)
        result["region_mass"] = mass_in_region(all_maps, test.regions)
    write_json(Path(paths["results"]) / "gradcam.json", result)
    return {**result, "images": images, "true": true, "pred": pred, "maps_pred": maps_pred,
            "maps_true": maps_true, "class_maps": class_maps, "classes": data.classes}
