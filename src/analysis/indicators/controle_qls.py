"""Contrôle qualité du recueil QLS : score recalculé à partir des dossiers réaudités, verdict, masquage.

L'annexe qualité des CPOM confie aux médecins des délégations départementales de l'ARS le contrôle de
la qualité du recueil de l'indicateur QLS (qualité de la lettre de liaison à la sortie) : ils
réauditent un échantillon de dossiers d'un établissement ; un établissement qui a surcoté voit son
résultat invalidé (« non validé », NV, comme le publie la HAS). Tout est déclaré dans la rubrique
``controle_qls`` du fichier de règles (:class:`analysis.rules.model.ControleQls`) :

- **score d'un dossier** : 0 quand un critère indispensable (lettre retrouvée, datée du jour de la
  sortie) n'est pas rempli ; sinon ``100 × critères remplis / critères applicables`` (``NA`` hors du
  dénominateur ; les critères indispensables comptés avec ceux du contenu quand
  ``indispensables_dans_score`` vaut oui) ; un dossier est *conforme* quand son score vaut 100 ;
- **score recalculé** d'un établissement, secteur et campagne (``agregation``) : ``moyenne`` des scores
  des dossiers, intervalle t de Student (borné à 0–100 ; nul quand tous les dossiers ont le même
  score), ou ``dossiers_conformes`` : part des dossiers conformes, intervalle de Wilson ;
- **verdict** : ``non_evaluable`` quand il y a moins de ``dossiers_minimum`` dossiers ou aucun score
  déclaré à comparer ; ``surcotation`` quand le score déclaré dépasse la borne haute de l'intervalle de
  plus de ``verdict.marge`` points (au-delà de l'erreur d'échantillonnage) ; sinon ``concordant``.

Le masquage (:func:`apply_controle`) est appliqué **une fois**, à l'entrée des étapes de calcul
(:func:`analysis.indicators.results.stage_tables`) : dans la table de l'indicateur contrôlé (``qls``),
chaque résultat en surcotation perd son score, ses bornes et son effectif et reçoit ``_non_valide``
(le motif). Le moteur (:mod:`analysis.indicators.engine`) garde ce résultat comme dernière campagne
sans valeur : le ciblage ne l'utilise pas, le suivi le dit ``non_evaluable`` avec le motif, les
tendances l'excluent de la valeur régionale, les alertes l'ignorent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..publishing import fmt
from ..rules.model import ControleQls, Rules
from . import persist, stats
from .engine import mask, region_establishments, source_rows

NON_VALIDE = "_non_valide"  # colonne du motif d'invalidation dans la table contrôlée

CONCORDANT = "concordant"
SURCOTATION = "surcotation"
NON_EVALUABLE = "non_evaluable"

#: colonnes de ``controle_qls.csv`` (issue 14), dans cet ordre
CONTROLE_COLUMNS = ["finess_geo", "raison_sociale", "secteur", "annee", "score_declare", "score_recalcule", "ic_bas",
                    "ic_haut", "n_dossiers", "verdict", "motif"]
#: colonnes gardées en plus dans ``resultats/controle_qls.parquet``
EXTRA_COLUMNS = ["departement", "score_moyen", "part_conformes", "n_conformes", "n_echec_indispensable",
                 "controleurs"]
CRITERES_COLUMNS = ["critere", "libelle", "indispensable", "n_applicables", "n_non_conformes", "part_non_conformes"]


def _empty() -> pd.DataFrame:
    types = {"annee": "Int64", "n_dossiers": "Int64", "n_conformes": "Int64", "n_echec_indispensable": "Int64"}
    for c in ("score_declare", "score_recalcule", "ic_bas", "ic_haut", "score_moyen", "part_conformes"):
        types[c] = "Float64"
    return pd.DataFrame({c: pd.Series(dtype=types.get(c, "string")) for c in CONTROLE_COLUMNS + EXTRA_COLUMNS})


def _empty_criteres() -> pd.DataFrame:
    return pd.DataFrame({"critere": pd.Series(dtype="string"), "libelle": pd.Series(dtype="string"),
                         "indispensable": pd.Series(dtype="boolean"), "n_applicables": pd.Series(dtype="Int64"),
                         "n_non_conformes": pd.Series(dtype="Int64"),
                         "part_non_conformes": pd.Series(dtype="Float64")})


def group_keys(rules: Rules) -> list[str]:
    """Clé d'un résultat contrôlé : ``finess_geo, annee`` et la colonne ``par`` de l'indicateur (secteur)."""
    ind = rules.indicator(rules.controle_qls.indicateur)
    return ["finess_geo", "annee"] + ([ind.par] if ind.par else [])


def record_scores(dossiers: pd.DataFrame, c: ControleQls) -> pd.DataFrame:
    """Score (0–100) de chaque dossier : colonnes ``score``, ``conforme`` (score 100) et
    ``echec_indispensable`` ajoutées aux lignes de ``dossiers``."""
    d = dossiers.copy()
    crit_ok = pd.concat([mask(d[col]) for col in c.criteres_indispensables], axis=1).all(axis=1)
    met = pd.concat([(d[col].astype("string") == c.valeurs.conforme).fillna(False) for col in c.criteres], axis=1)
    app = pd.concat([(d[col].astype("string") != c.valeurs.non_applicable).fillna(False) & d[col].notna()
                     for col in c.criteres], axis=1)
    num = (met & app).sum(axis=1).astype("float64")
    den = app.sum(axis=1).astype("float64")
    if c.indispensables_dans_score:
        k = float(len(c.criteres_indispensables))
        num, den = num + k, den + k
    # sans critère applicable (et indispensables hors score) : lettre retrouvée et datée = score plein
    share = (num / den.where(den > 0)).fillna(1.0) * 100.0
    d["score"] = np.where(crit_ok.to_numpy(), share.to_numpy(), 0.0).round(10)
    d["conforme"] = d["score"] >= 100.0 - 1e-9
    d["echec_indispensable"] = ~crit_ok.to_numpy()
    return d


def _mean_interval(scores: np.ndarray, confidence: float) -> tuple[float, float, float]:
    n = len(scores)
    m = float(np.mean(scores))
    if n < 2:
        return m, float("nan"), float("nan")
    sd = float(np.std(scores, ddof=1))
    half = stats.t_ppf(0.5 + confidence / 2.0, n - 1) * sd / np.sqrt(n)
    return m, max(0.0, m - half), min(100.0, m + half)


def _pct(v) -> str:
    return fmt.fmt_pct(v, 1)


def _interval(lo, hi) -> str:
    if fmt.is_missing(lo) or fmt.is_missing(hi):
        return ""
    return f" [{fmt.fmt_dec(lo, 1)}\u00a0; {fmt.fmt_dec(hi, 1)}]"


def invalidation_motif(row) -> str:
    """Motif porté par un résultat non validé (suivi, fiches) : le contrôle, ses chiffres."""
    return (f"résultat non validé par le contrôle qualité du recueil (score déclaré {_pct(row['score_declare'])}, "
            f"score recalculé {_pct(row['score_recalcule'])}{_interval(row['ic_bas'], row['ic_haut'])}, "
            f"{fmt.fmt_num(row['n_dossiers'])} dossiers)")


def _verdict(row, c: ControleQls) -> tuple[str, str]:
    n = int(row["n_dossiers"])
    recal = f"score recalculé {_pct(row['score_recalcule'])}{_interval(row['ic_bas'], row['ic_haut'])}"
    if fmt.is_missing(row["score_declare"]):
        return NON_EVALUABLE, f"aucun score QLS déclaré pour cette campagne et ce secteur ({recal}, {n} dossiers)"
    if n < c.dossiers_minimum:
        return NON_EVALUABLE, (f"{n} dossier{'s' if n > 1 else ''} réaudité{'s' if n > 1 else ''}, moins que le "
                               f"minimum de {c.dossiers_minimum} : contrôle non concluant, score déclaré conservé")
    decl = float(row["score_declare"])
    hi = float(row["ic_haut"])
    marge = float(c.verdict.marge)
    if decl > hi + marge:
        return SURCOTATION, invalidation_motif(row)
    lo = float(row["ic_bas"])
    if decl < lo:
        return CONCORDANT, (f"score déclaré {_pct(decl)} sous l'intervalle du {recal} ({n} dossiers) : "
                            "sous-cotation, score déclaré conservé")
    return CONCORDANT, f"score déclaré {_pct(decl)} compatible avec le {recal} ({n} dossiers)"


def _declared(data: dict, rules: Rules) -> pd.DataFrame | None:
    c = rules.controle_qls
    ind = rules.indicator(c.indicateur)
    keys = group_keys(rules)
    src = source_rows(data, ind.source)
    if src is None:
        return None
    out = src[keys + [ind.colonne]].rename(columns={ind.colonne: "score_declare"})
    return out.drop_duplicates(keys, keep="last")


def controle_inputs(data: dict, rules: Rules, annee: int, region) -> list[str]:
    """Empreintes de ce que lit :func:`compute_controle` : dossiers réaudités jusqu'à N, résultats
    déclarés (source de l'indicateur contrôlé) et établissements de la région."""
    c = rules.controle_qls
    if c is None:
        return []
    etabs = region_establishments(data, region) if region is not None else data["etablissements"]
    d = source_rows(data, c.source)
    if d is not None:
        d = d.loc[(d["finess_geo"].isin(etabs["finess_geo"]) & mask(d["annee"] <= int(annee))).to_numpy()]
    return [persist.table_fingerprint(t) for t in (d, source_rows(data, rules.indicator(c.indicateur).source), etabs)]


def compute_controle(data: dict, rules: Rules, annee: int, region=None) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Résultats du contrôle (une ligne par établissement, secteur et campagne au plus tard en N) et
    critères les plus souvent non remplis (tous dossiers contrôlés de ces campagnes) ; ``None`` quand
    la rubrique ``controle_qls`` n'est pas déclarée ou qu'aucun fichier de dossiers n'a été fourni.

    ``region`` : établissements de la région seulement (``None`` : tous)."""
    c = rules.controle_qls
    if c is None or data.get(c.source) is None:
        return None
    keys = group_keys(rules)
    par = keys[2] if len(keys) > 2 else None
    d = source_rows(data, c.source)
    etabs = region_establishments(data, region) if region is not None else data["etablissements"]
    d = d.loc[d["finess_geo"].isin(etabs["finess_geo"]) & mask(d["annee"] <= int(annee))]
    if d.empty:
        return _empty(), _empty_criteres()
    d = record_scores(d, c)
    d = d.sort_values(keys + ["dossier"], kind="mergesort")
    conf = float(c.niveau_confiance)
    rows = []
    for key, g in d.groupby(keys, sort=True):
        s = g["score"].to_numpy(dtype="float64")
        n = len(s)
        mean, mlo, mhi = _mean_interval(s, conf)
        k = int(g["conforme"].sum())
        part = 100.0 * k / n
        wlo, whi = stats.wilson_interval(part, n, confidence=conf)
        ctrl = g["controleur"].dropna().astype(str).unique() if "controleur" in g.columns else []
        rec = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        rec.update(n_dossiers=n, score_moyen=mean, part_conformes=part, n_conformes=k,
                   n_echec_indispensable=int(g["echec_indispensable"].sum()),
                   controleurs=", ".join(sorted(ctrl)) or None)
        if c.agregation == "moyenne":
            rec.update(score_recalcule=mean, ic_bas=mlo, ic_haut=mhi)
        else:
            rec.update(score_recalcule=part, ic_bas=float(wlo), ic_haut=float(whi))
        rows.append(rec)
    out = pd.DataFrame(rows)
    decl = _declared(data, rules)
    if decl is not None:
        out = out.merge(decl, on=keys, how="left")
    else:
        out["score_declare"] = np.nan
    for col in ("score_recalcule", "ic_bas", "ic_haut", "score_moyen", "part_conformes", "score_declare"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64").round(6)
    verdicts = [_verdict(r, c) for r in out.to_dict("records")]
    out["verdict"] = [v for v, _ in verdicts]
    out["motif"] = [m for _, m in verdicts]
    out = out.merge(etabs[["finess_geo", "raison_sociale", "departement"]], on="finess_geo", how="left")
    if par and par != "secteur":
        out = out.rename(columns={par: "secteur"})
    out = out.reindex(columns=CONTROLE_COLUMNS + EXTRA_COLUMNS)
    out = out.sort_values(["annee", "secteur", "finess_geo"], kind="mergesort").reset_index(drop=True)
    out = _typed(out)
    return out, _criteria(d, c)


def _typed(out: pd.DataFrame) -> pd.DataFrame:
    base = _empty()
    for col in out.columns:
        t = base[col].dtype
        if str(t) == "string":
            out[col] = out[col].astype("object").where(out[col].notna(), None).astype("string")
        else:
            out[col] = pd.to_numeric(out[col], errors="coerce").astype(t)
    return out


def _criteria(d: pd.DataFrame, c: ControleQls) -> pd.DataFrame:
    """Par critère : dossiers où il s'applique, dossiers où il n'est pas rempli, part ; triés du plus
    souvent non rempli au moins souvent (ordre du fichier de règles à égalité)."""
    rows = []
    for col, lab in c.criteres_indispensables.items():
        v = d[col]
        rows.append((col, lab, True, int(v.notna().sum()), int((v == False).sum())))  # noqa: E712
    for col, lab in c.criteres.items():
        v = d[col].astype("string")
        app = v.notna() & (v != c.valeurs.non_applicable)
        rows.append((col, lab, False, int(app.sum()), int((app & (v == c.valeurs.non_conforme)).sum())))
    out = pd.DataFrame(rows, columns=CRITERES_COLUMNS[:-1])
    out["_ordre"] = range(len(out))
    out["part_non_conformes"] = (100.0 * out["n_non_conformes"] / out["n_applicables"].where(out["n_applicables"] > 0))
    out = out.sort_values(["part_non_conformes", "_ordre"], ascending=[False, True], kind="mergesort")
    out = out.drop(columns="_ordre").reset_index(drop=True)
    return out.astype({"critere": "string", "libelle": "string", "indispensable": "boolean",
                       "n_applicables": "Int64", "n_non_conformes": "Int64", "part_non_conformes": "Float64"})


def apply_controle(data: dict, rules: Rules, controle: pd.DataFrame | None) -> dict:
    """Tables des étapes de calcul : chaque résultat en ``surcotation`` de ``controle`` perd, dans la
    table de l'indicateur contrôlé, sa valeur, ses bornes et son effectif, et reçoit le motif
    d'invalidation dans ``_non_valide``. Les autres lignes et tables sont inchangées (mêmes objets) ;
    sans contrôle, ``data`` est rendu tel quel."""
    c = rules.controle_qls
    if c is None or controle is None:
        return data
    ind = rules.indicator(c.indicateur)
    table = data.get(ind.source)
    if table is None:
        return data
    keys = group_keys(rules)
    nv = controle.loc[controle["verdict"] == SURCOTATION]
    nv = nv.rename(columns={"secteur": keys[2]} if len(keys) > 2 else {})
    t = table.copy()
    t[NON_VALIDE] = pd.Series(pd.NA, index=t.index, dtype="string")
    if len(nv):
        motifs = {tuple(str(x) for x in k): invalidation_motif(r) for k, r in
                  zip(nv[keys].itertuples(index=False, name=None), nv.to_dict("records"))}
        tkeys = [tuple(str(x) for x in k) for k in t[keys].itertuples(index=False, name=None)]
        hit = np.array([k in motifs for k in tkeys], dtype=bool)
        if hit.any():
            t.loc[hit, NON_VALIDE] = [motifs[k] for k, h in zip(tkeys, hit) if h]
            for col in {ind.colonne, ind.ic_bas, ind.ic_haut, ind.effectif} - {None}:
                t.loc[hit, col] = pd.NA
    out = dict(data)
    out[ind.source] = t
    return out
