"""Contenu des fiches établissement (un ``dict`` par établissement, schéma de :mod:`analysis.fiches`).

Tout vient des mêmes fonctions que le rapport : ciblage et suivi de l'année N, historique des
indicateurs sur les trois années précédentes (calculé en mode veille, pour que l'historique existe
même avant la signature d'un engagement), plans d'actions et expérience patient.
"""

from __future__ import annotations

import pandas as pd

from ..indicators import ciblage as cib
from ..indicators import suivi as sv

PCT_INDICATORS_PREFIX = ("score_qls", "taux_formes", "conformite_plan_epidemies")
HISTORY_YEARS = 3


def _unit(indicateur: str) -> str | None:
    return "%" if str(indicateur).startswith(PCT_INDICATORS_PREFIX) else None


def _value(row) -> object:
    v = row.get("valeur")
    if isinstance(v, str) and v in ("oui", "non"):
        return v == "oui"
    num = row.get("valeur_num")
    if num is not None and not pd.isna(num):
        return float(num)
    v = row.get("valeur")
    if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NA or v == "":
        return None
    return str(v)


def _truthy(v) -> bool:
    return v is not None and v is not pd.NA and not (isinstance(v, float) and pd.isna(v)) and bool(v)


def _restrict(frame: pd.DataFrame | None, finess: set) -> pd.DataFrame | None:
    """Rows of ``frame`` about the given establishments (national tables, one region's sheets)."""
    if frame is None or not len(frame):
        return frame
    return frame[frame["finess_geo"].isin(finess).fillna(False).astype(bool)]


def _group_records(records: list[dict], key: str) -> dict:
    """``{k: g.to_dict("records") for k, g in frame.groupby(key, sort=False)}`` on records:
    groups in order of first appearance, rows in their order, missing keys left out."""
    out: dict = {}
    for r in records:
        k = r[key]
        if k is None or k is pd.NA or (isinstance(k, float) and k != k):
            continue
        out.setdefault(k, []).append(r)
    return out


def _records_by(frame: pd.DataFrame | None, key: str = "finess_geo") -> dict:
    """Records of ``frame`` by ``key`` (one ``to_dict`` for the whole table instead of one per group)."""
    if frame is None or not len(frame):
        return {}
    return _group_records(frame.to_dict("records"), key)


def build_fiches(tables: dict, rules: dict, annee: int, region: str) -> list[dict]:
    etabs = cib.region_establishments(tables, region).sort_values("finess_geo", kind="mergesort")
    ciblage = cib.compute_ciblage(tables, rules, annee, region)
    suivi = sv.compute_suivi(tables, rules, annee, region)

    # History: indicator values of the previous years, whatever the engagements then in force.
    veille = {k: v for k, v in tables.items() if k != "engagements"}
    # Establishments without an engagement in force still get their indicators, for information.
    suivi_veille = sv.compute_suivi(veille, rules, annee, region) if "engagements" in tables else suivi
    hist_frames = []
    for y in range(annee - HISTORY_YEARS, annee):
        h = sv.compute_suivi(veille, rules, y, region)
        if len(h):
            h = h[["finess_geo", "indicateur", "valeur", "valeur_num"]].copy()
            h["annee"] = y
            hist_frames.append(h)
    history: dict[tuple[str, str], dict[int, object]] = {}
    if hist_frames:
        hist = pd.concat(hist_frames, ignore_index=True)
        for r in hist.to_dict("records"):
            v = _value(r)
            if v is not None:
                history.setdefault((r["finess_geo"], r["indicateur"]), {})[int(r["annee"])] = v

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

    out = []
    for e in etabs.to_dict("records"):
        f = e["finess_geo"]
        acts = [lab for col, lab in (("mco", "MCO"), ("ssr", "SSR"), ("psy", "PSY"), ("had", "HAD"))
                if _truthy(e.get(col))]
        fiche = {
            "finess_geo": f,
            "finess_ej": e.get("finess_ej"),
            "raison_sociale": e.get("raison_sociale"),
            "departement": e.get("departement"),
            "categorie": e.get("categorie"),
            "statut": e.get("statut"),
            "lits": None if pd.isna(e.get("lits")) else int(e["lits"]),
            "activites": acts,
            "specificite": e.get("specificite"),
            "ciblage": [],
            "engagements": [],
            "plans_actions": [],
        }
        if f in cib_by:
            fiche["ciblage"] = [{"risque": r["risque"], "motif": r["motif"]} for r in cib_by[f]]
        rows, signed = (sv_by[f], True) if f in sv_by else (veille_by.get(f), False)
        if rows is not None:
            for engagement, g in _group_records(rows, "engagement").items():
                inds = []
                for r in g:
                    inds.append({
                        "indicateur": r.get("libelle_indicateur") or r["indicateur"],
                        "valeur": _value(r),
                        "cible": r.get("cible") or "",
                        "unite": _unit(r["indicateur"]),
                        "statut": r["statut"],
                        "historique": history.get((f, r["indicateur"]), {}),
                    })
                fiche["engagements"].append({
                    "engagement": engagement,
                    "periode": periods.get((f, engagement)) if signed else "non signé : suivi pour information",
                    "indicateurs": inds,
                })
        if f in pa_by:
            fiche["plans_actions"] = [
                {"engagement": r["engagement"], "action": r["action"], "pilote": r.get("pilote"),
                 "echeance": r.get("echeance"), "statut": r["statut"]}
                for r in pa_by[f]
            ]
        if f in es_by:
            fiche["experience_patient"] = [
                {"annee": int(r["annee"]), "secteur": r["secteur"], "score": r.get("score"),
                 "classement": r.get("classement"), "evolution": r.get("evolution")}
                for r in es_by[f]
            ]
        out.append(fiche)
    return out
