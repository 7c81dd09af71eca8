"""Contenu des fiches établissement (un ``dict`` par établissement, schéma de :mod:`analysis.publishing.fiches`).

Tout vient des résultats déjà calculés par les notebooks (:class:`analysis.indicators.results.Results`) :
ciblage et suivi de l'année N, historique des indicateurs sur les trois années précédentes (calculé en
mode veille, pour que l'historique existe même avant la signature d'un engagement). Les libellés
viennent du fichier de règles et les valeurs du formateur unique : une fiche affiche les mêmes textes
que le rapport (``valeur_texte``, ``cible``, libellés d'indicateurs, d'engagements et de risques).
"""

from __future__ import annotations

import pandas as pd

from ..indicators.engine import region_establishments
from .fmt import fmt_dec, fmt_pct, is_missing

HISTORY_YEARS = 3


def _truthy(v) -> bool:
    return v is not None and v is not pd.NA and not (isinstance(v, float) and pd.isna(v)) and bool(v)


def _restrict(frame: pd.DataFrame | None, finess: set) -> pd.DataFrame | None:
    """Rows of ``frame`` about the given establishments (national tables, one region's sheets)."""
    if frame is None or not len(frame):
        return frame
    return frame[frame["finess_geo"].isin(finess).fillna(False).astype(bool)]


def _group_records(records: list[dict], key: str) -> dict:
    """Records grouped by ``key`` in order of first appearance, missing keys left out."""
    out: dict = {}
    for r in records:
        k = r[key]
        if k is None or k is pd.NA or (isinstance(k, float) and k != k):
            continue
        out.setdefault(k, []).append(r)
    return out


def _records_by(frame: pd.DataFrame | None, key: str = "finess_geo") -> dict:
    if frame is None or not len(frame):
        return {}
    return _group_records(frame.to_dict("records"), key)


def _pct(v) -> str | None:
    return None if is_missing(v) else fmt_pct(v, 1)


def _none(v):
    return None if is_missing(v) else v


def build_fiches(tables: dict, rules, annee: int, region: str, results) -> list[dict]:
    """Une fiche par établissement de la région, à partir des résultats persistés ``results``."""
    etabs = region_establishments(tables, region).sort_values("finess_geo", kind="mergesort")
    ciblage, suivi, suivi_veille = results.ciblage, results.suivi, results.suivi_veille

    # History: displayed values of the previous years, with the formatter of the report.
    history: dict[tuple[str, str], dict[int, str]] = {}
    hist = results.suivi_historique
    if len(hist):
        hist = hist[hist["annee"].between(annee - HISTORY_YEARS, annee - 1)]
        for r in hist[["finess_geo", "indicateur", "annee", "valeur_texte", "valeur_num", "valeur"]].to_dict("records"):
            if is_missing(r["valeur"]) or r["valeur"] == "":
                continue
            history.setdefault((r["finess_geo"], r["indicateur"]), {})[int(r["annee"])] = r["valeur_texte"]

    own = set(etabs["finess_geo"].dropna().tolist())
    periods: dict[tuple[str, str], str] = {}
    eng = _restrict(tables.get("engagements"), own)
    if eng is not None:
        for r in eng.to_dict("records"):
            periods[(r["finess_geo"], r["engagement"])] = f"{r['annee_debut']}–{r['annee_fin']}"

    cib_by = _records_by(ciblage)
    sv_by = _records_by(suivi)
    veille_by = _records_by(suivi_veille)
    pa = _restrict(tables.get("plans_actions"), own)
    if pa is not None and len(pa):
        pa = pa.sort_values(["engagement", "echeance"], kind="mergesort")
    pa_by = _records_by(pa)
    es = _restrict(tables.get("esatis"), own)
    if es is not None and len(es):
        es = es.sort_values(["annee", "secteur"], kind="mergesort")
    es_by = _records_by(es)
    activity_flags = [(col, rules.label("activite", col) if col in rules.model.libelles.get("activite", {})
                       else col.upper()) for col in ("mco", "ssr", "psy", "had")]

    ctrl_by = _records_by(_restrict(getattr(results, "controle_qls", None), own))
    cfg = rules.controle_qls
    ind_ctrl = rules.indicator(cfg.indicateur) if cfg is not None else None

    out = []
    for e in etabs.to_dict("records"):
        f = e["finess_geo"]
        fiche = {
            "finess_geo": f,
            "finess_ej": e.get("finess_ej"),
            "raison_sociale": e.get("raison_sociale"),
            "departement": e.get("departement"),
            "categorie": e.get("categorie"),
            "statut": None if is_missing(e.get("statut")) else rules.value_label("etablissements", "statut", e["statut"]),
            "lits": None if pd.isna(e.get("lits")) else int(e["lits"]),
            "activites": [lab for col, lab in activity_flags if _truthy(e.get(col))],
            "specificite": None if is_missing(e.get("specificite")) else
            rules.value_label("etablissements", "specificite", e["specificite"]),
            "ciblage": [],
            "engagements": [],
            "plans_actions": [],
        }
        if f in cib_by:
            fiche["ciblage"] = [{"risque": rules.label("risque", r["risque"]), "motif": r["motif"]} for r in cib_by[f]]
        rows, signed = (sv_by[f], True) if f in sv_by else (veille_by.get(f), False)
        if rows is not None:
            for engagement, g in _group_records(rows, "engagement").items():
                inds = []
                for r in g:
                    inds.append({
                        "indicateur": r["libelle_indicateur"],
                        "code": r["indicateur"],
                        "valeur": r["valeur_texte"],
                        "cible": r.get("cible") or "",
                        "unite": None,  # valeurs déjà mises en forme, unité comprise
                        "statut": r["statut"],
                        "statut_libelle": rules.label("statut", r["statut"]),
                        "historique": history.get((f, r["indicateur"]), {}),
                    })
                fiche["engagements"].append({
                    "engagement": rules.label("engagement", engagement),
                    "code": engagement,
                    "periode": periods.get((f, engagement)) if signed else "non signé : suivi pour information",
                    "indicateurs": inds,
                })
        if f in pa_by:
            fiche["plans_actions"] = [
                {"engagement": rules.label("engagement", r["engagement"]), "action": r["action"],
                 "pilote": r.get("pilote"), "echeance": r.get("echeance"),
                 "statut": r["statut"], "statut_libelle": rules.value_label("plans_actions", "statut", r["statut"])}
                for r in pa_by[f]
            ]
        if f in ctrl_by:  # contrôle qualité du recueil QLS : verdict de chaque résultat contrôlé
            fiche["controle_qls"] = [
                {"annee": int(r["annee"]),
                 "secteur": rules.value_label(ind_ctrl.source, ind_ctrl.par, r["secteur"]) if ind_ctrl.par
                 else r["secteur"],
                 "n_dossiers": int(r["n_dossiers"]), "score_declare": _pct(r["score_declare"]),
                 "score_recalcule": _pct(r["score_recalcule"]),
                 "intervalle": None if is_missing(r["ic_bas"]) or is_missing(r["ic_haut"]) else
                 f"{fmt_dec(r['ic_bas'], 1)} – {fmt_dec(r['ic_haut'], 1)}",
                 "verdict": rules.label("verdict_controle", r["verdict"]), "verdict_code": r["verdict"],
                 "motif": r["motif"]}
                for r in ctrl_by[f]
            ]
        if f in es_by:
            fiche["experience_patient"] = [
                {"annee": int(r["annee"]), "secteur": r["secteur"], "score": _none(r.get("score")),
                 "classement": r.get("classement"), "evolution": r.get("evolution")}
                for r in es_by[f]
            ]
        out.append(fiche)
    return out


__all__ = ["build_fiches"]
