"""Tests du ciblage régional (contrat, section 2) sur un petit jeu écrit à la main.

Région 28 (Normandie). Taux régional e-SIN 2024 construit pour valoir exactement 1 pour 1 000
séjours : Σ signalements = 3 + 0 + 2 + 2 + 193 = 200 ; Σ séjours = 85 000 + 1 500 + 7 500 + 7 000
+ 99 000 = 200 000.
"""

from __future__ import annotations

import math

import pytest
from tables import rules_with, table

from analysis.indicators import ciblage
from analysis.indicators.engine import observe


def etab(finess, region="28", specificite=None):
    return dict(finess_geo=finess, raison_sociale=f"Établissement {finess}", departement=finess[:2],
                region=region, statut="public", specificite=specificite)


A, B, D, E, F, G, H = "760000011", "140000029", "140000060", "140000078", "140000037", "140000045", "140000052"
I, J, K, L = "140000086", "140000094", "140000102", "140000110"
M, N, O, P, Q = "140000128", "140000136", "140000144", "140000151", "140000169"
X = "130000011"  # autre région (93)


@pytest.fixture()
def data():
    etabs = [etab(f) for f in (A, B, D, E, F, G, H, I, J, K, L, M, N, O, Q)]
    etabs += [etab(P, specificite="hdj"), etab(X, region="93")]
    activite = [(A, 85_000), (B, 1_500), (F, 7_500), (G, 7_000), (H, 99_000), (X, 10_000)]
    esin = [(A, 3), (B, 0), (F, 2), (G, 2), (H, 193), (D, 0), (E, 5), (X, 0)]
    return {
        "etablissements": table("etablissements", etabs),
        "activite": table(
            "activite",
            [dict(finess_geo=f, annee=2024, sejours=s) for f, s in activite]
            + [dict(finess_geo=A, annee=2023, sejours=1)],
        ),
        "esin": table(
            "esin",
            [dict(finess_geo=f, annee=2024, signalements=s, responsable_connecte=True) for f, s in esin]
            + [dict(finess_geo=A, annee=2023, signalements=0, responsable_connecte=True)],
        ),
        "certification": table(
            "certification",
            [
                dict(finess_geo=A, date_decision="2019-05-01", niveau="E"),
                dict(finess_geo=A, date_decision="2023-03-12", niveau="E"),
                dict(finess_geo=I, date_decision="2020-06-01", niveau="B"),
                dict(finess_geo=I, date_decision="2024-12-31", niveau="E"),  # compte pour 2024
                dict(finess_geo=J, date_decision="2020-06-01", niveau="E"),
                dict(finess_geo=J, date_decision="2025-01-01", niveau="A"),  # ne compte pas pour 2024
                dict(finess_geo=K, date_decision="2021-02-01", niveau="C"),
                dict(finess_geo=L, date_decision="2020-02-01", niveau="A"),
                dict(finess_geo=L, date_decision="2025-01-01", niveau="E"),
                dict(finess_geo=X, date_decision="2020-02-01", niveau="E"),
            ],
        ),
        "qls": table(
            "qls",
            [
                dict(finess_geo=A, annee=2024, secteur="SSR", score=18.0, n_dossiers=60),
                dict(finess_geo=M, annee=2024, secteur="MCO", score=20.0),  # égal au seuil : non ciblé
                dict(finess_geo=N, annee=2023, secteur="MCO", score=19.9),  # N-1 : ciblé
                dict(finess_geo=O, annee=2023, secteur="MCO", score=10.0),
                dict(finess_geo=O, annee=2024, secteur="MCO", score=60.0),  # dernière campagne
                dict(finess_geo=P, annee=2024, secteur="MCO", score=5.0),  # hdj : non concerné
                dict(finess_geo=Q, annee=2024, secteur="MCO", score=15.0),
                dict(finess_geo=Q, annee=2023, secteur="SSR", score=12.5),
                dict(finess_geo=K, annee=2022, secteur="MCO", score=3.0),  # hors fenêtre 2023-2024
                dict(finess_geo=X, annee=2024, secteur="MCO", score=5.0),
            ],
        ),
    }


def rows(df, risque):
    """Lignes d'un risque, motifs aux espaces insécables rendues ordinaires (comparaisons lisibles)."""
    out = df.loc[df["risque"] == risque].set_index("finess_geo")
    return out.assign(motif=out["motif"].str.replace("\u00a0", " "))


def test_colonnes_et_tri(data, rules):
    out = ciblage.compute_ciblage(data, rules, 2024, "28")
    assert list(out.columns) == ["finess_geo", "raison_sociale", "departement", "risque", "motif", "valeur"]
    keys = list(zip(out["risque"], out["departement"], out["finess_geo"]))
    assert keys == sorted(keys)
    assert out.loc[out["finess_geo"] == A, "departement"].iloc[0] == "76"
    assert out.loc[out["finess_geo"] == A, "raison_sociale"].iloc[0] == f"Établissement {A}"


def test_taux_regional(data, rules):
    taux, n = ciblage.regional_rate(data, rules, 2024, "28")
    assert taux == pytest.approx(200 / 200_000)
    assert n == 5  # D et E n'ont pas d'activité ; X est d'une autre région


def test_autre_region_ne_change_pas_le_taux(data, rules):
    sans_x = dict(data)
    sans_x["esin"] = data["esin"].loc[data["esin"]["finess_geo"] != X]
    sans_x["activite"] = data["activite"].loc[data["activite"]["finess_geo"] != X]
    assert ciblage.regional_rate(sans_x, rules, 2024, "28") == ciblage.regional_rate(data, rules, 2024, "28")


def test_region_en_entier_ou_texte(data, rules):
    assert ciblage.regional_rate(data, rules, 2024, 28) == ciblage.regional_rate(data, rules, 2024, "28")


def test_autre_region_jamais_ciblee(data, rules):
    out = ciblage.compute_ciblage(data, rules, 2024, "28")
    assert X not in set(out["finess_geo"])
    out93 = ciblage.compute_ciblage(data, rules, 2024, "93")
    assert set(out93["finess_geo"]) == {X}


def test_infectieux(data, rules):
    inf = rows(ciblage.compute_ciblage(data, rules, 2024, "28"), "infectieux")
    assert set(inf.index) == {A, B, D, F}
    assert inf.index.is_unique  # une seule ligne par établissement pour ce risque
    # A : attendu 85 000 × 0,001 = 85, P(X <= 3) < 0,0001
    assert inf.loc[A, "motif"] == (
        "faiblement déclarant : 3 signalements e-SIN en 2024 pour 85 000 séjours, "
        "attendu 85,0 (p < 0,0001 ; seuil 0,025)"
    )
    # F : attendu 7,5, P(X <= 2) = e^-7,5 (1 + 7,5 + 28,125) = 0,0203 < 0,025
    assert inf.loc[F, "motif"] == (
        "faiblement déclarant : 2 signalements e-SIN en 2024 pour 7 500 séjours, "
        "attendu 7,5 (p = 0,0203 < 0,025)"
    )
    # B : non déclarant ; attendu 1,5, P(X <= 0) = e^-1,5 = 0,22 : pas faiblement déclarant
    assert inf.loc[B, "motif"] == "non déclarant : 0 signalement e-SIN en 2024 pour 1 500 séjours"
    # D : sans activité, seule la règle « non déclarant » s'applique
    assert inf.loc[D, "motif"] == "non déclarant : 0 signalement e-SIN en 2024 (séjours non renseignés)"
    assert inf.loc[A, "valeur"] == "3" and inf.loc[B, "valeur"] == "0"


def test_infectieux_seuil_poisson_juste_au_dessus(data, rules):
    # G : attendu 7,0 ; P(X <= 2) = e^-7 × 32,5 = 0,0296 >= 0,025 -> non ciblé ; H, E non plus
    inf = rows(ciblage.compute_ciblage(data, rules, 2024, "28"), "infectieux")
    assert G not in inf.index and H not in inf.index and E not in inf.index


def test_non_declarant_et_faible_une_seule_ligne(data, rules):
    d = dict(data)
    esin = data["esin"].copy()
    esin.loc[(esin["finess_geo"] == A) & (esin["annee"] == 2024), "signalements"] = 0
    d["esin"] = esin
    inf = rows(ciblage.compute_ciblage(d, rules, 2024, "28"), "infectieux")
    assert (inf.index == A).sum() == 1
    # taux = 197 / 200 000 ; attendu = 85 000 × 0,000985 = 83,7
    assert inf.loc[A, "motif"] == (
        "non déclarant : 0 signalement e-SIN en 2024 pour 85 000 séjours, "
        "attendu 83,7 (p < 0,0001 ; seuil 0,025)"
    )


def test_infectieux_sans_activite(data, rules):
    d = {k: v for k, v in data.items() if k != "activite"}
    inf = rows(ciblage.compute_ciblage(d, rules, 2024, "28"), "infectieux")
    assert set(inf.index) == {B, D}
    assert ciblage.regional_rate(d, rules, 2024, "28")[1] == 0


def test_sans_esin_aucun_cible_infectieux(data, rules):
    d = {k: v for k, v in data.items() if k != "esin"}
    out = ciblage.compute_ciblage(d, rules, 2024, "28")
    assert "infectieux" not in set(out["risque"])
    assert {"management_qualite", "rupture_parcours"} <= set(out["risque"])


def test_seuil_du_fichier_de_regles(data, rules):
    r = rules_with(lambda d: d["ciblage"]["infectieux"].update(seuil_p=0.03))  # G (p = 0,0296) devient ciblé
    inf = rows(ciblage.compute_ciblage(data, r, 2024, "28"), "infectieux")
    assert G in inf.index


def test_management_qualite_bornes_de_date(data, rules):
    mq24 = rows(ciblage.compute_ciblage(data, rules, 2024, "28"), "management_qualite")
    assert set(mq24.index) == {A, I, J}
    assert mq24.loc[I, "motif"] == "Niveau de certification en vigueur : E (décision du 31/12/2024)"
    assert mq24.loc[A, "motif"] == "Niveau de certification en vigueur : E (décision du 12/03/2023)"
    assert mq24.loc[J, "motif"] == "Niveau de certification en vigueur : E (décision du 01/06/2020)"
    assert mq24.loc[A, "valeur"] == "E"
    mq23 = rows(ciblage.compute_ciblage(data, rules, 2023, "28"), "management_qualite")
    assert set(mq23.index) == {A, J}  # I était B en 2023
    mq25 = rows(ciblage.compute_ciblage(data, rules, 2025, "28"), "management_qualite")
    assert set(mq25.index) == {A, I, L}  # J certifié A au 01/01/2025, L non certifié


def test_certification_en_vigueur(data, rules):
    cert = observe(data, rules, "niveau_certification", 2024, [I, J, L])
    got = dict(zip(cert["finess_geo"], cert["niveau"]))
    assert got == {I: "E", J: "E", L: "A"}


def test_rupture_parcours(data, rules):
    rp = rows(ciblage.compute_ciblage(data, rules, 2024, "28"), "rupture_parcours")
    assert set(rp.index) == {A, N, Q}  # M = 20 non ciblé ; O dernière campagne 60 ; P hdj ; K hors fenêtre
    assert rp.loc[A, "motif"] == "Score QLS SSR 2024 : 18,0 % < 20 %"
    assert rp.loc[N, "motif"] == "Score QLS MCO 2023 : 19,9 % < 20 %"
    assert rp.loc[N, "valeur"] == "19.9"
    assert rp.loc[A, "valeur"] == "18"
    # plusieurs secteurs : une ligne, chaque secteur cité, valeur = plus bas score
    assert rp.loc[Q, "motif"] == "Score QLS MCO 2024 : 15,0 % < 20 %; Score QLS SSR 2023 : 12,5 % < 20 %"
    assert rp.loc[Q, "valeur"] == "12.5"


def test_rupture_parcours_annee_precedente(data, rules):
    # Fenêtre 2022-2023 : K (2022 : 3 %) entre dans la fenêtre ; O est ciblé sur sa campagne 2023 ;
    # les campagnes 2024 (A, Q MCO, O 60 %) ne comptent pas encore.
    rp = rows(ciblage.compute_ciblage(data, rules, 2023, "28"), "rupture_parcours")
    assert set(rp.index) == {K, N, O, Q}
    assert rp.loc[Q, "motif"] == "Score QLS SSR 2023 : 12,5 % < 20 %"


def test_sources_optionnelles_absentes(data, rules):
    d = {"etablissements": data["etablissements"]}
    out = ciblage.compute_ciblage(d, rules, 2024, "28")
    assert out.empty
    assert list(out.columns) == ciblage.CIBLAGE_COLUMNS
    taux, n = ciblage.regional_rate(d, rules, 2024, "28")
    assert math.isnan(taux) and n == 0


def test_region_sans_etablissement(data, rules):
    out = ciblage.compute_ciblage(data, rules, 2024, "11")
    assert out.empty and list(out.columns) == ciblage.CIBLAGE_COLUMNS


def test_historique_et_mouvements(data, rules):
    hist = ciblage.ciblage_history(data, rules, [2023, 2024, 2025], "28")
    assert list(hist.columns) == ["annee", *ciblage.CIBLAGE_COLUMNS]
    assert set(hist["annee"]) == {2023, 2024, 2025}
    mv = ciblage.ciblage_movements(hist, [2023, 2024, 2025])
    mq = mv.loc[mv["risque"] == "management_qualite"]
    got = set(zip(mq["annee"], mq["finess_geo"], mq["mouvement"]))
    assert got == {(2024, I, "entrée"), (2025, L, "entrée"), (2025, J, "sortie")}
    assert 2023 not in set(mv["annee"])  # première année : pas d'année précédente
