"""Ciblage régional des établissements, générique : une règle par ``regle`` déclarée.

Chaque risque du fichier de règles (``ciblage.<risque>``) désigne un indicateur déclaré et une règle :

- ``seuil`` : l'établissement est ciblé quand la valeur de l'indicateur de l'année (ou de la fenêtre
  de l'indicateur, par valeur de ``par``) remplit la comparaison ``operateur valeur`` ; plusieurs
  valeurs de ``par`` ciblées font une seule ligne dont le motif les cite toutes et ``valeur`` est la
  plus défavorable ;
- ``niveau`` : le niveau de l'indicateur (en vigueur au 31/12/N pour un niveau daté) est dans
  ``niveaux`` ;
- ``sous_declaration_poisson`` : *non déclarant* (compte de l'année au plus égal à
  ``seuil_non_declarant``) ou *faiblement déclarant* (``P(X <= compte)`` pour ``X ~ Poisson(exposition
  × taux régional)`` sous ``seuil_p``) ; sans donnée d'exposition, seule la règle *non déclarant*
  s'applique ; un établissement qui remplit les deux conditions n'a qu'une ligne, au motif *non
  déclarant* (complété de l'attendu et de la probabilité).

``specificites_exclues`` d'un risque : ces établissements ne sont pas concernés. Une source absente ne
cible personne sur les risques qui en dépendent.

Ajouter une ``regle`` : une fonction ``_rule_<regle>`` ici et son nom dans ``REGLES`` du modèle.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from ..publishing import fmt
from ..rules.model import Risque, Rules
from . import persist, stats
from .engine import compare, mask, observe, region_establishments, region_fingerprint, scope_fingerprint, source_rows
from .suivi import display_value

CIBLAGE_COLUMNS = ["finess_geo", "raison_sociale", "departement", "risque", "motif", "valeur"]

ENTREE = "entrée"
SORTIE = "sortie"


def _words(label, n: float) -> str:
    """Libellé au singulier ou au pluriel : ``["séjour", "séjours"]`` ou un texte invariable."""
    if isinstance(label, (list, tuple)):
        return label[0] if n < 2 else label[-1]
    return str(label)


def _empty_ciblage() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="string") for c in CIBLAGE_COLUMNS})


def _concerned(etabs: pd.DataFrame, risk: Risque) -> pd.DataFrame:
    if not risk.specificites_exclues:
        return etabs
    return etabs.loc[~mask(etabs["specificite"].isin(list(risk.specificites_exclues)))]


_PARTS = ["finess_geo", "motif", "valeur"]


def _rule_seuil(data, rules: Rules, annee, code, risk: Risque, etabs, region) -> pd.DataFrame:
    ind = rules.indicator(risk.indicateur)
    obs = observe(data, rules, risk.indicateur, annee, _concerned(etabs, risk)["finess_geo"])
    hit = mask(compare(obs, ind, risk.operateur, risk.valeur))
    q = obs.loc[hit.to_numpy()].copy()
    if q.empty:
        return pd.DataFrame(columns=_PARTS)
    if ind.par:
        order = {v: i for i, v in enumerate(rules.sources[ind.source].colonnes[ind.par].valeurs or [])}
        q["_o"] = q["par_valeur"].map(order)
        q = q.sort_values(["finess_geo", "_o", "par_valeur"], kind="mergesort")
    seuil = fmt.fmt_target(risk.operateur, risk.valeur, ind.unite)
    motifs = []
    for r in q.itertuples():
        par = f" {rules.value_label(ind.source, ind.par, r.par_valeur)}" if ind.par else ""
        v = display_value(ind, r.valeur_num, r.niveau, rules.thresholds(risk.indicateur))
        motifs.append(f"{ind.libelle}{par} {int(r.annee_donnee)} : {v} {seuil}")
    q["motif"] = motifs
    worst = "min" if risk.operateur in ("<", "<=") else "max"
    g = q.groupby("finess_geo", sort=True)
    out = pd.DataFrame({"motif": g["motif"].agg("; ".join),
                        "valeur": g["valeur_num"].agg(worst).map(fmt.fmt_machine)}).reset_index()
    return out[_PARTS]


def _rule_niveau(data, rules: Rules, annee, code, risk: Risque, etabs, region) -> pd.DataFrame:
    ind = rules.indicator(risk.indicateur)
    obs = observe(data, rules, risk.indicateur, annee, _concerned(etabs, risk)["finess_geo"])
    q = obs.loc[mask(obs["niveau"].isin(list(risk.niveaux or []))).to_numpy()]
    if q.empty:
        return pd.DataFrame(columns=_PARTS)
    motifs = []
    for r in q.itertuples():
        when = f" (décision du {fmt.fmt_date(r.date_donnee)})" if ind.date else f" ({int(r.annee_donnee)})"
        motifs.append(f"{ind.libelle} : {r.niveau}{when}")
    out = pd.DataFrame({"finess_geo": q["finess_geo"].to_numpy(), "motif": motifs,
                        "valeur": q["niveau"].astype(str).to_numpy()})
    return out.groupby("finess_geo", as_index=False, sort=True).agg({"motif": "; ".join, "valeur": "first"})[_PARTS]


def exposure(data, rules: Rules, risk: Risque, annee: int, finess) -> pd.DataFrame:
    """Comptes de l'année N et exposition (séjours) par établissement : ``finess_geo, compte, exposition``."""
    obs = observe(data, rules, risk.indicateur, annee, finess)
    out = pd.DataFrame({"finess_geo": obs["finess_geo"], "compte": obs["valeur_num"]})
    out = out.groupby("finess_geo", as_index=False, sort=True)["compte"].sum(min_count=1)
    expo = None
    if risk.exposition is not None:
        src = source_rows(data, risk.exposition.source, finess)
        if src is not None:
            col = risk.exposition.colonne
            src = src.loc[mask(src["annee"] == int(annee)) & src[col].notna()] if "annee" in src.columns else src
            expo = src.groupby("finess_geo", as_index=False)[col].sum().rename(columns={col: "exposition"})
    if expo is None:
        out["exposition"] = pd.Series(np.nan, index=out.index, dtype="Float64")
    else:
        out = out.merge(expo, on="finess_geo", how="left")
    out["compte"] = out["compte"].astype("Float64")
    out["exposition"] = pd.to_numeric(out["exposition"], errors="coerce").astype("Float64")
    return out


def regional_rate(data: dict, rules: Rules, annee: int, region, risk: Risque | str | None = None) -> tuple[float, int]:
    """Taux régional de l'année N, par unité d'exposition : ``Σ comptes / Σ exposition`` sur les
    établissements de la région ayant les deux chiffres ; rend ``(taux, n_etab)`` (``NaN`` sans données)."""
    risk = _poisson_risk(rules, risk)
    etabs = region_establishments(data, region)
    m = exposure(data, rules, risk, annee, etabs["finess_geo"])
    both = m.loc[m["compte"].notna() & m["exposition"].notna()]
    n = int(len(both))
    total = float(both["exposition"].sum()) if n else 0.0
    if n == 0 or total <= 0:
        return float("nan"), n
    return float(both["compte"].sum()) / total, n


def _poisson_risk(rules: Rules, risk) -> Risque:
    if isinstance(risk, Risque):
        return risk
    if isinstance(risk, str):
        return rules.risques[risk]
    for r in rules.risques.values():
        if r.regle == "sous_declaration_poisson":
            return r
    raise KeyError("aucun risque de règle « sous_declaration_poisson » déclaré")


def _rule_sous_declaration_poisson(data, rules: Rules, annee, code, risk: Risque, etabs, region) -> pd.DataFrame:
    m = exposure(data, rules, risk, annee, _concerned(etabs, risk)["finess_geo"])
    m = m.loc[m["compte"].notna()].reset_index(drop=True)
    if m.empty:
        return pd.DataFrame(columns=_PARTS)
    taux, _ = regional_rate(data, rules, annee, region, risk)
    s = m["compte"].astype("float64").to_numpy()
    sej = m["exposition"].to_numpy(dtype="float64", na_value=np.nan)
    attendu = sej * taux if np.isfinite(taux) else np.full(len(m), np.nan)
    p = stats.poisson_lower_pvalue(s, attendu)
    non_decl = s <= float(risk.seuil_non_declarant)
    with np.errstate(invalid="ignore"):
        faible = np.isfinite(p) & (p < risk.seuil_p)
    hit = non_decl | faible
    ind = rules.indicator(risk.indicateur)
    what = risk.libelle_compte or ind.libelle.lower()
    expo = risk.exposition.libelle if risk.exposition is not None else "unités"
    seuil_txt = fmt.fmt_shortest(risk.seuil_p)
    motifs, valeurs = [], []
    for i in np.flatnonzero(hit):  # boucle limitée aux établissements ciblés (peu nombreux)
        ns = int(s[i])
        base = f"{ns} {_words(what, ns)} en {annee}"
        if np.isfinite(sej[i]):
            nsej = int(sej[i])
            base += f" pour {fmt.fmt_num(nsej)} {_words(expo, nsej)}"
        stat = ""
        if faible[i]:
            ptxt = fmt.fmt_pvalue(float(p[i]))
            sep = " ; seuil " if p[i] < 0.0001 else " < "
            stat = f", attendu {fmt.fmt_dec(attendu[i], 1)} ({ptxt}{sep}{seuil_txt})"
        if non_decl[i]:
            motif = "non déclarant : " + base + stat
            if not np.isfinite(sej[i]):
                motif += f" ({_words(expo, 2)} non renseignés)"
        else:
            motif = "faiblement déclarant : " + base + stat
        motifs.append(motif)
        valeurs.append(str(ns))
    return pd.DataFrame({"finess_geo": m.loc[hit, "finess_geo"].to_numpy(), "motif": motifs, "valeur": valeurs})


def _inputs(data, rules: Rules, risk: Risque, annee: int) -> list[str]:
    """Empreintes des lignes que lit la règle d'un risque l'année N : celles de l'observation de son
    indicateur (:func:`~analysis.indicators.engine.scope_rows`) et, pour l'exposition, celles de sa
    source l'année N ; rien hors de ``make report`` (:mod:`persist` inactif)."""
    if not persist.active():
        return []
    out = [scope_fingerprint(data, rules.indicator(risk.indicateur), annee)]
    if risk.exposition is not None:
        ex = source_rows(data, risk.exposition.source)
        if ex is not None and "annee" in ex.columns:
            ex = ex.loc[mask(ex["annee"] == int(annee)).to_numpy()]
        out.append(persist.table_fingerprint(ex))
    return out


_RULES = {
    "seuil": _rule_seuil,
    "niveau": _rule_niveau,
    "sous_declaration_poisson": _rule_sous_declaration_poisson,
}


def compute_ciblage(data: dict, rules: Rules, annee: int, region) -> pd.DataFrame:
    """Ciblage de l'année N pour la région : une ligne par (établissement, risque) rempli.

    Colonnes ``finess_geo, raison_sociale, departement, risque, motif, valeur`` (contrat, section 3),
    triées par (risque, departement, finess_geo). ``motif`` est rédigé en français (valeur et seuil,
    formateur unique) ; ``valeur`` est la valeur brute au format machine (point décimal).
    """
    annee = int(annee)
    etabs = region_establishments(data, region)
    if etabs.empty:
        return _empty_ciblage()
    parts = []
    etabs_fp = region_fingerprint(data, region)
    for code, risk in rules.risques.items():
        p = persist.cached("ciblage", [rules.sha256, code, annee, etabs_fp, *_inputs(data, rules, risk, annee)],
                           lambda c=code, r=risk: _RULES[r.regle](data, rules, annee, c, r, etabs, region))
        if len(p):
            parts.append(p.assign(risque=code))
    if not parts:
        return _empty_ciblage()
    out = pd.concat(parts, ignore_index=True)
    out = out.merge(etabs[["finess_geo", "raison_sociale", "departement"]], on="finess_geo", how="left")
    out = out[CIBLAGE_COLUMNS].astype("string")
    out = out.sort_values(["risque", "departement", "finess_geo"], kind="mergesort")
    return out.reset_index(drop=True)


def ciblage_history(data: dict, rules: Rules, years: Iterable[int], region) -> pd.DataFrame:
    """Ciblage de plusieurs années : colonne ``annee`` puis les colonnes de ``compute_ciblage``."""
    frames = []
    for y in sorted({int(y) for y in years}):
        df = compute_ciblage(data, rules, y, region)
        df.insert(0, "annee", pd.Series(y, index=df.index, dtype="Int64"))
        frames.append(df)
    if not frames:
        out = _empty_ciblage()
        out.insert(0, "annee", pd.Series(dtype="Int64"))
        return out
    out = pd.concat(frames, ignore_index=True)
    out["annee"] = out["annee"].astype("Int64")
    return out


def ciblage_movements(history: pd.DataFrame, years: Iterable[int]) -> pd.DataFrame:
    """Entrées et sorties du ciblage d'une année sur l'autre, par (établissement, risque).

    ``entrée`` : ciblé en N, pas en N-1 ; ``sortie`` : ciblé en N-1, plus en N. Calculé pour chaque
    année N de ``years`` dont l'année N-1 figure aussi dans ``years``. Colonnes ``annee, finess_geo,
    raison_sociale, departement, risque, mouvement``, triées par (annee, risque, mouvement,
    departement, finess_geo).
    """
    cols = ["annee", "finess_geo", "raison_sociale", "departement", "risque", "mouvement"]
    ys = sorted({int(y) for y in years})
    key = ["finess_geo", "risque"]
    h = history[["annee", "finess_geo", "raison_sociale", "departement", "risque"]].copy()
    prev = h.assign(annee=h["annee"] + 1)  # ciblage de N-1 rapporté à l'année N
    valid = [y for y in ys if y - 1 in ys]
    cur = h.loc[mask(h["annee"].isin(valid))]
    prev = prev.loc[mask(prev["annee"].isin(valid))]
    m = cur.merge(prev, on=["annee", *key], how="outer", suffixes=("", "_prec"), indicator=True)
    m = m.loc[m["_merge"] != "both"].copy()
    entree = m["_merge"] == "left_only"
    for c in ("raison_sociale", "departement"):
        m[c] = m[c].where(entree, m[f"{c}_prec"])
    m["mouvement"] = np.where(entree, ENTREE, SORTIE)
    out = m[cols].copy()
    out["annee"] = out["annee"].astype("Int64")
    out = out.astype({c: "string" for c in cols if c != "annee"})
    out = out.sort_values(["annee", "risque", "mouvement", "departement", "finess_geo"], kind="mergesort")
    return out.reset_index(drop=True)
