"""Export a trained model for deployment: TFLite (float, dynamic-range int8) and ONNX
(float, static int8).

Every export is checked against the Keras model on a fixed batch (same top-1,
probabilities within a tolerance) before it is reported as done.

The static int8 ONNX graph quantises activations as well as weights, so its
convolutions run as int8 dot products (VNNI on x86), usually the fastest format on a
CPU with VNNI (``benchmarks/export_benchmark.py`` measures it). Its activation ranges are calibrated on
images passed in by the caller: training images, never a held-out split.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from .models import OnnxModel, predict_proba, strip_augmentation, to_float32

FORMATS = ("tflite", "tflite_int8", "onnx", "onnx_int8")


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


def calibration_sample(train_images: np.ndarray, n: int = 512, seed: int = 0) -> np.ndarray:
    """``n`` training images drawn at random (fixed seed): the int8 calibration set."""
    if len(train_images) == 0:
        raise ValueError("no training images to calibrate the int8 export with")
    rng = np.random.default_rng(seed)
    return train_images[rng.choice(len(train_images), min(n, len(train_images)), replace=False)]


#: Bits of each int8 ONNX weight that ``export_onnx_int8`` uses (7: ``reduce_range``; see there).
#: Recorded next to every measurement of the graph, since graphs of full 8-bit weights were measured too.
ONNX_INT8_WEIGHT_BITS = 7


def int8_weight_bits(calibration: dict) -> int:
    """The weight bits of a measured int8 graph (its ``calibration`` record); records from
    before ``weight_bits`` was recorded had full 8-bit weights."""
    return calibration.get("weight_bits", 8)


def export_onnx_int8(model, path, calibration_images: np.ndarray, batch_size: int = 64) -> Path:
    """Statically quantised ONNX graph: int8 weights (per output channel) and int8 activations.

    ``calibration_images`` (N×48×48 uint8, a few hundred training images) set each
    activation's int8 range (min–max). Quantize/dequantize pairs around each op (QDQ)
    let ONNX Runtime fuse them into integer kernels; signed int8 activations were
    faster than unsigned on the AVX-512 VNNI CPU measured.

    The weights use 7 of their 8 bits (``reduce_range``). An x86 CPU without VNNI (AVX2 or
    AVX-512 alone) multiplies int8 pairs with an instruction that adds two products into a
    saturating int16; full-range weights overflow it and cost many points of accuracy on
    such a CPU. The file does not know which CPU will run it, so it is always built to be correct on all.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    x = np.asarray(calibration_images, dtype=np.float32)
    if x.ndim != 3 or x.shape[1:] != (48, 48) or len(x) == 0:
        raise ValueError(f"calibration_images must be N×48×48 with N > 0, got shape {x.shape}")
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        plain, prepared = Path(tmp) / "float.onnx", Path(tmp) / "prepared.onnx"
        export_onnx(model, plain)
        quant_pre_process(str(plain), str(prepared))   # shape inference + graph clean-up first
        name = OnnxModel(prepared).input_name

        class Batches(CalibrationDataReader):
            def __init__(self):
                self._batches = iter([{name: x[i:i + batch_size, ..., None]} for i in range(0, len(x), batch_size)])

            def get_next(self):
                return next(self._batches, None)

        quantize_static(str(prepared), str(path), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        reduce_range=ONNX_INT8_WEIGHT_BITS == 7)
    return path


def tflite_runner(path):
    """``images -> probabilities`` through one TFLite interpreter (resized to each batch)."""
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_path=str(path))
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]

    def run(images: np.ndarray) -> np.ndarray:
        x = np.asarray(images, dtype=np.float32).reshape(-1, 48, 48, 1)
        interp.resize_tensor_input(inp["index"], list(x.shape))
        interp.allocate_tensors()
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        return interp.get_tensor(out["index"])
    return run


def onnx_runner(path):
    """``images -> probabilities`` through one ONNX Runtime session."""
    model = OnnxModel(path)
    return lambda images: predict_proba(model, images)


#: Each format's runner factory: ``RUNNERS[fmt](path)`` loads once and returns ``images -> probabilities``.
RUNNERS = {"tflite": tflite_runner, "tflite_int8": tflite_runner, "onnx": onnx_runner, "onnx_int8": onnx_runner}


def parity(reference: np.ndarray, other: np.ndarray) -> dict:
    """Agreement of two probability matrices: top-1 agreement and largest absolute difference."""
    return {"top1_agreement": float((reference.argmax(1) == other.argmax(1)).mean()),
            "max_abs_diff": float(np.abs(reference - other).max())}


#: Each format's file name after the model's name.
SUFFIXES = {"tflite": ".tflite", "tflite_int8": "_int8.tflite", "onnx": ".onnx", "onnx_int8": "_int8.onnx"}


def export_all(model, out_dir, formats=FORMATS, check_images: np.ndarray | None = None,
               calibration_images: np.ndarray | None = None) -> dict:
    """Export ``model`` in each format and check parity on ``check_images``; returns a summary.

    ``onnx_int8`` needs ``calibration_images`` (training images; see ``export_onnx_int8``).
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown export format {unknown[0]!r}; choose from {FORMATS}")
    if "onnx_int8" in formats and calibration_images is None:
        raise ValueError("onnx_int8 needs calibration_images: a few hundred training images "
                         "(never a held-out split) to set the int8 activation ranges")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if check_images is None:
        check_images = np.random.default_rng(0).integers(0, 256, (64, 48, 48), dtype=np.uint8)
    reference = predict_proba(model, check_images)
    summary = {}
    for fmt in formats:
        target = out_dir / f"{model.name}{SUFFIXES[fmt]}"
        if fmt == "onnx":
            export_onnx(model, target)
        elif fmt == "onnx_int8":
            export_onnx_int8(model, target, calibration_images)
        else:
            export_tflite(model, target, int8=fmt == "tflite_int8")
        summary[fmt] = {"path": str(target), "size_mb": target.stat().st_size / 2**20,
                        **parity(reference, RUNNERS[fmt](target)(check_images))}
    shutil.rmtree(out_dir / "sm", ignore_errors=True)
    return summary
