"""The run command: every numbered notebook, in order, through papermill.

``python -m fer_helpers run [--config configs/demo.yaml] [-p name=value ...]``

* Parameters come from a YAML config and ``-p`` overrides; a name that no
  notebook declares, or a value whose type does not match the notebook's
  default, is refused before anything runs (papermill itself only warns).
* Notebooks run in the project's own interpreter through a kernelspec the
  runner writes into the run folder, so no kernel has to be installed by hand
  (papermill's classic ``NoSuchKernel`` trap) and ``fer_helpers`` imports.
* Everything is written into ``runs/<run_name>/``; only when all notebooks
  succeeded are its figures and reports copied, file by file and atomically,
  to the top-level ``figures/`` and ``reports/``.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .artifacts import (
    REPORT_MISSING,
    atomic_write_bytes,
    git_commit,
    library_versions,
    machine_info,
    now_iso,
    read_json,
    require,
    run_paths,
    write_json,
)
from .data import DEMO_PATH, DataError, resolve_data_dir
from .demo import DEMO_BANNER

PROJECT_ROOT = Path(__file__).resolve().parents[1]
KERNEL_NAME = "fer-helpers-python"


class RunError(RuntimeError):
    """A notebook failed or the run was configured wrongly."""


@dataclass
class RunSpec:
    params: dict = field(default_factory=dict)
    run_name: str = "demo"
    notebooks: list[str] | None = None      # e.g. ["01", "02"]; None = all
    runs_dir: Path = PROJECT_ROOT / "runs"
    notebooks_dir: Path = PROJECT_ROOT / "notebooks"
    figures_dir: Path = PROJECT_ROOT / "figures"
    reports_dir: Path = PROJECT_ROOT / "reports"
    publish: bool = True


def load_config(path) -> dict:
    """Read a YAML run config: ``run_name``, optional ``notebooks``, and ``params``."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: config file not found")
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
    except UnicodeDecodeError as exc:
        raise RunError(f"{path}: not a text file (a YAML config is UTF-8 text; {exc.reason} at byte "
                       f"{exc.start})") from exc
    except yaml.YAMLError as exc:
        raise RunError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(cfg, dict):
        raise RunError(f"{path}: a config is a mapping with run_name, notebooks, params; "
                       f"got a {type(cfg).__name__}")
    unknown = set(cfg) - {"run_name", "notebooks", "params"}
    if unknown:
        raise RunError(f"{path}: unknown top-level key(s) {sorted(unknown)}; "
                       "expected run_name, notebooks, params")
    if not isinstance(cfg.get("params") or {}, dict):
        raise RunError(f"{path}: 'params' must be a mapping of name: value, got a {type(cfg['params']).__name__}")
    notebooks = cfg.get("notebooks")
    if notebooks is not None and not (isinstance(notebooks, list) and notebooks):
        raise RunError(f"{path}: 'notebooks' must be a list of notebook numbers, e.g. [\"01\", \"02\"]; "
                       f"got {notebooks!r}")
    return cfg


def parse_overrides(items: list[str]) -> dict:
    """``["epochs=3", "data_dir=/x"]`` → typed dict (values parsed as YAML scalars)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise RunError(f"parameter override {item!r} must look like name=value")
        k, v = item.split("=", 1)
        value = yaml.safe_load(v) if v.strip() else ""
        if isinstance(value, str):
            try:
                value = float(value)   # YAML 1.1 reads "1e-3" as a string
            except ValueError:
                pass
        out[k.strip()] = value
    return out


def discover_notebooks(notebooks_dir: Path, only: list[str] | None = None) -> list[Path]:
    books = sorted(p for p in Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb"))
    if only:
        wanted = {str(o).strip().zfill(2) for o in only}
        unknown = sorted(w for w in wanted if w not in {b.name[:2] for b in books})
        if unknown:
            raise RunError(f"unknown notebook number(s) {unknown}; the notebooks are "
                           f"{', '.join(b.name[:2] for b in books)}")
        books = [b for b in books if b.name[:2] in wanted]
    if not books:
        raise RunError(f"{notebooks_dir}: no numbered notebooks found (selection: {only})")
    return books


def notebook_parameters(path: Path) -> dict[str, object]:
    """Names and default values declared in a notebook's ``parameters`` cell."""
    import papermill as pm

    declared = pm.inspect_notebook(str(path))
    defaults = {}
    for name, info in declared.items():
        try:
            defaults[name] = yaml.safe_load(info["default"])
        except yaml.YAMLError:
            defaults[name] = info["default"]
    return defaults


def _type_ok(value, default) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def check_parameters(params: dict, declared: dict[Path, dict]) -> None:
    """Refuse unknown names and values of the wrong type, naming the notebooks involved."""
    known: dict[str, tuple[Path, object]] = {}
    for nb, names in declared.items():
        for name, default in names.items():
            known.setdefault(name, (nb, default))
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise RunError(f"unknown parameter(s) {unknown}; the notebooks declare: {sorted(known)}")
    for name, value in params.items():
        nb, default = known[name]
        if not _type_ok(value, default):
            raise RunError(f"parameter {name!r} must be {type(default).__name__} "
                           f"(as in {nb.name}: {default!r}), got {type(value).__name__} {value!r}")


def check_pretrained_model(path: str, name: str = "pretrained_model") -> str:
    """A given model (parameter ``name``: ``pretrained_model`` or ``compare_model``) as an absolute
    path (relative ones are read from where the command runs, not from the notebooks' folder). It
    must be a ``.keras`` file that exists: the notebooks describe, explain (Grad-CAM) and release
    Keras models. Checked before the run folder is touched."""
    if Path(path).suffix.lower() != ".keras":
        raise RunError(f"{path}: {name} must be a .keras file; an exported .onnx or .tflite "
                       "model serves the predict/evaluate commands, not the notebooks")
    if not Path(path).is_file():
        raise RunError(f"{path}: {name} file not found")
    return str(Path(path).resolve())


def ensure_kernelspec(run_dir: Path) -> Path:
    """Write a kernelspec for *this* interpreter into the run folder and expose it."""
    kdir = run_dir / ".jupyter" / "kernels" / KERNEL_NAME
    kdir.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                     "--IPKernelApp.log_level=ERROR"],
            "display_name": "Python (fer_helpers)", "language": "python",
            "env": {"PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]),
                    # TensorFlow's C++ logs only (two start-up lines get through anyway: TF_STARTUP_NOISE);
                    # Python errors still reach the notebook.
                    "MPLBACKEND": "Agg", "TF_CPP_MIN_LOG_LEVEL": "3",
                    # Training writes a progress line per epoch to the terminal (training.make_progress_line).
                    "FER_PROGRESS": "1",
                    # A batch run: interactive widgets are built but not driven (explorer.batch_run).
                    "FER_BATCH": "1"}}
    (kdir / "kernel.json").write_text(json.dumps(spec, indent=1))
    jp = str(run_dir / ".jupyter")
    os.environ["JUPYTER_PATH"] = os.pathsep.join([jp, *filter(None, [os.environ.get("JUPYTER_PATH")])])
    return kdir


def _publish(src: Path, dst: Path, prune: bool = True) -> int:
    """Copy every file of ``src`` into ``dst`` (each replaced atomically); with ``prune``
    (a run of every notebook) drop the files that run no longer made. A partial run only adds
    and replaces: the figures and reports of the notebooks it did not run stay published."""
    dst.mkdir(parents=True, exist_ok=True)
    new = {p.relative_to(src) for p in src.rglob("*") if p.is_file()}
    for rel in sorted(new):
        atomic_write_bytes(dst / rel, (src / rel).read_bytes())
    if prune:
        for old in dst.rglob("*"):
            if old.is_file() and old.name != ".gitkeep" and old.relative_to(dst) not in new:
                old.unlink()
    return len(new)


#: TensorFlow's start-up lines that TF_CPP_MIN_LOG_LEVEL no longer silences (tensorflow/tensorflow#100442):
#: absl's notice and oneDNN's "custom operations are on". Only these two lines are matched.
TF_STARTUP_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|I\d{4} [\d:.]+ +\d+ port\.cc:\d+\] oneDNN custom operations are on\. .*")


def drop_startup_noise(nb):
    """``nb`` (a notebook node, changed in place and returned) without TensorFlow's start-up
    lines in its stderr outputs.

    An output that held nothing else disappears; every other line, stderr included, stays.
    """
    for cell in nb.cells:
        outputs = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                lines = out["text"].splitlines(keepends=True)
                out["text"] = "".join(line for line in lines if not TF_STARTUP_NOISE.fullmatch(line.rstrip("\n")))
                if not out["text"]:
                    continue
            outputs.append(out)
        if "outputs" in cell:
            cell["outputs"] = outputs
    return nb


_DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$", re.DOTALL)
_INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\s)([^$\n]+?)(?<!\s)\$(?!\$)")
_EXTERNAL_SCRIPT = re.compile(r"<script[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>\s*</script>\s*")
_MATHJAX_CONFIG = re.compile(r"<script type=\"text/x-mathjax-config\">.*?</script>\s*", re.DOTALL)


def _mathml(latex: str, display: bool) -> str:
    from latex2mathml.converter import convert

    try:
        return convert(latex.strip(), display="block" if display else "inline")
    except Exception:   # a formula the converter does not know stays readable as source
        return f"<code>{latex}</code>"


def offline_math(nb):
    """``nb`` (changed in place and returned) with the LaTeX of its Markdown cells turned into
    MathML, which browsers render without MathJax, i.e. without a network."""
    for cell in nb.cells:
        if cell.cell_type == "markdown" and "$" in cell.source:
            text = _DISPLAY_MATH.sub(lambda m: _mathml(m.group(1), True), cell.source)
            cell.source = _INLINE_MATH.sub(lambda m: _mathml(m.group(1), False), text)
    return nb


def export_html(executed: list[Path], out_dir: Path) -> None:
    """Each executed notebook as standalone HTML (nbconvert), for the committee, that works
    offline: formulas as MathML, no script or style loaded from the internet.

    The HTML leaves out TensorFlow's start-up lines (``drop_startup_noise``); the executed
    ``.ipynb`` files keep every output as it was.
    """
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter()
    out_dir.mkdir(parents=True, exist_ok=True)
    for nb in executed:
        node = offline_math(drop_startup_noise(nbformat.read(nb, as_version=4)))
        body, _ = exporter.from_notebook_node(node)
        # require.js (for interactive widgets) and MathJax come from a CDN; neither is needed now.
        body = _MATHJAX_CONFIG.sub("", _EXTERNAL_SCRIPT.sub("", body))
        atomic_write_bytes(out_dir / f"{nb.stem}.html", body.encode("utf-8"))


def _report_missing(results: Path) -> list[str]:
    """What the last report built in this run marked missing (notebook 07's record), as reasons."""
    path = results / REPORT_MISSING
    return list(read_json(path, "report's missing sections").get("missing", {}).values()) if path.is_file() else []


def run(spec: RunSpec, log=print) -> Path:
    """Execute the notebooks of ``spec``; return the run folder. Raises RunError on failure."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    if not spec.run_name or Path(spec.run_name).name != spec.run_name or spec.run_name in (".", ".."):
        raise RunError(f"run name {spec.run_name!r} must be a plain folder name (no path separators)")
    books = discover_notebooks(spec.notebooks_dir, spec.notebooks)
    # Every run exports HTML; a run with the report notebook also renders the PDF.
    require(["nbconvert", "latex2mathml"] + (["weasyprint"] if any("rapor" in b.stem for b in books) else []),
            "the run command (notebook HTML and the PDF report)")
    # Names are checked against every notebook, so one config serves any selection of them.
    declared = {nb: notebook_parameters(nb) for nb in discover_notebooks(spec.notebooks_dir)}
    params = dict(spec.params)
    check_parameters(params, declared)
    for name in ("pretrained_model", "compare_model"):
        if params.get(name):
            params[name] = check_pretrained_model(params[name], name)
    try:
        params["data_dir"] = resolve_data_dir(params.get("data_dir"))
    except DataError as exc:
        raise RunError(str(exc)) from exc
    run_dir = (spec.runs_dir / spec.run_name).resolve()
    paths = run_paths(run_dir)
    params["run_dir"] = str(run_dir)
    ensure_kernelspec(run_dir)
    is_demo = params["data_dir"] == DEMO_PATH
    if is_demo:
        log("=" * 72 + f"\n  {DEMO_BANNER}\n  (FER verisi yapılandırılmadı: FER_DATA_DIR veya -p data_dir=...)\n" + "=" * 72)
    log(f"Çalışma klasörü / run folder: {run_dir}")
    manifest = {"run_name": spec.run_name, "parameters": params, "notebooks": [b.name for b in books],
                "start_time": now_iso(), "git_commit": git_commit(PROJECT_ROOT),
                "versions": library_versions(), "machine": machine_info(), "is_demo": is_demo,
                "status": "running", "timings_s": {}}
    write_json(paths["results"] / "run.json", manifest)
    executed_dir = paths["reports"] / "executed"
    executed_dir.mkdir(parents=True, exist_ok=True)
    executed = []
    for i, nb in enumerate(books, start=1):
        nb_params = {k: v for k, v in params.items() if k in declared[nb]}
        out = executed_dir / nb.name
        log(f"[{i}/{len(books)}] {nb.name} ...")
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(str(nb), str(out), parameters=nb_params, kernel_name=KERNEL_NAME,
                                cwd=str(nb.parent), progress_bar=False, log_output=False)
        except KeyboardInterrupt:
            # Ctrl-C: the record says so, instead of "running" for ever.
            write_json(paths["results"] / "run.json", {**manifest, "status": f"interrupted in {nb.name}",
                                                       "end_time": now_iso()})
            raise
        except PapermillExecutionError as exc:
            write_json(paths["results"] / "run.json", {**manifest, "status": f"failed in {nb.name}",
                                                       "end_time": now_iso()})
            raise RunError(f"{nb.name}: cell {exc.cell_index} failed with {exc.ename}: {exc.evalue}\n"
                           f"(executed copy with the traceback: {out})") from exc
        executed.append(out)
        manifest["timings_s"][nb.name] = round(time.perf_counter() - t0, 2)
        log(f"[{i}/{len(books)}] {nb.name} bitti ({manifest['timings_s'][nb.name]:.1f} s)")
    export_html(executed, paths["reports"] / "notebooks")
    for reason in _report_missing(paths["results"]):
        log(f"UYARI/WARNING: raporda eksik bölüm / report section missing: {reason}")
    write_json(paths["results"] / "run.json", {**manifest, "status": "complete", "end_time": now_iso()})
    if spec.publish:
        every = len(books) == len(declared)
        n_fig = _publish(paths["figures"], spec.figures_dir, prune=every)
        n_rep = _publish(paths["reports"], spec.reports_dir, prune=every)
        log(f"Yayınlandı / published: {n_fig} file(s) → {spec.figures_dir}, {n_rep} → {spec.reports_dir}")
    if is_demo:
        log(DEMO_BANNER)
    return run_dir


def run_from_args(config: str | None, overrides: list[str], run_name: str | None = None,
                  notebooks: list[str] | None = None, publish: bool = True) -> Path:
    cfg = load_config(config) if config else {"run_name": "demo", "params": {}}
    params = {**(cfg.get("params") or {}), **parse_overrides(overrides)}
    spec = RunSpec(params=params, run_name=run_name or cfg.get("run_name", "demo"),
                   notebooks=notebooks or cfg.get("notebooks"), publish=publish)
    return run(spec)
