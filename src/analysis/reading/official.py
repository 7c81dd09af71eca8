"""Fichiers officiels HAS reconnus tels que téléchargés, quel que soit leur nom.

- Certification HAS, référentiel 2021 (open data) : ``demarche.csv`` (``code_demarche``,
  ``date_de_decision``, ``Decision_de_la_CCES``) et ``etablissement-geo.csv`` (``code_demarche``,
  ``FINESS_EJ``, ``FINESS_EG``, ``RS_eg``, ``Site_Principal``). Chaque site géographique prend la
  décision de sa démarche ; une démarche sans décision (visite programmée) ne donne aucun niveau.
- Résultats IQSS e-Satis (classeur, feuille ``Resultats`` avec ``finess``, ``finess_geo``,
  ``score_*_ajust``, ``classement``, ``evolution``), toute campagne et tout secteur : indicateur
  optionnel « expérience patient » (score, classe, évolution), sans cible ni ciblage. Les classes
  ``DI``, ``NR``, ``NV`` restent des classes, jamais des nombres.

Ces fichiers sont nationaux : les lignes des établissements absents du référentiel régional sont
comptées « hors référentiel » (ni acceptées ni rejetées), ce qui garde les comptes réconciliés.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import bqss, finess
from .readers import FILE_COL, LINE_COL, InputError, RawTable, read_any, xlsx_sheet_names

KIND_DEMARCHE = "has_certification_demarches"
KIND_SITES = "has_certification_sites"
KIND_ESATIS = "has_esatis"
KIND_FINESS = finess.KIND
KIND_BQSS_VALEUR = bqss.KIND_VALEUR
KIND_BQSS_META = bqss.KIND_META

_DEMARCHE_COLS = {"code_demarche", "date_de_decision", "decision_de_la_cces"}
_SITES_COLS = {"code_demarche", "finess_ej", "finess_eg", "rs_eg", "site_principal"}
_ESATIS_COLS = {"finess", "finess_geo", "classement", "evolution"}
_ESATIS_SCORE = re.compile(r"^score_all_([a-z0-9]+)_ajust$")
_SECTOR_LABELS = {"ssr": "SSR", "smr": "SSR", "rea": "MCO 48 h", "mco": "MCO 48 h", "ca": "MCO chirurgie ambulatoire"}


@dataclass
class OfficialFile:
    path: Path
    kind: str
    nature: str
    source: str
    table: RawTable
    encoding: str = ""
    separator: str = ""
    sheet: str = ""
    unused_rows: int = 0  # rows that carry no data by nature (e.g. démarche without decision)
    notes: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)


def read_candidate(path: Path) -> RawTable:
    """Read a file, picking the ``Resultats`` sheet of a workbook when there is one.

    A FINESS extract (no header row, recognised by its first line) is read by :mod:`.finess`.
    """
    if finess.sniff(path):
        return finess.read_extract(path)
    if bqss.sniff_valeur(path):  # 3.8 million rows: read later, only the keys needed
        return bqss.stub_table(path)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        try:
            names = xlsx_sheet_names(path)
        except Exception:  # noqa: BLE001 - read_any gives the clear message
            names = []
        if "Resultats" in names:
            return read_any(path, "Resultats")
    return read_any(path)


def detect_table(path: Path, table: RawTable) -> OfficialFile | None:
    cols = set(table.data.columns)
    common = dict(path=path, table=table, encoding=table.encoding, separator=table.separator, sheet=table.sheet)
    if finess.is_extract_table(cols):
        info = finess.describe(path, table)
        return OfficialFile(
            kind=KIND_FINESS, nature=info["nature"], source="etablissements", unused_rows=info["sans_objet"],
            notes=info["notes"], meta={"date_extraction": info["date_extraction"]}, **common,
        )
    if set(bqss.VALEUR_COLS) <= cols:
        return OfficialFile(kind=KIND_BQSS_VALEUR, nature="HAS BQSS : valeurs", source="bqss", **common)
    if bqss.is_metadata(cols):
        return OfficialFile(kind=KIND_BQSS_META, nature=f"HAS BQSS : métadonnées ({len(table.data)} clés)",
                            source="bqss", **common)
    if _DEMARCHE_COLS <= cols:
        return OfficialFile(
            kind=KIND_DEMARCHE, nature="HAS certification (référentiel 2021) : démarches et décisions",
            source="certification", **common,
        )
    if _SITES_COLS <= cols:
        return OfficialFile(
            kind=KIND_SITES, nature="HAS certification (référentiel 2021) : sites géographiques",
            source="certification", **common,
        )
    if _ESATIS_COLS <= cols:
        sectors = [m.group(1) for c in table.data.columns if (m := _ESATIS_SCORE.match(c))]
        if sectors:
            token = sectors[0]
            year = _campaign_year(path, table)
            label = _SECTOR_LABELS.get(token, token.upper())
            return OfficialFile(
                kind=KIND_ESATIS, nature=f"HAS IQSS e-Satis {label}, campagne {year}", source="esatis",
                meta={"token": token, "secteur": label, "annee": year, "score_col": f"score_all_{token}_ajust"},
                **common,
            )
    return None


def _campaign_year(path: Path, table: RawTable) -> int:
    for col in ("annee", "campagne", "annee_campagne"):
        if col in table.data.columns:
            vals = pd.to_numeric(table.data[col], errors="coerce").dropna().unique()
            if len(vals) == 1:
                return int(vals[0])
    years = re.findall(r"(?<!\d)(20\d\d)(?!\d)", path.name)
    if len(set(years)) == 1:
        return int(years[0])
    raise InputError(
        f"Le fichier e-Satis « {path.name} » ne dit pas de quelle campagne il s'agit : gardez l'année dans son "
        "nom, comme à son téléchargement (par exemple « resultats-esatis-ssr-2024.xlsx »)."
    )


def _certification_rows(officials: list[OfficialFile]) -> list[tuple[str, pd.DataFrame, list[OfficialFile]]]:
    dem = [o for o in officials if o.kind == KIND_DEMARCHE]
    sites = [o for o in officials if o.kind == KIND_SITES]
    if not dem and not sites:
        return []
    if not dem or not sites:
        lonely = dem or sites
        for o in lonely:
            o.unused_rows = len(o.table.data)
            o.notes.append(
                f"« {o.path.name} » : fichier HAS de certification utilisé seul — il faut à la fois le fichier des "
                "démarches (demarche.csv) et celui des sites (etablissement-geo.csv) ; aucune décision n'en a été tirée."
            )
        return []
    decisions = pd.concat([o.table.data for o in dem], ignore_index=True)
    decisions["code_demarche"] = decisions["code_demarche"].astype(str).str.strip()
    decisions = decisions.drop_duplicates("code_demarche", keep="last").set_index("code_demarche")
    has_decision = (decisions["date_de_decision"].astype(str).str.strip() != "") & (
        decisions["decision_de_la_cces"].astype(str).str.strip() != ""
    )
    for o in dem:
        codes = o.table.data["code_demarche"].astype(str).str.strip()
        o.unused_rows = int((~codes.map(has_decision).fillna(False).astype(bool)).sum())
        o.meta["demarches_sans_decision"] = o.unused_rows
        o.meta["lookup_rows"] = len(codes) - o.unused_rows
    out = []
    for o in sites:
        d = o.table.data
        code = d["code_demarche"].astype(str).str.strip()
        with_dec = code.map(has_decision).fillna(False).astype(bool)
        o.unused_rows = int((~with_dec).sum())
        o.meta["sites_sans_decision"] = o.unused_rows
        sub = d[with_dec]
        raw = pd.DataFrame(
            {
                "finess_geo": sub["finess_eg"].values,
                "date_decision": code[with_dec].map(decisions["date_de_decision"]).values,
                "niveau": code[with_dec].map(decisions["decision_de_la_cces"]).values,
                FILE_COL: o.path.name,
                LINE_COL: sub[LINE_COL].values,
            }
        )
        out.append(("certification", raw, [o]))
    return out


def _esatis_rows(officials: list[OfficialFile]) -> list[tuple[str, pd.DataFrame, list[OfficialFile]]]:
    out = []
    for o in officials:
        if o.kind != KIND_ESATIS:
            continue
        d = o.table.data
        score = d[o.meta["score_col"]].astype(str).str.strip()
        cls = d["classement"].astype(str).str.strip()
        raw = pd.DataFrame(
            {
                "finess_geo": d["finess_geo"].values,
                "annee": str(o.meta["annee"]),
                "secteur": o.meta["secteur"],
                "indicateur": "satisfaction_globale",
                "score": score.values,
                "classement": cls.values,
                "evolution": d["evolution"].astype(str).str.strip().values,
                FILE_COL: o.path.name,
                LINE_COL: d[LINE_COL].values,
            }
        )
        out.append(("esatis", raw, [o]))
    return out


def to_sources(officials: list[OfficialFile], rules: dict, known: set[str] | None = None):
    """Turn recognised official files into raw tables of the sources they feed.

    ``known``: FINESS of the referential (BQSS rows that only complete another row — dates, bounds —
    are counted outside the referential with it).
    """
    return _certification_rows(officials) + _esatis_rows(officials) + _bqss_rows(officials, rules, known)


def _bqss_rows(officials: list[OfficialFile], rules: dict, known) -> list[tuple[str, pd.DataFrame, list[OfficialFile]]]:
    val = [o for o in officials if o.kind == KIND_BQSS_VALEUR]
    meta = [o for o in officials if o.kind == KIND_BQSS_META]
    if not val and not meta:
        return []
    if not val or not meta or len(val) > 1 or len(meta) > 1:
        for o in val + meta:
            o.unused_rows = len(o.table.data) if o.kind == KIND_BQSS_META else 0
            o.notes.append(
                f"« {o.path.name} » : fichier HAS BQSS non utilisé — il faut exactement un fichier des valeurs "
                "(valeur.csv) et un fichier des métadonnées (metadata.csv) de la même édition."
            )
            if o.kind == KIND_BQSS_VALEUR:
                _, counts = bqss.read_values(o.path, set())
                o.unused_rows = counts["lignes"]
        return []
    return [(src, raw, [val[0]]) for src, raw in bqss.to_sources(val[0], meta[0], rules, known)]


def lookup_rows(fname: str, officials: list[OfficialFile]) -> int:
    """Rows of a démarche file used as a lookup (they feed the sites' rows, not a table of their own)."""
    return sum(o.meta.get("lookup_rows", 0) for o in officials if o.path.name == fname)


def outside_rows(fname: str, officials: list[OfficialFile]) -> int:
    """Rows that only complete a row of an establishment outside the referential (BQSS)."""
    return sum(o.meta.get("outside_rows", 0) for o in officials if o.path.name == fname)


def extra_read_rows(fname: str, officials: list[OfficialFile]) -> int:
    return sum(o.unused_rows for o in officials if o.path.name == fname)


def low_priority_names(officials: list[OfficialFile]) -> set[str]:
    """Files whose rows give way to another file's on the same key (BQSS: a hand-made QLS file or an
    e-Satis workbook, which carries the class, say more)."""
    return {o.path.name for o in officials if o.kind == KIND_BQSS_VALEUR}


def merge_with_hand_made(src: str, parts: list[pd.DataFrame], official_names: set[str],
                         low_priority: set[str] = frozenset(),
                         key: tuple[str, ...] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Combine a hand-made source with official rows.

    For certification, both kinds are kept as dated decisions: the level in force in year N is the
    latest decision, so when both speak of one site the later decision wins. On the same date with
    different levels, the HAS decision is kept and the hand-made line is set aside (reported).
    For the other sources, rows of ``low_priority`` files (BQSS) whose key another file already
    gives are set aside (reported).
    """
    df = pd.concat(parts, ignore_index=True)
    notes: list[str] = []
    if src != "certification" and low_priority and not df.empty:
        key = list(key or ("finess_geo", "annee"))
        low = df[FILE_COL].isin(low_priority)
        taken = df.loc[~low, key].drop_duplicates()
        clash = df[low].reset_index().merge(taken, on=key, how="inner")["index"]
        if len(clash):
            df = df.drop(index=clash)
            notes.append(
                f"{src} : {len(clash)} ligne(s) de la BQSS écartée(s) : un autre fichier donne déjà la même clé "
                f"({', '.join(key)}) et fait foi."
            )
    if src != "certification" or df.empty:
        return df.sort_values(["finess_geo", FILE_COL, LINE_COL], kind="mergesort").reset_index(drop=True), notes
    is_off = df[FILE_COL].isin(official_names)
    both = set(df.loc[is_off, "finess_geo"]) & set(df.loc[~is_off, "finess_geo"])
    if both:
        notes.append(
            f"Certification : {len(both)} site(s) figurent à la fois dans le fichier saisi et dans les données HAS ; "
            "pour chacun, la décision la plus récente fait foi."
        )
    key = ["finess_geo", "date_decision"]
    df = df.assign(_off=is_off.astype(int))
    df = df.sort_values(key + ["_off", FILE_COL, LINE_COL], kind="mergesort")
    dup = df.duplicated(key, keep="last")
    dropped = df[dup]
    if len(dropped):
        same = dropped.merge(df[~dup][key + ["niveau"]], on=key, suffixes=("", "_has"))
        diff = same[same["niveau"] != same["niveau_has"]]
        if len(diff):
            notes.append(
                f"Certification : {len(diff)} décision(s) saisie(s) contredisent la décision HAS du même jour ; "
                "la décision HAS est retenue (" + ", ".join(
                    f"{r.finess_geo} le {r.date_decision:%d/%m/%Y} : saisi {r.niveau}, HAS {r.niveau_has}"
                    for r in diff.itertuples()
                ) + ")."
            )
    df = df[~dup].drop(columns="_off")
    return df.sort_values(key + [FILE_COL, LINE_COL], kind="mergesort").reset_index(drop=True), notes
