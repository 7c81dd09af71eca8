"""Contrôle qualité du recueil QLS (issue 14) : score recalculé à partir des dossiers réaudités,
verdict, invalidation des résultats en surcotation, publication. Attendus calculés à la main.

Jeu écrit à la main (région 28, campagne 2024, secteur MCO sauf mention) :

- ``140000001`` « CH A » : 30 dossiers tous conformes -> score 100 (moyenne et part de dossiers
  conformes) ; déclaré 95 -> concordant ; engagement lettre de liaison atteint (95 ≥ 80), inchangé ;
- ``140000002`` « Clinique B » : 30 dossiers, un critère indispensable manquant dans chacun (lettre
  introuvable ou non datée du jour de la sortie) -> score 0 ; déclaré 85 -> surcotation ; sans le
  contrôle son engagement est atteint, avec le contrôle il est non évaluable et le motif le dit ;
- ``140000003`` « SMR C » (SSR) : 30 dossiers sans lettre -> 0 ; déclaré 15 -> surcotation : sans le
  contrôle il est ciblé (15 < 20), avec le contrôle son résultat non validé ne cible pas ;
- ``760000001`` « CH D » : 4 dossiers (moins que le minimum de 30) -> non évaluable, score déclaré 70
  conservé. Scores des dossiers (critères indispensables comptés) : 3/4 = 75 (1 critère de contenu
  rempli, 1 non, 8 NA), 12/12 = 100, 0 (lettre introuvable), 6/10 = 60 (4 remplis, 4 non, 2 NA) ;
  moyenne 58,75, écart type 42,5 ; 1 dossier conforme sur 4 = 25 % ;
- ``270000001`` « CH E » : 30 dossiers conformes, aucun score QLS déclaré -> non évaluable.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
from openpyxl import load_workbook
from pypdf import PdfReader
from tables import results_for, rules_with, table

from analysis.indicators import controle_qls as cq
from analysis.indicators.engine import observe
from analysis.reading.cleaning import clean_folder
from analysis.reading.readers import InputError
from analysis.rules.model import load_rules

A, B, C, D, E = "140000001", "140000002", "140000003", "760000001", "270000001"
ALL_OUI = ("oui",) * 10


def _etabs():
    return table("etablissements", [
        dict(finess_geo=A, raison_sociale="CH A", departement="14", region="28", statut="public", mco=True,
             ssr=False, psy=False),
        dict(finess_geo=B, raison_sociale="Clinique B", departement="14", region="28", statut="prive_lucratif",
             mco=True, ssr=False, psy=False),
        dict(finess_geo=C, raison_sociale="SMR C", departement="14", region="28", statut="prive_non_lucratif",
             mco=False, ssr=True, psy=False),
        dict(finess_geo=D, raison_sociale="CH D", departement="76", region="28", statut="public", mco=True,
             ssr=False, psy=False),
        dict(finess_geo=E, raison_sociale="CH E", departement="27", region="28", statut="public", mco=True,
             ssr=False, psy=False),
    ])


def _rec(f, i, lr=True, dj=True, crit=ALL_OUI, secteur="MCO", annee=2024):
    r = dict(finess_geo=f, annee=annee, secteur=secteur, dossier=f"D{i:03d}", lettre_retrouvee=lr,
             datee_jour_sortie=dj, controleur="Dr Martin")
    r.update({f"critere_{k + 1:02d}": v for k, v in enumerate(crit)})
    return r


D_RECORDS = [
    _rec(D, 1, crit=("oui", "non") + ("NA",) * 8),                     # (2 + 1) / (2 + 2) = 75
    _rec(D, 2),                                                         # 12 / 12 = 100
    _rec(D, 3, lr=False, dj=False),                                     # lettre introuvable : 0
    _rec(D, 4, crit=("oui",) * 4 + ("non",) * 4 + ("NA",) * 2),         # (2 + 4) / (2 + 8) = 60
]


def _data(with_dossiers=True):
    dossiers = ([_rec(A, i) for i in range(30)]
                + [_rec(B, i, lr=(i % 2 == 0), dj=(i % 2 == 1)) for i in range(30)]
                + [_rec(C, i, lr=False, dj=False, secteur="SSR") for i in range(30)]
                + D_RECORDS + [_rec(E, i) for i in range(30)])
    data = {
        "etablissements": _etabs(),
        "qls": table("qls", [
            dict(finess_geo=A, annee=2024, secteur="MCO", score=95, n_dossiers=60),
            dict(finess_geo=B, annee=2022, secteur="MCO", score=70, n_dossiers=60),
            dict(finess_geo=B, annee=2024, secteur="MCO", score=85, n_dossiers=60),
            dict(finess_geo=C, annee=2024, secteur="SSR", score=15, n_dossiers=40),
            dict(finess_geo=D, annee=2024, secteur="MCO", score=70, n_dossiers=80),
        ]),
        "engagements": table("engagements", [
            dict(finess_geo=f, engagement="lettre_liaison", date_signature="2023-01-15", annee_debut=2023,
                 annee_fin=2027) for f in (A, B, C, D)]),
    }
    if with_dossiers:
        data["qls_dossiers"] = table("qls_dossiers", dossiers)
    return data


@pytest.fixture(scope="module")
def rules():
    return load_rules()


@pytest.fixture(scope="module")
def controle(rules):
    ctrl, crit = cq.compute_controle(_data(), rules, 2024, "28")
    return ctrl.set_index("finess_geo"), crit


def test_record_scores_hand_computed(rules):
    d = cq.record_scores(table("qls_dossiers", D_RECORDS), rules.controle_qls)
    assert d["score"].tolist() == [75.0, 100.0, 0.0, 60.0]
    assert d["conforme"].tolist() == [False, True, False, False]
    # critères de contenu seuls (indispensables hors score) : 1/2, 10/10, 0, 4/8
    alt = rules_with(lambda r: r["controle_qls"].update(indispensables_dans_score="non")).controle_qls
    assert cq.record_scores(table("qls_dossiers", D_RECORDS), alt)["score"].tolist() == [50.0, 100.0, 0.0, 50.0]


def test_scores_under_both_aggregations(rules, controle):
    ctrl, _ = controle
    assert ctrl.loc[A, "score_recalcule"] == 100 and ctrl.loc[A, "part_conformes"] == 100
    assert (ctrl.loc[A, "ic_bas"], ctrl.loc[A, "ic_haut"]) == (100, 100)  # 30 scores identiques
    assert ctrl.loc[B, "score_recalcule"] == 0 and ctrl.loc[B, "part_conformes"] == 0
    assert ctrl.loc[C, "score_recalcule"] == 0 and ctrl.loc[C, "secteur"] == "SSR"
    assert ctrl.loc[D, "n_dossiers"] == 4
    assert ctrl.loc[D, "score_recalcule"] == pytest.approx(58.75)  # (75 + 100 + 0 + 60) / 4
    assert ctrl.loc[D, "part_conformes"] == 25
    # part des dossiers conformes : intervalle de Wilson (30 sur 30 : borne basse n / (n + z²))
    rc = rules_with(lambda r: r["controle_qls"].update(agregation="dossiers_conformes"))
    c2 = cq.compute_controle(_data(), rc, 2024, "28")[0].set_index("finess_geo")
    z = 1.959963985
    assert c2.loc[A, "score_recalcule"] == 100 and c2.loc[A, "ic_bas"] == pytest.approx(100 * 30 / (30 + z * z), abs=1e-4)
    assert c2.loc[B, "score_recalcule"] == 0 and c2.loc[B, "ic_haut"] == pytest.approx(100 * z * z / (30 + z * z), abs=1e-4)
    assert c2.loc[D, "score_recalcule"] == 25
    assert list(c2["verdict"].reindex([A, B, C])) == ["concordant", "surcotation", "surcotation"]


def test_verdicts_and_motifs(controle):
    ctrl, _ = controle
    assert ctrl.loc[A, "verdict"] == "concordant"
    assert ctrl.loc[B, "verdict"] == "surcotation" and ctrl.loc[C, "verdict"] == "surcotation"
    assert ctrl.loc[B, "motif"] == ("résultat non validé par le contrôle qualité du recueil (score déclaré 85,0\u00a0%, "
                                    "score recalculé 0,0\u00a0% [0,0\u00a0; 0,0], 30 dossiers)")
    assert ctrl.loc[D, "verdict"] == "non_evaluable" and "moins que le minimum de 30" in ctrl.loc[D, "motif"]
    assert ctrl.loc[E, "verdict"] == "non_evaluable" and "aucun score QLS déclaré" in ctrl.loc[E, "motif"]
    assert ctrl.loc[E, "score_declare"] is pd.NA or pd.isna(ctrl.loc[E, "score_declare"])
    assert list(ctrl.reset_index().columns[:11]) == cq.CONTROLE_COLUMNS


def test_student_interval_and_minimum_from_the_rules():
    # minimum abaissé à 2 : CH D est évalué ; moyenne 58,75 ± t(0,975 ; 3) × 42,5 / 2, bornée à 0–100
    rules = rules_with(lambda r: r["controle_qls"].update(dossiers_minimum=2))
    ctrl = cq.compute_controle(_data(), rules, 2024, "28")[0].set_index("finess_geo")
    half = 3.182446305 * 42.5 / 2
    assert 58.75 - half < 0 and 58.75 + half > 100
    assert (ctrl.loc[D, "ic_bas"], ctrl.loc[D, "ic_haut"]) == (0, 100)
    assert ctrl.loc[D, "verdict"] == "concordant"  # 70 dans [0 ; 100]
    # une marge de 90 points : B (85 déclaré, borne haute 0) n'est plus en surcotation
    m = rules_with(lambda r: r["controle_qls"]["verdict"].update(marge=90))
    assert cq.compute_controle(_data(), m, 2024, "28")[0].set_index("finess_geo").loc[B, "verdict"] == "concordant"


def test_criteria_most_often_failed(controle):
    _, crit = controle
    top = crit.set_index("critere")
    # lettre introuvable : 15 (B) + 30 (C) + 1 (D) sur 124 dossiers ; non datée : 15 + 30 + 1
    assert top.loc["lettre_retrouvee", "n_non_conformes"] == 46 and top.loc["lettre_retrouvee", "n_applicables"] == 124
    assert top.loc["datee_jour_sortie", "n_non_conformes"] == 46
    # critère 2 : « non » dans le 1er dossier de D ; critère 5 : NA dans le 1er, « non » dans le 4e
    assert (top.loc["critere_02", "n_non_conformes"], top.loc["critere_02", "n_applicables"]) == (1, 124)
    assert (top.loc["critere_05", "n_non_conformes"], top.loc["critere_05", "n_applicables"]) == (1, 123)
    assert crit["critere"].iloc[0] == "lettre_retrouvee" and crit["libelle"].iloc[0] == \
        "Lettre de liaison à la sortie retrouvée"


@pytest.fixture(scope="module")
def regions(rules, tmp_path_factory):
    """Résultats de la région (mêmes étapes que les notebooks 02 à 04) avec et sans dossiers réaudités."""
    tmp = tmp_path_factory.mktemp("controle")
    return (tmp, results_for(_data(), rules, 2024, "28", tmp / "avec"),
            results_for(_data(with_dossiers=False), rules, 2024, "28", tmp / "sans"))


def test_overscorer_not_targeted_nor_atteint_concordant_unchanged(regions):
    tmp_path, with_ctrl, without = regions
    cib = set(zip(with_ctrl.ciblage["finess_geo"], with_ctrl.ciblage["risque"]))
    cib0 = set(zip(without.ciblage["finess_geo"], without.ciblage["risque"]))
    assert (C, "rupture_parcours") in cib0 and (C, "rupture_parcours") not in cib
    s = with_ctrl.suivi.set_index(["finess_geo", "indicateur"])
    s0 = without.suivi.set_index(["finess_geo", "indicateur"])
    assert s0.loc[(B, "score_qls_mco"), "statut"] == "atteint"
    row = s.loc[(B, "score_qls_mco")]
    assert row["statut"] == "non_evaluable" and pd.isna(row["valeur_num"]) and row["valeur_texte"] == "non validé"
    assert row["commentaire"].startswith("résultat non validé par le contrôle qualité du recueil (score déclaré 85,0")
    assert "30 dossiers" in row["commentaire"]
    assert s.loc[(C, "score_qls_ssr"), "statut"] == "non_evaluable"
    # l'ancienne campagne (2022, 70) ne remplace pas le résultat non validé
    assert not (s.loc[(B, "score_qls_mco"), "annee_donnee"] == 2022)
    # concordant (A) et non évaluable (D, score déclaré conservé) : lignes identiques
    cols = ["valeur", "valeur_texte", "statut", "commentaire", "ic_bas", "ic_haut"]
    for key in ((A, "score_qls_mco"), (D, "score_qls_mco")):
        assert s.loc[key, cols].tolist() == s0.loc[key, cols].tolist(), key
    assert s.loc[(A, "score_qls_mco"), "statut"] == "atteint"
    # tendances 2024 : le résultat non validé sort de la valeur régionale MCO (A 95 et D 70, 60 et 80 dossiers)
    t = with_ctrl.tendances.set_index(["indicateur", "annee"]).loc[("score_qls_mco", 2024)]
    assert t["n_etablissements"] == 2
    assert t["valeur_regionale"] == pytest.approx((95 * 60 + 70 * 80) / 140)
    t0 = without.tendances.set_index(["indicateur", "annee"]).loc[("score_qls_mco", 2024)]
    assert t0["n_etablissements"] == 3
    # résultats persistés : contrôle et critères relus
    assert set(with_ctrl.controle_qls["verdict"]) == {"concordant", "surcotation", "non_evaluable"}
    assert without.controle_qls is None and without.controle_criteres is None
    assert (tmp_path / "avec" / "controle_qls.csv").is_file() and not (tmp_path / "sans" / "controle_qls.csv").exists()


def test_masking_once_carries_the_reason(rules, controle):
    ctrl, _ = controle
    t = cq.apply_controle(_data(), rules, ctrl.reset_index())
    q = t["qls"].set_index(["finess_geo", "annee"])
    assert pd.isna(q.loc[(B, 2024), "score"]) and pd.isna(q.loc[(B, 2024), "n_dossiers"])
    assert q.loc[(B, 2022), "score"] == 70 and pd.isna(q.loc[(B, 2022), cq.NON_VALIDE])
    assert q.loc[(A, 2024), "score"] == 95
    obs = observe(t, rules, "score_qls", 2024).set_index("finess_geo")
    assert obs.loc[B, "non_valide"].startswith("résultat non validé") and pd.isna(obs.loc[B, "valeur_num"])
    assert obs.loc[B, "valeur_precedente"] == 70 and obs.loc[B, "annee_donnee"] == 2024


def test_without_dossiers_nothing_changes(rules, tmp_path):
    """Sans fichier de dossiers réaudités, chaque étape reçoit les tables mêmes du contexte (même objet) :
    ses résultats ne peuvent pas changer ; aucune sortie du contrôle n'est écrite."""
    from types import SimpleNamespace

    from analysis.indicators import results as R

    data = _data(with_dossiers=False)
    assert cq.compute_controle(data, rules, 2024, "28") is None
    ctx = SimpleNamespace(tables=data, rules=rules, annee=2024, region="28", out_dir=tmp_path)
    assert R.run_controle(ctx) is None and R.stage_tables(ctx) is data
    assert not (tmp_path / "controle_qls.csv").exists()
    assert not (tmp_path / R.RESULTS_DIR / "controle_qls.parquet").exists()
    plain = rules_with(lambda r: r.pop("controle_qls"))
    assert R.stage_tables(SimpleNamespace(tables=data, rules=plain)) is data


def test_bad_lines_rejected_with_file_line_column(tmp_path, rules):
    (tmp_path / "etablissements.csv").write_text(
        "finess_geo;raison_sociale;departement;region;statut\n140000001;CH A;14;28;public\n", encoding="utf-8")
    head = ("finess_geo;annee;secteur;dossier;lettre_retrouvee;datee_jour_sortie;"
            + ";".join(f"critere_{k:02d}" for k in range(1, 11)))
    lines = [head,
             "140000001;2024;MCO;D1;oui;oui;oui;non;NA;oui;oui;oui;oui;oui;oui;oui",
             "140000001;2024;MCO;D2;oui;oui;oui;oui;peut-être;oui;oui;oui;oui;oui;oui;oui",
             "140000001;2024;SMR;D3;Vrai;O;Oui;N/A;sans objet;Non;0;1;oui;oui;oui;oui",
             "140000001;2024;MCO;D4;oui;peut-être;oui;oui;oui;oui;oui;oui;oui;oui;oui;oui"]
    (tmp_path / "qls_dossiers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    res = clean_folder(tmp_path, rules)
    rej = res.rejects[res.rejects["fichier"] == "qls_dossiers.csv"]
    got = {(int(r.ligne), r.colonne, r.valeur) for r in rej.itertuples()}
    assert got == {(3, "critere_03", "peut-être"), (5, "datee_jour_sortie", "peut-être")}
    assert all(m for m in rej["motif"])
    ok = res.tables["qls_dossiers"].set_index("dossier")
    assert len(ok) == 2 and ok.loc["D3", "secteur"] == "SSR"
    assert ok.loc["D3", ["critere_01", "critere_02", "critere_03", "critere_04", "critere_05", "critere_06"]].tolist() \
        == ["oui", "NA", "NA", "non", "non", "oui"]


def test_rules_errors_name_the_key():
    with pytest.raises(InputError, match=r"controle_qls\.criteres\.critere_11 : colonne absente"):
        rules_with(lambda r: r["controle_qls"]["criteres"].update(critere_11="Autre critère"))
    with pytest.raises(InputError, match=r"controle_qls\.agregation : valeur non admise « mediane »"):
        rules_with(lambda r: r["controle_qls"].update(agregation="mediane"))
    with pytest.raises(InputError, match=r"controle_qls\.indicateur : un indicateur de calcul « valeur »"):
        rules_with(lambda r: r["controle_qls"].update(indicateur="taux_formes"))


# ------------------------------------------------------------------------------------------------
# Sur le rapport construit une fois (fixture ``built``) : 140000001 concordant, 760000001 en
# surcotation (MCO 2024, déclaré 75, 30 dossiers non datés du jour), 140000003 non évaluable.


def test_built_outputs_show_the_control(built):
    final = built[3]
    c = pd.read_csv(final / "controle_qls.csv", sep=";", encoding="utf-8-sig", dtype=str).set_index("finess_geo")
    assert list(c.reset_index().columns) == cq.CONTROLE_COLUMNS
    assert c.loc["760000001", "verdict"] == "surcotation" and float(c.loc["760000001", "score_recalcule"]) == 0
    assert c.loc["140000001", "verdict"] == "concordant" and c.loc["140000003", "verdict"] == "non_evaluable"
    m = __import__("json").loads((final / "manifest.json").read_text(encoding="utf-8"))
    assert "controle_qls.csv" in {o["fichier"] for o in m["sorties"]}
    # le suivi signé de 140000001 (concordant) est inchangé : 85,5 ≥ 80
    s = pd.read_csv(final / "suivi_engagements.csv", sep=";", encoding="utf-8-sig", dtype=str)
    assert s.loc[(s.finess_geo == "140000001") & (s.indicateur == "score_qls_mco"), "statut"].item() == "atteint"


def test_built_report_section_figure_and_method(built):
    html = (built[3] / "rapport_annuel.html").read_text(encoding="utf-8")
    assert "Contrôle qualité du recueil" in html and 'href="#sec-controle-qualite-du-recueil"' in html
    assert "Surcotation (non validé)" in html and "Critères les plus souvent non remplis" in html
    assert "Lettre de liaison datée du jour de la sortie" in html
    assert "Graphique en points : pour 3 résultat(s) contrôlé(s)" in html  # texte alternatif généré
    assert "Score déclaré et score recalculé" in html
    assert "moyenne des scores des dossiers, avec un intervalle de Student à 95" in html  # méthode
    # le PDF est rendu depuis ce HTML (son texte est vérifié dans tests/test_pipeline.py) : le titre est
    # dans ses signets
    outline = [o.title for o in PdfReader(built[3] / "rapport_annuel.pdf").outline if not isinstance(o, list)]
    assert "Contrôle qualité du recueil" in outline


def test_built_sheet_and_workbook_show_the_control(built):
    final = built[3]
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(final / "fiches" / "760000001.pdf").pages).split())
    assert "Contrôle qualité du recueil QLS" in text and "Surcotation (non validé)" in text
    assert "non validé" in text and "30" in text
    other = "\n".join(p.extract_text() for p in PdfReader(final / "fiches" / "140000002.pdf").pages)
    assert "Contrôle qualité du recueil" not in other  # non contrôlé : pas de bloc
    wb = load_workbook(final / "cpom_28_2024.xlsx")
    assert wb.sheetnames == ["ciblage", "suivi_engagements", "rejets", "Contrôle QLS"]
    ws = wb["Contrôle QLS"]
    header = [c.value for c in ws[1]]
    assert header == cq.CONTROLE_COLUMNS
    rows = {r[0].value: r for r in ws.iter_rows(min_row=2)}
    cell = rows["760000001"][header.index("score_declare")]
    assert cell.data_type == "n" and cell.value == 75 and cell.number_format == "0.0"
    assert rows["760000001"][header.index("n_dossiers")].value == 30
    assert not math.isnan(rows["140000001"][header.index("score_recalcule")].value)
