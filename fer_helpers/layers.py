"""Custom Keras layers of the package, registered so that saved models load in safe mode.

Importing this module imports Keras; ``fer_helpers.models.load_model`` imports it before
loading a ``.keras`` file, so a model that uses these layers loads without ``custom_objects``.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="fer_helpers")
class RandomErasing(keras.layers.Layer):
    """Random erasing (Zhong et al., 2020): with probability ``probability`` a random square of
    ``min_size``–``max_size`` pixels is replaced by uniform noise in [0, 1].

    Hiding part of the face makes the network use more than one cue (not the mouth alone
    for Happiness, say). Identity at inference, like Keras' own random layers. Written with
    ``keras.ops`` only, so it runs on every backend and inside a compiled training step.
    """

    def __init__(self, probability=0.5, min_size=8, max_size=20, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= probability <= 1:
            raise ValueError(f"probability must lie in [0, 1], got {probability}")
        if not 1 <= min_size <= max_size:
            raise ValueError(f"need 1 ≤ min_size ≤ max_size, got {min_size}, {max_size}")
        self.probability, self.min_size, self.max_size = float(probability), int(min_size), int(max_size)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        if not training or self.probability == 0:
            return inputs
        shape = ops.shape(inputs)
        h, w = shape[1], shape[2]
        u = keras.random.uniform((shape[0], 4), seed=self.seed_generator)
        size = ops.floor(self.min_size + u[:, 0] * (self.max_size - self.min_size + 1))
        # The square's top-left corner is drawn so that the square lies inside the image.
        top = ops.floor(u[:, 1] * (h - size + 1))[:, None, None]
        left = ops.floor(u[:, 2] * (w - size + 1))[:, None, None]
        size = size[:, None, None]
        rows = ops.cast(ops.arange(h), "float32")[None, :, None]
        cols = ops.cast(ops.arange(w), "float32")[None, None, :]
        inside = ((rows >= top) & (rows < top + size)) & ((cols >= left) & (cols < left + size))
        mask = ops.cast(inside, "float32") * ops.cast(u[:, 3] < self.probability, "float32")[:, None, None]
        mask = ops.cast(mask[..., None], inputs.dtype)
        noise = ops.cast(keras.random.uniform(shape, seed=self.seed_generator), inputs.dtype)
        return inputs * (1 - mask) + noise * mask

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "probability": self.probability, "min_size": self.min_size,
                "max_size": self.max_size, "seed": self.seed}


def _reflect(index, size: int):
    """Mirror integer pixel indices into [0, size): … c b a | a b c … c | c b a … (half-sample
    symmetric, SciPy's "reflect"), so shifted or rotated faces get mirrored borders, not flat bands."""
    index = ops.mod(index, 2 * size)
    return ops.where(index >= size, 2 * size - 1 - index, index)


@keras.saving.register_keras_serializable(package="fer_helpers")
class RandomAffine(keras.layers.Layer):
    """Random horizontal flip, rotation, scale and shift of a batch of images in one resampling.

    Each image gets its own transform: flip with probability 1/2, rotation within
    ±``rotation`` degrees, scale within 1 ± ``zoom``, shift within ±``shift`` of the image
    size; pixels are read back with bilinear interpolation and mirrored borders.

    Keras' RandomRotation, RandomZoom and RandomTranslation do the same one transform at a
    time; chained, under JAX on a GPU they can cost far more than the network's own step. Here the
    whole transform is one matrix per image and one gather of four neighbours per pixel,
    written with ``keras.ops`` only, so it runs on every backend inside the compiled step.
    """

    def __init__(self, rotation=15.0, zoom=0.15, shift=0.12, flip=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        for name, value, top in (("rotation", rotation, 180), ("zoom", zoom, 0.9), ("shift", shift, 1)):
            if not 0 <= value <= top:
                raise ValueError(f"{name} must lie in [0, {top}], got {value}")
        self.rotation, self.zoom, self.shift, self.flip = float(rotation), float(zoom), float(shift), bool(flip)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        if not training:
            return inputs
        shape = ops.shape(inputs)
        n, h, w, c = shape[0], inputs.shape[1], inputs.shape[2], inputs.shape[3]
        u = keras.random.uniform((n, 5), seed=self.seed_generator)
        angle = (2 * u[:, 0] - 1) * (self.rotation * np.pi / 180)
        scale = 1 + (2 * u[:, 1] - 1) * self.zoom
        dx = (2 * u[:, 2] - 1) * self.shift * w
        dy = (2 * u[:, 3] - 1) * self.shift * h
        mirror = ops.where(u[:, 4] < 0.5, -1.0, 1.0) if self.flip else ops.ones_like(scale)
        # Output pixel p (centred) reads input pixel R(-angle)·(p - d)/scale, mirrored in x.
        cos, sin = ops.cos(angle)[:, None], ops.sin(angle)[:, None]
        ys, xs = np.meshgrid(np.arange(h, dtype="float32") - (h - 1) / 2,
                             np.arange(w, dtype="float32") - (w - 1) / 2, indexing="ij")
        px = (ops.convert_to_tensor(xs.reshape(1, -1)) - dx[:, None]) / scale[:, None]
        py = (ops.convert_to_tensor(ys.reshape(1, -1)) - dy[:, None]) / scale[:, None]
        sx = (cos * px + sin * py) * mirror[:, None] + (w - 1) / 2
        sy = (-sin * px + cos * py) + (h - 1) / 2
        x0, y0 = ops.floor(sx), ops.floor(sy)
        fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
        x0, y0 = ops.cast(x0, "int32"), ops.cast(y0, "int32")
        flat = ops.reshape(inputs, (n, h * w, c))

        def read(yi, xi):
            index = _reflect(yi, h) * w + _reflect(xi, w)
            return ops.take_along_axis(flat, ops.expand_dims(index, -1), axis=1)

        top = read(y0, x0) * (1 - fx) + read(y0, x0 + 1) * fx
        bottom = read(y0 + 1, x0) * (1 - fx) + read(y0 + 1, x0 + 1) * fx
        out = top * (1 - fy) + bottom * fy
        return ops.reshape(ops.cast(out, inputs.dtype), (n, h, w, c))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rotation": self.rotation, "zoom": self.zoom, "shift": self.shift,
                "flip": self.flip, "seed": self.seed}


@keras.saving.register_keras_serializable(package="fer_helpers")
class RandomBrightnessContrast(keras.layers.Layer):
    """Random brightness shift (±``brightness``) and contrast factor (1 ± ``contrast``, about
    each image's mean) of images in [0, 1], clipped back to [0, 1]; identity at inference.

    Faces in FER2013 come from every kind of camera and light: the net should not read
    the expression off the exposure.
    """

    def __init__(self, brightness=0.2, contrast=0.3, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not (0 <= brightness <= 1 and 0 <= contrast <= 1):
            raise ValueError(f"brightness and contrast must lie in [0, 1], got {brightness}, {contrast}")
        self.brightness, self.contrast, self.seed = float(brightness), float(contrast), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        if not training:
            return inputs
        u = keras.random.uniform((ops.shape(inputs)[0], 1, 1, 2), seed=self.seed_generator)
        delta = ops.cast((2 * u[..., :1] - 1) * self.brightness, inputs.dtype)
        factor = ops.cast(1 + (2 * u[..., 1:] - 1) * self.contrast, inputs.dtype)
        mean = ops.mean(inputs, axis=(1, 2, 3), keepdims=True)
        return ops.clip((inputs - mean) * factor + mean + delta, 0.0, 1.0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "brightness": self.brightness, "contrast": self.contrast,
                "seed": self.seed}
