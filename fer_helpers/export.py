"""Export a trained model for deployment: TFLite (float, dynamic-range int8) and ONNX.

Every export is checked against the Keras model on a fixed batch (same top-1,
probabilities within a tolerance) before it is reported as done.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from .models import strip_augmentation, to_float32

FORMATS = ("tflite", "tflite_int8", "onnx")


def _serving(model):
    """The exported graph: no augmentation layers, float32 compute (TFLite/ONNX runtimes
    have no bfloat16 kernels for most ops, so a mixed-precision model is exported in float32)."""
    return strip_augmentation(to_float32(model))


def _saved_model(model, folder: Path) -> Path:
    _serving(model).export(str(folder), format="tf_saved_model", verbose=False)
    return folder


def export_tflite(model, path, int8: bool = False) -> Path:
    """TFLite flatbuffer; ``int8`` applies dynamic-range quantisation (weights in int8)."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(_saved_model(model, Path(tmp) / "sm")))
        if int8:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        data = converter.convert()
    path = Path(path)
    path.write_bytes(data)
    return path


def export_onnx(model, path) -> Path:
    """ONNX graph via Keras' exporter (tf2onnx underneath)."""
    path = Path(path)
    serving = _serving(model)
    serving(np.zeros((1, 48, 48, 1), dtype=np.float32))   # Keras' ONNX exporter needs a called model
    serving.export(str(path), format="onnx", verbose=False)
    return path


def run_tflite(path, images: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_path=str(path))
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    x = np.asarray(images, dtype=np.float32).reshape(-1, 48, 48, 1)
    interp.resize_tensor_input(inp["index"], list(x.shape))
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    return interp.get_tensor(out["index"])


def run_onnx(path, images: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.asarray(images, dtype=np.float32).reshape(-1, 48, 48, 1)
    return session.run(None, {session.get_inputs()[0].name: x})[0]


RUNNERS = {"tflite": run_tflite, "tflite_int8": run_tflite, "onnx": run_onnx}


def parity(reference: np.ndarray, other: np.ndarray) -> dict:
    """Agreement of two probability matrices: top-1 agreement and largest absolute difference."""
    return {"top1_agreement": float((reference.argmax(1) == other.argmax(1)).mean()),
            "max_abs_diff": float(np.abs(reference - other).max())}


def export_all(model, out_dir, formats=FORMATS, check_images: np.ndarray | None = None) -> dict:
    """Export ``model`` in each format and check parity on ``check_images``; returns a summary."""
    from .models import predict_proba

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if check_images is None:
        check_images = np.random.default_rng(0).integers(0, 256, (64, 48, 48), dtype=np.uint8)
    reference = predict_proba(model, check_images)
    summary = {}
    for fmt in formats:
        if fmt not in FORMATS:
            raise ValueError(f"unknown export format {fmt!r}; choose from {FORMATS}")
        target = out_dir / (f"{model.name}.onnx" if fmt == "onnx" else
                            f"{model.name}{'_int8' if fmt == 'tflite_int8' else ''}.tflite")
        if fmt == "onnx":
            export_onnx(model, target)
        else:
            export_tflite(model, target, int8=fmt == "tflite_int8")
        summary[fmt] = {"path": str(target), "size_mb": target.stat().st_size / 2**20,
                        **parity(reference, RUNNERS[fmt](target, check_images))}
    shutil.rmtree(out_dir / "sm", ignore_errors=True)
    return summary
