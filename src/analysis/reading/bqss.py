"""HAS BQSS (base sur la qualité et la sécurité des soins), lue telle que téléchargée.

Deux fichiers du jeu data.gouv.fr de la HAS, reconnus par leurs colonnes :

- ``valeur.csv`` (``annee, finess, finess_type, key, value_boolean, value_string, value_integer,
  value_float, missing_value, value_date``), environ 3,8 millions de lignes : une valeur par
  (année, FINESS, clé) ;
- ``metadata.csv`` (``name, title, description, type, source, indicateur, secteur, theme, acronyme,
  version, variable, annee, ancienne_variable, url_rapport, type_metier, finess_type``) : une ligne par
  clé (``name`` = ``key``).

Les clés utiles sont choisies dans ``metadata.csv`` par les critères de la rubrique ``bqss`` du
fichier de règles (expressions régulières sur ses colonnes, jamais des noms de clés écrits dans le
code) ; seules leurs lignes de ``valeur.csv`` sont lues, par un lecteur en colonnes (pyarrow, par blocs,
filtre vectorisé), sans boucle sur les lignes. Elles donnent :

- les niveaux de certification V2014 (``…id_niveau`` 1 à 5 → A à E, datés par la date de décision),
  qui, avec les décisions du référentiel 2021, font l'historique de certification ;
- les décisions de certification du référentiel 2021 ;
- des scores e-Satis ;
- les résultats QLS (score, bornes de l'intervalle et nombre de dossiers quand ils sont publiés).

Une même décision figure dans chaque édition annuelle de la base : seule la plus récente est gardée,
les autres lignes sont comptées « sans objet », comme les lignes des clés non utilisées et les valeurs
manquantes (``missing_value``), dont les motifs sont donnés dans la section « Qualité des données ».
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .readers import FILE_COL, LINE_COL, RawTable, first_line, normalize_name

KIND_VALEUR = "has_bqss_valeur"
KIND_META = "has_bqss_metadata"
VALEUR_COLS = ["annee", "finess", "finess_type", "key", "value_boolean", "value_string", "value_integer",
               "value_float", "missing_value", "value_date"]
META_COLS = {"name", "title", "source", "acronyme", "type_metier", "secteur"}
BLOCK_SIZE = 16 << 20


def _fmt(n: int) -> str:
    return f"{n:,}".replace(",", "\u00a0")


def sniff_valeur(path: Path) -> bool:
    """``path`` a-t-il l'en-tête de ``valeur.csv`` (sans lire le reste) ?"""
    line = first_line(path, 4096)
    if line is None:
        return False
    first = line.decode("utf-8", "replace").lstrip("\ufeff")
    cols = [normalize_name(c.strip().strip('"')) for c in first.split(",")]
    return set(VALEUR_COLS) <= set(cols)


def stub_table(path: Path) -> RawTable:
    """Table vide aux colonnes de ``valeur.csv`` : le fichier n'est lu qu'ensuite, clés choisies."""
    df = pd.DataFrame(columns=VALEUR_COLS + [LINE_COL])
    return RawTable(path=path, data=df, original_headers={c: c for c in VALEUR_COLS}, encoding="utf-8",
                    separator=",")


def is_metadata(columns) -> bool:
    return META_COLS <= set(columns)


# --------------------------------------------------------------------------------------------
# Key selection through metadata.csv


def _match(meta: pd.DataFrame, criteria: dict | None) -> pd.Series:
    """Rows of ``meta`` that every criterion ``{column: regex}`` describes (case-insensitive)."""
    ok = pd.Series(True, index=meta.index)
    for col, pattern in (criteria or {}).items():
        col = normalize_name(col)
        if col not in meta.columns:
            return pd.Series(False, index=meta.index)
        rx = re.compile(str(pattern), re.IGNORECASE)
        ok &= meta[col].fillna("").astype(str).map(lambda v: rx.search(v) is not None)
    return ok


@dataclass
class Selection:
    """Keys chosen in metadata.csv, with their use (``role``) and, for QLS, sector."""

    keys: pd.DataFrame  # name, groupe, role, secteur, libelle
    notes: list[str] = field(default_factory=list)

    def names(self) -> set[str]:
        return set(self.keys["name"])


def select_keys(meta: pd.DataFrame, rules: dict) -> Selection:
    conf = rules.get("bqss") or {}
    meta = meta.copy()
    meta["name"] = meta["name"].astype(str).str.strip()
    rows: list[dict] = []
    notes: list[str] = []

    def add(mask, groupe, role, secteur="", libelle=""):
        for name in meta.loc[mask, "name"]:
            rows.append({"name": name, "groupe": groupe, "role": role, "secteur": secteur, "libelle": libelle})

    for groupe, roles in (("certification_v2014", ("niveau", "date")), ("certification_v2021", ("decision", "date"))):
        c = conf.get(groupe) or {}
        for role in roles:
            add(_match(meta, c.get(role)), groupe, role)
    for item in conf.get("esatis") or []:
        add(_match(meta, item.get("selection")), "esatis", "score", secteur=str(item.get("secteur", "")))
    q = conf.get("qls") or {}
    if q:
        base = _match(meta, q.get("selection"))
        sect_col = rules.sources["qls"].colonnes["secteur"]
        sect_map = {str(v).upper(): v for v in (sect_col.valeurs or [])}
        sect_map.update({str(k).upper(): v for k, v in sect_col.correspondance.items()})
        taken = pd.Series(False, index=meta.index)
        for role, crit in (q.get("roles") or {}).items():
            m = base & _match(meta, crit) & ~taken
            taken |= m
            for i in meta.index[m]:
                raw_sect = str(meta.at[i, "secteur"]).strip() if "secteur" in meta.columns else ""
                if raw_sect in ("", "nan"):
                    raw_sect = meta.at[i, "name"].split("_", 1)[0]
                rows.append({"name": meta.at[i, "name"], "groupe": "qls", "role": role,
                             "secteur": sect_map.get(raw_sect.upper(), ""), "libelle": raw_sect})
        unused = meta.loc[base & ~taken, "name"].tolist()
        if unused:
            notes.append(f"BQSS : {len(unused)} clé(s) QLS sans rôle reconnu (type_metier), non utilisée(s) : "
                         + ", ".join(sorted(unused)) + ".")
    keys = pd.DataFrame(rows, columns=["name", "groupe", "role", "secteur", "libelle"])
    keys = keys.drop_duplicates("name", keep="first").reset_index(drop=True)
    for groupe, label in (("certification_v2014", "certification V2014"), ("certification_v2021",
                          "certification référentiel 2021"), ("esatis", "e-Satis"), ("qls", "QLS")):
        k = keys[keys["groupe"] == groupe]
        if k.empty:
            notes.append(f"BQSS : aucune clé de metadata.csv ne répond aux critères « bqss.{groupe} » ({label}) : "
                         "rien n'en est tiré.")
        else:
            desc = ", ".join(
                f"{r.name} ({r.role}{', ' + r.secteur if r.secteur else ''})" for r in k.itertuples()
            )
            notes.append(f"BQSS : clés utilisées pour {label} — {desc}.")
    return Selection(keys=keys, notes=notes)


# --------------------------------------------------------------------------------------------
# Columnar reading of valeur.csv


def read_values(path: Path, keys: set[str]) -> tuple[pd.DataFrame, dict]:
    """Lignes de ``valeur.csv`` dont la clé est dans ``keys`` (chaînes, ``_ligne``) et comptes.

    Lecture par blocs avec pyarrow ; chaque bloc est filtré par ``is_in`` sur la clé : la mémoire
    reste de l'ordre d'un bloc plus les lignes retenues.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    convert = pcsv.ConvertOptions(column_types={c: pa.string() for c in VALEUR_COLS}, strings_can_be_null=False,
                                  quoted_strings_can_be_null=False)
    reader = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=BLOCK_SIZE), convert_options=convert)
    names = [normalize_name(n) for n in reader.schema.names]
    value_set = pa.array(sorted(keys), type=pa.string())
    parts: list[pa.Table] = []
    offset = 0
    years_min, years_max = None, None
    for batch in reader:
        n = batch.num_rows
        if n == 0:
            continue
        batch = pa.RecordBatch.from_arrays(batch.columns, names=names)
        mm = pc.min_max(batch.column("annee"))
        lo, hi = mm["min"].as_py(), mm["max"].as_py()
        years_min = lo if years_min is None or (lo and lo < years_min) else years_min
        years_max = hi if years_max is None or (hi and hi > years_max) else years_max
        mask = pc.is_in(batch.column("key"), value_set=value_set)
        idx = pc.indices_nonzero(mask)
        if len(idx):
            sub = pa.Table.from_batches([batch]).take(idx).select(VALEUR_COLS)
            lines = pc.add(idx.cast(pa.int64()), offset + 2)  # header = line 1
            parts.append(sub.append_column(LINE_COL, lines))
        offset += n
    if parts:
        df = pa.concat_tables(parts).to_pandas()
    else:
        df = pd.DataFrame({c: pd.Series(dtype=object) for c in VALEUR_COLS + [LINE_COL]})
    df["key"] = df["key"].str.strip()
    df["finess"] = df["finess"].str.strip()
    return df, {"lignes": offset, "annee_min": years_min, "annee_max": years_max}


# --------------------------------------------------------------------------------------------
# Rows of the sources


@dataclass
class Account:
    """Per-file bookkeeping: primary rows go to validation; the others are counted here."""

    lookup_in: int = 0
    lookup_out: int = 0
    unused: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)


def _value(df: pd.DataFrame) -> pd.Series:
    """The one filled ``value_*`` of each row, as text."""
    out = pd.Series("", index=df.index, dtype=object)
    for c in ("value_string", "value_float", "value_integer", "value_boolean", "value_date"):
        v = df[c].astype(str).str.strip()
        out = out.where(out != "", v)
    return out


def _latest_edition(df: pd.DataFrame, key: list[str], acc: Account) -> pd.DataFrame:
    """One row per ``key``: that of the latest edition (``annee``); the others are sans objet."""
    df = df.sort_values(["annee", LINE_COL], kind="mergesort")
    dup = df.duplicated(key, keep="last")
    acc.unused["valeur répétée d'une édition annuelle antérieure de la base"] += int(dup.sum())
    return df[~dup]


def _missing(df: pd.DataFrame, value: pd.Series, acc: Account) -> pd.Series:
    empty = value == ""
    for reason, k in df.loc[empty, "missing_value"].astype(str).str.strip().replace("", "sans motif").value_counts().items():
        acc.unused[f"valeur manquante : {reason}"] += int(k)
    return ~empty


def _partner(primary: pd.DataFrame, partner: pd.DataFrame, on: list[str]) -> tuple[pd.Series, pd.DataFrame]:
    """Value of the ``partner`` row matched on ``on`` for each primary row, and the partner rows
    (filled, latest per ``on``) that can be matched."""
    if partner.empty:
        return pd.Series("", index=primary.index, dtype=object), partner
    p = partner.assign(_p=_value(partner))
    p = p[p["_p"] != ""].sort_values(["annee", LINE_COL], kind="mergesort").drop_duplicates(on, keep="last")
    merged = primary[on].merge(p[on + ["_p"]], on=on, how="left")
    return pd.Series(merged["_p"].fillna("").values, index=primary.index, dtype=object), p


def _account(kept: pd.DataFrame, partner: pd.DataFrame, candidates: pd.DataFrame, on: list[str], known,
             acc: Account, what: str) -> None:
    """Count ``partner`` rows: completing a kept primary row (inside or outside the referential) or not."""
    if partner.empty:
        return
    used = candidates.merge(kept[on].drop_duplicates(), on=on, how="inner") if len(candidates) else candidates
    n_used = len(used)
    inside = int(used["finess"].isin(known).sum()) if known is not None else n_used
    acc.lookup_in += inside
    acc.lookup_out += n_used - inside
    acc.unused[f"{what} sans ligne à compléter (édition antérieure ou valeur manquante)"] += len(partner) - n_used


def _certification(df: pd.DataFrame, sel: pd.DataFrame, groupe: str, rules: dict, known, acc: Account,
                   fname: str) -> pd.DataFrame | None:
    k = sel[sel["groupe"] == groupe]
    level_role = "niveau" if groupe == "certification_v2014" else "decision"
    lvl_keys = set(k.loc[k["role"] == level_role, "name"])
    date_keys = set(k.loc[k["role"] == "date", "name"])
    lv = df[df["key"].isin(lvl_keys)]
    dt = df[df["key"].isin(date_keys)]
    if lv.empty:
        acc.unused["date de certification sans niveau"] += len(dt)
        return None
    val = _value(lv)
    keep = _missing(lv, val, acc)
    lv = lv[keep].assign(_v=val[keep])
    if groupe == "certification_v2014":
        mapping = {int(a): b for a, b in ((rules.get("bqss") or {}).get(groupe, {}).get("niveaux") or {}).items()}
        num = pd.to_numeric(lv["_v"], errors="coerce")
        lv["_v"] = [mapping.get(int(x), str(v)) if pd.notna(x) and float(x).is_integer() else str(v)
                    for x, v in zip(num, lv["_v"])]
    on = ["annee", "finess"]
    dates, cand = _partner(lv, dt, on)
    lv = _latest_edition(lv.assign(_date=dates), ["finess", "_date"], acc)
    _account(lv, dt, cand, on, known, acc, "date de certification")
    return pd.DataFrame({"finess_geo": lv["finess"].values, "date_decision": lv["_date"].values,
                         "niveau": lv["_v"].values, FILE_COL: fname, LINE_COL: lv[LINE_COL].values})


def _esatis(df: pd.DataFrame, sel: pd.DataFrame, acc: Account, fname: str) -> pd.DataFrame | None:
    k = sel[sel["groupe"] == "esatis"]
    if k.empty:
        return None
    order = {n: i for i, n in enumerate(k["name"])}
    rows = df[df["key"].isin(order)].copy()
    if rows.empty:
        return None
    val = _value(rows)
    keep = _missing(rows, val, acc)
    rows = rows[keep].assign(_v=val[keep], secteur=rows.loc[keep, "key"].map(k.set_index("name")["secteur"]),
                             _o=rows.loc[keep, "key"].map(order))
    rows = rows.sort_values(["_o", LINE_COL], kind="mergesort")
    dup = rows.duplicated(["finess", "annee", "secteur"], keep="first")
    acc.unused["score e-Satis d'une autre clé du même secteur"] += int(dup.sum())
    rows = rows[~dup]
    return pd.DataFrame({"finess_geo": rows["finess"].values, "annee": rows["annee"].values,
                         "secteur": rows["secteur"].values, "indicateur": "satisfaction_globale",
                         "score": rows["_v"].values, "classement": "", "evolution": "",
                         FILE_COL: fname, LINE_COL: rows[LINE_COL].values})


def _qls(df: pd.DataFrame, sel: pd.DataFrame, known, acc: Account, fname: str) -> pd.DataFrame | None:
    k = sel[sel["groupe"] == "qls"]
    if k.empty:
        return None
    rows = df[df["key"].isin(set(k["name"]))].copy()
    info = k.set_index("name")
    rows["role"] = rows["key"].map(info["role"])
    rows["secteur"] = rows["key"].map(info["secteur"])
    other = rows["secteur"] == ""
    acc.unused["QLS d'un secteur non retenu (secteurs_qls)"] += int(other.sum())
    rows = rows[~other]
    known_roles = rows["role"].isin(["score", "n_dossiers", "ic_bas", "ic_haut"])
    acc.unused["QLS d'un rôle non utilisé"] += int((~known_roles).sum())
    rows = rows[known_roles]
    score = rows[rows["role"] == "score"]
    val = _value(score)
    keep = _missing(score, val, acc)
    score = score[keep].assign(_v=val[keep])
    order = {n: i for i, n in enumerate(k["name"])}
    score = score.assign(_o=score["key"].map(order)).sort_values(["_o", LINE_COL], kind="mergesort")
    dup = score.duplicated(["finess", "annee", "secteur"], keep="first")
    acc.unused["score QLS d'une autre clé du même secteur et de la même année"] += int(dup.sum())
    score = score[~dup]
    num = pd.to_numeric(score["_v"], errors="coerce")
    if num.notna().sum() >= 10 and num.max() <= 1:
        acc.notes.append(
            "BQSS : tous les scores QLS retenus sont compris entre 0 et 1 ; le projet les lit comme des pourcentages "
            "(0 à 100) : vérifiez l'unité des clés QLS de metadata.csv avant d'interpréter le ciblage."
        )
    on = ["annee", "finess", "secteur"]
    out = {"finess_geo": score["finess"].values, "annee": score["annee"].values, "secteur": score["secteur"].values,
           "score": score["_v"].values}
    for role in ("n_dossiers", "ic_bas", "ic_haut"):
        part = rows[rows["role"] == role]
        vals, cand = _partner(score, part, on)
        _account(score, part, cand, on, known, acc, f"QLS {role}")
        out[role] = vals.values
    out[FILE_COL] = fname
    out[LINE_COL] = score[LINE_COL].values
    return pd.DataFrame(out)


def to_sources(valeur, metadata, rules: dict, known: set[str] | None):
    """Raw tables (certification, esatis, qls) from a valeur.csv / metadata.csv pair.

    ``valeur`` and ``metadata`` are :class:`analysis.reading.official.OfficialFile`; their counts
    (``unused_rows``, ``meta['lookup_rows']``, ``meta['outside_rows']``) and notes are filled here.
    """
    meta_df = metadata.table.data
    sel = select_keys(meta_df, rules)
    used_meta = int(meta_df["name"].astype(str).str.strip().isin(sel.names()).sum())
    metadata.meta["lookup_rows"] = used_meta
    metadata.unused_rows = len(meta_df) - used_meta
    valeur.notes.extend(sel.notes)
    fname = valeur.path.name
    df, counts = read_values(valeur.path, sel.names())
    valeur.meta.update(counts)
    if counts.get("annee_min"):
        valeur.nature = f"HAS BQSS : valeurs (éditions {counts['annee_min']}–{counts['annee_max']})"
    acc = Account()
    out = []
    for groupe in ("certification_v2014", "certification_v2021"):
        raw = _certification(df, sel.keys, groupe, rules, known, acc, fname)
        if raw is not None and len(raw):
            out.append(("certification", raw))
    raw = _esatis(df, sel.keys, acc, fname)
    if raw is not None and len(raw):
        out.append(("esatis", raw))
    raw = _qls(df, sel.keys, known, acc, fname)
    if raw is not None and len(raw):
        out.append(("qls", raw))
    n_primary = sum(len(r) for _, r in out)
    acc.unused["clés non utilisées"] += counts["lignes"] - len(df)
    valeur.meta["lookup_rows"] = acc.lookup_in
    valeur.meta["outside_rows"] = acc.lookup_out
    valeur.unused_rows = counts["lignes"] - n_primary - acc.lookup_in - acc.lookup_out
    assert valeur.unused_rows == sum(acc.unused.values()), (valeur.unused_rows, acc.unused)
    valeur.notes.extend(acc.notes)
    detail = " ; ".join(f"{r} : {_fmt(v)}" for r, v in sorted(acc.unused.items(), key=lambda kv: -kv[1]) if v)
    valeur.notes.append(
        f"« {fname} » (HAS BQSS) : {_fmt(counts['lignes'])} ligne(s) ; {_fmt(n_primary)} donnent une décision de "
        f"certification, un score e-Satis ou un résultat QLS, {_fmt(acc.lookup_in + acc.lookup_out)} les complètent "
        f"(dates, bornes, nombre de dossiers) ; sans objet : {detail or 'aucune'}."
    )
    return out
