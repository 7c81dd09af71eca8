"""Suivi des engagements CPOM de l'année N (contrat de données, section 2), générique.

Une ligne par indicateur déclaré de chaque engagement suivi l'année N (``annee_debut <= N <=
annee_fin``). Sans fichier ``engagements``, c'est le **mode veille** : chaque établissement de la
région est suivi sur chaque engagement du fichier de règles.

Les indicateurs viennent du fichier de règles (``engagements.<e>.indicateurs``) et sont observés par
:mod:`analysis.indicators.engine`. Choix faits là où le contrat se tait :

- indicateur ``par`` une colonne (``taux_formes`` par catégorie de personnel, ``score_qls`` par
  secteur) : une ligne par valeur présente dans les données de l'année (fenêtre) ; avec
  ``par_referentiel`` (secteurs détenus), une ligne par valeur détenue selon le référentiel, un
  drapeau manquant étant remplacé par la présence de la valeur dans les données (années <= N) ; sans
  aucune valeur, une ligne ``<code>`` ``non_evaluable`` (``non_concerne`` quand le référentiel dit
  qu'aucune n'est détenue) ;
- un établissement exclu par sa spécificité garde ses lignes (valeurs pour information) au statut
  ``non_concerne`` ;
- ``cible`` d'un engagement signé : une valeur simple (``85``, ``85 %``, ``≥ 85``, ``A ou B``,
  ``oui``) vise l'indicateur principal de l'engagement ; ``indicateur=valeur; indicateur=valeur`` vise
  des indicateurs précis (code complet ``score_qls_ssr`` ou code déclaré ``taux_formes``). Une cible
  illisible ou ambiguë (``0,8`` pour un pourcentage, ``=2+3``) n'est jamais devinée : la cible des
  règles s'applique et le commentaire le dit.

``valeur`` est au format machine (point décimal ; ``oui`` / ``non`` ; niveau) ; ``valeur_num`` en donne
la forme numérique, ``valeur_texte`` la forme affichée (formateur unique, jamais arrondie de l'autre
côté de la cible).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..publishing import fmt
from ..rules.model import Cible, Indicateur, Rules, indicator_suffix
from . import persist, stats
from .engine import (
    code_of,
    compare,
    mask,
    observe,
    region_establishments,
    region_fingerprint,
    scope_fingerprint,
    source_rows,
    window,
)

SUIVI_COLUMNS = ["finess_geo", "raison_sociale", "engagement", "indicateur", "valeur", "cible", "statut"]
EXTRA_COLUMNS = [
    "libelle_engagement",
    "libelle_indicateur",
    "par_valeur",
    "unite",
    "annee_donnee",
    "valeur_num",
    "valeur_texte",
    "seuil",
    "ic_bas",
    "ic_haut",
    "position_cible",
    "evolution",
    "cible_source",
    "commentaire",
]
ALL_COLUMNS = SUIVI_COLUMNS + EXTRA_COLUMNS

#: valeur affichée d'un résultat non validé par le contrôle qualité du recueil (HAS : « NV »)
NON_VALIDE_TEXTE = "non validé"
ATTEINT = "atteint"
NON_ATTEINT = "non_atteint"
NON_EVALUABLE = "non_evaluable"
NON_CONCERNE = "non_concerne"
SANS_CIBLE = "sans_cible"
STATUTS = (ATTEINT, NON_ATTEINT, NON_EVALUABLE, NON_CONCERNE, SANS_CIBLE)

_DTYPES = {c: "string" for c in ALL_COLUMNS}
_DTYPES.update({"annee_donnee": "Int64", "valeur_num": "Float64", "seuil": "Float64", "ic_bas": "Float64",
                "ic_haut": "Float64"})


def is_monitoring_mode(data: dict) -> bool:
    """Vrai quand aucun fichier d'engagements n'est fourni : tout établissement est suivi (mode veille)."""
    return data is None or data.get("engagements") is None


# --------------------------------------------------------------------------------------------------
# Engagements suivis
# --------------------------------------------------------------------------------------------------
def followed_engagements(data: dict, rules: Rules, annee: int, region) -> pd.DataFrame:
    """Engagements suivis l'année N : ``finess_geo, engagement, cible_engagement``."""
    annee = int(annee)
    etabs = region_establishments(data, region)
    engagements = list(rules.engagements)
    if is_monitoring_mode(data):
        fol = pd.MultiIndex.from_product(
            [etabs["finess_geo"].astype(str), engagements], names=["finess_geo", "engagement"]
        ).to_frame(index=False)
        fol["cible_engagement"] = pd.Series(pd.NA, index=fol.index, dtype="string")
    else:
        eng = data["engagements"]
        eng = eng.loc[eng["finess_geo"].isin(etabs["finess_geo"])]
        active = mask(eng["annee_debut"] <= annee) & mask(eng["annee_fin"] >= annee)
        eng = eng.loc[active.to_numpy() & mask(eng["engagement"].isin(engagements)).to_numpy()]
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


# --------------------------------------------------------------------------------------------------
# Cibles des engagements signés (colonne `cible` du fichier engagements)
# --------------------------------------------------------------------------------------------------
_NUM_RE = re.compile(r"^(?P<op>≥|>=|>|≤|<=|<)?\s*(?P<num>\d+(?:[.,]\d+)?)\s*(?P<pct>%)?$")
_OPS = {"≥": ">=", ">=": ">=", ">": ">", "≤": "<=", "<=": "<=", "<": "<"}


def _split_override(text) -> dict[str, str]:
    """``"85"`` -> ``{"": "85"}`` ; ``"audits_precautions=2; taux_formes=80"`` -> deux entrées."""
    if text is None or text is pd.NA or not str(text).strip():
        return {}
    text = str(text).strip()
    if "=" not in text.lstrip("<>≥≤="):
        return {"": text}
    out = {}
    for part in re.split(r"[;\n]", text):
        if "=" in part:
            k, v = part.split("=", 1)
            out[indicator_suffix(k)] = v.strip()
        elif part.strip():
            out.setdefault("?", part.strip())
    return out


def parse_target(raw: str, ind: Indicateur, rules: Rules) -> tuple[Cible | None, str | None]:
    """Cible écrite par un analyste -> (cible, None) ou (None, motif). Jamais devinée."""
    text = str(raw).replace("\u00a0", " ").strip()
    if ind.calcul == "niveau":
        parts = [p.strip() for p in re.split(r"\s+ou\s+|[,;/]", text) if p.strip()]
        col = rules.sources[ind.source].colonnes.get(ind.colonne)
        table = {indicator_suffix(v): v for v in (ind.ordre or [])}
        if col is not None:
            table.update({indicator_suffix(k): v for k, v in col.correspondance.items()})
        levels = [table.get(indicator_suffix(p)) for p in parts]
        if not levels or any(v is None for v in levels):
            return None, f"niveaux attendus parmi {', '.join(ind.ordre or [])}"
        return Cible(dans=sorted(set(levels), key=(ind.ordre or []).index)), None
    if ind.calcul == "booleen":
        b = {"oui": True, "non": False, "vrai": True, "faux": False, "connecte": True}.get(indicator_suffix(text))
        if b is None:
            return None, "oui ou non attendu"
        return Cible(operateur="==", valeur=b), None
    m = _NUM_RE.match(text)
    if not m:
        return None, "nombre attendu (par exemple 85 ou 85 %)"
    x = float(m.group("num").replace(",", "."))
    if ind.unite == "%" and 0 < x < 1 and not m.group("pct"):
        return None, f"valeur ambiguë pour un pourcentage (écrivez {fmt.fmt_shortest(x * 100)} pour {fmt.fmt_shortest(x * 100)} %)"
    if ind.unite == "%" and x > 100:
        return None, "pourcentage supérieur à 100"
    default_op = ind.cible.operateur if ind.cible is not None and ind.cible.operateur else ">="
    op = _OPS[m.group("op")] if m.group("op") else default_op
    return Cible(operateur=op, valeur=x), None


def _row_targets(rows: pd.DataFrame, engagement: str, code: str, ind: Indicateur, rules: Rules):
    """Cible de chaque ligne : règles par défaut, ou cible de l'engagement signé quand elle vise
    l'indicateur. Rend (liste de Cible|None, source, commentaire)."""
    main = rules.engagements[engagement].main_indicator
    targets = [ind.cible] * len(rows)
    source = ["règles"] * len(rows)
    notes = [None] * len(rows)
    cache: dict[tuple, tuple] = {}
    has = rows["cible_engagement"].notna().to_numpy()
    for i in np.flatnonzero(has):
        text = str(rows["cible_engagement"].iat[i])
        full = str(rows["indicateur"].iat[i])
        key = (text, full)
        if key not in cache:
            parts = _split_override(text)
            raw = parts.get(indicator_suffix(full), parts.get(code))
            if raw is None and "" in parts and code == main:
                raw = parts[""]
            if raw is None and "?" in parts:
                cache[key] = (None, f"cible du CPOM illisible (« {text} ») : cible des règles appliquée")
            elif raw is None:
                cache[key] = (None, None)
            else:
                c, err = parse_target(raw, ind, rules)
                cache[key] = (c, None) if c is not None else (
                    None, f"cible du CPOM illisible (« {raw} » : {err}) : cible des règles appliquée")
        c, note = cache[key]
        if c is not None:
            targets[i] = c
            source[i] = "engagement"
        notes[i] = note
    return targets, source, notes


# --------------------------------------------------------------------------------------------------
# Lignes attendues (valeurs de `par`)
# --------------------------------------------------------------------------------------------------
def _expected(data, rules, code, ind, annee, fol, etabs, obs) -> tuple[pd.DataFrame, pd.Series]:
    """Lignes (finess, indicateur complet, par_valeur) à produire ; et masque « rien de détenu »."""
    if not ind.par:
        rows = fol.assign(indicateur=code, par_valeur=pd.Series(pd.NA, index=fol.index, dtype="string"))
        return rows, pd.Series(False, index=rows.index)
    e = etabs.loc[etabs["finess_geo"].isin(fol["finess_geo"])].set_index("finess_geo")
    if ind.par_referentiel:
        src = source_rows(data, ind.source, fol["finess_geo"])
        present = set()
        if src is not None:
            s = src.loc[mask(src["annee"] <= int(annee))] if "annee" in src.columns else src
            present = set(zip(s["finess_geo"].astype(str), s[ind.par].astype(str)))
        held, none_known = [], {}
        for f in e.index:
            flags = []
            for value, col in ind.par_referentiel.items():
                flag = e.at[f, col] if col in e.columns else pd.NA
                flags.append(flag)
                known = flag is not pd.NA and not (isinstance(flag, float) and np.isnan(flag))
                if (known and bool(flag)) or (not known and (f, value) in present):
                    held.append((f, value))
            none_known[f] = all(v is not pd.NA and v is not None for v in flags) and not any(bool(v) for v in flags)
        h = pd.DataFrame(held, columns=["finess_geo", "par_valeur"], dtype="string")
    else:
        h = obs[["finess_geo", "par_valeur"]].drop_duplicates()
        none_known = {}
    rows = fol.merge(h, on="finess_geo", how="left")
    rows["indicateur"] = code_of(code, ind, rows["par_valeur"]).fillna(code)
    nothing = rows["par_valeur"].isna() & mask(rows["finess_geo"].map(none_known))
    return rows.reset_index(drop=True), nothing.reset_index(drop=True)


#: colonnes d'une ligne de suivi lues par :func:`_comment`
_COMMENT_FIELDS = ("non_valide", "_manque", "par_valeur", "date_donnee", "annee_donnee", "n", "num", "den")


def _comment(ind: Indicateur, rules: Rules, r: dict, annee: int) -> str | None:
    src = rules.sources[ind.source]
    if not fmt.is_missing(r.get("non_valide")):
        return str(r["non_valide"])  # contrôle qualité du recueil : résultat non validé
    if r["_manque"]:
        if ind.par and r["par_valeur"] is None:
            lab = src.colonnes[ind.par].libelle or ind.par.replace("_", " ")
            return f"aucune valeur de « {lab} » pour l'établissement en {annee}"
        par = f" {rules.value_label(ind.source, ind.par, r['par_valeur'])}" if ind.par else ""
        if ind.calcul == "niveau" and ind.date:
            return f"aucune donnée « {src.libelle} »{par} au 31/12/{annee}"
        first, last = window(annee, ind.fenetre_annees)
        if first != last:
            return f"aucune donnée « {src.libelle} »{par} entre {first} et {last}"
        return f"aucune donnée « {src.libelle} »{par} en {annee}"
    if ind.calcul == "niveau" and ind.date:
        return f"décision du {fmt.fmt_date(r['date_donnee'])}"
    if ind.calcul == "valeur":
        text = f"données {int(r['annee_donnee'])}"
        if ind.effectif and not fmt.is_missing(r.get("n")):
            lab = src.colonnes[ind.effectif].libelle or ind.effectif.replace("_", " ")
            text += f", {fmt.fmt_num(r['n'])} {lab}"
        return text
    if ind.calcul == "ratio":
        lab = src.colonnes[ind.numerateur].libelle or ind.numerateur.replace("_", " ")
        return f"{fmt.fmt_num(r['num'])} {lab} sur {fmt.fmt_num(r['den'])}"
    return None


def _machine(ind: Indicateur, v, niveau) -> str | None:
    if ind.calcul == "niveau":
        return None if fmt.is_missing(niveau) else str(niveau)
    if fmt.is_missing(v):
        return None
    if ind.calcul == "booleen":
        return "oui" if v >= 0.5 else "non"
    if ind.calcul == "ratio":
        return fmt.fmt_machine(round(float(v), 2))
    return fmt.fmt_machine(v)


def display_value(ind: Indicateur, v, niveau, threshold=None) -> str:
    """Forme affichée d'une valeur d'indicateur (rapport, fiches, motif, classeur) : formateur
    unique ; ``threshold`` : seuil(s) que l'arrondi ne doit pas franchir (``Rules.thresholds``)."""
    if ind.calcul == "niveau":
        return fmt.MISSING if fmt.is_missing(niveau) else str(niveau)
    if fmt.is_missing(v):
        return fmt.MISSING
    if ind.calcul == "booleen":
        return "oui" if float(v) >= 0.5 else "non"
    return fmt.fmt_quantity(float(v), ind.unite, threshold=threshold, decimals=ind.decimales)


def _indicator_rows(data, rules, annee, engagement, code, ind, fol, etabs) -> pd.DataFrame:
    obs = observe(data, rules, code, annee, fol["finess_geo"])
    rows, nothing = _expected(data, rules, code, ind, annee, fol, etabs, obs)
    df = rows.merge(obs.drop(columns=["par_valeur"]), on=["finess_geo", "indicateur"], how="left")
    targets, csource, notes = _row_targets(df, engagement, code, ind, rules)
    df["_manque"] = (df["valeur_num"].isna() & df["niveau"].isna()).to_numpy()
    met = pd.Series(pd.NA, index=df.index, dtype="boolean")
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(targets):
        key = (None,) if c is None else (c.operateur, c.valeur, tuple(c.dans or ()) or None)
        groups.setdefault(key, []).append(i)
    for key, idx in groups.items():
        if key == (None,):
            continue
        c = targets[idx[0]]
        sub = df.iloc[idx]
        met.iloc[idx] = compare(sub, ind, c.operateur, c.valeur, c.dans).to_numpy()
    no_target = np.array([c is None for c in targets])
    statut = np.where(df["_manque"], NON_EVALUABLE,
                      np.where(no_target, SANS_CIBLE, np.where(mask(met), ATTEINT, NON_ATTEINT)))
    statut = np.where(nothing.to_numpy(), NON_CONCERNE, statut)
    df["statut"] = statut
    df["cible"] = [fmt.fmt_target(c.operateur, c.valeur, ind.unite, c.dans) if c is not None else "" for c in targets]
    df["seuil"] = [float(c.valeur) if c is not None and c.operateur and not isinstance(c.valeur, bool) else np.nan
                   for c in targets]
    df["cible_source"] = csource
    df["valeur"] = [_machine(ind, v, n) for v, n in zip(df["valeur_num"], df["niveau"])]
    limits = rules.thresholds(code)
    df["valeur_texte"] = [display_value(ind, v, n, limits + ([] if np.isnan(s) else [s]))
                          for v, n, s in zip(df["valeur_num"], df["niveau"], df["seuil"])]
    if "non_valide" in df.columns:
        df.loc[df["non_valide"].notna().to_numpy(), "valeur_texte"] = NON_VALIDE_TEXTE
    df["unite"] = ind.unite
    # seules les colonnes que lit _comment (to_dict de toutes les colonnes coûtait un sixième du suivi)
    recs = df[[c for c in _COMMENT_FIELDS if c in df.columns]].to_dict("records")
    comments = []
    for r, note in zip(recs, notes):
        r["par_valeur"] = None if fmt.is_missing(r.get("par_valeur")) else r["par_valeur"]
        c = _comment(ind, rules, r, annee)
        if r["par_valeur"] is None and ind.par and nothing.iat[len(comments)]:
            lab = rules.sources[ind.source].colonnes[ind.par].libelle or ind.par.replace("_", " ")
            c = f"aucune valeur de « {lab} » détenue (référentiel)"
        comments.append("; ".join(x for x in (c, note) if x))
    df["commentaire"] = comments
    if ind.calcul == "valeur" and (ind.ic_bas is not None or ind.effectif is not None):
        seuil = df["seuil"].astype("Float64")
        df["position_cible"] = stats.position_vs_target(df["ic_bas"], df["ic_haut"], seuil)
        df["evolution"] = stats.evolution_ifaq(df["ic_bas_precedent"], df["ic_haut_precedent"], df["ic_bas"],
                                               df["ic_haut"])
    # Spécificités exclues (engagement et indicateur) : non concerné, valeurs gardées pour information
    excl = set(rules.engagements[engagement].specificites_exclues) | set(ind.specificites_exclues)
    if excl:
        spec = df[["finess_geo"]].merge(etabs[["finess_geo", "specificite"]], on="finess_geo", how="left")
        spec = spec["specificite"].astype("string")
        nc = mask(spec.isin(sorted(excl))).to_numpy()
        if nc.any():
            df.loc[nc, "statut"] = NON_CONCERNE
            df.loc[nc, "commentaire"] = "non concerné (spécificité " + spec[nc].astype(str).to_numpy() + ")"
    df["libelle_indicateur"] = [rules.indicator_label(c) for c in df["indicateur"]]
    return df


def _engagement_rows(data, rules, annee, engagement, code, ind, fol, etabs) -> pd.DataFrame:
    """Lignes typées d'un indicateur d'un engagement (sans ``raison_sociale``)."""
    df = _indicator_rows(data, rules, annee, engagement, code, ind, fol, etabs)
    df["engagement"] = engagement
    df["libelle_engagement"] = rules.engagements[engagement].libelle
    return _typed(df.reindex(columns=[c for c in ALL_COLUMNS if c != "raison_sociale"]))


def _inputs(data, ind: Indicateur, annee: int) -> list[str]:
    """Empreintes des lignes de sa source que lit :func:`_indicator_rows` : celles de l'observation
    (:func:`~analysis.indicators.engine.scope_rows`) et, avec ``par_referentiel``, celles jusqu'à N
    (valeurs présentes dans les données) ; rien hors de ``make report`` (:mod:`persist` inactif)."""
    if not persist.active():
        return []
    out = [scope_fingerprint(data, ind, annee)]
    if ind.par_referentiel:
        src = source_rows(data, ind.source)
        if src is not None and "annee" in src.columns:
            src = src.loc[mask(src["annee"] <= int(annee)).to_numpy()]
        out.append(persist.table_fingerprint(src))
    return out


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    cols = {}
    for c in df.columns:
        t = _DTYPES.get(c)
        if t is None:
            cols[c] = df[c]
        elif t == "string":
            cols[c] = df[c].astype("object").where(df[c].notna(), None).astype("string")
        else:
            cols[c] = pd.to_numeric(df[c], errors="coerce").astype(t)
    return pd.DataFrame(cols, index=df.index)


def _empty_suivi() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=_DTYPES[c]) for c in ALL_COLUMNS})


def compute_suivi(data: dict, rules: Rules, annee: int, region) -> pd.DataFrame:
    """Suivi des engagements de l'année N pour la région (colonnes du contrat d'abord, puis
    ``EXTRA_COLUMNS``), trié par (finess_geo, engagement, indicateur)."""
    annee = int(annee)
    etabs = region_establishments(data, region)
    fol = followed_engagements(data, rules, annee, region)
    if fol.empty:
        return _empty_suivi()
    frames = []
    etabs_fp = region_fingerprint(data, region)
    for engagement, sub in fol.groupby("engagement", sort=True):
        engagement = str(engagement)
        sub = sub.reset_index(drop=True)
        sub_fp = persist.table_fingerprint(sub) if persist.active() else None
        for code, ind in rules.engagements[engagement].indicateurs.items():
            frames.append(persist.cached(
                "suivi", [rules.sha256, engagement, code, annee, sub_fp, etabs_fp, *_inputs(data, ind, annee)],
                lambda e=engagement, c=code, i=ind, f=sub: _engagement_rows(data, rules, annee, e, c, i, f, etabs)))
    out = pd.concat(frames, ignore_index=True)
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
    cols = ["engagement", "indicateur", "libelle_indicateur", "n_suivis", "n_evaluables", "n_atteints",
            "n_non_atteints", "n_non_evaluables", "n_non_concernes", "n_sans_cible", "part_atteinte"]
    if suivi_df is None or suivi_df.empty:
        out = pd.DataFrame({c: pd.Series(dtype="string" if c in cols[:3] else "Int64") for c in cols})
        return out.astype({"part_atteinte": "Float64"})
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
    labels = suivi_df.drop_duplicates(["engagement", "indicateur"]).set_index(["engagement", "indicateur"])
    out["libelle_indicateur"] = [labels.at[(e, i), "libelle_indicateur"] for e, i in zip(out["engagement"],
                                                                                       out["indicateur"])]
    out = out.astype({"engagement": "string", "indicateur": "string", "libelle_indicateur": "string"})
    return out[cols].reset_index(drop=True)
