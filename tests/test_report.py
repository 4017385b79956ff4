"""The report and slides, built on a demo run: numbers, sections, Turkish text, figures, no URLs."""
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pypdf import PdfReader

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
    for ch in "çğıİöşüÇŞÖÜ":
        assert ch in text, ch
    pages = PdfReader(pdf).pages
    assert all("DEMO — sentetik veri; gerçek sonuç değildir" in p.extract_text() for p in pages)


@pytest.mark.slow
def test_every_figure_is_embedded_and_html_is_offline(demo_run):
    html = (demo_run / "reports" / "rapor.html").read_text()
    figures = {p.stem for p in (demo_run / "figures").glob("*.png")}
    assert html.count('<img src="data:image/png;base64,') == len(figures)
    # Every figure has a written caption, never its bare file name.
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", html, re.S)
    assert len(captions) == len(figures) and not any(c.strip() in figures for c in captions)

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
    assert len(reader.pages) == 16
    assert "DEMO" in reader.pages[5].extract_text()
    # Per-class results in Turkish (not scikit-learn's English text report), and future work
    # leaves out the temperature scaling the evaluation already did.
    per_class = " ".join(reader.pages[10].extract_text().split())
    assert "Sınıf başına sonuçlar" in per_class and "Kesinlik Duyarlılık F1 Destek" in per_class
    assert "precision" not in per_class and "f1-score" not in per_class
    ev = json.loads((demo_run / "results" / "evaluation.json").read_text())
    assert ev["temperature_scaling"] and "Kalibrasyon" not in reader.pages[15].extract_text()


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


@pytest.mark.slow
def test_failing_pdf_keeps_previous_pdf(demo_run, tmp_path, monkeypatch):
    target = tmp_path / "rapor.pdf"
    target.write_bytes(b"%PDF-previous")
    import weasyprint

    def boom(*a, **k):
        raise RuntimeError("pango exploded")

    monkeypatch.setattr(weasyprint.HTML, "write_pdf", boom)
    with pytest.raises(ReportError, match=r"rapor.pdf: PDF could not be written .*pango exploded"):
        write_pdf("<html></html>", target)
    assert target.read_bytes() == b"%PDF-previous"
    assert list(tmp_path.iterdir()) == [target]     # no temporary file left behind


def test_turkish_number_formats():
    assert fmt_pct(0.71834) == "%71,83" and fmt_num(0.4213) == "0,421"
    # Thousands take dots and decimals a comma, as in "2.955,6 s" of training time.
    assert fmt_num(2955.63, 1) == "2.955,6" and fmt_num(-10.4, 2) == "-10,40" and fmt_num(434.4, 0) == "434"
    # Label rules and validation sources in Turkish, each with the setting's value the configs use.
    assert fmt_label_rule("distribution") == "oy dağılımı (distribution)" and fmt_label_rule("other") == "other"
    assert fmt_validation("from_train(0.2)") == "eğitim bölümünden ayrılan katmanlı pay, %20 (from_train(0.2))"
    assert fmt_validation("official") == "veri setinin kendi doğrulama bölümü (official)"
    assert fmt_validation("from_train(x)") == "from_train(x)"
    assert fmt_lease("lease12_probes_s44.json") == "12" and fmt_lease("search.json") == "search.json"
    assert fmt_points(0.0006) == "0,06 puan" and fmt_points(0.0047, 1) == "0,5 puan" and fmt_points(None) == "–"
    assert fmt_points(0.0031, unit=False) == "0,31"
    assert fmt_signed(0.0049) == "+0,49 puan" and fmt_signed(-0.0101) == "−1,01 puan" and fmt_signed(0.0) == "+0,00 puan"
    assert fmt_signed(-0.0009, "num", 4) == "−0,0009" and fmt_signed(None) == "–"


@pytest.mark.slow
def test_protocols_are_described_in_turkish(demo_run, tmp_path):
    """The evaluation JSON keeps English descriptions; the Turkish report words them in Turkish."""
    from fer_helpers.evaluation import CONTAMINATION_TR, PROTOCOLS, PROTOCOLS_TR
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
    assert f"P-seed: {PROTOCOLS_TR['P-seed']}. P-FER+: {PROTOCOLS_TR['P-FER+']}." in text
    assert f"P-seed: {CONTAMINATION_TR}" in text
    assert PROTOCOLS["P-seed"] not in text and english not in text
    data = json.loads((run / "results" / "01_data_summary.json").read_text())
    assert (f"etiket kuralı: <b>{fmt_label_rule(data['label_mode'])}</b>; doğrulama kaynağı: "
            f"<b>{fmt_validation(data['validation'])}</b>") in text


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


@pytest.mark.slow
def test_ablation_and_seed_tables_are_rendered(demo_run, tmp_path):
    from fer_helpers.report import ReportMeta, render_html

    ablation = tmp_path / "ablation.csv"
    ablation.write_text("run,model,changes,added,epochs_run,wall_time_min,cpus,val_accuracy,P_seed_accuracy,"
                        "P_seed_macro_f1,P_FERplus_accuracy,recall_Contempt,recall_Disgust\n"
                        "abl_a,baseline,starting-study settings,,6,5.0,1,0.6,0.6,0.3,0.62,0.0,0.0\n"
                        "abl_b,vgg_fast,model_name=vgg_fast,model_name=vgg_fast,6,8.0,1,0.7,0.71,0.4,0.73,0.1,0.2\n")
    stat = lambda m, s: {"mean": m, "std": s, "values": [m]}  # noqa: E731
    seeds = {"seeds": [1, 2, 3], "val_accuracy": stat(0.79, 0.004), "wall_time_min": stat(38.2, 0.5),
             "protocols": {"P-seed": {"accuracy": stat(0.8012, 0.0031), "macro_f1": stat(0.651, 0.012),
                                      "recall": {"Contempt": stat(0.31, 0.05), "Disgust": stat(0.45, 0.04)},
                                      "tta_flip_accuracy": stat(0.8051, 0.002)}}}
    (tmp_path / "seeds.json").write_text(json.dumps(seeds))
    html, _ = render_html(demo_run, ReportMeta(ablation_csv=str(ablation), seeds_summary=str(tmp_path / "seeds.json")))
    assert "model_name=vgg_fast" in html and "starting-study settings" in html
    assert "checkpoint'i seçen Keras ölçütü" in html        # which validation accuracy this column is
    assert "3 tohum, ortalama ± standart sapma" in html
    # Spreads of accuracies are percentage points, not a percentage of the mean: the table says so
    # once, in its caption, and the note after it names the unit.
    assert "%80,12 ± 0,31</td>" in html and "0,310 ± 0,050" in html and "tohum başına 38,2 dk" in html
    assert "doğruluk sütunlarında yüzde puan</caption>" in html and "%79,00 ± 0,40 puan;" in html
    assert "± %" not in html
    assert "Yapılandırma" not in html            # one configuration: no group column

    # A compared configuration joins the same table, each group labelled by what differs.
    other = {**seeds, "params": {"augmentation": "strong", "seed": 1, "epochs": 20},
             "protocols": {"P-seed": {**seeds["protocols"]["P-seed"], "accuracy": stat(0.7824, 0.0014)}}}
    (tmp_path / "seeds.json").write_text(json.dumps({**seeds, "params": {"augmentation": "study", "seed": 1,
                                                                         "epochs": 20}}))
    (tmp_path / "other.json").write_text(json.dumps(other))
    html, _ = render_html(demo_run, ReportMeta(seeds_summary=str(tmp_path / "seeds.json"),
                                               seeds_compare=str(tmp_path / "other.json")))
    assert "son yapılandırma (augmentation=study)" in html and "karşılaştırma (augmentation=strong)" in html
    assert "%80,12 ± 0,31</td>" in html and "%78,24 ± 0,14</td>" in html
    # Several configurations widen the table: the wide-table style (wrapping labels) keeps it on the page.
    assert re.search(r'<table class="small"><caption>Aynı yapılandırmanın', html)
    assert '<td class="wrap">son yapılandırma (augmentation=study)</td>' in html


    # The validation numbers the choices were made on get their own table (Turkish decimals).
    val = tmp_path / "validation.csv"
    val.write_text("run,seed,epochs,oversample_fraction,augmentation,n_val,val_accuracy,val_macro_f1,"
                   "val_recall_Contempt,val_recall_Disgust\n"
                   "study_e30_s42,42,30,0.15,study,5677,0.8126,0.6567,0.2647,0.4737\n")
    html, _ = render_html(demo_run, ReportMeta(validation_csv=str(val)))
    assert "Seçimlerin dayandığı doğrulama sayıları" in html
    # Two validation accuracies appear in the report; the note says why they differ.
    assert "çoğulluk etiketleriyle" in html and "oy dağılımının argmax" in html
    assert "study_e30_s42" in html and "%81,26" in html and "0,657" in html and "0,26" in html
    assert "Seçimlerin dayandığı" not in render_html(demo_run, ReportMeta())[0]

    # The GPU search's table: a run stopped at the lease's budget is marked, not mixed in.
    gpu = tmp_path / "gpu_search.csv"
    gpu.write_text("name,model,n_params,epochs,epochs_run,augmentation,label_smoothing,weight_decay,precision,"
                   "seed,best_epoch,val_accuracy,val_macro_f1,val_recall_Contempt,val_recall_Disgust,"
                   "last_val_accuracy,seconds_per_epoch,gpu,source\n"
                   "vgg_e27,vgg,1175656,27,27,study,0.0,0.0001,float32,42,26,0.8295,0.6869,0.3235,0.5,0.8284,3.4,"
                   "H200,a.json\n"
                   "vgg_e45_bf16,vgg,1175656,45,45,study,0.0,0.0001,mixed_bfloat16,42,40,0.8321,0.6846,0.32,0.53,"
                   "0.83,7.0,H100,lease7_ema.json\n"
                   "fast_e120,vgg_fast,657032,120,101,study,0.0,0.0001,float32,42,100,0.818,0.6526,0.1765,0.4211,"
                   "0.812,4.87,H200,a.json\n")
    html, _ = render_html(demo_run, ReportMeta(gpu_search_csv=str(gpu)))
    assert "GPU araması" in html and "%82,95" in html and "0,687" in html and "1,18" in html
    # The limitations then say what the wider search reached, not that nothing larger was tried.
    assert "en iyisi doğrulamada %83,21 (vgg_e45_bf16" in html and "denenmemiştir" not in html
    assert "101/120*" in html and ">27<" in html
    assert html.count("<td>bf16</td>") == 1 and html.count("<td>fp32</td>") == 2
    # The lease column: the number from a lease file's name, any other file's name as it is.
    assert '<td class="r">7</td>' in html and html.count('<td class="r">a.json</td>') == 2
    assert "Aynı adlı satırlar" not in html          # no configuration repeated in another lease
    # A configuration repeated in another lease: the note quotes the largest gap as the mirror's noise.
    with gpu.open("a") as f:
        f.write("vgg_e27,vgg,1175656,27,27,study,0.0,0.0001,float32,42,25,0.8246,0.68,0.3,0.5,0.82,3.4,H100,lease8_x.json\n")
    text = " ".join(render_html(demo_run, ReportMeta(gpu_search_csv=str(gpu)))[0].split())
    assert "aralarındaki en büyük fark (0,49 puan)" in text
    # ... and future work starts from that measured gap.
    assert "doğrulamada %83,21 verdi; böyle bir modelden küçük modele bilgi damıtma" in " ".join(html.split())
    plain = render_html(demo_run, ReportMeta())[0]
    assert "GPU araması" not in plain and "bilgi damıtma" not in plain and "geçemeyen kaldıraçlar" not in plain

    # Rules written before training, with their verdicts (benchmarks/decide.py's table).
    dec = tmp_path / "decisions.csv"
    dec.write_text("name,rule,written,decided,seeds,reference_val_macro_f1,candidate_val_macro_f1,reference_val_accuracy,"
                   "candidate_val_accuracy,timed_run_min,budget_min,decision\n"
                   "os30_e30,r1.txt,2026-11-26T04:36:10Z,2026-11-26T06:03:09Z,42 43 44,0.6456,0.6405,0.8075,0.8068,,,keep\n"
                   "epochs50,r2.txt,2026-11-26T07:21:45Z,2026-11-26T10:48:01Z,42 43 44,0.6466,0.6614,0.8082,0.8181,46.1,60.0,adopt\n")
    html, _ = render_html(demo_run, ReportMeta(decisions_csv=str(dec)))
    assert "Önceden yazılan karar kuralları" in html and "2026-11-26 04:36" in html
    assert "0,6466 → 0,6614" in html and "%80,82 → %81,81" in html and "46,1 / 60" in html
    assert html.count("<td>referans kaldı</td>") == 1 and html.count("<td>benimsendi</td>") == 1
    assert "os30_e30 (tohum 42/43/44)" in html and "head_rebalance" not in html
    # A one-model post-hoc rule (benchmarks/head_rebalance.py) is explained under the table.
    with dec.open("a") as f:
        f.write("head_rebalance,r3.txt,2026-11-27T04:07:59Z,2026-11-27T04:14:28+00:00,42,0.6719,0.6757,0.8263,0.8224,,,keep\n")
    html, _ = render_html(demo_run, ReportMeta(decisions_csv=str(dec)))
    text = " ".join(html.split())
    assert "head_rebalance (tohum 42)" in html and "Tek tohumlu satırlar (head_rebalance)" in text
    # Only the post-hoc checks present in the table are described.
    assert "<code>head_rebalance</code> yalnızca son katmanı yeniden dengeler" in text and "drw_finetune" not in text
    assert html.count("<td>referans kaldı</td>") == 2
    # Future work names the levers the rules rejected (and not the adopted one).
    assert "referansı geçemeyen kaldıraçlar (os30_e30, head_rebalance;" in text
    assert "Önceden yazılan karar" not in render_html(demo_run, ReportMeta())[0]

    # The GPU screens' rules and verdicts (benchmarks/gpu_search.py's table): accuracy rules in
    # points, macro-F1 rules in four decimals, an undecided screen without numbers.
    verdicts = tmp_path / "gpu_search_verdicts.csv"
    verdicts.write_text(
        "lease,rule,candidate,control,change,seeds,measure,control_mean,candidate_mean,gain,min_gain,seeds_ahead,min_ahead,"
        "guard_measure,control_guard,candidate_guard,max_guard_drop,criterion,ahead,guard,verdict\n"
        "7,r7.txt,mid_ema9995,mid,ema9995,42 43 44,val_accuracy,0.825367,0.8272,0.001833,0.003,3,2,val_macro_f1,0.672233,"
        "0.6789,0.0,False,True,True,no lever\n"
        "8b,r8.txt,mid_lr4e3,mid,lr4e3,42 43 44 45 46 47,val_macro_f1,0.67765,0.678517,0.000867,0.008,4,4,val_accuracy,"
        "0.8276,0.8286,0.002,False,True,True,no lever\n"
        "9,r9.txt,mid_do0,mid,do0,42 43 44,val_accuracy,0.827267,0.8172,-0.010067,0.003,0,2,val_macro_f1,0.670267,"
        "0.6552,0.0,False,False,False,no lever\n"
        "10,r10.txt,mid_new,mid,new,42 43 44,val_accuracy,,,,0.003,,2,val_macro_f1,,,0.0,,,,undecided\n")
    text = " ".join(render_html(demo_run, ReportMeta(gpu_verdicts_csv=str(verdicts)))[0].split())
    assert "GPU taramalarının önceden yazılan kuralları" in text
    assert "%82,54 → %82,72</td> <td class=\"r\">+0,18 puan (0,30 puan)</td> <td class=\"r\">3 / 3 (2)</td>" in text
    assert "0,6776 → 0,6785</td> <td class=\"r\">+0,0009 (0,0080)</td> <td class=\"r\">4 / 6 (4)</td>" in text
    assert '<td class="r">42–47</td>' in text and "−1,01 puan (0,30 puan)" in text and "%82,76 → %82,86" in text
    assert text.count("<td>kaldıraç değil</td>") == 3 and text.count("<td>karar yok</td>") == 1
    # Future work names the screened settings once each, the undecided one not.
    assert '<td>ema9995</td>' in text          # short names: not broken across lines
    assert "kuralla elenen ayarlar (ema9995, lr4e3, do0;" in text and "new;" not in text
    assert "GPU taramalarının" not in render_html(demo_run, ReportMeta())[0]

    # Budget checks on other CPUs (benchmarks/budget_check.py) become a limitation, worded by their numbers.
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
    html, _ = render_html(demo_run, ReportMeta(budget_jsons=(*budgets, str(tmp_path / "absent.json"))))
    text = " ".join(html.split())
    # Each CPU is named once, before all its measurements, in order of first appearance.
    assert ("Xeon slow (2 çekirdek, bfloat16 donanımda yok) üzerinde vgg_mid, mixed_bfloat16, 50 epok: 379 dk, "
            "çıkarım 204 görüntü/s, 60 dakikalık bütçeye sığmaz; vgg_mid, float32, 50 epok: 148 dk, "
            "çıkarım 204 görüntü/s, 60 dakikalık bütçeye sığmaz; Xeon fast (2 çekirdek, bfloat16 donanımda var) "
            "üzerinde vgg_mid, mixed_bfloat16, 50 epok: 49 dk, çıkarım 204 görüntü/s, 60 dakikalık bütçeye sığar.") in text
    assert text.count("Xeon slow") == 1
    assert "budget_check.py" not in render_html(demo_run, ReportMeta())[0]

    # A run actually trained on another CPU adds its measured time and both protocols' scores;
    # a run recorded before the precision setting existed trained in float32.
    cpu_run = tmp_path / "fallback_s42"
    cpu_run.mkdir()
    (cpu_run / "training.json").write_text(json.dumps({
        "wall_time_s": 2881.8, "params": {"model_name": "vgg_fast", "epochs": 30, "seed": 42},
        "machine": {"cpu_model": "Xeon slow", "cpu_count": 2, "cpu_flags": ["avx512_vnni"]}}))
    (cpu_run / "evaluation.json").write_text(json.dumps({"protocols": {
        "P-seed": {"plain": {"accuracy": 0.8054, "macro_f1": 0.6658}, "tta_flip": {"accuracy": 0.81, "macro_f1": 0.67}},
        "P-FER+": {"plain": {"accuracy": 0.84061, "macro_f1": 0.6892}}}}))
    html, _ = render_html(demo_run, ReportMeta(cpu_runs=(str(cpu_run), str(tmp_path / "absent_run"))))
    text = " ".join(html.split())
    assert ("Ölçülen eğitim (<code>fallback_s42</code>): Xeon slow (2 çekirdek, bfloat16 donanımda yok) üzerinde "
            "vgg_fast, float32, 30 epok 48,0 dakikada eğitildi; P-seed %80,54 (makro-F1 0,666); "
            "P-FER+ %84,06 (makro-F1 0,689).") in text
    assert text.count("Ölçülen eğitim") == 1
    assert "Ölçülen eğitim" not in render_html(demo_run, ReportMeta())[0]
    # Seeds of one recipe on one CPU model are one item: each run's time and accuracy, then mean ± std.
    runs = [cpu_run]
    for seed, seconds, acc in ((43, 2818.3, 0.8065), (44, 2940.0, 0.8045)):
        run = tmp_path / f"fallback_s{seed}"
        run.mkdir()
        training = json.loads((cpu_run / "training.json").read_text())
        training.update(wall_time_s=seconds, params={**training["params"], "seed": seed})
        (run / "training.json").write_text(json.dumps(training))
        (run / "evaluation.json").write_text(json.dumps({"protocols": {
            "P-seed": {"plain": {"accuracy": acc, "macro_f1": 0.655}}, "P-FER+": {"plain": {"accuracy": 0.84, "macro_f1": 0.68}}}}))
        runs.append(run)
    other_cpu = tmp_path / "other_cpu_s42"
    shutil.copytree(cpu_run, other_cpu)
    training = json.loads((other_cpu / "training.json").read_text())
    (other_cpu / "training.json").write_text(json.dumps({**training, "machine": {**training["machine"], "cpu_model": "Xeon fast"}}))
    html, _ = render_html(demo_run, ReportMeta(cpu_runs=tuple(map(str, [*runs, other_cpu]))))
    text = " ".join(html.split())
    assert ("Ölçülen eğitim (<code>fallback_s42</code>, <code>fallback_s43</code>, <code>fallback_s44</code>): "
            "Xeon slow (2 çekirdek, bfloat16 donanımda yok) üzerinde vgg_fast, float32, 30 epok (tohum 42/43/44) "
            "48,0 / 47,0 / 49,0 dakikada eğitildi; P-seed %80,54 / %80,65 / %80,45 (ortalama %80,55 ± 0,10 puan, "
            "makro-F1 0,659 ± 0,006); P-FER+ %84,06 / %84,00 / %84,00") in text
    assert "Ölçülen eğitim (<code>other_cpu_s42</code>): Xeon fast" in text and text.count("Ölçülen eğitim") == 2
    assert "bütçeyi" not in text                     # every run above stayed within 60 minutes
    # A run over the 60-minute training budget says by how much; in a group of seeds, how many were over.
    (other_cpu / "training.json").write_text(json.dumps({**json.loads((other_cpu / "training.json").read_text()),
                                                         "wall_time_s": 3614.3}))
    (runs[2] / "training.json").write_text(json.dumps({**json.loads((runs[2] / "training.json").read_text()),
                                                       "wall_time_s": 3700.0}))
    text = " ".join(render_html(demo_run, ReportMeta(cpu_runs=tuple(map(str, [*runs, other_cpu]))))[0].split())
    assert "48,0 / 47,0 / 61,7 dakikada eğitildi (1 eğitim 60 dakikalık bütçeyi aştı); P-seed" in text
    assert "30 epok 60,2 dakikada eğitildi (60 dakikalık bütçeyi 0,2 dk aştı); P-seed" in text
    # A budget projection of the same recipe on the same CPU model is set beside the measured mean;
    # one of another recipe (here the bfloat16 vgg_mid above) or another CPU is not.
    projection = tmp_path / "budget_fallback.json"
    projection.write_text(json.dumps({"model_name": "vgg_fast", "precision": "float32", "epochs": 30, "run_minutes": 45.0,
                                      "inference_images_per_second": 935.0, "budget_minutes": 60.0, "fits_budget": True,
                                      "machine": {"cpu_model": "Xeon slow", "cpu_count": 2, "cpu_flags": ["avx2"]}}))
    text = " ".join(render_html(demo_run, ReportMeta(cpu_runs=tuple(map(str, [*runs, other_cpu])),
                                                     budget_jsons=(*budgets, str(projection))))[0].split())
    assert ("61,7 dakikada eğitildi (1 eğitim 60 dakikalık bütçeyi aştı; <code>budget_check.py</code> kestirimi "
            "45,0 dk, ölçülen ortalama 52,2 dk: kestirim %16 düşük kaldı); P-seed") in text
    assert text.count("kestirimi") == 1                # the Xeon fast run has no projection of its recipe

    # Export benchmarks (benchmarks/export_benchmark.py) add each format's speed and, when
    # measured, the int8 graph's accuracy beside the saved model's; an older file without
    # protocol scores gives the speeds only.
    machine = {"cpu_model": "Xeon slow", "cpu_count": 2, "cpu_flags": ["avx512_vnni"]}
    full = {"keras": {"size_mb": 4.58, "images_per_second": 273.4}, "onnx_int8": {"size_mb": 1.16, "images_per_second": 2592.3},
            "protocols": {"P-seed": {"keras": {"accuracy": 0.8223, "macro_f1": 0.6827},
                                     "onnx_int8": {"accuracy": 0.8215, "macro_f1": 0.6797, "top1_agreement": 0.9917}}},
            "calibration": {"images": 512, "split": "train", "seed": 0}, "machine": machine}
    old_style = {"keras": {"size_mb": 4.58, "images_per_second": 2394.3}, "onnx": {"size_mb": 4.46, "images_per_second": 1494.3},
                 "machine": {"cpu_count": 2}}
    paths = []
    for name, content in (("full", full), ("old", old_style)):
        paths.append(tmp_path / f"export_{name}.json")
        paths[-1].write_text(json.dumps(content))
    text = " ".join(render_html(demo_run, ReportMeta(export_jsons=tuple(map(str, paths))))[0].split())
    assert ("Dağıtım biçimlerinin hızı, Xeon slow (2 çekirdek, bfloat16 donanımda yok; "
            "<code>benchmarks/export_benchmark.py</code>): Keras (kaydedilen model) 273 görüntü/s (4,58 MB), "
            "ONNX statik int8 2.592 görüntü/s (1,16 MB).") in text
    assert ("P-seed %82,23, statik int8 ONNX ile %82,15 (makro-F1 0,683 → 0,680, ilk-1 uyumu %99,2).") in text
    assert "yalnızca 512 eğitim görüntüsüyle ayarlandı" in text
    # A record without weight_bits predates the 7-bit weights: it says its graph had 8-bit ones.
    assert ("Ağırlıklar 8 bitle nicemlendi (önceki dışa aktarım: VNNI'siz bir x86 CPU'da bu grafın tamsayı "
            "toplamları taşar).") in text
    paths[0].write_text(json.dumps({**full, "calibration": {**full["calibration"], "weight_bits": 7}}))
    text = " ".join(render_html(demo_run, ReportMeta(export_jsons=tuple(map(str, paths))))[0].split())
    assert "Ağırlıklar 7 bitle nicemlendi.</li>" in text
    assert ("kaydı olmayan bir CPU (2 çekirdek, bfloat16 donanımda yok; <code>benchmarks/export_benchmark.py</code>): "
            "Keras (kaydedilen model) 2.394 görüntü/s (4,58 MB), ONNX 1.494 görüntü/s (4,46 MB). </li>") in text
    assert text.count("Aynı modelin doğruluğu") == 1
    assert "export_benchmark.py" not in render_html(demo_run, ReportMeta())[0]


def test_seed_groups_are_labelled_by_their_differences():
    from fer_helpers.report import seed_groups

    a = {"params": {"augmentation": "study", "epochs": 20, "seed": 42}}
    b = {"params": {"augmentation": "strong", "epochs": 20, "seed": 43}}
    groups = seed_groups(a, b)
    assert [g["label"] for g in groups] == ["son yapılandırma (augmentation=study)",
                                            "karşılaştırma (augmentation=strong)"]
    assert groups[0]["summary"] is a and groups[1]["summary"] is b
    assert [g["label"] for g in seed_groups(a, a)] == ["son yapılandırma", "karşılaştırma"]
    # Three configurations: the final one names every setting that differs anywhere; each
    # comparison names only where it differs from the final one.
    c = {"params": {"augmentation": "study", "epochs": 30, "seed": 42}}
    assert [g["label"] for g in seed_groups(c, a, b)] == [
        "son yapılandırma (augmentation=study, epochs=30)", "karşılaştırma (epochs=20)",
        "karşılaştırma (augmentation=strong, epochs=20)"]
    # Summaries of different ages compare by their stored settings, completed with the
    # defaults a run predates (release.summarize_seeds; tested in test_release).
    bf16 = {"params": {"augmentation": "study", "epochs": 20, "precision": "mixed_bfloat16"}}
    f32 = {"params": {"augmentation": "study", "epochs": 20, "precision": "float32"}}
    assert [g["label"] for g in seed_groups(bf16, f32)] == ["son yapılandırma (precision=mixed_bfloat16)",
                                                            "karşılaştırma (precision=float32)"]


def test_results_tables_read_blank_cells_as_empty_text(tmp_path):
    """An empty cell (a setting a run predates) renders as "", without pandas' dtype warning."""
    import warnings

    from fer_helpers.report import _csv_records

    table = tmp_path / "t.csv"
    table.write_text("run,oversample_fraction,augmentation\na,,study\nb,0.15,\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = _csv_records(str(table))
    assert rows == [{"run": "a", "oversample_fraction": "", "augmentation": "study"},
                    {"run": "b", "oversample_fraction": 0.15, "augmentation": ""}]
    assert _csv_records("") is None and _csv_records(str(tmp_path / "absent.csv")) is None


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
    assert "Eğitim atlandı: hazır model değerlendirildi (<code>reference.keras</code>)" in text
    assert "kendi eğitim çalışmasındandır (<code>results/runs/ref_s42</code>" in text
    assert f"Eğitim {own['epochs_run']} epok sürdü" in text and "/somewhere" not in html
    assert f"Makine: {own['machine']['cpu_model']}, {own['machine']['cpu_count']} çekirdek" in text   # not just "x86_64"
    # Preprocessing is worded from the given model's own recipe, not from this run's (absent) settings.
    assert "hedefler FER+ oy dağılımı (yumuşak hedef) olarak kodlanır" in text and "tek-sıcak (one-hot) vektörler" not in text
    assert "yatay çevirme, ±10° döndürme, parlaklık ve kontrast oynatma." in text and "kaydırma" not in text
    assert "sınıfınkinin en az %15 düzeyine ulaşana dek" in text
    # Why classes fail is read from the confusion matrix, not typed by hand.
    assert "en sık tahmin edilen yanlış sınıf: " in text and "Öfke ile İğrenme" not in text
    # Recorded settings that the others switched off are marked, so none reads as used; the ones
    # in use are shown bare.
    p = own["params"]
    note = '<span class="note">({})</span>'.format
    assert f"<td>reduce_lr_patience</td><td>{p['reduce_lr_patience']} {note('etkisiz: schedule=cosine')}</td>" in text
    assert f"<td>focal_gamma</td><td>{p['focal_gamma']} {note('etkisiz: loss=crossentropy')}</td>" in text
    assert f"<td>patience</td><td>0 {note('erken durdurma yok')}</td>" in text
    assert f"<td>weight_decay</td><td>{p['weight_decay']}</td>" in text
    assert f"<td>warmup_epochs</td><td>{p['warmup_epochs']}</td>" in text and "<td>oversample_fraction</td><td>0.15</td>" in text
    slides, _ = render_html(run, ReportMeta(), template="slides.html.j2")
    assert "değerlendirilen modelin kendi eğitim kaydı" in slides and f"{own['epochs_run']} epok, en iyi epok" in slides
    assert "FER+ oy dağılımı (yumuşak) hedefler" in slides and "en kalabalık sınıfın %15 düzeyine" in slides
    # The demo run has a validation split, so it is temperature-scaled on it; calibration leaves future work.
    ev = json.loads((run / "results" / "evaluation.json").read_text())
    t = ev["temperature_scaling"]["temperature"]
    assert f"T = {t:.2f}".replace(".", ",") in text and "Sıcaklık ölçekleme (Guo" in text
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
    assert "aşırı örnekleme" not in html   # nothing is claimed about an unknown recipe

    # A run from before the CPU model was recorded says so instead of naming only "x86_64".
    machine = {k: v for k, v in own["machine"].items() if k not in ("cpu_model", "cpu_flags")}
    (run / "results" / "training.json").write_text(json.dumps({**given, "source_training": {**own, "machine": machine}}))
    text = " ".join(render_html(run, ReportMeta())[0].split())
    assert (f"Makine: {machine['processor']} (işlemci modeli bu çalışmada kaydedilmedi), "
            f"{machine['cpu_count']} çekirdek") in text


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
    assert len(captions) == 4 and "P-FER+" in captions["04_karisiklik_p_ferplus_sayilar"]
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
    from conftest import load_benchmark
    from fer_helpers.report import ReportMeta, render_html

    lc = load_benchmark("learning_curve")
    accs = {0.25: 0.79, 0.5: 0.805, 0.75: 0.815, 1.0: 0.82}
    rows = [{"run": f"lc{int(s * 100)}", "seed": 42, "n_train": round(22708 * s), "share": s, "val_accuracy": a,
             "val_macro_f1": a - 0.15, "p_seed_accuracy": a - 0.002, "p_seed_macro_f1": 0.66,
             "p_ferplus_accuracy": a + 0.03, "p_ferplus_macro_f1": 0.7} for s, a in accs.items()]
    path = tmp_path / "learning_curve.json"
    path.write_text(json.dumps({"rule": "results/decision_rule_learning_curve.txt", **lc.curve_verdict(rows), "rows": rows}))
    text = " ".join(render_html(demo_run, ReportMeta(learning_curve_json=str(path)))[0].split())
    assert "Öğrenme eğrisi: tarifi veri miktarı mı sınırlıyor?" in text
    assert '<td class="r">%25</td><td class="r">5.677</td> <td class="r">%79,00</td><td class="r">0,640</td>' in text
    # 1,52 pt per doubling → 1,52 · log2(1,25) = 0,49 pt predicted; the last step is +0,50 pt.
    assert "doğrulama doğruluğu +1,52 puan değişiyor" in text and "doğrulukta +0,49 puan kazandırırdı" in text
    assert "son adımı (%75 → %100) +0,50 puan" in text and "en az 0,30 puan" in text
    assert "koşullar sağlandı, yeniden eğitim sıradaki kaldıraçtır" in text
    assert "yeniden eğitimden doğrulukta 0,49 puan kazanç bekliyor" in text          # future work
    assert "1,25 kat adım attığından 60 dakikalık bütçeye sığıp sığmadığı da" in text
    assert "%100 referans tarifin kendi çalışmasıdır (<code>lc100</code>)" in text
    slides = " ".join(render_html(demo_run, ReportMeta(learning_curve_json=str(path)), template="slides.html.j2")[0].split())
    assert "Tüm FER2013Train ile yeniden eğitim (öğrenme eğrisinin kestirimi: doğrulukta +0,49 puan)" in slides
    assert "Kestirimin test protokollerinde sınanması" not in text            # no refit ran yet
    # The refit check: one refit seed against its control, read by its own rule.
    refit = {"run": "refit_s42", "seed": 42, "n_train": 28385, "p_seed_accuracy": 0.823, "p_seed_macro_f1": 0.69,
             "p_ferplus_accuracy": 0.85, "recall_contempt": 0.4, "recall_disgust": 0.5, "wall_time_min": 75.8}
    control = {**refit, "run": "ref_s42", "n_train": 22708, "p_seed_accuracy": 0.818, "p_seed_macro_f1": 0.687,
               "p_ferplus_accuracy": 0.846, "recall_contempt": 0.352, "recall_disgust": 0.481}
    check = {"rule": "results/decision_rule_refit.txt", "min_gain": 0.003, "refit": refit, "control": control,
             "delta": {"p_seed_accuracy": 0.005, "p_seed_macro_f1": 0.003, "p_ferplus_accuracy": 0.004,
                       "recall_contempt": 0.048, "recall_disgust": 0.019},
             "reading": "consistent with the curve"}
    path.write_text(json.dumps({"rule": "results/decision_rule_learning_curve.txt", **lc.curve_verdict(rows),
                                "rows": rows, "refit_check": check}))
    text = " ".join(render_html(demo_run, ReportMeta(learning_curve_json=str(path)))[0].split())
    assert "(<code>refit_s42</code>, 28.385 görüntü, doğrulama yok, son epok)" in text
    assert '<tr><td>yeniden eğitim, tohum 42</td><td class="r">%82,30</td>' in text
    assert '<td>Fark</td><td class="r">+0,50 puan</td><td class="r">+0,003</td>' in text
    assert '<td class="r">+0,048</td> <td class="r">+0,019</td><td class="r">–</td></tr>' in text   # rare classes
    assert '<td class="r">0,400</td><td class="r">0,500</td><td class="r">75,8</td></tr>' in text  # minutes
    assert "sonuç (tohum 42): <strong>eğriyle tutarlı</strong>" in text and "Fark, ortalamalar" not in text
    assert "kazanç bekliyor (tek tohumda P-seed farkı +0,50 puan)" in text               # future work
    slides = " ".join(render_html(demo_run, ReportMeta(learning_curve_json=str(path)), template="slides.html.j2")[0].split())
    assert "doğrulukta +0,49 puan; tek tohumda P-seed +0,50 puan, üç tohum gerekli)" in slides
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
    text = " ".join(render_html(demo_run, ReportMeta(learning_curve_json=str(path)))[0].split())
    assert '<tr><td>yeniden eğitim, tohum 43</td><td class="r">%82,90</td>' in text
    assert '<tr><td>referans, tohum 43</td><td class="r">%81,80</td>' in text
    assert '<td>yeniden eğitim, 2 tohum ort. ± ss</td> <td class="r">%82,60 ± 0,42</td>' in text
    assert '<td class="r">76,0 ± 0,3</td>' in text
    assert '<td>Fark, tohum 42 (kural)</td><td class="r">+0,50 puan</td>' in text
    assert '<td>Fark, ortalamalar</td><td class="r">+0,80 puan</td>' in text
    assert "2 tohumun ortalamasında P-seed farkı +0,80 puan, P-FER+ farkı +1,90 puan" in text        # future work
    assert "AMX'li işlemcide 60 dakikalık bütçeye sığdığı ölçülmeli" in text
    slides = " ".join(render_html(demo_run, ReportMeta(learning_curve_json=str(path)), template="slides.html.j2")[0].split())
    assert "2 tohum ortalamasında P-seed +0,80 puan, P-FER+ +1,90 puan; AMX'te bütçe ölçümü gerekli)" in slides
    # A shorter refit priced on validation and stopped by its rule joins the future-work line and the slide.
    sr = load_benchmark("short_refit")
    control = {"run": "ref_s42", "seed": 42, "epochs": 50, "val_accuracy": 0.8272, "val_macro_f1": 0.6871}
    short = {**control, "run": "e36_s42", "epochs": 36, "val_accuracy": 0.8180, "val_macro_f1": 0.6757}
    curve = {"predicted_refit_gain": 0.009, "predicted_refit_macro_f1_gain": 0.019}
    short_path = tmp_path / "refit36.json"
    short_path.write_text(json.dumps({"rule": "r36.txt", "schedule": sr.schedule_verdict(short, control, curve)}))
    both = ReportMeta(learning_curve_json=str(path), short_refit_json=str(short_path))
    text = " ".join(render_html(demo_run, both)[0].split())
    assert ("daha kısa bir program (36 epok) doğrulamada −0,92 puan götürdü, ek verinin kestirilen kazancı +0,90 puan: "
            "kuralına göre kısa yeniden eğitim koşturulmadı") in text
    slides = " ".join(render_html(demo_run, both, template="slides.html.j2")[0].split())
    assert "AMX'te bütçe ölçümü gerekli; bütçeye sığan 36 epok doğrulamada −0,92 puan)" in slides
    path.write_text(json.dumps({"rule": "r.txt", **lc.curve_verdict(rows), "rows": rows,
                                "refit_check": {**check, "reading": "not confirmed by one seed"}}))
    text = " ".join(render_html(demo_run, ReportMeta(learning_curve_json=str(path)))[0].split())
    assert "sonuç (tohum 42): <strong>tek tohumla doğrulanmadı</strong>" in text
    # A flat curve: the rule says the data is not what holds the recipe back.
    flat = [{**r, "val_accuracy": 0.82 - 0.001 * (1 - r["share"])} for r in rows]
    path.write_text(json.dumps({"rule": "r.txt", **lc.curve_verdict(flat), "rows": flat}))
    text = " ".join(render_html(demo_run, ReportMeta(learning_curve_json=str(path)))[0].split())
    assert "koşullar sağlanmadı, eğitim verisinin miktarı bu tarifi sınırlayan şey değil" in text
    assert "yeniden eğitim için kestirim +0,01 puan): kalan açık veri miktarından çok model kapasitesinde" in text
    assert "Tüm FER2013Train ile" not in render_html(demo_run, ReportMeta(learning_curve_json=str(path)),
                                                      template="slides.html.j2")[0]
    assert "Öğrenme eğrisi" not in render_html(demo_run, ReportMeta())[0]


def test_short_refit_section_prices_the_schedule_on_validation(demo_run, tmp_path):
    from conftest import load_benchmark
    from fer_helpers.report import ReportMeta, render_html

    sr = load_benchmark("short_refit")
    curve = {"predicted_refit_gain": 0.009, "predicted_refit_macro_f1_gain": 0.019}
    control = {"run": "ref_s42", "seed": 42, "epochs": 50, "val_accuracy": 0.8272, "val_macro_f1": 0.6871}
    short = {**control, "run": "e36_s42", "epochs": 36, "val_accuracy": 0.8232, "val_macro_f1": 0.6801}
    path = tmp_path / "refit36.json"
    path.write_text(json.dumps({"rule": "results/decision_rule_refit36.txt",
                                "schedule": sr.schedule_verdict(short, control, curve)}))
    meta = ReportMeta(short_refit_json=str(path))
    text = " ".join(render_html(demo_run, meta)[0].split())
    assert "Bütçeye sığan daha kısa bir yeniden eğitim" in text and "(36 epok;" in text
    assert '<td>kısa program, 36 epok</td><td class="r">%82,32</td><td class="r">0,680</td>' in text
    # −0,40 pt for the shorter schedule + 0,90 pt from the data = +0,50 pt predicted; macro-F1 −0,007 + 0,019.
    assert '<td>Kısa programın maliyeti (fark)</td><td class="r">−0,40 puan</td> <td class="r">−0,007</td>' in text
    assert '<td>Kısa yeniden eğitim için kestirim</td><td class="r">+0,50 puan</td> <td class="r">+0,012</td>' in text
    assert "sonuç: <strong>devam</strong>" in text and "kısa yeniden eğitim koşturulmadı" not in text
    # A schedule whose cost leaves less than the rule asks of the data's gain: "stop".
    costly = {**short, "val_accuracy": 0.8152}
    path.write_text(json.dumps({"rule": "r.txt", "schedule": sr.schedule_verdict(costly, control, curve)}))
    text = " ".join(render_html(demo_run, meta)[0].split())
    assert "sonuç: <strong>dur</strong>" in text and "kısa yeniden eğitim koşturulmadı" in text
    assert "Bütçeye sığan" not in render_html(demo_run, ReportMeta())[0]
