"""Tendances régionales, évolutions QLS, graphiques en entonnoir et régression vers la moyenne.

- ``compute_tendances`` : par indicateur et par année, valeurs régionales et évolution d'une année
  sur l'autre (``tendances.csv``) ;
- ``qls_evolution`` : par établissement et secteur, deux dernières campagnes QLS, intervalles,
  évolution en points, classe IFAQ et position par rapport à la référence de 80 % ;
- ``funnel_data_esin`` / ``funnel_data_qls`` : points et limites des graphiques en entonnoir
  (Spiegelhalter 2005) ;
- ``targeted_vs_others`` et ``regression_to_mean_note`` : évolution des établissements ciblés
  comparée à celle des non ciblés, avec la mise en garde sur la régression vers la moyenne
  (Barnett et al. 2005).

Seuls les établissements de la région demandée entrent dans les calculs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import pandas as pd

from . import stats
from .ciblage import (
    RISQUES,
    _mask,
    certification_in_force,
    ciblage_history,
    compute_ciblage,
    ciblage_movements,
    latest_qls,
    normalise_code,
    qls_last_two,
    region_establishments,
    regional_rate,
    source,
)

TENDANCES_COLUMNS = [
    "indicateur",
    "libelle",
    "unite",
    "annee",
    "n_etablissements",
    "valeur_regionale",
    "valeur_mediane",
    "valeur_moyenne",
    "part_cible_atteinte",
    "annee_reference",
    "evolution_annuelle",
]

_ANNUAL_SOURCES = ("activite", "qls", "esin", "formation", "audits", "plan_epidemies", "esatis")

PER = 10_000  # taux de signalement exprimés pour 10 000 séjours

UNITE_PCT = "%"
UNITE_TAUX = "pour 10 000 séjours"
UNITE_NOMBRE = "nombre"
UNITE_ETAB = "nombre d'établissements"
UNITE_SCORE = "score"

_LIBELLES = {
    "score_qls_mco": "Score QLS MCO",
    "score_qls_ssr": "Score QLS SSR",
    "score_qls_psy": "Score QLS PSY",
    "taux_signalement_esin": "Taux de signalement e-SIN",
    "signalements_esin": "Signalements e-SIN",
    "part_non_declarants": "Part d'établissements non déclarants e-SIN",
    "part_responsables_connectes": "Part de responsables du signalement connectés à e-SIN",
    "taux_formes": "Taux de personnel formé (toutes catégories)",
    "audits_precautions": "Audits sur les précautions standard et complémentaires",
    "conformite_plan_epidemies": "Conformité du plan local de maîtrise des épidémies",
    "part_certifies_A_B": "Part d'établissements certifiés A ou B",
    "cibles_infectieux": "Établissements ciblés : risque infectieux",
    "cibles_management_qualite": "Établissements ciblés : management de la qualité",
    "cibles_rupture_parcours": "Établissements ciblés : rupture de parcours",
    "cibles_total": "Établissements ciblés (au moins un risque)",
    "entrees_ciblage": "Entrées dans le ciblage (établissement × risque)",
    "sorties_ciblage": "Sorties du ciblage (établissement × risque)",
}


# --------------------------------------------------------------------------------------------------
# Aides
# --------------------------------------------------------------------------------------------------
def _region_rows(data: dict, name: str, finess: pd.Series) -> pd.DataFrame | None:
    df = source(data, name)
    if df is None:
        return None
    df = df.loc[df["finess_geo"].isin(finess)]
    return df.drop(columns=[c for c in ("_fichier", "_ligne") if c in df.columns])


def available_years(data: dict, region) -> list[int]:
    """Années couvertes par les sources annuelles de la région (intervalle continu min…max).

    Sans source annuelle, les années des décisions de certification. Liste vide sans aucune donnée.
    """
    finess = region_establishments(data, region)["finess_geo"]
    found: set[int] = set()
    for name in _ANNUAL_SOURCES:
        df = _region_rows(data, name, finess)
        if df is not None and "annee" in df.columns:
            found |= {int(y) for y in df["annee"].dropna().unique()}
    if not found:
        cert = _region_rows(data, "certification", finess)
        if cert is not None:
            found |= {int(y) for y in pd.to_datetime(cert["date_decision"]).dt.year.dropna().unique()}
    if not found:
        return []
    return list(range(min(found), max(found) + 1))


def _summary(
    df: pd.DataFrame,
    by: list[str],
    value: str,
    reached: str | None = None,
    regional: pd.Series | None = None,
) -> pd.DataFrame:
    """Effectif, médiane, moyenne (et part atteignant la cible) de ``value`` par groupe."""
    d = df.loc[df[value].notna()].copy()
    d[value] = d[value].astype("float64")
    g = d.groupby(by, sort=True)
    out = pd.DataFrame(
        {
            "n_etablissements": g["finess_geo"].nunique(),
            "valeur_mediane": g[value].median(),
            "valeur_moyenne": g[value].mean(),
        }
    )
    if reached is not None:
        out["part_cible_atteinte"] = g[reached].mean() * 100.0
    out["valeur_regionale"] = out["valeur_moyenne"] if regional is None else regional
    return out.reset_index()


def _finish(frames: list[pd.DataFrame], years: list[int] | None) -> pd.DataFrame:
    frames = [f for f in frames if f is not None and len(f)]
    if not frames:
        return pd.DataFrame(
            {
                c: pd.Series(dtype=("string" if c in ("indicateur", "libelle", "unite") else
                                    "Int64" if c in ("annee", "n_etablissements", "annee_reference") else "Float64"))
                for c in TENDANCES_COLUMNS
            }
        )
    out = pd.concat([f.reindex(columns=TENDANCES_COLUMNS[:-2]) for f in frames], ignore_index=True)
    out["annee"] = out["annee"].astype("Int64")
    out["n_etablissements"] = pd.to_numeric(out["n_etablissements"]).astype("Int64")
    for c in ("valeur_regionale", "valeur_mediane", "valeur_moyenne", "part_cible_atteinte"):
        out[c] = pd.to_numeric(out[c], errors="coerce").astype("Float64")
    out["libelle"] = out["libelle"].fillna(out["indicateur"].map(_LIBELLES)).fillna(out["indicateur"])
    out = out.sort_values(["indicateur", "annee"], kind="mergesort").reset_index(drop=True)
    # Évolution par rapport à l'année précédente disponible du même indicateur
    known = out.loc[out["valeur_regionale"].notna(), ["indicateur", "annee", "valeur_regionale"]]
    prev = known.groupby("indicateur", sort=False)[["annee", "valeur_regionale"]].shift(1)
    out["annee_reference"] = pd.Series(pd.NA, index=out.index, dtype="Int64")
    out["evolution_annuelle"] = pd.Series(pd.NA, index=out.index, dtype="Float64")
    out.loc[known.index, "annee_reference"] = prev["annee"].astype("Int64")
    out.loc[known.index, "evolution_annuelle"] = (known["valeur_regionale"] - prev["valeur_regionale"]).astype(
        "Float64"
    )
    # Arrondi à 6 décimales : supprime le bruit des flottants (4.000000000000001) dans le CSV.
    for c in ("valeur_regionale", "valeur_mediane", "valeur_moyenne", "part_cible_atteinte", "evolution_annuelle"):
        out[c] = out[c].round(6)
    if years is not None:
        out = out.loc[_mask(out["annee"].isin(years))]
    out = out.astype({"indicateur": "string", "libelle": "string", "unite": "string"})
    return out[TENDANCES_COLUMNS].reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# Indicateurs régionaux par année
# --------------------------------------------------------------------------------------------------
def _qls_trend(data, rules, finess) -> pd.DataFrame | None:
    q = _region_rows(data, "qls", finess)
    if q is None:
        return None
    corr = {str(k).upper(): str(v) for k, v in rules["secteurs_qls"]["correspondance"].items()}
    q = q.assign(secteur=q["secteur"].astype("string").str.strip().str.upper().map(lambda v: corr.get(v, v)))
    q = q.loc[_mask(q["secteur"].isin(list(rules["secteurs_qls"]["retenus"]))) & q["score"].notna()].copy()
    cible = float(rules["engagements"]["lettre_liaison"]["indicateurs"]["score_qls"]["cible"])
    q["score"] = q["score"].astype("float64")
    q["_atteint"] = q["score"] >= cible
    n = pd.to_numeric(q["n_dossiers"], errors="coerce").astype("float64")
    q["_n"] = n.where(n > 0)
    q["_sn"] = q["score"] * q["_n"]
    g = q.groupby(["annee", "secteur"], sort=True)
    all_n = g["_n"].apply(lambda s: bool(s.notna().all()))
    weighted = g["_sn"].sum(min_count=1) / g["_n"].sum(min_count=1)
    regional = weighted.where(all_n, g["score"].mean())
    out = _summary(q, ["annee", "secteur"], "score", "_atteint", regional)
    out["indicateur"] = "score_qls_" + out["secteur"].str.lower()
    out["unite"] = UNITE_PCT
    return out


def _esin_trend(data, rules, finess) -> list[pd.DataFrame]:
    esin = _region_rows(data, "esin", finess)
    if esin is None:
        return []
    act = _region_rows(data, "activite", finess)
    e = esin[["finess_geo", "annee", "signalements", "responsable_connecte"]]
    if act is not None:
        e = e.merge(act[["finess_geo", "annee", "sejours"]], on=["finess_geo", "annee"], how="left")
    else:
        e = e.assign(sejours=pd.Series(pd.NA, index=e.index, dtype="Int64"))
    e = e.copy()
    s = pd.to_numeric(e["signalements"], errors="coerce").astype("float64")
    sej = pd.to_numeric(e["sejours"], errors="coerce").astype("float64")
    e["_s"] = s
    both = s.notna() & sej.notna()
    e["_s_both"] = s.where(both)
    e["_sej_both"] = sej.where(both)
    e["_taux"] = (s / sej.where(sej > 0) * PER).where(both)
    frames = []
    # Taux régional (pour 10 000 séjours) et distribution des taux des établissements
    g = e.groupby("annee", sort=True)
    tot_sej = g["_sej_both"].sum(min_count=1)
    regional = g["_s_both"].sum(min_count=1) / tot_sej.where(tot_sej > 0) * PER
    t = _summary(e, ["annee"], "_taux", None, regional)
    t["indicateur"] = "taux_signalement_esin"
    t["unite"] = UNITE_TAUX
    frames.append(t)
    # Nombre de signalements
    sig = _summary(e, ["annee"], "_s", None, e.loc[e["_s"].notna()].groupby("annee")["_s"].sum())
    sig["indicateur"] = "signalements_esin"
    sig["unite"] = UNITE_NOMBRE
    frames.append(sig)
    # Part de non-déclarants
    seuil = float(rules["ciblage"]["infectieux"]["signalements_non_declarant"])
    e["_nd"] = (s <= seuil).where(s.notna()).astype("float64") * 100.0
    nd = _summary(e, ["annee"], "_nd")
    nd["valeur_mediane"] = np.nan
    nd["indicateur"] = "part_non_declarants"
    nd["unite"] = UNITE_PCT
    nd = nd.drop(columns="valeur_moyenne").assign(valeur_moyenne=np.nan)
    frames.append(nd)
    # Part de responsables connectés
    conn = e["responsable_connecte"].astype("boolean")
    e["_conn"] = conn.astype("Float64").astype("float64") * 100.0
    e["_conn_ok"] = conn.fillna(False).astype(bool)
    c = _summary(e, ["annee"], "_conn", "_conn_ok")
    c["valeur_regionale"] = c["part_cible_atteinte"]
    c["valeur_mediane"] = np.nan
    c["valeur_moyenne"] = np.nan
    c["indicateur"] = "part_responsables_connectes"
    c["unite"] = UNITE_PCT
    frames.append(c)
    return frames


def _formation_trend(data, rules, finess) -> list[pd.DataFrame]:
    f = _region_rows(data, "formation", finess)
    if f is None or f.empty:
        return []
    cible = float(rules["engagements"]["prevention_ias"]["indicateurs"]["taux_formes"]["cible"])
    f = f.assign(code=f["categorie_personnel"].map(normalise_code))
    f = f.loc[f["code"] != ""]
    cat = f.groupby(["finess_geo", "annee", "code"], as_index=False).agg(
        effectif=("effectif", "sum"), formes=("formes", "sum")
    )
    cat["effectif"] = cat["effectif"].astype("float64")
    cat["formes"] = cat["formes"].astype("float64")
    cat["_taux"] = (cat["formes"] / cat["effectif"].where(cat["effectif"] > 0) * 100).astype("float64")
    cat["_ok"] = cat["formes"] * 100 >= cible * cat["effectif"]
    frames = []
    # Par catégorie
    g = cat.groupby(["annee", "code"], sort=True)
    regional = g["formes"].sum() / g["effectif"].sum() * 100
    pc = _summary(cat, ["annee", "code"], "_taux", "_ok", regional)
    pc["indicateur"] = "taux_formes_" + pc["code"]
    pc["libelle"] = "Taux de personnel formé (" + pc["code"].str.replace("_", " ") + ")"
    pc["unite"] = UNITE_PCT
    frames.append(pc)
    # Toutes catégories : taux de l'établissement, cible atteinte si chaque catégorie l'atteint
    est = cat.groupby(["finess_geo", "annee"], as_index=False).agg(
        effectif=("effectif", "sum"), formes=("formes", "sum"), _ok=("_ok", "all")
    )
    est["_taux"] = est["formes"] / est["effectif"].where(est["effectif"] > 0) * 100
    g2 = est.groupby("annee", sort=True)
    regional2 = g2["formes"].sum() / g2["effectif"].sum() * 100
    tot = _summary(est, ["annee"], "_taux", "_ok", regional2)
    tot["indicateur"] = "taux_formes"
    tot["unite"] = UNITE_PCT
    frames.append(tot)
    return frames


def _audits_trend(data, rules, finess) -> pd.DataFrame | None:
    a = _region_rows(data, "audits", finess)
    if a is None:
        return None
    cible = float(rules["engagements"]["prevention_ias"]["indicateurs"]["audits_precautions"]["cible"])
    a = a.assign(_v=pd.to_numeric(a["audits_precautions"], errors="coerce").astype("float64"))
    a["_ok"] = a["_v"] >= cible
    out = _summary(a, ["annee"], "_v", "_ok")
    out["indicateur"] = "audits_precautions"
    out["unite"] = UNITE_NOMBRE
    return out


def _plan_trend(data, rules, finess) -> pd.DataFrame | None:
    p = _region_rows(data, "plan_epidemies", finess)
    if p is None:
        return None
    cible = float(rules["engagements"]["prevention_ias"]["indicateurs"]["conformite_plan_epidemies"]["cible"])
    rem = pd.to_numeric(p["criteres_remplis"], errors="coerce").astype("float64")
    tot = pd.to_numeric(p["criteres_total"], errors="coerce").astype("float64")
    p = p.assign(_rem=rem, _tot=tot.where(tot > 0))
    p["_v"] = p["_rem"] / p["_tot"] * 100
    p["_ok"] = p["_rem"] * 100 >= cible * p["_tot"]
    g = p.loc[p["_v"].notna()].groupby("annee", sort=True)
    regional = g["_rem"].sum() / g["_tot"].sum() * 100
    out = _summary(p, ["annee"], "_v", "_ok", regional)
    out["indicateur"] = "conformite_plan_epidemies"
    out["unite"] = UNITE_PCT
    return out


def _certification_trend(data, rules, finess, years) -> pd.DataFrame | None:
    if source(data, "certification") is None or not years:
        return None
    cibles = [str(v).upper() for v in rules["engagements"]["certification"]["indicateurs"]["niveau_certification"]["cible"]]
    rows = []
    for y in years:  # une passe vectorisée par année (le niveau en vigueur dépend de l'année)
        cert = certification_in_force(data, rules, y, finess)
        cert = cert.loc[cert["niveau"].notna()]
        n = len(cert)
        part = float(_mask(cert["niveau"].isin(cibles)).mean() * 100) if n else np.nan
        rows.append({"annee": y, "n_etablissements": n, "valeur_regionale": part, "part_cible_atteinte": part})
    out = pd.DataFrame(rows)
    out["indicateur"] = "part_certifies_A_B"
    out["unite"] = UNITE_PCT
    return out.loc[out["n_etablissements"] > 0]


def _ciblage_trend(data, rules, region, n_region, years) -> list[pd.DataFrame]:
    if not years:
        return []
    hist = ciblage_history(data, rules, years, region)
    idx = pd.MultiIndex.from_product([list(years), list(RISQUES)], names=["annee", "risque"])
    counts = hist.groupby(["annee", "risque"])["finess_geo"].nunique().reindex(idx, fill_value=0).reset_index()
    counts["indicateur"] = "cibles_" + counts["risque"]
    counts = counts.rename(columns={"finess_geo": "valeur_regionale"})
    total = hist.groupby("annee")["finess_geo"].nunique().reindex(list(years), fill_value=0)
    total = total.rename("valeur_regionale").reset_index().assign(indicateur="cibles_total")
    frames = [counts, total]
    mv = ciblage_movements(hist, years)
    valid = [y for y in years if y - 1 in years]
    for label, code in (("entrée", "entrees_ciblage"), ("sortie", "sorties_ciblage")):
        c = mv.loc[mv["mouvement"] == label].groupby("annee").size().reindex(list(years), fill_value=0)
        c = c.astype("float64").where(pd.Index(list(years)).isin(valid))  # 1re année : non calculable
        frames.append(c.rename("valeur_regionale").reset_index().assign(indicateur=code))
    for f in frames:
        f["n_etablissements"] = n_region
        f["unite"] = UNITE_ETAB
    return frames


def _esatis_trend(data, finess) -> pd.DataFrame | None:
    e = _region_rows(data, "esatis", finess)
    if e is None or e.empty:
        return None
    e = e.assign(_v=pd.to_numeric(e["score"], errors="coerce").astype("float64"))
    e["_code"] = (
        "esatis_" + e["indicateur"].map(normalise_code) + "_" + e["secteur"].map(normalise_code)
    )
    out = _summary(e, ["annee", "_code"], "_v")
    out = out.rename(columns={"_code": "indicateur"})
    out["libelle"] = "Expérience patient e-Satis (" + out["indicateur"].str.replace("esatis_", "", n=1) + ")"
    out["unite"] = UNITE_SCORE
    return out


def compute_tendances(data: dict, rules: dict, region, years: Iterable[int] | None = None) -> pd.DataFrame:
    """Tendances régionales : une ligne par (indicateur, année).

    Colonnes ``indicateur, libelle, unite, annee, n_etablissements, valeur_regionale,
    valeur_mediane, valeur_moyenne, part_cible_atteinte, annee_reference, evolution_annuelle``,
    triées par (indicateur, annee).

    - ``valeur_regionale`` : valeur de synthèse régionale — score QLS moyen pondéré par le nombre
      de dossiers (moyenne simple si un nombre manque) ; taux e-SIN = Σ signalements / Σ séjours
      pour 10 000 séjours ; taux de formation et conformité du plan en rapport des sommes ;
      nombre total de signalements ; moyenne des audits ; parts en % ; nombres d'établissements
      ciblés, d'entrées et de sorties du ciblage.
    - ``valeur_mediane`` / ``valeur_moyenne`` : distribution des valeurs des établissements.
    - ``part_cible_atteinte`` : % d'établissements atteignant la cible de l'engagement (score QLS
      >= 80, responsable connecté, chaque catégorie formée à 90 %, au moins un audit, plan
      conforme, certification A ou B).
    - ``evolution_annuelle`` : ``valeur_regionale`` moins celle de l'année précédente disponible
      du même indicateur (``annee_reference`` ; les campagnes QLS étant bisannuelles, l'année de
      comparaison peut être N-2). En points pour les % et les scores.
    - ciblage : ``n_etablissements`` est le nombre d'établissements de la région ; les entrées et
      sorties de la première année de la série sont manquantes (pas d'année précédente).

    ``years`` par défaut : ``available_years`` (toutes les années des données de la région).
    """
    etabs = region_establishments(data, region)
    finess = etabs["finess_geo"]
    ys = sorted({int(y) for y in years}) if years is not None else available_years(data, region)
    frames: list[pd.DataFrame] = []
    frames.append(_qls_trend(data, rules, finess))
    frames.extend(_esin_trend(data, rules, finess))
    frames.extend(_formation_trend(data, rules, finess))
    frames.append(_audits_trend(data, rules, finess))
    frames.append(_plan_trend(data, rules, finess))
    frames.append(_certification_trend(data, rules, finess, ys))
    frames.extend(_ciblage_trend(data, rules, region, len(etabs), ys))
    frames.append(_esatis_trend(data, finess))
    return _finish(frames, ys if years is not None else (ys or None))


# --------------------------------------------------------------------------------------------------
# Évolution des scores QLS par établissement
# --------------------------------------------------------------------------------------------------
QLS_EVOLUTION_COLUMNS = [
    "finess_geo",
    "raison_sociale",
    "departement",
    "secteur",
    "annee_precedente",
    "score_precedent",
    "ic_bas_precedent",
    "ic_haut_precedent",
    "annee",
    "score",
    "n_dossiers",
    "ic_bas",
    "ic_haut",
    "source_ic",
    "evolution_points",
    "evolution",
    "position_cible",
]


def qls_evolution(data: dict, rules: dict, region, annee: int) -> pd.DataFrame:
    """Deux dernières campagnes QLS par établissement et secteur (dernière dans la fenêtre N-1…N).

    Intervalles fournis, sinon Wilson (``n_dossiers``, niveau ``statistiques.niveau_confiance``) ;
    ``evolution_points`` = score − score précédent ; ``evolution`` = classe IFAQ (non-chevauchement
    des intervalles) ; ``position_cible`` = position de l'intervalle par rapport à
    ``statistiques.cible_reference_qls`` (80 %). Trié par (finess_geo, secteur).
    """
    etabs = region_establishments(data, region)
    secteurs = [str(s) for s in rules["secteurs_qls"]["retenus"]]
    fenetre = int(rules["engagements"]["lettre_liaison"]["indicateurs"]["score_qls"]["fenetre_annees"])
    q = qls_last_two(data, rules, annee, fenetre, secteurs, etabs["finess_geo"])
    q = q.merge(etabs[["finess_geo", "raison_sociale", "departement"]], on="finess_geo", how="left")
    q["evolution_points"] = (q["score"].astype("Float64") - q["score_precedent"].astype("Float64")).astype("Float64")
    q["evolution"] = stats.evolution_ifaq(
        q["ic_bas_precedent"], q["ic_haut_precedent"], q["ic_bas"], q["ic_haut"]
    )
    ref = float(rules["statistiques"]["cible_reference_qls"])
    q["position_cible"] = stats.position_vs_target(q["ic_bas"], q["ic_haut"], pd.Series(ref, index=q.index))
    order = {s: i for i, s in enumerate(secteurs)}
    q["_o"] = q["secteur"].map(order)
    q = q.sort_values(["finess_geo", "_o"], kind="mergesort")
    out = q.reindex(columns=QLS_EVOLUTION_COLUMNS).reset_index(drop=True)
    for c in ("finess_geo", "raison_sociale", "departement", "secteur", "source_ic", "evolution", "position_cible"):
        out[c] = out[c].astype("string")
    for c in ("annee_precedente", "annee", "n_dossiers"):
        out[c] = out[c].astype("Int64")
    return out


# --------------------------------------------------------------------------------------------------
# Graphiques en entonnoir
# --------------------------------------------------------------------------------------------------
class FunnelData(NamedTuple):
    """Données d'un graphique en entonnoir : ``points``, ``limites`` (grille de dénominateurs) et
    ``reference`` (valeur de référence, dans l'unité des limites ; un dictionnaire par secteur pour
    QLS)."""

    points: pd.DataFrame
    limites: pd.DataFrame
    reference: float | dict


def _grid(values: pd.Series, n_points: int) -> np.ndarray:
    v = pd.to_numeric(values, errors="coerce").dropna()
    v = v[v > 0]
    if v.empty:
        return np.array([], dtype=float)
    lo = max(1.0, float(v.min()) * 0.8)
    hi = max(lo + 1.0, float(v.max()) * 1.1)
    return np.unique(np.round(np.geomspace(lo, hi, n_points)))


def funnel_data_esin(data: dict, rules: dict, region, annee: int, n_points: int = 200) -> FunnelData:
    """Entonnoir du taux de signalement e-SIN de l'année N (pour 10 000 séjours).

    ``points`` : ``finess_geo, raison_sociale, departement, sejours, signalements, taux, attendu,
    p_valeur, position_funnel`` (établissements ayant séjours > 0 et signalements) ; ``limites`` :
    ``sejours`` (= ``denominateur``) puis les colonnes de ``funnel_limits`` de Poisson autour du taux
    régional (``bas_95``, ``haut_95``, ``bas_998``, ``haut_998``), en taux pour 10 000 séjours ;
    ``reference`` : taux régional pour 10 000 séjours.
    """
    levels = tuple(float(x) for x in rules["statistiques"]["limites_funnel"])
    etabs = region_establishments(data, region)
    taux, _ = regional_rate(data, annee, region)
    esin = _region_rows(data, "esin", etabs["finess_geo"])
    act = _region_rows(data, "activite", etabs["finess_geo"])
    cols = ["finess_geo", "raison_sociale", "departement", "sejours", "signalements", "taux", "attendu",
            "p_valeur", "position_funnel"]
    if esin is None or act is None or not np.isfinite(taux):
        empty = stats.funnel_limits([], 0.0, levels, "poisson")
        empty.insert(0, "sejours", empty["denominateur"])
        return FunnelData(pd.DataFrame(columns=cols), empty, np.nan)
    e = esin.loc[_mask(esin["annee"] == int(annee)), ["finess_geo", "signalements"]]
    a = act.loc[_mask(act["annee"] == int(annee)), ["finess_geo", "sejours"]]
    p = e.merge(a, on="finess_geo").merge(etabs[["finess_geo", "raison_sociale", "departement"]], on="finess_geo")
    p = p.loc[p["signalements"].notna() & _mask(p["sejours"] > 0)].copy()
    sej = p["sejours"].astype("float64")
    sig = p["signalements"].astype("float64")
    p["taux"] = sig / sej * PER
    p["attendu"] = sej * taux
    p["p_valeur"] = stats.poisson_lower_pvalue(sig, p["attendu"]).astype("float64")
    p["position_funnel"] = stats.funnel_position(p["taux"], sej, taux, levels, "poisson")
    p = p.sort_values("finess_geo", kind="mergesort").reset_index(drop=True)[cols]
    lim = stats.funnel_limits(_grid(p["sejours"], n_points), taux, levels, "poisson")
    lim.insert(0, "sejours", lim["denominateur"])  # même nom que l'axe des points
    return FunnelData(p, lim, taux * PER)


def funnel_data_qls(data: dict, rules: dict, region, annee: int, secteur: str | None = None,
                    n_points: int = 200) -> FunnelData:
    """Entonnoirs QLS par secteur : dernière campagne de la fenêtre N-1…N, limites binomiales exactes.

    La référence de chaque secteur est la proportion régionale groupée Σ(score × n) / Σ n, en %.
    ``points`` : ``finess_geo, raison_sociale, departement, secteur, annee, n_dossiers, score,
    ic_bas, ic_haut, position_funnel`` (scores ayant un nombre de dossiers) ; ``limites`` : ``secteur``,
    ``n_dossiers`` (= ``denominateur``) puis les colonnes de ``funnel_limits`` (en %) ;
    ``reference`` : ``{secteur: %}``.
    """
    levels = tuple(float(x) for x in rules["statistiques"]["limites_funnel"])
    etabs = region_establishments(data, region)
    secteurs = [str(s) for s in rules["secteurs_qls"]["retenus"]]
    if secteur is not None:
        secteurs = [s for s in secteurs if s == str(secteur).upper()] or [str(secteur).upper()]
    fenetre = int(rules["engagements"]["lettre_liaison"]["indicateurs"]["score_qls"]["fenetre_annees"])
    q = latest_qls(data, rules, annee, fenetre, secteurs, etabs["finess_geo"])
    q = q.loc[_mask(q["n_dossiers"] > 0)]
    q = q.merge(etabs[["finess_geo", "raison_sociale", "departement"]], on="finess_geo", how="left")
    cols = ["finess_geo", "raison_sociale", "departement", "secteur", "annee", "n_dossiers", "score",
            "ic_bas", "ic_haut", "position_funnel"]
    points, limits, refs = [], [], {}
    for sec in secteurs:  # trois secteurs au plus
        s = q.loc[q["secteur"] == sec].copy()
        if s.empty:
            continue
        n = s["n_dossiers"].astype("float64")
        p_ref = float((s["score"].astype("float64") * n).sum() / n.sum() / 100.0)
        refs[sec] = p_ref * 100.0
        s["position_funnel"] = stats.funnel_position(s["score"].astype("float64"), n, p_ref, levels, "binomial")
        points.append(s)
        lim = stats.funnel_limits(_grid(s["n_dossiers"], n_points), p_ref, levels, "binomial")
        lim.insert(0, "n_dossiers", lim["denominateur"])  # même nom que l'axe des points
        lim.insert(0, "secteur", sec)
        limits.append(lim)
    pts = pd.concat(points, ignore_index=True)[cols] if points else pd.DataFrame(columns=cols)
    if limits:
        lims = pd.concat(limits, ignore_index=True)
    else:
        lims = stats.funnel_limits([], 0.5, levels, "binomial")
        lims.insert(0, "n_dossiers", lims["denominateur"])
        lims.insert(0, "secteur", pd.Series(dtype="string"))
    pts = pts.sort_values(["secteur", "finess_geo"], kind="mergesort").reset_index(drop=True)
    return FunnelData(pts, lims.reset_index(drop=True), refs)


# --------------------------------------------------------------------------------------------------
# Régression vers la moyenne
# --------------------------------------------------------------------------------------------------
def regression_to_mean_note() -> str:
    """Mise en garde (en français) sur l'interprétation de l'évolution des établissements ciblés."""
    return (
        "Les établissements ciblés l'ont été parce que leurs résultats étaient bas une année donnée. "
        "Une partie de ces résultats bas tient au hasard de la mesure (échantillon de dossiers, "
        "événements rares) : l'année suivante, ces établissements tendent à se rapprocher de la "
        "moyenne même sans aucune action. C'est la régression vers la moyenne (Barnett et al., "
        "International Journal of Epidemiology, 2005). Une amélioration des établissements ciblés "
        "ne prouve donc pas à elle seule l'effet de l'accompagnement : elle doit être comparée à "
        "l'évolution d'établissements non ciblés de niveau initial comparable, et lue avec les "
        "intervalles de confiance."
    )


def _baseline_followup(data, rules, risque, annee_ciblage, annee_suivi, etabs) -> tuple[pd.DataFrame, str, str]:
    """Valeurs initiale et finale par unité suivie (établissement, ou établissement × secteur QLS)."""
    finess = etabs["finess_geo"]
    if risque == "rupture_parcours":
        r = rules["ciblage"]["rupture_parcours"]
        secteurs = [str(s) for s in r["secteurs"]]
        concerned = etabs.loc[~_mask(etabs["specificite"].isin(list(r["specificites_exclues"])))]["finess_geo"]
        b = latest_qls(data, rules, annee_ciblage, int(r["fenetre_annees"]), secteurs, concerned)
        f = latest_qls(data, rules, annee_suivi, int(r["fenetre_annees"]), secteurs, concerned)
        m = b[["finess_geo", "secteur", "annee", "score"]].merge(
            f[["finess_geo", "secteur", "annee", "score"]], on=["finess_geo", "secteur"], suffixes=("_i", "_f")
        )
        m = m.loc[_mask(m["annee_f"] > m["annee_i"])]  # une campagne postérieure est nécessaire
        m = m.assign(valeur_initiale=m["score_i"].astype("float64"), valeur_finale=m["score_f"].astype("float64"))
        # Le secteur est « ciblé » s'il est sous le seuil au départ (motif du ciblage)
        m["_sous_seuil"] = m["valeur_initiale"] < float(r["seuil_score_qls"])
        return m, "score QLS", UNITE_PCT
    if risque == "infectieux":
        def rate(y):
            esin = _region_rows(data, "esin", finess)
            act = _region_rows(data, "activite", finess)
            if esin is None or act is None:
                return pd.DataFrame(columns=["finess_geo", "v"])
            e = esin.loc[_mask(esin["annee"] == y), ["finess_geo", "signalements"]]
            a = act.loc[_mask(act["annee"] == y), ["finess_geo", "sejours"]]
            x = e.merge(a, on="finess_geo")
            x = x.loc[x["signalements"].notna() & _mask(x["sejours"] > 0)]
            return pd.DataFrame(
                {"finess_geo": x["finess_geo"], "v": x["signalements"].astype("float64") / x["sejours"].astype("float64") * PER}
            )
        m = rate(int(annee_ciblage)).merge(rate(int(annee_suivi)), on="finess_geo", suffixes=("_i", "_f"))
        m = m.rename(columns={"v_i": "valeur_initiale", "v_f": "valeur_finale"})
        m["_sous_seuil"] = True
        return m, "taux de signalement e-SIN", UNITE_TAUX
    raise ValueError(
        f"comparaison non disponible pour le risque {risque!r} (valeurs possibles : infectieux, rupture_parcours)"
    )


def targeted_vs_others(
    data: dict, rules: dict, region, annee_ciblage: int, annee_suivi: int, risque: str = "rupture_parcours"
) -> pd.DataFrame:
    """Évolution moyenne des établissements ciblés en ``annee_ciblage`` et des non ciblés.

    Unités : secteurs QLS (``rupture_parcours`` : dernière campagne de la fenêtre de l'année de
    ciblage, puis dernière campagne **postérieure** dans la fenêtre de ``annee_suivi``) ou
    établissements (``infectieux`` : taux pour 10 000 séjours des deux années). Groupes :
    ``ciblés`` ; ``non ciblés comparables`` (valeur initiale dans le quart inférieur des non ciblés :
    c'est la comparaison qui neutralise en partie la régression vers la moyenne) ; ``non ciblés``.
    Colonnes ``groupe, indicateur, unite, n, valeur_initiale_moyenne, valeur_finale_moyenne,
    evolution_moyenne, evolution_mediane`` ; la mise en garde est dans ``df.attrs["note"]``.
    """
    etabs = region_establishments(data, region)
    m, label, unit = _baseline_followup(data, rules, risque, int(annee_ciblage), int(annee_suivi), etabs)
    cib = compute_ciblage(data, rules, int(annee_ciblage), region)
    targeted_finess = set(cib.loc[cib["risque"] == risque, "finess_geo"].astype(str))
    m = m.copy()
    in_targeted = m["finess_geo"].astype(str).isin(targeted_finess)
    m["_cible"] = in_targeted & m["_sous_seuil"].astype(bool)
    # Les autres unités des établissements ciblés (secteurs au-dessus du seuil) sont écartées :
    # elles ne sont ni ciblées ni indemnes de l'accompagnement.
    m = m.loc[m["_cible"] | ~in_targeted]
    m["evolution"] = m["valeur_finale"] - m["valeur_initiale"]
    others = m.loc[~m["_cible"]]
    q1 = others["valeur_initiale"].quantile(0.25) if len(others) else np.nan
    groups = {
        "ciblés": m.loc[m["_cible"]],
        "non ciblés comparables": others.loc[others["valeur_initiale"] <= q1] if np.isfinite(q1) else others.iloc[0:0],
        "non ciblés": others,
    }
    rows = []
    for name, g in groups.items():
        rows.append(
            {
                "groupe": name,
                "indicateur": label,
                "unite": unit,
                "n": len(g),
                "valeur_initiale_moyenne": g["valeur_initiale"].mean() if len(g) else np.nan,
                "valeur_finale_moyenne": g["valeur_finale"].mean() if len(g) else np.nan,
                "evolution_moyenne": g["evolution"].mean() if len(g) else np.nan,
                "evolution_mediane": g["evolution"].median() if len(g) else np.nan,
            }
        )
    out = pd.DataFrame(rows).astype(
        {
            "groupe": "string",
            "indicateur": "string",
            "unite": "string",
            "n": "Int64",
            "valeur_initiale_moyenne": "Float64",
            "valeur_finale_moyenne": "Float64",
            "evolution_moyenne": "Float64",
            "evolution_mediane": "Float64",
        }
    )
    out.attrs["note"] = regression_to_mean_note()
    out.attrs["risque"] = risque
    out.attrs["annee_ciblage"] = int(annee_ciblage)
    out.attrs["annee_suivi"] = int(annee_suivi)
    return out

