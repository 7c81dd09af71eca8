"""Ciblage régional des établissements (contrat de données, section 2).

Trois risques, tous les seuils venant du fichier de règles (``rules["ciblage"]``) :

- ``infectieux`` : *non déclarant* (signalements e-SIN de l'année N au plus égaux à
  ``signalements_non_declarant``, 0 par défaut) ou *faiblement déclarant* (``P(X <= signalements)``
  pour ``X ~ Poisson(séjours × taux régional)`` sous ``seuil_p_poisson``). Sans activité, seule la
  règle *non déclarant* s'applique. Un établissement qui remplit les deux conditions n'a qu'une ligne,
  au motif *non déclarant* (complété de l'attendu et de la probabilité).
- ``management_qualite`` : niveau de certification en vigueur l'année N (dernière décision datée au
  plus tard le 31/12/N) parmi ``niveaux_cibles`` (E).
- ``rupture_parcours`` : un score QLS de la dernière campagne de la fenêtre N-1…N strictement
  inférieur au seuil, dans les secteurs retenus ; la dernière campagne s'entend **par secteur**
  (les campagnes MCO, SSR et PSY n'ont pas toujours lieu la même année). Un établissement ciblé sur
  plusieurs secteurs n'a qu'une ligne : le motif cite chaque secteur, ``valeur`` est le plus bas
  score. Les spécificités exclues ne sont pas concernées.

Une source absente du dictionnaire ``data`` ne cible personne sur le risque correspondant.

Le module rassemble aussi les aides communes au suivi et aux tendances : établissements d'une région,
niveau de certification en vigueur, dernière campagne QLS d'une fenêtre et intervalles des scores.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

import numpy as np
import pandas as pd

from . import stats

CIBLAGE_COLUMNS = ["finess_geo", "raison_sociale", "departement", "risque", "motif", "valeur"]
RISQUES = ("infectieux", "management_qualite", "rupture_parcours")

ENTREE = "entrée"
SORTIE = "sortie"


# --------------------------------------------------------------------------------------------------
# Aides communes
# --------------------------------------------------------------------------------------------------
def normalise_region(region) -> str:
    """Code région INSEE sous forme de texte à deux caractères au moins (``28``, ``"1"`` -> ``"01"``)."""
    text = str(region).strip()
    if text.isdigit() and len(text) < 2:
        text = text.zfill(2)
    return text


def normalise_code(text) -> str:
    """Code lisible par une machine : minuscules, sans accents, ``_`` entre les mots."""
    if text is None or text is pd.NA:
        return ""
    t = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii")
    t = "".join(ch if ch.isalnum() else "_" for ch in t.strip().lower())
    while "__" in t:
        t = t.replace("__", "_")
    return t.strip("_")


def source(data: dict, name: str) -> pd.DataFrame | None:
    """Table nettoyée ``name`` ou ``None`` quand la source est absente."""
    df = data.get(name) if data is not None else None
    if df is None:
        return None
    return df


def _mask(s: pd.Series) -> pd.Series:
    """Masque booléen sans valeurs manquantes (manquant -> faux)."""
    return s.fillna(False).astype(bool)


def region_establishments(data: dict, region) -> pd.DataFrame:
    """Établissements de la région ``region`` (colonne ``region`` du référentiel), triés par FINESS."""
    etabs = data["etablissements"]
    reg = normalise_region(region)
    out = etabs.loc[_mask(etabs["region"].astype("string").str.strip() == reg)].copy()
    for col in ("mco", "ssr", "psy", "had"):
        if col not in out.columns:
            out[col] = pd.Series(pd.NA, index=out.index, dtype="boolean")
    if "specificite" not in out.columns:
        out["specificite"] = pd.Series(pd.NA, index=out.index, dtype="string")
    out = out.drop(columns=[c for c in ("_fichier", "_ligne") if c in out.columns])
    return out.sort_values("finess_geo", kind="mergesort").reset_index(drop=True)


def _restrict(df: pd.DataFrame, finess: Iterable[str] | None) -> pd.DataFrame:
    if finess is None:
        return df
    return df.loc[df["finess_geo"].isin(pd.Index(finess))]


def year_rows(data: dict, name: str, annee: int, finess: Iterable[str] | None = None) -> pd.DataFrame | None:
    """Lignes de l'année ``annee`` d'une source annuelle (``None`` si la source est absente)."""
    df = source(data, name)
    if df is None:
        return None
    df = _restrict(df, finess)
    return df.loc[_mask(df["annee"] == annee)].drop(
        columns=[c for c in ("_fichier", "_ligne") if c in df.columns]
    )


def certification_levels(series: pd.Series, rules: dict) -> pd.Series:
    """Niveau A…E d'une colonne de décisions (lettres ou libellés V2020, via le fichier de règles)."""
    cert = rules["certification"]
    valid = [str(v).upper() for v in cert["niveaux_valides"]]
    corr = {normalise_code(k): str(v).upper() for k, v in cert["correspondance_niveaux"].items()}
    text = series.astype("string").str.strip()
    upper = text.str.upper()
    mapped = text.map(lambda v: corr.get(normalise_code(v)) if v is not pd.NA else pd.NA, na_action="ignore")
    out = upper.where(_mask(upper.isin(valid)), mapped.astype("string"))
    return out.astype("string")


def certification_in_force(
    data: dict, rules: dict, annee: int, finess: Iterable[str] | None = None
) -> pd.DataFrame:
    """Niveau de certification en vigueur l'année N : dernière décision datée au plus tard le 31/12/N.

    Rend ``finess_geo``, ``niveau`` (A…E), ``date_decision`` — une ligne par établissement ayant au
    moins une décision à cette date.
    """
    cols = ["finess_geo", "niveau", "date_decision"]
    cert = source(data, "certification")
    if cert is None:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(cols, ["string", "string", "datetime64[ns]"])})
    cert = _restrict(cert, finess)
    limit = pd.Timestamp(year=int(annee) + 1, month=1, day=1)  # strictement avant le 1er janvier N+1
    dates = pd.to_datetime(cert["date_decision"])
    cert = cert.loc[_mask(dates < limit)]
    cert = cert.sort_values(["finess_geo", "date_decision"], kind="mergesort")
    latest = cert.drop_duplicates("finess_geo", keep="last")
    out = pd.DataFrame(
        {
            "finess_geo": latest["finess_geo"].astype("string"),
            "niveau": certification_levels(latest["niveau"], rules),
            "date_decision": pd.to_datetime(latest["date_decision"]),
        }
    )
    return out.reset_index(drop=True)


def _qls_table(data: dict, rules: dict) -> pd.DataFrame | None:
    q = source(data, "qls")
    if q is None:
        return None
    cols = ["finess_geo", "annee", "secteur", "score", "n_dossiers", "ic_bas", "ic_haut"]
    q = q.reindex(columns=cols).copy()
    corr = {str(k).upper(): str(v) for k, v in rules["secteurs_qls"]["correspondance"].items()}
    sect = q["secteur"].astype("string").str.strip().str.upper()
    q["secteur"] = sect.map(lambda v: corr.get(v, v), na_action="ignore").astype("string")
    for c in ("score", "ic_bas", "ic_haut"):
        q[c] = pd.to_numeric(q[c], errors="coerce").astype("Float64")
    q["n_dossiers"] = pd.to_numeric(q["n_dossiers"], errors="coerce").astype("Int64")
    return q


def qls_window(annee: int, fenetre: int) -> tuple[int, int]:
    """Années de la fenêtre (``fenetre`` années se terminant en N) : 2 -> (N-1, N)."""
    return int(annee) - int(fenetre) + 1, int(annee)


def latest_qls(
    data: dict,
    rules: dict,
    annee: int,
    fenetre: int,
    secteurs: Iterable[str] | None = None,
    finess: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Dernière campagne QLS de chaque (établissement, secteur) dans la fenêtre N-fenetre+1…N.

    Rend ``finess_geo``, ``annee``, ``secteur``, ``score``, ``n_dossiers``, ``ic_bas``, ``ic_haut``
    (intervalle fourni, sinon Wilson calculé à partir de ``n_dossiers``), ``source_ic``.
    """
    q = _qls_table(data, rules)
    if q is None:
        return qls_intervals(_empty_qls(), rules)
    q = _restrict(q, finess)
    first, last = qls_window(annee, fenetre)
    keep = _mask(q["annee"].between(first, last)) & q["score"].notna()
    if secteurs is not None:
        keep &= _mask(q["secteur"].isin(list(secteurs)))
    q = q.loc[keep].sort_values(["finess_geo", "secteur", "annee"], kind="mergesort")
    q = q.drop_duplicates(["finess_geo", "secteur"], keep="last").reset_index(drop=True)
    return qls_intervals(q, rules)


def _empty_qls() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "finess_geo": pd.Series(dtype="string"),
            "annee": pd.Series(dtype="Int64"),
            "secteur": pd.Series(dtype="string"),
            "score": pd.Series(dtype="Float64"),
            "n_dossiers": pd.Series(dtype="Int64"),
            "ic_bas": pd.Series(dtype="Float64"),
            "ic_haut": pd.Series(dtype="Float64"),
        }
    )


def qls_intervals(q: pd.DataFrame, rules: dict) -> pd.DataFrame:
    """Complète ``ic_bas`` / ``ic_haut`` : fournis si les deux bornes existent, sinon Wilson.

    Le niveau de confiance vient de ``rules["statistiques"]["niveau_confiance"]``. ``source_ic`` vaut
    ``"fourni"``, ``"Wilson"`` ou manquant (ni bornes ni nombre de dossiers).
    """
    q = q.copy()
    conf = float(rules["statistiques"]["niveau_confiance"])
    given = q["ic_bas"].notna() & q["ic_haut"].notna()
    lo, hi = wilson_columns(q["score"], q["n_dossiers"], conf)
    q["ic_bas"] = q["ic_bas"].astype("Float64").where(given, lo)
    q["ic_haut"] = q["ic_haut"].astype("Float64").where(given, hi)
    src = pd.Series(pd.NA, index=q.index, dtype="string")
    src[given.to_numpy()] = "fourni"
    src[(~given & lo.notna()).to_numpy()] = "Wilson"
    q["source_ic"] = src
    return q


def wilson_columns(score: pd.Series, n: pd.Series, confidence: float) -> tuple[pd.Series, pd.Series]:
    lo, hi = stats.wilson_interval(
        pd.Series(score, dtype="Float64"), pd.Series(n, dtype="Float64"), confidence=confidence
    )
    return lo.astype("Float64"), hi.astype("Float64")


# --------------------------------------------------------------------------------------------------
# Taux régional
# --------------------------------------------------------------------------------------------------
def _esin_activity(data: dict, annee: int, finess) -> pd.DataFrame:
    """Signalements de l'année N (établissements de ``finess``) joints aux séjours de l'année N."""
    esin = year_rows(data, "esin", annee, finess)
    if esin is None:
        return pd.DataFrame(
            {
                "finess_geo": pd.Series(dtype="string"),
                "signalements": pd.Series(dtype="Int64"),
                "responsable_connecte": pd.Series(dtype="boolean"),
                "sejours": pd.Series(dtype="Int64"),
            }
        )
    esin = esin[["finess_geo", "signalements", "responsable_connecte"]]
    act = year_rows(data, "activite", annee, finess)
    if act is None:
        esin = esin.assign(sejours=pd.Series(pd.NA, index=esin.index, dtype="Int64"))
    else:
        esin = esin.merge(act[["finess_geo", "sejours"]], on="finess_geo", how="left")
    return esin.reset_index(drop=True)


def regional_rate(data: dict, annee: int, region) -> tuple[float, int]:
    """Taux régional de signalement e-SIN de l'année N, par séjour.

    ``taux = Σ signalements / Σ séjours`` sur les établissements de la région ayant les deux chiffres
    l'année N ; rend ``(taux, n_etab)``. ``taux`` est ``NaN`` si aucun établissement n'a les deux
    chiffres ou si la somme des séjours est nulle.
    """
    etabs = region_establishments(data, region)
    m = _esin_activity(data, annee, etabs["finess_geo"])
    both = m.loc[m["signalements"].notna() & m["sejours"].notna()]
    n = int(len(both))
    total_sejours = float(both["sejours"].sum()) if n else 0.0
    if n == 0 or total_sejours <= 0:
        return float("nan"), n
    return float(both["signalements"].sum()) / total_sejours, n


# --------------------------------------------------------------------------------------------------
# Ciblage
# --------------------------------------------------------------------------------------------------
def _plural(n: int, word: str) -> str:
    return word + ("s" if n >= 2 else "")


def _empty_ciblage() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="string") for c in CIBLAGE_COLUMNS})


def _ciblage_infectieux(data, rules, annee, etabs, region) -> pd.DataFrame:
    r = rules["ciblage"]["infectieux"]
    m = _esin_activity(data, annee, etabs["finess_geo"])
    m = m.loc[m["signalements"].notna()].reset_index(drop=True)
    if m.empty:
        return pd.DataFrame(columns=["finess_geo", "risque", "motif", "valeur"])
    taux, _ = regional_rate(data, annee, region)
    s = m["signalements"].astype("float64").to_numpy()
    sej = m["sejours"].astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
    attendu = sej * taux if np.isfinite(taux) else np.full(len(m), np.nan)
    p = stats.poisson_lower_pvalue(s, attendu)
    seuil = float(r["seuil_p_poisson"])
    non_decl = s <= float(r["signalements_non_declarant"])
    with np.errstate(invalid="ignore"):
        faible = np.isfinite(p) & (p < seuil)
    hit = non_decl | faible
    seuil_txt = stats.format_fr_number(seuil, None)
    motifs, valeurs = [], []
    # Boucle limitée aux établissements ciblés (peu nombreux) pour rédiger le motif.
    for i in np.flatnonzero(hit):
        ns = int(s[i])
        base = f"{ns} {_plural(ns, 'signalement')} e-SIN en {annee}"
        if np.isfinite(sej[i]):
            nsej = int(sej[i])
            base += f" pour {stats.format_fr_number(nsej)} {_plural(nsej, 'séjour')}"
        stat = ""
        if faible[i]:
            ptxt = stats.format_pvalue(float(p[i]))
            sep = " ; seuil " if p[i] < 0.0001 else " < "
            stat = f", attendu {stats.format_fr_number(attendu[i], 1)} ({ptxt}{sep}{seuil_txt})"
        if non_decl[i]:
            motif = "non déclarant : " + base + stat
            if not np.isfinite(sej[i]):
                motif += " (activité non renseignée)"
        else:
            motif = "faiblement déclarant : " + base + stat
        motifs.append(motif)
        valeurs.append(str(ns))
    return pd.DataFrame(
        {
            "finess_geo": m.loc[hit, "finess_geo"].to_numpy(),
            "risque": "infectieux",
            "motif": motifs,
            "valeur": valeurs,
        }
    )


def _ciblage_management(data, rules, annee, etabs) -> pd.DataFrame:
    cibles = [str(v).upper() for v in rules["ciblage"]["management_qualite"]["niveaux_cibles"]]
    cert = certification_in_force(data, rules, annee, etabs["finess_geo"])
    cert = cert.loc[_mask(cert["niveau"].isin(cibles))]
    motif = (
        "niveau de certification "
        + cert["niveau"].astype(str)
        + " (décision du "
        + cert["date_decision"].dt.strftime("%d/%m/%Y")
        + ")"
    )
    return pd.DataFrame(
        {
            "finess_geo": cert["finess_geo"].to_numpy(),
            "risque": "management_qualite",
            "motif": motif.to_numpy(),
            "valeur": cert["niveau"].astype(str).to_numpy(),
        }
    )


def _ciblage_rupture(data, rules, annee, etabs) -> pd.DataFrame:
    r = rules["ciblage"]["rupture_parcours"]
    secteurs = [str(s) for s in r["secteurs"]]
    concerned = etabs.loc[~_mask(etabs["specificite"].isin(list(r["specificites_exclues"])))]
    q = latest_qls(data, rules, annee, int(r["fenetre_annees"]), secteurs, concerned["finess_geo"])
    seuil = float(r["seuil_score_qls"])
    q = q.loc[_mask(q["score"] < seuil)].copy()
    if q.empty:
        return pd.DataFrame(columns=["finess_geo", "risque", "motif", "valeur"])
    order = {s: i for i, s in enumerate(secteurs)}
    q["_ordre"] = q["secteur"].map(order)
    q = q.sort_values(["finess_geo", "_ordre"], kind="mergesort")
    seuil_txt = stats.format_fr_number(seuil, None) + " %"
    q["motif"] = [
        f"score QLS {sec} {int(an)} : {stats.format_fr_pct(sc, 1)} < {seuil_txt}"
        for sec, an, sc in zip(q["secteur"], q["annee"], q["score"])
    ]
    g = q.groupby("finess_geo", sort=True)
    out = pd.DataFrame(
        {
            "motif": g["motif"].agg("; ".join),
            "valeur": g["score"].min().map(stats.format_machine),
        }
    ).reset_index()
    out["risque"] = "rupture_parcours"
    return out[["finess_geo", "risque", "motif", "valeur"]]


def compute_ciblage(data: dict, rules: dict, annee: int, region) -> pd.DataFrame:
    """Ciblage de l'année N pour la région : une ligne par (établissement, risque) rempli.

    Colonnes ``finess_geo, raison_sociale, departement, risque, motif, valeur`` (contrat, section 3),
    triées par (risque, departement, finess_geo). ``motif`` est rédigé en français pour le
    négociateur ; ``valeur`` est la valeur brute (signalements, niveau, plus bas score QLS) au
    format machine (point décimal).
    """
    annee = int(annee)
    etabs = region_establishments(data, region)
    if etabs.empty:
        return _empty_ciblage()
    parts = [
        _ciblage_infectieux(data, rules, annee, etabs, region),
        _ciblage_management(data, rules, annee, etabs),
        _ciblage_rupture(data, rules, annee, etabs),
    ]
    parts = [p for p in parts if len(p)]
    if not parts:
        return _empty_ciblage()
    out = pd.concat(parts, ignore_index=True)
    out = out.merge(etabs[["finess_geo", "raison_sociale", "departement"]], on="finess_geo", how="left")
    out = out[CIBLAGE_COLUMNS].astype("string")
    out = out.sort_values(["risque", "departement", "finess_geo"], kind="mergesort")
    return out.reset_index(drop=True)


def ciblage_history(data: dict, rules: dict, years: Iterable[int], region) -> pd.DataFrame:
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
    année N de ``years`` dont l'année N-1 figure aussi dans ``years`` (la première année n'a donc ni
    entrée ni sortie). Colonnes ``annee, finess_geo, raison_sociale, departement, risque,
    mouvement``, triées par (annee, risque, mouvement, departement, finess_geo).
    """
    cols = ["annee", "finess_geo", "raison_sociale", "departement", "risque", "mouvement"]
    ys = sorted({int(y) for y in years})
    key = ["finess_geo", "risque"]
    h = history[["annee", "finess_geo", "raison_sociale", "departement", "risque"]].copy()
    prev = h.assign(annee=h["annee"] + 1)  # ciblage de N-1 rapporté à l'année N
    valid = [y for y in ys if y - 1 in ys]
    cur = h.loc[_mask(h["annee"].isin(valid))]
    prev = prev.loc[_mask(prev["annee"].isin(valid))]
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


def qls_last_two(
    data: dict,
    rules: dict,
    annee: int,
    fenetre: int,
    secteurs: Iterable[str] | None = None,
    finess: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Dernière campagne QLS (dans la fenêtre N-fenetre+1…N) et campagne précédente, par secteur.

    La campagne précédente est la campagne antérieure la plus récente du même secteur, quelle que
    soit son année. Rend ``finess_geo, secteur, annee, score, n_dossiers, ic_bas, ic_haut,
    source_ic`` puis les mêmes colonnes suffixées ``_precedent`` (``annee_precedente``), une ligne
    par (établissement, secteur) ayant une campagne dans la fenêtre.
    """
    q = _qls_table(data, rules)
    if q is None:
        q = _empty_qls()
    q = _restrict(q, finess)
    keep = _mask(q["annee"] <= int(annee)) & q["score"].notna()
    if secteurs is not None:
        keep &= _mask(q["secteur"].isin(list(secteurs)))
    q = qls_intervals(q.loc[keep], rules)
    q = q.sort_values(["finess_geo", "secteur", "annee"], kind="mergesort").reset_index(drop=True)
    rank = q.groupby(["finess_geo", "secteur"], sort=False).cumcount(ascending=False)
    cols = ["annee", "score", "n_dossiers", "ic_bas", "ic_haut", "source_ic"]
    last = q.loc[rank == 0, ["finess_geo", "secteur", *cols]]
    prev = q.loc[rank == 1, ["finess_geo", "secteur", *cols]].rename(
        columns={c: (f"{c}_precedent" if c != "annee" else "annee_precedente") for c in cols}
    )
    first, lastyear = qls_window(annee, fenetre)
    last = last.loc[_mask(last["annee"].between(first, lastyear))]
    out = last.merge(prev, on=["finess_geo", "secteur"], how="left")
    return out.reset_index(drop=True)
