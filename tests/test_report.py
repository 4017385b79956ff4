"""The report and slides, built on a demo run: numbers, sections, Turkish text, figures, no URLs."""
import json
import re
import shutil
from dataclasses import asdict
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from pypdf import PdfReader

from conftest import ROOT
from fer_helpers.report import (
    SECTIONS,
    ReportError,
    build_report,
    fmt_label_rule,
    fmt_lease,
    fmt_num,
    fmt_pct,
    fmt_points,
    fmt_signed,
    fmt_validation,
    write_pdf,
)


def pdf_text(path: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


@pytest.mark.slow
def test_pdf_numbers_sections_turkish_and_banner(demo_run):
    pdf = demo_run / "reports" / "rapor.pdf"
    text = pdf_text(pdf)
    flat = re.sub(r"\s+", " ", text)
    ev = json.loads((demo_run / "results" / "evaluation.json").read_text())
    plain = ev["protocols"][ev["primary"]]["plain"]
    assert fmt_pct(plain["accuracy"]) in flat
    assert fmt_num(plain["macro_f1"]) in flat
    for _, title in SECTIONS:
        assert title in flat, title
    # A thesis' front matter: Turkish and English abstracts, each with its keywords.
    for title in ("Özet", "Anahtar Kelimeler:", "Abstract", "Keywords:"):
        assert title in flat, title
    for ch in "çğıİöşüÇŞÖÜ":
        assert ch in text, ch
    pages = PdfReader(pdf).pages
    assert all("DEMO — sentetik veri; gerçek sonuç değildir" in p.extract_text() for p in pages)
    # The conclusion answers each contribution the introduction names: the rare classes, the explanation's
    # check and the calibration, not the accuracy alone.
    start = flat.index("Sonuç Bu çalışma")
    conclusion = flat[start:flat.index("Gelecek Çalışmalar", start)]
    gradcam = json.loads((demo_run / "results" / "gradcam.json").read_text())
    assert "Küçümseme ve İğrenme sınıflarının duyarlılığı" in conclusion
    assert ("sınamasını geçmiştir" if gradcam["sanity_check"]["passed"] else "sınamasını geçememiştir") in conclusion
    scaled = ev["protocols"][ev["primary"]]["temperature_scaled"]
    assert "testte ECE:" in conclusion and f"{fmt_num(plain['calibration']['ece'])} → {fmt_num(scaled['ece'])}" in conclusion


@pytest.mark.slow
def test_every_figure_is_embedded_and_html_is_offline(demo_run):
    html = (demo_run / "reports" / "rapor.html").read_text()
    figures = {p.stem for p in (demo_run / "figures").glob("*.png")}
    charts = html.count('alt="Literatürle karşılaştırma"')      # drawn by the report itself, no face in it
    assert html.count('<img src="data:image/png;base64,') == len(figures) + charts
    # Every figure has a written caption, never its bare file name.
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", html, re.S)
    assert len(captions) == len(figures) + charts and not any(c.strip() in figures for c in captions)

    class Refs(HTMLParser):
        def __init__(self):
            super().__init__()
            self.refs = []

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag in ("script", "img", "link", "style", "iframe"):
                self.refs += [a.get("src"), a.get("href")]

    parser = Refs()
    parser.feed(html)
    external = [r for r in parser.refs if r and re.match(r"^(https?:)?//", r)]
    assert external == [] and "<script" not in html


@pytest.mark.slow
def test_slides_are_16_by_9_one_slide_per_page(demo_run):
    reader = PdfReader(demo_run / "reports" / "sunum.pdf")
    box = reader.pages[0].mediabox
    assert float(box.width) / float(box.height) == pytest.approx(16 / 9, rel=0.01)
    html = (demo_run / "reports" / "sunum.html").read_text()
    assert len(reader.pages) == html.count('<section class="slide') >= 12     # no slide runs onto a second page
    assert all("DEMO" in page.extract_text() for page in reader.pages[1:])
    texts = [" ".join(page.extract_text().split()) for page in reader.pages]
    # The closing slide is the conclusion: it states each protocol's result; limitations have a slide of their own.
    ev = json.loads((demo_run / "results" / "evaluation.json").read_text())
    conclusion = texts[-1]
    assert conclusion.startswith("Sonuç")
    for name, p in ev["protocols"].items():
        assert fmt_pct(p["plain"]["accuracy"]) in conclusion, name
    assert any(t.startswith("Sınırlılıklar") for t in texts)
    # Future work leaves out the temperature scaling the evaluation already did.
    future = next(t for t in texts if t.startswith("Gelecek çalışmalar"))
    assert ev["temperature_scaling"] and "Kalibrasyon" not in future


@pytest.mark.slow
def test_missing_artifact_is_reported_not_crashed(demo_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(demo_run, copy)
    (copy / "results" / "gradcam.json").unlink()
    for f in (copy / "figures").glob("05_*"):
        f.unlink()
    out = build_report(copy)
    text = re.sub(r"\s+", " ", pdf_text(out["pdf"]))
    assert "Bu bölüm eksik: gradcam.json bulunamadı" in text
    assert "notebook 05" in text


def test_every_committed_run_folder_follows_the_naming_scheme():
    from fer_helpers.report import RUN_NAME

    folders = [p.name for p in (ROOT / "results" / "runs").iterdir() if p.is_dir()]
    assert folders and [n for n in folders if not RUN_NAME.match(n)] == []


def test_a_results_entry_pointing_nowhere_or_off_the_naming_scheme_is_named_and_its_section_marked(demo_run, tmp_path):
    """A results index entry (a notebook 07 parameter) that names a missing file, or a run folder
    outside <recipe>_s<seed>[_suffix]: a warning names it, the appendix marks it missing, the
    run command repeats it in the terminal, and the rest of the report is still built."""
    from fer_helpers.report import ReportMeta, render_html
    from fer_helpers.runner import _report_missing

    odd_run = tmp_path / "my run (copy)"
    shutil.copytree(ROOT / "results" / "runs" / "vgg_mid_bf16_s42_amd", odd_run)
    meta = ReportMeta(decisions_csv=str(tmp_path / "decisions_gone.csv"), validation_csv=str(ROOT / "results" / "validation_compare.csv"),
                      seeds_summary=str(tmp_path / "seeds_gone.json"),
                      cpu_runs=(str(odd_run), str(ROOT / "results" / "runs" / "vgg_mid_bf16_s43_amd")))
    with pytest.warns(UserWarning) as caught:
        html, ctx = render_html(demo_run, meta)
    said = " ".join(str(w.message) for w in caught)
    assert "decisions_gone.csv not found" in said and "seeds_gone.json not found" in said
    assert "my run (copy)" in said and "naming scheme" in said
    assert set(ctx["missing_inputs"]) == {"decisions_gone.csv", "seeds_gone.json", "my run (copy)"}
    assert ctx["decisions"] is None and ctx["validation_rows"]                    # the others still render
    assert [r["name"] for g in ctx["cpu_run_groups"] for r in g["runs"]] == ["vgg_mid_bf16_s43_amd"]
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
    assert "Raporun bazı bölümleri eksik" in text and "decisions_gone.csv — bulunamadı" in text
    assert "my run (copy) — çalışma klasörünün adı" in text
    assert "Bu bölüm eksik: " + str(tmp_path / "seeds_gone.json") + " bulunamadı" in text
    # The run command reads the same record after notebook 07 and names each in the terminal.
    results = tmp_path / "results"
    results.mkdir()
    (results / "report_missing.json").write_text(json.dumps({"missing": ctx["missing"]}))
    assert any("decisions_gone.csv" in reason for reason in _report_missing(results))


@pytest.mark.slow
def test_failing_pdf_keeps_previous_pdf(demo_run, tmp_path, monkeypatch):
    target = tmp_path / "rapor.pdf"
    target.write_bytes(b"%PDF-previous")
    import weasyprint

    def boom(*a, **k):
        raise RuntimeError("pango exploded")

    monkeypatch.setattr(weasyprint.HTML, "render", boom)
    with pytest.raises(ReportError, match=r"rapor.pdf: PDF could not be written .*pango exploded"):
        write_pdf("<html></html>", target)
    assert target.read_bytes() == b"%PDF-previous"
    assert list(tmp_path.iterdir()) == [target]     # no temporary file left behind


def test_turkish_number_formats():
    assert fmt_pct(0.71834) == "%71,83" and fmt_num(0.4213) == "0,421"
    # Thousands take dots and decimals a comma, as in "2.955,6 s" of training time.
    assert fmt_num(2955.63, 1) == "2.955,6" and fmt_num(-10.4, 2) == "−10,40" and fmt_num(434.4, 0) == "434"
    # Label rules and validation sources in Turkish words, without the settings' code values.
    assert fmt_label_rule("distribution") == "oy dağılımı" and fmt_label_rule("other") == "other"
    assert fmt_validation("from_train(0.2)") == "eğitim bölümünden ayrılan katmanlı pay, %20"
    assert fmt_validation("official") == "veri setinin kendi doğrulama bölümü"
    assert fmt_validation("from_train(x)") == "from_train(x)"
    assert fmt_lease("lease12_probes_s44.json") == "12" and fmt_lease("search.json") == "search.json"
    assert fmt_points(0.0006) == "0,06 puan" and fmt_points(0.0047, 1) == "0,5 puan" and fmt_points(None) == "–"
    assert fmt_points(0.0031, unit=False) == "0,31"
    assert fmt_signed(0.0049) == "+0,49 puan" and fmt_signed(-0.0101) == "−1,01 puan" and fmt_signed(0.0) == "+0,00 puan"
    assert fmt_signed(-0.0009, "num", 4) == "−0,0009" and fmt_signed(None) == "–"


@pytest.mark.slow
def test_protocols_are_described_in_turkish(demo_run, tmp_path):
    """The evaluation JSON keeps English descriptions; the Turkish report names the protocols in Turkish."""
    from fer_helpers.evaluation import CONTAMINATION_TR, PROTOCOLS
    from fer_helpers.report import ReportMeta, render_html

    run = tmp_path / "ferplus_like"
    shutil.copytree(demo_run, run)
    path = run / "results" / "evaluation.json"
    ev = json.loads(path.read_text())
    entry = ev["protocols"].pop("test")
    english = "FER2013Valid served as the validation split"
    ev["protocols"]["P-seed"] = {**entry, "description": PROTOCOLS["P-seed"], "contamination": english + " ..."}
    ev["protocols"]["P-FER+"] = {**entry, "description": PROTOCOLS["P-FER+"], "contamination": None}
    ev["primary"] = "P-seed"
    path.write_text(json.dumps(ev))
    text = " ".join(render_html(run, ReportMeta())[0].split())
    assert "<i>Çalışma protokolü</i> başlangıç çalışmasınınkidir" in text and "<i>FER+ protokolü</i>" in text
    assert "<td>Çalışma protokolü</td>" in text and "<td>FER+ protokolü</td>" in text
    assert f"Çalışma protokolü: {CONTAMINATION_TR}" in text
    assert PROTOCOLS["P-seed"] not in text and english not in text
    data = json.loads((run / "results" / "01_data_summary.json").read_text())
    assert f"eğitim etiketi {fmt_label_rule(data['label_mode'])}, doğrulama kaynağı {fmt_validation(data['validation'])}" in text


KILL_SCRIPT = """
import sys
from pathlib import Path
from fer_helpers.runner import RunSpec, run
tmp = Path(sys.argv[1])
run(RunSpec(runs_dir=tmp / "runs", figures_dir=tmp / "figures", reports_dir=tmp / "reports",
            run_name="demo_quick", notebooks=["07"], params={"data_dir": "demo"}))
"""


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_killing_the_run_during_the_report_keeps_published_outputs(demo_run, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    root = tmp_path / "copy"                       # work on a copy: the demo run is shared
    shutil.copytree(demo_run.parents[1], root, ignore=shutil.ignore_patterns(".jupyter"))
    run_dir = root / "runs" / demo_run.name
    before = {d: _snapshot(root / d) for d in ("figures", "reports")}
    pdf_before = (run_dir / "reports" / "rapor.pdf").read_bytes()
    script = tmp_path / "kill.py"
    script.write_text(KILL_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(root)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = run_dir / "reports" / "executed" / "07_rapor.ipynb"
    start_mtime = marker.stat().st_mtime_ns if marker.exists() else 0
    deadline = time.time() + 120
    while time.time() < deadline and (not marker.exists() or marker.stat().st_mtime_ns == start_mtime):
        time.sleep(0.05)
    time.sleep(1.5)                      # inside notebook 07 now
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its kernel, without any cleanup
    proc.wait()
    assert {d: _snapshot(root / d) for d in ("figures", "reports")} == before
    pdf = run_dir / "reports" / "rapor.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-" and (pdf.read_bytes() == pdf_before or len(pdf.read_bytes()) > 1000)


def _flat(html: str) -> str:
    """The HTML with its whitespace collapsed and the break hints (<wbr>) inside run names dropped."""
    return " ".join(html.replace("<wbr>", "").split())


def _main_text(html: str) -> str:
    """The report's chapters, before the appendix."""
    return html[:html.index('id="ek"')]


@pytest.mark.slow
def test_seed_tables_and_reproduction_are_in_the_main_text(demo_run, tmp_path):
    from fer_helpers.report import ReportMeta, render_html

    ablation = tmp_path / "ablation.csv"
    ablation.write_text("run,model,changes,added,epochs_run,wall_time_min,cpus,val_accuracy,P_seed_accuracy,"
                        "P_seed_macro_f1,P_FERplus_accuracy,recall_Contempt,recall_Disgust\n"
                        "abl_a,baseline,starting-study settings,,6,5.0,1,0.6,0.6,0.3,0.62,0.0,0.0\n"
                        "abl_b,vgg_fast,model_name=vgg_fast,model_name=vgg_fast,6,8.0,1,0.7,0.71,0.4,0.73,0.1,0.2\n"
                        "baseline_e15_s42,baseline,,epochs=15,15,10.5,2,0.69,0.6706,0.38,0.7019,0.0,0.0\n"
                        "baseline_e60_s42,baseline,,epochs=60,60,66.4,2,0.76,0.7513,0.446,0.7794,0.0,0.0\n")
    stat = lambda m, s: {"mean": m, "std": s, "values": [m]}  # noqa: E731
    seeds = {"seeds": [1, 2, 3], "val_accuracy": stat(0.79, 0.004), "wall_time_min": stat(38.2, 0.5),
             "params": {"augmentation": "study", "seed": 1, "epochs": 20},
             "protocols": {"P-seed": {"accuracy": stat(0.8012, 0.0031), "macro_f1": stat(0.651, 0.012),
                                      "recall": {"Contempt": stat(0.31, 0.05), "Disgust": stat(0.45, 0.04)},
                                      "tta_flip_accuracy": stat(0.8051, 0.002)}}}
    other = {**seeds, "params": {"augmentation": "strong", "seed": 1, "epochs": 20},
             "protocols": {"P-seed": {**seeds["protocols"]["P-seed"], "accuracy": stat(0.7824, 0.0014)}}}
    (tmp_path / "seeds.json").write_text(json.dumps(seeds))
    (tmp_path / "other.json").write_text(json.dumps(other))
    meta = ReportMeta(ablation_csv=str(ablation), seeds_summary=str(tmp_path / "seeds.json"),
                      seeds_compare=str(tmp_path / "other.json"))
    html, ctx = render_html(demo_run, meta)
    main = _flat(_main_text(html))
    # The starting study's network retrained here, beside the reported 71.8%.
    assert "Başlangıç çalışmasının yeniden üretimi" in main and "%67,06" in main and "%75,13" in main
    assert [r["run"] for r in ctx["reproduction"]] == ["baseline_e15_s42", "baseline_e60_s42"]
    # The seeds' table: spreads of accuracies in percentage points, the unit named once in the caption.
    assert "%80,12 ± 0,31</td>" in main and "doğrulukta yüzde puan)</caption>" in main and "± %" not in main
    # The compared configuration in words, not as a setting's code value.
    assert "<td class=\"wrap\">güçlü artırma</td>" in main and "augmentation=" not in main
    assert "%78,24 ± 0,14</td>" in main
    # The one-lever screen is summarised in the discussion in words, with its numbers.
    assert "\"VGG-Hızlı\" adımı çalışma protokolünde doğruluğu +11,00 puan" in main
    # The full run table is in the appendix, with the code names the result files use.
    appendix = _flat(html[html.index('id="ek"'):])
    assert "A.2 Tüm çalışmalar" in appendix and "model_name=vgg_fast" in appendix and "starting-study settings" in appendix
    # The demo report leads with its own model, not with real data's seed means.
    assert ctx["headline"]["seeds"] == 1
    plain = render_html(demo_run, ReportMeta())[0]
    assert "A.2 Tüm çalışmalar" not in plain and "Yapılandırmaların karşılaştırılması" not in plain


@pytest.mark.slow
def test_a_residual_final_configuration_beside_the_vgg_study(demo_run):
    """The committed summaries: the width-16 ResNet as the final configuration, VGG-Orta as
    another method and one of its variants; the compute column says they cost the same."""
    from fer_helpers.report import ReportMeta, render_html

    results = ROOT / "results"
    meta = ReportMeta(seeds_summary=str(results / "seeds_summary_resnet_w16.json"),
                      seeds_compare=tuple(str(results / f"seeds_summary{s}.json") for s in ("", "_strong_aug_mid", "_study_e30")))
    html, ctx = render_html(demo_run, meta)
    main = _flat(_main_text(html))
    assert [g["label"] for g in ctx["seed_groups"]] == [
        "son yapılandırma", "VGG-Orta, kendi yöntemiyle", "VGG-Orta + güçlü artırma",
        "VGG-Hızlı (VGG-Orta yöntemiyle), 30 epok, float32 hesap"]
    # FLOPs from the records (VGG-Orta's runs predate the count: priced from their settings).
    resnet, vgg = (json.loads((results / f).read_text())["training_flops"]["mean"]
                   for f in ("seeds_summary_resnet_w16.json", "seeds_summary.json"))
    assert resnet <= vgg
    assert f'<td class="r">{resnet / 1e14:.2f}</td>'.replace(".", ",") in main
    assert f'<td class="r">{vgg / 1e14:.2f}</td>'.replace(".", ",") in main
    # The residual net is described in the method chapter, with its parameter count.
    assert "ResNet-18</b> (He vd., 2016)" in main and "Genişlik 16 ile 0,70 M parametre" in main
    assert ctx["resnet_widths"] == [(16, 703_320)]
    assert '<td class="wrap">son yapılandırma (ResNet-18, genişlik 16)</td>' in main
    # Without a residual net anywhere, the method chapter does not describe one.
    assert "ResNet-18</b> (He vd., 2016)" not in _flat(_main_text(render_html(demo_run, ReportMeta())[0]))
    # A few compared configurations are each named in the discussion with their difference.
    assert "son yapılandırmadan ayrılan yapılandırmaların çalışma protokolündeki farkları: VGG-Orta" in main


@pytest.mark.slow
def test_many_compared_configurations_are_summarised_by_their_range(demo_run):
    """The report's eight compared configurations read as a range and its two ends, not a list of eight."""
    from fer_helpers.report import ReportMeta, render_html

    results = ROOT / "results"
    names = ("", "_study_e50", "_study_e30", "_study_e20", "_os30_e30", "_strong_aug", "_strong_aug_mid", "_wd05_mid")
    meta = ReportMeta(seeds_summary=str(results / "seeds_summary_resnet_w16.json"),
                      seeds_compare=tuple(str(results / f"seeds_summary{s}.json") for s in names))
    html, ctx = render_html(demo_run, meta)
    main = _flat(_main_text(html))
    final = ctx["seed_groups"][0]["summary"]["protocols"]["P-seed"]["accuracy"]["mean"]
    diffs = sorted(g["summary"]["protocols"]["P-seed"]["accuracy"]["mean"] - final for g in ctx["seed_groups"][1:])
    span = [f"{100 * d:+.2f} puan".replace(".", ",").replace("-", "−") for d in (diffs[0], diffs[-1])]
    assert f"8 yapılandırmanın çalışma protokolündeki farkı {span[0]} ile {span[1]} arasındadır" in main
    assert "farkları:" not in main and "Hiçbiri son yapılandırmayı testte geçmez" in main


@pytest.mark.slow
def test_a_residual_released_model_is_worded_by_its_own_recipe(demo_run, tmp_path):
    """The evaluated model trained with the residual recipe: the text states the FLOPs budget
    (the previous model's training), the wide augmentation and random erasing it trained with."""
    from fer_helpers.report import ReportMeta, render_html

    run = tmp_path / "run"
    shutil.copytree(demo_run, run)
    training = json.loads((run / "results" / "training.json").read_text())
    training["params"].update(model_name="resnet", width=16, augmentation="wide", erasing=0.5, optimizer="sgd")
    (run / "results" / "training.json").write_text(json.dumps(training))
    results = ROOT / "results"
    meta = ReportMeta(seeds_summary=str(results / "seeds_summary_resnet_w16.json"),
                      seeds_compare=(str(results / "seeds_summary.json"),))
    main = _flat(_main_text(render_html(run, meta)[0]))
    vgg = json.loads((results / "seeds_summary.json").read_text())["training_flops"]["mean"]
    assert f"önceki modelin (VGG-Orta) eğitimi olan {vgg / 1e14:.2f}·10<sup>14</sup> FLOP".replace(".", ",", 1) in main
    assert "yaklaşık bir saatte eğitilebilmelidir" not in main and "yaklaşık bir saatlik" not in main
    assert "±%15 ölçekleme ve ±%12 kaydırma" in main and "rastgele silme; Zhong vd., 2020" in main
    assert "Nesterov momentumlu SGD ile" in main and "genişlik 32) ve onun olasılıklarının" in main
    # The appendix's records are of the VGG-Orta era: there they name VGG-Orta, not "the released model".
    html = render_html(run, ReportMeta(**{**asdict(meta), "decisions_csv": str(results / "decisions.csv"),
                                          "learning_curve_json": str(results / "learning_curve.json")}))[0]
    appendix = _flat(html[html.index('id="ek"'):])
    assert "bu bölümler VGG-Orta'yı anlatır" in appendix and "(VGG-Orta → aday)" in appendix
    assert "yayımlanan model" not in appendix.replace("yayımlanan model henüz VGG-Orta iken", "")
    # The discussion names the last step, from the previous method to the residual net, with its seed means.
    resnet = json.loads((results / "seeds_summary_resnet_w16.json").read_text())
    gain = resnet["protocols"]["P-seed"]["accuracy"]["mean"] - json.loads(
        (results / "seeds_summary.json").read_text())["protocols"]["P-seed"]["accuracy"]["mean"]
    assert "Önceki modelden (VGG-Orta) bu modele geçişte mimari ve eğitim yöntemi birlikte değişmiştir" in main
    assert f"çalışma protokolünde doğruluğu {100 * gain:+.2f} puan".replace(".", ",") in main


def test_headline_is_the_seed_mean_on_real_data_and_the_run_alone_on_demo_data():
    from fer_helpers.report import headline

    stat = lambda m, s: {"mean": m, "std": s}  # noqa: E731
    seeds = {"seeds": [42, 43, 44], "protocols": {"P-seed": {"accuracy": stat(0.8217, 0.0006), "macro_f1": stat(0.682, 0.002),
                                                             "recall": {"Contempt": stat(0.31, 0.03)}}}}
    ev = {"primary": "P-seed", "protocols": {"P-seed": {"plain": {"accuracy": 0.8223, "macro_f1": 0.683,
                                                                  "per_class": [{"class": "Contempt", "recall": 0.278}]}}}}
    real = headline(ev, seeds, is_demo=False)
    assert real["seeds"] == 3 and real["protocols"]["P-seed"]["accuracy"] == 0.8217
    assert real["protocols"]["P-seed"]["accuracy_std"] == 0.0006 and real["protocols"]["P-seed"]["recall"]["Contempt"] == 0.31
    demo = headline(ev, seeds, is_demo=True)
    assert demo["seeds"] == 1 and demo["protocols"]["P-seed"]["accuracy"] == 0.8223
    assert demo["protocols"]["P-seed"]["accuracy_std"] is None and demo["protocols"]["P-seed"]["recall"]["Contempt"] == 0.278
    assert headline(None, None, False) == {"seeds": 0, "protocols": {}}


def test_the_one_lever_screen_and_the_reproduction_are_read_from_the_ablation_table():
    from fer_helpers.report import baseline_reproduction, describe_setting, screen_steps

    rows = [{"run": "abl_a", "model": "baseline", "added": "", "P_seed_accuracy": 0.60, "P_seed_macro_f1": 0.30},
            {"run": "abl_b", "model": "vgg_fast", "added": "model_name=vgg_fast; augmentation=study",
             "P_seed_accuracy": 0.70, "P_seed_macro_f1": 0.41},
            {"run": "abl_c", "model": "vgg_fast", "added": "label_mode=distribution; targets=soft",
             "P_seed_accuracy": 0.72, "P_seed_macro_f1": 0.45},
            {"run": "baseline_e60_s42", "model": "baseline", "added": "epochs=60", "P_seed_accuracy": 0.75, "P_seed_macro_f1": 0.45}]
    steps = screen_steps(rows)
    assert [s["added"] for s in steps] == ["VGG-Hızlı, başlangıç çalışmasının artırması", "oy dağılımı etiketleri, oy dağılımı hedefleri"]
    assert steps[0]["d_accuracy"] == pytest.approx(0.10) and steps[1]["d_macro_f1"] == pytest.approx(0.04)
    assert [r["run"] for r in baseline_reproduction(rows)] == ["baseline_e60_s42"] and baseline_reproduction(None) == []
    assert describe_setting("weight_decay", 0.05) == "ağırlık azalması 0,05" and describe_setting("epochs", 30) == "30 epok"
    assert describe_setting("unknown_key", 3) == "unknown_key = 3"


@pytest.mark.slow
def test_appendix_tables_render_their_numbers(demo_run, tmp_path):
    """Each optional record becomes an appendix table (and no main-text claim); its numbers in Turkish format."""
    from fer_helpers.report import ReportMeta, render_html

    plain = render_html(demo_run, ReportMeta())[0]
    # The validation numbers the choices were made on.
    val = tmp_path / "validation.csv"
    val.write_text("run,seed,epochs,oversample_fraction,augmentation,n_val,val_accuracy,val_macro_f1,"
                   "val_recall_Contempt,val_recall_Disgust\n"
                   "study_e30_s42,42,30,0.15,study,5677,0.8126,0.6567,0.2647,0.4737\n")
    html, _ = render_html(demo_run, ReportMeta(validation_csv=str(val)))
    assert "A.3 Seçimlerin dayandığı doğrulama sayıları" in html and "A.3 Seçimlerin" not in plain
    assert "study_e30_s42" in _flat(html) and "%81,26" in html and "0,657" in html and "0,26" in html
    # Two validation accuracies appear in the report; the note says why they differ.
    assert "çoğulluk etiketleriyle" in html and "oy dağılımının argmax" in html

    # The GPU screen: a run stopped at the lease's budget is marked, repeats give the noise.
    gpu = tmp_path / "gpu_search.csv"
    gpu.write_text("name,model,n_params,epochs,epochs_run,augmentation,label_smoothing,weight_decay,precision,"
                   "seed,best_epoch,val_accuracy,val_macro_f1,val_recall_Contempt,val_recall_Disgust,"
                   "last_val_accuracy,seconds_per_epoch,gpu,source\n"
                   "vgg_e27,vgg,1175656,27,27,study,0.0,0.0001,float32,42,26,0.8295,0.6869,0.3235,0.5,0.8284,3.4,H200,a.json\n"
                   "vgg_e45_bf16,vgg,1175656,45,45,study,0.0,0.0001,mixed_bfloat16,42,40,0.8321,0.6846,0.32,0.53,0.83,7.0,H100,lease7_ema.json\n"
                   "fast_e120,vgg_fast,657032,120,101,study,0.0,0.0001,float32,42,100,0.818,0.6526,0.1765,0.4211,0.812,4.87,H200,a.json\n"
                   "vgg_e27,vgg,1175656,27,27,study,0.0,0.0001,float32,42,25,0.8246,0.68,0.3,0.5,0.82,3.4,H100,lease8_x.json\n")
    html = _flat(render_html(demo_run, ReportMeta(gpu_search_csv=str(gpu)))[0])
    assert "A.5 GPU'da doğrulama taraması" in html and "A.5 GPU" not in plain
    assert "%82,95" in html and "0,687" in html and "1,18" in html and "101/120*" in html
    assert html.count("<td>bf16</td>") == 1 and '<td class="r">7</td>' in html
    assert "aralarındaki en büyük fark (0,49 puan)" in html

    # Rules written before training, with their verdicts.
    dec = tmp_path / "decisions.csv"
    dec.write_text("name,rule,written,decided,seeds,reference_val_macro_f1,candidate_val_macro_f1,reference_val_accuracy,"
                   "candidate_val_accuracy,timed_run_min,budget_min,decision\n"
                   "os30_e30,r1.txt,2026-11-26T04:36:10Z,2026-11-26T06:03:09Z,42 43 44,0.6456,0.6405,0.8075,0.8068,,,keep\n"
                   "epochs50,r2.txt,2026-11-26T07:21:45Z,2026-11-26T10:48:01Z,42 43 44,0.6466,0.6614,0.8082,0.8181,46.1,60.0,adopt\n"
                   "head_rebalance,r3.txt,2026-11-27T04:07:59Z,2026-11-27T04:14:28+00:00,42,0.6719,0.6757,0.8263,0.8224,,,keep\n")
    html = _flat(render_html(demo_run, ReportMeta(decisions_csv=str(dec)))[0])
    assert "A.4 Önceden yazılan karar kuralları" in html and "2026-11-26 04:36" in html
    assert "0,6466 → 0,6614" in html and "%80,82 → %81,81" in html and "46,1 / 60" in html
    assert html.count("<td>yayımlanan model kaldı</td>") == 2 and html.count("<td>benimsendi</td>") == 1
    assert "<code>head_rebalance</code> yalnızca son katmanı yeniden dengeler" in html and "drw_finetune" not in html
    # Run names stay in the appendix: future work does not list them.
    assert "os30_e30" not in _main_text(html)

    # The GPU screens' verdicts: accuracy rules in points, macro-F1 rules in four decimals.
    verdicts = tmp_path / "gpu_search_verdicts.csv"
    verdicts.write_text(
        "lease,rule,candidate,control,change,seeds,measure,control_mean,candidate_mean,gain,min_gain,seeds_ahead,min_ahead,"
        "guard_measure,control_guard,candidate_guard,max_guard_drop,criterion,ahead,guard,verdict\n"
        "7,r7.txt,mid_ema9995,mid,ema9995,42 43 44,val_accuracy,0.825367,0.8272,0.001833,0.003,3,2,val_macro_f1,0.672233,"
        "0.6789,0.0,False,True,True,keep\n"
        "8b,r8.txt,mid_lr4e3,mid,lr4e3,42 43 44 45 46 47,val_macro_f1,0.67765,0.678517,0.000867,0.008,4,4,val_accuracy,"
        "0.8276,0.8286,0.002,False,True,True,keep\n"
        "10,r10.txt,mid_new,mid,new,42 43 44,val_accuracy,,,,0.003,,2,val_macro_f1,,,0.0,,,,undecided\n")
    html = _flat(render_html(demo_run, ReportMeta(gpu_verdicts_csv=str(verdicts)))[0])
    assert "GPU taramalarının önceden yazılan kuralları" in html
    assert "%82,54 → %82,72" in html and "+0,18 puan (0,30 puan)" in html and "3 / 3 (2)" in html
    assert "0,6776 → 0,6785" in html and "+0,0009 (0,0080)" in html and '<td class="r">42–47</td>' in html
    assert html.count("<td>etkisiz</td>") == 2 and html.count("<td>karar yok</td>") == 1

    # Budget checks and runs on other CPUs, and export benchmarks: one appendix list, each CPU named once.
    budgets = []
    for name, precision, flags, minutes, fits in (("slow", "mixed_bfloat16", ["avx2"], 378.6, False),
                                                  ("fast", "mixed_bfloat16", ["amx_bf16"], 49.0, True),
                                                  ("slow", "float32", ["avx2"], 148.2, False)):
        path = tmp_path / f"budget_{name}_{precision}.json"
        path.write_text(json.dumps({"model_name": "vgg_mid", "precision": precision, "epochs": 50,
                                    "run_minutes": minutes, "inference_images_per_second": 204.5,
                                    "budget_minutes": 60.0, "fits_budget": fits,
                                    "machine": {"cpu_model": f"Xeon {name}", "cpu_count": 2, "cpu_flags": flags}}))
        budgets.append(str(path))
    html = _flat(render_html(demo_run, ReportMeta(budget_jsons=(*budgets, str(tmp_path / "absent.json"))))[0])
    assert "A.8 Farklı işlemcilerde süre" in html and html.count("Xeon slow") == 1
    assert "379 dk" in html and "148 dk" in html and "49 dk" in html and "sığmaz" in html and "sığar" in html
    assert "Xeon" not in _main_text(html)           # budgets are history, not the study
    machine = {"cpu_model": "Xeon slow", "cpu_count": 2, "cpu_flags": ["avx512_vnni"]}
    full = {"keras": {"size_mb": 4.58, "images_per_second": 273.4}, "onnx_int8": {"size_mb": 1.16, "images_per_second": 2592.3},
            "protocols": {"P-seed": {"keras": {"accuracy": 0.8223, "macro_f1": 0.6827},
                                     "onnx_int8": {"accuracy": 0.8215, "macro_f1": 0.6797, "top1_agreement": 0.9917}}},
            "calibration": {"images": 512, "split": "train", "seed": 0, "weight_bits": 7}, "machine": machine}
    export = tmp_path / "export.json"
    export.write_text(json.dumps(full))
    html = _flat(render_html(demo_run, ReportMeta(export_jsons=(str(export),)))[0])
    assert "2.592 görüntü/s (1,16 MB)" in html and "%82,15" in html and "%99,2" in html and "7 bitle" in html
    # A released model's benchmark names the model, from the card beside its file.
    export.write_text(json.dumps({**full, "model": "models/vgg_mid.keras"}))
    html = _flat(render_html(demo_run, ReportMeta(export_jsons=(str(export),)))[0])
    assert "Dağıtım biçimlerinin hızı (VGG-Orta)," in html


def test_a_run_budgeted_in_flops_is_not_held_to_the_minutes_of_one_cpu(demo_run):
    from fer_helpers.report import ReportMeta, cpu_run_summary, render_html

    runs = ROOT / "results" / "runs"
    resnet = cpu_run_summary(runs / "resnet_w16_e60_s42_cpu")
    assert resnet["flops"] == pytest.approx(7.207e14, rel=1e-3) and resnet["over_budget_min"] == 0
    vgg = cpu_run_summary(runs / "vgg_mid_bf16_s42_amd")           # trained under the one-hour budget
    assert vgg["flops"] is None and vgg["over_budget_min"] > 0
    html = _flat(render_html(demo_run, ReportMeta(cpu_runs=(str(runs / "resnet_w16_e60_s42_cpu"),)))[0])
    assert "hesap 7,21·10<sup>14</sup> FLOP; bütçe süreyle değil FLOP ile ölçülür" in html
    assert "dakikalık bütçeyi" not in html


def test_seed_groups_are_labelled_by_their_differences():
    from fer_helpers.report import seed_groups

    a = {"params": {"augmentation": "study", "epochs": 20, "seed": 42}}
    b = {"params": {"augmentation": "strong", "epochs": 20, "seed": 43}}
    groups = seed_groups(a, b)
    # Each comparison is named in words by what differs from the final configuration.
    assert [g["label"] for g in groups] == ["son yapılandırma", "güçlü artırma"]
    assert groups[1]["diff"] == {"augmentation": "strong"}
    assert groups[0]["summary"] is a and groups[1]["summary"] is b
    assert [g["label"] for g in seed_groups(a, a)] == ["son yapılandırma", "aynı ayarlar"]
    c = {"params": {"augmentation": "study", "epochs": 30, "seed": 42}}
    assert [g["label"] for g in seed_groups(c, a, b)] == ["son yapılandırma", "20 epok", "güçlü artırma, 20 epok"]
    # Summaries of different ages compare by their stored settings, completed with the
    # defaults a run predates (release.summarize_seeds; tested in test_release).
    bf16 = {"params": {"augmentation": "study", "epochs": 20, "precision": "mixed_bfloat16"}}
    f32 = {"params": {"augmentation": "study", "epochs": 20, "precision": "float32", "model_name": "vgg_fast"}}
    assert [g["label"] for g in seed_groups(bf16, f32)] == ["son yapılandırma", "VGG-Hızlı, float32 hesap"]


def test_another_method_and_its_variants_are_named_by_its_model():
    """A residual net as the final configuration beside the VGG study: the VGG is another method
    (its model and many settings differ), its variants are read against it, not the final one."""
    from fer_helpers.report import seed_groups

    resnet = {"params": {"model_name": "resnet", "optimizer": "sgd", "learning_rate": 0.1, "augmentation": "wide",
                         "erasing": 0.5, "epochs": 60, "schedule": "cosine"}}
    vgg = {"params": {"model_name": "vgg_mid", "optimizer": "adamw", "learning_rate": 0.002, "augmentation": "study",
                      "erasing": 0.0, "epochs": 50, "schedule": "cosine"}}
    vgg_e30 = {"params": {**vgg["params"], "epochs": 30}}
    vgg_e30_strong = {"params": {**vgg["params"], "epochs": 30, "augmentation": "strong"}}
    groups = seed_groups(resnet, vgg, vgg_e30, vgg_e30_strong)
    assert [g["label"] for g in groups] == ["son yapılandırma", "VGG-Orta, kendi yöntemiyle", "VGG-Orta + 30 epok",
                                            "VGG-Orta + güçlü artırma, 30 epok"]
    assert groups[1]["base"] == "son yapılandırma" and groups[2]["base"] == "VGG-Orta, kendi yöntemiyle"
    assert [g["method"] for g in groups] == [False, True, False, False]
    assert groups[2]["diff"] == {"epochs": 30} and groups[1]["diff"]["model_name"] == "vgg_mid"
    # The other method's recipe is worded where the table is explained; a variant needs none.
    assert groups[1]["recipe"] == "AdamW, öğrenme oranı 0,002, kosinüs öğrenme oranı, başlangıç çalışmasının artırması, 50 epok"
    assert groups[2]["recipe"] is None
    # A model swap with few other changes stays a variant of the final configuration.
    vgg_fast = {"params": {**vgg["params"], "model_name": "vgg_fast", "epochs": 30}}
    assert seed_groups(vgg, vgg_fast)[1]["label"] == "VGG-Hızlı, 30 epok"
    # ... and after another method, a variant with another model is named by both.
    assert seed_groups(resnet, vgg, vgg_fast)[2]["label"] == "VGG-Hızlı (VGG-Orta yöntemiyle), 30 epok"


def test_results_tables_read_blank_cells_as_empty_text(tmp_path):
    """An empty cell (a setting a run predates) renders as "", without pandas' dtype warning."""
    import warnings

    from fer_helpers.report import _csv_records

    table = tmp_path / "t.csv"
    table.write_text("run,oversample_fraction,augmentation\na,,study\nb,0.15,\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = _csv_records(str(table), "table", missing := {})
    assert rows == [{"run": "a", "oversample_fraction": "", "augmentation": "study"},
                    {"run": "b", "oversample_fraction": 0.15, "augmentation": ""}]
    assert _csv_records("", "table", missing) is None and not missing               # not given: nothing to say
    assert _csv_records(str(tmp_path / "absent.csv"), "table", missing) is None and "absent.csv" in missing


def test_gpu_runs_are_grouped_by_configuration_and_lease():
    """Seeds of one configuration in one lease become one row (their mean); other leases, other
    settings and runs stopped at the budget stay rows of their own."""
    from fer_helpers.report import gpu_seed_groups

    def run(name, seed, acc, source="lease8_x.json", epochs_run=50, **settings):
        return {"name": name, "model": "vgg_mid", "n_params": 1166344, "epochs": 50, "epochs_run": epochs_run,
                "augmentation": "study", "precision": "mixed_bfloat16", "seed": seed, "val_accuracy": acc,
                "val_macro_f1": acc - 0.15, "val_recall_Contempt": 0.3, "val_recall_Disgust": 0.5,
                "source": source, **settings}

    # Only the learning-rate runs carry that column, as in a table older than the setting.
    rows = [run("mid_s42", 42, 0.82), run("mid_s43", 43, 0.83), run("mid_s45", 45, 0.84, source="lease8b_y.json"),
            run("mid_s42", 42, 0.80, source="lease7_z.json"),
            run("lr_s42", 42, 0.85, learning_rate=0.004), run("lr_s43", 43, 0.86, epochs_run=20, learning_rate=0.004)]
    groups = gpu_seed_groups(rows)
    assert [(g["name"], g["lease"], g["seeds"]) for g in groups] == [
        ("lr", "8", "42"), ("mid", "8", "42, 43, 45"), ("mid", "7", "42"),
        ("lr", "8", "43")]                          # the stopped run last, however good
    assert groups[0]["learning_rate"] == 0.004 and groups[0]["epochs_run"] == 50
    mid = groups[1]
    assert mid["val_accuracy"] == pytest.approx(0.83) and mid["val_accuracy_std"] == pytest.approx(0.01)
    assert mid["val_macro_f1"] == pytest.approx(0.68) and mid["n_seeds"] == 3
    assert groups[0]["val_accuracy_std"] is None
    assert gpu_seed_groups(None) is None


@pytest.mark.slow
def test_a_given_model_is_described_by_its_own_committed_training_run(demo_run, tmp_path):
    """Skip-training runs (the reference report) show the evaluated model's training record, marked as such."""
    from fer_helpers.report import ReportMeta, render_html

    run = tmp_path / "given"
    shutil.copytree(demo_run, run)
    own = json.loads((run / "results" / "training.json").read_text())
    # The given model trained unlike the demo run: soft targets, the study's augmentation, oversampling.
    own["params"] = {**own["params"], "model_name": "vgg_mid", "targets": "soft", "augmentation": "study",
                     "imbalance": "oversample", "oversample_fraction": 0.15, "schedule": "cosine",
                     "optimizer": "adamw", "loss": "crossentropy", "patience": 0}
    given = {"pretrained_model": "/somewhere/models/reference.keras", "params": None,
             "note": "training skipped; evaluating a given model", "data": own["data"]}
    (run / "results" / "training.json").write_text(json.dumps({**given, "source_run": "results/runs/ref_s42",
                                                              "source_training": own}))
    html, _ = render_html(run, ReportMeta())
    text = " ".join(html.split())
    assert "eğitimi atlamış, yayımlanan modeli değerlendirmiştir" in text
    assert "Kayıt: <code>results/runs/ref_s42</code>" in text and "/somewhere" not in html
    assert f"Eğitim {own['epochs_run']} epok sürdü" in text
    assert f"İşlemci: {own['machine']['cpu_model']}, {own['machine']['cpu_count']} çekirdek" in text   # not just "x86_64"
    # Method is worded from the given model's own recipe, not from this run's (absent) settings.
    assert "Hedefler işaretleyici oylarının dağılımıdır (Denklem" in text and "tek-sıcak vektörlerdir" not in text
    assert "yatay çevirme, ±10° döndürme, parlaklık ve kontrast oynatma" in text and "kaydırma" not in text
    assert "sınıfınkinin en az %15 düzeyine ulaşana dek" in text and "AdamW ile" in text
    # Why classes fail is read from the confusion matrix, not typed by hand.
    assert "en sık tahmin edilen yanlış sınıf: " in text and "Öfke ile İğrenme" not in text
    # Recorded settings that the others switched off are marked in the appendix, so none reads as used.
    p = own["params"]
    note = '<span class="note">({})</span>'.format
    assert f"<td>reduce_lr_patience</td><td class=\"wrap\">{p['reduce_lr_patience']} {note('etkisiz: schedule=cosine')}</td>" in text
    assert f"<td>focal_gamma</td><td class=\"wrap\">{p['focal_gamma']} {note('etkisiz: loss=crossentropy')}</td>" in text
    assert f"<td>patience</td><td class=\"wrap\">0 {note('erken durdurma yok')}</td>" in text
    assert f"<td>weight_decay</td><td class=\"wrap\">{p['weight_decay']}</td>" in text
    slides, _ = render_html(run, ReportMeta(), template="slides.html.j2")
    assert "AdamW, ısınmalı kosinüs öğrenme oranı" in slides and "en kalabalık sınıfın %15 düzeyine" in slides
    # The demo run has a validation split, so it is temperature-scaled on it; calibration leaves future work.
    ev = json.loads((run / "results" / "evaluation.json").read_text())
    t = ev["temperature_scaling"]["temperature"]
    assert f"T = {t:.2f}".replace(".", ",") in text and "Sıcaklık ölçekleme (Denklem" in text
    assert "Kalibrasyonun sıcaklık ölçekleme ile iyileştirilmesi" not in text
    # Confusion matrices follow the evaluation's protocol order (counts, then normalised); the slide
    # shows the primary protocol's normalised one.
    from fer_helpers.figures import confusion_figure_name
    _, ctx = render_html(run, ReportMeta(), template="slides.html.j2")
    assert ctx["cm_figures"] == [confusion_figure_name(n, norm) for n in ev["protocols"] for norm in (False, True)]
    assert ctx["cm_primary"] == confusion_figure_name(ev["primary"], True)

    # Without a committed run the report says training was skipped and shows no training numbers.
    (run / "results" / "training.json").write_text(json.dumps(given))
    html, _ = render_html(run, ReportMeta())
    assert "Eğitim atlandı" in html and "epok sürdü" not in html and "kendi eğitim" not in html
    assert "yinelenerek çoğaltılır" not in html   # nothing is claimed about an unknown recipe

    # A run from before the CPU model was recorded says so instead of naming only "x86_64".
    machine = {k: v for k, v in own["machine"].items() if k not in ("cpu_model", "cpu_flags")}
    (run / "results" / "training.json").write_text(json.dumps({**given, "source_training": {**own, "machine": machine}}))
    text = " ".join(render_html(run, ReportMeta())[0].split())
    assert f"İşlemci: {machine['processor']} (işlemci modeli kaydedilmedi), {machine['cpu_count']} çekirdek" in text


def test_setting_notes_mark_what_other_settings_switched_off():
    from fer_helpers.report import setting_notes

    # The starting study: Adam with a plateau schedule, no class balancing, cross-entropy.
    study = {"schedule": "plateau", "optimizer": "adam", "loss": "crossentropy", "imbalance": "none",
             "reduce_lr_patience": 5, "warmup_epochs": 0, "weight_decay": 1e-4, "focal_gamma": 2.0,
             "oversample_fraction": 0.5, "patience": 10}
    assert setting_notes(study) == {"warmup_epochs": "etkisiz: schedule=plateau",
                                    "weight_decay": "etkisiz: optimizer=adam",
                                    "focal_gamma": "etkisiz: loss=crossentropy",
                                    "oversample_fraction": "etkisiz: imbalance=none"}
    used = {**study, "schedule": "cosine", "optimizer": "adamw", "loss": "focal", "imbalance": "oversample",
            "patience": 0}
    assert setting_notes(used) == {"reduce_lr_patience": "etkisiz: schedule=cosine", "patience": "erken durdurma yok"}
    # A run that recorded neither the setting nor the one it depends on gets no note.
    assert setting_notes({"weight_decay": 1e-4}) == {} and setting_notes({}) == {}


def test_by_cpu_names_each_cpu_once_in_order():
    from fer_helpers.report import by_cpu

    slow = {"cpu_model": "Xeon", "cpu_count": 2, "cpu_flags": ["avx512f"]}
    amx = {**slow, "cpu_flags": ["amx_bf16"]}                 # same model name, bfloat16 in hardware
    records = [{"machine": slow, "n": 1}, {"machine": amx, "n": 2}, {"machine": dict(slow), "n": 3}]
    groups = by_cpu(records)
    assert [[r["n"] for r in g["records"]] for g in groups] == [[1, 3], [2]]
    assert groups[0]["machine"] is slow and by_cpu([]) == []


def test_a_projection_is_matched_only_to_runs_on_the_same_kind_of_cpu(tmp_path):
    """Two CPUs of one model name, one with bfloat16 in hardware and one without, are two CPUs:
    the fast one's runs get its own projection, not the slow one's (same recipe, 40 times slower)."""
    from fer_helpers.report import cpu_run_groups

    recipe = {"model_name": "vgg_mid", "precision": "mixed_bfloat16", "epochs": 50, "batch_size": 64}
    fast = {"cpu_model": "AMD EPYC", "cpu_count": 2, "cpu_flags": ["avx2", "avx512f", "avx512_bf16"]}
    slow = {"cpu_model": "AMD EPYC", "cpu_count": 2, "cpu_flags": ["avx2"]}
    run = tmp_path / "mid_s42_amd"
    run.mkdir()
    (run / "training.json").write_text(json.dumps({"wall_time_s": 3614.3, "params": {**recipe, "seed": 42},
                                                   "machine": fast}))
    (run / "evaluation.json").write_text(json.dumps({"protocols": {"P-seed": {"plain": {"accuracy": 0.818,
                                                                                       "macro_f1": 0.687}}}}))
    projections = [{**recipe, "run_minutes": 57.4, "machine": fast}, {**recipe, "run_minutes": 2285.6, "machine": slow}]
    [group] = cpu_run_groups([run], projections)
    assert group["projected_minutes"] == 57.4
    assert cpu_run_groups([run], projections[1:])[0]["projected_minutes"] is None


def test_training_recipe_fills_the_augmentation_of_runs_that_predate_it():
    from fer_helpers.report import training_recipe

    assert training_recipe(None) == {} and training_recipe({"params": None}) == {}
    assert training_recipe({"params": {"model_name": "vgg"}})["augmentation"] == "strong"
    assert training_recipe({"params": {"model_name": "baseline"}})["augmentation"] == "study"
    given = {"params": {"model_name": "vgg_mid", "augmentation": "none", "targets": "soft"}}
    assert training_recipe(given) == given["params"] and training_recipe(given) is not given["params"]


def test_confusion_matrix_figures_get_a_caption_per_protocol():
    from fer_helpers.figures import confusion_figure_name
    from fer_helpers.report import confusion_captions

    assert confusion_figure_name("P-FER+", True) == "04_karisiklik_p_ferplus_normalize"
    assert confusion_figure_name("test", False) == "04_karisiklik_test_sayilar"
    captions = confusion_captions({"P-seed": {}, "P-FER+": {}})
    assert len(captions) == 4 and "FER+ protokolü" in captions["04_karisiklik_p_ferplus_sayilar"]
    assert "duyarlılık" in captions["04_karisiklik_p_seed_normalize"]
    assert "sayılar" in captions["04_karisiklik_p_seed_sayilar"]


def test_findings_compare_with_each_published_result_on_the_same_protocol():
    from fer_helpers.report import LITERATURE, findings

    def protocol(acc):
        return {"plain": {"accuracy": acc, "macro_f1": 0.6,
                          "per_class": [{"class": "Anger", "recall": 0.7, "support": 10},
                                        {"class": "Contempt", "recall": 0.3, "support": 2}]}}

    ev = {"primary": "P-seed", "protocols": {"P-seed": protocol(0.82), "P-FER+": protocol(0.855)}}
    rows = findings({"evaluation": ev})["vs_literature"]
    assert [(r["work"], r["protocol"]) for r in rows] == [(r["work"], r["protocol"]) for r in LITERATURE]
    assert rows[0]["diff"] == pytest.approx(0.82 - 0.718) and rows[1]["diff"] == pytest.approx(0.855 - 0.8385)
    # A run evaluated on its own test split only has nothing published to compare with.
    assert findings({"evaluation": {"primary": "test", "protocols": {"test": protocol(0.5)}}})["vs_literature"] == []
    # With several seeds the differences are the seeds' mean's; the released model's stay beside them.
    lead = {"seeds": 3, "protocols": {"P-seed": {"accuracy": 0.83}, "P-FER+": {"accuracy": 0.87}}}
    rows = findings({"evaluation": ev, "headline": lead})["vs_literature"]
    assert rows[0]["diff"] == pytest.approx(0.83 - 0.718) and rows[0]["released_diff"] == pytest.approx(0.82 - 0.718)
    assert rows[2]["diff"] == pytest.approx(0.87 - 0.8499) and rows[2]["released"] == 0.855


def test_findings_give_mcnemar_on_every_protocol_with_a_compare_model():
    from fer_helpers.report import findings, fmt_model

    def protocol(acc, cacc, only_a, only_b, p):
        return {"plain": {"accuracy": acc, "macro_f1": 0.6, "per_class": [{"class": "Anger", "recall": acc, "support": 9}]},
                "compare": {"accuracy": cacc},
                "mcnemar": {"only_a_correct": only_a, "only_b_correct": only_b, "p_value": p}}

    ev = {"primary": "P-seed", "protocols": {"P-seed": protocol(0.83, 0.82, 300, 229, 0.002),
                                             "P-FER+": protocol(0.87, 0.855, 120, 100, 0.2)}}
    f = findings({"evaluation": ev})
    assert [m["protocol"] for m in f["mcnemar_all"]] == ["P-seed", "P-FER+"]
    assert f["mcnemar"]["protocol"] == "P-seed" and f["mcnemar"]["significant"]
    assert f["mcnemar_all"][1]["diff"] == pytest.approx(0.015) and not f["mcnemar_all"][1]["significant"]
    # Without a compare model there is no test to report.
    del ev["protocols"]["P-seed"]["mcnemar"], ev["protocols"]["P-FER+"]["mcnemar"]
    assert findings({"evaluation": ev})["mcnemar"] is None and findings({"evaluation": ev})["mcnemar_all"] == []
    # The compare model is named by its one name in the text, a saved ResNet by its width too.
    assert fmt_model("vgg_mid") == "VGG-Orta" and fmt_model("resnet18_w16") == "ResNet-18 (genişlik 16)"


def test_small_p_values_are_written_as_powers_of_ten():
    from fer_helpers.report import fmt_p

    assert fmt_p(7.2e-250) == "7,2·10⁻²⁵⁰" and fmt_p(2.6e-4) == "2,6·10⁻⁴" and fmt_p(0.0312) == "0,031"


def test_weakest_classes_name_what_they_were_most_often_mistaken_for():
    from fer_helpers.report import findings

    classes = ["Anger", "Contempt", "Neutral"]
    plain = {"accuracy": 0.7, "macro_f1": 0.5,
             "per_class": [{"class": c, "recall": r, "support": n} for c, r, n in
                           (("Anger", 0.8, 10), ("Contempt", 0.25, 8), ("Neutral", 1.0, 5))],
             # Rows are the true class: Contempt was taken for Neutral 5 times, for Anger once.
             "confusion_matrix": [[8, 0, 2], [1, 2, 5], [0, 0, 5]]}
    ev = {"primary": "test", "classes": classes, "protocols": {"test": {"plain": plain}}}
    weakest = findings({"evaluation": ev}, "en")["weakest"]
    assert [w["class"] for w in weakest] == ["Contempt", "Anger", "Neutral"]
    assert weakest[0]["confused_with"] == "Neutral" and (weakest[0]["confused_count"], weakest[0]["row_total"]) == (5, 8)
    assert weakest[1]["confused_with"] == "Neutral" and weakest[1]["confused_count"] == 2
    assert "confused_with" not in weakest[2]          # never wrong: nothing to name
    # Without a confusion matrix (older evaluations) the weakest classes are listed as before.
    del plain["confusion_matrix"]
    assert "confused_with" not in findings({"evaluation": ev}, "en")["weakest"][0]


def test_learning_curve_section_reports_the_rule_and_its_verdict(demo_run, tmp_path):
    from conftest import load_research
    from fer_helpers.report import ReportMeta, render_html

    lc = load_research("learning_curve")
    accs = {0.25: 0.79, 0.5: 0.805, 0.75: 0.815, 1.0: 0.82}
    rows = [{"run": f"lc{int(s * 100)}", "seed": 42, "n_train": round(22708 * s), "share": s, "val_accuracy": a,
             "val_macro_f1": a - 0.15, "p_seed_accuracy": a - 0.002, "p_seed_macro_f1": 0.66,
             "p_ferplus_accuracy": a + 0.03, "p_ferplus_macro_f1": 0.7} for s, a in accs.items()]
    path = tmp_path / "learning_curve.json"
    path.write_text(json.dumps({"rule": "docs/decision_rules/learning_curve.txt", **lc.curve_verdict(rows), "rows": rows}))
    text = _flat(render_html(demo_run, ReportMeta(learning_curve_json=str(path)))[0])
    appendix = text[text.index('id="ek"'):]
    assert "A.6 Öğrenme eğrisi" in appendix
    assert '<td class="r">%25</td><td class="r">5.677</td> <td class="r">%79,00</td><td class="r">0,640</td>' in appendix
    # 1,52 pt per doubling → 1,52 · log2(1,25) = 0,49 pt predicted; the last step is +0,50 pt; the rule asks 0,30 pt.
    assert "+1,52 puan" in appendix and "+0,49 puan" in appendix and "+0,50 puan" in appendix and "0,30 puan" in appendix
    assert "koşullar sağlandı" in appendix
    # Future work quotes the prediction (and points to the appendix), without run names.
    future = text[text.index('id="gelecek"'):text.index('id="kaynakca"')]
    assert "+0,49 puan; Ek A.6" in future and "lc100" not in future
    assert "Kestirimin test protokollerinde sınanması" not in text            # no refit ran yet
    # The refit check: one refit seed against its control, read by its own rule.
    refit = {"run": "refit_s42", "seed": 42, "n_train": 28385, "p_seed_accuracy": 0.823, "p_seed_macro_f1": 0.69,
             "p_ferplus_accuracy": 0.85, "recall_contempt": 0.4, "recall_disgust": 0.5, "wall_time_min": 75.8}
    control = {**refit, "run": "ref_s42", "n_train": 22708, "p_seed_accuracy": 0.818, "p_seed_macro_f1": 0.687,
               "p_ferplus_accuracy": 0.846, "recall_contempt": 0.352, "recall_disgust": 0.481}
    check = {"rule": "docs/decision_rules/refit.txt", "min_gain": 0.003, "refit": refit, "control": control,
             "delta": {"p_seed_accuracy": 0.005, "p_seed_macro_f1": 0.003, "p_ferplus_accuracy": 0.004,
                       "recall_contempt": 0.048, "recall_disgust": 0.019},
             "reading": "consistent with the curve"}
    path.write_text(json.dumps({"rule": "docs/decision_rules/learning_curve.txt", **lc.curve_verdict(rows),
                                "rows": rows, "refit_check": check}))
    text = _flat(render_html(demo_run, ReportMeta(learning_curve_json=str(path)))[0])
    assert "<code>refit_s42</code>, 28.385 görüntü" in text and "%82,30" in text and "75,8" in text
    assert '<td class="r">+0,048</td> <td class="r">+0,019</td>' in text            # rare classes
    assert "<strong>eğriyle tutarlı</strong>" in text and "Fark, ortalamalar" not in text
    # More seeds: every run's row, both sides' mean ± std and the difference of the means.
    other = {**refit, "run": "refit_s43", "seed": 43, "p_seed_accuracy": 0.829}
    stats = {k: {"mean": 0.8, "std": 0.002} for k in ("p_seed_macro_f1", "p_ferplus_macro_f1",
                                                      "recall_contempt", "recall_disgust")}
    seeds = {"seeds": [42, 43], "refit_runs": [refit, other],
             "control_runs": [control, {**control, "run": "ref_s43", "seed": 43}],
             "refit": {**stats, "p_seed_accuracy": {"mean": 0.826, "std": 0.0042},
                       "p_ferplus_accuracy": {"mean": 0.865, "std": 0.003}, "wall_time_min": {"mean": 76.0, "std": 0.3}},
             "control": {**stats, "p_seed_accuracy": {"mean": 0.818, "std": 0.0},
                         "p_ferplus_accuracy": {"mean": 0.846, "std": 0.0}, "wall_time_min": {"mean": 60.0, "std": 0.0}},
             "delta": {**check["delta"], "p_seed_accuracy": 0.008, "p_ferplus_accuracy": 0.019}}
    path.write_text(json.dumps({"rule": "r.txt", **lc.curve_verdict(rows), "rows": rows,
                                "refit_check": {**check, "seeds": seeds}}))
    text = _flat(render_html(demo_run, ReportMeta(learning_curve_json=str(path)))[0])
    assert "%82,90" in text and "%82,60 ± 0,42" in text and "76,0 ± 0,3" in text
    assert '<td>Fark, ortalamalar</td><td class="r">+0,80 puan</td>' in text
    path.write_text(json.dumps({"rule": "r.txt", **lc.curve_verdict(rows), "rows": rows,
                                "refit_check": {**check, "reading": "not confirmed by one seed"}}))
    assert "<strong>tek tohumla doğrulanmadı</strong>" in render_html(demo_run, ReportMeta(learning_curve_json=str(path)))[0]
    # A flat curve: the rule says the data is not what holds the method back.
    flat = [{**r, "val_accuracy": 0.82 - 0.001 * (1 - r["share"])} for r in rows]
    path.write_text(json.dumps({"rule": "r.txt", **lc.curve_verdict(flat), "rows": flat}))
    text = _flat(render_html(demo_run, ReportMeta(learning_curve_json=str(path)))[0])
    assert "koşullar sağlanmadı" in text and "az şey katar" in text
    assert "Öğrenme eğrisi" not in render_html(demo_run, ReportMeta())[0]


def test_short_refit_section_prices_the_schedule_on_validation(demo_run, tmp_path):
    from conftest import load_research
    from fer_helpers.report import ReportMeta, render_html

    sr = load_research("short_refit")
    curve = {"predicted_refit_gain": 0.009, "predicted_refit_macro_f1_gain": 0.019}
    control = {"run": "ref_s42", "seed": 42, "epochs": 50, "val_accuracy": 0.8272, "val_macro_f1": 0.6871}
    short = {**control, "run": "e36_s42", "epochs": 36, "val_accuracy": 0.8232, "val_macro_f1": 0.6801}
    path = tmp_path / "refit36.json"
    path.write_text(json.dumps({"rule": "docs/decision_rules/refit36.txt",
                                "schedule": sr.schedule_verdict(short, control, curve)}))
    meta = ReportMeta(short_refit_json=str(path))
    text = _flat(render_html(demo_run, meta)[0])
    assert "A.7 Bütçeye sığan daha kısa bir yeniden eğitim" in text and "(36 epok;" in text
    assert '<td>kısa program, 36 epok</td><td class="r">%82,32</td><td class="r">0,680</td>' in text
    # −0,40 pt for the shorter schedule + 0,90 pt from the data = +0,50 pt predicted; macro-F1 −0,007 + 0,019.
    assert '<td class="r">−0,40 puan</td> <td class="r">−0,007</td>' in text
    assert '<td class="r">+0,50 puan</td> <td class="r">+0,012</td>' in text
    assert "sonuç: <strong>devam</strong>" in text and "kısa yeniden eğitim koşturulmadı" not in text
    # A schedule whose cost leaves less than the rule asks of the data's gain: "stop".
    costly = {**short, "val_accuracy": 0.8152}
    path.write_text(json.dumps({"rule": "r.txt", "schedule": sr.schedule_verdict(costly, control, curve)}))
    text = _flat(render_html(demo_run, meta)[0])
    assert "sonuç: <strong>dur</strong>" in text and "kısa yeniden eğitim koşturulmadı" in text
    assert "Bütçeye sığan" not in render_html(demo_run, ReportMeta())[0]


# --------------------------------------------------------------------------- a thesis' form

TERMINOLOGY = Path(__file__).resolve().parents[1] / "docs" / "terminoloji.md"


def banned_terms() -> list[tuple[str, str, str]]:
    """(banned form, scope, match) from the terminology list's table: scope "tümü" or "ana metin",
    match "kök" (case-insensitive word start) or "tam" (case-sensitive whole word)."""
    terms = []
    for line in TERMINOLOGY.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[3] in ("tümü", "ana metin"):
            terms += [(form.strip(), cells[3], cells[4]) for form in cells[2].split(",")]
    return terms


def find_banned(text: str, main_end: int) -> list[str]:
    found = []
    for form, scope, match in banned_terms():
        where = text if scope == "tümü" else text[:main_end]
        pattern = (r"(?<![\w-])" + re.escape(form) + r"(?![\w-])") if match == "tam" else r"(?<!\w)" + re.escape(form)
        flags = 0 if match == "tam" else re.IGNORECASE
        found += [f"{form!r} ({scope}): …{where[max(0, m.start() - 40):m.end() + 20]}…"
                  for m in re.finditer(pattern, where, flags)]
    return found


def test_the_terminology_check_finds_what_it_bans():
    terms = banned_terms()
    assert ("kaldıraç", "tümü", "kök") in terms and ("adamw", "ana metin", "tam") in terms and len(terms) >= 20
    text = "AdamW ile eğitim; Kaldıraçlar. Ek A: adamw, P-seed"
    found = find_banned(text, main_end=text.index("Ek A"))
    assert len(found) == 1 and "kaldıraç" in found[0]          # AdamW is the name; the code token only in the appendix
    assert find_banned("P-seed sonucu", main_end=20) and not find_banned("P-seeds", main_end=20)


def test_notebook_prose_uses_the_terminology_lists_words():
    """The notebooks' Turkish prose (markdown cells and code comments) avoids the forms the list
    bans everywhere; code tokens (its "ana metin" rows) are the notebooks' parameters and stay."""
    import nbformat

    found = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            prose = cell.source if cell.cell_type == "markdown" else "\n".join(re.findall(r"#.*", cell.source))
            found += [f"{path.name} cell {i}: {hit}" for hit in find_banned(prose, main_end=0)]
    assert found == []


@pytest.mark.slow
def test_report_reads_as_a_thesis(demo_run):
    """Chapters a committee expects, the terminology list's banned forms absent, every reference
    cited in the text, numbered equations each referenced, numbered tables and figures resolved."""
    from fer_helpers.report import REFERENCES

    text = re.sub(r"\s+", " ", pdf_text(demo_run / "reports" / "rapor.pdf"))
    references = text.rindex("Kaynakça")
    for chapter in ("Özet", "Anahtar Kelimeler", "Abstract", "Keywords", "İlgili Çalışmalar", "Tartışma",
                    "Sınırlılıklar", "Ek A: Deney Kayıtlarının Özeti"):
        assert chapter in text, chapter
    # The Turkish text: the English abstract (up to the contents) is English prose, not a code token.
    turkish = text[:text.index("Abstract")] + text[text.index("İçindekiler"):]
    assert find_banned(turkish, main_end=turkish.rindex("Ek A: Deney Kayıtlarının Özeti")) == []
    # Every entry of the reference list is cited before it, as "(Author..., year)" or in running text.
    body = text[:references]
    uncited = [r["cite"] for r in REFERENCES if r["cite"] not in body]
    assert uncited == []
    # Equations: numbered 1..n in order, each number referenced as "Denklem k" somewhere in the text.
    html = (demo_run / "reports" / "rapor.html").read_text()
    numbers = [int(n) for n in re.findall(r'<span class="eqno">\((\d+)\)</span>', html)]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 8
    referenced = {int(n) for n in re.findall(r"Denklem (\d+)", html)} | {
        int(n) for pair in re.findall(r"Denklem (\d+) ve (\d+)", html) for n in pair}
    assert set(numbers) - referenced == set()
    # Cross-references resolved: no table placeholder left, no "Tablo ?".
    assert "{{tbl:" not in html and "Tablo ?" not in html and "Şekil ?" not in html


@pytest.mark.slow
def test_no_table_or_image_is_wider_than_its_page_and_slides_are_neither_overfull_nor_half_empty(demo_run):
    import weasyprint

    from fer_helpers.report import layout_problems, slide_fill

    report = weasyprint.HTML(string=(demo_run / "reports" / "rapor.html").read_text()).render()
    assert layout_problems(report) == []
    slides = weasyprint.HTML(string=(demo_run / "reports" / "sunum.html").read_text()).render()
    assert layout_problems(slides) == []
    fill = slide_fill(slides)
    assert all(share <= 1.0 for share in fill), fill
    assert all(share >= 0.5 for share in fill), fill
    # A chart beside text still takes most of the slide's width (readable from the back row).
    from weasyprint.formatting_structure import boxes

    from fer_helpers.report import _boxes

    for page in slides.pages:
        width = page._page_box.width
        for img in (b for b in _boxes(page._page_box) if isinstance(b, boxes.ReplacedBox)):
            share = img.border_width() / width
            assert share >= 0.45 or img.border_height() / page._page_box.height >= 0.6, share


def test_run_names_break_after_their_underscores_only():
    from fer_helpers.report import fmt_run_name

    assert str(fmt_run_name("wide_e50_strong")) == "wide_<wbr>e50_<wbr>strong"
    assert str(fmt_run_name("a<b")) == "a&lt;b" and str(fmt_run_name(42)) == "42"


def test_layout_check_catches_a_table_wider_than_the_page():
    import weasyprint

    from fer_helpers.report import layout_problems

    wide = "<table><tr>" + "<td>sütun_çok_uzun_bir_hücre</td>" * 30 + "</tr></table>"
    problems = layout_problems(weasyprint.HTML(string=f"<html><body>{wide}</body></html>").render())
    assert problems and "page 1: a table sticks out of the text block" in problems[0]
    assert layout_problems(weasyprint.HTML(string="<html><body><table><tr><td>1</td></tr></table></body></html>").render()) == []


def test_layout_check_catches_a_word_wider_than_its_cell_and_the_reports_headers_break_at_soft_hyphens():
    """A long header word in a narrow column either breaks at a soft hyphen (the report's
    headers) or runs over the border into the next column, which the check names."""
    from importlib.resources import files

    import weasyprint

    from fer_helpers.report import layout_problems

    css = files("fer_helpers").joinpath("templates/report.css").read_text(encoding="utf-8")

    def problems(header):
        html = (f"<html><style>{css}</style><body><table class='small' style='width: 45mm'><thead><tr>"
                f"<th>{header}</th><th>x</th><th>y</th></tr></thead><tr><td class='r'>%83,21</td><td>1</td><td>2</td></tr>"
                "</table></body></html>")
        return layout_problems(weasyprint.HTML(string=html).render())

    over = problems("Küçümsemeduyarlılığı")
    assert len(over) == 1 and "'Küçümsemeduyarlılığı' runs over the border of its table cell" in over[0]
    assert problems("Küçüm&shy;seme duyarlı&shy;lığı") == []


def test_layout_check_catches_a_caption_or_heading_left_at_the_foot_of_a_page():
    """A caption that ends a page while its table starts the next (a long caption before a
    long table split between rows): flagged without the report's caption rule, kept with it."""
    from importlib.resources import files

    import weasyprint

    from fer_helpers.report import layout_problems

    css = files("fer_helpers").joinpath("templates/report.css").read_text(encoding="utf-8")
    table = ("<h3>Tablo</h3><table class='small'><caption>" + "uzun bir tablo başlığı " * 25 + "</caption>"
             "<thead><tr><th>a</th><th>b</th></tr></thead>" + "<tr><td>1</td><td>2</td></tr>" * 30 + "</table>")
    found = {}
    for rule in ("", css):
        found[rule] = set()
        for lines in range(30, 60):
            html = f"<html><style>{rule}</style><body>" + "<p>satır</p>" * lines + table + "<p>son</p></body></html>"
            found[rule].update(p.split(": ", 1)[1] for p in layout_problems(weasyprint.HTML(string=html).render()))
    assert "a table caption is separated from its table" in found[""]
    assert found[css] == set()
    # A heading told it may end a page, before a table that cannot follow it there.
    heading = ("<html><style>@page { size: A6 }</style><body>" + "<p>satır</p>" * lines + "<h2 style='break-after: auto'>"
               "Başlık</h2><table style='break-inside: avoid'>" + "<tr><td>1</td></tr>" * 12 + "</table></body></html>"
               for lines in range(4, 16))
    assert any("a heading ends the page" in p for html in heading for p in layout_problems(weasyprint.HTML(string=html).render()))


def test_slide_text_is_at_least_18_points():
    from importlib.resources import files

    css = files("fer_helpers").joinpath("templates/slides.html.j2").read_text(encoding="utf-8")
    sizes = [float(x) for x in re.findall(r"font-size:\s*([\d.]+)pt", css)]
    assert sizes and min(sizes) >= 18
    assert not re.search(r"font-size:\s*[\d.]+(px|em|rem|%)", css)     # every size in points, so the check holds


@pytest.mark.slow
def test_an_unfilled_title_page_is_flagged_not_printed_silently(demo_run, tmp_path):
    from fer_helpers.report import ReportMeta, build_slides, render_html, unfilled_fields

    html, ctx = render_html(demo_run, ReportMeta())
    assert ctx["unfilled"] == ["student", "advisor", "university"]
    assert html.count('class="unfilled"') == 3 and "[doldurulmadı: Öğrenci Adı Soyadı]" in html
    with pytest.warns(UserWarning, match="title page not filled in: student, advisor, university"):
        build_slides(demo_run, out_dir=tmp_path, meta=ReportMeta())
    filled = ReportMeta(student="Ayşe Yılmaz", advisor="Prof. Dr. Can Demir", university="ODTÜ / Bilgisayar Mühendisliği")
    html, ctx = render_html(demo_run, filled)
    assert ctx["unfilled"] == [] and 'class="unfilled"' not in html and "Ayşe Yılmaz" in html
    assert unfilled_fields({"student": " ", "advisor": "X", "university": "Y"}) == ["student"]


def test_tables_and_figures_are_numbered_in_the_order_the_pdf_numbers_them():
    from fer_helpers.report import figure_numbers, number_tables

    html = ('<table><caption>a</caption></table><p>see Tablo {{tbl:b}}, {{tbl:c}} and {{tbl:x}}</p>'
            '<table id="tbl-b" class="small"></table><div id="tbl-c"><table></table></div>')
    assert number_tables(html).count("Tablo 2, 3 and ?") == 1
    template = ('{{ figure(fig, "01_a") }} {# CM_FIGURES #} {{ figure(fig, "04_b") }} {# LITERATURE_CHART #} '
                '{{ figure(fig, "06_c") }}')
    numbers = figure_numbers(template, {"01_a", "cm1", "06_c"}, ["cm1"], chart=True)
    assert numbers == {"01_a": 1, "cm1": 2, "literature_chart": 3, "06_c": 4}


def test_a_residual_nets_layer_table_shows_each_block_as_one_row():
    from fer_helpers.models import build_model, describe_model
    from fer_helpers.report import compact_layers

    table = describe_model(build_model("resnet", width=8))
    compact = compact_layers(table)
    blocks = [r for r in compact["layers"] if r["type"] == "Artık blok"]
    assert [r["layer"] for r in blocks] == [f"stage{s}_{b}" for s in range(1, 5) for b in (1, 2)]
    # Nothing is lost: the parameters add up, and each block ends in its output's shape.
    assert sum(r["params"] for r in compact["layers"]) == sum(r["params"] for r in table["layers"])
    assert blocks[-1]["output_shape"] == "(N, 6, 6, 64)" and len(compact["layers"]) < len(table["layers"]) // 3
    vgg = describe_model(build_model("vgg_fast"))
    assert compact_layers(vgg) == vgg and compact_layers(None) is None


def test_the_released_nets_lever_screen_is_an_appendix_table_read_from_its_csv(demo_run):
    from fer_helpers.report import ReportMeta, render_html

    html = render_html(demo_run, ReportMeta(levers_csv=str(ROOT / "results" / "levers_resnet_w16.csv")))[0]
    appendix, main = _flat(html[html.index('id="ek"'):]), _flat(_main_text(html))
    assert "A.9 Yayımlanan ağda tek değişiklik taraması" in appendix and "A.9 Yayımlanan" not in main
    table = pd.read_csv(ROOT / "results" / "levers_resnet_w16.csv").set_index("run")
    noerase = table.loc["resnet_w16_noerase_e60_s42_cpu"]
    diff = f"{100 * noerase['val_accuracy_vs_base']:+.2f} puan".replace(".", ",").replace("-", "−")
    assert "rastgele silme yok" in appendix and diff in appendix
    # What each row changes is in words, not in configuration keys.
    assert "rastgele silme olasılığı 0" in appendix and "öğretmen olasılıklarıyla damıtma" in appendix
    assert "genişlik 32, ilk evrişim adımı 2" in appendix
    assert not re.search(r"\b(erasing|distill_from|epochs|width|stem_stride)=", appendix)
    # The rules written before the runs are named from the table, one per ruled row.
    assert all(f"docs/decision_rules/{r}" in appendix for r in table["rule"].dropna())


def test_the_discussion_reads_the_lever_screen_by_its_rule(demo_run):
    from fer_helpers.report import ReportMeta, lever_screen, render_html

    path = ROOT / "results" / "levers_resnet_w16.csv"
    rows = pd.read_csv(path).to_dict("records")
    screen = lever_screen(rows)
    assert len(screen["rows"]) == len(rows) - 1 and screen["max_flops_ratio"] <= 1.0 + 1e-9
    # Self-distillation rose on validation (+0.09 pt) but by less than the rule's 0.30 pt.
    assert screen["passed"] == [] and any(0 < r["d_accuracy"] < 0.003 for r in screen["rows"])
    main = _flat(_main_text(render_html(demo_run, ReportMeta(levers_csv=str(path)))[0]))
    assert "Yayımlanan ağın çevresi" in main and "Ek A.9" in main and "Hiçbiri önceden yazılan ölçütü" in main
    assert "çözünürlük verip genişlik almak" in main
    # A row that meets the rule is named as passing, not as a change of the released model.
    rows[1] = {**rows[1], "val_accuracy_vs_base": 0.005, "val_macro_f1_vs_base": 0.001}
    assert lever_screen(rows)["passed"] == [rows[1]["lever_tr"]] and lever_screen(rows[:1]) is None


def test_setting_changes_read_in_words():
    from fer_helpers.report import describe_changes

    assert describe_changes("epochs=30; imbalance=none; oversample_fraction=0.5") == "30 epok, dengeleme yok"
    assert describe_changes("oversample_fraction=0.3") == "çoğaltma payı %30"
    assert describe_changes("stem_stride=2; width=32") == "ilk evrişim adımı 2 (ilk aşama 24×24), genişlik 32"
    assert describe_changes("") == "" and describe_changes(None) == ""
    # The optimizer row's settings have words too (no "key = value" left in the appendix).
    adamw = describe_changes("optimizer=adamw; weight_decay_mode=decoupled; cosine_alpha=0.01; momentum=0.9")
    assert adamw == "AdamW, ayrık ağırlık azalması, kosinüs alt sınırı en yüksek oranın 0,01 katı, momentum 0,9"


@pytest.mark.slow
def test_the_error_chapter_introduces_its_table_with_the_pairs_it_shows(demo_run):
    """The confused-pairs table is read before it is shown: the most frequent pair, its reverse
    when listed, and the pair that takes the largest share of its true class."""
    from fer_helpers.report import ReportMeta, render_html

    html, ctx = render_html(demo_run, ReportMeta())
    chapter = _flat(html[html.index('id="hata"'):html.index('id="tbl-confused"')])
    pairs = ctx["errors"]["top_confused_pairs"]
    top = pairs[0]
    assert f"en sık karıştırılan {len(pairs)} sınıf çiftini verir" in chapter
    assert f"({int(top['count'])} görüntü;" in chapter
    assert ("ters yönde de" in chapter) == any(p["true"] == top["predicted"] and p["predicted"] == top["true"] for p in pairs)
    assert "{{tbl:" not in html
    # The most confident errors are read against the annotators' votes for the predicted class.
    cv = ctx["errors"]["confident_error_votes"]
    errors = ctx["errors"]["most_confident_errors"]
    assert cv["n"] == len(errors) and cv["with_votes"] == sum(e["votes_for_predicted"] > 0 for e in errors)
    main = _flat(_main_text(html))
    assert f"modelin en emin olduğu {cv['n']} hatayı gösterir" in main and f"hataların {cv['with_votes']} tanesinde" in main


def test_the_training_curve_is_read_as_over_or_underfitting():
    from fer_helpers.report import fit_gap

    over = fit_gap({"accuracy": [0.5, 0.95], "val_accuracy": [0.6, 0.80, 0.78]})
    assert over["kind"] == "overfit" and over["gap"] == pytest.approx(0.15) and over["val_accuracy"] == 0.80
    # Augmented training batches behind validation: the net does not memorise.
    assert fit_gap({"accuracy": [0.827], "val_accuracy": [0.832]})["kind"] == "underfit"
    assert fit_gap({"accuracy": [0.85], "val_accuracy": [0.82]})["kind"] == "mild"
    assert fit_gap(None) is None and fit_gap({"accuracy": [], "val_accuracy": []}) is None


@pytest.mark.slow
def test_the_method_chapter_interprets_the_training_curve(demo_run):
    from fer_helpers.report import ReportMeta, render_html

    html, ctx = render_html(demo_run, ReportMeta())
    fit = ctx["fit"]
    main = _flat(_main_text(html))
    assert f"Son epokta eğitim doğruluğu {100 * fit['train_accuracy']:.2f}".replace(".", ",").replace("doğruluğu ", "doğruluğu %") in main
    words = {"overfit": "ezberlemeye başlamıştır", "underfit": "aşırı öğrenmemiştir", "mild": "ölçülü bir açıklık"}
    assert words[fit["kind"]] in main
