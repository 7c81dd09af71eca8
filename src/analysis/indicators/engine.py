"""Moteur générique des indicateurs déclarés : une fonction d'observation par ``calcul``.

Chaque indicateur du fichier de règles (``engagements.<e>.indicateurs.<code>``) est observé pour une
année N et un ensemble d'établissements par :func:`observe`, qui rend une ligne par établissement (et
par valeur de ``par`` le cas échéant) ayant une donnée :

============== ===============================================================================
calcul         valeur de l'année N
============== ===============================================================================
``ratio``      ``100 × Σ numerateur / Σ denominateur`` des lignes de l'année (par valeur de ``par``)
``valeur``     ``colonne`` de la dernière année de la fenêtre ``fenetre_annees`` (N-f+1…N), avec son
               intervalle (``ic_bas``/``ic_haut`` fournis, sinon Wilson sur ``effectif``) et la
               campagne précédente (évolution IFAQ)
``compte``     somme de ``colonne`` sur les lignes de l'année
``booleen``    ``colonne`` de l'année (vrai/faux)
``niveau``     ``colonne`` de l'année ; avec ``date`` : dernière décision datée au plus tard le 31/12/N
============== ===============================================================================

Colonnes rendues : ``finess_geo, indicateur, par_valeur, annee_donnee, valeur_num, niveau, num, den,
n, ic_bas, ic_haut, source_ic, date_donnee, annee_precedente, valeur_precedente, ic_bas_precedent,
ic_haut_precedent, non_valide`` (motif d'un résultat non validé par le contrôle qualité du
recueil, dont la valeur est masquée). ``compare`` applique une cible (``operateur``/``valeur`` ou ``dans``) aux
observations, exactement (les rapports sont comparés en produits croisés : 90 % tout juste est
atteint).

Ajouter un ``calcul`` : une fonction ``_observe_<calcul>`` ici, son nom dans ``CALCULS`` du modèle
(:mod:`analysis.rules.model`) et, si son agrégat régional est nouveau, une branche dans
:mod:`analysis.indicators.tendances`.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

import numpy as np
import pandas as pd

from ..rules.model import Indicateur, Rules, indicator_suffix
from . import persist, stats

OBS_COLUMNS = {
    "finess_geo": "string",
    "indicateur": "string",
    "par_valeur": "string",
    "annee_donnee": "Int64",
    "valeur_num": "Float64",
    "niveau": "string",
    "num": "Float64",
    "den": "Float64",
    "n": "Float64",
    "ic_bas": "Float64",
    "ic_haut": "Float64",
    "source_ic": "string",
    "date_donnee": "datetime64[ns]",
    "annee_precedente": "Int64",
    "valeur_precedente": "Float64",
    "ic_bas_precedent": "Float64",
    "ic_haut_precedent": "Float64",
    "non_valide": "string",  # motif d'un résultat non validé (contrôle qualité du recueil), valeur masquée
}


def mask(s) -> pd.Series:
    """Masque booléen sans valeurs manquantes (manquant -> faux)."""
    s = pd.Series(s).eq(True)
    return s.fillna(False).astype(bool) if s.dtype != bool else s


def empty_obs() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in OBS_COLUMNS.items()})


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    # colonnes typées une à une puis assemblées en une fois (l'insertion colonne par colonne dans
    # un DataFrame coûtait la moitié du calcul des observations)
    cols = {}
    for c, t in OBS_COLUMNS.items():
        if c not in df.columns:
            cols[c] = pd.Series(pd.NA if t != "datetime64[ns]" else pd.NaT, index=df.index, dtype=t)
        elif t == "string":
            cols[c] = df[c].astype("object").where(df[c].notna(), None).astype("string")
        elif t == "datetime64[ns]":
            cols[c] = pd.to_datetime(df[c]).astype("datetime64[ns]")
        else:
            cols[c] = pd.to_numeric(df[c], errors="coerce").astype(t)
    return pd.DataFrame(cols, index=df.index).reset_index(drop=True)


def source_rows(data: dict, name: str, finess: Iterable[str] | None = None) -> pd.DataFrame | None:
    """Lignes d'une source (``None`` si la source est absente), restreintes aux établissements."""
    df = data.get(name) if data is not None else None
    if df is None:
        return None
    if finess is not None:
        df = df.loc[df["finess_geo"].isin(pd.Index(finess))]
    return df.drop(columns=[c for c in ("_fichier", "_ligne") if c in df.columns])


def window(annee: int, fenetre: int) -> tuple[int, int]:
    """Années de la fenêtre (``fenetre`` années se terminant en N) : 2 -> (N-1, N)."""
    return int(annee) - int(fenetre) + 1, int(annee)


def code_of(ind_code: str, ind: Indicateur, par_values: pd.Series) -> pd.Series:
    """Code complet : ``taux_formes`` + ``paramedical`` -> ``taux_formes_paramedical``."""
    if not ind.par:
        return pd.Series(ind_code, index=par_values.index, dtype="string")
    return (ind_code + "_" + par_values.map(indicator_suffix, na_action="ignore")).astype("string")


def _keys(ind: Indicateur) -> list[str]:
    return ["finess_geo"] + ([ind.par] if ind.par else [])


def _year_mask(df: pd.DataFrame, annee: int) -> pd.Series:
    return mask(df["annee"] == int(annee))


def _observe_ratio(df, ind, annee, rules):
    d = df.loc[_year_mask(df, annee)]
    d = d.loc[d[ind.numerateur].notna() & d[ind.denominateur].notna()]
    if ind.par:
        d = d.loc[d[ind.par].notna()]
    g = d.groupby(_keys(ind), as_index=False, sort=True).agg(
        num=(ind.numerateur, "sum"), den=(ind.denominateur, "sum")
    )
    num = g["num"].astype("float64")
    den = g["den"].astype("float64")
    g["valeur_num"] = (num / den.where(den > 0) * 100.0).round(10)
    g["annee_donnee"] = int(annee)
    return g


def _year_rows(df, ind, annee):
    """Lignes de l'année N où ``colonne`` (et ``par`` le cas échéant) est renseignée."""
    d = df.loc[_year_mask(df, annee) & df[ind.colonne].notna()]
    return d.loc[d[ind.par].notna()] if ind.par else d


def _observe_compte(df, ind, annee, rules):
    d = _year_rows(df, ind, annee)
    g = d.groupby(_keys(ind), as_index=False, sort=True).agg(valeur_num=(ind.colonne, "sum"))
    g["annee_donnee"] = int(annee)
    return g


def _observe_booleen(df, ind, annee, rules):
    d = _year_rows(df, ind, annee).drop_duplicates(_keys(ind), keep="last")
    out = d[_keys(ind)].copy()
    out["valeur_num"] = d[ind.colonne].astype("boolean").astype("Float64")
    out["annee_donnee"] = int(annee)
    return out


def _observe_niveau(df, ind, annee, rules):
    d = df.loc[df[ind.colonne].notna()]
    if ind.par:
        d = d.loc[d[ind.par].notna()]
    if ind.date:
        limit = pd.Timestamp(year=int(annee) + 1, month=1, day=1)  # au plus tard le 31/12/N
        dates = pd.to_datetime(d[ind.date])
        d = d.loc[mask(dates < limit)].sort_values(_keys(ind) + [ind.date], kind="mergesort")
        d = d.drop_duplicates(_keys(ind), keep="last")
        out = d[_keys(ind)].copy()
        out["date_donnee"] = pd.to_datetime(d[ind.date])
        out["annee_donnee"] = out["date_donnee"].dt.year
    else:
        d = d.loc[_year_mask(d, annee)].drop_duplicates(_keys(ind), keep="last")
        out = d[_keys(ind)].copy()
        out["annee_donnee"] = int(annee)
    out["niveau"] = d[ind.colonne].astype("string")
    order = {v: i for i, v in enumerate(ind.ordre or [])}
    out["valeur_num"] = out["niveau"].map(order).astype("Float64")  # rang dans l'ordre (0 = meilleur)
    return out


def _with_intervals(q: pd.DataFrame, ind: Indicateur, rules: Rules, suffix: str = "") -> pd.DataFrame:
    conf = float(rules.statistiques.niveau_confiance)
    lo_c, hi_c = f"ic_bas{suffix}", f"ic_haut{suffix}"
    lo = q[lo_c].astype("Float64") if lo_c in q.columns else pd.Series(pd.NA, index=q.index, dtype="Float64")
    hi = q[hi_c].astype("Float64") if hi_c in q.columns else pd.Series(pd.NA, index=q.index, dtype="Float64")
    given = lo.notna() & hi.notna()
    if f"n{suffix}" in q.columns:
        wl, wh = stats.wilson_interval(pd.Series(q[f"valeur_num{suffix}"], dtype="Float64"),
                                       pd.Series(q[f"n{suffix}"], dtype="Float64"), confidence=conf)
        wl, wh = wl.astype("Float64"), wh.astype("Float64")
    else:
        wl = wh = pd.Series(pd.NA, index=q.index, dtype="Float64")
    q[lo_c] = lo.where(given, wl)
    q[hi_c] = hi.where(given, wh)
    if not suffix:
        src = pd.Series(pd.NA, index=q.index, dtype="string")
        src[given.to_numpy()] = "fourni"
        src[(~given & wl.notna()).to_numpy()] = "Wilson"
        q["source_ic"] = src
    return q


def _observe_valeur(df, ind, annee, rules):
    first, last = window(annee, ind.fenetre_annees)
    present = df[ind.colonne].notna()
    invalid = "_non_valide" in df.columns
    if invalid:
        # un résultat non validé (valeur masquée, voir analysis.indicators.controle_qls) reste la
        # dernière campagne : sans valeur, jamais remplacé par la campagne précédente
        present = present | df["_non_valide"].notna()
    d = df.loc[mask(df["annee"] <= int(annee)) & present]
    if ind.par:
        d = d.loc[d[ind.par].notna()]
    keys = _keys(ind)
    cols = {"valeur_num": ind.colonne}
    if ind.effectif:
        cols["n"] = ind.effectif
    if ind.ic_bas and ind.ic_haut:
        cols["ic_bas"] = ind.ic_bas
        cols["ic_haut"] = ind.ic_haut
    q = d[keys + ["annee"]].copy()
    for k, c in cols.items():
        q[k] = pd.to_numeric(d[c], errors="coerce").astype("Float64")
    if invalid:
        q["non_valide"] = d["_non_valide"].astype("string")
    q = q.sort_values(keys + ["annee"], kind="mergesort").reset_index(drop=True)
    rank = q.groupby(keys, sort=False).cumcount(ascending=False)
    cur = q.loc[rank == 0].copy()
    prev = q.loc[rank == 1].copy()
    cur = cur.loc[mask(cur["annee"].between(first, last))]
    cur = _with_intervals(cur, ind, rules)
    if len(prev):
        prev = _with_intervals(prev, ind, rules)
    ren = {"annee": "annee_precedente", "valeur_num": "valeur_precedente", "ic_bas": "ic_bas_precedent",
           "ic_haut": "ic_haut_precedent"}
    prev = prev[keys + [c for c in ren if c in prev.columns]].rename(columns=ren)
    out = cur.merge(prev, on=keys, how="left").rename(columns={"annee": "annee_donnee"})
    return out


_OBSERVERS = {
    "ratio": _observe_ratio,
    "valeur": _observe_valeur,
    "compte": _observe_compte,
    "booleen": _observe_booleen,
    "niveau": _observe_niveau,
}


def scope_rows(df: pd.DataFrame, ind: Indicateur, annee: int) -> pd.DataFrame:
    """Lignes de la source que l'observation de l'année N peut lire : celles de l'année (``ratio``,
    ``compte``, ``booleen``, ``niveau`` sans date), celles jusqu'à N (``valeur`` : fenêtre et campagne
    précédente), toutes (``niveau`` daté). L'observation n'est faite que sur elles : leur empreinte
    suffit à la reprendre d'une exécution à l'autre (:mod:`analysis.indicators.persist`)."""
    if ind.calcul == "valeur":
        return df.loc[mask(df["annee"] <= int(annee)).to_numpy()]
    if ind.calcul == "niveau" and ind.date:
        return df
    return df.loc[_year_mask(df, annee).to_numpy()]


def scope_fingerprint(data: dict, ind: Indicateur, annee: int) -> str | None:
    """Empreinte des lignes de :func:`scope_rows` (calculée une fois par table source et par portée) ;
    ``None`` hors de ``make report`` (:mod:`persist` inactif : rien n'est repris)."""
    if not persist.active():
        return None
    df = data.get(ind.source) if data is not None else None
    if df is None:
        return persist.table_fingerprint(None)
    kind = "<=" if ind.calcul == "valeur" else "*" if ind.calcul == "niveau" and ind.date else "=="
    memo = _memo_for(df)
    key = ("empreinte", kind, int(annee) if kind != "*" else None)
    if key not in memo:
        memo[key] = persist.table_fingerprint(scope_rows(source_rows(data, ind.source), ind, annee))
    return memo[key]


def region_fingerprint(data: dict, region) -> str | None:
    """Empreinte de :func:`region_establishments` (calculée une fois par référentiel et par région) ;
    ``None`` hors de ``make report``."""
    if not persist.active():
        return None
    memo = _memo_for(data["etablissements"])
    key = ("empreinte-region", normalise_region(region))
    if key not in memo:
        memo[key] = persist.table_fingerprint(region_establishments(data, region))
    return memo[key]


def _observe_all(df: pd.DataFrame, rules: Rules, code: str, annee: int) -> pd.DataFrame:
    """Observations de tous les établissements de ``df`` (lignes déjà restreintes par
    :func:`scope_rows`)."""
    ind = rules.indicator(code)
    out = _OBSERVERS[ind.calcul](df, ind, int(annee), rules)
    if out is None or out.empty:
        return empty_obs()
    out = out.copy()
    out["par_valeur"] = out[ind.par].astype("string") if ind.par else pd.NA
    out["indicateur"] = code_of(code, ind, out["par_valeur"]) if ind.par else code
    return _typed(out).sort_values(["finess_geo", "indicateur"], kind="mergesort").reset_index(drop=True)


#: observations déjà calculées, par table source (tant qu'elle existe) puis (règles, code, année) :
#: le ciblage, le suivi (année N, veille, historique), les tendances et les alertes observent
#: souvent le même indicateur la même année (138 observations, 56 distinctes sur la démonstration)
_MEMO: dict[int, dict] = {}


def _memo_for(df: pd.DataFrame) -> dict:
    key = id(df)
    memo = _MEMO.get(key)
    if memo is None:
        memo = _MEMO[key] = {}
        weakref.finalize(df, _MEMO.pop, key, None)  # oublié avec la table (son id peut resservir)
    return memo


def observe(data: dict, rules: Rules, code: str, annee: int, finess: Iterable[str] | None = None) -> pd.DataFrame:
    """Observations de l'indicateur déclaré ``code`` en N (une ligne par établissement et valeur de ``par``).

    Chaque ligne ne dépend que des lignes de son établissement : l'indicateur est observé une fois
    pour tous les établissements de la table source (mémorisé), puis restreint à ``finess``."""
    ind = rules.indicator(code)
    df = data.get(ind.source) if data is not None else None
    if df is None or df.empty:
        return empty_obs()
    memo = _memo_for(df)
    key = (id(rules), rules.sha256, code, int(annee))
    if key not in memo:
        memo[key] = persist.cached(
            "observation", [rules.sha256, code, int(annee), scope_fingerprint(data, ind, annee)],
            lambda: _observe_all(scope_rows(source_rows(data, ind.source), ind, annee), rules, code, annee))
    out = memo[key]
    if finess is not None:
        out = out.loc[out["finess_geo"].isin(pd.Index(finess))]
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Cibles


def compare(obs: pd.DataFrame, ind: Indicateur, operateur: str | None, valeur, dans=None) -> pd.Series:
    """Vrai/faux par observation (manquant quand la valeur manque) : la cible est-elle atteinte ?"""
    ops = {">=": np.greater_equal, ">": np.greater, "<=": np.less_equal, "<": np.less, "==": np.equal}
    if dans is not None:
        lv = obs["niveau"].astype("string")
        res = lv.isin([str(v) for v in dans]).astype("boolean")
        return res.where(lv.notna(), pd.NA)
    if operateur is None:
        return pd.Series(pd.NA, index=obs.index, dtype="boolean")
    if isinstance(valeur, bool) or ind.calcul == "booleen":
        target = 1.0 if bool(valeur) else 0.0
        v = obs["valeur_num"].astype("Float64")
        return pd.Series(ops[operateur](v.to_numpy(dtype="float64", na_value=np.nan), target), index=obs.index,
                         dtype="boolean").where(v.notna(), pd.NA)
    if ind.calcul == "ratio":
        # 100 × num OP cible × den, sans division (pas d'erreur d'arrondi à la cible)
        num = obs["num"].astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
        den = obs["den"].astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
        target = np.asarray(valeur, dtype="float64")
        with np.errstate(invalid="ignore"):
            res = ops[operateur](num * 100.0, target * den)
        ok = ~np.isnan(num) & ~np.isnan(den) & (den > 0)
        return pd.Series(res, index=obs.index, dtype="boolean").where(ok, pd.NA)
    v = obs["valeur_num"].astype("Float64")
    target = np.asarray(valeur, dtype="float64")
    with np.errstate(invalid="ignore"):
        res = ops[operateur](v.to_numpy(dtype="float64", na_value=np.nan), target)
    return pd.Series(res, index=obs.index, dtype="boolean").where(v.notna(), pd.NA)


# --------------------------------------------------------------------------------------------
# Référentiel


def normalise_region(region) -> str:
    """Code région INSEE sous forme de texte à deux caractères au moins (``28``, ``"1"`` -> ``"01"``)."""
    text = str(region).strip()
    if text.isdigit() and len(text) < 2:
        text = text.zfill(2)
    return text


def region_establishments(data: dict, region) -> pd.DataFrame:
    """Établissements de la région ``region`` (colonne ``region`` du référentiel), triés par FINESS.
    Calculés une fois par référentiel et par région (appelés par chaque étape, pour chaque année),
    puis copiés pour chaque appelant, qui peut les modifier."""
    etabs = data["etablissements"]
    reg = normalise_region(region)
    memo = _memo_for(etabs)
    key = ("etablissements-region", reg)
    if key not in memo:
        memo[key] = _region_establishments(etabs, reg)
    return memo[key].copy()


def _region_establishments(etabs: pd.DataFrame, reg: str) -> pd.DataFrame:
    out = etabs.loc[mask(etabs["region"].astype("string").str.strip() == reg)].copy()
    for col in ("mco", "ssr", "psy", "had"):
        if col not in out.columns:
            out[col] = pd.Series(pd.NA, index=out.index, dtype="boolean")
    if "specificite" not in out.columns:
        out["specificite"] = pd.Series(pd.NA, index=out.index, dtype="string")
    out = out.drop(columns=[c for c in ("_fichier", "_ligne") if c in out.columns])
    return out.sort_values("finess_geo", kind="mergesort").reset_index(drop=True)
