"""The Turkish academic report and the defense slides, built only from a run's artifacts.

``build_report(run_dir)`` reads the JSON files and figures that notebooks
01-06 wrote and renders ``rapor.html`` (self-contained: figures as data URIs,
formulas as inline SVG from matplotlib's mathtext, no script, no CDN) and
``rapor.pdf`` (WeasyPrint: A4, title page, contents with page numbers,
numbered sections, figures and tables). ``build_slides`` does the same for a
16:9 deck. Nothing here imports training code; a missing artifact becomes a
visible "section missing" note, never a crash or a silent gap.
"""
from __future__ import annotations

import base64
import datetime as _dt
import io
import json
import re
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from .artifacts import ArtifactError, atomic_write_bytes, native_bfloat16, read_json
from .demo import DEMO_BANNER
from .evaluation import CONTAMINATION_TR, PROTOCOLS_TR
from .export import int8_weight_bits
from .figures import confusion_figure_name
from .labels import DISPLAY_NAMES
from .models import default_augmentation

TITLE = "Ham Piksel Tabanlı Yüz İfadesi Tanıma: CNN ile 8 Sınıflı Duygu Sınıflandırması"

#: The only hand-typed numbers: published results, each with its source.
LITERATURE = [
    {"work": "Başlangıç çalışması (3 bloklu CNN)", "protocol": "P-seed", "accuracy": 0.718,
     "macro_f1": 0.42, "source": "Başlangıç çalışmasının raporu ve savunma sunumu"},
    {"work": "FER+ VGG13, çoğunluk oyu ile eğitim", "protocol": "P-FER+", "accuracy": 0.8385,
     "macro_f1": None, "source": "Barsoum vd. (2016), Tablo 2 (MV)"},
    {"work": "FER+ VGG13, olasılık dağılımı ile eğitim", "protocol": "P-FER+", "accuracy": 0.8499,
     "macro_f1": None, "source": "Barsoum vd. (2016), Tablo 2 (PLD)"},
]

SECTIONS = [
    ("ozet", "Özet"), ("motivasyon", "Motivasyon ve Problem Tanımı"), ("veri", "Veri Seti"),
    ("onisleme", "Ön İşleme"), ("mimari", "Model Mimarisi"), ("matematik", "Matematiksel Temeller"),
    ("egitim", "Eğitim Kurulumu"), ("sonuclar", "Sonuçlar"), ("karisiklik", "Karışıklık Matrisleri"),
    ("ornekler", "Örnek Tahminler"), ("gradcam", "Grad-CAM"), ("hata", "Hata Analizi"),
    ("basarisiz", "Bazı Sınıflar Neden Başarısız?"), ("literatur", "Literatürle Karşılaştırma"),
    ("sinirliliklar", "Sınırlılıklar"), ("sonuc", "Sonuç"), ("gelecek", "Gelecek Çalışmalar"),
    ("kaynakca", "Kaynakça"),
]

FORMULAS = {
    "conv": r"$(I * K)(i,j) = \sum_{m}\sum_{n} I(i+m,\,j+n)\,K(m,n) + b$",
    "relu": r"$\mathrm{ReLU}(x) = \max(0,\,x)$",
    "softmax": r"$\mathrm{softmax}(z)_c = \frac{e^{z_c - \max_k z_k}}{\sum_{j} e^{z_j - \max_k z_k}}$",
    "cce": r"$\mathcal{L}_{CE} = -\sum_{c=1}^{C} y_c \log \hat{p}_c$",
    "focal": r"$\mathcal{L}_{FL} = -\sum_{c=1}^{C} y_c\,(1-\hat{p}_c)^{\gamma} \log \hat{p}_c$",
    "alpha": r"$\alpha_k^c = \frac{1}{Z}\sum_{i}\sum_{j} \frac{\partial y^c}{\partial A^k_{ij}}$",
    "gradcam": r"$L^c_{\mathrm{Grad\text{-}CAM}} = \mathrm{ReLU}\left(\sum_k \alpha_k^c A^k\right)$",
    "ece": r"$\mathrm{ECE} = \sum_{b=1}^{B} \frac{|S_b|}{N}\,\left|\mathrm{acc}(S_b) - \mathrm{conf}(S_b)\right|$",
}

FIGURE_CAPTIONS = {
    "01_sinif_dagilimi": "Bölüm ve sınıf başına görüntü sayıları (sınıf dengesizliği).",
    "01_ornek_goruntuler": "Her sınıftan rastgele örnek görüntüler.",
    "01_piksel_yogunlugu": "Piksel yoğunluğu dağılımı ve sınıf başına ortalama parlaklık.",
    "01_oy_entropisi": "FER+ işaretleyici oylarının entropisi (uyuşmazlık).",
    "02_veri_artirma": "Eğitimde kullanılan veri artırma örnekleri.",
    "03_egitim_egrileri": "Eğitim ve doğrulama doğruluğu ile kaybı (epok başına).",
    "04_sinif_metrikleri": "Sınıf başına kesinlik, duyarlılık ve F1 (birincil protokol).",
    "04_guvenilirlik_diyagrami": "Güvenilirlik diyagramı ve beklenen kalibrasyon hatası.",
    "04_dogru_tahminler": "Doğru tahmin örnekleri (G: gerçek, T: tahmin).",
    "04_yanlis_tahminler": "Yanlış tahmin örnekleri (G: gerçek, T: tahmin).",
    "05_gradcam_ornekler": "Grad-CAM: tahmin edilen ve gerçek sınıf için ısı haritaları.",
    "05_gradcam_sinif_ortalamalari": "Doğru sınıflanan görüntülerde sınıf başına ortalama Grad-CAM haritası.",
    "06_karisan_ciftler": "En sık karıştırılan sınıf çiftleri.",
    "06_emin_hatalar": "Modelin en emin olduğu hatalar.",
    "06_entropi_hata": "Oy entropisi aralıklarına göre hata oranı.",
    "06_isaretleyici_model": "Sınıf başına duyarlılık: tek işaretleyici ve model, kalan işaretleyicilerin etiketine karşı.",
    "06_destek_duyarlilik": "Eğitim örnek sayısı ve test duyarlılığı.",
}


def confusion_captions(protocols) -> dict[str, str]:
    """Captions of notebook 04's confusion-matrix figures, one pair per evaluated protocol."""
    captions = {}
    for name in protocols:
        captions[confusion_figure_name(name, False)] = (
            f"Karışıklık matrisi, {name}: görüntü sayıları (satır: gerçek sınıf, sütun: tahmin edilen sınıf).")
        captions[confusion_figure_name(name, True)] = (
            f"Karışıklık matrisi, {name}: her satır kendi toplamına bölünmüş; köşegen sınıf duyarlılıklarıdır.")
    return captions


class ReportError(RuntimeError):
    """The PDF could not be produced; the previous PDF is left untouched."""


@dataclass
class ReportMeta:
    """Title-page fields (parameters of notebook 07)."""

    title: str = TITLE
    student: str = "Öğrenci Adı Soyadı"
    advisor: str = "Danışman Adı Soyadı"
    university: str = "Üniversite / Bölüm"
    date: str = field(default_factory=lambda: _dt.date.today().strftime("%d.%m.%Y"))
    language: str = "tr"
    ablation_csv: str = ""        # optional results/ablation.csv of several runs
    seeds_summary: str = ""       # optional results/seeds_summary.json (one configuration, several seeds)
    seeds_compare: tuple = ()     # optional summaries of compared configurations' seeds (same table)
    validation_csv: str = ""      # optional results/validation_compare.csv (the numbers choices were made on)
    gpu_search_csv: str = ""      # optional results/gpu_search.csv (wider search on a lent GPU, validation only)
    decisions_csv: str = ""       # optional results/decisions.csv (rules written before training, and their verdicts)
    gpu_verdicts_csv: str = ""    # optional results/gpu_search_verdicts.csv (the GPU screens' rules and verdicts)
    learning_curve_json: str = "" # optional results/learning_curve.json (validation accuracy against the training share)
    short_refit_json: str = ""    # optional results/refit36.json (a shorter refit's schedule, priced on validation)
    budget_jsons: tuple = ()      # optional benchmarks/budget_check.py results (the recipe's time on other CPUs)
    export_jsons: tuple = ()      # optional benchmarks/export_benchmark.py results (deployment formats' speed and accuracy)
    cpu_runs: tuple = ()          # optional run folders (training.json + evaluation.json) trained on other CPUs


# --------------------------------------------------------------------------- number formatting

def fmt_pct(x, digits: int = 2) -> str:
    """0.7183 → "%71,83" (Turkish: percent sign first, decimal comma)."""
    return "–" if x is None else f"%{100 * x:.{digits}f}".replace(".", ",")


def fmt_num(x, digits: int = 3) -> str:
    """0.4213 → "0,421"; 2955.63 with ``digits=1`` → "2.955,6" (Turkish: decimal comma, dotted thousands)."""
    return "–" if x is None else f"{x:,.{digits}f}".translate(str.maketrans(",.", ".,"))


#: The label rules in Turkish; the report follows each with its setting's value, which the configs use.
LABEL_RULES_TR = {"plurality": "çoğulluk", "majority": "çoğunluk", "distribution": "oy dağılımı"}


def fmt_label_rule(mode) -> str:
    """"distribution" → "oy dağılımı (distribution)"; a rule without a Turkish name is shown as it is."""
    return f"{LABEL_RULES_TR[mode]} ({mode})" if mode in LABEL_RULES_TR else str(mode)


def fmt_validation(source) -> str:
    """Where validation images came from, in Turkish: "from_train(0.2)" → "eğitim bölümünden ayrılan
    katmanlı pay, %20 (from_train(0.2))"; "official" → the layout's own validation split."""
    source = str(source)
    if source == "official":
        return "veri setinin kendi doğrulama bölümü (official)"
    share = re.fullmatch(r"from_train\((\d*\.?\d+)\)", source)
    if share:
        return f"eğitim bölümünden ayrılan katmanlı pay, {fmt_pct(float(share[1]), 0)} ({source})"
    return source


def fmt_lease(source) -> str:
    """The lease number of a GPU search file: "lease7_ema.json" → "7"; any other name as it is."""
    number = re.match(r"lease(\d+)", str(source))
    return number[1] if number else str(source)


def fmt_p(x) -> str:
    """p-values: 0.0021 → "0,002", 3.5e-21 → "3,5e-21" (decimal comma)."""
    if x is None:
        return "–"
    return (f"{x:.1e}" if x < 1e-3 else f"{x:.3f}").replace(".", ",")


def fmt_points(x, digits: int = 2, unit: bool = True) -> str:
    """A spread of accuracies in percentage points: 0.0006 → "0,06 puan" (not "%0,06", which
    reads as a share of the mean); ``unit=False`` → "0,06" for a table that names the unit once."""
    return "–" if x is None else fmt_num(100 * x, digits) + (" puan" if unit else "")


def fmt_signed(x, kind: str = "points", digits: int = 2) -> str:
    """A difference with its sign: 0.0049 → "+0,49 puan", −0.0101 → "−1,01 puan" (a real minus sign);
    ``kind="num"`` for a plain number: −0.0009 with ``digits=4`` → "−0,0009"."""
    if x is None:
        return "–"
    magnitude = fmt_points(abs(x), digits) if kind == "points" else fmt_num(abs(x), digits)
    return ("+" if x >= 0 else "−") + magnitude


def fmt_int(x) -> str:
    """28385 → "28.385"."""
    return "–" if x is None else f"{int(x):,}".replace(",", ".")


# --------------------------------------------------------------------------- assets

def math_svg(tex: str, fontsize: int = 15) -> str:
    """A formula as inline SVG, typeset by matplotlib's mathtext (no LaTeX, no MathJax)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(0.01, 0.01))
    fig.text(0, 0, tex, fontsize=fontsize)
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "path", "mathtext.fontset": "cm"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", pad_inches=0.03, transparent=True)
    plt.close(fig)
    svg = buf.getvalue().decode("utf-8")
    return svg[svg.index("<svg"):]


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _load(results: Path, name: str, what: str, missing: dict):
    try:
        return read_json(results / name, what)
    except ArtifactError as exc:
        missing[name] = str(exc)
        return None


def collect(run_dir) -> dict:
    """Every artifact the report needs, with a note for each that is missing."""
    run_dir = Path(run_dir)
    res = run_dir / "results"
    missing: dict[str, str] = {}
    ctx = {
        "data": _load(res, "01_data_summary.json", "data summary (notebook 01)", missing),
        "prep": _load(res, "02_preprocessing.json", "preprocessing summary (notebook 02)", missing),
        "model_table": _load(res, "model_table.json", "model table (notebook 03)", missing),
        "training": _load(res, "training.json", "training metadata (notebook 03)", missing),
        "history": _load(res, "history.json", "training history (notebook 03)", missing),
        "evaluation": _load(res, "evaluation.json", "evaluation (notebook 04)", missing),
        "gradcam": _load(res, "gradcam.json", "Grad-CAM results (notebook 05)", missing),
        "errors": _load(res, "error_analysis.json", "error analysis (notebook 06)", missing),
    }
    ctx["cross"] = read_json(res / "cross_dataset.json") if (res / "cross_dataset.json").is_file() else None
    cmp_res = run_dir / "compare" / "results"
    ctx["compare_training"] = read_json(cmp_res / "training.json") if (cmp_res / "training.json").is_file() else None
    ctx["compare_table"] = read_json(cmp_res / "model_table.json") if (cmp_res / "model_table.json").is_file() else None
    fig_dir = run_dir / "figures"
    ctx["figures"] = {p.stem: p for p in sorted(fig_dir.glob("*.png"))} if fig_dir.is_dir() else {}
    ctx["missing"] = missing
    ctx["is_demo"] = any(bool(v.get("is_demo")) for v in (ctx["data"], ctx["evaluation"]) if v)
    return ctx


# --------------------------------------------------------------------------- text that adapts to results

def _most_confused(plain: dict, classes: list[str], cls: str, names: dict) -> dict:
    """The class that images of ``cls`` were most often wrongly predicted as, with how many,
    read from the protocol's confusion matrix (rows: true class); {} without one or without errors."""
    matrix = plain.get("confusion_matrix")
    if not matrix or cls not in classes:
        return {}
    i = classes.index(cls)
    wrong = [(count, j) for j, count in enumerate(matrix[i]) if j != i and count > 0]
    if not wrong:
        return {}
    count, j = max(wrong)
    return {"confused_with": names[classes[j]], "confused_count": int(count), "row_total": int(sum(matrix[i]))}


def findings(ctx: dict, language: str = "tr") -> dict:
    """Numbers and sentences computed from the artifacts (nothing typed by hand)."""
    names = DISPLAY_NAMES[language]
    out: dict = {}
    ev = ctx.get("evaluation")
    if ev:
        primary = ev["protocols"][ev["primary"]]
        plain = primary["plain"]
        out["primary_name"] = ev["primary"]
        out["headline_accuracy"] = fmt_pct(plain["accuracy"])
        out["headline_macro_f1"] = fmt_num(plain["macro_f1"])
        ranked = sorted(plain["per_class"], key=lambda r: r["recall"])
        out["weakest"] = [{"name": names[r["class"]], "recall": fmt_pct(r["recall"], 1),
                           "support": r["support"], "class": r["class"],
                           **_most_confused(plain, ev.get("classes") or [], r["class"], names)} for r in ranked[:3]]
        out["strongest"] = [{"name": names[r["class"]], "recall": fmt_pct(r["recall"], 1)} for r in ranked[::-1][:3]]
        out["zero_recall"] = [names[r["class"]] for r in plain["per_class"] if r["recall"] == 0]
        if "mcnemar" in primary:
            mc = primary["mcnemar"]
            diff = plain["accuracy"] - primary["compare"]["accuracy"]
            out["mcnemar"] = {"p": mc["p_value"], "diff": diff, "significant": mc["p_value"] < 0.05,
                              "only_a": mc["only_a_correct"], "only_b": mc["only_b_correct"]}
        seed = ev["protocols"].get("P-seed")
        if seed:
            out["vs_study"] = seed["plain"]["accuracy"] - LITERATURE[0]["accuracy"]
        # Each published result on a protocol this run evaluated, against this model on the same images.
        out["vs_literature"] = []
        for r in LITERATURE:
            if r["protocol"] in ev["protocols"]:
                ours = ev["protocols"][r["protocol"]]["plain"]["accuracy"]
                out["vs_literature"].append({"work": r["work"], "protocol": r["protocol"], "theirs": r["accuracy"],
                                             "ours": ours, "diff": ours - r["accuracy"]})
    err = ctx.get("errors")
    if err and err.get("top_confused_pairs"):
        p = err["top_confused_pairs"][0]
        out["top_pair"] = f"{names[p['true']]} → {names[p['predicted']]} ({p['count']} hata)"
    return out


# --------------------------------------------------------------------------- rendering

def _env() -> Environment:
    env = Environment(loader=PackageLoader("fer_helpers", "templates"),
                      autoescape=select_autoescape(["html", "j2"]), lstrip_blocks=True)
    # No trim_blocks: the newline after "{% endif %}" is the space between two sentences.
    env.filters.update(pct=fmt_pct, points=fmt_points, signed=fmt_signed, num=fmt_num, int=fmt_int, pval=fmt_p,
                       label_rule=fmt_label_rule, validation=fmt_validation,
                       native_bf16=native_bfloat16,
                       tr=lambda c, lang="tr": DISPLAY_NAMES[lang].get(c, c))
    return env


def seed_groups(final: dict, *others: dict) -> list[dict]:
    """Seed summaries as table row groups, each labelled by the settings in which they differ.

    The final configuration names its value of every setting that differs in any group; a
    comparison names only the settings where it differs from the final configuration, so a
    one-lever candidate reads as that lever (e.g. ``weight_decay=0.05``).
    """
    # Summaries store their settings completed with defaults (release.summarize_seeds).
    params = [g.get("params", {}) for g in (final, *others)]
    keys = sorted({k for p in params for k in p} - {"seed"})

    def differs(p: dict) -> list[str]:
        return [k for k in keys if repr(p.get(k)) != repr(params[0].get(k))]

    # A setting differs somewhere exactly when some comparison differs from the final one in it.
    diff = [k for k in keys if any(k in differs(p) for p in params[1:])]

    def label(name: str, p: dict, names: list[str]) -> str:
        return f"{name} ({', '.join(f'{k}={p.get(k)}' for k in names)})" if names else name

    return ([{"label": label("son yapılandırma", params[0], diff), "summary": final}]
            + [{"label": label("karşılaştırma", p, differs(p)), "summary": g}
               for p, g in zip(params[1:], others)])


#: Deployment formats of ``benchmarks/export_benchmark.py``, in the order the report lists them.
EXPORT_FORMATS = {"keras": "Keras (kaydedilen model)", "keras_float32": "Keras float32 kopyası", "tflite": "TFLite",
                  "tflite_int8": "TFLite dinamik int8", "onnx": "ONNX", "onnx_int8": "ONNX statik int8"}


def export_summary(benchmark: dict) -> dict:
    """An export benchmark as the report words it: the CPU, each measured format's throughput
    and size, and (when measured) each protocol's accuracy for the saved model and the int8 graph."""
    calibration = benchmark.get("calibration")
    return {"machine": benchmark.get("machine", {}),
            "formats": [{"label": label, **benchmark[key]} for key, label in EXPORT_FORMATS.items() if key in benchmark],
            "protocols": benchmark.get("protocols", {}), "calibration": calibration,
            "weight_bits": int8_weight_bits(calibration) if calibration else None}


#: The issue's training-time target: one run, alone on 2 CPU cores, in at most this many minutes.
TRAINING_BUDGET_MIN = 60.0


def cpu_run_summary(folder) -> dict:
    """A run trained on another CPU as the report words it: the machine, the recipe, the measured
    wall time and each protocol's plain accuracy and macro-F1 (what that CPU's budget buys)."""
    folder = Path(folder)
    training = read_json(folder / "training.json", "training record")
    evaluation = read_json(folder / "evaluation.json", "evaluation")
    # Runs from before the precision setting existed trained in float32.
    minutes = training["wall_time_s"] / 60
    return {"name": folder.name, "machine": training["machine"],
            "recipe": {"precision": "float32", **training["params"]}, "minutes": minutes,
            "over_budget_min": max(0.0, minutes - TRAINING_BUDGET_MIN),
            "protocols": {name: p["plain"] for name, p in evaluation["protocols"].items()}}


def _in_groups(items, key) -> list[list]:
    """``items`` grouped by ``key(item)`` (any JSON-able value), in order of first appearance."""
    groups: dict[str, list] = {}
    for item in items:
        groups.setdefault(json.dumps(key(item), sort_keys=True, default=str), []).append(item)
    return list(groups.values())


#: What a budget projection (benchmarks/budget_check.py) and a measured run must share to be compared.
PROJECTION_KEYS = ("model_name", "precision", "epochs", "batch_size")


def _cpu_key(machine: dict) -> list:
    """What names a CPU in the report's tables: its model, core count and bfloat16 in hardware.

    The model name alone is not enough: "AMD EPYC" has named both a CPU with AVX512-BF16 and one
    with AVX2 only, on which the same bfloat16 recipe differs in speed by a factor of about 40.
    """
    return [machine.get("cpu_model"), machine.get("cpu_count"), native_bfloat16(machine)]


def cpu_run_groups(folders, budgets=()) -> list[dict]:
    """Runs trained on other CPUs (``cpu_run_summary``), in order, those of one recipe on one CPU
    model in one group: they differ only in their seed. A group of several also gets each
    protocol's accuracy and macro-F1 as mean and sample standard deviation (``spread``).

    Each group also gets its mean wall time (``mean_minutes``) and, when one of ``budgets``
    (budget_check.py records) projected the same recipe (``PROJECTION_KEYS``) on the same CPU
    (``_cpu_key``), that projection (``projected_minutes``; else None): how far two
    timed epochs were from the runs themselves.
    """
    def recipe(run):
        return {k: v for k, v in run["recipe"].items() if k != "seed"}

    groups = [{"machine": runs[0]["machine"], "recipe": recipe(runs[0]), "runs": runs}
              for runs in _in_groups(map(cpu_run_summary, folders), key=lambda run: [
                  *_cpu_key(run["machine"]), recipe(run)])]
    for group in groups:
        runs = group["runs"]
        group["mean_minutes"] = statistics.mean(r["minutes"] for r in runs)
        same = [b for b in budgets if _cpu_key(b["machine"]) == _cpu_key(group["machine"])
                and all(b.get(k) == group["recipe"].get(k) for k in PROJECTION_KEYS)]
        group["projected_minutes"] = same[-1]["run_minutes"] if same else None
        if len(runs) > 1:
            group["spread"] = {name: {m: {"mean": statistics.mean(r["protocols"][name][m] for r in runs),
                                          "std": statistics.stdev(r["protocols"][name][m] for r in runs)}
                                      for m in ("accuracy", "macro_f1")}
                               for name in runs[0]["protocols"] if all(name in r["protocols"] for r in runs)}
    return groups


def training_recipe(trained: dict | None) -> dict:
    """The evaluated model's own training settings, which the preprocessing section words
    ({} when no training record is known). Runs from before the augmentation setting existed
    trained with their model's default (``models.default_augmentation``)."""
    params = dict((trained or {}).get("params") or {})
    if params and not params.get("augmentation"):
        params["augmentation"] = default_augmentation(params.get("model_name", "baseline"))
    return params


#: Training settings that act only together with another one (fer_helpers.training): the
#: setting, then the other setting and the values it must have. tests/test_training.py checks
#: each against the training code.
SETTING_CONDITIONS = {
    "reduce_lr_patience": ("schedule", ("plateau",)), "reduce_lr_factor": ("schedule", ("plateau",)),
    "min_learning_rate": ("schedule", ("plateau",)), "warmup_epochs": ("schedule", ("cosine",)),
    "cosine_alpha": ("schedule", ("cosine",)),
    "weight_decay": ("optimizer", ("adamw", "sgd")), "momentum": ("optimizer", ("sgd",)),
    "focal_gamma": ("loss", ("focal",)), "oversample_fraction": ("imbalance", ("oversample",)),
}


def setting_notes(params: dict) -> dict[str, str]:
    """Why a recorded training setting had no effect, in Turkish, keyed by setting: a run records
    every setting, also those its other settings switch off (ReduceLROnPlateau's under a cosine
    schedule, weight decay under plain Adam), and ``patience=0`` means no early stopping."""
    notes = {name: f"etkisiz: {other}={params[other]}" for name, (other, needed) in SETTING_CONDITIONS.items()
             if name in params and other in params and params[other] not in needed}
    if params.get("patience") == 0:
        notes["patience"] = "erken durdurma yok"
    return notes


def by_cpu(records: list[dict]) -> list[dict]:
    """Benchmark records grouped by the CPU they ran on (model, core count, bfloat16 in
    hardware), in order of first appearance: ``[{"machine": ..., "records": [...]}]``, so a
    CPU is named once before all its measurements."""
    return [{"machine": group[0]["machine"], "records": group}
            for group in _in_groups(records, key=lambda r: _cpu_key(r["machine"]))]


def _json_records(paths, what: str) -> list[dict]:
    """The optional JSON files among ``paths`` that exist, read in order (absent ones are skipped)."""
    return [read_json(p, what) for p in paths if p and Path(p).is_file()]


def _json_record(path: str, what: str) -> dict | None:
    """One optional JSON file, or None when it is not given or absent."""
    return next(iter(_json_records([path], what)), None)


def _csv_records(path: str) -> list[dict] | None:
    """Rows of an optional results table (empty cells as ""), or None when it is not given or absent."""
    if not path or not Path(path).is_file():
        return None
    import pandas as pd

    table = pd.read_csv(path)
    # As objects first: filling a float column with "" is deprecated in pandas.
    return table.astype(object).where(table.notna(), "").to_dict("records")


def repeat_spread(rows: list[dict] | None) -> float | None:
    """The largest gap in validation accuracy between runs of one GPU search configuration
    (same name: same settings and seed) repeated in different leases; None without repeats.
    It measures the mirror's run-to-run noise, below which one run per seed decides nothing."""
    by_name: dict[str, list[float]] = {}
    for r in rows or []:
        by_name.setdefault(r["name"], []).append(r["val_accuracy"])
    gaps = [max(v) - min(v) for v in by_name.values() if len(v) > 1]
    return max(gaps) if gaps else None


#: The columns of a GPU search run that hold its settings (all but the seed). A table written
#: before a setting was varied lacks its column; the rows of one lease then share it anyway.
GPU_SETTINGS = ("model", "n_params", "epochs", "epochs_run", "augmentation", "precision", "label_smoothing",
                "learning_rate", "batch_size", "weight_decay", "dropout", "ema", "mixup", "erase")


def gpu_seed_groups(rows: list[dict] | None) -> list[dict] | None:
    """The GPU search's runs as one row per configuration and lease: the seeds' mean.

    A configuration's name without its "_s<seed>" suffix names the group; runs with the same
    settings in the same lease (lease8 and lease8b are one lease) are its seeds. Each group
    gives its seeds, the mean of validation accuracy, macro-F1 and the two rare classes'
    recall, and the accuracy's standard deviation across seeds (None for one seed). A run
    stopped at the budget stays a group of its own (``epochs_run`` is part of the settings).
    Finished groups come first, best mean accuracy first; None without rows.
    """
    if not rows:
        return rows
    import pandas as pd

    runs = pd.DataFrame(rows)
    settings = [c for c in GPU_SETTINGS if c in runs]
    runs["config"] = runs["name"].str.replace(r"_s\d+$", "", regex=True)
    runs["lease"] = runs["source"].map(fmt_lease)
    groups = []
    for key, g in runs.groupby(["config", "lease", *settings], sort=False, dropna=False):
        groups.append({**dict(zip(["name", "lease", *settings], key)),
                       "seeds": ", ".join(str(s) for s in sorted(g["seed"])), "n_seeds": len(g),
                       "val_accuracy": g["val_accuracy"].mean(),
                       "val_accuracy_std": g["val_accuracy"].std() if len(g) > 1 else None,
                       **{c: g[c].mean() for c in ("val_macro_f1", "val_recall_Contempt", "val_recall_Disgust")}})
    groups.sort(key=lambda r: (r["epochs_run"] < r["epochs"], -r["val_accuracy"]))
    return groups


def render_html(run_dir, meta: ReportMeta | None = None, template: str = "report.html.j2") -> tuple[str, dict]:
    """The report (or slides) as one self-contained HTML string, and the context used."""
    meta = meta or ReportMeta()
    ctx = collect(run_dir)
    figs = ctx.pop("figures")
    ctx["ablation"] = _csv_records(meta.ablation_csv)
    ctx["validation_rows"] = _csv_records(meta.validation_csv)
    ctx["gpu_rows"] = _csv_records(meta.gpu_search_csv)
    # The search's best validation result (limitations and future work both cite it).
    ctx["gpu_best"] = max(ctx["gpu_rows"], key=lambda r: r["val_accuracy"]) if ctx["gpu_rows"] else None
    ctx["gpu_repeat_spread"] = repeat_spread(ctx["gpu_rows"])
    ctx["gpu_groups"] = gpu_seed_groups(ctx["gpu_rows"])
    ctx["decisions"] = _csv_records(meta.decisions_csv)
    ctx["gpu_verdicts"] = _csv_records(meta.gpu_verdicts_csv)
    ctx["learning_curve"] = _json_record(meta.learning_curve_json, "learning curve")
    ctx["short_refit"] = _json_record(meta.short_refit_json, "shorter refit")
    budgets = _json_records(meta.budget_jsons, "budget check")
    ctx["cpu_budgets"] = by_cpu(budgets)
    ctx["exports"] = [export_summary(b) for b in _json_records(meta.export_jsons, "export benchmark")]
    ctx["training_budget_min"] = TRAINING_BUDGET_MIN
    ctx["cpu_run_groups"] = cpu_run_groups((p for p in meta.cpu_runs if p and Path(p).is_dir()), budgets)
    ctx["seeds"], ctx["seed_groups"] = None, []
    if meta.seeds_summary and Path(meta.seeds_summary).is_file():
        ctx["seeds"] = read_json(meta.seeds_summary, "seed summary")
        compare = [meta.seeds_compare] if isinstance(meta.seeds_compare, str) else meta.seeds_compare
        others = _json_records(compare, "seed summary")
        ctx["seed_groups"] = seed_groups(ctx["seeds"], *others)   # alone: one unlabelled group
    evaluation = ctx.get("evaluation") or {}
    cm_captions = confusion_captions(evaluation.get("protocols", {}))     # in the evaluation's protocol order
    captions = {**FIGURE_CAPTIONS, **cm_captions}
    # The slides have room for one confusion matrix: the primary protocol's, row-normalised.
    primary_cm = confusion_figure_name(evaluation["primary"], True) if "primary" in evaluation else None
    # A run that evaluated a given model trained nothing: its training section describes the
    # model's own committed training run when there is one (release.record_pretrained_model).
    training = ctx.get("training") or {}
    ctx["trained"] = training if training.get("params") else training.get("source_training")
    ctx["recipe"] = training_recipe(ctx["trained"])
    ctx["setting_notes"] = setting_notes(ctx["recipe"])
    # The augmentation both templates name: the model's own, else the one notebook 02 showed.
    ctx["augmentation"] = ctx["recipe"].get("augmentation") or (ctx.get("prep") or {}).get("augmentation")
    ctx.update(meta=asdict(meta), sections=SECTIONS, literature=LITERATURE, banner=DEMO_BANNER,
               protocol_notes=PROTOCOLS_TR, contamination_note=CONTAMINATION_TR,
               formulas={k: math_svg(v) for k, v in FORMULAS.items()},
               fig={k: {"src": _data_uri(p), "caption": captions.get(k, k)} for k, p in figs.items()},
               f=findings(ctx, meta.language), lang=meta.language,
               cm_figures=[k for k in cm_captions if k in figs],
               cm_primary=primary_cm if primary_cm in figs else None,
               generated=_dt.datetime.now().strftime("%d.%m.%Y %H:%M"))
    html = _env().get_template(template).render(**ctx)
    return html, ctx


def write_pdf(html: str, target: Path) -> Path:
    """Render HTML to PDF with WeasyPrint, then write it atomically over ``target``."""
    try:
        import weasyprint

        pdf = weasyprint.HTML(string=html, base_url=str(target.parent)).write_pdf()
    except Exception as exc:  # WeasyPrint/Pango failures come in many types
        raise ReportError(f"{target}: PDF could not be written ({type(exc).__name__}: {exc}); "
                          "the previous PDF, if any, is unchanged") from exc
    return atomic_write_bytes(target, pdf)


def _build(run_dir, out_dir, meta: ReportMeta | None, template: str, stem: str) -> dict[str, Path]:
    out = Path(out_dir or Path(run_dir) / "reports")
    out.mkdir(parents=True, exist_ok=True)
    html, _ = render_html(run_dir, meta, template)
    html_path = atomic_write_bytes(out / f"{stem}.html", html.encode("utf-8"))
    return {"html": html_path, "pdf": write_pdf(html, out / f"{stem}.pdf")}


def build_report(run_dir, out_dir=None, meta: ReportMeta | None = None) -> dict[str, Path]:
    """Write ``rapor.html`` and ``rapor.pdf`` into ``out_dir`` (default: the run's reports/)."""
    return _build(run_dir, out_dir, meta, "report.html.j2", "rapor")


def build_slides(run_dir, out_dir=None, meta: ReportMeta | None = None) -> dict[str, Path]:
    """Write the 16:9 defense deck ``sunum.html`` and ``sunum.pdf`` (one slide per page)."""
    return _build(run_dir, out_dir, meta, "slides.html.j2", "sunum")
