"""Command line: ``python -m fer_helpers run ...`` (no arguments: the demo run)."""
from __future__ import annotations

import argparse
import sys

from .runner import PROJECT_ROOT, RunError, run_from_args

DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "demo.yaml"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fer_helpers",
                                 description="FER study: run every notebook and rebuild figures/reports.")
    sub = ap.add_subparsers(dest="command")
    r = sub.add_parser("run", help="execute the numbered notebooks with papermill")
    r.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML config (default: configs/demo.yaml)")
    r.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="override a notebook parameter (repeatable)")
    r.add_argument("--run-name", help="run folder name under runs/ (default: from the config)")
    r.add_argument("--notebooks", help="comma-separated notebook numbers, e.g. 01,02")
    r.add_argument("--no-publish", action="store_true", help="do not copy into figures/ and reports/")
    args = ap.parse_args(argv if argv is not None else (sys.argv[1:] or ["run"]))
    if args.command != "run":
        ap.print_help()
        return 2
    try:
        run_from_args(args.config, args.param, args.run_name,
                      args.notebooks.split(",") if args.notebooks else None, not args.no_publish)
    except RunError as exc:
        print(f"HATA / ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
