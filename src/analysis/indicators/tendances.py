"""Tendances régionales des indicateurs déclarés, entonnoirs, évolutions et régression vers la moyenne.

- :func:`compute_tendances` : par indicateur déclaré et par année, valeur régionale et évolution d'une
  année sur l'autre (``tendances.csv``), plus les comptes du ciblage et, pour un risque de règle
  ``sous_declaration_poisson``, le taux régional et la part de non-déclarants ;
- :func:`evolutions` : par établissement, deux dernières valeurs d'un indicateur ``valeur`` à
  intervalle (score QLS), évolution en points, classe IFAQ, position par rapport à la référence ;
- :func:`funnel_data_poisson` / :func:`funnel_data_valeur` : points et limites des graphiques en
  entonnoir (Spiegelhalter 2005) ;
- :func:`targeted_vs_others` et :func:`regression_to_mean_note` : évolution des établissements ciblés
  comparée à celle des non ciblés (Barnett et al. 2005).

Agrégat régional par ``calcul`` (clé ``agregat`` pour le changer) : ``ratio`` -> rapport des sommes ;
``valeur`` -> moyenne pondérée par ``effectif`` (moyenne simple si un effectif manque) ; ``compte`` ->
somme ; ``booleen`` et ``niveau`` -> part des établissements atteignant la cible.
Seuls les établissements de la région demandée entrent dans les calculs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..publishing import fmt
from ..rules.model import Indicateur, Risque, Rules
from . import persist, stats
from .ciblage import ciblage_movements, compute_ciblage, exposure, regional_rate
from .engine import code_of, compare, mask, observe, region_establishments, region_fingerprint, source_rows

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

UNITE_PCT = "%"
UNITE_ETAB = "nombre d'établissements"
UNITE_SCORE = "score"


def available_years(data: dict, rules: Rules, region) -> list[int]:
    """Années couvertes par les sources annuelles de la région (intervalle continu min…max).

    Sans source annuelle, les années des données datées (décisions de certification)."""
    finess = region_establishments(data, region)["finess_geo"]
    found: set[int] = set()
    for name, src in rules.sources.items():
        if name in ("etablissements", "engagements") or not src.is_annual:
            continue
        df = source_rows(data, name, finess)
        if df is not None and "annee" in df.columns:
            found |= {int(y) for y in df["annee"].dropna().unique()}
    if not found:
        for _, _, ind in rules.indicators():
            df = source_rows(data, ind.source, finess)
            if ind.date and df is not None:
                found |= {int(y) for y in pd.to_datetime(df[ind.date]).dt.year.dropna().unique()}
    if not found:
        return []
    return list(range(min(found), max(found) + 1))


def _summary(df: pd.DataFrame, by: list[str], value: str, reached: str | None = None,
             regional: pd.Series | None = None) -> pd.DataFrame:
    """Effectif, médiane, moyenne (et part atteignant la cible) de ``value`` par groupe."""
    d = df.loc[df[value].notna()].copy()
    d[value] = d[value].astype("float64")
    g = d.groupby(by, sort=True)
    out = pd.DataFrame({"n_etablissements": g["finess_geo"].nunique(), "valeur_mediane": g[value].median(),
                        "valeur_moyenne": g[value].mean()})
    if reached is not None:
        out["part_cible_atteinte"] = g[reached].mean() * 100.0
    out["valeur_regionale"] = out["valeur_moyenne"] if regional is None else regional
    return out.reset_index()


def _finish(frames: list[pd.DataFrame], years: list[int] | None) -> pd.DataFrame:
    frames = [f for f in frames if f is not None and len(f)]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=("string" if c in ("indicateur", "libelle", "unite") else
                                                 "Int64" if c in ("annee", "n_etablissements", "annee_reference")
                                                 else "Float64")) for c in TENDANCES_COLUMNS})
    out = pd.concat([f.reindex(columns=TENDANCES_COLUMNS[:-2]) for f in frames], ignore_index=True)
    out["annee"] = out["annee"].astype("Int64")
    out["n_etablissements"] = pd.to_numeric(out["n_etablissements"]).astype("Int64")
    for c in ("valeur_regionale", "valeur_mediane", "valeur_moyenne", "part_cible_atteinte"):
        out[c] = pd.to_numeric(out[c], errors="coerce").astype("Float64")
    out["libelle"] = out["libelle"].fillna(out["indicateur"])
    out = out.sort_values(["indicateur", "annee"], kind="mergesort").reset_index(drop=True)
    # Évolution par rapport à l'année précédente disponible du même indicateur
    known = out.loc[out["valeur_regionale"].notna(), ["indicateur", "annee", "valeur_regionale"]]
    prev = known.groupby("indicateur", sort=False)[["annee", "valeur_regionale"]].shift(1)
    out["annee_reference"] = pd.Series(pd.NA, index=out.index, dtype="Int64")
    out["evolution_annuelle"] = pd.Series(pd.NA, index=out.index, dtype="Float64")
    out.loc[known.index, "annee_reference"] = prev["annee"].astype("Int64")
    out.loc[known.index, "evolution_annuelle"] = (known["valeur_regionale"] - prev["valeur_regionale"]).astype(
        "Float64")
    # Arrondi à 6 décimales : supprime le bruit des flottants (4.000000000000001) dans le CSV.
    for c in ("valeur_regionale", "valeur_mediane", "valeur_moyenne", "part_cible_atteinte", "evolution_annuelle"):
        out[c] = out[c].round(6)
    if years is not None:
        out = out.loc[mask(out["annee"].isin(years))]
    out = out.astype({"indicateur": "string", "libelle": "string", "unite": "string"})
    return out[TENDANCES_COLUMNS].reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# Un agrégat par calcul
# --------------------------------------------------------------------------------------------------
def _met(obs: pd.DataFrame, ind: Indicateur) -> pd.Series:
    c = ind.cible
    if c is None:
        return pd.Series(np.nan, index=obs.index)
    return compare(obs, ind, c.operateur, c.valeur, c.dans).astype("Float64").astype("float64")


def _trend_obs(data, rules: Rules, code: str, ind: Indicateur, years: list[int], finess) -> pd.DataFrame:
    """Observations par année ; pour ``valeur``, les données de l'année même (pas de fenêtre)."""
    frames = []
    if ind.calcul == "valeur":
        df = source_rows(data, ind.source, finess)
        if df is None:
            return pd.DataFrame()
        d = df.loc[df[ind.colonne].notna() & mask(df["annee"].isin(years))]
        if ind.par:
            d = d.loc[d[ind.par].notna()]
        o = pd.DataFrame({"annee": d["annee"].astype("Int64"), "finess_geo": d["finess_geo"],
                          "valeur_num": pd.to_numeric(d[ind.colonne]).astype("Float64")})
        o["n"] = pd.to_numeric(d[ind.effectif]).astype("Float64") if ind.effectif else np.nan
        o["par_valeur"] = d[ind.par].astype("string") if ind.par else pd.NA
        o["indicateur"] = code_of(code, ind, o["par_valeur"]) if ind.par else code
        return o.reset_index(drop=True)
    for y in years:
        o = observe(data, rules, code, y, finess)
        if len(o):
            frames.append(o.assign(annee=y))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _indicator_trend(data, rules: Rules, code: str, ind: Indicateur, years: list[int], finess) -> list[pd.DataFrame]:
    o = _trend_obs(data, rules, code, ind, years, finess)
    if o.empty:
        return []
    o = o.copy()
    o["_ok"] = _met(o, ind)
    has_target = ind.cible is not None
    agg = ind.default_agregat
    frames = []
    by = ["annee", "indicateur"]
    v = o["valeur_num"].astype("float64")
    o["_v"] = v
    if agg == "rapport":
        g = o.groupby(by, sort=True)
        regional = g["num"].sum() / g["den"].sum() * 100
        frames.append(_summary(o, by, "_v", "_ok" if has_target else None, regional))
        if ind.par:  # ensemble des valeurs de `par` : taux de l'établissement, cible si chaque valeur l'atteint
            est = o.groupby(["finess_geo", "annee"], as_index=False).agg(num=("num", "sum"), den=("den", "sum"),
                                                                         _ok=("_ok", "min"))
            est["_v"] = est["num"] / est["den"].where(est["den"] > 0) * 100
            g2 = est.groupby("annee", sort=True)
            tot = _summary(est, ["annee"], "_v", "_ok" if has_target else None, g2["num"].sum() / g2["den"].sum() * 100)
            tot["indicateur"] = code
            tot["libelle"] = f"{ind.libelle} (ensemble)"
            frames.append(tot)
    elif agg in ("moyenne_ponderee", "moyenne"):
        n = o["n"].astype("float64") if "n" in o.columns else pd.Series(np.nan, index=o.index)
        o["_n"] = n.where(n > 0)
        o["_sn"] = o["_v"] * o["_n"]
        g = o.loc[o["_v"].notna()].groupby(by, sort=True)
        mean = g["_v"].mean()
        if agg == "moyenne_ponderee":
            all_n = g["_n"].apply(lambda s: bool(s.notna().all()))
            regional = (g["_sn"].sum(min_count=1) / g["_n"].sum(min_count=1)).where(all_n, mean)
        else:
            regional = mean
        frames.append(_summary(o, by, "_v", "_ok" if has_target else None, regional))
    elif agg == "somme":
        g = o.loc[o["_v"].notna()].groupby(by, sort=True)
        frames.append(_summary(o, by, "_v", "_ok" if has_target else None, g["_v"].sum()))
    elif agg == "part":
        base = o["_ok"] if has_target else (o["_v"] >= 0.5).astype(float).where(o["_v"].notna())
        o["_p"] = base * 100.0
        o["_ok2"] = base
        d = o.loc[o["_p"].notna()]
        g = d.groupby(by, sort=True)
        out = pd.DataFrame({"n_etablissements": g["finess_geo"].nunique(), "valeur_regionale": g["_p"].mean()})
        out["part_cible_atteinte"] = out["valeur_regionale"] if has_target else np.nan
        frames.append(out.reset_index())
    for f in frames:
        f.setdefault("libelle", None) if isinstance(f, dict) else None
        if "libelle" not in f.columns:
            f["libelle"] = [_trend_label(rules, code, ind, i) for i in f["indicateur"]]
        f["unite"] = UNITE_PCT if agg == "part" else ind.unite or "nombre"
    return frames


def _trend_label(rules: Rules, code: str, ind: Indicateur, full: str) -> str:
    label = rules.indicator_label(full)
    if ind.default_agregat == "part":
        if ind.cible is not None and ind.cible.dans:
            return f"{label} : part {fmt.fmt_target(None, None, '', ind.cible.dans)}"
        return f"{label} (part des établissements)"
    return label


def _poisson_trend(data, rules: Rules, rcode: str, risk: Risque, years, finess) -> list[pd.DataFrame]:
    frames = []
    rows_t, rows_p = [], []
    pour = risk.exposition.pour if risk.exposition else 1
    for y in years:
        m = exposure(data, rules, risk, y, finess)
        if m.empty:
            continue
        s = m["compte"].astype("float64")
        e = m["exposition"].astype("float64")
        both = s.notna() & e.notna()
        taux = (s / e.where(e > 0) * pour).where(both)
        tot = e[both].sum()
        if both.any():
            rows_t.append({"annee": y, "n_etablissements": int(taux.notna().sum()),
                           "valeur_regionale": s[both].sum() / tot * pour if tot > 0 else np.nan,
                           "valeur_mediane": taux.median(), "valeur_moyenne": taux.mean()})
        nd = (s <= risk.seuil_non_declarant).where(s.notna()).astype(float) * 100
        rows_p.append({"annee": y, "n_etablissements": int(s.notna().sum()), "valeur_regionale": nd.mean()})
    expo = risk.exposition.libelle if risk.exposition else "unités"
    expo = expo[-1] if isinstance(expo, list) else expo
    if rows_t:
        f = pd.DataFrame(rows_t).assign(indicateur=f"taux_regional_{rcode}",
                                        libelle=f"{rules.indicator_label(risk.indicateur)} pour {fmt.fmt_num(pour)} {expo}",
                                        unite=f"pour {fmt.fmt_num(pour)} {expo}")
        frames.append(f)
    if rows_p:
        frames.append(pd.DataFrame(rows_p).assign(indicateur=f"part_non_declarants_{rcode}",
                                                  libelle=f"Part d'établissements non déclarants ({risk.libelle.lower()})",
                                                  unite=UNITE_PCT))
    return frames


def _ciblage_trend(data, rules: Rules, region, n_region, years, history=None, movements=None) -> list[pd.DataFrame]:
    if not years:
        return []
    from .ciblage import ciblage_history

    hist = history if history is not None else ciblage_history(data, rules, years, region)
    risks = list(rules.risques)
    idx = pd.MultiIndex.from_product([list(years), risks], names=["annee", "risque"])
    counts = hist.groupby(["annee", "risque"])["finess_geo"].nunique().reindex(idx, fill_value=0).reset_index()
    counts["indicateur"] = "cibles_" + counts["risque"]
    counts["libelle"] = ["Établissements ciblés : " + rules.label("risque", r).lower() for r in counts["risque"]]
    counts = counts.rename(columns={"finess_geo": "valeur_regionale"})
    total = hist.groupby("annee")["finess_geo"].nunique().reindex(list(years), fill_value=0)
    total = total.rename("valeur_regionale").reset_index().assign(indicateur="cibles_total",
                                                                  libelle="Établissements ciblés (au moins un risque)")
    frames = [counts, total]
    mv = movements if movements is not None else ciblage_movements(hist, years)
    valid = [y for y in years if y - 1 in years]
    for label, code, lib in (("entrée", "entrees_ciblage", "Entrées dans le ciblage (établissement × risque)"),
                             ("sortie", "sorties_ciblage", "Sorties du ciblage (établissement × risque)")):
        c = mv.loc[mv["mouvement"] == label].groupby("annee").size().reindex(list(years), fill_value=0)
        c = c.astype("float64").where(pd.Index(list(years)).isin(valid))  # 1re année : non calculable
        frames.append(c.rename("valeur_regionale").reset_index().assign(indicateur=code, libelle=lib))
    for f in frames:
        f["n_etablissements"] = n_region
        f["unite"] = UNITE_ETAB
    return frames


def _esatis_trend(data, finess) -> pd.DataFrame | None:
    from .engine import source_rows as rows

    e = rows(data, "esatis", finess)
    if e is None or e.empty:
        return None
    e = e.assign(_v=pd.to_numeric(e["score"], errors="coerce").astype("float64"))
    e["_code"] = "esatis_" + e["indicateur"].map(fmt_code) + "_" + e["secteur"].map(fmt_code)
    out = _summary(e, ["annee", "_code"], "_v")
    out = out.rename(columns={"_code": "indicateur"})
    out["libelle"] = "Expérience patient e-Satis (" + out["indicateur"].str.replace("esatis_", "", n=1) + ")"
    out["unite"] = UNITE_SCORE
    return out


def fmt_code(v) -> str:
    from ..rules.model import indicator_suffix

    return indicator_suffix(v)


def compute_tendances(data: dict, rules: Rules, region, years: Iterable[int] | None = None,
                      history: pd.DataFrame | None = None, movements: pd.DataFrame | None = None) -> pd.DataFrame:
    """Tendances régionales : une ligne par (indicateur, année), triées par (indicateur, annee).

    ``valeur_regionale`` : agrégat régional de l'indicateur (voir le module) ; ``valeur_mediane`` /
    ``valeur_moyenne`` : distribution des valeurs des établissements ; ``part_cible_atteinte`` : % des
    établissements atteignant la cible des règles ; ``evolution_annuelle`` : écart à l'année
    précédente disponible du même indicateur (``annee_reference``), en points pour les % ; ciblage :
    ``n_etablissements`` est le nombre d'établissements de la région, entrées et sorties de la première
    année manquantes. ``history`` / ``movements`` : historique du ciblage déjà calculé (sinon recalculé).
    """
    etabs = region_establishments(data, region)
    finess = etabs["finess_geo"]
    ys = sorted({int(y) for y in years}) if years is not None else available_years(data, rules, region)
    frames: list[pd.DataFrame] = []
    # indicateurs : toutes les années des données (l'évolution de la première année demandée se
    # mesure par rapport à l'année disponible précédente), puis filtre sur les années demandées
    all_years = sorted(set(ys) | set(available_years(data, rules, region)))
    # une tendance ne lit que les lignes des établissements de la région dans sa source (et celle de
    # l'exposition) : reprise d'une exécution à l'autre tant qu'elles n'ont pas changé
    fps = {}

    def rows_fp(source: str) -> str | None:
        if source not in fps:
            fps[source] = persist.table_fingerprint(source_rows(data, source, finess)) if persist.active() else None
        return fps[source]

    key = [rules.sha256, all_years, region_fingerprint(data, region)]
    for _, code, ind in rules.indicators():
        if ind.tendance:
            frames.extend(persist.cached(
                "tendance", key + [code, rows_fp(ind.source)],
                lambda c=code, i=ind: _indicator_trend(data, rules, c, i, all_years, finess)))
    for rcode, risk in rules.risques.items():
        if risk.regle == "sous_declaration_poisson":
            sources = [rules.indicator(risk.indicateur).source] + ([risk.exposition.source] if risk.exposition else [])
            frames.extend(persist.cached(
                "tendance_poisson", key + [rcode, *map(rows_fp, sources)],
                lambda c=rcode, r=risk: _poisson_trend(data, rules, c, r, all_years, finess)))
    frames.extend(_ciblage_trend(data, rules, region, len(etabs), ys, history, movements))
    frames.append(_esatis_trend(data, finess))
    return _finish(frames, ys if years is not None else (ys or None))


# --------------------------------------------------------------------------------------------------
# Évolutions par établissement (indicateur « valeur » à intervalle)
# --------------------------------------------------------------------------------------------------
EVOLUTION_COLUMNS = [
    "finess_geo", "raison_sociale", "departement", "indicateur", "par_valeur", "annee_precedente",
    "valeur_precedente", "ic_bas_precedent", "ic_haut_precedent", "annee", "valeur", "n", "ic_bas", "ic_haut",
    "source_ic", "evolution_points", "evolution", "position_cible",
]


def interval_indicators(rules: Rules) -> list[str]:
    """Indicateurs ``valeur`` qui ont un intervalle (bornes fournies ou effectif pour Wilson)."""
    return [c for _, c, i in rules.indicators() if i.calcul == "valeur" and (i.effectif or i.ic_bas)]


def evolutions(data: dict, rules: Rules, region, annee: int, code: str) -> pd.DataFrame:
    """Deux dernières valeurs par établissement (dernière dans la fenêtre de l'indicateur) ;
    ``evolution`` = classe IFAQ (non-chevauchement des intervalles) ; ``position_cible`` = position
    de l'intervalle par rapport à ``statistiques.reference_position`` (à défaut la cible)."""
    ind = rules.indicator(code)
    etabs = region_establishments(data, region)
    q = observe(data, rules, code, annee, etabs["finess_geo"])
    q = q.merge(etabs[["finess_geo", "raison_sociale", "departement"]], on="finess_geo", how="left")
    q = q.rename(columns={"annee_donnee": "annee", "valeur_num": "valeur"})
    q["evolution_points"] = (q["valeur"].astype("Float64") - q["valeur_precedente"].astype("Float64")).astype("Float64")
    q["evolution"] = stats.evolution_ifaq(q["ic_bas_precedent"], q["ic_haut_precedent"], q["ic_bas"], q["ic_haut"])
    ref = rules.statistiques.reference_position
    if ref is None and ind.cible is not None and ind.cible.operateur:
        ref = float(ind.cible.valeur)
    if ref is not None:
        q["position_cible"] = stats.position_vs_target(q["ic_bas"], q["ic_haut"], pd.Series(float(ref), index=q.index))
    if ind.par:
        order = {v: i for i, v in enumerate(rules.sources[ind.source].colonnes[ind.par].valeurs or [])}
        q["_o"] = q["par_valeur"].map(order)
        q = q.sort_values(["finess_geo", "_o", "par_valeur"], kind="mergesort")
    out = q.reindex(columns=EVOLUTION_COLUMNS).reset_index(drop=True)
    for c in ("finess_geo", "raison_sociale", "departement", "indicateur", "par_valeur", "source_ic", "evolution",
              "position_cible"):
        out[c] = out[c].astype("string")
    for c in ("annee_precedente", "annee"):
        out[c] = out[c].astype("Int64")
    return out


# --------------------------------------------------------------------------------------------------
# Graphiques en entonnoir
# --------------------------------------------------------------------------------------------------
class FunnelData(NamedTuple):
    """``points``, ``limites`` (grille de dénominateurs) et ``reference`` (dans l'unité des limites ;
    un dictionnaire par valeur de ``par`` pour un indicateur ``par``)."""

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


def funnel_data_poisson(data: dict, rules: Rules, region, annee: int, risque: str, n_points: int = 200) -> FunnelData:
    """Entonnoir d'un risque ``sous_declaration_poisson`` : taux pour ``pour`` unités d'exposition.

    ``points`` : ``finess_geo, raison_sociale, departement, exposition, compte, taux, attendu, p_valeur,
    position_funnel`` ; ``limites`` : ``exposition`` puis les colonnes de ``funnel_limits`` (Poisson
    autour du taux régional) ; ``reference`` : taux régional."""
    risk = rules.risques[risque]
    pour = risk.exposition.pour if risk.exposition else 1
    levels = tuple(float(x) for x in rules.statistiques.limites_funnel)
    etabs = region_establishments(data, region)
    taux, _ = regional_rate(data, rules, annee, region, risk)
    cols = ["finess_geo", "raison_sociale", "departement", "exposition", "compte", "taux", "attendu", "p_valeur",
            "position_funnel"]
    m = exposure(data, rules, risk, annee, etabs["finess_geo"])
    p = m.loc[m["compte"].notna() & mask(m["exposition"] > 0)].copy()
    if p.empty or not np.isfinite(taux):
        empty = stats.funnel_limits([], 0.0, levels, "poisson")
        empty.insert(0, "exposition", empty["denominateur"])
        return FunnelData(pd.DataFrame(columns=cols), empty, np.nan)
    p = p.merge(etabs[["finess_geo", "raison_sociale", "departement"]], on="finess_geo")
    e = p["exposition"].astype("float64")
    s = p["compte"].astype("float64")
    p["taux"] = s / e * pour
    p["attendu"] = e * taux
    p["p_valeur"] = stats.poisson_lower_pvalue(s, p["attendu"]).astype("float64")
    p["position_funnel"] = stats.funnel_position(p["taux"], e, taux, levels, "poisson", scale=pour)
    p = p.sort_values("finess_geo", kind="mergesort").reset_index(drop=True)[cols]
    lim = stats.funnel_limits(_grid(p["exposition"], n_points), taux, levels, "poisson", scale=pour)
    lim.insert(0, "exposition", lim["denominateur"])
    return FunnelData(p, lim, taux * pour)


def funnel_data_valeur(data: dict, rules: Rules, region, annee: int, code: str, n_points: int = 200) -> FunnelData:
    """Entonnoirs d'un indicateur ``valeur`` en % avec effectif (score QLS), par valeur de ``par`` :
    dernière valeur de la fenêtre, limites binomiales exactes autour de Σ(valeur × n) / Σ n."""
    ind = rules.indicator(code)
    levels = tuple(float(x) for x in rules.statistiques.limites_funnel)
    etabs = region_establishments(data, region)
    q = observe(data, rules, code, annee, etabs["finess_geo"])
    q = q.loc[mask(q["n"] > 0)]
    q = q.merge(etabs[["finess_geo", "raison_sociale", "departement"]], on="finess_geo", how="left")
    cols = ["finess_geo", "raison_sociale", "departement", "indicateur", "par_valeur", "annee_donnee", "n",
            "valeur_num", "ic_bas", "ic_haut", "position_funnel"]
    values = list(rules.sources[ind.source].colonnes[ind.par].valeurs or []) if ind.par else [None]
    values += sorted(set(q["par_valeur"].dropna()) - set(values)) if ind.par else []
    points, limits, refs = [], [], {}
    for val in values:
        s = q.loc[q["par_valeur"] == val].copy() if ind.par else q.copy()
        if s.empty:
            continue
        n = s["n"].astype("float64")
        p_ref = float((s["valeur_num"].astype("float64") * n).sum() / n.sum() / 100.0)
        key = val if ind.par else code
        refs[key] = p_ref * 100.0
        s["position_funnel"] = stats.funnel_position(s["valeur_num"].astype("float64"), n, p_ref, levels, "binomial")
        points.append(s)
        lim = stats.funnel_limits(_grid(s["n"], n_points), p_ref, levels, "binomial")
        lim.insert(0, "n", lim["denominateur"])
        lim.insert(0, "par_valeur", key)
        limits.append(lim)
    pts = pd.concat(points, ignore_index=True)[cols] if points else pd.DataFrame(columns=cols)
    if limits:
        lims = pd.concat(limits, ignore_index=True)
    else:
        lims = stats.funnel_limits([], 0.5, levels, "binomial")
        lims.insert(0, "n", lims["denominateur"])
        lims.insert(0, "par_valeur", pd.Series(dtype="string"))
    pts = pts.sort_values(["par_valeur", "finess_geo"], kind="mergesort").reset_index(drop=True)
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


def comparable_risks(rules: Rules) -> list[str]:
    """Risques pour lesquels la comparaison ciblés / non ciblés a un sens (valeur continue)."""
    out = []
    for code, r in rules.risques.items():
        if r.regle == "sous_declaration_poisson" or (r.regle == "seuil" and rules.indicator(r.indicateur).calcul != "niveau"):
            out.append(code)
    return out


def _baseline_followup(data, rules: Rules, risque: str, annee_ciblage, annee_suivi, etabs):
    risk = rules.risques[risque]
    concerned = etabs
    if risk.specificites_exclues:
        concerned = etabs.loc[~mask(etabs["specificite"].isin(list(risk.specificites_exclues)))]
    finess = concerned["finess_geo"]
    if risk.regle == "seuil":
        ind = rules.indicator(risk.indicateur)
        b = observe(data, rules, risk.indicateur, annee_ciblage, finess)
        f = observe(data, rules, risk.indicateur, annee_suivi, finess)
        keys = ["finess_geo", "indicateur"]
        b = b.assign(_sous_seuil=mask(compare(b, ind, risk.operateur, risk.valeur)).to_numpy())
        m = b[keys + ["annee_donnee", "valeur_num", "_sous_seuil"]].merge(
            f[keys + ["annee_donnee", "valeur_num"]], on=keys, suffixes=("_i", "_f"))
        m = m.loc[mask(m["annee_donnee_f"] > m["annee_donnee_i"])]  # une valeur postérieure est nécessaire
        m = m.assign(valeur_initiale=m["valeur_num_i"].astype("float64"), valeur_finale=m["valeur_num_f"].astype("float64"))
        return m, ind.libelle, ind.unite
    pour = risk.exposition.pour if risk.exposition else 1

    def rate(y):
        x = exposure(data, rules, risk, y, finess)
        x = x.loc[x["compte"].notna() & mask(x["exposition"] > 0)]
        return pd.DataFrame({"finess_geo": x["finess_geo"],
                             "v": x["compte"].astype("float64") / x["exposition"].astype("float64") * pour})

    m = rate(int(annee_ciblage)).merge(rate(int(annee_suivi)), on="finess_geo", suffixes=("_i", "_f"))
    m = m.rename(columns={"v_i": "valeur_initiale", "v_f": "valeur_finale"})
    m["_sous_seuil"] = True
    expo = risk.exposition.libelle if risk.exposition else "unités"
    expo = expo[-1] if isinstance(expo, list) else expo
    return m, f"taux : {rules.indicator_label(risk.indicateur).lower()}", f"pour {fmt.fmt_num(pour)} {expo}"


def targeted_vs_others(data: dict, rules: Rules, region, annee_ciblage: int, annee_suivi: int,
                       risque: str, ciblage_base: pd.DataFrame | None = None) -> pd.DataFrame:
    """Évolution moyenne des établissements ciblés en ``annee_ciblage`` et des non ciblés.

    Groupes : ``ciblés`` ; ``non ciblés comparables`` (valeur initiale dans le quart inférieur des
    non ciblés : la comparaison qui neutralise en partie la régression vers la moyenne) ; ``non
    ciblés``. Colonnes ``groupe, indicateur, unite, n, valeur_initiale_moyenne,
    valeur_finale_moyenne, evolution_moyenne, evolution_mediane`` ; la mise en garde est dans
    ``df.attrs["note"]``. ``ciblage_base`` : ciblage de ``annee_ciblage`` déjà calculé.
    """
    etabs = region_establishments(data, region)
    m, label, unit = _baseline_followup(data, rules, risque, int(annee_ciblage), int(annee_suivi), etabs)
    cib = ciblage_base if ciblage_base is not None else compute_ciblage(data, rules, int(annee_ciblage), region)
    targeted_finess = set(cib.loc[cib["risque"] == risque, "finess_geo"].astype(str))
    m = m.copy()
    in_targeted = m["finess_geo"].astype(str).isin(targeted_finess)
    m["_cible"] = in_targeted & m["_sous_seuil"].astype(bool)
    # Les autres unités des établissements ciblés (valeurs au-dessus du seuil) sont écartées.
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
    def stat(values: pd.Series, how: str):
        v = values.dropna()  # moyenne ou médiane des valeurs présentes ; aucune : manquante (sans avertissement)
        return getattr(v, how)() if len(v) else np.nan

    for name, g in groups.items():
        rows.append({
            "groupe": name, "indicateur": label, "unite": unit, "n": len(g),
            "valeur_initiale_moyenne": stat(g["valeur_initiale"], "mean"),
            "valeur_finale_moyenne": stat(g["valeur_finale"], "mean"),
            "evolution_moyenne": stat(g["evolution"], "mean"),
            "evolution_mediane": stat(g["evolution"], "median"),
        })
    out = pd.DataFrame(rows).astype({
        "groupe": "string", "indicateur": "string", "unite": "string", "n": "Int64",
        "valeur_initiale_moyenne": "Float64", "valeur_finale_moyenne": "Float64", "evolution_moyenne": "Float64",
        "evolution_mediane": "Float64"})
    out.attrs["note"] = regression_to_mean_note()
    out.attrs["risque"] = risque
    out.attrs["annee_ciblage"] = int(annee_ciblage)
    out.attrs["annee_suivi"] = int(annee_suivi)
    return out
