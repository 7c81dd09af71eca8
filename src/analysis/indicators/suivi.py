"""Suivi des engagements CPOM de l'année N (contrat de données, section 2).

Une ligne par indicateur de chaque engagement suivi l'année N (``annee_debut <= N <= annee_fin``).
Sans fichier ``engagements`` (source absente), c'est le **mode veille** : chaque établissement de la
région est suivi sur chaque engagement du fichier de règles (``is_monitoring_mode``).

Indicateurs (cibles et fenêtres lues dans ``rules["engagements"]``) :

- ``certification`` -> ``niveau_certification`` (niveau en vigueur au 31/12/N ; cible A ou B) ;
- ``lettre_liaison`` -> ``score_qls_mco`` / ``score_qls_ssr`` / ``score_qls_psy``, un par secteur
  détenu ; dernière campagne de la fenêtre N-1…N ; atteint si score >= 80 % ;
- ``signalement_esin`` -> ``responsable_connecte`` (atteint si connecté) et ``signalements``
  (``sans_cible``) ;
- ``prevention_ias`` -> ``taux_formes_<categorie>`` (un par catégorie déclarée l'année N, >= 90 %),
  ou une ligne ``taux_formes`` ``non_evaluable`` sans aucune catégorie ; ``audits_precautions``
  (>= 1) ; ``conformite_plan_epidemies`` (critères remplis / total >= 100 %).

Choix faits là où le contrat se tait :

- secteur détenu : drapeau ``mco`` / ``ssr`` / ``psy`` du référentiel à vrai ; un drapeau manquant
  est remplacé par la présence du secteur dans les données QLS de l'établissement (années <= N),
  ce qui couvre le cas « tous manquants » du contrat. Un établissement suivi sur la lettre de
  liaison sans aucun secteur identifié a une ligne ``score_qls`` ``non_evaluable`` ;
- un établissement exclu par sa spécificité garde ses lignes (valeurs affichées pour information)
  avec le statut ``non_concerne``, en mode veille comme avec des engagements signés ;
- catégories de personnel : codes normalisés (minuscules, sans accents : ``paramédical`` ->
  ``paramedical``) ; deux libellés qui se confondent sont additionnés ;
- taux et conformité comparés en nombres entiers (``formes × 100 >= cible × effectif``) : 90 % tout
  juste est atteint, sans erreur d'arrondi ;
- ``cible`` d'un engagement (surcharge de la cible par défaut) : une valeur simple s'applique à
  l'indicateur principal de l'engagement (niveaux « A ou B » pour la certification, pourcentage
  pour ``score_qls`` et ``taux_formes``) ; la forme ``indicateur=valeur; indicateur=valeur`` vise
  un indicateur précis (``audits_precautions=2; taux_formes=80`` ; ``score_qls_ssr=70``). Une cible
  illisible laisse la cible par défaut (signalé dans ``commentaire``) ;
- ``position_cible`` : position de l'intervalle du score QLS par rapport à la cible de la ligne ;
  ``evolution`` : classe IFAQ par rapport à la campagne précédente du même secteur.

``valeur`` est au format machine (point décimal ; ``oui`` / ``non`` pour un booléen) ; ``valeur_num``
en donne la forme numérique quand elle existe.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from . import stats
from .ciblage import (
    _esin_activity,
    _mask,
    certification_in_force,
    certification_levels,
    normalise_code,
    qls_last_two,
    qls_window,
    region_establishments,
    source,
    year_rows,
)

SUIVI_COLUMNS = ["finess_geo", "raison_sociale", "engagement", "indicateur", "valeur", "cible", "statut"]
EXTRA_COLUMNS = [
    "libelle_engagement",
    "libelle_indicateur",
    "secteur",
    "annee_donnee",
    "valeur_num",
    "ic_bas",
    "ic_haut",
    "position_cible",
    "evolution",
    "cible_source",
    "commentaire",
]
ALL_COLUMNS = SUIVI_COLUMNS + EXTRA_COLUMNS

ATTEINT = "atteint"
NON_ATTEINT = "non_atteint"
NON_EVALUABLE = "non_evaluable"
NON_CONCERNE = "non_concerne"
SANS_CIBLE = "sans_cible"
STATUTS = (ATTEINT, NON_ATTEINT, NON_EVALUABLE, NON_CONCERNE, SANS_CIBLE)

# Indicateur visé par une cible d'engagement donnée sans nom d'indicateur.
MAIN_INDICATOR = {
    "certification": "niveau_certification",
    "lettre_liaison": "score_qls",
    "prevention_ias": "taux_formes",
}

_DTYPES = {
    "finess_geo": "string",
    "raison_sociale": "string",
    "engagement": "string",
    "indicateur": "string",
    "valeur": "string",
    "cible": "string",
    "statut": "string",
    "libelle_engagement": "string",
    "libelle_indicateur": "string",
    "secteur": "string",
    "annee_donnee": "Int64",
    "valeur_num": "Float64",
    "ic_bas": "Float64",
    "ic_haut": "Float64",
    "position_cible": "string",
    "evolution": "string",
    "cible_source": "string",
    "commentaire": "string",
}


def is_monitoring_mode(data: dict) -> bool:
    """Vrai quand aucun fichier d'engagements n'est fourni : tout établissement est suivi (mode veille)."""
    return data is None or data.get("engagements") is None


# --------------------------------------------------------------------------------------------------
# Engagements suivis et cibles
# --------------------------------------------------------------------------------------------------
def followed_engagements(data: dict, rules: dict, annee: int, region) -> pd.DataFrame:
    """Engagements suivis l'année N : ``finess_geo, engagement, cible_engagement``.

    Mode veille : chaque établissement de la région × chaque engagement du fichier de règles.
    """
    annee = int(annee)
    etabs = region_establishments(data, region)
    engagements = list(rules["engagements"].keys())
    if is_monitoring_mode(data):
        fol = pd.MultiIndex.from_product(
            [etabs["finess_geo"].astype(str), engagements], names=["finess_geo", "engagement"]
        ).to_frame(index=False)
        fol["cible_engagement"] = pd.Series(pd.NA, index=fol.index, dtype="string")
    else:
        eng = data["engagements"]
        eng = eng.loc[eng["finess_geo"].isin(etabs["finess_geo"])]
        active = _mask(eng["annee_debut"] <= annee) & _mask(eng["annee_fin"] >= annee)
        eng = eng.loc[active & _mask(eng["engagement"].isin(engagements))]
        cible = eng["cible"] if "cible" in eng.columns else pd.Series(pd.NA, index=eng.index)
        fol = pd.DataFrame(
            {
                "finess_geo": eng["finess_geo"].astype(str).to_numpy(),
                "engagement": eng["engagement"].astype(str).to_numpy(),
                "cible_engagement": cible.astype("string").to_numpy(),
            }
        )
    fol = fol.astype({"finess_geo": "string", "engagement": "string", "cible_engagement": "string"})
    return fol.sort_values(["finess_geo", "engagement"], kind="mergesort").reset_index(drop=True)


def _parse_override(text) -> dict[str, str]:
    """``"85"`` -> ``{"": "85"}`` ; ``"audits_precautions=2; taux_formes=80"`` -> deux entrées."""
    if text is None or text is pd.NA or not str(text).strip():
        return {}
    text = str(text).strip()
    if "=" not in text:
        return {"": text}
    out = {}
    for part in re.split(r"[;\n]", text):
        if "=" in part:
            k, v = part.split("=", 1)
            out[normalise_code(k)] = v.strip()
    return out


def _override_for(text, engagement: str, indicator: str, base: str):
    """Texte de cible d'engagement visant ``indicator`` (code complet ou de base), sinon ``None``."""
    parsed = _parse_override(text)
    if not parsed:
        return None
    if indicator in parsed:
        return parsed[indicator]
    if base in parsed:
        return parsed[base]
    if "" in parsed and MAIN_INDICATOR.get(engagement) == base:
        return parsed[""]
    return None


def _parse_number(text) -> float | None:
    m = re.search(r"\d+(?:[.,]\d+)?", str(text))
    return float(m.group(0).replace(",", ".")) if m else None


def _numeric_targets(df: pd.DataFrame, engagement: str, base: str, default: float) -> pd.DataFrame:
    """Ajoute ``_cible`` (nombre), ``cible_source`` et ``_cible_illisible``.

    Cible des règles par défaut ; seules les cibles d'engagement distinctes sont lues (une fois
    chacune), puis reportées sur les lignes par correspondance.
    """
    df = df.copy()
    df["_cible"] = float(default)
    df["cible_source"] = "règles"
    df["_cible_illisible"] = False
    has = df["cible_engagement"].notna().to_numpy()
    if has.any():
        sub = df.loc[has, ["cible_engagement", "indicateur"]].astype(str)
        parsed = {}
        for text, ind in sub.drop_duplicates().itertuples(index=False):
            raw = _override_for(text, engagement, ind, base)
            num = _parse_number(raw) if raw is not None else None
            parsed[(text, ind)] = (num, raw is not None and num is None)
        keys = list(zip(sub["cible_engagement"], sub["indicateur"]))
        nums = pd.Series([parsed[k][0] for k in keys], index=sub.index, dtype="float64")
        bad = pd.Series([parsed[k][1] for k in keys], index=sub.index, dtype=bool)
        df.loc[has, "cible_source"] = np.where(nums.notna(), "engagement", "règles")
        df.loc[has, "_cible"] = nums.fillna(float(default)).to_numpy()
        df.loc[has, "_cible_illisible"] = bad.to_numpy()
    df["_cible"] = df["_cible"].astype("float64")
    return df


def _pct_text(target: float, at_least: bool = True) -> str:
    txt = stats.format_fr_number(target, None) + " %"
    return txt if not at_least else "≥ " + txt


# --------------------------------------------------------------------------------------------------
# Indicateurs par engagement (vectorisés sur les établissements suivis)
# --------------------------------------------------------------------------------------------------
def _certification(data, rules, annee, fol, etabs) -> pd.DataFrame:
    ind = "niveau_certification"
    default = [str(v).upper() for v in rules["engagements"]["certification"]["indicateurs"][ind]["cible"]]
    cert = certification_in_force(data, rules, annee, fol["finess_geo"])
    df = fol.merge(cert, on="finess_geo", how="left")
    df["indicateur"] = ind
    # Cibles : par défaut celles des règles ; une cible d'engagement donne ses lettres (ou libellés).
    niveau = df["niveau"].astype("string")
    df["cible"] = " ou ".join(default)
    df["cible_source"] = "règles"
    df["_cible_illisible"] = False
    met = _mask(niveau.isin(default)).to_numpy()
    has = df["cible_engagement"].notna().to_numpy()
    if has.any():
        parsed = {}
        for text in df.loc[has, "cible_engagement"].astype(str).unique():
            raw = _override_for(text, "certification", ind, ind)
            letters: list[str] = []
            if raw is not None:
                letters = re.findall(r"\b([A-E])\b", str(raw).upper())
                if not letters:
                    parts = [p for p in re.split(r"\s+ou\s+|[,;/]", str(raw)) if p.strip()]
                    letters = list(certification_levels(pd.Series(parts, dtype="string"), rules).dropna())
            parsed[text] = (tuple(sorted(set(letters))), raw is not None and not letters)
        for i in np.flatnonzero(has):  # lignes à cible personnalisée seulement (peu nombreuses)
            letters, bad = parsed[str(df.at[i, "cible_engagement"])]
            if letters:
                df.at[i, "cible"] = " ou ".join(letters)
                df.at[i, "cible_source"] = "engagement"
                met[i] = niveau.iat[i] is not pd.NA and niveau.iat[i] in letters
            df.at[i, "_cible_illisible"] = bad
    df["statut"] = np.where(niveau.isna(), NON_EVALUABLE, np.where(met, ATTEINT, NON_ATTEINT))
    df["valeur"] = niveau
    df["annee_donnee"] = df["date_decision"].dt.year.astype("Int64")
    date_txt = df["date_decision"].dt.strftime("%d/%m/%Y")
    df["commentaire"] = ("décision du " + date_txt).where(
        df["date_decision"].notna(), f"aucune décision de certification au 31/12/{annee}"
    )
    return df


def _held_sectors(data, rules, annee, fol, etabs) -> pd.DataFrame:
    """Couples (établissement, secteur) détenus : drapeau du référentiel, sinon présence dans QLS."""
    secteurs = [str(s) for s in rules["secteurs_qls"]["retenus"]]
    e = etabs.loc[etabs["finess_geo"].isin(fol["finess_geo"]), ["finess_geo"]].copy()
    flags = []
    for sec in secteurs:
        col = sec.lower()
        flag = etabs.set_index("finess_geo")[col] if col in etabs.columns else None
        f = pd.DataFrame({"finess_geo": e["finess_geo"].to_numpy(), "secteur": sec})
        f["detenu"] = (
            flag.reindex(e["finess_geo"]).astype("boolean").to_numpy()
            if flag is not None
            else pd.array([pd.NA] * len(e), dtype="boolean")
        )
        flags.append(f)
    held = pd.concat(flags, ignore_index=True) if flags else pd.DataFrame(columns=["finess_geo", "secteur", "detenu"])
    qls = source(data, "qls")
    if qls is not None:
        q = qls.loc[_mask(qls["annee"] <= int(annee)) & qls["finess_geo"].isin(fol["finess_geo"])]
        corr = {str(k).upper(): str(v) for k, v in rules["secteurs_qls"]["correspondance"].items()}
        sect = q["secteur"].astype("string").str.strip().str.upper()
        present = pd.DataFrame(
            {"finess_geo": q["finess_geo"].astype("string"), "secteur": sect.map(lambda v: corr.get(v, v))}
        ).drop_duplicates()
        present["present"] = True
        held = held.merge(present, on=["finess_geo", "secteur"], how="left")
        held["present"] = held["present"].astype("boolean").fillna(False)
    else:
        held["present"] = False
    detenu = held["detenu"].astype("boolean")
    is_held = detenu.fillna(False).astype(bool) | (detenu.isna() & held["present"].astype(bool))
    return held.loc[is_held.to_numpy(), ["finess_geo", "secteur"]].reset_index(drop=True)


def _lettre_liaison(data, rules, annee, fol, etabs) -> pd.DataFrame:
    cfg = rules["engagements"]["lettre_liaison"]["indicateurs"]["score_qls"]
    fenetre = int(cfg["fenetre_annees"])
    first, last = qls_window(annee, fenetre)
    secteurs = [str(s) for s in rules["secteurs_qls"]["retenus"]]
    held = _held_sectors(data, rules, annee, fol, etabs)
    rows = fol.merge(held, on="finess_geo", how="left")
    rows["indicateur"] = ("score_qls_" + rows["secteur"].str.lower()).fillna("score_qls")
    rows = _numeric_targets(rows, "lettre_liaison", "score_qls", float(cfg["cible"]))
    q = qls_last_two(data, rules, annee, fenetre, secteurs, fol["finess_geo"])
    df = rows.merge(q, on=["finess_geo", "secteur"], how="left")
    score = df["score"].astype("Float64")
    met = _mask(score >= df["_cible"])
    df["statut"] = np.where(score.isna(), NON_EVALUABLE, np.where(met, ATTEINT, NON_ATTEINT))
    # Aucun secteur détenu alors que le référentiel renseigne les trois drapeaux (tous faux) :
    # l'établissement n'est pas concerné par la lettre de liaison (ex. HAD seule).
    flags = etabs.set_index("finess_geo").reindex(columns=[s.lower() for s in secteurs])
    none_held = flags.notna().all(axis=1) & ~flags.fillna(False).astype(bool).any(axis=1)
    no_sector_known = df["secteur"].isna() & _mask(df["finess_geo"].map(none_held))
    df.loc[no_sector_known.to_numpy(), "statut"] = NON_CONCERNE
    df["valeur_num"] = score
    df["valeur"] = score.map(stats.format_machine, na_action="ignore").astype("string")
    df["cible"] = df["_cible"].map(_pct_text)
    df["annee_donnee"] = df["annee"].astype("Int64")
    df["position_cible"] = stats.position_vs_target(df["ic_bas"], df["ic_haut"], df["_cible"])
    df["evolution"] = stats.evolution_ifaq(
        df["ic_bas_precedent"], df["ic_haut_precedent"], df["ic_bas"], df["ic_haut"]
    )
    n_txt = df["n_dossiers"].map(lambda n: f", {stats.format_fr_number(n)} dossiers", na_action="ignore")
    comment = ("campagne " + df["annee"].astype("string") + n_txt.fillna("").astype("string")).astype("string")
    missing = "aucune campagne QLS " + df["secteur"].fillna("").astype("string") + f" entre {first} et {last}"
    comment = comment.where(score.notna(), missing)
    comment = comment.where(
        df["secteur"].notna(), "aucun secteur MCO, SSR ou PSY identifié (référentiel et données QLS)"
    )
    comment = comment.where(~no_sector_known, "aucun secteur MCO, SSR ou PSY détenu (référentiel)")
    df["commentaire"] = comment
    return df


def _signalement_esin(data, rules, annee, fol, etabs) -> pd.DataFrame:
    cfg = rules["engagements"]["signalement_esin"]["indicateurs"]
    m = _esin_activity(data, annee, fol["finess_geo"])
    base = fol.merge(m, on="finess_geo", how="left")
    # Responsable du signalement connecté
    r = base.copy()
    r["indicateur"] = "responsable_connecte"
    conn = r["responsable_connecte"].astype("boolean")
    want = bool(cfg["responsable_connecte"]["cible"])
    r["statut"] = np.where(conn.isna(), NON_EVALUABLE, np.where(_mask(conn == want), ATTEINT, NON_ATTEINT))
    r["valeur"] = conn.map({True: "oui", False: "non"}, na_action="ignore").astype("string")
    r["valeur_num"] = conn.astype("Float64")
    r["cible"] = "connecté" if want else "non connecté"
    r["cible_source"] = "règles"
    r["annee_donnee"] = pd.Series(annee, index=r.index, dtype="Int64").where(conn.notna())
    r["commentaire"] = pd.Series(pd.NA, index=r.index, dtype="string").where(
        conn.notna(), f"aucune donnée e-SIN en {annee}"
    )
    # Nombre de signalements (sans cible par défaut ; une cible des règles serait un minimum)
    s = base.copy()
    s["indicateur"] = "signalements"
    sig = s["signalements"].astype("Float64")
    target = cfg["signalements"].get("cible")
    if target is None:
        s["statut"] = np.where(sig.isna(), NON_EVALUABLE, SANS_CIBLE)
        s["cible"] = ""
    else:
        s["statut"] = np.where(sig.isna(), NON_EVALUABLE, np.where(_mask(sig >= float(target)), ATTEINT, NON_ATTEINT))
        s["cible"] = "≥ " + stats.format_fr_number(float(target), None)
    s["cible_source"] = "règles"
    s["valeur_num"] = sig
    s["valeur"] = s["signalements"].map(stats.format_machine, na_action="ignore").astype("string")
    s["annee_donnee"] = pd.Series(annee, index=s.index, dtype="Int64").where(sig.notna())
    sej = s["sejours"].astype("Float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = sig / sej.where(sej > 0) * 10_000
    comment = pd.Series(
        [
            f"pour {stats.format_fr_number(n)} séjours, soit {stats.format_fr_number(t, 1)} pour 10 000 séjours"
            if pd.notna(n) and pd.notna(t)
            else (f"pour {stats.format_fr_number(n)} séjours" if pd.notna(n) else "activité non renseignée")
            for n, t in zip(sej, rate)
        ],
        index=s.index,
        dtype="string",
    )
    s["commentaire"] = comment.where(sig.notna(), f"aucune donnée e-SIN en {annee}")
    return pd.concat([r, s], ignore_index=True)


def _prevention_ias(data, rules, annee, fol, etabs) -> pd.DataFrame:
    cfg = rules["engagements"]["prevention_ias"]["indicateurs"]
    finess = fol["finess_geo"]
    parts = []
    # Taux de personnel formé, par catégorie
    f = year_rows(data, "formation", annee, finess)
    if f is not None and len(f):
        f = f.assign(code=f["categorie_personnel"].map(normalise_code))
        f = f.loc[f["code"] != ""]
        g = f.groupby(["finess_geo", "code"], as_index=False, sort=True).agg(
            effectif=("effectif", "sum"), formes=("formes", "sum")
        )
        g["indicateur"] = "taux_formes_" + g["code"]
    else:
        g = pd.DataFrame(columns=["finess_geo", "code", "effectif", "formes", "indicateur"])
    t = fol.merge(g, on="finess_geo", how="left")
    t["indicateur"] = t["indicateur"].fillna("taux_formes")
    t = _numeric_targets(t, "prevention_ias", "taux_formes", float(cfg["taux_formes"]["cible"]))
    eff = pd.to_numeric(t["effectif"], errors="coerce").astype("Float64")
    frm = pd.to_numeric(t["formes"], errors="coerce").astype("Float64")
    ok = eff.notna() & frm.notna() & (eff > 0)
    rate = (frm / eff.where(ok) * 100).astype("Float64")
    met = _mask(frm * 100 >= t["_cible"] * eff)
    t["statut"] = np.where(~_mask(ok), NON_EVALUABLE, np.where(met, ATTEINT, NON_ATTEINT))
    t["valeur_num"] = rate
    t["valeur"] = rate.map(lambda x: stats.format_machine(round(x, 2)), na_action="ignore").astype("string")
    t["cible"] = t["_cible"].map(_pct_text)
    t["secteur"] = pd.NA
    t["annee_donnee"] = pd.Series(annee, index=t.index, dtype="Int64").where(_mask(ok))
    t["commentaire"] = pd.Series(
        [
            f"{stats.format_fr_number(a)} {'formés' if a >= 2 else 'formé'} sur {stats.format_fr_number(b)}"
            if pd.notna(a) and pd.notna(b)
            else f"aucune catégorie de personnel déclarée en {annee}"
            for a, b in zip(frm, eff)
        ],
        index=t.index,
        dtype="string",
    )
    parts.append(t)
    # Audits sur les précautions standard et complémentaires
    a = year_rows(data, "audits", annee, finess)
    a = a[["finess_geo", "audits_total", "audits_precautions"]] if a is not None else pd.DataFrame(
        columns=["finess_geo", "audits_total", "audits_precautions"]
    )
    au = fol.merge(a, on="finess_geo", how="left")
    au["indicateur"] = "audits_precautions"
    au = _numeric_targets(au, "prevention_ias", "audits_precautions", float(cfg["audits_precautions"]["cible"]))
    nb = pd.to_numeric(au["audits_precautions"], errors="coerce").astype("Float64")
    au["statut"] = np.where(nb.isna(), NON_EVALUABLE, np.where(_mask(nb >= au["_cible"]), ATTEINT, NON_ATTEINT))
    au["valeur_num"] = nb
    au["valeur"] = nb.map(stats.format_machine, na_action="ignore").astype("string")
    au["cible"] = "≥ " + au["_cible"].map(lambda v: stats.format_fr_number(v, None))
    au["annee_donnee"] = pd.Series(annee, index=au.index, dtype="Int64").where(nb.notna())
    tot = pd.to_numeric(au["audits_total"], errors="coerce")
    au["commentaire"] = pd.Series(
        [
            f"sur {stats.format_fr_number(x)} {'audits' if x >= 2 else 'audit'} réalisés" if pd.notna(x) else pd.NA
            for x in tot
        ],
        index=au.index,
        dtype="string",
    ).where(nb.notna(), f"aucune donnée d'audit en {annee}")
    parts.append(au)
    # Conformité du plan local de maîtrise des épidémies
    p = year_rows(data, "plan_epidemies", annee, finess)
    p = p[["finess_geo", "criteres_remplis", "criteres_total"]] if p is not None else pd.DataFrame(
        columns=["finess_geo", "criteres_remplis", "criteres_total"]
    )
    pl = fol.merge(p, on="finess_geo", how="left")
    pl["indicateur"] = "conformite_plan_epidemies"
    pl = _numeric_targets(
        pl, "prevention_ias", "conformite_plan_epidemies", float(cfg["conformite_plan_epidemies"]["cible"])
    )
    rem = pd.to_numeric(pl["criteres_remplis"], errors="coerce").astype("Float64")
    tot = pd.to_numeric(pl["criteres_total"], errors="coerce").astype("Float64")
    okp = rem.notna() & tot.notna() & (tot > 0)
    pct = (rem / tot.where(okp) * 100).astype("Float64")
    metp = _mask(rem * 100 >= pl["_cible"] * tot)
    pl["statut"] = np.where(~_mask(okp), NON_EVALUABLE, np.where(metp, ATTEINT, NON_ATTEINT))
    pl["valeur_num"] = pct
    pl["valeur"] = pct.map(lambda x: stats.format_machine(round(x, 2)), na_action="ignore").astype("string")
    pl["cible"] = pl["_cible"].map(lambda v: _pct_text(v, at_least=v < 100))
    pl["annee_donnee"] = pd.Series(annee, index=pl.index, dtype="Int64").where(_mask(okp))
    pl["commentaire"] = pd.Series(
        [
            f"{stats.format_fr_number(x)} critères remplis sur {stats.format_fr_number(y)}"
            if pd.notna(x) and pd.notna(y)
            else f"aucune grille d'autoévaluation en {annee}"
            for x, y in zip(rem, tot)
        ],
        index=pl.index,
        dtype="string",
    )
    parts.append(pl)
    return pd.concat(parts, ignore_index=True)


_BUILDERS = {
    "certification": _certification,
    "lettre_liaison": _lettre_liaison,
    "signalement_esin": _signalement_esin,
    "prevention_ias": _prevention_ias,
}


def _empty_suivi() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=_DTYPES[c]) for c in ALL_COLUMNS})


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Types de sortie stables (texte ``string``, entiers ``Int64``, nombres ``Float64``)."""
    df = df.copy()
    for c in df.columns:
        t = _DTYPES.get(c)
        if t is None:
            continue
        if t == "string":
            df[c] = df[c].astype("object").where(df[c].notna(), None).astype("string")
        else:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype(t)
    return df


def _indicator_label(rules: dict, engagement: str, indicator: str) -> str:
    inds = rules["engagements"][engagement]["indicateurs"]
    if indicator in inds:
        return str(inds[indicator].get("libelle", indicator))
    for base, cfg in inds.items():
        if indicator.startswith(base + "_"):
            suffix = indicator[len(base) + 1 :]
            suffix = suffix.upper() if base == "score_qls" else suffix.replace("_", " ")
            return f"{cfg.get('libelle', base)} ({suffix})"
    return indicator


def compute_suivi(data: dict, rules: dict, annee: int, region) -> pd.DataFrame:
    """Suivi des engagements de l'année N pour la région.

    Colonnes du contrat d'abord : ``finess_geo, raison_sociale, engagement, indicateur, valeur,
    cible, statut`` ; puis ``libelle_engagement, libelle_indicateur, secteur, annee_donnee,
    valeur_num, ic_bas, ic_haut, position_cible, evolution, cible_source, commentaire``. Triées par
    (finess_geo, engagement, indicateur).
    """
    annee = int(annee)
    etabs = region_establishments(data, region)
    fol = followed_engagements(data, rules, annee, region)
    if fol.empty:
        return _empty_suivi()
    frames = []
    for engagement, sub in fol.groupby("engagement", sort=True):
        builder = _BUILDERS.get(str(engagement))
        if builder is None:
            continue
        df = builder(data, rules, annee, sub.reset_index(drop=True), etabs)
        df["engagement"] = str(engagement)
        # Spécificités exclues : non concerné (valeurs gardées pour information)
        excl = list(rules["engagements"][str(engagement)].get("specificites_exclues") or [])
        spec = df[["finess_geo"]].merge(etabs[["finess_geo", "specificite"]], on="finess_geo", how="left")
        spec = spec["specificite"].astype("string")
        nc = _mask(spec.isin(excl)).to_numpy()
        if nc.any():
            df.loc[nc, "statut"] = NON_CONCERNE
            df.loc[nc, "commentaire"] = "non concerné (spécificité " + spec[nc].astype(str).to_numpy() + ")"
        if "_cible_illisible" in df.columns:
            bad = _mask(pd.Series(df["_cible_illisible"], index=df.index, dtype="boolean")).to_numpy()
            if bad.any():
                prev = df.loc[bad, "commentaire"].astype("string").fillna("")
                df.loc[bad, "commentaire"] = (
                    prev.where(prev == "", prev + " ; ") + "cible du CPOM illisible, cible par défaut appliquée"
                ).to_numpy()
        df["libelle_engagement"] = str(rules["engagements"][str(engagement)].get("libelle", engagement))
        frames.append(_typed(df.reindex(columns=[c for c in ALL_COLUMNS if c != "raison_sociale"])))
    out = pd.concat(frames, ignore_index=True)
    labels = {
        (e, i): _indicator_label(rules, e, i)
        for e, i in out[["engagement", "indicateur"]].drop_duplicates().itertuples(index=False)
    }
    out["libelle_indicateur"] = [labels[(e, i)] for e, i in zip(out["engagement"], out["indicateur"])]
    out = out.merge(etabs[["finess_geo", "raison_sociale"]], on="finess_geo", how="left")
    out = _typed(out[ALL_COLUMNS])
    out["cible"] = out["cible"].fillna("")
    out = out.sort_values(["finess_geo", "engagement", "indicateur"], kind="mergesort")
    return out.reset_index(drop=True)


def summarise_suivi(suivi_df: pd.DataFrame) -> pd.DataFrame:
    """Synthèse par (engagement, indicateur) : effectifs par statut et part atteinte.

    ``part_atteinte`` (en %) = ``atteint / (atteint + non_atteint)`` : parmi les lignes évaluables,
    hors ``non_evaluable``, ``non_concerne`` et ``sans_cible`` ; manquante sans ligne évaluable.
    """
    cols = [
        "engagement",
        "indicateur",
        "n_suivis",
        "n_evaluables",
        "n_atteints",
        "n_non_atteints",
        "n_non_evaluables",
        "n_non_concernes",
        "n_sans_cible",
        "part_atteinte",
    ]
    if suivi_df is None or suivi_df.empty:
        return pd.DataFrame({c: pd.Series(dtype="string" if c in cols[:2] else "Int64") for c in cols}).astype(
            {"part_atteinte": "Float64"}
        )
    counts = pd.crosstab([suivi_df["engagement"], suivi_df["indicateur"]], suivi_df["statut"])
    counts = counts.reindex(columns=list(STATUTS), fill_value=0)
    out = pd.DataFrame(
        {
            "n_suivis": counts.sum(axis=1),
            "n_evaluables": counts[ATTEINT] + counts[NON_ATTEINT],
            "n_atteints": counts[ATTEINT],
            "n_non_atteints": counts[NON_ATTEINT],
            "n_non_evaluables": counts[NON_EVALUABLE],
            "n_non_concernes": counts[NON_CONCERNE],
            "n_sans_cible": counts[SANS_CIBLE],
        }
    ).astype("Int64")
    ev = out["n_evaluables"].astype("Float64")
    out["part_atteinte"] = (out["n_atteints"].astype("Float64") / ev.where(ev > 0) * 100).astype("Float64")
    out = out.reset_index().sort_values(["engagement", "indicateur"], kind="mergesort")
    out = out.astype({"engagement": "string", "indicateur": "string"})
    return out[cols].reset_index(drop=True)
