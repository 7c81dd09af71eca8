"""Tests du suivi des engagements (contrat, section 2) sur un petit jeu écrit à la main (région 28)."""

from __future__ import annotations

import pandas as pd
import pytest
from tables import rules_with, table

from analysis.indicators import suivi


def etab(finess, region="28", specificite=None, mco=None, ssr=None, psy=None):
    return dict(finess_geo=finess, raison_sociale=f"Établissement {finess}", departement=finess[:2],
                region=region, statut="public", specificite=specificite, mco=mco, ssr=ssr, psy=psy)


def eng(finess, engagement, debut, fin, cible=None):
    return dict(finess_geo=finess, engagement=engagement, date_signature="2019-06-30", annee_debut=debut,
                annee_fin=fin, cible=cible)


S1, S2, S3, S4, S5, S6, S7 = (f"14000{i:04d}" for i in (11, 29, 37, 45, 52, 60, 78))
X = "130000011"  # autre région


@pytest.fixture()
def data():
    return {
        "etablissements": table(
            "etablissements",
            [
                etab(S1, mco=True, ssr=False, psy=False),
                etab(S2, specificite="hemodialyse", mco=True, ssr=False, psy=False),
                etab(S3, specificite="mecss"),  # secteurs inconnus : les données QLS en tiennent lieu
                etab(S4, mco=True, ssr=False, psy=False),
                etab(S5, mco=True, ssr=False, psy=False),
                etab(S6, mco=True, ssr=False, psy=False),
                etab(S7, mco=False, ssr=False, psy=False),
                etab(X, region="93", mco=True),
            ],
        ),
        "engagements": table(
            "engagements",
            [
                eng(S1, "certification", 2022, 2025),
                eng(S1, "lettre_liaison", 2023, 2024),
                eng(S1, "signalement_esin", 2020, 2023),  # terminé en N-1
                eng(S1, "prevention_ias", 2024, 2026),
                eng(S2, "lettre_liaison", 2024, 2024),
                eng(S2, "prevention_ias", 2024, 2024),
                eng(S3, "lettre_liaison", 2024, 2025),
                eng(S3, "prevention_ias", 2024, 2025),
                eng(S4, "certification", 2024, 2024),
                eng(S4, "signalement_esin", 2024, 2024),
                eng(S5, "lettre_liaison", 2024, 2025, cible="70 %"),
                eng(S5, "prevention_ias", 2024, 2025, cible="audits_precautions=2"),
                eng(S6, "certification", 2024, 2024),
                eng(S6, "signalement_esin", 2023, 2024),
                eng(S6, "prevention_ias", 2025, 2026),  # commence en N+1
                eng(S7, "lettre_liaison", 2024, 2024),
                eng(X, "certification", 2024, 2024),
            ],
        ),
        "certification": table(
            "certification",
            [
                dict(finess_geo=S1, date_decision="2021-04-01", niveau="B"),
                dict(finess_geo=S4, date_decision="2023-06-01", niveau="E"),
                dict(finess_geo=S4, date_decision="2025-01-01", niveau="A"),
                dict(finess_geo=X, date_decision="2020-01-01", niveau="E"),
            ],
        ),
        "qls": table(
            "qls",
            [
                dict(finess_geo=S1, annee=2022, secteur="MCO", score=50.0, n_dossiers=100),
                dict(finess_geo=S1, annee=2024, secteur="MCO", score=80.0, n_dossiers=100),
                dict(finess_geo=S1, annee=2024, secteur="SSR", score=10.0),  # secteur non détenu
                dict(finess_geo=S2, annee=2024, secteur="MCO", score=10.0),
                dict(finess_geo=S3, annee=2023, secteur="SSR", score=79.9, ic_bas=70.0, ic_haut=88.0),
                dict(finess_geo=S3, annee=2021, secteur="PSY", score=90.0),  # hors fenêtre
                dict(finess_geo=S5, annee=2024, secteur="MCO", score=75.0),
            ],
        ),
        "esin": table(
            "esin",
            [
                dict(finess_geo=S1, annee=2023, signalements=4, responsable_connecte=True),
                dict(finess_geo=S1, annee=2024, signalements=5, responsable_connecte=True),
                dict(finess_geo=S4, annee=2024, signalements=0, responsable_connecte=False),
            ],
        ),
        "activite": table("activite", [dict(finess_geo=S4, annee=2024, sejours=12_000)]),
        "formation": table(
            "formation",
            [
                dict(finess_geo=S1, annee=2024, categorie_personnel="médical", effectif=30, formes=27),
                dict(finess_geo=S1, annee=2024, categorie_personnel="paramédical", effectif=100, formes=80),
                dict(finess_geo=S1, annee=2023, categorie_personnel="ash", effectif=10, formes=1),
                dict(finess_geo=S3, annee=2024, categorie_personnel="médical", effectif=10, formes=10),
            ],
        ),
        "audits": table(
            "audits",
            [
                dict(finess_geo=S1, annee=2024, audits_total=3, audits_precautions=1),
                dict(finess_geo=S5, annee=2024, audits_total=4, audits_precautions=1),
            ],
        ),
        "plan_epidemies": table(
            "plan_epidemies",
            [
                dict(finess_geo=S1, annee=2024, criteres_remplis=20, criteres_total=20),
                dict(finess_geo=S5, annee=2024, criteres_remplis=19, criteres_total=20),
            ],
        ),
    }


def by_key(df):
    """Index (finess, indicateur) ; cibles aux espaces insécables rendues ordinaires."""
    return df.assign(cible=df["cible"].str.replace("\u00a0", " ")).set_index(["finess_geo", "indicateur"])


EXPECTED_2024 = {
    (S1, "niveau_certification"): "atteint",
    (S1, "score_qls_mco"): "atteint",  # 80 tout juste
    (S1, "taux_formes_medical"): "atteint",  # 27/30 = 90 % tout juste
    (S1, "taux_formes_paramedical"): "non_atteint",
    (S1, "audits_precautions"): "atteint",
    (S1, "conformite_plan_epidemies"): "atteint",
    (S2, "score_qls_mco"): "non_concerne",  # hémodialyse
    (S2, "taux_formes"): "non_evaluable",  # aucune catégorie déclarée
    (S2, "audits_precautions"): "non_evaluable",
    (S2, "conformite_plan_epidemies"): "non_evaluable",
    (S3, "score_qls_ssr"): "non_atteint",  # 79,9 < 80
    (S3, "score_qls_psy"): "non_evaluable",  # dernière campagne hors fenêtre
    (S3, "taux_formes_medical"): "non_concerne",  # MECSS
    (S3, "audits_precautions"): "non_concerne",
    (S3, "conformite_plan_epidemies"): "non_concerne",
    (S4, "niveau_certification"): "non_atteint",  # E ; la décision du 01/01/2025 ne compte pas
    (S4, "responsable_connecte"): "non_atteint",
    (S4, "signalements"): "sans_cible",
    (S5, "score_qls_mco"): "atteint",  # cible du CPOM : 70 %
    (S5, "taux_formes"): "non_evaluable",
    (S5, "audits_precautions"): "non_atteint",  # cible du CPOM : 2
    (S5, "conformite_plan_epidemies"): "non_atteint",  # 19/20
    (S6, "niveau_certification"): "non_evaluable",
    (S6, "responsable_connecte"): "non_evaluable",
    (S6, "signalements"): "non_evaluable",
    (S7, "score_qls"): "non_concerne",  # le référentiel ne lui connaît aucun secteur MCO, SSR, PSY
}


def test_colonnes_du_contrat_en_tete(data, rules):
    out = suivi.compute_suivi(data, rules, 2024, "28")
    assert list(out.columns[:7]) == ["finess_geo", "raison_sociale", "engagement", "indicateur", "valeur",
                                     "cible", "statut"]
    assert set(out["statut"]) <= set(suivi.STATUTS)


def test_statuts_2024(data, rules):
    out = suivi.compute_suivi(data, rules, 2024, "28")
    got = dict(zip(zip(out["finess_geo"], out["indicateur"]), out["statut"]))
    assert got == EXPECTED_2024


def test_tri(data, rules):
    out = suivi.compute_suivi(data, rules, 2024, "28")
    keys = list(zip(out["finess_geo"], out["engagement"], out["indicateur"]))
    assert keys == sorted(keys)


def test_engagement_termine_ou_futur_non_suivi(data, rules):
    out = suivi.compute_suivi(data, rules, 2024, "28")
    assert not ((out["finess_geo"] == S1) & (out["engagement"] == "signalement_esin")).any()
    assert not ((out["finess_geo"] == S6) & (out["engagement"] == "prevention_ias")).any()
    out23 = by_key(suivi.compute_suivi(data, rules, 2023, "28"))
    assert out23.loc[(S1, "responsable_connecte"), "statut"] == "atteint"
    assert out23.loc[(S1, "signalements"), "valeur"] == "4"


def test_autre_region_absente(data, rules):
    out = suivi.compute_suivi(data, rules, 2024, "28")
    assert X not in set(out["finess_geo"])
    out93 = suivi.compute_suivi(data, rules, 2024, "93")
    assert set(out93["finess_geo"]) == {X}


def test_valeurs_et_cibles(data, rules):
    out = by_key(suivi.compute_suivi(data, rules, 2024, "28"))
    assert out.loc[(S1, "niveau_certification"), ["valeur", "cible"]].tolist() == ["B", "A ou B"]
    assert out.loc[(S1, "score_qls_mco"), ["valeur", "cible"]].tolist() == ["80", "≥ 80 %"]
    assert out.loc[(S1, "taux_formes_medical"), ["valeur", "cible"]].tolist() == ["90", "≥ 90 %"]
    assert out.loc[(S1, "taux_formes_paramedical"), "valeur"] == "80"
    assert out.loc[(S1, "audits_precautions"), ["valeur", "cible"]].tolist() == ["1", "≥ 1"]
    assert out.loc[(S1, "conformite_plan_epidemies"), ["valeur", "cible"]].tolist() == ["100", "100 %"]
    assert out.loc[(S4, "responsable_connecte"), ["valeur", "cible"]].tolist() == ["non", "oui"]
    assert out.loc[(S4, "signalements"), ["valeur", "cible"]].tolist() == ["0", ""]
    assert out.loc[(S4, "niveau_certification"), "valeur"] == "E"
    assert out.loc[(S5, "score_qls_mco"), "cible"] == "≥ 70 %"
    assert out.loc[(S5, "audits_precautions"), "cible"] == "≥ 2"
    assert out.loc[(S5, "conformite_plan_epidemies"), "valeur"] == "95"
    assert pd.isna(out.loc[(S6, "niveau_certification"), "valeur"])
    assert out.loc[(S5, "score_qls_mco"), "cible_source"] == "engagement"
    assert out.loc[(S1, "score_qls_mco"), "cible_source"] == "règles"


def test_colonnes_d_aide_qls(data, rules):
    out = by_key(suivi.compute_suivi(data, rules, 2024, "28"))
    row = out.loc[(S1, "score_qls_mco")]
    # Wilson 80/100 = (71,117 ; 86,663) ; campagne 2022 : 50/100 = (40,383 ; 59,617)
    assert row["ic_bas"] == pytest.approx(71.117, abs=1e-3)
    assert row["ic_haut"] == pytest.approx(86.663, abs=1e-3)
    assert row["position_cible"] == "non différent"
    assert row["evolution"] == "amélioration"  # 71,1 > 59,6
    assert row["par_valeur"] == "MCO" and row["annee_donnee"] == 2024
    s3 = out.loc[(S3, "score_qls_ssr")]
    assert (s3["ic_bas"], s3["ic_haut"]) == (70.0, 88.0)  # intervalle fourni
    assert s3["annee_donnee"] == 2023


def test_cible_du_fichier_de_regles(data, rules):
    r = rules_with(lambda d: d["engagements"]["lettre_liaison"]["indicateurs"]["score_qls"].update(cible=79.0))
    out = by_key(suivi.compute_suivi(data, r, 2024, "28"))
    assert out.loc[(S3, "score_qls_ssr"), "statut"] == "atteint"
    assert out.loc[(S3, "score_qls_ssr"), "cible"] == "≥ 79 %"


def test_mode_veille(data, rules):
    d = {k: v for k, v in data.items() if k != "engagements"}
    assert suivi.is_monitoring_mode(d)
    assert not suivi.is_monitoring_mode(data)
    out = suivi.compute_suivi(d, rules, 2024, "28")
    pairs = set(zip(out["finess_geo"], out["engagement"]))
    expected = {(f, e) for f in (S1, S2, S3, S4, S5, S6, S7)
                for e in ("certification", "lettre_liaison", "signalement_esin", "prevention_ias")}
    assert pairs == expected
    o = by_key(out)
    assert o.loc[(S1, "responsable_connecte"), "statut"] == "atteint"  # suivi même sans engagement signé
    assert o.loc[(S2, "score_qls_mco"), "statut"] == "non_concerne"
    assert o.loc[(S5, "score_qls_mco"), "cible"] == "≥ 80 %"  # pas de cible de CPOM en veille


def test_donnees_absentes_non_evaluables(data, rules):
    d = {"etablissements": data["etablissements"], "engagements": data["engagements"]}
    out = suivi.compute_suivi(d, rules, 2024, "28")
    assert set(out["statut"]) == {"non_evaluable", "non_concerne"}
    assert not out["statut"].isin(["non_atteint", "atteint"]).any()
    # sans données QLS, S3 (secteurs inconnus au référentiel) n'a plus de secteur identifié
    s3 = out.loc[(out["finess_geo"] == S3) & (out["engagement"] == "lettre_liaison")]
    assert s3["indicateur"].tolist() == ["score_qls"]
    assert s3["statut"].tolist() == ["non_evaluable"]


def test_aucun_engagement_suivi(data, rules):
    out = suivi.compute_suivi(data, rules, 2030, "28")
    assert out.empty
    assert list(out.columns[:7]) == suivi.SUIVI_COLUMNS


def test_synthese(data, rules):
    out = suivi.compute_suivi(data, rules, 2024, "28")
    syn = suivi.summarise_suivi(out).set_index(["engagement", "indicateur"])
    cert = syn.loc[("certification", "niveau_certification")]
    assert (cert["n_suivis"], cert["n_evaluables"], cert["n_atteints"], cert["n_non_evaluables"]) == (3, 2, 1, 1)
    assert cert["part_atteinte"] == pytest.approx(50.0)
    sig = syn.loc[("signalement_esin", "signalements")]
    assert sig["n_sans_cible"] == 1 and pd.isna(sig["part_atteinte"])
    mco = syn.loc[("lettre_liaison", "score_qls_mco")]
    assert (mco["n_suivis"], mco["n_evaluables"], mco["n_non_concernes"]) == (3, 2, 1)
    assert mco["part_atteinte"] == pytest.approx(100.0)


def _with_cibles(data, cibles: dict):
    d = dict(data)
    e = data["engagements"].copy()
    for (finess, engagement), cible in cibles.items():
        e.loc[(e["finess_geo"] == finess) & (e["engagement"] == engagement), "cible"] = cible
    d["engagements"] = e
    return d


def test_cibles_personnalisees(data, rules):
    d = _with_cibles(data, {(S1, "certification"): "A", (S1, "prevention_ias"): "taux_formes=80; audits_precautions=2",
                            (S1, "lettre_liaison"): "élevée"})
    out = by_key(suivi.compute_suivi(d, rules, 2024, "28"))
    assert out.loc[(S1, "niveau_certification"), ["cible", "statut"]].tolist() == ["A", "non_atteint"]
    assert out.loc[(S1, "taux_formes_paramedical"), ["cible", "statut"]].tolist() == ["≥ 80 %", "atteint"]
    assert out.loc[(S1, "audits_precautions"), ["cible", "statut"]].tolist() == ["≥ 2", "non_atteint"]
    assert out.loc[(S1, "conformite_plan_epidemies"), "cible"] == "100 %"  # non visée
    # cible illisible : cible des règles, signalée dans le commentaire
    row = out.loc[(S1, "score_qls_mco")]
    assert row["cible"] == "≥ 80 %" and row["statut"] == "atteint"
    assert "cible du CPOM illisible" in row["commentaire"]


def test_cibles_personnalisees_jamais_devinees(data, rules):
    """« 0,8 » pour un pourcentage est ambigu et « =2+3 » n'est pas un nombre : cible des règles, dit."""
    d = _with_cibles(data, {(S1, "lettre_liaison"): "0,8", (S1, "prevention_ias"): "audits_precautions==2+3",
                            (S5, "lettre_liaison"): "75 %"})
    out = by_key(suivi.compute_suivi(d, rules, 2024, "28"))
    row = out.loc[(S1, "score_qls_mco")]
    assert row["cible"] == "≥ 80 %" and row["cible_source"] == "règles"
    assert "valeur ambiguë pour un pourcentage" in row["commentaire"]
    aud = out.loc[(S1, "audits_precautions")]
    assert aud["cible"] == "≥ 1" and "cible du CPOM illisible" in aud["commentaire"]
    assert out.loc[(S5, "score_qls_mco"), "cible"] == "≥ 75 %"


def test_valeur_affichee_jamais_arrondie_de_l_autre_cote_de_la_cible(data, rules):
    """79,96 face à 80 : « 79,96 % », jamais « 80,0 % » (non atteint)."""
    d = dict(data)
    q = data["qls"].copy()
    m = (q["finess_geo"] == S1) & (q["annee"] == 2024) & (q["secteur"] == "MCO")
    q.loc[m, "score"] = 79.96
    d["qls"] = q
    row = by_key(suivi.compute_suivi(d, rules, 2024, "28")).loc[(S1, "score_qls_mco")]
    assert row["statut"] == "non_atteint"
    assert row["valeur"] == "79.96"
    assert row["valeur_texte"] == "79,96\u00a0%"
