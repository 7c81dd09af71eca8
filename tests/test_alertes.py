"""Signaux d'alerte (indicators.alertes) sur un petit jeu écrit à la main : chaque type de signal se
produit, et les attendus sont calculés à la main."""

from __future__ import annotations

import pandas as pd
import pytest
from tables import table

from analysis.indicators import ciblage, suivi, tendances
from analysis.indicators.alertes import ALERT_COLUMNS, compute_alertes

A, B, C, D, E, F = "140000011", "140000029", "140000037", "140000045", "140000052", "140000060"


def etab(f):
    return dict(finess_geo=f, raison_sociale=f"Établissement {f}", departement="14", region="28", statut="public",
                mco=True, ssr=False, psy=False)


@pytest.fixture()
def data():
    return {
        "etablissements": table("etablissements", [etab(f) for f in (A, B, C, D, E, F)]),
        # A : B (2019) puis E (juin 2024) : niveau en baisse, entrée dans le ciblage
        "certification": table("certification", [
            dict(finess_geo=A, date_decision="2019-01-01", niveau="B"),
            dict(finess_geo=A, date_decision="2024-06-01", niveau="E"),
        ]),
        # 2023 : taux 48 / 40 000 = 0,0012 ; B attendu 12, observé 6 : P = 0,046 >= 0,025, non ciblé
        # 2024 : taux 153 / 220 000 ; B : 0 (non déclarant) ; C : 3 pour 100 000 séjours, attendu 69,5
        "esin": table("esin", [
            dict(finess_geo=B, annee=2023, signalements=6, responsable_connecte=True),
            dict(finess_geo=B, annee=2024, signalements=0, responsable_connecte=True),
            dict(finess_geo=C, annee=2023, signalements=20, responsable_connecte=True),
            dict(finess_geo=C, annee=2024, signalements=3, responsable_connecte=True),
            dict(finess_geo=D, annee=2023, signalements=10, responsable_connecte=True),
            dict(finess_geo=D, annee=2024, signalements=100, responsable_connecte=True),
            dict(finess_geo=F, annee=2023, signalements=12, responsable_connecte=True),
            dict(finess_geo=F, annee=2024, signalements=50, responsable_connecte=False),
        ]),
        "activite": table("activite", [
            dict(finess_geo=f, annee=y, sejours=s) for f, y, s in [
                (B, 2023, 10_000), (B, 2024, 10_000), (C, 2023, 10_000), (C, 2024, 100_000),
                (D, 2023, 10_000), (D, 2024, 100_000), (F, 2023, 10_000), (F, 2024, 10_000)]
        ]),
        # E : 90/100 en 2022 (Wilson 82,6–94,5) puis 60/100 en 2024 (50,2–69,1) : dégradation IFAQ
        "qls": table("qls", [
            dict(finess_geo=E, annee=2022, secteur="MCO", score=90.0, n_dossiers=100),
            dict(finess_geo=E, annee=2024, secteur="MCO", score=60.0, n_dossiers=100),
        ]),
    }


def alerts(data, rules):
    years = [2023, 2024]
    hist = ciblage.ciblage_history(data, rules, years, "28")
    s = suivi.compute_suivi(data, rules, 2024, "28")
    sh = suivi.compute_suivi(data, rules, 2023, "28").assign(annee=2023)
    ev = {"score_qls": tendances.evolutions(data, rules, "28", 2024, "score_qls")}
    return compute_alertes(data, rules, 2024, "28", hist, s, sh, ev, years)


def test_each_kind_hand_computed(data, rules):
    out = alerts(data, rules)
    assert list(out.columns) == ALERT_COLUMNS
    got = set(zip(out["type"], out["finess_geo"], out["objet"]))
    assert got == {
        ("entree_ciblage", A, "Management de la qualité"),
        ("entree_ciblage", B, "Risque infectieux"),
        ("entree_ciblage", C, "Risque infectieux"),
        ("niveau_en_baisse", A, "Niveau de certification en vigueur"),
        ("nouveau_non_declarant", B, "Risque infectieux"),
        ("sous_declaration", C, "Risque infectieux"),
        ("degradation_ifaq", E, "Score QLS (MCO)"),
        ("nouveau_non_atteint", A, "Niveau de certification en vigueur"),
        ("nouveau_non_atteint", E, "Score QLS (MCO)"),
        ("nouveau_non_atteint", F, "Responsable du signalement connecté à e-SIN"),
    }
    # D (100 signalements pour 100 000 séjours) ne s'est pas dégradé
    assert D not in set(out["finess_geo"])


def test_ordered_by_severity_with_one_line_evidence(data, rules):
    out = alerts(data, rules)
    assert out["gravite"].is_monotonic_increasing
    order = [a.type for a in rules.model.alertes]
    assert [t for t in order if t in set(out["type"])] == list(dict.fromkeys(out["type"]))
    ev = out.set_index(["type", "finess_geo"])["preuve"].str.replace("\u00a0", " ")
    assert ev[("niveau_en_baisse", A)] == "B au 31/12/2023 → E au 31/12/2024 (décision du 01/06/2024)"
    assert ev[("nouveau_non_declarant", B)] == "6 en 2023 → 0 en 2024"
    assert ev[("degradation_ifaq", E)].startswith("90,0 % en 2022 (IC 82,6–94,5) → 60,0 % en 2024 (IC 50,2–69,1)")
    assert ev[("sous_declaration", C)].startswith("faiblement déclarant : 3 signalements e-SIN en 2024 pour 100 000 séjours")
    assert "\n" not in "".join(out["preuve"])


def test_no_previous_year_no_alert(data, rules):
    d = {k: v for k, v in data.items()}
    hist = ciblage.ciblage_history(d, rules, [2024], "28")
    s = suivi.compute_suivi(d, rules, 2024, "28")
    out = compute_alertes(d, rules, 2024, "28", hist, s, s.iloc[0:0].assign(annee=pd.Series(dtype="Int64")), {},
                          [2024])
    assert "entree_ciblage" not in set(out["type"])
