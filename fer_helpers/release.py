"""Releasing a trained model: a small ``.keras`` file, its model card, and a check batch.

``release_model(run_dir, out_dir)`` re-saves the run's best checkpoint without
optimizer state, writes ``<name>.card.json`` and ``<name>.md`` (class order,
input convention, data and protocol, both protocols' metrics with confidence
intervals, training time and machine, seeds) from the run's artifacts, and
stores the model's probabilities on a fixed synthetic batch so anyone can check
that ``load_model`` + ``predict_proba`` reproduce them.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from .artifacts import native_bfloat16, now_iso, read_json, write_json
from .evaluation import per_class_recall
from .export import int8_weight_bits
from .labels import CLASSES
from .models import count_params, load_model, model_precision, predict_proba, to_float32
from .training import effective_params, recorded_flops


def check_batch(n: int = 32, seed: int = 2024) -> np.ndarray:
    """A fixed batch of synthetic uint8 48×48 images (noise and gradients; no FER pixels)."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (n // 2, 48, 48), dtype=np.uint8)
    yy, xx = np.mgrid[0:48, 0:48]
    grads = np.stack([((np.sin(xx / (3 + k) + yy / (5 + k)) + 1) * 127.5).astype(np.uint8)
                      for k in range(n - n // 2)])
    return np.concatenate([noise, grads])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_file(run_dir, name: str) -> Path:
    """A run's artifact ``name``: ``results/<name>`` in a run folder (``runs/<run>/``), ``<name>``
    itself in a committed, flat copy of one (``results/runs/<run>/``, where the model is
    ``model.keras`` instead of ``model/best.keras``)."""
    run_dir = Path(run_dir)
    if name == "best.keras":
        nested, flat = run_dir / "model" / "best.keras", run_dir / "model.keras"
    else:
        nested, flat = run_dir / "results" / name, run_dir / name
    return nested if nested.is_file() or not flat.is_file() else flat


def summarize_seeds(run_dirs) -> dict:
    """Mean ± standard deviation over runs that differ only in their seed.

    Reads each run's ``training.json`` and ``evaluation.json`` (either layout, :func:`run_file`)
    and, for every protocol, aggregates accuracy, macro-F1, flip-TTA accuracy and per-class
    recall (sample standard deviation, ddof=1); stores the runs' shared settings completed
    with their defaults (``training.effective_params``) and their training FLOPs
    (``training.recorded_flops``). Raises ValueError when the runs' settings differ in anything
    but the seed (a setting one run predates counts as its default), since then the spread
    would not measure seed variance.
    """
    run_dirs = [Path(r) for r in run_dirs]
    if len(run_dirs) < 2:
        raise ValueError(f"need at least 2 runs to summarise seeds, got {len(run_dirs)}")
    trainings = [read_json(run_file(r, "training.json"), "training metadata") for r in run_dirs]
    evaluations = [read_json(run_file(r, "evaluation.json"), "evaluation") for r in run_dirs]
    settings = [{k: v for k, v in effective_params(t["params"]).items() if k != "seed"} for t in trainings]
    for r, p in zip(run_dirs[1:], settings[1:]):
        diff = sorted(k for k in p.keys() | settings[0].keys() if p.get(k) != settings[0].get(k))
        if diff:
            raise ValueError(f"{r}: differs from {run_dirs[0]} in {diff}, not only in the seed")

    def stats(values) -> dict:
        v = np.asarray(values, dtype=float)
        return {"mean": float(v.mean()), "std": float(v.std(ddof=1)), "values": v.tolist()}

    protocols = {}
    for name in evaluations[0]["protocols"]:
        plain = [e["protocols"][name]["plain"] for e in evaluations]
        recalls = [per_class_recall(m) for m in plain]
        entry = {"accuracy": stats([m["accuracy"] for m in plain]),
                 "macro_f1": stats([m["macro_f1"] for m in plain]),
                 "recall": {c: stats([r[c] for r in recalls]) for c in recalls[0]}}
        if all("tta_flip" in e["protocols"][name] for e in evaluations):
            entry["tta_flip_accuracy"] = stats([e["protocols"][name]["tta_flip"]["accuracy"]
                                                for e in evaluations])
        if all("prior_adjusted" in e["protocols"][name] for e in evaluations):
            adj = [e["protocols"][name]["prior_adjusted"] for e in evaluations]
            entry["prior_adjusted"] = {"tau": [a["tau"] for a in adj],
                                       "accuracy": stats([a["accuracy"] for a in adj]),
                                       "macro_f1": stats([a["macro_f1"] for a in adj])}
        protocols[name] = entry
    summary = {"runs": [r.name for r in run_dirs], "seeds": [t["params"]["seed"] for t in trainings],
               # Completed with the defaults a setting's absence meant, so readers (the report)
               # compare summaries of different ages without importing the training code.
               "params": settings[0],
               "val_accuracy": stats([t["best_val_accuracy"] for t in trainings]),
               "wall_time_min": stats([t["wall_time_s"] / 60 for t in trainings]),
               "cpus_usable": [t["machine"].get("cpus_usable") for t in trainings],
               "protocols": protocols}
    # The budget unit beside the wall time, where every record says how much it trained.
    if all(t.get("compute") or {"data", "epochs_run"} <= t.keys() for t in trainings):
        summary["training_flops"] = stats([recorded_flops(t) for t in trainings])
    return summary


def release_model(run_dir, out_dir, name: str = "reference", seed_runs=None) -> dict:
    """Write ``<name>.keras``, ``<name>.card.json``, ``<name>.md`` and ``<name>.check.json``.

    ``run_dir`` is a run folder or a committed, flat copy of one (:func:`run_file`).
    ``seed_runs`` (optional): run folders of the same configuration with other
    seeds, ``run_dir`` included; their mean ± std goes into the card.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    training = read_json(run_file(run_dir, "training.json"), "training metadata")
    evaluation = read_json(run_file(run_dir, "evaluation.json"), "evaluation")
    data_settings = read_json(run_file(run_dir, "data.json"), "data settings")
    model = load_model(run_file(run_dir, "best.keras"))
    target = out_dir / f"{name}.keras"
    model.save(target)                 # loaded with compile=False: no optimizer state, small file
    reloaded = load_model(target)
    batch = check_batch()
    probs = predict_proba(reloaded, batch)
    check = {"batch": "fer_helpers.release.check_batch(n=32, seed=2024)", "probabilities": probs.tolist(),
             "tolerance": 1e-4}
    if model_precision(reloaded) != "float32":
        # bfloat16 results depend on the CPU's bfloat16 kernels (native AMX/AVX512-BF16 or emulated),
        # so also store the float32 copy's values, which any CPU reproduces.
        check["probabilities_float32"] = predict_proba(to_float32(reloaded), batch).tolist()
    write_json(out_dir / f"{name}.check.json", check)
    protocols = {}
    for pname, p in evaluation["protocols"].items():
        m = p["plain"]
        protocols[pname] = {
            "description": p["description"], "n": p["n"], "accuracy": m["accuracy"],
            "accuracy_ci95": m["ci"]["accuracy"], "macro_f1": m["macro_f1"], "macro_f1_ci95": m["ci"]["macro_f1"],
            "weighted_f1": m["weighted_f1"], "ece": m["calibration"]["ece"],
            "recall": per_class_recall(m),
            "tta_flip_accuracy": p.get("tta_flip", {}).get("accuracy"),
            "contamination": p["contamination"]}
        if "prior_adjusted" in p:
            a = p["prior_adjusted"]
            protocols[pname]["prior_adjusted"] = {
                "tau": a["tau"], "accuracy": a["accuracy"], "macro_f1": a["macro_f1"],
                "recall": per_class_recall(a)}
    card = {
        "name": name, "file": target.name, "sha256": _sha256(target),
        "size_mb": target.stat().st_size / 2**20, "n_params": count_params(reloaded),
        "architecture": training["params"]["model_name"], "precision": model_precision(reloaded),
        "classes": list(evaluation["classes"]),
        "input": "N×48×48 (or N×48×48×1) uint8 grayscale pixels 0-255; scaling happens inside the model",
        "output": f"N×{len(evaluation['classes'])} softmax probabilities in the order of 'classes'",
        "training_data": {"data_settings": data_settings, "train_images": training["data"]["n_train_used"],
                          "val_images": training["data"]["n_val"], "validation": evaluation["validation"],
                          "fingerprint": training["data"]["fingerprint"]},
        "training": {"params": training["params"], "seed": training["params"]["seed"],
                     "wall_time_s": training["wall_time_s"], "epochs_run": training["epochs_run"],
                     "best_epoch": training["best_epoch"], "machine": training["machine"],
                     "versions": training["versions"], "git_commit": training["git_commit"],
                     "compute": training.get("compute")},
        "metrics": protocols, "source_run": run_dir.name, "released": now_iso(),
    }
    if seed_runs:
        card["seeds"] = summarize_seeds(seed_runs)
    write_json(out_dir / f"{name}.card.json", card)
    (out_dir / f"{name}.md").write_text(model_card_markdown(card), encoding="utf-8")
    return card


def source_training_run(model_path) -> Path | None:
    """The committed folder of the run that trained a released model, or None.

    A released model's card (``<name>.card.json`` beside ``<name>.keras``) names its
    ``source_run``; the repository keeps that run's numbers (``training.json``,
    ``history.json``; no images) in ``results/runs/<source_run>/`` beside the ``models/``
    folder. A model without a card, or copied away from the repository, has none.
    """
    model_path = Path(model_path)
    card = model_path.with_suffix(".card.json")
    if not card.is_file():
        return None
    run = read_json(card, "model card").get("source_run")
    folder = model_path.resolve().parent.parent / "results" / "runs" / run if run else None
    if folder is None or not all((folder / f).is_file() for f in ("training.json", "history.json")):
        return None
    return folder


def record_pretrained_model(model_path, data_summary: dict, results_dir) -> dict:
    """Write ``training.json`` (and ``history.json``) for a run that evaluates a given model.

    Nothing is trained, so the record says so; when the model's own training run is committed
    (:func:`source_training_run`), its parameters, timings and per-epoch history are copied in
    under ``source_training`` and ``history.json``, so the report and slides can describe how
    the evaluated model was trained. Otherwise a ``history.json`` left by an earlier run in the
    same folder is removed: it would describe another model.
    """
    results_dir = Path(results_dir)
    record = {"pretrained_model": str(Path(model_path).resolve()), "params": None,
              "note": "training skipped; evaluating a given model", "data": data_summary}
    source = source_training_run(model_path)
    history = results_dir / "history.json"
    if source is None:
        history.unlink(missing_ok=True)
    else:
        record["source_run"] = f"results/runs/{source.name}"
        record["source_training"] = read_json(source / "training.json", "training metadata")
        write_json(history, read_json(source / "history.json", "training history"))
    write_json(results_dir / "training.json", record)
    return record


def use_compare_model(model_path, compare_dir, n_classes: int) -> dict:
    """Put a finished model where notebook 04 scores the compare model (``compare/model/best.keras``)
    and describe it by its own name in ``compare/results/model_table.json``, so the report can say
    which model the McNemar test compares with. A compare model trained earlier in the same run
    folder is removed, records included: they would describe another model."""
    import shutil

    from .models import describe_model

    compare_dir = Path(compare_dir)
    shutil.rmtree(compare_dir, ignore_errors=True)
    (compare_dir / "model").mkdir(parents=True)
    shutil.copyfile(model_path, compare_dir / "model" / "best.keras")
    description = describe_model(load_model(model_path, n_classes=n_classes))
    write_json(compare_dir / "results" / "model_table.json", description)
    return description


def _precision_note(precision: str) -> str:
    if precision == "float32":
        return "float32"
    return (f"{precision} (bfloat16 convolutions, float32 weights and softmax; fast on CPUs with AMX or "
            "AVX512-BF16; `fer_helpers.models.to_float32` gives a float32 copy with the same weights). "
            "bfloat16 outputs can differ between CPUs by rounding, so the check file also holds the float32 "
            "copy's values (`verify_release(..., float32=True)`), which any CPU reproduces.")


def _compute_note(compute: dict | None) -> str:
    """The training compute in hardware-independent units; runs that predate the count have none."""
    if not compute or not compute.get("training_flops"):
        return ""
    return f"; {compute['training_flops']:.2e} training FLOPs ({compute['images_seen']:,} images seen)"


def model_card_markdown(card: dict) -> str:
    """A human-readable model card from the card JSON."""
    pct = lambda x: f"{100 * x:.2f}%"  # noqa: E731
    width = (card.get("training", {}).get("params") or {}).get("width")
    architecture = f"**{card['architecture']}**" + (f" (width {width})" if width and card["architecture"] == "resnet" else "")
    lines = [f"# Model card: `{card['file']}`", "",
             f"- Architecture: {architecture}, {card['n_params']:,} parameters, "
             f"{card['size_mb']:.2f} MB, sha256 `{card['sha256'][:16]}…`",
             f"- Compute: {_precision_note(card.get('precision', 'float32'))}",
             f"- Classes (output order): {', '.join(card['classes'])}",
             f"- Input: {card['input']}", f"- Output: {card['output']}",
             f"- Training data: {card['training_data']['data_settings']}, "
             f"{card['training_data']['train_images']} training / {card['training_data']['val_images']} "
             f"validation images (validation: {card['training_data']['validation']})",
             f"- Training: {card['training']['epochs_run']} epochs (best {card['training']['best_epoch']}), "
             f"{card['training']['wall_time_s'] / 60:.1f} min on {_cores(card['training']['machine'])}, "
             f"seed {card['training']['seed']}{_compute_note(card['training'].get('compute'))}", "",
             "## Held-out results", "",
             "| protocol | images | accuracy (95% CI) | macro-F1 (95% CI) | ECE | flip-TTA accuracy |",
             "|---|---|---|---|---|---|"]
    for name, m in card["metrics"].items():
        tta = pct(m["tta_flip_accuracy"]) if m["tta_flip_accuracy"] is not None else "–"
        lines.append(f"| {name} | {m['n']} | {pct(m['accuracy'])} ({pct(m['accuracy_ci95'][0])}–{pct(m['accuracy_ci95'][1])}) | "
                     f"{m['macro_f1']:.3f} ({m['macro_f1_ci95'][0]:.3f}–{m['macro_f1_ci95'][1]:.3f}) | {m['ece']:.3f} | {tta} |")
    if card.get("seeds"):
        s = card["seeds"]
        lines += ["", f"## Same configuration, {len(s['seeds'])} seeds ({', '.join(map(str, s['seeds']))}): "
                  "mean ± std", "",
                  "| protocol | accuracy | macro-F1 | Contempt recall | Disgust recall | flip-TTA accuracy |",
                  "|---|---|---|---|---|---|"]
        ms = lambda d, f=pct: f"{f(d['mean'])} ± {f(d['std'])}"  # noqa: E731
        f3 = lambda x: f"{x:.3f}"  # noqa: E731
        for pname, m in s["protocols"].items():
            tta = ms(m["tta_flip_accuracy"]) if "tta_flip_accuracy" in m else "–"
            lines.append(f"| {pname} | {ms(m['accuracy'])} | {ms(m['macro_f1'], f3)} | "
                         f"{ms(m['recall']['Contempt'], f3) if 'Contempt' in m['recall'] else '–'} | "
                         f"{ms(m['recall']['Disgust'], f3) if 'Disgust' in m['recall'] else '–'} | {tta} |")
        # Per-seed wall times, not mean ± std: seeds may have shared the cores with other runs.
        times = " / ".join(f"{t:.1f}" for t in s["wall_time_min"]["values"])
        lines += ["", f"Validation accuracy at the checkpoint {ms(s['val_accuracy'])} (the Keras metric that "
                  "selected it: argmax of the vote distribution, ties to the first class in class order; "
                  "`research/validation_compare.py`, whose numbers the decision rules use, scores the same "
                  "checkpoints against plurality labels, so its numbers differ slightly); "
                  f"training wall time per seed {times} min "
                  "(each run's training.json records the cores it had). The released file "
                  f"is the seed-{card['training']['seed']} model, fixed before training (not picked among the "
                  "seeds by any number); the seed also sets the validation split."]
    lines += ["", "Per-class recall:", ""]
    for name, m in card["metrics"].items():
        lines.append(f"- {name}: " + ", ".join(f"{c} {v:.3f}" for c, v in m["recall"].items()))
    adjusted = {n: m["prior_adjusted"] for n, m in card["metrics"].items() if m.get("prior_adjusted")}
    if adjusted:
        tau = next(iter(adjusted.values()))["tau"]
        lines += ["", f"Prior correction (p / prior^tau, tau chosen on validation macro-F1): tau = {tau:.2f}"
                  + (" — no tau > 0 improved validation macro-F1, so the decision rule is unchanged."
                     if tau == 0 else ": " + "; ".join(
                         f"{n} accuracy {pct(a['accuracy'])}, macro-F1 {a['macro_f1']:.3f}"
                         for n, a in adjusted.items()) + " (reported separately, like flip-TTA).")]
    if card.get("inference"):
        inf = card["inference"]
        lines += ["", f"Inference: {inf['images_per_second']:,.0f} images/s through `predict_proba` "
                  f"(batch {inf['batch_size']}, {_cores(inf['machine'])}, {inf['time']})."]
    if card.get("int8_onnx"):
        q = card["int8_onnx"]
        lines += ["", f"Static int8 ONNX export (`python -m fer_helpers export --formats onnx_int8 --calibration-data DIR`; "
                  f"activation ranges from {q['calibration']['images']} training images, "
                  f"{int8_weight_bits(q['calibration'])}-bit weights): "
                  f"{q['images_per_second']:,.0f} images/s, {q['size_mb']:.2f} MB ({_cores(q['machine'])}, {q['time']}); "
                  + "; ".join(f"{p} accuracy {pct(m['int8']['accuracy'])}, macro-F1 {m['int8']['macro_f1']:.3f} "
                              f"(this model {pct(m['model']['accuracy'])}, {m['model']['macro_f1']:.3f}; "
                              f"top-1 agreement {pct(m['int8']['top1_agreement'])})"
                              for p, m in q["protocols"].items()) + "."]
    lines += ["", "Reproduce: `fer_helpers.load_model` + `fer_helpers.predict_proba` on the protocol's images "
              "(see `tests/test_reference_model.py`)."]
    return "\n".join(lines) + "\n"


def _cores(machine: dict) -> str:
    usable, total = machine.get("cpus_usable"), machine["cpu_count"]
    cores = (f"{usable} of the machine's {total} CPU cores (pinned with taskset)" if usable and usable < total
             else f"{total} CPU cores")
    return cores + _cpu(machine)


def _cpu(machine: dict) -> str:
    """", <CPU model>, native bfloat16: …" where the run recorded its CPU (``cpu_features``).

    Timings of a bfloat16 model mean little without it: the same 2 cores are an order of
    magnitude slower when the CPU emulates bfloat16. Older runs did not record the CPU.
    """
    if not machine.get("cpu_model"):
        return ""
    native = native_bfloat16(machine)
    return f", {machine['cpu_model']}, native bfloat16: {', '.join(native) if native else 'no'}"


def verify_release(out_dir, name: str = "reference", float32: bool = False) -> float:
    """Largest difference between stored and recomputed check-batch probabilities.

    ``float32=True`` checks the model's float32 copy (``to_float32``) instead: for a
    bfloat16 model that is the check any CPU passes, whatever its bfloat16 kernels.
    """
    out_dir = Path(out_dir)
    check_file = out_dir / f"{name}.check.json"
    check = read_json(check_file, "check values")
    model = load_model(out_dir / f"{name}.keras", n_classes=len(CLASSES))
    key = "probabilities"
    if float32 and model_precision(model) != "float32":
        if "probabilities_float32" not in check:
            raise ValueError(f"{check_file}: no 'probabilities_float32' for this {model_precision(model)} model; "
                             "release it again with fer_helpers.release.release_model")
        model, key = to_float32(model), "probabilities_float32"
    probs = predict_proba(model, check_batch())
    return float(np.abs(np.asarray(check[key]) - probs).max())


def _update_card(out_dir, name: str, key: str, value: dict) -> dict:
    """Set one section of the card and rewrite both its JSON and its markdown."""
    out_dir = Path(out_dir)
    card = read_json(out_dir / f"{name}.card.json", "model card")
    card[key] = value
    write_json(out_dir / f"{name}.card.json", card)
    (out_dir / f"{name}.md").write_text(model_card_markdown(card), encoding="utf-8")
    return card


def add_inference_to_card(out_dir, name: str, benchmark: dict) -> dict:
    """Record a measured inference benchmark in the card (JSON and markdown)."""
    return _update_card(out_dir, name, "inference",
                        {k: benchmark[k] for k in ("images_per_second", "batch_size", "n_images", "machine", "time")})


def add_int8_export_to_card(out_dir, name: str, benchmark: dict) -> dict:
    """Record the static int8 ONNX export of ``benchmarks/export_benchmark.py`` in the card:
    its speed and size on the benchmark's CPU and, per protocol, its accuracy beside the model's."""
    if "onnx_int8" not in benchmark or "protocols" not in benchmark:
        raise ValueError("the export benchmark has no int8 ONNX accuracy: run it with --data (FER+ folder)")
    scores = ("accuracy", "macro_f1")
    return _update_card(out_dir, name, "int8_onnx", {
        "images_per_second": benchmark["onnx_int8"]["images_per_second"],
        "size_mb": benchmark["onnx_int8"]["size_mb"],
        "protocols": {p: {"model": {k: v["keras"][k] for k in scores},
                          "int8": {k: v["onnx_int8"][k] for k in (*scores, "top1_agreement")}}
                      for p, v in benchmark["protocols"].items()},
        "calibration": benchmark["calibration"], "machine": benchmark["machine"], "time": benchmark["time"]})
