"""Tests des tendances régionales, évolutions QLS, entonnoirs et comparaison ciblés / non ciblés."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from tables import table

from analysis.indicators import tendances


def etab(finess, region="28", **kw):
    return dict(finess_geo=finess, raison_sociale=f"Établissement {finess}", departement=finess[:2],
                region=region, statut="public", **kw)


A, B, C, X = "140000011", "140000029", "140000037", "130000011"


@pytest.fixture()
def data():
    esin = [(A, 2023, 2, True), (B, 2023, 0, False), (A, 2024, 6, True), (B, 2024, 2, True),
            (X, 2023, 500, True), (X, 2024, 500, True)]
    act = [(A, 2023, 10_000), (B, 2023, 10_000), (A, 2024, 10_000), (B, 2024, 10_000),
           (X, 2023, 1_000), (X, 2024, 1_000)]
    qls = [(A, 2022, "MCO", 50.0, 100), (B, 2022, "MCO", 70.0, 300), (A, 2023, "MCO", 60.0, 50),
           (B, 2023, "MCO", 90.0, 50), (C, 2024, "SSR", 85.0, None), (X, 2023, "MCO", 0.0, 1000)]
    return {
        "etablissements": table("etablissements", [etab(A), etab(B), etab(C), etab(X, region="93")]),
        "esin": table("esin", [dict(finess_geo=f, annee=y, signalements=s, responsable_connecte=r)
                               for f, y, s, r in esin]),
        "activite": table("activite", [dict(finess_geo=f, annee=y, sejours=s) for f, y, s in act]),
        "qls": table("qls", [dict(finess_geo=f, annee=y, secteur=s, score=sc, n_dossiers=n)
                             for f, y, s, sc, n in qls]),
        "formation": table(
            "formation",
            [
                dict(finess_geo=A, annee=2024, categorie_personnel="médical", effectif=10, formes=9),
                dict(finess_geo=A, annee=2024, categorie_personnel="paramédical", effectif=20, formes=18),
                dict(finess_geo=B, annee=2024, categorie_personnel="médical", effectif=10, formes=5),
                dict(finess_geo=X, annee=2024, categorie_personnel="médical", effectif=100, formes=0),
            ],
        ),
        "certification": table(
            "certification",
            [
                dict(finess_geo=A, date_decision="2020-01-01", niveau="A"),
                dict(finess_geo=B, date_decision="2023-06-01", niveau="E"),
                dict(finess_geo=X, date_decision="2020-01-01", niveau="E"),
            ],
        ),
    }


def value(df, indicateur, annee, col="valeur_regionale"):
    sel = df.loc[(df["indicateur"] == indicateur) & (df["annee"] == annee), col]
    assert len(sel) == 1, (indicateur, annee)
    return sel.iloc[0]


@pytest.fixture()
def tend(data, rules):
    return tendances.compute_tendances(data, rules, "28", years=[2022, 2023, 2024])


def test_colonnes_et_tri(tend):
    assert list(tend.columns) == tendances.TENDANCES_COLUMNS
    keys = list(zip(tend["indicateur"], tend["annee"]))
    assert keys == sorted(keys)
    assert not tend.duplicated(["indicateur", "annee"]).any()


def test_taux_esin_regional(tend):
    # 2023 : 2 / 20 000 séjours = 1 pour 10 000 ; 2024 : 8 / 20 000 = 4 pour 10 000 (X exclu)
    assert value(tend, "taux_regional_infectieux", 2023) == pytest.approx(1.0)
    assert value(tend, "taux_regional_infectieux", 2024) == pytest.approx(4.0)
    assert value(tend, "taux_regional_infectieux", 2024, "evolution_annuelle") == pytest.approx(3.0)
    assert value(tend, "taux_regional_infectieux", 2024, "annee_reference") == 2023
    assert value(tend, "taux_regional_infectieux", 2024, "n_etablissements") == 2
    assert value(tend, "taux_regional_infectieux", 2024, "unite") == "pour 10\u00a0000 séjours"
    assert value(tend, "signalements", 2024) == 8


def test_parts_esin(tend):
    assert value(tend, "part_non_declarants_infectieux", 2023) == pytest.approx(50.0)
    assert value(tend, "part_non_declarants_infectieux", 2024) == pytest.approx(0.0)
    assert value(tend, "part_non_declarants_infectieux", 2024, "evolution_annuelle") == pytest.approx(-50.0)
    assert value(tend, "responsable_connecte", 2023) == pytest.approx(50.0)
    assert value(tend, "responsable_connecte", 2024) == pytest.approx(100.0)


def test_scores_qls(tend):
    # 2022 : (50 × 100 + 70 × 300) / 400 = 65 ; 2023 : (60 × 50 + 90 × 50) / 100 = 75 (X exclu)
    assert value(tend, "score_qls_mco", 2022) == pytest.approx(65.0)
    assert value(tend, "score_qls_mco", 2023) == pytest.approx(75.0)
    assert value(tend, "score_qls_mco", 2023, "valeur_mediane") == pytest.approx(75.0)
    assert value(tend, "score_qls_mco", 2023, "part_cible_atteinte") == pytest.approx(50.0)
    assert value(tend, "score_qls_mco", 2022, "part_cible_atteinte") == pytest.approx(0.0)
    assert value(tend, "score_qls_mco", 2023, "evolution_annuelle") == pytest.approx(10.0)
    # sans nombre de dossiers : moyenne simple
    assert value(tend, "score_qls_ssr", 2024) == pytest.approx(85.0)
    assert value(tend, "score_qls_ssr", 2024, "part_cible_atteinte") == pytest.approx(100.0)


def test_formation(tend):
    # toutes catégories : 32 / 40 = 80 % ; A 27/30 = 90 %, B 5/10 = 50 % ; A atteint, B non
    assert value(tend, "taux_formes", 2024) == pytest.approx(80.0)
    assert value(tend, "taux_formes", 2024, "valeur_mediane") == pytest.approx(70.0)
    assert value(tend, "taux_formes", 2024, "part_cible_atteinte") == pytest.approx(50.0)
    assert value(tend, "taux_formes_medical", 2024) == pytest.approx(70.0)  # 14 / 20
    assert value(tend, "taux_formes_paramedical", 2024, "part_cible_atteinte") == pytest.approx(100.0)


def test_certification(tend):
    assert value(tend, "niveau_certification", 2022) == pytest.approx(100.0)
    assert value(tend, "niveau_certification", 2022, "n_etablissements") == 1
    assert value(tend, "niveau_certification", 2023) == pytest.approx(50.0)
    assert value(tend, "niveau_certification", 2023, "evolution_annuelle") == pytest.approx(-50.0)


def test_ciblage_et_mouvements(data, rules):
    t = tendances.compute_tendances(data, rules, "28", years=[2023, 2024])
    # 2023 : B non déclarant et non certifié ; 2024 : B reste non certifié, déclare 2 (attendu 4, p = 0,24)
    assert value(t, "cibles_infectieux", 2023) == 1
    assert value(t, "cibles_infectieux", 2024) == 0
    assert value(t, "cibles_management_qualite", 2024) == 1
    assert value(t, "cibles_rupture_parcours", 2024) == 0
    assert value(t, "cibles_total", 2024) == 1
    assert value(t, "cibles_total", 2024, "n_etablissements") == 3
    assert value(t, "sorties_ciblage", 2024) == 1
    assert value(t, "entrees_ciblage", 2024) == 0
    assert pd.isna(value(t, "entrees_ciblage", 2023))


def test_filtre_des_annees(data, rules):
    t = tendances.compute_tendances(data, rules, "28", years=[2024])
    assert set(t["annee"]) == {2024}
    # l'évolution se calcule encore par rapport à 2023
    assert value(t, "taux_regional_infectieux", 2024, "evolution_annuelle") == pytest.approx(3.0)


def test_annees_par_defaut(data, rules):
    assert tendances.available_years(data, rules, "28") == [2022, 2023, 2024]
    t = tendances.compute_tendances(data, rules, "28")
    assert set(t["annee"]) == {2022, 2023, 2024}


def test_sources_absentes(data, rules):
    t = tendances.compute_tendances({"etablissements": data["etablissements"]}, rules, "28")
    assert t.empty and list(t.columns) == tendances.TENDANCES_COLUMNS


def test_qls_evolution(data, rules):
    ev = tendances.evolutions(data, rules, "28", 2023, "score_qls").set_index("finess_geo")
    assert list(ev.reset_index().columns) == tendances.EVOLUTION_COLUMNS
    assert set(ev.index) == {A, B}
    # A : 2022 50/100 -> (40,383 ; 59,617) ; 2023 30/50 -> (46,181 ; 72,392) : chevauchement
    assert ev.loc[A, "annee_precedente"] == 2022 and ev.loc[A, "annee"] == 2023
    assert ev.loc[A, "ic_bas"] == pytest.approx(46.181, abs=1e-3)
    assert ev.loc[A, "ic_haut_precedent"] == pytest.approx(59.617, abs=1e-3)
    assert ev.loc[A, "evolution_points"] == pytest.approx(10.0)
    assert ev.loc[A, "evolution"] == "stable"
    assert ev.loc[A, "position_cible"] == "en dessous"  # 72,4 < 80
    # B : 2022 210/300 -> (64,588 ; 74,906) ; 2023 45/50 -> (78,640 ; 95,652)
    assert ev.loc[B, "evolution"] == "amélioration"
    assert ev.loc[B, "position_cible"] == "non différent"
    assert ev.loc[B, "source_ic"] == "Wilson"


def test_funnel_esin(data, rules):
    f = tendances.funnel_data_poisson(data, rules, "28", 2024, "infectieux")
    assert f.reference == pytest.approx(4.0)
    assert set(f.points["finess_geo"]) == {A, B}
    pts = f.points.set_index("finess_geo")
    assert pts.loc[A, "taux"] == pytest.approx(6.0)
    assert pts.loc[B, "attendu"] == pytest.approx(4.0)
    assert pts.loc[B, "p_valeur"] == pytest.approx(math.exp(-4) * 13)  # P(X <= 2 | 4)
    assert (pts["position_funnel"] == "dans les limites").all()
    assert {"denominateur", "bas_95", "haut_95", "bas_998", "haut_998"} <= set(f.limites.columns)
    assert f.limites["reference"].tolist() == pytest.approx([4.0] * len(f.limites))
    assert f.limites["denominateur"].between(8_000, 11_000).all()  # grille autour des points
    assert (f.limites["exposition"] == f.limites["denominateur"]).all()  # même nom que l'axe des points


def test_funnel_qls(data, rules):
    f = tendances.funnel_data_valeur(data, rules, "28", 2023, "score_qls")
    assert f.reference == {"MCO": pytest.approx(75.0)}
    assert set(f.points["finess_geo"]) == {A, B}
    assert set(f.limites["par_valeur"]) == {"MCO"}
    assert (f.limites["n"] == f.limites["denominateur"]).all()
    lim = f.limites
    assert ((lim["bas_998"] <= lim["bas_95"]) & (lim["haut_95"] <= lim["haut_998"])).all()


def test_note_regression_vers_la_moyenne():
    note = tendances.regression_to_mean_note()
    assert "régression vers la moyenne" in note
    assert "Barnett" in note and "non ciblés" in note


def test_cibles_contre_non_cibles(rules):
    scores = {"140000011": (10.0, 40.0), "140000029": (15.0, 35.0), "140000037": (30.0, 40.0),
              "140000045": (50.0, 50.0), "140000052": (70.0, 60.0), "140000060": (90.0, 80.0)}
    d = {
        "etablissements": table("etablissements", [etab(f, mco=True) for f in scores]),
        "qls": table(
            "qls",
            [dict(finess_geo=f, annee=2022, secteur="MCO", score=s[0]) for f, s in scores.items()]
            + [dict(finess_geo=f, annee=2024, secteur="MCO", score=s[1]) for f, s in scores.items()],
        ),
    }
    out = tendances.targeted_vs_others(d, rules, "28", 2022, 2024, "rupture_parcours").set_index("groupe")
    assert out.loc["ciblés", "n"] == 2
    assert out.loc["ciblés", "valeur_initiale_moyenne"] == pytest.approx(12.5)
    assert out.loc["ciblés", "evolution_moyenne"] == pytest.approx(25.0)
    # non ciblés : initiales 30, 50, 70, 90 ; premier quartile 45 -> comparable : 30 -> 40
    assert out.loc["non ciblés comparables", "n"] == 1
    assert out.loc["non ciblés comparables", "evolution_moyenne"] == pytest.approx(10.0)
    assert out.loc["non ciblés", "n"] == 4
    assert out.loc["non ciblés", "evolution_moyenne"] == pytest.approx(-2.5)
    assert out.loc["non ciblés", "evolution_mediane"] == pytest.approx(-5.0)
    assert "régression vers la moyenne" in out.attrs["note"]
    assert tendances.comparable_risks(rules) == ["infectieux", "rupture_parcours"]
