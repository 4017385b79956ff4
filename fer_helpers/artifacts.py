"""Files in a run folder: atomic JSON/CSV writes, clear errors on reads, run metadata.

Stages talk only through a run folder::

    runs/<name>/
        results/   JSON/CSV metrics, histories, metadata, predictions (.npz)
        model/     best.keras (+ a resume backup while training)
        figures/   PNG/SVG figures of this run
        reports/   the report, slides and executed notebooks of this run

This module sits at the bottom of the package (it imports nothing from it).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path

import numpy as np


class ArtifactError(FileNotFoundError):
    """Raised when a stage's input artifact is missing or unreadable."""


#: A run's record of what its report marked missing (``{"missing": {name: reason}}``), written by
#: the report and named in the terminal by the run command.
REPORT_MISSING = "report_missing.json"


#: Optional libraries and the pyproject extra that installs each (``pip install 'fer_helpers[report]'``).
OPTIONAL = {"nbconvert": "report", "latex2mathml": "report", "weasyprint": "report",
            "tf2onnx": "export", "onnx": "export", "onnxruntime": "export", "sympy": "export"}


class MissingDependency(ImportError):
    """An optional library a command needs is not installed; the message says which extra brings it."""


def require(modules, purpose: str) -> None:
    """Raise MissingDependency, naming the extra to install, if any of ``modules`` is missing.

    Checked before the work starts, so a missing PDF renderer does not surface after an hour
    of training as an ImportError deep inside notebook 07.
    """
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        extras = ",".join(sorted({OPTIONAL.get(m, m) for m in missing}))
        raise MissingDependency(f"{purpose} needs {', '.join(missing)}, which is not installed: "
                                f"pip install 'fer_helpers[{extras}]' (or pip install -e '.[{extras}]' in a checkout)")


def run_paths(run_dir) -> dict[str, Path]:
    """The standard sub-folders of a run folder (created if missing)."""
    root = Path(run_dir)
    paths = {"root": root, "results": root / "results", "model": root / "model",
             "figures": root / "figures", "reports": root / "reports"}
    for p in paths.values():
        p.mkdir(parents=True, exist_ok=True)
    return paths


def _json_default(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in JSON")


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write to a temporary file beside ``path`` and rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)          # mkstemp creates 0600; artifacts are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path, obj) -> Path:
    text = json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default)
    return atomic_write_bytes(path, text.encode("utf-8"))


def read_json(path, what: str = "artifact") -> dict:
    """Read a JSON artifact; a missing or damaged file raises ArtifactError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: {what} not found — run the notebook that writes it first")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}: {what} is not valid JSON ({exc})") from exc


def save_arrays(path, **arrays) -> Path:
    """Save arrays as .npz atomically (plain dtypes only, so loading needs no pickle)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def load_arrays(path, what: str = "arrays") -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: {what} not found — run the notebook that writes it first")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: {what} cannot be read ({exc})") from exc


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def git_commit(cwd=None) -> str | None:
    """The current git commit of the project, or None outside a checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd or Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def library_versions() -> dict[str, str]:
    """Versions of the libraries a result depends on."""
    import importlib.metadata as md

    names = ["numpy", "pandas", "scikit-learn", "matplotlib", "seaborn", "keras",
             "tensorflow-cpu", "tensorflow", "jax", "jaxlib", "torch", "papermill", "weasyprint"]
    out = {"python": platform.python_version()}
    for n in names:
        try:
            out[n] = md.version(n)
        except md.PackageNotFoundError:
            pass
    return out


#: CPU instruction sets that decide how fast this project's models run: ``NATIVE_BF16_FLAGS``
#: execute bfloat16 natively (without them TensorFlow emulates it, and the bfloat16 reference
#: ran about 12 times slower, 217 vs 2,705 images/s); VNNI speeds up int8.
SPEED_CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_features(cpuinfo: str | Path = "/proc/cpuinfo") -> dict:
    """The CPU's model name and which of ``SPEED_CPU_FLAGS`` it has (Linux; ``None`` elsewhere).

    Two machines that both have "2 CPU cores" can differ by an order of magnitude in
    bfloat16 speed, so every timing records these next to the core count.
    """
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return {"cpu_model": platform.processor() or None, "cpu_flags": None}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    return {"cpu_model": fields.get("model name"), "cpu_flags": [f for f in SPEED_CPU_FLAGS if f in flags]}


def native_bfloat16(machine: dict) -> list[str]:
    """Which of ``NATIVE_BF16_FLAGS`` a recorded ``machine_info()`` lists (empty: emulated or not recorded)."""
    return [f for f in machine.get("cpu_flags") or () if f in NATIVE_BF16_FLAGS]


def machine_info() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            **cpu_features(),
            "cpu_count": os.cpu_count(),
            # Cores this process may run on (taskset) and TF thread limits: two runs that
            # share the machine are told apart from one run that has it to itself.
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "thread_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                                                      "TF_NUM_INTEROP_THREADS") if k in os.environ}}


def accelerator_devices() -> list[str]:
    """The accelerators the Keras backend trains on (e.g. ``["cuda:0 <GPU name>"]``), [] on a CPU.

    Asks the backend already in use only, so that it never starts a second framework.
    """
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            return [f"{d.platform}:{d.id} {getattr(d, 'device_kind', '')}".strip()
                    for d in jax.devices() if d.platform != "cpu"]
        if backend == "tensorflow":
            import tensorflow as tf

            return [d.name for d in tf.config.list_physical_devices("GPU")]
        if backend == "torch":
            import torch

            return [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
    except Exception:  # a broken driver must not stop a run from being recorded
        return []
    return []


def data_fingerprint(images: np.ndarray, labels: np.ndarray) -> dict:
    """SHA-256 over the exact pixels and labels used, plus the image count."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(images).tobytes())
    h.update(np.ascontiguousarray(labels).astype(np.int64).tobytes())
    return {"sha256": h.hexdigest(), "n_images": int(len(labels))}
