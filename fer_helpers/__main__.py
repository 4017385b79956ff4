"""Command line: ``python -m fer_helpers {run,predict,evaluate,export} ...``.

With no arguments it runs the demo configuration (every notebook, on the
built-in demo data).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

from .runner import PROJECT_ROOT, RunError, run_from_args

DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "demo.yaml"
DEFAULT_MODEL = PROJECT_ROOT / "models" / "reference.keras"
FLOAT32_HELP = ("compute in float32 instead of the model's bfloat16: about 3x faster on a CPU without AMX or "
                "AVX512-BF16; outputs differ by bfloat16 rounding only")


def _model(path: str | None, float32: bool = False):
    from .models import load_model, to_float32

    path = Path(path) if path else DEFAULT_MODEL
    if not path.is_file() and not path == DEFAULT_MODEL:
        raise FileNotFoundError(f"{path}: model file not found")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the default model is not here (an installed copy of fer_helpers "
                                "carries no models/); pass --model FILE")
    model = load_model(path)
    # A CPU without native bfloat16 (no AMX / AVX512-BF16) emulates it slowly; the float32 copy
    # has the same weights and differs by bfloat16 rounding only.
    return to_float32(model) if float32 else model


def cmd_run(args) -> int:
    if not (PROJECT_ROOT / "notebooks").is_dir():
        raise RunError(f"the run command executes the project's notebooks, and {PROJECT_ROOT} has none: this is "
                       "an installed copy of fer_helpers. Run it from a checkout of the project "
                       "(git clone …; pip install -e .); predict, evaluate and export work from any install "
                       "given --model")
    run_from_args(args.config, args.param, args.run_name,
                  args.notebooks.split(",") if args.notebooks else None, not args.no_publish)
    return 0


def cmd_predict(args) -> int:
    from .inference import annotate, check_output_folder, predict_paths

    if args.annotate:
        check_output_folder(args.annotate)
    rows = predict_paths(args.paths, _model(args.model, args.float32), language=args.language,
                         progress=not args.quiet, detector=None if args.no_detect else args.detector)
    dicts = [r.as_dict() for r in rows]
    if args.json:
        print(json.dumps(dicts, ensure_ascii=False, indent=1))
    elif args.csv:
        names = list(next((d["probabilities"] for d in dicts if d["probabilities"]), {}))
        w = csv.writer(sys.stdout)
        w.writerow(["file", "face", "box", "label", "confidence", "status", *names])
        for d in dicts:
            w.writerow([d["file"], d["face"], d["box"] or "", d["label"] or "", d["confidence"] or "",
                        d["status"], *[d["probabilities"].get(n, "") for n in names]])
    else:
        for r in rows:
            what = f"{r.label} ({r.confidence:.1%})" if r.label else "—"
            print(f"{r.file}\tyüz/face {r.face}\t{what}\t{r.status}")
    if args.annotate:
        for p in annotate(rows, args.annotate):
            print(f"işaretlendi / annotated: {p}", file=sys.stderr)
    failed = [r for r in rows if r.status.startswith("error")]
    if failed:
        print(f"{len(failed)} girdi okunamadı / input(s) failed", file=sys.stderr)
    return 1 if failed or not rows else 0


def cmd_evaluate(args) -> int:
    from .artifacts import write_json
    from .data import load_dataset
    from .inference import check_output_folder, evaluate_dataset

    out = check_output_folder(args.out)
    if args.n_boot < 1:
        raise ValueError(f"--n-boot must be at least 1, got {args.n_boot}")
    data = load_dataset(args.data, label_mode=args.label_mode)
    result = evaluate_dataset(_model(args.model, args.float32), data, split=None if args.split == "all" else args.split,
                              n_boot=args.n_boot)
    write_json(out / "evaluation_external.json", result)
    m = result["metrics"]
    print(m["text_report"])
    print(f"doğruluk/accuracy {m['accuracy']:.4f} · makro-F1 {m['macro_f1']:.4f} · n={result['n']} · "
          f"ortak sınıflar/shared classes: {', '.join(result['shared_classes'])}")
    if not args.no_figures:
        from .figures import confusion_matrix_plot, save_figure

        save_figure(confusion_matrix_plot(m["confusion_matrix"], result["shared_classes"], True, args.language,
                                          title=f"Karışıklık matrisi — {Path(args.data).name}"),
                    "karisiklik_harici", out)
    print(f"yazıldı / written: {out / 'evaluation_external.json'}")
    return 0


def cmd_export(args) -> int:
    from .artifacts import OPTIONAL, require, write_json
    from .export import export_all
    from .inference import check_output_folder

    require([m for m, extra in OPTIONAL.items() if extra == "export"], "the export command")
    check_output_folder(args.out)
    formats = args.formats.split(",")
    calibration = None
    if "onnx_int8" in formats:
        if not args.calibration_data:
            raise ValueError("onnx_int8 calibrates its int8 ranges on training images: pass --calibration-data "
                             "DIR (or set FER_DATA_DIR), or leave onnx_int8 out of --formats")
        from .data import load_dataset
        from .export import calibration_sample

        calibration = calibration_sample(load_dataset(args.calibration_data).get_split("train").images)
    summary = export_all(_model(args.model), args.out, formats=formats, calibration_images=calibration)
    write_json(Path(args.out) / "export_summary.json", summary)
    print(json.dumps(summary, indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m fer_helpers",
                                 description="FER study: run the notebooks, predict on photos, evaluate, export.")
    sub = ap.add_subparsers(dest="command")
    r = sub.add_parser("run", help="execute the numbered notebooks with papermill")
    r.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML config (default: configs/demo.yaml)")
    r.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="override a notebook parameter (repeatable)")
    r.add_argument("--run-name", help="run folder name under runs/ (default: from the config)")
    r.add_argument("--notebooks", help="comma-separated notebook numbers, e.g. 01,02")
    r.add_argument("--no-publish", action="store_true", help="do not copy into figures/ and reports/")
    r.set_defaults(func=cmd_run)
    p = sub.add_parser("predict", help="detect faces in photos and predict their expression")
    p.add_argument("paths", nargs="+", help="image files or folders")
    p.add_argument("--model", help="a .keras model (default: models/reference.keras)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--csv", action="store_true")
    p.add_argument("--annotate", metavar="DIR", help="write copies with boxes and labels")
    p.add_argument("--language", default="tr", choices=["tr", "en"])
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--float32", action="store_true", help=FLOAT32_HELP)
    p.add_argument("--detector", default="mtcnn", choices=["mtcnn", "haar"],
                   help="face detector: MTCNN (default; finds more faces) or OpenCV's Haar cascade (lighter)")
    p.add_argument("--no-detect", action="store_true",
                   help="every image is one face, already cropped (any size; resized to 48x48)")
    p.set_defaults(func=cmd_predict)
    e = sub.add_parser("evaluate", help="evaluate a model on another data set (any supported layout)")
    e.add_argument("--data", required=True)
    e.add_argument("--model")
    e.add_argument("--out", default="runs/evaluate")
    e.add_argument("--split", default="test", choices=["train", "val", "test", "all"])
    e.add_argument("--label-mode", default="plurality")
    e.add_argument("--n-boot", type=int, default=1000)
    e.add_argument("--language", default="tr", choices=["tr", "en"])
    e.add_argument("--no-figures", action="store_true")
    e.add_argument("--float32", action="store_true", help=FLOAT32_HELP)
    e.set_defaults(func=cmd_evaluate)
    x = sub.add_parser("export", help="export to TFLite (float, int8) and ONNX (float, int8) with a parity check")
    x.add_argument("--model")
    x.add_argument("--out", default="runs/export")
    x.add_argument("--formats", default="tflite,tflite_int8,onnx",
                   help="comma-separated, from tflite, tflite_int8, onnx, onnx_int8")
    x.add_argument("--calibration-data", default=os.environ.get("FER_DATA_DIR"),
                   help="data set whose training split (512 random images) calibrates onnx_int8 "
                        "(default $FER_DATA_DIR)")
    x.set_defaults(func=cmd_export)
    return ap


def main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv if argv is not None else (sys.argv[1:] or ["run"]))
    if not getattr(args, "func", None):
        ap.print_help()
        return 2
    try:
        return args.func(args)
    except (RunError, FileNotFoundError, ValueError, ImportError) as exc:
        print(f"HATA / ERROR: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
