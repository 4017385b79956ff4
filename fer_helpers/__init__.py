"""fer_helpers: the logic behind the numbered FER notebooks.

Modules stack one way: labels → data (demo) → preprocessing → models →
training → evaluation / gradcam / errors → figures → report; ``runner`` and
the command line sit on top. Heavy modules (TensorFlow) load lazily, so
``import fer_helpers`` stays fast for data-only work.
"""
from .data import DataError, Dataset, load_dataset
from .labels import CLASSES, CLASSES_7, display_names

__version__ = "0.1.0"

_LAZY = {
    "build_model": "models", "load_model": "models", "predict_proba": "models",
    "model_table": "models", "MODEL_NAMES": "models",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'fer_helpers' has no attribute {name!r}")


__all__ = ["CLASSES", "CLASSES_7", "DataError", "Dataset", "display_names", "load_dataset",
           *_LAZY]
