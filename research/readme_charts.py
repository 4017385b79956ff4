"""The README's two charts, drawn from committed result files only (no faces, no pixels).

    python -m research.readme_charts            # writes docs/img/dogruluk.svg and docs/img/sinif_duyarliligi.svg

- ``accuracy_rows``: accuracy on both held-out protocols of the starting study and the FER+ paper
  (the report's ``LITERATURE``), the baseline reproduced here, VGG-Orta, the released width-16 ResNet
  (both as the mean over their seeds, with the standard deviation) and a single human annotator.
- ``recall_rows``: per-class recall on P-seed of the reproduced baseline, VGG-Orta and the released
  model (seed means) and a single annotator — where the starting study's 0% on Contempt and Disgust went.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fer_helpers.figures import decimal_comma, outside_legend  # noqa: E402
from fer_helpers.labels import CLASSES, display_names  # noqa: E402
from fer_helpers.report import LITERATURE  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
OUT = ROOT / "docs" / "img"
PROTOCOLS = ("P-seed", "P-FER+")
#: The seed summaries drawn as mean ± std: the previous released model, then the released one.
SEED_SUMMARIES = {"VGG-Orta (3 tohum)": "seeds_summary.json",
                  "Yayımlanan model (ResNet-18, 3 tohum)": "seeds_summary_resnet_w16.json"}


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _baseline(results: Path) -> dict:
    with (results / "ablation.csv").open(encoding="utf-8") as f:
        return next(r for r in csv.DictReader(f) if r["run"] == "baseline_e60_s42")


def accuracy_rows(results: Path = RESULTS) -> list[dict]:
    """``{"label", "P-seed", "P-FER+", "std"}`` per model (accuracy as a share; None where not measured)."""
    rows = [{"label": "Başlangıç çalışması", "P-seed": LITERATURE[0]["accuracy"], "P-FER+": None}]
    for r in LITERATURE[1:]:
        rows.append({"label": r["work"].replace("FER+ VGG13, ", "FER+ VGG13 (") + ")", "P-seed": None, "P-FER+": r["accuracy"]})
    base = _baseline(results)
    rows.append({"label": "Temel model, yeniden üretim", "P-seed": float(base["P_seed_accuracy"]),
                 "P-FER+": float(base["P_FERplus_accuracy"])})
    for label, summary in SEED_SUMMARIES.items():
        seeds = _json(results / summary)["protocols"]
        rows.append({"label": label, **{p: seeds[p]["accuracy"]["mean"] for p in PROTOCOLS},
                     "std": {p: seeds[p]["accuracy"]["std"] for p in PROTOCOLS}})
    human = _json(results / "runs" / "vgg_mid_bf16_s42_report" / "error_analysis.json")["annotator_baseline"]
    rows.append({"label": "Tek bir işaretleyici", **{p: human[p]["annotator"]["accuracy"] for p in PROTOCOLS}})
    return rows


def recall_rows(results: Path = RESULTS) -> dict[str, dict[str, float]]:
    """Per-class recall on P-seed: ``{model label: {class: recall}}``."""
    base = _baseline(results)
    human = _json(results / "runs" / "vgg_mid_bf16_s42_report" / "error_analysis.json")["annotator_baseline"]["P-seed"]
    rows = {"Temel model, yeniden üretim": {c: float(base[f"recall_{c}"]) for c in CLASSES}}
    for label, summary in SEED_SUMMARIES.items():
        seeds = _json(results / summary)["protocols"]["P-seed"]["recall"]
        rows[label] = {c: seeds[c]["mean"] for c in CLASSES}
    return {**rows, "Tek bir işaretleyici": {c: human["annotator"]["recall"][c] for c in CLASSES}}


def _finish(fig, ax, title: str):
    """Title, legend beside the axes, decimal commas, tight layout."""
    ax.set_title(title, fontsize=10)
    outside_legend(ax)
    decimal_comma(fig)
    fig.tight_layout()
    return fig


def accuracy_chart(rows: list[dict]):
    """Grouped horizontal bars: one group per model, one bar per protocol it was measured on."""
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    colors = {"P-seed": "#1a5276", "P-FER+": "#a04000"}
    for k, protocol in enumerate(PROTOCOLS):
        for i, r in enumerate(rows):
            if r[protocol] is None:
                continue
            y = len(rows) - 1 - i + (0.2 if k == 0 else -0.2)
            std = (r.get("std") or {}).get(protocol)
            ax.barh(y, 100 * r[protocol], 0.38, color=colors[protocol], xerr=100 * std if std else None,
                    label=protocol if i == next(j for j, x in enumerate(rows) if x[protocol] is not None) else None)
            ax.text(100 * r[protocol] + 0.5, y, f"%{100 * r[protocol]:.1f}", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), [r["label"] for r in reversed(rows)], fontsize=9)
    ax.set_xlim(60, 95)
    ax.set_xlabel("Doğruluk (%)")
    return _finish(fig, ax, "Ayrılmış test verisinde doğruluk, iki protokolde")


def recall_chart(rows: dict[str, dict[str, float]]):
    """Grouped vertical bars: per class, one bar per model."""
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    names = display_names(CLASSES, "tr")
    width = 0.8 / len(rows)
    for k, (label, recall) in enumerate(rows.items()):
        ax.bar([i + (k - (len(rows) - 1) / 2) * width for i in range(len(CLASSES))], [recall[c] for c in CLASSES],
               width, label=label)
    ax.set_xticks(range(len(CLASSES)), names, rotation=20)
    ax.set_ylim(0, 1)
    ax.set_ylabel("Duyarlılık (P-seed)")
    return _finish(fig, ax, "Sınıf başına duyarlılık: nadir sınıflar artık tanınıyor")


def save_svg(fig, path: Path) -> Path:
    """A reproducible SVG: no creation date, fixed element ids."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with plt.rc_context({"svg.hashsalt": "fer", "svg.fonttype": "path"}):
        fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)
    return path


def main(argv=None) -> list[Path]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    written = [save_svg(accuracy_chart(accuracy_rows(args.results)), args.out / "dogruluk.svg"),
               save_svg(recall_chart(recall_rows(args.results)), args.out / "sinif_duyarliligi.svg")]
    print(*written, sep="\n")
    return written


if __name__ == "__main__":
    main()
