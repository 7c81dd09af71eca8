"""Rapport complet sur un petit jeu écrit à la main : notebooks Papermill, PDF, fiches, XLSX, manifeste,
remplacement atomique et reproductibilité."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from openpyxl import load_workbook
from pipeline_data import FORMULA_NAME, params, write_fixture
from pypdf import PdfReader

from analysis.orchestration import pipeline
from analysis.orchestration.pipeline import NOTEBOOKS, NOTEBOOKS_DIR, build_report
from analysis.reading.readers import InputError


def test_parameters_cell_is_tagged_in_every_notebook():
    for name in NOTEBOOKS:
        nb = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, name
        for p in ("annee", "region", "data_dir", "out_dir", "rules"):
            assert f"{p} =" in tagged[0].source, (name, p)


def test_all_outputs_written(built):
    _, _, out, final = built
    assert final == out / "2024" / "28"
    for name in ("rapport_annuel.html", "rapport_annuel.pdf", "ciblage.csv", "suivi_engagements.csv",
                 "tendances.csv", "rejets.csv", "cpom_28_2024.xlsx", "manifest.json"):
        assert (final / name).is_file(), name
    assert sorted(p.name for p in (final / "notebooks").glob("*.ipynb")) == sorted(NOTEBOOKS)
    # one sheet per establishment of the region, none for the other region
    assert sorted(p.stem for p in (final / "fiches").glob("*.pdf")) == [
        "140000001", "140000002", "140000003", "270000001", "760000001"]
    assert not list(out.glob(".tmp-*"))


def test_ciblage_hand_computed(built):
    final = built[3]
    c = pd.read_csv(final / "ciblage.csv", sep=";", encoding="utf-8-sig", dtype=str)
    got = set(zip(c["finess_geo"], c["risque"]))
    # 140000002, 140000003: 0 e-SIN signal in 2024; 760000001: 3 signals for 91 000 stays, far below the regional rate;
    # 140000001: decision of 31/12/2024 (E) counts for 2024, SSR score 19.9 < 20;
    # 140000002: its E decision is dated 2025, score exactly 20 is not targeted; 690000001 is another region.
    assert got == {
        ("140000002", "infectieux"), ("140000003", "infectieux"), ("760000001", "infectieux"),
        ("140000001", "management_qualite"), ("140000001", "rupture_parcours"),
    }
    assert open(final / "ciblage.csv", "rb").read(3) == b"\xef\xbb\xbf"


def test_suivi_hand_computed(built):
    s = pd.read_csv(built[3] / "suivi_engagements.csv", sep=";", encoding="utf-8-sig", dtype=str,
                    keep_default_na=False)
    st = {(r.finess_geo, r.indicateur): r.statut for r in s.itertuples()}
    assert st[("140000001", "score_qls_mco")] == "atteint"          # 85.5 >= 80
    assert st[("140000001", "score_qls_ssr")] == "non_atteint"      # 19.9
    assert st[("140000001", "taux_formes_medical")] == "atteint"    # exactly 90 %
    assert st[("140000001", "taux_formes_paramedical")] == "non_atteint"
    assert st[("140000001", "conformite_plan_epidemies")] == "atteint"
    assert st[("760000001", "responsable_connecte")] == "atteint"
    assert st[("760000001", "signalements")] == "sans_cible"
    assert not any(f == "140000002" for f, _ in st)  # its engagement ended in 2023
    assert "690000001" not in set(s["finess_geo"])


def test_pdf_has_sections_page_numbers_and_a_known_motif(built):
    reader = PdfReader(built[3] / "rapport_annuel.pdf")
    text = "\n".join(p.extract_text() for p in reader.pages)
    for section in ("Synthèse", "Ciblage des établissements", "Suivi des engagements", "Tendances",
                    "Qualité des données", "Méthode", "Sommaire"):
        assert section in text, section
    assert "Score QLS SSR 2024 : 19,95" in text
    assert f"1 / {len(reader.pages)}" in text
    assert len(reader.pages) >= 8


def test_sheet_pdf_content(built):
    text = "\n".join(p.extract_text() for p in PdfReader(built[3] / "fiches" / "140000001.pdf").pages)
    assert "CH de Caen fictif" in text and "19,9" in text


def test_html_escapes_names_and_shows_no_code(built):
    html = (built[3] / "rapport_annuel.html").read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Clinique &amp; Cie" in html
    assert "load_context" not in html  # no code input shown


def test_xlsx_has_no_formula(built):
    wb = load_workbook(built[3] / "cpom_28_2024.xlsx")
    # « Contrôle QLS » : le jeu fournit des dossiers QLS réaudités (contrôle qualité du recueil)
    assert wb.sheetnames == ["ciblage", "suivi_engagements", "rejets", "Contrôle QLS"]
    seen = False
    for ws in wb:
        for row in ws.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and cell.value.startswith(("=", "+", "-", "@")):
                    assert cell.data_type == "s"
                    seen = seen or cell.value == FORMULA_NAME
    assert seen


def test_manifest_traces_inputs_rules_and_versions(built):
    m = json.loads((built[3] / "manifest.json").read_text(encoding="utf-8"))
    assert m["parametres"]["annee"] == 2024 and m["parametres"]["region"] == "28"
    assert len(m["regles"]["sha256"]) == 64
    files = {f["fichier"]: f for f in m["entrees"]}
    assert files["etablissements.csv"]["lignes_lues"] == 6 and len(files["qls.csv"]["sha256"]) == 64
    assert m["versions"]["pandas"] and m["versions"]["weasyprint"]
    assert {"ciblage.csv", "rapport_annuel.pdf"} <= {o["fichier"] for o in m["sorties"]}


def test_manifest_chronology_shows_what_waits_for_what(built):
    # chronologie de la construction (s depuis le lancement) : chaque notebook part après les étapes
    # des résultats qu'il lit, le rendu suit le notebook du rapport, les fiches et le classeur finissent
    # avant le manifeste ; une étape est notée par le fil qui la reçoit, quelques microsecondes après
    # le réveil du notebook qui l'attendait (d'où la tolérance d'un arrondi)
    c = json.loads((built[3] / "manifest.json").read_text(encoding="utf-8"))["chronologie_s"]
    nbs = ["01_qualite_donnees", "02_ciblage", "03_suivi_engagements", "05_rapport_annuel", "04_tendances"]
    assert set(c) == {"lecture", "etape_ciblage", "etape_suivi", "etape_tendances", "rapport_html", "rapport_pdf",
                      "fiches_et_classeur", *(f"debut_{n}" for n in nbs), *(f"fin_{n}" for n in nbs)}
    assert list(c.values()) == sorted(c.values()) and c["lecture"] > 0

    def before(a, b):
        assert c[a] <= c[b] + 0.011, (a, c[a], b, c[b])

    before("lecture", "debut_01_qualite_donnees")
    before("etape_ciblage", "debut_02_ciblage")
    before("etape_suivi", "debut_03_suivi_engagements")
    before("etape_tendances", "debut_05_rapport_annuel")
    for n in nbs:
        before(f"debut_{n}", f"fin_{n}")
    before("fin_05_rapport_annuel", "rapport_html")
    before("rapport_html", "rapport_pdf")
    before("rapport_pdf", "fiches_et_classeur")
    before("fin_04_tendances", "fiches_et_classeur")


def test_unchanged_rerun_does_nothing(built):
    tmp, data, out, final = built
    before = (final / "manifest.json").stat().st_mtime_ns
    [again] = build_report(params(tmp, data, out))
    assert again == final and (final / "manifest.json").stat().st_mtime_ns == before


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_failed_run_leaves_previous_outputs_untouched(built, monkeypatch, tmp_path):
    tmp, data, out, final = built
    before = _snapshot(final)
    # tables nettoyées et caches copiés : --force vide le cache des figures, que d'autres tests
    # relisent dans celui du rapport partagé
    shutil.copytree(tmp / "processed", tmp_path / "processed")
    # 1. bad input: stops before any writing
    bad = write_fixture(tmp / "raw_bad")
    (bad / "esin.csv").write_text("finess_geo;annee;signalements\n140000001;2024;1\n", encoding="utf-8")
    with pytest.raises(InputError, match="responsable_connecte"):
        build_report(params(tmp, bad, out))
    # 2. failure in the middle of the run: the first notebooks have written their outputs in the
    #    temporary folder, the third one fails
    real = pipeline.run_notebook

    def boom(name, *a, **k):
        if name == NOTEBOOKS[2]:
            raise RuntimeError("panne simulée au milieu de l'exécution")
        return real(name, *a, **k)

    monkeypatch.setattr(pipeline, "run_notebook", boom)
    with pytest.raises(RuntimeError, match="panne simulée"):
        build_report(params(tmp_path, data, out, force=True, fiches=False))
    assert _snapshot(final) == before
    assert not list(out.glob(".tmp-*"))


def test_failed_rendering_leaves_previous_outputs_untouched(built, monkeypatch, tmp_path):
    """Le PDF du rapport échoue (composé dans un fil pendant le notebook 04) : l'erreur remonte avec
    son message, le rapport publié et le dossier de sortie restent tels quels (aucun dossier
    temporaire laissé)."""
    from analysis.publishing import rapport_pdf

    tmp, data, out, final = built
    before = _snapshot(final)
    shutil.copytree(tmp / "processed", tmp_path / "processed")

    def boom(html, pdf):
        raise OSError("panne simulée du rendu")

    monkeypatch.setattr(rapport_pdf, "html_to_pdf", boom)
    with pytest.raises(OSError, match="panne simulée du rendu"):
        build_report(params(tmp_path, data, out, force=True, fiches=False))
    assert _snapshot(final) == before
    assert not list(out.glob(".tmp-*"))


def _checkout_copy(dest: Path) -> Path:
    """Copie du dépôt (code, notebooks, règles) dans un autre dossier, comme un second clone."""
    root = pipeline.PROJECT_DIR
    for name in ("src", "notebooks", "config", "tools"):
        shutil.copytree(root / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("requirements.lock", "pyproject.toml"):
        shutil.copy(root / name, dest / name)
    return dest


def test_two_checkouts_give_identical_bytes(built, tmp_path):
    """Même entrées, autre clone du dépôt, autres dossiers de données, de règles et de sortie, autre
    fuseau horaire et autre langue : HTML, PDF, CSV, notebooks exécutés et XLSX identiques à l'octet
    près ; aucun chemin de la machine dans ces sorties (les fiches : tests/test_verify.py)."""
    import os

    tmp, data, out, final = built
    clone = _checkout_copy(tmp_path / "autre clone")
    data2 = shutil.copytree(data, tmp_path / "entrées" / "raw")
    env = {k: v for k, v in os.environ.items() if k not in ("SOURCE_DATE_EPOCH",)}
    env.update(PYTHONPATH=f"{clone / 'src'}{os.pathsep}{clone}", TZ="Pacific/Auckland", LANG="C.UTF-8",
               LC_ALL="C.UTF-8")
    run = ("import sys, analysis; print(analysis.__file__, file=sys.stderr)\n"
           "from analysis.orchestration.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run(
        [sys.executable, "-c", run, "report", "--data", str(data2), "--out", "sorties", "--region", "28",
         "--rules", str(clone / "config" / "regles_cpom.yml"), "--processed", "tables", "--sans-fiches",
         "--quiet"],
        cwd=clone, env=env, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    other = clone / "sorties" / "2024" / "28"
    assert proc.stderr.startswith(str(clone / "src" / "analysis")), proc.stderr  # le code du clone a servi
    names = ["rapport_annuel.html", "rapport_annuel.pdf", "ciblage.csv", "suivi_engagements.csv",
             "tendances.csv", "rejets.csv", *(f"notebooks/{nb}" for nb in NOTEBOOKS), "cpom_28_2024.xlsx"]
    for name in names:
        assert (final / name).read_bytes() == (other / name).read_bytes(), name
    machine = [str(pipeline.PROJECT_DIR), str(tmp), str(clone), str(data2), "/tmp/", "/work/", "/home/"]
    for name in names[:-1]:
        text = (final / name).read_bytes().decode("utf-8", errors="replace")
        assert not [m for m in machine if m in text], name
    html = (final / "rapport_annuel.html").read_text(encoding="utf-8")
    assert "Fichier de règles : <code>regles_cpom.yml</code>, version" in html


def test_several_regions_need_a_choice(tmp_path):
    data = write_fixture(tmp_path / "raw")
    with pytest.raises(InputError, match="plusieurs régions"):
        build_report(params(tmp_path, data, tmp_path / "out", region=None, fiches=False))


def test_cli_error_is_french_with_status_2(tmp_path):
    (tmp_path / "qls.csv").write_text("finess_geo;annee;secteur;score\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "analysis", "report", "--data", str(tmp_path), "--out", str(tmp_path / "out"),
         "--quiet"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert "etablissements" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "2024").exists()


def test_notebook_runs_alone_on_raw_folder(tmp_path):
    """An evaluator can re-run one notebook with Papermill, outside the pipeline."""
    import papermill as pm

    data = write_fixture(tmp_path / "raw")
    out = tmp_path / "nb_out"
    pm.execute_notebook(
        str(NOTEBOOKS_DIR / "02_ciblage.ipynb"), str(tmp_path / "02.ipynb"),
        parameters={"annee": 2024, "region": "28", "data_dir": str(data), "processed_dir": "",
                    "out_dir": str(out), "rules": str(pipeline.PROJECT_DIR / "config" / "regles_cpom.yml")},
        kernel_name=pipeline.ensure_kernel(), progress_bar=False,
    )
    c = pd.read_csv(out / "ciblage.csv", sep=";", encoding="utf-8-sig", dtype=str)
    assert len(c) == 5




def test_one_value_prints_the_same_in_motif_report_sheet_and_workbook(built):
    """19,95 face au seuil de 20 : « 19,95 % » partout, jamais « 20,0 % » (un seul formateur)."""
    final = built[3]
    expected = "19,95\u00a0%"
    c = pd.read_csv(final / "ciblage.csv", sep=";", encoding="utf-8-sig", dtype=str)
    motif = c.loc[(c["finess_geo"] == "140000001") & (c["risque"] == "rupture_parcours"), "motif"].iloc[0]
    assert motif == f"Score QLS SSR 2024 : {expected} <\u00a020\u00a0%"
    html = (final / "rapport_annuel.html").read_text(encoding="utf-8")
    assert f"Score QLS (SSR) : {expected} (cible ≥\u00a080\u00a0%)" in html  # indicateurs non atteints
    assert "20,0\u00a0%" not in html.split("Indicateurs non atteints")[1].split("Plans d")[0]
    sheet = " ".join(p.extract_text() for p in PdfReader(final / "fiches" / "140000001.pdf").pages)
    assert expected in sheet or "19,95 %" in sheet
    ws = load_workbook(final / "cpom_28_2024.xlsx")["suivi_engagements"]
    header = [x.value for x in ws[1]]
    row = next(r for r in ws.iter_rows(min_row=2)
               if r[header.index("finess_geo")].value == "140000001" and r[header.index("indicateur")].value == "score_qls_ssr")
    cell = row[header.index("valeur")]
    assert cell.value == 19.95 and cell.data_type == "n" and cell.number_format == "0.00"


def test_sheet_labels_are_the_report_labels(built):
    """Libellés des fiches = libellés du rapport = libellés du fichier de règles."""
    from analysis.rules.model import load_rules

    rules = load_rules()
    final = built[3]
    html = (final / "rapport_annuel.html").read_text(encoding="utf-8")
    sheet = " ".join(" ".join(p.extract_text() for p in PdfReader(final / "fiches" / "140000001.pdf").pages).split())
    for label in (rules.label("engagement", "lettre_liaison"), rules.label("engagement", "prevention_ias"),
                  rules.indicator_label("taux_formes_medical"), rules.indicator_label("score_qls_ssr"),
                  rules.label("risque", "rupture_parcours")):
        assert label.replace(" ", "") in sheet.replace(" ", ""), label  # pypdf coupe « T aux »
        assert label in html, label
    assert "Tauxdepersonnelformé(Médical)" in sheet.replace(" ", "") and "(medical)" not in sheet


def test_rerun_rebuilds_when_an_output_was_deleted_or_damaged(built):
    """« Rien à refaire » vérifie les empreintes des sorties inscrites au manifeste (issue 13)."""
    tmp, data, out, final = built
    p = params(tmp, data, out)
    assert pipeline.up_to_date(p)[0]
    fiche = sorted((final / "fiches").glob("*.pdf"))[0]
    for f in (final / "ciblage.csv", final / "rapport_annuel.pdf", fiche):
        saved = f.read_bytes()
        f.write_bytes(saved[:-1] + b"#")
        assert not pipeline.up_to_date(p)[0], f.name
        f.unlink()
        assert not pipeline.up_to_date(p)[0], f.name
        f.write_bytes(saved)
        assert pipeline.up_to_date(p)[0], f.name


def test_csv_outputs_neutralise_formulas(built):
    final = built[3]
    text = (final / "ciblage.csv").read_text(encoding="utf-8-sig")
    assert "'" + FORMULA_NAME.replace('"', '""') in text and ";" + FORMULA_NAME.replace('"', '""') not in text


def test_renamed_rules_file_gets_its_own_copy_for_the_notebooks(built, tmp_path):
    """Le même fichier de règles sous un autre nom : les notebooks lisent « regles/<nouveau nom> »,
    qui doit donc exister dans les tables nettoyées (le cache ne se fie pas qu'au contenu)."""
    from dataclasses import replace

    tmp, data, out, final = built
    r2 = tmp_path / "regles_copie.yml"
    shutil.copyfile(pipeline.PROJECT_DIR / "config" / "regles_cpom.yml", r2)
    prep = pipeline.prepare(replace(params(tmp_path, data, out), rules=r2), pipeline.Progress(quiet=True))
    assert (prep.processed / "regles" / "regles_copie.yml").is_file()


def test_damaged_processed_cache_is_rewritten_and_force_ignores_it(built):
    from dataclasses import replace

    tmp, data, out, final = built
    p = params(tmp, data, out)
    entry = pipeline.prepare(p, pipeline.Progress(quiet=True)).processed
    target = entry / "qls.parquet"
    target.write_bytes(b"PAR1 abime")
    assert not pipeline.cache_intact(entry)
    assert pipeline.prepare(p, pipeline.Progress(quiet=True)).processed == entry
    assert pipeline.cache_intact(entry) and len(pd.read_parquet(target)) == 9  # the 9 QLS rows of the fixture
    before = target.stat().st_mtime_ns
    pipeline.prepare(replace(p, force=True), pipeline.Progress(quiet=True))
    assert target.stat().st_mtime_ns != before and pipeline.cache_intact(entry)


def test_rows_of_other_regions_counted_per_file(built):
    """La qualité des données d'un rapport régional dit combien de lignes acceptées de chaque fichier
    concernent d'autres régions (ici 690000001, région 84)."""
    from analysis.reading.cleaning import read_processed, rows_of_other_regions

    tmp = built[0]
    [entry] = [p for p in (tmp / "processed").iterdir() if p.is_dir() and not p.name.startswith(".")]
    other = rows_of_other_regions(read_processed(entry), {"140000001", "140000002", "140000003", "270000001",
                                                          "760000001"})
    assert other == {"etablissements.csv": 1, "activite.csv": 1, "esin.csv": 1, "qls.csv": 1}


def _context_of(data: Path, region: str):
    from analysis.orchestration.context import load_context

    return load_context(2024, region, "", str(data.parent / f"ctx-{region}"), "", str(data))


def test_region_fingerprint_sees_only_what_the_region_report_reads(tmp_path):
    """L'empreinte des données d'une région change avec une valeur d'un de ses établissements ou avec
    les rejets (listés dans chaque rapport), pas avec une valeur d'un établissement d'une autre région."""
    from pipeline_data import ESIN

    data = write_fixture(tmp_path / "raw")
    ref = _context_of(data, "28").data_fingerprint
    assert _context_of(data, "28").data_fingerprint == ref  # stable
    esin = data / "esin.csv"
    esin.write_text(ESIN.replace("690000001;2024;0;non", "690000001;2024;1;non"), encoding="utf-8")  # région 84
    assert _context_of(data, "28").data_fingerprint == ref
    esin.write_text(ESIN.replace("140000002;2024;0;non", "140000002;2024;1;non"), encoding="utf-8")  # région 28
    assert _context_of(data, "28").data_fingerprint != ref
    esin.write_text(ESIN.replace("690000001;2024;0;non", "690000001;2024;-1;non"), encoding="utf-8")  # rejet
    assert _context_of(data, "28").data_fingerprint != ref


def test_untouched_region_is_kept_and_equals_a_cold_run(built, tmp_path, monkeypatch, caplog):
    """REGION=toutes après la correction d'une valeur de la région 84 : le rapport de la région 28 n'est
    pas refait (mêmes fichiers), son manifeste nomme les entrées actuelles, et il est identique à
    l'octet au rapport 28 construit à froid sur ces entrées.

    Ce rapport à froid passe en plus par le repli : les résultats sont d'ordinaire calculés une fois
    avant les notebooks 02 à 05 ; si ce calcul échoue (erreur simulée), les notebooks les calculent
    eux-mêmes, avec le même code, et les octets sont les mêmes."""
    tmp, data, out, final = built
    data2, out2 = tmp_path / "raw", tmp_path / "out"
    shutil.copytree(data, data2)
    shutil.copytree(out, out2)  # le rapport 28 publié à partir des entrées d'origine
    esin = data2 / "esin.csv"
    esin.write_text(esin.read_text(encoding="utf-8").replace("690000001;2024;0;non", "690000001;2024;1;non"),
                    encoding="utf-8")
    kept = out2 / "2024" / "28"
    stamps = {p: p.stat().st_mtime_ns for p in kept.rglob("*") if p.is_file() and p.name != "manifest.json"}
    with caplog.at_level("WARNING", logger="analysis"):
        finals = build_report(params(tmp_path, data2, out2, region="toutes"))
    assert sorted(f.name for f in finals) == ["28", "84"]
    # les étapes envoyées d'avance pour la région 28, reprise telle quelle, sont abandonnées sans
    # empêcher celles de la région 84 (calculées d'avance, pas par ses notebooks)
    assert "calcul anticipé" not in caplog.text
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # rien de réécrit dans la région 28
    manifest = json.loads((kept / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["reprise"]["raison"].startswith("données de la région")
    from analysis.reading.readers import sha256_file

    assert [e["sha256"] for e in manifest["entrees"] if e["fichier"] == "esin.csv"] == [sha256_file(esin)]
    assert "reprise" not in json.loads((out2 / "2024" / "84" / "manifest.json").read_text(encoding="utf-8"))
    # à froid, sur les mêmes entrées (et par le repli) : mêmes octets

    def boom(ctx, upto=None):
        raise MemoryError("erreur simulée")

    monkeypatch.setattr(pipeline, "_compute_results", boom)
    [cold] = build_report(params(tmp_path / "froid", data2, tmp_path / "froid" / "out", region="28", force=True))
    got, want = _snapshot(kept), _snapshot(cold)
    got.pop("manifest.json"), want.pop("manifest.json")
    assert got == want


def test_notebook_failure_crosses_process_boundaries():
    """Un notebook en échec dans un processus de région (REGION=toutes) remonte avec son message
    français, et non comme « A process in the process pool was terminated abruptly »."""
    import pickle

    exc = pipeline.NotebookFailed("02_ciblage.ipynb", Path("/x/02_ciblage.ipynb"), "(cellule 3) : KeyError : 'a'")
    back = pickle.loads(pickle.dumps(exc))
    assert str(back) == str(exc) and back.path == exc.path



def test_figures_reused_from_the_cache_give_the_bytes_of_a_cold_run(built, tmp_path):
    """Un rapport refait avec le cache des figures du rapport à froid (sans --force, autre dossier de
    sortie) reprend chaque figure sans la redessiner (chaque entrée relue, aucune ajoutée), et ses
    notebooks, HTML, PDF et CSV sont identiques à l'octet à ceux du rapport à froid. Qu'une donnée
    changée fasse redessiner sa figure : voir test_render.py."""
    import os

    from analysis.publishing.figures import FIGURE_CACHE

    tmp, data, out, final = built
    processed = tmp_path / "processed"
    shutil.copytree(tmp / "processed", processed)  # tables nettoyées et figures du rapport à froid
    entries = sorted((processed / FIGURE_CACHE).glob("*.json"))
    n_figures = (final / "rapport_annuel.html").read_text(encoding="utf-8").count('<figure id="figure-')
    assert len(entries) == n_figures >= 3
    past = 1_000_000_000  # 2001 : une entrée relue par le rapport reprend la date du jour
    for e in entries:
        os.utime(e, (past, past))
    [again] = build_report(params(tmp_path, data, tmp_path / "out", fiches=False))
    assert sorted((processed / FIGURE_CACHE).glob("*.json")) == entries  # rien de redessiné
    assert all(e.stat().st_mtime > past for e in entries)  # chaque figure reprise du cache
    got, want = _snapshot(again), _snapshot(final)
    for name in ("rapport_annuel.html", "rapport_annuel.pdf", "ciblage.csv", "suivi_engagements.csv",
                 "tendances.csv", "alertes.csv", *(f"notebooks/{nb}" for nb in pipeline.NOTEBOOKS)):
        assert got[name] == want[name], name


def test_ctrl_c_during_the_stages_stops_every_process_and_keeps_the_report(built, tmp_path):
    """Ctrl-C (SIGINT à tout le groupe de processus, comme au terminal) pendant les étapes des
    résultats : le programme s'arrête en quelques secondes avec « Interrompu » et le code 130, sans
    laisser de processus (processus des résultats, des fiches, noyau), ni de trace d'un processus de
    travail, ni toucher au rapport publié. Avant que les processus de travail ignorent SIGINT, l'arrêt
    du pool des fiches restait bloqué."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    tmp, data, out, final = built
    shutil.copytree(tmp / "processed", tmp_path / "processed")
    args = ["report", "--data", str(data), "--out", str(out), "--processed", str(tmp_path / "processed"),
            "--region", "28", "--jobs", "2", "--force"]
    # Le programme est lancé comme d'un terminal : Ctrl-C y a son effet par défaut. Un processus
    # lancé d'ici hériterait sinon de l'état de SIGINT du processus de test (ignoré ou bloqué : le
    # signal resterait alors sans effet, et le programme finirait avec le code 0 ; vu deux fois dans
    # la suite complète d'un clone neuf, jamais le test seul).
    launcher = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                "signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT]); "
                "sys.argv = ['analysis', *sys.argv[1:]]; runpy.run_module('analysis', run_name='__main__')")
    cmd = [sys.executable, "-c", launcher, *args]
    state = (f"SIGINT dans le processus de test : {signal.getsignal(signal.SIGINT)!r}, "
             f"bloqué : {signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])}")
    before = _snapshot(final)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, cwd=str(tmp_path))
    lines = []
    for line in proc.stdout:  # le premier notebook démarre : les étapes sont en cours
        lines.append(line)
        if "Notebook 1/5" in line:
            break
    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) >= 3  # processus des résultats, des fiches, noyau
    os.killpg(proc.pid, signal.SIGINT)
    t0 = time.monotonic()
    rest, _ = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 15
    text = "".join(lines) + rest
    assert proc.returncode == 130 and "Interrompu" in text, f"{state}\n{text}"
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive
    assert _snapshot(final) == before
    assert not list(out.glob(".tmp-*"))


def test_results_process_killed_during_the_stages_gives_the_same_report(built, tmp_path, monkeypatch):
    """Le processus des résultats tué pendant une étape (mémoire épuisée, par exemple) : les notebooks
    calculent eux-mêmes les résultats et les fiches sont préparées dans le processus principal ; le
    rapport est celui du rapport partagé, à l'octet."""
    import os

    real = pipeline._compute_results

    def killed(ctx, upto=None):
        if upto == "suivi":
            os._exit(9)  # dans le processus des résultats : il disparaît au milieu des étapes
        real(ctx, upto)

    monkeypatch.setattr(pipeline, "_compute_results", killed)
    tmp, data, out, final = built
    shutil.copytree(tmp / "processed", tmp_path / "processed")  # caches : fiches et figures reprises
    [again] = build_report(params(tmp_path, data, tmp_path / "out"))
    got, want = _snapshot(again), _snapshot(final)
    got.pop("manifest.json"), want.pop("manifest.json")
    assert got == want


def test_without_fork_the_stages_run_in_a_thread_with_the_same_bytes(built, tmp_path, monkeypatch):
    """Sans « fork » (Windows, macOS par défaut), pas de processus des résultats : les étapes sont
    calculées dans un fil du processus principal, et le rapport est le même à l'octet."""
    monkeypatch.setattr(pipeline.StageWorker, "create", classmethod(lambda cls: None))
    started = []
    real = pipeline._run_stages
    monkeypatch.setattr(pipeline, "_run_stages", lambda *a: (started.append(1), real(*a))[1])
    tmp, data, out, final = built
    shutil.copytree(tmp / "processed", tmp_path / "processed")
    [again] = build_report(params(tmp_path, data, tmp_path / "out", fiches=False))
    assert started == [1]
    got, want = _snapshot(again), _snapshot(final)
    for name in ("rapport_annuel.html", "rapport_annuel.pdf", "ciblage.csv", "suivi_engagements.csv",
                 "tendances.csv", "alertes.csv", *(f"notebooks/{nb}" for nb in pipeline.NOTEBOOKS)):
        assert got[name] == want[name], name


def test_one_row_correction_recomputes_only_what_reads_it_and_equals_a_cold_run(built, tmp_path, monkeypatch):
    """Correction d'une ligne d'esin.csv de 2023 (140000001 : 10 → 11 signalements), caches du rapport
    partagé repris : seul esin.csv est relu, et seuls les calculs qui lisent les lignes d'esin de 2023
    (ou toutes les années d'esin, pour les tendances) sont refaits : les observations des deux
    indicateurs d'e-SIN en 2023, le ciblage du risque infectieux en 2023, le suivi en veille de ces deux
    indicateurs en 2023 (année N−1), leurs deux tendances et celle du taux régional. Le rapport est
    identique à l'octet au rapport construit à froid sur ces entrées."""
    from analysis.indicators import persist
    from analysis.reading import cleaning

    tmp, data, out, final = built
    data2 = tmp_path / "raw"
    shutil.copytree(data, data2)
    shutil.copytree(tmp / "processed", tmp_path / "processed")  # tables, lectures et calculs du rapport partagé
    esin = data2 / "esin.csv"
    esin.write_text(esin.read_text(encoding="utf-8").replace("140000001;2023;10;oui", "140000001;2023;11;oui"),
                    encoding="utf-8")
    # calculs refaits, notés dans un fichier : ils ont lieu dans le processus des résultats
    log = tmp_path / "refaits.txt"
    real_cached, real_read = persist.cached, cleaning.official.read_candidate

    def cached(kind, parts, compute):
        def noted():
            with open(log, "a", encoding="utf-8") as fh:
                fh.write(kind + "\n")
            return compute()
        return real_cached(kind, parts, noted)

    reads = []
    monkeypatch.setattr(persist, "cached", cached)
    monkeypatch.setattr(cleaning.official, "read_candidate", lambda p: reads.append(p.name) or real_read(p))
    [again] = build_report(params(tmp_path, data2, tmp_path / "out", fiches=False))
    assert reads == ["esin.csv"]
    redone = sorted(log.read_text(encoding="utf-8").split())
    assert redone == sorted(["observation"] * 2 + ["ciblage"] + ["suivi"] * 2 + ["tendance"] * 2
                            + ["tendance_poisson"])
    monkeypatch.setattr(persist, "cached", real_cached)
    [cold] = build_report(params(tmp_path / "froid", data2, tmp_path / "froid" / "out", fiches=False, force=True))
    got, want = _snapshot(again), _snapshot(cold)
    got.pop("manifest.json"), want.pop("manifest.json")
    assert got == want
    # la correction est lue : signalements de la région 28 en 2023, 11 + 2 + 30 = 43 (42 avant) ; en
    # 2024, 12 + 0 + 0 + 3 + 3 = 18, soit −25 sur un an
    tend = pd.read_csv(again / "tendances.csv", sep=";", dtype=str, encoding="utf-8-sig")
    rows = tend.loc[tend["indicateur"] == "signalements"].set_index("annee")
    assert (rows.at["2023", "valeur_regionale"], rows.at["2024", "evolution_annuelle"]) == ("43.0", "-25.0")
