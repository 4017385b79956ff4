"""CNN architectures by name, safe loading, and prediction on raw uint8 faces.

Every model starts with ``Rescaling(1/255)`` and its augmentation layers, so a
saved ``.keras`` file takes 48×48 uint8 pixels as ``load_dataset`` returns them
and augmentation can never leak into evaluation (Keras runs those layers only
with ``training=True``).
"""
from __future__ import annotations

import time
import weakref
import zipfile
from pathlib import Path

import numpy as np

from .labels import CLASSES
from .preprocessing import augmentation_layers

INPUT_SHAPE = (48, 48, 1)
MODEL_NAMES = ("baseline", "vgg", "vgg_wide", "vgg_fast", "vgg_mid", "resnet")
#: Residual nets: the first stage's channel width (later stages double it) is the one size knob.
RESNET_WIDTHS = (8, 16, 24, 32, 48, 64)
RESNET_DEFAULT_WIDTH = 32
#: Stride of the residual nets' stem conv: 1 keeps 48×48 in the first stage, 2 halves it.
RESNET_STEM_STRIDES = (1, 2)
#: Keras dtype policies a model can be built with. "mixed_bfloat16" runs the conv
#: stages in bfloat16 with float32 weights: on a CPU with AMX or AVX512-BF16 (such as
#: this project's 2-core machine) training and inference run 1.4–2× faster, and the
#: GPU screens (results/gpu_search.csv) found no loss of accuracy. The stem
#: (rescaling, augmentation) and the softmax head always compute in float32.
PRECISIONS = ("float32", "mixed_bfloat16")

#: VGG variants: channel width and number of 3×3 convs for each of the four stages.
#: ``vgg_fast`` is narrower and has one conv at full 48×48 resolution, where a conv
#: costs most: about half the multiply-adds of ``vgg`` (54 M vs 117 M per image),
#: which on 2 CPU cores doubles training speed and gives >2,000 images/s at inference.
#: ``vgg_mid`` keeps ``vgg``'s widths but, like ``vgg_fast``, only one conv at 48×48
#: (96 M multiply-adds): a candidate for bfloat16 training, where ``vgg`` itself trains
#: within the budget but infers too slowly (1,763 images/s on 2 cores).
VGG_VARIANTS = {
    "vgg": ((32, 64, 128, 256), (2, 2, 2, 2)),
    "vgg_wide": ((48, 96, 192, 384), (2, 2, 2, 2)),
    "vgg_fast": ((24, 48, 96, 192), (1, 2, 2, 2)),
    "vgg_mid": ((32, 64, 128, 256), (1, 2, 2, 2)),
}


class ModelError(ValueError):
    """Raised for a model file that is missing, unreadable, unsafe or of the wrong shape."""


def _stem(augmentation: str, seed: int, erasing: float = 0.0):
    import keras
    from keras import layers

    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    for layer in augmentation_layers(augmentation, seed, erasing):
        x = layer(x)
    return inputs, x


def _conv_bn_relu(x, filters: int, name: str, bn_momentum: float = 0.99, dtype: str = "float32",
                  l2: float = 0.0):
    from keras import layers, regularizers

    # The conv's bias is kept, as in the starting study; BatchNorm follows (Keras
    # computes its statistics in float32 even under a bfloat16 policy).
    x = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv", dtype=dtype,
                      kernel_regularizer=regularizers.L2(l2) if l2 else None)(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn", dtype=dtype)(x)
    return layers.ReLU(name=f"{name}_relu", dtype=dtype)(x)


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")


def build_baseline(n_classes: int = len(CLASSES), augmentation: str = "study", seed: int = 42,
                   precision: str = "float32"):
    """The starting study's CNN, layer for layer (684,552 parameters for 8 classes).

    Three blocks Conv2D(32/64/128, 3×3, same) → BatchNorm → ReLU → MaxPool(2×2),
    then Flatten → Dense(128, ReLU) → Dropout(0.3) → Dense(n_classes, softmax).
    """
    import keras
    from keras import layers

    _check_precision(precision)
    inputs, x = _stem(augmentation, seed)
    for i, filters in enumerate((32, 64, 128), start=1):
        x = _conv_bn_relu(x, filters, f"block{i}", dtype=precision)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool", dtype=precision)(x)
    x = layers.Flatten(name="flatten", dtype=precision)(x)
    x = layers.Dense(128, activation="relu", name="dense", dtype=precision)(x)
    x = layers.Dropout(0.3, name="dropout", dtype=precision)(x)
    # The softmax head stays float32 whatever the policy: probabilities near 0 or 1
    # lose their meaning in bfloat16's 8-bit mantissa.
    outputs = layers.Dense(n_classes, activation="softmax", name="predictions", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="baseline")


def build_vgg(n_classes: int = len(CLASSES), augmentation: str = "strong", seed: int = 42,
              widths=(32, 64, 128, 256), convs=(2, 2, 2, 2), dropout: float = 0.4,
              name: str = "vgg", precision: str = "float32", erasing: float = 0.0, l2: float = 0.0):
    """A VGG-style net for 48×48 faces: 4 stages of 3×3 convs, global average pooling.

    ``widths``/``convs`` give each stage's channels and number of convs (two
    each by default); dropout after every stage; global pooling keeps the head
    small (about 1.2 M parameters for the default) and the network cheap on a CPU.
    ``precision`` is the conv stages' Keras dtype policy (``PRECISIONS``); ``erasing`` and
    ``l2`` are as in ``build_resnet`` (off by default).
    """
    if len(widths) != 4 or len(convs) != 4 or min(convs) < 1:
        raise ValueError(f"need 4 stage widths and 4 conv counts ≥ 1, got {widths}, {convs}")
    _check_precision(precision)
    import keras
    from keras import layers, regularizers

    inputs, x = _stem(augmentation, seed, erasing)
    for stage, (width, n_convs) in enumerate(zip(widths, convs), start=1):
        for j in range(1, n_convs + 1):
            # Momentum 0.9 (not Keras' 0.99): the moving statistics that inference uses
            # settle within a few hundred steps, which matters on small data sets.
            x = _conv_bn_relu(x, width, f"stage{stage}_{j}", bn_momentum=0.9, dtype=precision, l2=l2)
        x = layers.MaxPooling2D(2, name=f"stage{stage}_pool", dtype=precision)(x)
        x = layers.Dropout(min(0.1 * stage, dropout), name=f"stage{stage}_drop", dtype=precision)(x)
    x = layers.GlobalAveragePooling2D(name="gap", dtype=precision)(x)
    x = layers.Dropout(dropout, name="head_drop", dtype=precision)(x)
    # The softmax head stays float32 (see build_baseline).
    outputs = layers.Dense(n_classes, activation="softmax", name="predictions", dtype="float32",
                           kernel_regularizer=regularizers.L2(l2) if l2 else None)(x)
    return keras.Model(inputs, outputs, name=name)


def _residual_block(x, filters: int, stride: int, name: str, l2: float, dtype: str):
    """A basic residual block (He et al., 2016): two 3×3 convs and a shortcut, added.

    The shortcut is the identity when the shape is unchanged, else a strided 1×1 conv; the
    sum lets the gradient reach early layers through the identity path, which is what lets
    an 18-layer net train as easily as a shallow one.
    """
    from keras import layers, regularizers

    reg = regularizers.L2(l2) if l2 else None
    conv = dict(padding="same", use_bias=False, kernel_initializer="he_normal", kernel_regularizer=reg,
                dtype=dtype)
    y = layers.Conv2D(filters, 3, strides=stride, name=f"{name}_conv1", **conv)(x)
    y = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn1", dtype=dtype)(y)
    y = layers.ReLU(name=f"{name}_relu1", dtype=dtype)(y)
    y = layers.Conv2D(filters, 3, name=f"{name}_conv2", **conv)(y)
    y = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn2", dtype=dtype)(y)
    if stride != 1 or x.shape[-1] != filters:
        x = layers.Conv2D(filters, 1, strides=stride, name=f"{name}_short", **{**conv, "padding": "valid"})(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_short_bn", dtype=dtype)(x)
    y = layers.Add(name=f"{name}_add", dtype=dtype)([x, y])
    return layers.ReLU(name=f"{name}_out", dtype=dtype)(y)


def build_resnet(n_classes: int = len(CLASSES), augmentation: str = "wide", seed: int = 42,
                 width: int = RESNET_DEFAULT_WIDTH, blocks=(2, 2, 2, 2), dropout: float = 0.3,
                 erasing: float = 0.5, l2: float = 2.5e-4, precision: str = "float32", stem_stride: int = 1):
    """A ResNet-18-style net for 48×48 faces: a 3×3 stem without max-pooling, four stages of
    ``blocks`` basic residual blocks at widths w, 2w, 4w, 8w (stages 2–4 halve the resolution:
    48 → 24 → 12 → 6), global average pooling, dropout and a softmax head.

    The small-image variant of ResNet (no 7×7 stride-2 stem, no max-pool) keeps the full 48×48
    resolution in the first stage, where facial detail lives. ``width=32`` has 2.8 M
    parameters, ``width=16`` 0.7 M. Inputs are standardised as (x/255 − 0.5)/0.25 after
    augmentation. ``l2`` is the L2 penalty on conv and dense kernels (coupled weight decay:
    an SGD weight decay of 2·l2).

    ``stem_stride=2`` makes the stem conv strided (48 → 24 → 12 → 6 → 3): each conv then
    costs a quarter, so twice the width trains for the same FLOPs as the full-resolution net.
    It trades spatial detail for channels at a fixed compute budget.
    """
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width <= 0:
        raise ValueError(f"width must be a positive integer, got {width!r}")
    check_stem_stride("resnet", stem_stride)
    if len(blocks) != 4 or min(blocks) < 1:
        raise ValueError(f"need 4 stage block counts ≥ 1, got {blocks}")
    if l2 < 0:
        raise ValueError(f"l2 must be ≥ 0, got {l2}")
    _check_precision(precision)
    import keras
    from keras import layers, regularizers

    inputs, x = _stem(augmentation, seed, erasing)
    # After augmentation (which works on [0, 1]): centre and scale the pixels, as the recipe did.
    x = layers.Rescaling(4.0, offset=-2.0, name="standardize")(x)
    reg = regularizers.L2(l2) if l2 else None
    x = layers.Conv2D(width, 3, strides=stem_stride, padding="same", use_bias=False,
                      kernel_initializer="he_normal", kernel_regularizer=reg, name="stem_conv",
                      dtype=precision)(x)
    x = layers.BatchNormalization(momentum=0.9, name="stem_bn", dtype=precision)(x)
    x = layers.ReLU(name="stem_relu", dtype=precision)(x)
    for stage, n_blocks in enumerate(blocks, start=1):
        filters = width * 2 ** (stage - 1)
        for b in range(1, n_blocks + 1):
            stride = 2 if stage > 1 and b == 1 else 1
            x = _residual_block(x, filters, stride, f"stage{stage}_{b}", l2, precision)
    x = layers.GlobalAveragePooling2D(name="gap", dtype=precision)(x)
    x = layers.Dropout(dropout, name="head_drop", dtype=precision)(x)
    # The softmax head stays float32 (see build_baseline).
    outputs = layers.Dense(n_classes, activation="softmax", kernel_regularizer=reg, name="predictions",
                           dtype="float32")(x)
    depth = 2 + 2 * sum(blocks)
    suffix = f"_stem{stem_stride}" if stem_stride != 1 else ""
    return keras.Model(inputs, outputs, name=f"resnet{depth}_w{width}{suffix}")


def default_augmentation(name: str) -> str:
    """The augmentation a model gets when none is named: the study's for its CNN, "strong" for
    VGGs, "wide" for residual nets."""
    return {"baseline": "study", "resnet": "wide"}.get(name, "strong")


def check_width(name: str, width) -> None:
    """Raise ValueError unless ``width`` is None or one of ``RESNET_WIDTHS`` for ``"resnet"``."""
    if width is None:
        return
    if name != "resnet":
        raise ValueError(f"width applies to model 'resnet' only, not {name!r}")
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width <= 0:
        raise ValueError(f"width must be a positive integer, got {width!r}")
    if width not in RESNET_WIDTHS:
        raise ValueError(f"unknown resnet width {width!r}; choose one of {RESNET_WIDTHS}")


def check_stem_stride(name: str, stem_stride) -> None:
    """Raise ValueError unless ``stem_stride`` is None or one of ``RESNET_STEM_STRIDES`` for ``"resnet"``."""
    if stem_stride is None:
        return
    if name != "resnet":
        raise ValueError(f"stem_stride applies to model 'resnet' only, not {name!r}")
    if isinstance(stem_stride, bool) or stem_stride not in RESNET_STEM_STRIDES:
        raise ValueError(f"stem_stride must be one of {RESNET_STEM_STRIDES}, got {stem_stride!r}")


def build_model(name: str = "baseline", n_classes: int = len(CLASSES), augmentation: str | None = None,
                seed: int = 42, precision: str = "float32", width: int | None = None,
                erasing: float | None = None, l2: float | None = None, stem_stride: int | None = None):
    """Build a model by name: ``"baseline"`` (the study's CNN), a VGG variant (``VGG_VARIANTS``)
    or ``"resnet"`` (``build_resnet``; ``width`` one of ``RESNET_WIDTHS``, default 32).

    ``augmentation`` defaults to ``default_augmentation(name)``. ``erasing`` (random-erasing
    probability) and ``l2`` (kernel penalty) default to 0 for the VGGs and to the residual
    recipe's 0.5 and 2.5e-4 for ``"resnet"``; the baseline takes neither. ``stem_stride``
    (``"resnet"`` only) defaults to 1.
    """
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model name {name!r}; choose one of {MODEL_NAMES}")
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    check_width(name, width)
    check_stem_stride(name, stem_stride)
    augmentation = augmentation or default_augmentation(name)
    if name == "resnet":
        width = RESNET_DEFAULT_WIDTH if width is None else width
        return build_resnet(n_classes, augmentation, seed, width=width, precision=precision,
                            erasing=0.5 if erasing is None else erasing, l2=2.5e-4 if l2 is None else l2,
                            stem_stride=1 if stem_stride is None else stem_stride)
    if name == "baseline":
        if erasing or l2:
            raise ValueError("the baseline is the starting study's CNN as it was: erasing and l2 do not apply")
        return build_baseline(n_classes, augmentation, seed, precision)
    widths, convs = VGG_VARIANTS[name]
    return build_vgg(n_classes, augmentation, seed, widths=widths, convs=convs, name=name,
                     precision=precision, erasing=erasing or 0.0, l2=l2 or 0.0)


def model_precision(model) -> str:
    """"mixed_bfloat16" when any layer computes in bfloat16, else "float32"."""
    return "mixed_bfloat16" if any(layer.compute_dtype == "bfloat16" for layer in model.layers) else "float32"


def to_float32(model):
    """A float32 copy of ``model`` with the same weights, for hardware without fast bfloat16
    and for exporters (TFLite, ONNX) that expect float32 graphs.

    The weights of a mixed-precision model are float32 already, so only the
    layers' compute dtype changes; outputs differ by bfloat16 rounding only.
    """
    import keras

    if model_precision(model) == "float32":
        return model
    clone = keras.models.clone_model(
        model, clone_function=lambda layer: layer.__class__.from_config({**layer.get_config(), "dtype": "float32"}))
    clone.set_weights(model.get_weights())
    return clone


def count_params(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.weights))


def model_table(model) -> list[dict]:
    """One row per layer: name, type, output shape, parameter count (a ``summary()`` as data)."""
    rows = []
    for layer in model.layers:
        shape = getattr(layer, "output", None)
        shape = tuple(shape.shape) if shape is not None and hasattr(shape, "shape") else None
        rows.append({"layer": layer.name, "type": type(layer).__name__,
                     "output_shape": str(shape).replace("None", "N") if shape else "",
                     "params": int(layer.count_params()) if layer.built else 0})
    return rows


def strip_augmentation(model):
    """The same network without its ``aug_*`` layers (weights shared), for export and serving.

    Augmentation layers are identity at inference, but their random ops would
    still be traced into a SavedModel/TFLite/ONNX graph. The graph is cloned with every
    other layer reused as it is (same weights) and each augmentation layer's call replaced
    by its input, so chains (the VGGs) and residual graphs alike lose them.
    """
    import keras

    def call(layer, *args, **kwargs):
        return args[0] if layer.name.startswith("aug_") else layer(*args, **kwargs)

    clone = keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call)
    return keras.Model(clone.inputs, clone.outputs, name=f"{model.name}_inference")


def forward_macs(model) -> int:
    """Multiply-accumulates of one forward pass of one image, from the layers' shapes.

    Convolutions count out_h·out_w·out_c·k_h·k_w·in_c/groups, dense layers in·out; batch
    norm, activations, pooling and additions are a few operations per value and left out
    (under 1% for these nets). The count depends on the architecture only, not on the
    machine, which is why the project budgets training in FLOPs.
    """
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            out = layer.output.shape
            kh, kw = layer.kernel_size
            in_c = layer.input.shape[-1]
            total += int(np.prod(out[1:])) * kh * kw * in_c // layer.groups
        elif isinstance(layer, keras.layers.Dense):
            total += int(np.prod(layer.input.shape[1:])) * layer.units
    return int(total)


def training_flops(model, images_seen: int) -> float:
    """Training FLOPs: 2 FLOPs per multiply-accumulate, and a backward pass that costs twice
    the forward one (gradients for activations and for weights), so 6 · MACs per image seen."""
    return 6.0 * forward_macs(model) * int(images_seen)


def describe_model(model, name: str | None = None) -> dict:
    """Name, parameter count, forward multiply-adds per image and layer table of a model, as
    stored in ``model_table.json``."""
    return {"model": name or model.name, "n_params": count_params(model),
            "forward_macs": forward_macs(model), "layers": model_table(model)}


class OnnxModel:
    """An exported ONNX graph (``fer_helpers.export``) behind the part of the Keras model
    interface that prediction uses: ``predict``, ``input_shape``, ``output_shape``, ``name``.

    So ``load_model`` + ``predict_proba`` (and the ``predict``/``evaluate`` commands) run an
    ONNX file, e.g. the statically quantised int8 export, which is several times faster than
    Keras on a CPU without AMX. It has no layers: no augmentation to strip, nothing to
    explain with Grad-CAM.
    """

    layers = ()

    def __init__(self, path):
        from .artifacts import require

        require(["onnxruntime"], f"{path}: an ONNX model")
        import onnxruntime as ort

        self.path = Path(path)
        try:
            self.session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # ONNX Runtime reports bad files as several exception types
            raise ModelError(f"{self.path}: cannot load ONNX model ({exc})") from exc
        self.name = self.path.stem
        inp, out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self.input_name = inp.name
        # Dynamic dimensions come back as names (e.g. "N"); Keras says None.
        self.input_shape = tuple(d if isinstance(d, int) else None for d in inp.shape)
        self.output_shape = tuple(d if isinstance(d, int) else None for d in out.shape)

    def predict(self, x: np.ndarray, batch_size: int = 256, verbose: int = 0) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        batches = [self.session.run(None, {self.input_name: x[i:i + batch_size]})[0]
                   for i in range(0, len(x), batch_size)]
        return np.concatenate(batches) if batches else np.zeros((0, self.output_shape[-1]), np.float32)


def _check_shapes(model, path: Path, n_classes: int | None):
    if tuple(model.input_shape[1:]) != INPUT_SHAPE:
        raise ModelError(f"{path}: model expects input {model.input_shape[1:]}, not 48×48×1")
    if n_classes is not None and model.output_shape[-1] != n_classes:
        raise ModelError(f"{path}: model has {model.output_shape[-1]} outputs but the data has "
                         f"{n_classes} classes")
    return model


def load_model(path, n_classes: int | None = None):
    """Load a ``.keras`` model in Keras safe mode (no code from the file is executed),
    or an ``.onnx`` export as an ``OnnxModel``.

    Raises ModelError naming the file when it is missing, truncated, contains
    unsafe layers (e.g. ``Lambda``), or does not take 48×48×1 inputs or give
    ``n_classes`` outputs (when given).
    """
    import keras

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    if path.suffix.lower() == ".onnx":
        return _check_shapes(OnnxModel(path), path, n_classes)
    from . import layers as _registered  # noqa: F401  (the package's own layers, e.g. RandomErasing)

    if not zipfile.is_zipfile(path):
        raise ModelError(f"{path}: not a valid .keras archive (truncated or wrong format)")
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except ValueError as exc:
        if "safe_mode" in str(exc) or "Lambda" in str(exc):
            raise ModelError(f"{path}: refused in safe mode — the file contains code "
                             f"(e.g. a Lambda layer) that would run on load: {exc}") from exc
        raise ModelError(f"{path}: cannot load model ({exc})") from exc
    except Exception as exc:  # zip/HDF5 errors of a damaged file come in many types
        raise ModelError(f"{path}: cannot load model, the file looks damaged ({exc})") from exc
    return _check_shapes(model, path, n_classes)


#: Inference copies without augmentation layers, memoised per model object (weakly held).
_SERVING = weakref.WeakKeyDictionary()


def serving_model(model):
    """``model`` without its augmentation layers (same weights), built once per model.

    Keras' random augmentation layers still run their random ops at inference
    before discarding them; skipping them gives identical outputs slightly
    faster (about 6% on 2 CPU cores for the reference model). Models that are not
    a simple chain are used as is.
    """
    if model not in _SERVING:
        has_aug = any(layer.name.startswith("aug_") for layer in model.layers)
        try:
            _SERVING[model] = strip_augmentation(model) if has_aug else model
        except ValueError:
            _SERVING[model] = model
    return _SERVING[model]


def images_per_second(predict, images: np.ndarray, repeats: int = 3) -> float:
    """Best-of-``repeats`` throughput of ``predict(images)`` after one warm-up call (tracing)."""
    predict(images[:64])
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        predict(images)
        best = min(best, time.perf_counter() - t)
    return len(images) / best


def check_images(images) -> np.ndarray:
    """The input contract of every model here: N×48×48 (or N×48×48×1) gray pixels on the 0–255
    scale, as ``load_dataset`` returns them (uint8, or any integer or float type holding values
    in 0..255). Returns them as float32 N×48×48×1.

    Anything else is refused with the reason, because a model given pixels on another scale
    answers confidently and wrongly: images scaled to [0, 1] (``preprocessing.normalize``'s
    output) all look black to it. Refused: booleans, NaN or infinite values, values below 0 or
    above 255 (e.g. 16-bit images), and float images whose every value lies in [0, 1].
    """
    x = np.asarray(images)
    if x.dtype == bool or not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise ValueError(f"images must hold numbers on the 0–255 pixel scale, got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[1:] != INPUT_SHAPE:
        raise ValueError(f"images must be N×48×48 (or N×48×48×1), got shape {np.shape(images)}")
    if x.size:
        if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
            raise ValueError(f"images contain {int((~np.isfinite(x)).sum())} NaN or infinite value(s)")
        low, high = x.min(), x.max()
        if low < 0 or high > 255:
            raise ValueError(f"pixel values must lie in 0..255, got {low}..{high} "
                             "(16-bit images: scale to 8 bits first)")
        if np.issubdtype(x.dtype, np.floating) and high <= 1.0 and high > 0:
            raise ValueError("float images with every value in [0, 1] look scaled to [0, 1]; the models "
                             "take 0–255 pixels (multiply by 255)")
    return x.astype(np.float32)


def predict_proba(model, images: np.ndarray, batch_size: int = 512, flip_tta: bool = False) -> np.ndarray:
    """Class probabilities (N×n_classes, ``CLASSES`` order) for N×48×48 uint8 images
    (``check_images`` says what else is accepted and what is refused).

    ``flip_tta`` averages with the horizontally flipped image (test-time
    augmentation); it is reported separately from the plain number.
    """
    x = check_images(images)
    if len(x) == 0:
        return np.zeros((0, model.output_shape[-1]), dtype=np.float32)
    net = serving_model(model)
    probs = net.predict(x, batch_size=batch_size, verbose=0)
    if flip_tta:
        probs = 0.5 * (probs + net.predict(x[:, :, ::-1], batch_size=batch_size, verbose=0))
    return np.asarray(probs, dtype=np.float32)
