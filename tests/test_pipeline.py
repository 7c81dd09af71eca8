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
from pypdf import PdfReader

from analysis.orchestration import pipeline
from analysis.orchestration.pipeline import NOTEBOOKS, NOTEBOOKS_DIR, Params, build_report
from analysis.reading.readers import InputError

EVIL_NAME = "<script>alert(1)</script> Clinique & Cie"
FORMULA_NAME = "=HYPERLINK(\"http://x\")"

ETAB = f"""finess_geo;raison_sociale;departement;region;statut;mco;ssr;psy;specificite;lits
140000001;CH de Caen fictif;14;28;public;oui;oui;non;;900
140000002;{EVIL_NAME};14;28;prive_lucratif;oui;non;non;;80
140000003;{FORMULA_NAME};14;28;prive_non_lucratif;non;oui;non;;60
270000001;Centre de dialyse fictif;27;28;prive_non_lucratif;non;non;non;hemodialyse;0
760000001;CH de Rouen fictif;76;28;public;oui;oui;oui;;1200
690000001;CH de Lyon fictif (autre région);69;84;public;oui;non;non;;500
"""
ACTIVITE = """finess_geo;annee;sejours
140000001;2023;40000
140000001;2024;41000
140000002;2023;8000
140000002;2024;8200
140000003;2023;1500
140000003;2024;1600
270000001;2024;20000
760000001;2023;90000
760000001;2024;91000
690000001;2024;30000
"""
ESIN = """finess_geo;annee;signalements;responsable_connecte
140000001;2023;10;oui
140000001;2024;12;oui
140000002;2023;2;oui
140000002;2024;0;non
140000003;2024;0;oui
270000001;2024;3;oui
760000001;2023;30;oui
760000001;2024;3;oui
690000001;2024;0;non
"""
QLS = """finess_geo;annee;secteur;score;n_dossiers
140000001;2022;MCO;70;60
140000001;2024;MCO;85,5;60
140000001;2024;SSR;19,9;40
140000002;2022;MCO;50;40
140000002;2024;MCO;20;40
140000003;2024;SSR;90;30
760000001;2024;MCO;75;80
760000001;2024;PSY;60;50
690000001;2024;MCO;10;50
"""
CERT = """finess_geo;date_decision;niveau
140000001;15/03/2019;B
140000001;31/12/2024;non_certifie
140000002;01/01/2025;E
140000003;2022-06-01;Certifié avec mention
760000001;2023-05-10;C
"""
FORMATION = """finess_geo;annee;categorie_personnel;effectif;formes
140000001;2024;medical;100;90
140000001;2024;paramedical;300;250
760000001;2024;medical;200;199
"""
AUDITS = """finess_geo;annee;audits_total;audits_precautions
140000001;2024;4;1
760000001;2024;2;0
"""
PLAN = """finess_geo;annee;criteres_remplis;criteres_total
140000001;2024;20;20
760000001;2024;15;20
"""
ENG = """finess_geo;engagement;date_signature;annee_debut;annee_fin;cible
140000001;lettre_liaison;2023-01-15;2023;2027;
140000001;prevention_ias;2023-01-15;2023;2027;
140000002;certification;2021-01-01;2021;2023;
760000001;signalement_esin;2024-02-01;2024;2028;
"""
PLANS = """finess_geo;engagement;action;pilote;echeance;statut
140000001;lettre_liaison;Audit des lettres de liaison;=SUM(A1:A2);2024-06-30;en_cours
"""


def write_fixture(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in {
        "etablissements.csv": ETAB, "activite.csv": ACTIVITE, "esin.csv": ESIN, "qls.csv": QLS,
        "certification.csv": CERT, "formation.csv": FORMATION, "audits.csv": AUDITS,
        "plan_epidemies.csv": PLAN, "engagements.csv": ENG, "plans_actions.csv": PLANS,
    }.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def params(tmp: Path, data: Path, out: Path, **kw) -> Params:
    return Params(data_dir=data, out_dir=out, region=kw.pop("region", "28"), processed_dir=tmp / "processed",
                  quiet=True, **kw)


# ``built`` (tmp, data, out, final) : le rapport de ce petit jeu, construit une fois pour toute la
# session (tests/conftest.py) et partagé avec test_web.py et test_verify.py.


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
    assert "score QLS SSR 2024 : 19,9" in text
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
    assert wb.sheetnames == ["ciblage", "suivi_engagements", "rejets"]
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


def test_unchanged_rerun_does_nothing(built):
    tmp, data, out, final = built
    before = (final / "manifest.json").stat().st_mtime_ns
    [again] = build_report(params(tmp, data, out))
    assert again == final and (final / "manifest.json").stat().st_mtime_ns == before


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_failed_run_leaves_previous_outputs_untouched(built, monkeypatch):
    tmp, data, out, final = built
    before = _snapshot(final)
    # 1. bad input: stops before any writing
    bad = write_fixture(tmp / "raw_bad")
    (bad / "esin.csv").write_text("finess_geo;annee;signalements\n140000001;2024;1\n", encoding="utf-8")
    with pytest.raises(InputError, match="responsable_connecte"):
        build_report(params(tmp, bad, out))
    # 2. failure in the middle of rendering (after notebooks ran in the temporary folder)
    from analysis.publishing import render

    def boom(*a, **k):
        raise RuntimeError("panne simulée du rendu PDF")

    monkeypatch.setattr(render, "html_to_pdf", boom)
    with pytest.raises(RuntimeError, match="panne simulée"):
        build_report(params(tmp, data, out, force=True))
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


def test_relative_paths_as_make_passes_them(tmp_path, monkeypatch):
    """`make report` passes relative folders (data/raw, reports): every notebook must still find them."""
    write_fixture(tmp_path / "raw")
    monkeypatch.chdir(tmp_path)
    [final] = build_report(Params(data_dir=Path("raw"), out_dir=Path("out"), region="28",
                                  processed_dir=Path("processed"), quiet=True, fiches=False))
    assert (tmp_path / "out" / "2024" / "28" / "rapport_annuel.pdf").is_file()
    assert final == Path("out") / "2024" / "28"
