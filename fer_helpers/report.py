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
import textwrap
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from .artifacts import REPORT_MISSING, ArtifactError, atomic_write_bytes, native_bfloat16, read_json
from .demo import DEMO_BANNER
from .evaluation import CONTAMINATION_TR, PROTOCOLS_TR
from .evaluation import protocol_name as fmt_protocol
from .export import int8_weight_bits
from .figures import confusion_figure_name
from .labels import DISPLAY_NAMES
from .models import RESNET_DEFAULT_WIDTH, build_model, count_params, default_augmentation

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

#: The works the report cites: how the text cites each (``cite``, also the test's key) and the
#: reference list entry. Every entry is cited in the main text (tests/test_report.py).
REFERENCES = [
    {"cite": "Başlangıç çalışması", "entry": "Başlangıç çalışması. Ham piksel tabanlı yüz ifadesi tanıma: 3 bloklu CNN ile 8 sınıflı "
     "duygu sınıflandırması. Proje raporu ve savunma sunumu (yayımlanmamış)."},
    {"cite": "Goodfellow vd., 2013", "entry": "Goodfellow, I. J. vd. (2013). Challenges in Representation Learning: A report on three "
     "machine learning contests. ICML 2013 Workshop; Neural Networks 64 (2015) 59–63."},
    {"cite": "Tang, 2013", "entry": "Tang, Y. (2013). Deep Learning using Linear Support Vector Machines. ICML 2013 Workshop on "
     "Representation Learning."},
    {"cite": "Barsoum vd., 2016", "entry": "Barsoum, E., Zhang, C., Canton Ferrer, C., Zhang, Z. (2016). Training Deep Networks for "
     "Facial Expression Recognition with Crowd-Sourced Label Distribution. ACM ICMI 2016."},
    {"cite": "Pramerdorfer ve Kampel, 2016", "entry": "Pramerdorfer, C., Kampel, M. (2016). Facial Expression Recognition using "
     "Convolutional Neural Networks: State of the Art. arXiv:1612.02903."},
    {"cite": "Khaireddin ve Chen, 2021", "entry": "Khaireddin, Y., Chen, Z. (2021). Facial Emotion Recognition: State of the Art "
     "Performance on FER2013. arXiv:2105.03588."},
    {"cite": "Simonyan ve Zisserman, 2015", "entry": "Simonyan, K., Zisserman, A. (2015). Very Deep Convolutional Networks for "
     "Large-Scale Image Recognition. ICLR 2015."},
    {"cite": "He vd., 2016", "entry": "He, K., Zhang, X., Ren, S., Sun, J. (2016). Deep Residual Learning for Image "
     "Recognition. CVPR 2016."},
    {"cite": "Geng, 2016", "entry": "Geng, X. (2016). Label Distribution Learning. IEEE Transactions on Knowledge and Data "
     "Engineering 28(7), 1734–1748."},
    {"cite": "Lin vd., 2017", "entry": "Lin, T.-Y. vd. (2017). Focal Loss for Dense Object Detection. ICCV 2017."},
    {"cite": "Menon vd., 2021", "entry": "Menon, A. K. vd. (2021). Long-tail Learning via Logit Adjustment. ICLR 2021."},
    {"cite": "Loshchilov ve Hutter, 2017", "entry": "Loshchilov, I., Hutter, F. (2017). SGDR: Stochastic Gradient Descent with "
     "Warm Restarts. ICLR 2017."},
    {"cite": "Loshchilov ve Hutter, 2019", "entry": "Loshchilov, I., Hutter, F. (2019). Decoupled Weight Decay Regularization. ICLR 2019."},
    {"cite": "Zhong vd., 2020", "entry": "Zhong, Z., Zheng, L., Kang, G., Li, S., Yang, Y. (2020). Random Erasing Data "
     "Augmentation. AAAI 2020."},
    {"cite": "Hinton vd., 2015", "entry": "Hinton, G., Vinyals, O., Dean, J. (2015). Distilling the Knowledge in a Neural Network. "
     "NIPS 2014 Deep Learning Workshop; arXiv:1503.02531."},
    {"cite": "Selvaraju vd., 2017", "entry": "Selvaraju, R. R. vd. (2017). Grad-CAM: Visual Explanations from Deep Networks via "
     "Gradient-based Localization. ICCV 2017."},
    {"cite": "Adebayo vd., 2018", "entry": "Adebayo, J. vd. (2018). Sanity Checks for Saliency Maps. NeurIPS 2018."},
    {"cite": "Guo vd., 2017", "entry": "Guo, C. vd. (2017). On Calibration of Modern Neural Networks. ICML 2017."},
    {"cite": "Chollet vd., 2015", "entry": "Chollet, F. vd. (2015). Keras (sürüm 3). https://keras.io"},
]

#: Main chapters (numbered), then the appendix; Özet and Abstract come before the contents.
SECTIONS = [
    ("giris", "Giriş"), ("ilgili", "İlgili Çalışmalar"), ("veri", "Veri Seti"), ("yontem", "Yöntem"),
    ("sonuclar", "Sonuçlar"), ("gradcam", "Grad-CAM ile Açıklama"), ("hata", "Hata Analizi"),
    ("literatur", "Literatürle Karşılaştırma"), ("tartisma", "Tartışma"), ("sinirliliklar", "Sınırlılıklar"),
    ("sonuc", "Sonuç"), ("gelecek", "Gelecek Çalışmalar"), ("kaynakca", "Kaynakça"),
    ("ek", "Ek A: Deney Kayıtlarının Özeti"),
]

#: One name per model in the text (the code names appear only in the appendix).
MODEL_NAMES = {"baseline": "Temel CNN", "vgg": "VGG-Tam", "vgg_mid": "VGG-Orta", "vgg_fast": "VGG-Hızlı",
               "resnet": "ResNet-18"}

def fmt_model(name) -> str:
    """A model's one name in the text: "vgg_mid" → "VGG-Orta", a saved ResNet's own name
    "resnet18_w16" → "ResNet-18 (genişlik 16)"; an unknown name as it is."""
    width = re.fullmatch(r"resnet18_w(\d+)", str(name))
    if width:
        return f"{MODEL_NAMES['resnet']} (genişlik {width.group(1)})"
    return MODEL_NAMES.get(str(name), str(name))


#: Placeholder values of the title page: a report built with one of them gets a visible mark
#: on the title page and a warning at build time.
PLACEHOLDERS = {"student": "Öğrenci Adı Soyadı", "advisor": "Danışman Adı Soyadı", "university": "Üniversite / Bölüm"}


def unfilled_fields(meta) -> list[str]:
    """The title-page fields of ``meta`` (a ReportMeta or its dict) still at their placeholder value or empty."""
    values = meta if isinstance(meta, dict) else asdict(meta)
    return [k for k, v in PLACEHOLDERS.items() if not str(values.get(k) or "").strip() or values.get(k) == v]


#: Numbered equations, in the order the method chapter gives them: key, title, formula, the
#: symbols it uses, and which part of the study uses it (``when``; see ``equations``).
EQUATIONS = [
    ("conv", "Evrişim", r"$(I * K)(i,j) = \sum_{m}\sum_{n} I(i+m,\,j+n)\,K(m,n) + b$",
     "I giriş özellik haritası, K öğrenilen 3×3 çekirdek, b sapma terimidir.", "always"),
    ("relu", "ReLU etkinleştirmesi", r"$\mathrm{ReLU}(x) = \max(0,\,x)$", "x bir nöronun girdisidir.", "always"),
    ("softmax", "Softmax", r"$\hat{p}_c = \dfrac{e^{z_c - \max_k z_k}}{\sum_{j=1}^{C} e^{z_j - \max_k z_k}}$",
     "z son katmanın logitleri, C = 8 sınıf sayısı, p̂ tahmin edilen olasılıklardır; en büyük logitin "
     "çıkarılması sonucu değiştirmez ama üstel fonksiyonda taşmayı önler.", "always"),
    ("cce", "Oy dağılımıyla çapraz entropi",
     r"$\mathcal{L}_{CE} = -\sum_{c=1}^{C} y_c \log \hat{p}_c, \qquad y_c = \dfrac{v_c}{\sum_{k=1}^{C} v_k}$",
     "v_c görüntünün c sınıfına aldığı işaretleyici oyu, y hedef dağılımdır; tek bir etiketle eğitimde "
     "y tek-sıcak vektördür.", "always"),
    ("focal", "Odak kaybı", r"$\mathcal{L}_{FL} = -\sum_{c=1}^{C} y_c\,(1-\hat{p}_c)^{\gamma} \log \hat{p}_c$",
     "γ ≥ 0 kolay örneklerin ağırlığını azaltır (Lin vd., 2017).", "focal"),
    ("adamw", "AdamW güncellemesi",
     r"$\theta_{t+1} = \theta_t - \eta_t \left( \dfrac{\hat{m}_t}{\sqrt{\hat{v}_t} + \epsilon} + \lambda\,\theta_t \right)$",
     "θ ağırlıklar, m̂ ve v̂ gradyanın yanlılığı düzeltilmiş birinci ve ikinci momentleri, η_t öğrenme oranı, "
     "λ ayrık ağırlık azalmasıdır (Loshchilov ve Hutter, 2019).", "adamw"),
    ("sgd", "Nesterov momentumlu SGD",
     r"$u_{t+1} = \mu\,u_t - \eta_t \nabla\mathcal{L}(\theta_t + \mu\,u_t), \qquad \theta_{t+1} = \theta_t + u_{t+1}$",
     "u hız vektörü, μ momentum, η_t öğrenme oranıdır; ağırlık azalması kayba λ‖θ‖² olarak eklenir.", "sgd"),
    ("cosine", "Isınmalı kosinüs öğrenme oranı",
     r"$\eta_t = \eta_{\min} + \dfrac{1}{2}\,(\eta_0 - \eta_{\min})\left(1 + \cos\dfrac{\pi\,(t - t_w)}{T - t_w}\right), \quad t \geq t_w$",
     "η_0 en yüksek öğrenme oranı, T toplam adım, t_w ısınma adımı sayısıdır; ısınmada oran 0'dan η_0'a "
     "doğrusal artar (Loshchilov ve Hutter, 2017).", "cosine"),
    ("oversample", "Nadir sınıfların çoğaltılması", r"$n'_c = \max\left(n_c,\ \lceil \rho \cdot \max_k n_k \rceil\right)$",
     "n_c c sınıfının eğitim görüntüsü sayısı, ρ çoğaltma payıdır; eksik kalan görüntüler sınıfın kendi "
     "görüntülerinden yinelenerek tamamlanır.", "oversample"),
    ("temperature", "Sıcaklık ölçekleme", r"$\hat{p}_c(T) = \dfrac{e^{z_c / T}}{\sum_{j=1}^{C} e^{z_j / T}}$",
     "T > 0 yalnızca doğrulama kümesinde negatif log-olabilirliği en küçültecek biçimde seçilir; sınıf "
     "sırası, dolayısıyla doğruluk değişmez (Guo vd., 2017).", "temperature"),
    ("alpha", "Grad-CAM kanal ağırlıkları", r"$\alpha_k^c = \dfrac{1}{Z}\sum_{i}\sum_{j} \dfrac{\partial y^c}{\partial A^k_{ij}}$",
     "A^k son evrişim katmanının k. özellik haritası, y^c c sınıfının logiti, Z haritadaki konum sayısıdır.", "always"),
    ("gradcam", "Grad-CAM haritası", r"$L^c_{\mathrm{Grad\text{-}CAM}} = \mathrm{ReLU}\left(\sum_k \alpha_k^c A^k\right)$",
     "Harita giriş boyutuna büyütülüp görüntünün üzerine bindirilir (Selvaraju vd., 2017).", "always"),
    ("ece", "Beklenen kalibrasyon hatası",
     r"$\mathrm{ECE} = \sum_{b=1}^{B} \dfrac{|S_b|}{N}\,\left|\mathrm{acc}(S_b) - \mathrm{conf}(S_b)\right|$",
     "S_b güveni b. aralığa düşen test görüntüleri, N test görüntüsü sayısı, acc ve conf o aralığın doğruluğu "
     "ve ortalama güvenidir.", "always"),
]


def equations(recipe: dict, temperature_scaled: bool) -> dict[str, dict]:
    """The equations the evaluated model's training and evaluation use, numbered in order:
    ``{key: {"no", "title", "svg", "symbols"}}``. The loss, optimizer, schedule and oversampling
    follow the training settings; temperature scaling appears when the evaluation used it."""
    used = {"always": True, "focal": recipe.get("loss") == "focal",
            "adamw": recipe.get("optimizer") == "adamw", "sgd": recipe.get("optimizer") == "sgd",
            "cosine": recipe.get("schedule") == "cosine", "oversample": recipe.get("imbalance") == "oversample",
            "temperature": temperature_scaled}
    chosen = [e for e in EQUATIONS if used[e[4]]]
    return {key: {"no": i, "title": title, "svg": math_svg(tex), "symbols": symbols}
            for i, (key, title, tex, symbols, _) in enumerate(chosen, start=1)}


FIGURE_CAPTIONS = {
    "01_sinif_dagilimi": "Bölüm ve sınıf başına görüntü sayıları (sınıf dengesizliği).",
    "01_ornek_goruntuler": "Her sınıftan rastgele örnek görüntüler.",
    "01_piksel_yogunlugu": "Piksel yoğunluğu dağılımı ve sınıf başına ortalama parlaklık.",
    "01_oy_entropisi": "FER+ işaretleyici oylarının entropisi (uyuşmazlık).",
    "02_veri_artirma": "Eğitimde kullanılan veri artırma örnekleri.",
    "03_egitim_egrileri": "Eğitim ve doğrulama doğruluğu ile kaybı (epok başına).",
    "04_sinif_metrikleri": "Sınıf başına kesinlik, duyarlılık ve F1.",
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
            f"Karışıklık matrisi, {fmt_protocol(name)}: görüntü sayıları (satır: gerçek sınıf, sütun: tahmin edilen sınıf).")
        captions[confusion_figure_name(name, True)] = (
            f"Karışıklık matrisi, {fmt_protocol(name)}: her satır kendi toplamına bölünmüş; köşegen sınıf duyarlılıklarıdır.")
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
    cumulative_csv: str = ""      # optional results/ablation_cumulative.csv (one lever added per row, seeds' means)
    seeds_summary: str = ""       # optional results/seeds_summary.json (one configuration, several seeds)
    seeds_compare: tuple = ()     # optional summaries of compared configurations' seeds (same table)
    validation_csv: str = ""      # optional results/validation_compare.csv (the numbers choices were made on)
    levers_csv: str = ""          # optional results/levers_resnet_w16.csv (one-lever runs against the released model's run)
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
    """0.4213 → "0,421"; 2955.63 with ``digits=1`` → "2.955,6" (Turkish: decimal comma, dotted
    thousands); −0.28 → "−0,28" with a real minus sign, as in the figures."""
    return "–" if x is None else f"{x:,.{digits}f}".translate(str.maketrans(",.-", ".,−"))


#: The label rules in Turkish; the report follows each with its setting's value, which the configs use.
LABEL_RULES_TR = {"plurality": "çoğulluk", "majority": "çoğunluk", "distribution": "oy dağılımı"}


def fmt_label_rule(mode) -> str:
    """"distribution" → "oy dağılımı"; a rule without a Turkish name is shown as it is."""
    return LABEL_RULES_TR.get(mode, str(mode))


def fmt_validation(source) -> str:
    """Where validation images came from, in Turkish: "from_train(0.2)" → "eğitim bölümünden ayrılan
    katmanlı pay, %20"; "official" → the layout's own validation split."""
    source = str(source)
    if source == "official":
        return "veri setinin kendi doğrulama bölümü"
    share = re.fullmatch(r"from_train\((\d*\.?\d+)\)", source)
    if share:
        return f"eğitim bölümünden ayrılan katmanlı pay, {fmt_pct(float(share[1]), 0)}"
    return source


def fmt_lease(source) -> str:
    """The lease number of a GPU search file: "lease7_ema.json" → "7"; any other name as it is."""
    number = re.match(r"lease(\d+)", str(source))
    return number[1] if number else str(source)


SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def fmt_p(x) -> str:
    """p-values: 0.0021 → "0,002", 3.5e-21 → "3,5·10⁻²¹" (decimal comma, a written power of ten)."""
    if x is None:
        return "–"
    if x >= 1e-3:
        return f"{x:.3f}".replace(".", ",")
    if x == 0:
        return "< 10⁻³⁰⁰"      # below what a double holds
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"{mantissa.replace('.', ',')}·10{str(int(exponent)).translate(SUPERSCRIPTS)}"


def fmt_points(x, digits: int = 2, unit: bool = True) -> str:
    """A spread of accuracies in percentage points: 0.0006 → "0,06 puan" (not "%0,06", which
    reads as a share of the mean); ``unit=False`` → "0,06" for a table that names the unit once."""
    return "–" if x is None else fmt_num(100 * x, digits) + (" puan" if unit else "")


def fmt_signed(x, kind: str = "points", digits: int = 2, unit: bool = True) -> str:
    """A difference with its sign: 0.0049 → "+0,49 puan", −0.0101 → "−1,01 puan" (a real minus sign;
    ``unit=False`` → "−1,01" for a table that names the unit once); ``kind="num"`` for a plain
    number: −0.0009 with ``digits=4`` → "−0,0009"."""
    if x is None:
        return "–"
    magnitude = fmt_points(abs(x), digits, unit) if kind == "points" else fmt_num(abs(x), digits)
    return ("+" if x >= 0 else "−") + magnitude


def fmt_pct_en(x, digits: int = 2) -> str:
    """0.8217 → "82.17%" (the English abstract's format)."""
    return "–" if x is None else f"{100 * x:.{digits}f}%"


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
        # McNemar against the compare model, on every protocol that has one; the primary's for the slides.
        out["mcnemar_all"] = [
            {"protocol": name, "p": p["mcnemar"]["p_value"], "significant": p["mcnemar"]["p_value"] < 0.05,
             "accuracy": p["plain"]["accuracy"], "compare_accuracy": p["compare"]["accuracy"],
             "diff": p["plain"]["accuracy"] - p["compare"]["accuracy"],
             "only_a": p["mcnemar"]["only_a_correct"], "only_b": p["mcnemar"]["only_b_correct"]}
            for name, p in ev["protocols"].items() if "mcnemar" in p]
        out["mcnemar"] = next((m for m in out["mcnemar_all"] if m["protocol"] == ev["primary"]), None)
        # One reading of the tests for the report and the slides: significant on "all", "none" or "some" protocols.
        n_significant = sum(m["significant"] for m in out["mcnemar_all"])
        out["mcnemar_significant"] = ("all" if n_significant == len(out["mcnemar_all"])
                                      else "none" if n_significant == 0 else "some")
        # Each published result on a protocol this run evaluated, on the same images: against the
        # headline number (the seeds' mean where there is a seed summary) and the released model.
        lead = (ctx.get("headline") or {}).get("protocols", {})
        out["vs_literature"] = []
        for r in LITERATURE:
            if r["protocol"] in ev["protocols"]:
                released = ev["protocols"][r["protocol"]]["plain"]["accuracy"]
                ours = lead.get(r["protocol"], {}).get("accuracy", released)
                out["vs_literature"].append({"work": r["work"], "protocol": r["protocol"], "theirs": r["accuracy"],
                                             "ours": ours, "diff": ours - r["accuracy"],
                                             "released": released, "released_diff": released - r["accuracy"]})
    err = ctx.get("errors")
    if err and err.get("top_confused_pairs"):
        p = err["top_confused_pairs"][0]
        out["top_pair"] = f"{names[p['true']]} → {names[p['predicted']]} ({p['count']} hata)"
    return out


# --------------------------------------------------------------------------- rendering

def fmt_run_name(name) -> Markup:
    """A run or model name (``mid_e50_bf16_s42``) that a narrow cell breaks after its underscores only,
    never inside a part ("vgg_wid e")."""
    return Markup("_<wbr>").join(escape(part) for part in str(name).split("_"))


def _env() -> Environment:
    env = Environment(loader=PackageLoader("fer_helpers", "templates"),
                      autoescape=select_autoescape(["html", "j2"]), lstrip_blocks=True)
    # No trim_blocks: the newline after "{% endif %}" is the space between two sentences.
    env.filters.update(pct=fmt_pct, points=fmt_points, signed=fmt_signed, num=fmt_num, int=fmt_int, pval=fmt_p,
                       label_rule=fmt_label_rule, validation=fmt_validation, model=fmt_model, proto=fmt_protocol, pct_en=fmt_pct_en,
                       native_bf16=native_bfloat16, settings_words=describe_changes, run_name=fmt_run_name,
                       # Jinja's capitalize lowercases the rest ("VGG-Orta" → "Vgg-orta"): only the first letter.
                       capitalize_first=lambda t: str(t)[:1].upper() + str(t)[1:],
                       tr=lambda c, lang="tr": DISPLAY_NAMES[lang].get(c, c))
    return env


def _short(x: float) -> str:
    """A setting's number without trailing zeros, decimal comma: 0.0500 → "0,05"."""
    return fmt_num(float(x), 4).rstrip("0").rstrip(",")


#: How the text words a training setting's value (seed-group labels); other settings fall back to "name = value".
SETTING_WORDS = {
    "model_name": lambda v: fmt_model(v),
    "epochs": lambda v: f"{v} epok",
    "precision": lambda v: {"mixed_bfloat16": "bfloat16 evrişimler", "float32": "float32 hesap"}.get(v, str(v)),
    "augmentation": lambda v: {"study": "başlangıç çalışmasının artırması", "strong": "güçlü artırma",
                               "wide": "geniş artırma", "none": "artırma yok"}.get(v, str(v)),
    "weight_decay": lambda v: f"ağırlık azalması {_short(v)}",
    "oversample_fraction": lambda v: f"çoğaltma payı {fmt_pct(float(v), 0)}",
    "imbalance": lambda v: {"oversample": "nadir sınıf çoğaltma", "class_weight": "sınıf ağırlıkları",
                            "none": "dengeleme yok"}.get(v, str(v)),
    "learning_rate": lambda v: f"öğrenme oranı {_short(v)}",
    "targets": lambda v: {"soft": "oy dağılımı hedefleri", "onehot": "tek etiket"}.get(v, str(v)),
    "optimizer": lambda v: {"adamw": "AdamW", "adam": "Adam", "sgd": "Nesterov SGD"}.get(v, str(v)),
    "width": lambda v: f"genişlik {v}",
    "stem_stride": lambda v: f"ilk evrişim adımı {v} (ilk aşama {48 // int(v)}×{48 // int(v)})",
    "label_mode": lambda v: {"distribution": "oy dağılımı etiketleri", "plurality": "çoğulluk etiketleri",
                             "majority": "çoğunluk etiketleri"}.get(v, str(v)),
    "schedule": lambda v: {"cosine": "kosinüs öğrenme oranı", "plateau": "durağanlıkta düşen öğrenme oranı",
                           "constant": "sabit öğrenme oranı"}.get(v, str(v)),
    "warmup_epochs": lambda v: f"{v} epok ısınma",
    "loss": lambda v: {"focal": "odak kaybı", "cce": "çapraz entropi"}.get(v, str(v)),
    "patience": lambda v: "erken durdurma yok" if str(v) == "0" else f"{v} epok sabırla erken durdurma",
    "erasing": lambda v: f"rastgele silme olasılığı {_short(v)}",
    "distill_from": lambda v: "öğretmen olasılıklarıyla damıtma",
    "weight_decay_mode": lambda v: {"decoupled": "ayrık ağırlık azalması", "l2": "L2 ağırlık azalması"}.get(v, str(v)),
    "cosine_alpha": lambda v: f"kosinüs alt sınırı en yüksek oranın {_short(v)} katı",
    "momentum": lambda v: f"momentum {_short(v)}",
}


def describe_setting(key: str, value) -> str:
    """One training setting in the text's words: ("epochs", 30) → "30 epok"."""
    word = SETTING_WORDS.get(key)
    return word(value) if word and value is not None else f"{key} = {value}"


def describe_changes(changes: str) -> str:
    """Settings written as "key=value; key=value" (the research tables' form) in the text's
    words, comma-separated: "epochs=30; erasing=0.0" → "30 epok, rastgele silme olasılığı 0"."""
    pairs = {k.strip(): v.strip() for k, v in (pair.split("=", 1) for pair in str(changes or "").split(";") if "=" in pair)}
    if pairs.get("imbalance", "oversample") != "oversample":
        pairs.pop("oversample_fraction", None)   # a share of nothing: no oversampling happens
    return ", ".join(describe_setting(k, v) for k, v in pairs.items())


#: How the text states another method's recipe (``seed_groups``' "recipe"), in this order.
METHOD_SETTINGS = ("optimizer", "learning_rate", "weight_decay", "schedule", "warmup_epochs", "targets",
                   "augmentation", "imbalance", "oversample_fraction", "epochs", "precision")

#: A compared configuration that changes the model and more than this many other settings is
#: another method, not a variant: the text names it by its model ("VGG-Orta, kendi yöntemiyle").
MAX_VARIANT_SETTINGS = 4


def seed_groups(final: dict, *others: dict) -> list[dict]:
    """Seed summaries as table row groups, each labelled by the settings in which they differ.

    The final configuration is "son yapılandırma"; a comparison names, in words, only the
    settings where it differs from the final configuration, so a one-lever candidate reads as
    that lever (e.g. "ağırlık azalması 0,05"). A comparison that is another method (another
    model and more than ``MAX_VARIANT_SETTINGS`` other settings) is named by its model, "kendi
    yöntemiyle" (``method``; ``recipe`` words its ``METHOD_SETTINGS``), and the comparisons
    after it that are its variants by that name and their difference from it ("VGG-Orta + 30
    epok"; with another model: "VGG-Hızlı (VGG-Orta yöntemiyle), 30 epok"). ``diff`` keeps the
    settings' names and values against ``base``, the label of the group they are compared with.
    """
    # Summaries store their settings completed with defaults (release.summarize_seeds).
    params = [g.get("params", {}) for g in (final, *others)]
    # The model first (it names the row), then the other settings alphabetically.
    keys = sorted({k for p in params for k in p} - {"seed"}, key=lambda k: (k != "model_name", k))

    def differs(p: dict, q: dict) -> list[str]:
        return [k for k in keys if repr(p.get(k)) != repr(q.get(k))]

    def words(p: dict, diff: list[str]) -> str:
        return ", ".join(describe_setting(k, p.get(k)) for k in diff) or "aynı ayarlar"

    def another_method(diff: list[str]) -> bool:
        return "model_name" in diff and len(diff) > MAX_VARIANT_SETTINGS + 1

    def variant_label(p: dict, diff: list[str], method: str) -> str:
        if "model_name" not in diff:
            return f"{method} + {words(p, diff)}"
        rest = [k for k in diff if k != "model_name"]      # another model trained the method's way
        return f"{fmt_model(p.get('model_name'))} ({method} yöntemiyle)" + (f", {words(p, rest)}" if rest else "")

    groups = [{"label": "son yapılandırma", "name": "son yapılandırma", "base": None, "method": False,
               "recipe": None, "diff": {}, "summary": final}]
    for p, g in zip(params[1:], others):
        diff, base = differs(p, params[0]), groups[0]
        group = {"method": False, "recipe": None}
        if not another_method(diff):
            group["label"] = words(p, diff)
        else:
            # A variant of a method listed before it, else a method of its own.
            variants = [(d, b) for b in groups[1:] if b["method"]
                        for d in [differs(p, b["summary"].get("params", {}))] if not another_method(d)]
            if variants:
                diff, base = min(variants, key=lambda v: len(v[0]))
                group["label"] = variant_label(p, diff, base["name"])
            else:
                name = fmt_model(p.get("model_name"))
                group = {"label": f"{name}, kendi yöntemiyle", "name": name, "method": True,
                         "recipe": words(p, [k for k in METHOD_SETTINGS if k in keys and p.get(k) is not None])}
        groups.append({"name": group["label"], **group, "base": base["label"],
                       "diff": {k: p.get(k) for k in diff}, "summary": g})
    return groups


#: A layer inside a residual block: ``stage<s>_<b>_<part>`` (models.build_resnet's names).
_BLOCK_LAYER = re.compile(r"^(stage\d+_\d+)_")


def compact_layers(table: dict | None) -> dict | None:
    """A model table with each residual block as one row (its name, "Artık blok", the block's
    output shape and summed parameters): an 18-layer net's 70 rows become 16 a reader can
    follow. A block is a run of layers named ``stage<s>_<b>_…`` that ends in an addition; a
    VGG's convolution groups are named alike but add nothing, and stay as they are."""
    if not table:
        return table
    groups: list[list[dict]] = []
    for layer in table["layers"]:
        block = _BLOCK_LAYER.match(layer["layer"])
        last = _BLOCK_LAYER.match(groups[-1][0]["layer"]) if groups else None
        if block and last and last[1] == block[1]:
            groups[-1].append(layer)
        else:
            groups.append([layer])
    rows = []
    for group in groups:
        if any(layer["type"] == "Add" for layer in group):
            rows.append({"layer": _BLOCK_LAYER.match(group[0]["layer"])[1], "type": "Artık blok",
                         "output_shape": group[-1]["output_shape"], "params": sum(r["params"] for r in group)})
        else:
            rows.extend(dict(layer) for layer in group)
    return {**table, "layers": rows}


def resnet_widths(recipe: dict, groups: list[dict]) -> list[tuple[int, int]]:
    """(width, parameter count) of each residual net the report describes: the evaluated
    model's and the compared configurations', in increasing width; empty without one."""
    settings = [recipe, *(g["summary"].get("params", {}) for g in groups)]
    widths = sorted({int(p.get("width") or RESNET_DEFAULT_WIDTH) for p in settings if p.get("model_name") == "resnet"})
    return [(w, count_params(build_model("resnet", width=w))) for w in widths]


def _in_screen(row: dict) -> bool:
    """A row of the ablation table's short one-lever screen (its run names start with "abl_")."""
    return str(row.get("run", "")).startswith("abl_")


def baseline_reproduction(ablation_rows) -> list[dict]:
    """The starting study's network retrained here (``model == "baseline"`` rows of the ablation
    table, apart from its short one-lever screen, whose run names start with "abl_"), in order."""
    return [r for r in ablation_rows or [] if r.get("model") == "baseline" and not _in_screen(r)]


def lever_screen(lever_rows, min_gain: float = 0.003) -> dict | None:
    """The released net's one-lever rows (``results/levers_resnet_w16.csv``: the base run first)
    read as their screen rule reads them: a row passes when its validation accuracy rises by at
    least ``min_gain`` over the base and its validation macro-F1 does not fall (the rule each
    row's ``docs/decision_rules`` file fixed before its run). None without rows."""
    rows = list(lever_rows or [])[1:]
    if not rows:
        return None
    base_flops = float(lever_rows[0]["training_flops"])
    out = [{"label": r["lever_tr"], "d_accuracy": float(r["val_accuracy_vs_base"]),
            "d_macro_f1": float(r["val_macro_f1_vs_base"]), "flops_ratio": float(r["training_flops"]) / base_flops,
            "trades_resolution": "stem_stride=" in str(r.get("differs_from_base"))} for r in rows]
    for r in out:
        r["passed"] = r["d_accuracy"] >= min_gain and r["d_macro_f1"] >= 0
    return {"rows": out, "passed": [r["label"] for r in out if r["passed"]], "min_gain": min_gain,
            "max_flops_ratio": max(r["flops_ratio"] for r in out)}


def fit_gap(history, margin: float = 0.01, overfit: float = 0.05) -> dict | None:
    """How the training curve ends, read from a run's history (``history.json``): the last
    epoch's training accuracy (on augmented batches, dropout on) against the best validation
    accuracy, and what the gap says. ``kind`` is "overfit" when training leads by more than
    ``overfit``, "underfit" when it does not lead by more than ``margin`` (the augmentation
    keeps the net from memorising), "mild" between. None without a history."""
    if not history or not history.get("accuracy") or not history.get("val_accuracy"):
        return None
    train, val = float(history["accuracy"][-1]), max(float(v) for v in history["val_accuracy"])
    gap = train - val
    kind = "overfit" if gap > overfit else "underfit" if gap <= margin else "mild"
    return {"train_accuracy": train, "val_accuracy": val, "gap": gap, "kind": kind}


def _finished_steps(cumulative_rows) -> list[dict]:
    """The cumulative ablation's steps whose every seed finished (the only ones with numbers)."""
    return [r for r in cumulative_rows or [] if not r.get("missing_seeds")]


def _ci(row: dict, column: str) -> float | None:
    value = row.get(column)
    return None if value in ("", None) else float(value)


def ladder_reading(cumulative_rows) -> dict | None:
    """What the cumulative ablation (``results/ablation_cumulative*.csv``) says, over the steps
    whose every seed finished: each step's change in mean validation accuracy and macro-F1 from
    the step above (with its paired 95% interval where the table has one), the step that adds the
    most accuracy, the steps that lower it beyond that interval, the steps whose change stays
    inside it (``within``: no measurable change over these seeds), and the change from the first
    finished step to the last. None until two adjacent steps are complete."""
    complete = _finished_steps(cumulative_rows)
    steps = [{"label": r["lever_tr"].lstrip("+ ").strip(), "d_accuracy": float(r["delta_accuracy"]),
              "d_macro_f1": float(r["delta_macro_f1"]), "ci": _ci(r, "delta_accuracy_ci95")}
             for r in complete if r.get("delta_accuracy") not in ("", None)]
    if not steps:
        return None
    within = [s for s in steps if s["ci"] is not None and abs(s["d_accuracy"]) <= s["ci"]]
    return {"largest": max(steps, key=lambda s: s["d_accuracy"]), "within": within,
            "lowering": [s for s in steps if s["d_accuracy"] < 0 and s not in within],
            "span": float(complete[-1]["val_accuracy_mean"]) - float(complete[0]["val_accuracy_mean"]),
            "all_complete": len(complete) == len(cumulative_rows)}


def screen_steps(ablation_rows) -> list[dict]:
    """The short one-lever screen (ablation rows whose run names start with "abl_", each adding
    settings to the row before): what each step added, in words, and how the study protocol's
    accuracy and macro-F1 changed."""
    rows = [r for r in ablation_rows or [] if _in_screen(r)]
    steps = []
    for before, after in zip(rows, rows[1:]):
        steps.append({"added": describe_changes(after.get("added")),
                      "d_accuracy": after["P_seed_accuracy"] - before["P_seed_accuracy"],
                      "d_macro_f1": after["P_seed_macro_f1"] - before["P_seed_macro_f1"]})
    return steps


#: Markers in the report template where figures appear that are not a ``figure(fig, "name")`` call.
_FIGURE_SLOTS = re.compile(r'figure\(fig, "([^"]+)"|\{# (CM_FIGURES|LITERATURE_CHART) #\}')


def figure_numbers(template_source: str, present: set[str], cm_figures: list[str], chart: bool) -> dict[str, int]:
    """The number each present figure gets, in the order the template places them (the PDF
    numbers figures with a CSS counter in the same order), so the text can say "Şekil 3"."""
    order = []
    for m in _FIGURE_SLOTS.finditer(template_source):
        if m[1]:
            order.append(m[1])
        elif m[2] == "CM_FIGURES":
            order += cm_figures
        elif chart:
            order.append("literature_chart")
    numbers: dict[str, int] = {}
    for name in order:
        if (name in present or name == "literature_chart") and name not in numbers:
            numbers[name] = len(numbers) + 1
    return numbers


_TABLE_TAGS = re.compile(r'<(table|div)\b([^>]*)>')


def number_tables(html: str) -> str:
    """Replace each "{{tbl:name}}" in ``html`` with the number of the table whose id is
    "tbl-name" (tables are numbered in order by a CSS counter; a div with that id names the
    table inside it); "?" for a table that is not there."""
    numbers, count, pending = {}, 0, None
    for m in _TABLE_TAGS.finditer(html):
        name = re.search(r'\bid="tbl-([a-z]+)"', m[2])
        if m[1] == "table":
            count += 1
            if name or pending:
                numbers[name[1] if name else pending] = count
            pending = None
        elif name:
            pending = name[1]
    return re.sub(r"\{\{tbl:([a-z]+)\}\}", lambda m: str(numbers.get(m[1], "?")), html)


def headline(evaluation: dict | None, seeds: dict | None, is_demo: bool) -> dict:
    """The numbers the abstract, conclusion and slides lead with, per protocol: the seeds' mean
    ± standard deviation when a seed summary of real data is given, else this run's model alone
    (``{"seeds": n, "protocols": {name: {"accuracy", "accuracy_std", "macro_f1", "macro_f1_std"}}}``)."""
    if seeds and not is_demo:
        return {"seeds": len(seeds["seeds"]), "protocols": {
            name: {"accuracy": p["accuracy"]["mean"], "accuracy_std": p["accuracy"]["std"],
                   "macro_f1": p["macro_f1"]["mean"], "macro_f1_std": p["macro_f1"]["std"],
                   "recall": {c: r["mean"] for c, r in p.get("recall", {}).items()}}
            for name, p in seeds["protocols"].items()}}
    if not evaluation:
        return {"seeds": 0, "protocols": {}}
    return {"seeds": 1, "protocols": {
        name: {"accuracy": p["plain"]["accuracy"], "accuracy_std": None, "macro_f1": p["plain"]["macro_f1"],
               "macro_f1_std": None, "recall": {r["class"]: r["recall"] for r in p["plain"]["per_class"]}}
        for name, p in evaluation["protocols"].items()}}


def _png_uri(fig) -> str:
    """A figure as a PNG data URI (decimal comma), closed afterwards."""
    import matplotlib.pyplot as plt

    from .figures import decimal_comma

    decimal_comma(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=160, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def configurations_chart(groups: list[dict]) -> str | None:
    """The study protocol's accuracy of each seed group (``seed_groups``), mean with a ± one
    standard deviation bar, best on top, as a PNG data URI (the slides' comparison); None for
    fewer than two groups."""
    if len(groups) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Long labels (a method's variants) wrap onto two lines, leaving the bars most of the width.
    final = groups[0]["label"]
    rows = sorted(((textwrap.fill(g["label"], 42), g["summary"]["protocols"]["P-seed"]["accuracy"]) for g in groups),
                  key=lambda r: r[1]["mean"])
    fig, ax = plt.subplots(figsize=(10, (0.55 if any("\n" in label for label, _ in rows) else 0.5) * len(rows) + 1.0))
    means = [100 * a["mean"] for _, a in rows]
    ax.barh(range(len(rows)), means, xerr=[100 * a["std"] for _, a in rows], capsize=3,
            color=["#1a5276" if label == final else "#a9b7c6" for label, _ in rows])
    for i, m in enumerate(means):
        ax.text(m + 0.3, i, fmt_pct(m / 100, 1), va="center", fontsize=12)
    ax.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=12)
    ax.set_xlim(min(means) - 3, max(means) + 2)
    ax.set_xlabel("Çalışma protokolünde doğruluk (%), tohumların ortalaması ± standart sapma", fontsize=12)
    return _png_uri(fig)


def ladder_chart(cumulative_rows) -> str | None:
    """The cumulative ablation's finished steps as a bar chart (mean validation accuracy over the
    seeds, ± one standard deviation), in ladder order top to bottom, as a PNG data URI (the slides'
    ablation); None with fewer than two finished steps."""
    rows = _finished_steps(cumulative_rows)
    if len(rows) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # The step's name without its details in parentheses: the table beside it has them.
    labels = [textwrap.fill(f"{r['step']}. {r['lever_tr'].split(' (')[0]}", 46) for r in rows][::-1]
    means = [100 * float(r["val_accuracy_mean"]) for r in rows][::-1]
    stds = [100 * float(r["val_accuracy_std"] or 0) for r in rows][::-1]
    fig, ax = plt.subplots(figsize=(10, 0.62 * len(rows) + 1.0))
    ax.barh(range(len(rows)), means, xerr=stds, capsize=3, color="#1a5276")
    for i, (m, sd) in enumerate(zip(means, stds)):
        ax.text(m + sd + 0.3, i, fmt_pct(m / 100, 1), va="center", fontsize=12)
    ax.set_yticks(range(len(rows)), labels, fontsize=12)
    ax.set_xlim(min(means) - 3, max(means) + 3)
    ax.set_xlabel("Doğrulama doğruluğu (%), tohumların ortalaması ± standart sapma", fontsize=12)
    return _png_uri(fig)


def literature_chart(literature: list[dict], evaluation: dict | None, is_demo: bool,
                     lead: dict | None = None) -> str | None:
    """Published accuracies beside this study's, per protocol, as a PNG data URI (a chart without
    faces; decimal comma): the released model with its 95% bootstrap interval and, given a
    ``headline`` of several seeds, their mean ± standard deviation; None without an evaluation."""
    if not evaluation:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    published = {r["protocol"] for r in literature}
    seeds = (lead or {}).get("seeds", 1)
    rows = [(f"{r['work']}", r["protocol"], r["accuracy"], None) for r in literature if r["protocol"] in evaluation["protocols"]]
    for name, p in evaluation["protocols"].items():
        if name in published:
            label = "Bu çalışma" + (" (DEMO)" if is_demo else "") + (", yayımlanan model" if seeds > 1 else "")
            rows.append((label, name, p["plain"]["accuracy"], p["plain"]["ci"]["accuracy"]))
            mean = lead["protocols"].get(name) if seeds > 1 else None
            if mean and mean.get("accuracy_std") is not None:
                rows.append((f"Bu çalışma, {seeds} tohum ortalaması", name, mean["accuracy"],
                             (mean["accuracy"] - mean["accuracy_std"], mean["accuracy"] + mean["accuracy_std"])))
    if not any(ci is not None for *_, ci in rows):
        return None     # no published result on a protocol this run evaluated
    rows.sort(key=lambda r: (r[1], r[2]))
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(rows) + 1.0))
    labels = [f"{w} — {fmt_protocol(proto)}" for w, proto, _, _ in rows]
    colors = ["#a9b7c6" if ci is None else "#1a5276" if "tohum" in w else "#5d8aa8" for w, _, _, ci in rows]
    ax.barh(range(len(rows)), [100 * a for _, _, a, _ in rows], color=colors)
    for i, (_, _, acc, ci) in enumerate(rows):
        if ci is not None:
            ax.errorbar(100 * acc, i, xerr=[[100 * (acc - ci[0])], [100 * (ci[1] - acc)]], color="black", capsize=3)
        ax.text(100 * max(acc, ci[1] if ci else acc) + 0.4, i, fmt_pct(acc, 1), va="center", fontsize=9)   # past the bar
    ax.set_yticks(range(len(rows)), labels, fontsize=9)
    low = min(100 * a for _, _, a, _ in rows)
    ax.set_xlim(max(0, low - 10), 100)
    ax.set_xlabel("Doğruluk (%)")
    bars = "± standart sapma ya da %95 güven aralığı" if seeds > 1 else "%95 güven aralığı"
    ax.set_title(f"Yayımlanmış sonuçlar ve bu çalışma, aynı protokolde\n(hata çubuğu: {bars})", fontsize=10)
    return _png_uri(fig)


#: Deployment formats of ``benchmarks/export_benchmark.py``, in the order the report lists them.
EXPORT_FORMATS = {"keras": "Keras (kaydedilen model)", "keras_float32": "Keras float32 kopyası", "tflite": "TFLite",
                  "tflite_int8": "TFLite dinamik int8", "onnx": "ONNX", "onnx_int8": "ONNX statik int8"}


def exported_model_name(path) -> str | None:
    """The name in the text of a benchmarked model file, from the card released beside it
    (``models/vgg_mid.keras`` → "VGG-Orta"); None for a file without a card."""
    if not path:
        return None
    card = (Path(__file__).resolve().parents[1] / path).with_suffix(".card.json")
    if not card.is_file():
        return None
    return fmt_model(json.loads(card.read_text()).get("architecture", ""))


def export_summary(benchmark: dict) -> dict:
    """An export benchmark as the report words it: the CPU, each measured format's throughput
    and size, and (when measured) each protocol's accuracy for the saved model and the int8 graph."""
    calibration = benchmark.get("calibration")
    return {"machine": benchmark.get("machine", {}), "model": exported_model_name(benchmark.get("model")),
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
    # A run that counted its FLOPs was budgeted in FLOPs, not in minutes on one CPU.
    flops = (training.get("compute") or {}).get("training_flops")
    return {"name": folder.name, "machine": training["machine"],
            "recipe": {"precision": "float32", **training["params"]}, "minutes": minutes, "flops": flops,
            "over_budget_min": 0.0 if flops else max(0.0, minutes - TRAINING_BUDGET_MIN),
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

    The model name alone is not enough: one vendor's model string can name CPUs with and without
    bfloat16 in hardware, and a bfloat16 recipe runs many times slower where it is emulated.
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


#: A committed run folder's name: ``<recipe>_s<seed>``, optionally with a suffix for the machine
#: or condition it ran under (``vgg_mid_bf16_s42_amd``; results/README.md).
RUN_NAME = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*_s\d+(?:_[a-z0-9]+)*$")


@dataclass(frozen=True)
class MissingInput:
    """A report input that was given but could not be used: ``problem`` is "not found" or
    "naming" (a run folder outside ``RUN_NAME``). ``str()`` is the terminal's English line."""

    what: str
    path: str
    problem: str

    def __str__(self) -> str:
        if self.problem == "naming":
            return (f"{self.what}: run folder {self.path} is outside the naming scheme <recipe>_s<seed>[_suffix] "
                    "(results/README.md); left out")
        return f"{self.what}: {self.path} not found"


def _given(paths, what: str, missing: dict, kind: str = "file") -> list[str]:
    """The given ``paths`` that exist; each given one that does not (a results index entry pointing
    nowhere, or a run folder named outside ``RUN_NAME``) goes to ``missing`` with the reason, so the
    report marks its section missing and ``render_html`` warns with the name."""
    found = []
    for p in paths:
        if not p:
            continue
        path = Path(p)
        if kind == "run" and not RUN_NAME.match(path.name):
            missing[path.name] = MissingInput(what, str(p), "naming")
        elif not (path.is_dir() if kind == "run" else path.is_file()):
            missing[path.name] = MissingInput(what, str(p), "not found")
        else:
            found.append(p)
    return found


def _json_records(paths, what: str, missing: dict) -> list[dict]:
    """The optional JSON files among ``paths``, read in order (absent ones noted in ``missing``)."""
    return [read_json(p, what) for p in _given(paths, what, missing)]


def _json_record(path: str, what: str, missing: dict) -> dict | None:
    """One optional JSON file, or None when it is not given or absent."""
    return next(iter(_json_records([path], what, missing)), None)


def _csv_records(path: str, what: str, missing: dict) -> list[dict] | None:
    """Rows of an optional results table (empty cells as ""), or None when it is not given or absent."""
    if not _given([path], what, missing):
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
    inputs = ctx["missing_inputs"] = {}     # results files the report was given but could not use
    ctx["ablation"] = _csv_records(meta.ablation_csv, "ablation table", inputs)
    ctx["cumulative"] = _csv_records(meta.cumulative_csv, "cumulative ablation", inputs)
    ctx["validation_rows"] = _csv_records(meta.validation_csv, "validation table", inputs)
    ctx["lever_rows"] = _csv_records(meta.levers_csv, "lever table", inputs)
    ctx["gpu_rows"] = _csv_records(meta.gpu_search_csv, "GPU search table", inputs)
    # The search's best validation result (limitations and future work both cite it).
    ctx["gpu_best"] = max(ctx["gpu_rows"], key=lambda r: r["val_accuracy"]) if ctx["gpu_rows"] else None
    ctx["gpu_repeat_spread"] = repeat_spread(ctx["gpu_rows"])
    ctx["gpu_groups"] = gpu_seed_groups(ctx["gpu_rows"])
    ctx["decisions"] = _csv_records(meta.decisions_csv, "decisions table", inputs)
    ctx["gpu_verdicts"] = _csv_records(meta.gpu_verdicts_csv, "GPU screens' verdicts", inputs)
    ctx["learning_curve"] = _json_record(meta.learning_curve_json, "learning curve", inputs)
    ctx["short_refit"] = _json_record(meta.short_refit_json, "shorter refit", inputs)
    budgets = _json_records(meta.budget_jsons, "budget check", inputs)
    ctx["cpu_budgets"] = by_cpu(budgets)
    ctx["exports"] = [export_summary(b) for b in _json_records(meta.export_jsons, "export benchmark", inputs)]
    ctx["training_budget_min"] = TRAINING_BUDGET_MIN
    ctx["cpu_run_groups"] = cpu_run_groups(_given(meta.cpu_runs, "run trained on another CPU", inputs, "run"), budgets)
    ctx["seeds"], ctx["seed_groups"] = None, []
    if _given([meta.seeds_summary], "seed summary", inputs):
        ctx["seeds"] = read_json(meta.seeds_summary, "seed summary")
        compare = [meta.seeds_compare] if isinstance(meta.seeds_compare, str) else meta.seeds_compare
        others = _json_records(compare, "seed summary", inputs)
        ctx["seed_groups"] = seed_groups(ctx["seeds"], *others)   # alone: one unlabelled group
    for reason in inputs.values():
        warnings.warn(f"rapor: {reason}", stacklevel=2)
    ctx["missing"].update({name: str(reason) for name, reason in inputs.items()})
    evaluation = ctx.get("evaluation") or {}
    cm_captions = confusion_captions(evaluation.get("protocols", {}))     # in the evaluation's protocol order
    captions = {**FIGURE_CAPTIONS, **cm_captions}
    if evaluation.get("primary"):      # the per-class chart is of the primary protocol: name it
        captions["04_sinif_metrikleri"] = f"Sınıf başına kesinlik, duyarlılık ve F1 ({fmt_protocol(evaluation['primary'])})."
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
    ctx["reproduction"] = baseline_reproduction(ctx["ablation"])
    ctx["repro"] = ctx["reproduction"][-1] if ctx["reproduction"] else None      # the strongest reproduction
    ctx["resnet_widths"] = resnet_widths(ctx["recipe"], ctx["seed_groups"])
    ctx["uses_resnet"] = bool(ctx["resnet_widths"])
    ctx["model_table"], ctx["compare_table"] = compact_layers(ctx.get("model_table")), compact_layers(ctx.get("compare_table"))
    # The evaluated model's one name in the text: its training settings', else its model table's.
    ctx["model_name"] = fmt_model(ctx["recipe"].get("model_name") or (ctx.get("model_table") or {}).get("model", ""))
    ctx["headline"] = headline(ctx.get("evaluation"), ctx["seeds"], ctx["is_demo"])
    ctx.update(meta=asdict(meta), sections=SECTIONS, literature=LITERATURE, study=LITERATURE[0], references=REFERENCES, banner=DEMO_BANNER,
               protocol_notes=PROTOCOLS_TR, contamination_note=CONTAMINATION_TR, unfilled=unfilled_fields(meta),
               eq=equations(ctx["recipe"], bool(evaluation.get("temperature_scaling"))),
               literature_chart=literature_chart(LITERATURE, ctx.get("evaluation"), ctx["is_demo"], ctx["headline"]),
               # Only the slides draw the configurations as a chart (the report has their table).
               configurations_chart=configurations_chart(ctx["seed_groups"]) if template.startswith("slides") else None,
               ladder_chart=ladder_chart(ctx["cumulative"]) if template.startswith("slides") else None,
               fig={k: {"src": _data_uri(p), "caption": captions.get(k, k)} for k, p in figs.items()},
               f=findings(ctx, meta.language), lang=meta.language,
               cm_figures=[k for k in cm_captions if k in figs],
               cm_primary=primary_cm if primary_cm in figs else None,
               generated=_dt.datetime.now().strftime("%d.%m.%Y %H:%M"))
    env = _env()
    source = env.loader.get_source(env, template)[0]
    ctx["fig_no"] = figure_numbers(source, set(ctx["fig"]), ctx["cm_figures"], bool(ctx["literature_chart"]))
    ctx["screen"] = screen_steps(ctx["ablation"])
    ctx["lever_screen"] = lever_screen(ctx["lever_rows"])
    ctx["fit"] = fit_gap(ctx.get("history"))
    ctx["ladder"] = ladder_reading(ctx["cumulative"])
    html = number_tables(env.get_template(template).render(**ctx))
    return html, ctx


def _boxes(box):
    """``box`` and every box inside it (WeasyPrint's layout tree)."""
    yield box
    for child in getattr(box, "children", None) or []:
        yield from _boxes(child)


def layout_problems(document) -> list[str]:
    """Layout faults read from a rendered WeasyPrint document, one sentence per offender with its
    page (empty: none): a table or image wider than the text block (and by how much), a table
    caption left on a page without its table, a heading as the last line of a page, and a word
    wider than its table cell (it runs over the cell's border into the next column)."""
    from weasyprint.formatting_structure import boxes

    problems = []
    for number, page in enumerate(document.pages, start=1):
        page_box = page._page_box
        left = page_box.content_box_x()
        right = left + page_box.width
        # WeasyPrint wraps a table and its caption in one box and may split that wrapper
        # between the two: the caption then ends one page and the table starts the next.
        for box in _boxes(page_box):
            if getattr(box, "is_table_wrapper", False) and any(isinstance(c, boxes.TableCaptionBox) for c in box.children) \
                    and not any(isinstance(c, boxes.TableBox) for c in box.children):
                problems.append(f"page {number}: a table caption is separated from its table")
        lines = [b for b in _boxes(page_box) if isinstance(b, boxes.LineBox)]
        last = max(lines, key=lambda b: b.position_y + b.height, default=None)
        if number < len(document.pages) and last is not None and last.element is not None \
                and last.element.tag in ("h1", "h2", "h3", "h4"):
            problems.append(f"page {number}: a heading ends the page, apart from its text")
        for cell in (b for b in _boxes(page_box) if isinstance(b, boxes.TableCellBox)):
            edge = cell.content_box_x() + cell.width
            for text in (b for b in _boxes(cell) if isinstance(b, boxes.TextBox)):
                if text.position_x + text.width - edge > 0.5:
                    problems.append(f"page {number}: '{text.text.strip()}' runs over the border of its table cell")
        for box in _boxes(page_box):
            if not isinstance(box, (boxes.TableBox, boxes.ReplacedBox)):
                continue
            start = box.border_box_x()
            over = max(start + box.border_width() - right, left - start)
            if over > 0.5:   # CSS px; half a pixel is rounding
                kind = "table" if isinstance(box, boxes.TableBox) else "image"
                problems.append(f"page {number}: a {kind} sticks out of the text block by {over * 25.4 / 96:.1f} mm")
    return problems


def slide_fill(document) -> list[float]:
    """For each page of a rendered slide deck, how far down its content reaches, as a share of
    the slide's height (the slide number and demo tag, placed absolutely, are not content):
    above 1 a slide is overfull (its end is cut off), below 0.5 it is more than half empty."""
    from weasyprint.formatting_structure import boxes

    shares = []
    for page in document.pages:
        page_box = page._page_box
        top, height = page_box.content_box_y(), page_box.height
        bottoms = [b.position_y + b.margin_height() - top for b in _boxes(page_box)
                   if isinstance(b, (boxes.LineBox, boxes.ReplacedBox, boxes.TableBox))
                   and not any(cls in (getattr(b, "element", None) is not None and b.element.get("class") or "")
                               for cls in ("num", "demo-tag"))]
        shares.append(max(bottoms, default=0.0) / height)
    return shares


def write_pdf(html: str, target: Path) -> Path:
    """Render HTML to PDF with WeasyPrint, then write it atomically over ``target``. A table or
    image wider than the text block is reported as a warning (``layout_problems``)."""
    try:
        import weasyprint

        document = weasyprint.HTML(string=html, base_url=str(target.parent)).render()
        pdf = document.write_pdf()
    except Exception as exc:  # WeasyPrint/Pango failures come in many types
        raise ReportError(f"{target}: PDF could not be written ({type(exc).__name__}: {exc}); "
                          "the previous PDF, if any, is unchanged") from exc
    for problem in layout_problems(document):
        warnings.warn(f"{target.name}: {problem}", stacklevel=2)
    return atomic_write_bytes(target, pdf)


def _build(run_dir, out_dir, meta: ReportMeta | None, template: str, stem: str) -> dict[str, Path]:
    out = Path(out_dir or Path(run_dir) / "reports")
    out.mkdir(parents=True, exist_ok=True)
    html, ctx = render_html(run_dir, meta, template)
    if ctx["unfilled"]:
        # Printed, and marked on the title page: a report is not handed in with a placeholder by accident.
        warnings.warn(f"{stem}: title page not filled in: {', '.join(ctx['unfilled'])} "
                      f"(set them as parameters of notebook 07, e.g. -p student=\"...\")", stacklevel=2)
    html_path = atomic_write_bytes(out / f"{stem}.html", html.encode("utf-8"))
    # What the report had to leave out, for the run command to name in the terminal.
    results = Path(run_dir) / "results"
    if results.is_dir():
        atomic_write_bytes(results / REPORT_MISSING, json.dumps({"missing": ctx["missing"]}, ensure_ascii=False,
                                                              indent=1).encode("utf-8"))
    return {"html": html_path, "pdf": write_pdf(html, out / f"{stem}.pdf")}


def build_report(run_dir, out_dir=None, meta: ReportMeta | None = None) -> dict[str, Path]:
    """Write ``rapor.html`` and ``rapor.pdf`` into ``out_dir`` (default: the run's reports/)."""
    return _build(run_dir, out_dir, meta, "report.html.j2", "rapor")


def build_slides(run_dir, out_dir=None, meta: ReportMeta | None = None) -> dict[str, Path]:
    """Write the 16:9 defense deck ``sunum.html`` and ``sunum.pdf`` (one slide per page)."""
    return _build(run_dir, out_dir, meta, "slides.html.j2", "sunum")
