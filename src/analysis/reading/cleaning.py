"""Lecture et validation de toutes les sources d'un dossier d'entrée (contrat de données, section 1).

Chaque ligne lue finit soit acceptée (tables nettoyées), soit dans les rejets (fichier, ligne,
colonne, valeur, motif en français), soit fusionnée avec son doublon exact (avertissement), soit —
pour les fichiers nationaux officiels seulement — comptée hors du référentiel régional. Les comptes
par fichier se réconcilient exactement : ``lues = acceptees + rejetees + doublons + hors_referentiel``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..cache import read_parquet_once
from ..rules.schema import Source
from . import finess, official
from .files import INPUT_SUFFIXES
from .parsing import Parsed, parse_column
from .readers import (
    FILE_COL,
    LINE_COL,
    InputError,
    RawTable,
    normalize_name,
    sha256_file,
    take_cell_issues,
)

log = logging.getLogger(__name__)

REJECT_COLUMNS = ["fichier", "ligne", "colonne", "valeur", "motif"]
MSG_UNKNOWN = "établissement inconnu du référentiel"



@dataclass
class FileReport:
    fichier: str
    source: str
    nature: str  # "saisie ARS" or the kind of official file
    sha256: str
    encodage: str = ""
    separateur: str = ""
    feuille: str = ""
    lignes_lues: int = 0
    acceptees: int = 0
    rejetees: int = 0
    doublons_fusionnes: int = 0
    hors_referentiel: int = 0
    sans_objet: int = 0  # official files: démarche without decision (no level to take)
    reparees: int = 0
    lignes_vides: int = 0
    date_extraction: str = ""  # official files that carry one (FINESS extract: AAAA-MM-JJ)

    def reconciles(self) -> bool:
        return self.lignes_lues == (
            self.acceptees + self.rejetees + self.doublons_fusionnes + self.hors_referentiel + self.sans_objet
        )


@dataclass
class CleanResult:
    tables: dict[str, pd.DataFrame]
    rejects: pd.DataFrame
    files: list[FileReport]
    warnings: list[str] = field(default_factory=list)
    absent_sources: list[str] = field(default_factory=list)
    ignored_files: list[str] = field(default_factory=list)

    def files_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(f) for f in self.files])


# --------------------------------------------------------------------------------------------
# Discovery


def input_sources(sources: dict[str, Source]) -> list[str]:
    """Sources qu'un analyste peut fournir en fichier (e-Satis ne vient que des fichiers HAS)."""
    return [n for n, s in sources.items() if not s.official_only]


def source_from_filename(path: Path, sources: dict[str, Source]) -> str | None:
    stem = normalize_name(path.stem)
    names = {normalize_name(n): src for src in input_sources(sources) for n in sources[src].file_names}
    if stem in names:
        return names[stem]
    for name in sorted(names, key=len, reverse=True):
        if stem.startswith(name + "_") or stem.endswith("_" + name):
            return names[name]
    return None


def source_from_columns(columns: list[str], sources: dict[str, Source]) -> str | None:
    cols = set(columns)
    matches = []
    for name in input_sources(sources):
        src = sources[name]
        ok = True
        for col in src.columns:
            if col.required and not ({col.name, *col.aliases} & cols):
                ok = False
                break
        if ok:
            matches.append(name)
    # the most specific source wins (most required columns)
    if not matches:
        return None
    matches.sort(key=lambda n: len(sources[n].required_columns), reverse=True)
    if len(matches) > 1 and len(sources[matches[0]].required_columns) == len(sources[matches[1]].required_columns):
        return None
    return matches[0]


def list_input_files(data_dir: Path) -> list[Path]:
    if data_dir.is_file():
        raise InputError(
            f"« {data_dir} » est un fichier, pas un dossier : DATA doit désigner le dossier qui contient les "
            f"fichiers d'entrée (par exemple DATA={data_dir.parent})."
        )
    if not data_dir.is_dir():
        raise InputError(f"Le dossier d'entrée « {data_dir} » n'existe pas.")
    return sorted(
        p
        for p in data_dir.iterdir()
        if p.is_file()
        and p.suffix.lower() in INPUT_SUFFIXES
        and not p.name.startswith(("~$", ".", "_"))
    )


# --------------------------------------------------------------------------------------------
# Validation of one source


def _resolve_columns(raw: pd.DataFrame, source: Source, files: list[str], optional=frozenset()) -> dict[str, str]:
    """Map schema column -> raw column; raise a clear error for missing required columns."""
    mapping: dict[str, str] = {}
    for col in source.columns:
        for cand in (col.name, *col.aliases):
            if cand in raw.columns:
                mapping[col.name] = cand
                break
    missing = [c for c in source.required_columns if c not in mapping and c not in optional]
    if missing:
        present = [c for c in raw.columns if not c.startswith("_")]
        raise InputError(
            f"Le fichier « {', '.join(files)} » (source « {source.name} ») ne contient pas la ou les colonnes "
            f"obligatoires : {', '.join(missing)}.\n"
            f"Colonnes attendues : {', '.join(source.required_columns)} "
            f"(facultatives : {', '.join(c.name for c in source.columns if not c.required) or 'aucune'}).\n"
            f"Colonnes trouvées : {', '.join(present) or 'aucune'}."
        )
    return mapping


def _fmt_bound(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v).replace(".", ",")


def parse_code(s: pd.Series, col) -> tuple[pd.Series, pd.Series]:
    """Code déclaré : valeur admise (casse et accents indifférents) ou autre graphie de
    ``correspondance`` ; sans ``valeurs`` déclarées, le code normalisé (``paramédical`` -> ``paramedical``)."""
    text = s.astype("object").where(s.notna(), "").map(lambda v: str(v).replace("\u00a0", " ").strip())
    norm = text.map(normalize_name)
    table = {normalize_name(k): v for k, v in col.mapping}
    if col.values:
        table.update({normalize_name(v): v for v in col.values})
        mapped = norm.map(table)
        bad = mapped.isna() & (text != "")
        expected = ", ".join(col.values)
        if col.mapping:
            expected += " ; ou : " + ", ".join(k for k, _ in col.mapping)
        errors = pd.Series([None] * len(s), index=s.index, dtype=object)
        errors[bad.to_numpy()] = f"valeur non admise (attendu : {expected})"
        return mapped.where(~bad, pd.NA).where(text != "", pd.NA).astype("string"), errors
    mapped = norm.map(lambda v: table.get(v, v))
    errors = pd.Series([None] * len(s), index=s.index, dtype=object)
    return mapped.where(mapped != "", pd.NA).astype("string"), errors


_OPS = {
    "<=": lambda a, b: a <= b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
}


def _source_checks(source: Source, df: pd.DataFrame) -> dict[str, pd.Series]:
    """Contrôles déclarés de la source ; rend {colonne: motifs (ou None)}. Un contrôle ne porte que sur
    les lignes où ses colonnes sont renseignées (``ensemble`` : toutes ou aucune)."""
    out: dict[str, pd.Series] = {}
    for chk in source.checks:
        if chk.condition is not None:
            left, op, right = chk.condition
            a = df[left]
            b = df[right] if isinstance(right, str) else right
            known = a.notna() & (b.notna() if isinstance(right, str) else True)
            with np.errstate(invalid="ignore"):
                ok = _OPS[op](a, b)
            fail = known & ~ok.fillna(True).astype(bool)
            target = left
        else:
            present = pd.concat([df[c].notna() for c in chk.together], axis=1)
            fail = present.any(axis=1) & ~present.all(axis=1)
            missing = [c for c in chk.together]
            target = missing[-1]
        s = pd.Series([None] * len(df), index=df.index, dtype=object)
        s[fail.fillna(False).astype(bool).to_numpy()] = chk.motif
        prev = out.get(target)
        out[target] = s if prev is None else prev.where(prev.notna(), s)
    return out


def _join_rows(frame: pd.DataFrame, sep: str) -> pd.Series:
    """``frame.agg(sep.join, axis=1)`` for a frame of strings, without pandas' per-row overhead."""
    rows = frame.to_numpy(dtype=object)
    return pd.Series([sep.join(r) for r in rows], index=frame.index, dtype=object)


def validate_source(
    source_name: str,
    raw: pd.DataFrame,
    rules: dict,
    *,
    files: list[str],
    known_finess: set[str] | None = None,
    scope_only: set[str] | None = None,
    optional: frozenset[str] = frozenset(),
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Validate a raw string table (with ``_fichier``, ``_ligne``) of one source.

    Returns (accepted table, rejects, per-row outcome frame with columns
    ``_fichier, _ligne, issue`` where issue ∈ {accepte, rejete, doublon, hors_referentiel}
    and ``repare`` bool).

    ``known_finess``: rows whose finess_geo is not in it are rejected.
    ``scope_only``: for national official files, rows outside it are counted ``hors_referentiel``
    instead of rejected.
    ``optional``: required columns that may be absent or empty in this table (a FINESS extract's
    statut; an ``etablissements`` file that completes an extract).
    """
    source = rules.source_specs[source_name]
    mapping = _resolve_columns(raw, source, files, optional)
    n = len(raw)
    idx = raw.index
    typed = pd.DataFrame(index=idx)
    errors: dict[str, pd.Series] = {}
    repaired = pd.Series(False, index=idx)
    originals: dict[str, pd.Series] = {}
    for col in source.columns:
        if col.name in mapping:
            s = raw[mapping[col.name]]
        else:
            s = pd.Series([""] * n, index=idx, dtype=object)
        originals[col.name] = s.astype(object).where(s.notna(), "")
        if col.kind == "code":
            vals, errs = parse_code(s, col)
            p = Parsed(vals, errs, pd.Series(False, index=idx))
        else:
            p = parse_column(s, col.kind)
        e = p.errors.copy()
        if col.required and col.name not in optional:
            empty = originals[col.name].map(lambda v: str(v).strip() == "")
            e[empty & e.isna()] = "valeur obligatoire manquante"
        if col.min_value is not None or col.max_value is not None:
            v = p.values
            if col.min_value is not None:
                low = (v < col.min_value).fillna(False).astype(bool) & e.isna()
                e[low] = f"valeur hors bornes (≥ {_fmt_bound(col.min_value)} attendu)"
            if col.max_value is not None:
                high = (v > col.max_value).fillna(False).astype(bool) & e.isna()
                e[high] = f"valeur hors bornes (≤ {_fmt_bound(col.max_value)} attendu)"
        typed[col.name] = p.values
        errors[col.name] = e
        repaired |= p.repaired
    for col, e in _source_checks(source, typed).items():
        prev = errors.get(col)
        errors[col] = e if prev is None else prev.where(prev.notna(), e)

    reject_rows: list[pd.DataFrame] = []
    any_error = pd.Series(False, index=idx)
    for col in source.column_names:
        e = errors[col]
        m = e.notna()
        if m.any():
            any_error |= m
            reject_rows.append(
                pd.DataFrame(
                    {
                        "fichier": raw.loc[m, FILE_COL],
                        "ligne": raw.loc[m, LINE_COL],
                        "colonne": raw.loc[m, FILE_COL].map(lambda _f, c=col: c),
                        "valeur": originals[col][m].astype(str),
                        "motif": e[m].astype(str),
                    }
                )
            )

    outcome = pd.Series("accepte", index=idx, dtype=object)
    outcome[any_error] = "rejete"

    # National official files: rows of establishments outside the referential are out of scope,
    # whatever their content (they are counted, neither accepted nor rejected).
    if scope_only is not None and "finess_geo" in typed:
        f = typed["finess_geo"]
        out_scope = ~f.isin(scope_only).fillna(False).astype(bool)
        outcome[out_scope] = "hors_referentiel"
        if reject_rows:
            keep = set(raw.loc[~out_scope, LINE_COL].tolist())
            reject_rows = [r[r["ligne"].isin(keep)] for r in reject_rows]

    # Unknown establishments
    if source_name != "etablissements" and "finess_geo" in typed:
        f = typed["finess_geo"]
        valid = outcome == "accepte"
        if known_finess is not None and scope_only is None:
            unknown = valid & ~f.isin(known_finess).fillna(False).astype(bool)
            if unknown.any():
                outcome[unknown] = "rejete"
                reject_rows.append(
                    pd.DataFrame(
                        {
                            "fichier": raw.loc[unknown, FILE_COL],
                            "ligne": raw.loc[unknown, LINE_COL],
                            "colonne": "finess_geo",
                            "valeur": originals["finess_geo"][unknown].astype(str),
                            "motif": MSG_UNKNOWN,
                        }
                    )
                )

    # Duplicates on the key among rows still valid
    valid = outcome == "accepte"
    key = list(source.key)
    if valid.any():
        vt = typed[valid]
        vals = vt[source.column_names].astype("string").fillna("\x00")
        keys = _join_rows(vals[key], "\x1f")
        full = _join_rows(vals, "\x1f")
        nunique = full.groupby(keys).transform("nunique")
        size = full.groupby(keys).transform("size")
        conflict = nunique > 1
        if conflict.any():
            c_idx = conflict[conflict].index
            where = raw.loc[c_idx, FILE_COL] + ":" + raw.loc[c_idx, LINE_COL].astype(str)
            groups = where.groupby(keys[c_idx]).agg(list)
            msgs = []
            for i in c_idx:
                others = [w for w in groups[keys[i]] if w != where[i]]
                same_file = all(o.split(":", 1)[0] == raw.at[i, FILE_COL] for o in others)
                refs = [o.split(":", 1)[1] if same_file else o for o in others]
                label = "la ligne" if len(refs) == 1 else "les lignes"
                msgs.append(
                    f"clé en double ({', '.join(key)}) avec des valeurs différentes : en conflit avec {label} "
                    + ", ".join(refs)
                )
            outcome[c_idx] = "rejete"
            reject_rows.append(
                pd.DataFrame(
                    {
                        "fichier": raw.loc[c_idx, FILE_COL],
                        "ligne": raw.loc[c_idx, LINE_COL],
                        "colonne": ", ".join(key),
                        "valeur": vals.loc[c_idx, key].agg(" | ".join, axis=1).str.replace("\x00", ""),
                        "motif": msgs,
                    },
                    index=c_idx,
                )
            )
        dup = (~conflict) & (size > 1) & keys.duplicated(keep="first")
        outcome[dup[dup].index] = "doublon"

    accepted_mask = outcome == "accepte"
    accepted = typed.loc[accepted_mask, source.column_names].copy()
    accepted[FILE_COL] = raw.loc[accepted_mask, FILE_COL].astype("string")
    accepted[LINE_COL] = raw.loc[accepted_mask, LINE_COL].astype("int64")
    accepted = accepted.sort_values(key + [FILE_COL, LINE_COL], kind="mergesort").reset_index(drop=True)

    rejects = (
        pd.concat(reject_rows, ignore_index=True) if reject_rows else pd.DataFrame(columns=REJECT_COLUMNS)
    )
    outcomes = pd.DataFrame(
        {FILE_COL: raw[FILE_COL], LINE_COL: raw[LINE_COL], "issue": outcome, "repare": repaired & accepted_mask}
    )
    return accepted, rejects, outcomes


# --------------------------------------------------------------------------------------------
# Whole folder


def _report_for(path: Path, source: str, nature: str, table: RawTable | None) -> FileReport:
    rep = FileReport(fichier=path.name, source=source, nature=nature, sha256=sha256_file(path))
    if table is not None:
        rep.encodage = table.encoding
        rep.separateur = table.separator
        rep.feuille = table.sheet
        rep.lignes_vides = table.empty_lines
    return rep


def _check_file(table: RawTable, source: Source, warnings: list[str], optional: frozenset = frozenset()) -> None:
    """Per-file checks before the files of one source are combined: each file must hold the
    required columns (a second file lacking one stops the run too); cells unreadable in a used
    column cost their row; reading notes and header-only files are said in the warnings."""
    src = source.name
    _resolve_columns(table.data, source, [table.name], optional)
    used = {c for col in source.columns for c in (col.name, *col.aliases)}
    take_cell_issues(table, used)
    warnings.extend(table.notes)
    if not len(table.data) and not table.malformed:
        warnings.append(
            f"« {table.name} » (source « {src} ») ne contient que sa ligne d'en-tête : aucune donnée n'en a été lue."
        )


#: entrées gardées au plus dans le cache des sources validées (une par source et par état de ses
#: fichiers : de quoi garder plusieurs générations de corrections de toutes les sources), et taille
#: cumulée au plus (les tables nationales tirées de la BQSS pèsent des dizaines de Mio chacune)
VALIDATION_CACHE_MAX_ENTRIES = 400
VALIDATION_CACHE_MAX_BYTES = 1 << 30


def _validation_key(salt: str, src: str, names: list[str], raw: pd.DataFrame, rules, known, scope) -> str:
    """Clé d'une validation de source : tout ce dont elle dépend, dont la table brute elle-même
    (octets de sa sérialisation exacte : valeurs, types et ordre des lignes ; deux tables différentes ne
    partagent jamais une clé). Une source alimentée par plusieurs fichiers officiels (deux campagnes
    e-Satis, la BQSS) est validée par parties : chacune a ainsi sa clé."""
    import hashlib
    import json
    import pickle

    def ids(values):
        return None if values is None else hashlib.sha256("\n".join(sorted(map(str, values))).encode()).hexdigest()

    table = hashlib.sha256(pickle.dumps(raw, protocol=pickle.HIGHEST_PROTOCOL)).hexdigest()
    text = json.dumps([salt, src, names, table, rules.name, rules.sha256, ids(known), ids(scope)])
    return hashlib.sha256(text.encode()).hexdigest()


def _read_file(path: Path, cache, salt: str) -> RawTable:
    """:func:`official.read_candidate`, ou sa lecture précédente d'un fichier de même nom et de mêmes
    octets (``cache``, clé avec ``salt`` : code et versions) : la table lue, ses lignes écartées et ses
    avertissements sont les mêmes. La valeur de la BQSS, lue plus tard par clés, n'y passe pas."""
    import hashlib
    import json
    import pickle

    from . import bqss

    if cache is None or bqss.sniff_valeur(path):
        return official.read_candidate(path)
    key = hashlib.sha256(json.dumps([salt, path.name, sha256_file(path)]).encode()).hexdigest()
    hit = cache.get(key)
    if hit is not None:
        try:
            table = pickle.loads(hit)  # noqa: S301 - écrit par ce programme, vérifié par empreinte
        except Exception:  # noqa: BLE001 - entrée d'une autre version : le fichier est relu
            table = None
        if isinstance(table, RawTable):
            table.path = path
            return table
    data = pickle.dumps(official.read_candidate(path), protocol=pickle.HIGHEST_PROTOCOL)
    cache.put(key, data)
    # la table relue de sa sérialisation, comme à la reprise : la clé de validation (octets de la table
    # sérialisée, voir _validation_key) est alors la même, fichier lu ou repris
    return pickle.loads(data)  # noqa: S301 - sérialisée à l'instant


def clean_folder(data_dir: str | Path, rules: dict, cache=None, cache_salt: str = "",
                 read_cache=None) -> CleanResult:
    """Read, recognise and validate every input file of ``data_dir``.

    ``cache`` (:class:`analysis.cache.ContentCache`) : sources déjà validées, reprises quand leur table
    brute (lue des fichiers), le référentiel, les règles et ``cache_salt`` (code et versions) n'ont pas
    changé ; une source dont un fichier a été corrigé est seule validée à nouveau. ``read_cache`` (même
    type) : un fichier dont le nom et les octets n'ont pas changé n'est pas relu non plus, sa table lue
    est reprise (:func:`_read_file`)."""
    import pickle

    data_dir = Path(data_dir)
    paths = list_input_files(data_dir)
    sources = rules.source_specs
    by_source: dict[str, list[RawTable]] = {}
    officials: list[official.OfficialFile] = []
    reports: dict[str, FileReport] = {}
    warnings: list[str] = []
    ignored: list[str] = []

    for path in paths:
        table = _read_file(path, read_cache, cache_salt)
        off = official.detect_table(path, table)
        if off is not None:
            officials.append(off)
            warnings.extend(table.notes)
            continue
        src = source_from_filename(path, sources)
        if src is None:
            src = source_from_columns(list(table.data.columns), sources)
            if src is None:
                cols = ", ".join(c for c in table.data.columns if not c.startswith("_"))
                msg = (
                    f"Fichier non reconnu, ignoré : « {path.name} » (son nom ne désigne aucune source et ses "
                    f"colonnes — {cols} — ne correspondent à aucune)."
                )
                warnings.append(msg)
                ignored.append(path.name)
                continue
            warnings.append(f"« {path.name} » reconnu comme source « {src} » d'après ses colonnes.")
        table.data[FILE_COL] = path.name
        by_source.setdefault(src, []).append(table)
        reports[path.name] = _report_for(path, src, "saisie ARS", table)

    extracts = [o for o in officials if o.kind == official.KIND_FINESS]
    for src, tbls in by_source.items():
        # an etablissements file that completes a FINESS extract needs only finess_geo
        optional = (frozenset(sources[src].required_columns) - {"finess_geo"}
                    if src == "etablissements" and extracts else frozenset())
        for table in tbls:
            _check_file(table, sources[src], warnings, optional)
    if "etablissements" not in by_source and not extracts:
        cols = ", ".join(sources["etablissements"].required_columns)
        raise InputError(
            f"Fichier obligatoire absent : le référentiel « etablissements » (etablissements.csv ou "
            f".xlsx) est introuvable dans « {data_dir} », et aucun extrait FINESS des établissements "
            f"(etalab-cs1100502-stock-….csv, data.gouv.fr) n'y a été déposé.\nColonnes attendues : {cols}."
        )

    tables: dict[str, pd.DataFrame] = {}
    rejects: list[pd.DataFrame] = []
    outcomes: list[pd.DataFrame] = []

    def _validate(src, raw, names, known, scope):
        key = None
        if cache is not None:
            key = _validation_key(cache_salt, src, names, raw, rules, known, scope)
            hit = cache.get(key)
            if hit is not None:
                return pickle.loads(hit)  # noqa: S301 - écrit par ce programme, vérifié par empreinte
        res = validate_source(src, raw, rules, files=names, known_finess=known, scope_only=scope)
        if key is not None:
            cache.put(key, pickle.dumps(res, protocol=pickle.HIGHEST_PROTOCOL))
        return res

    def _run(src: str, raw: pd.DataFrame, names: list[str], known=None, scope=None):
        acc, rej, out = _validate(src, raw, names, known, scope)
        rejects.append(rej)
        outcomes.append(out)
        return acc

    def _malformed(tbls: list[RawTable]):
        for t in tbls:
            if t.malformed:
                rejects.append(
                    pd.DataFrame(
                        [
                            {"fichier": t.name, "ligne": line, "colonne": col, "valeur": val, "motif": msg}
                            for line, col, val, msg in t.malformed
                        ]
                    )
                )
                outcomes.append(
                    pd.DataFrame(
                        {FILE_COL: t.name, LINE_COL: [m[0] for m in t.malformed], "issue": "rejete", "repare": False}
                    )
                )

    def _combine(tbls: list[RawTable]) -> pd.DataFrame:
        return pd.concat([t.data for t in tbls], ignore_index=True)

    referential = None
    if extracts:  # --- referential from a FINESS extract (logic in reading/finess.py) ---
        _malformed(by_source.get("etablissements", []))
        referential = finess.build_referential(
            extracts, by_source.get("etablissements", []), rules,
            lambda raw, names, opt: validate_source("etablissements", raw, rules, files=names, optional=opt),
        )
        rejects.extend(referential.rejects)
        outcomes.extend(referential.outcomes)
        warnings.extend(referential.notes)
        etab = referential.table
    else:
        ref = _combine(by_source["etablissements"])
        _malformed(by_source["etablissements"])
        etab = _run("etablissements", ref, [t.name for t in by_source["etablissements"]])
    tables["etablissements"] = etab
    known = set(etab["finess_geo"].dropna())

    # Official files become raw tables of the sources they feed.
    official_raw: dict[str, list[tuple[pd.DataFrame, official.OfficialFile]]] = {}
    for off in officials:
        reports[off.path.name] = _report_for(off.path, off.source, off.nature, off.table)
        reports[off.path.name].date_extraction = off.meta.get("date_extraction", "")
    for src_name, raw, offs in official.to_sources(officials, rules, known):
        official_raw.setdefault(src_name, []).append((raw, offs))
    for off in officials:
        warnings.extend(off.notes)
        reports[off.path.name].nature = off.nature  # may be refined while reading (BQSS editions)
    official_names = {o.path.name for o in officials}

    for src in sources:
        if src == "etablissements":
            continue
        parts = []
        if src in by_source:
            _malformed(by_source[src])
            parts.append(_combine(by_source[src]))
        off_parts = official_raw.get(src, [])
        if not parts and not off_parts:
            continue
        accepted_parts = []
        if parts:
            raw = pd.concat(parts, ignore_index=True)
            accepted_parts.append(_run(src, raw, [t.name for t in by_source[src]], known=known))
        for raw, _off in off_parts:
            accepted_parts.append(_run(src, raw, sorted(raw[FILE_COL].unique()), scope=known))
        if len(accepted_parts) == 1:
            tables[src] = accepted_parts[0]
        else:
            merged, note = official.merge_with_hand_made(src, accepted_parts, official_names,
                                                         official.low_priority_names(officials),
                                                         key=sources[src].key)
            tables[src] = merged
            if note:
                warnings.extend(note)

    # Per-file counts
    all_out = pd.concat(outcomes, ignore_index=True) if outcomes else pd.DataFrame(columns=[FILE_COL, "issue", "repare"])
    for fname, rep in reports.items():
        o = all_out[all_out[FILE_COL] == fname]
        counts = o["issue"].value_counts()
        lookup = official.lookup_rows(fname, officials)
        rep.acceptees = int(counts.get("accepte", 0)) + lookup
        rep.rejetees = int(counts.get("rejete", 0))
        rep.doublons_fusionnes = int(counts.get("doublon", 0))
        outside = official.outside_rows(fname, officials)
        rep.hors_referentiel = int(counts.get("hors_referentiel", 0)) + outside
        rep.sans_objet = official.extra_read_rows(fname, officials)
        rep.reparees = int(o["repare"].sum())
        rep.lignes_lues = int(len(o)) + lookup + rep.sans_objet + outside
        if rep.doublons_fusionnes:
            warnings.append(
                f"« {fname} » : {rep.doublons_fusionnes} ligne(s) en double exact fusionnée(s) (gardée une fois)."
            )
        if rep.reparees:
            warnings.append(
                f"« {fname} » : {rep.reparees} ligne(s) réparée(s) (FINESS à 8 chiffres complété du zéro initial, "
                "ou code département/région complété)."
            )
        if not rep.reconciles():  # pragma: no cover - internal invariant
            raise AssertionError(f"comptes non réconciliés pour {fname}: {rep}")

    rej = pd.concat([r for r in rejects if len(r)], ignore_index=True) if any(len(r) for r in rejects) else pd.DataFrame(columns=REJECT_COLUMNS)
    rej = rej[REJECT_COLUMNS].copy()
    rej["ligne"] = rej["ligne"].astype("int64")
    rej = rej.sort_values(["fichier", "ligne", "colonne"], kind="mergesort").reset_index(drop=True)
    if referential is not None:
        warnings.extend(finess.absent_note(rej, reports, referential, MSG_UNKNOWN,
                                           {o.path.name for o in officials if o.kind != official.KIND_FINESS}))

    # a source whose files hold a header only is as good as absent (said in the warnings too)
    header_only = {s for s in by_source if all(reports[t.name].lignes_lues == 0 for t in by_source[s])}
    absent = [s for s in input_sources(sources) if (s not in tables or s in header_only) and s != "plans_actions"]
    files = [reports[k] for k in sorted(reports)]
    return CleanResult(
        tables=tables, rejects=rej, files=files, warnings=warnings, absent_sources=absent, ignored_files=ignored
    )


def write_processed(result: CleanResult, dest: Path, cache=None, cache_salt: str = "") -> None:
    """Écrit les tables nettoyées en Parquet (un fichier par source), les rejets et les comptes.

    ``cache`` (:class:`analysis.cache.ContentCache`) : octets Parquet déjà écrits, par empreinte du
    contenu de la table (:func:`analysis.cache.table_fingerprint`), de son nom et de ``cache_salt``
    (code, versions) ; une table inchangée depuis une exécution précédente (toutes sauf celle de la
    source corrigée) est reprise telle quelle au lieu d'être convertie et compressée de nouveau :
    mêmes octets. Mesuré sur une relance après correction d'une ligne, cette écriture était le
    tiers de la lecture."""
    import io

    from ..cache import table_fingerprint

    dest.mkdir(parents=True, exist_ok=True)
    for name, df in result.tables.items():
        target = dest / f"{name}.parquet"
        if cache is None:
            df.to_parquet(target, index=False)
            continue
        key = hashlib.sha256(json.dumps([cache_salt, name, table_fingerprint(df)]).encode()).hexdigest()
        data = cache.get(key)
        if data is None:
            buf = io.BytesIO()
            df.to_parquet(buf, index=False)
            data = buf.getvalue()
            with contextlib.suppress(OSError):  # disque plein : rien n'est gardé, la table est écrite
                cache.put(key, data)
        target.write_bytes(data)
    result.rejects.to_parquet(dest / "rejets.parquet", index=False)
    result.files_frame().to_parquet(dest / "fichiers.parquet", index=False)


def read_processed(src: Path, region: str | None = None) -> dict[str, pd.DataFrame]:
    """Tables nettoyées de ``src`` ; avec ``region``, seulement les lignes des établissements de cette
    région (lecture filtrée par pyarrow : un rapport régional ne charge pas les tables nationales)."""
    tables = {}
    finess = None
    etab_path = src / "etablissements.parquet"
    if region is not None and etab_path.is_file():
        finess = sorted(region_finess(read_parquet_once(etab_path), region))
    for p in sorted(src.glob("*.parquet")):
        if p.stem in ("rejets", "fichiers"):
            continue
        if finess is not None and p.stem != "etablissements":
            import pyarrow.parquet as pq

            if "finess_geo" in pq.read_schema(p).names:
                tables[p.stem] = read_parquet_once(p, filters=[("finess_geo", "in", finess)]).reset_index(drop=True)
                continue
        tables[p.stem] = read_parquet_once(p)
    return tables


def region_finess(etablissements: pd.DataFrame, region: str) -> set[str]:
    return set(etablissements.loc[etablissements["region"].astype("string") == str(region), "finess_geo"]
               .dropna().astype(str))


def rows_of_other_regions(tables: dict, own: set) -> dict[str, int]:
    """Par fichier d'entrée, lignes acceptées qui concernent des établissements hors de ``own``
    (la région du rapport) : elles servent aux rapports des autres régions."""
    out: dict[str, int] = {}
    for df in tables.values():
        if "_fichier" in df.columns and "finess_geo" in df.columns:
            for name, n in df.loc[~df["finess_geo"].astype(str).isin(own), "_fichier"].value_counts().items():
                out[str(name)] = out.get(str(name), 0) + int(n)
    return out


def processed_columns(src: Path, columns: list[str]) -> dict[str, pd.DataFrame]:
    """Quelques colonnes de chaque table nettoyée de ``src`` (celles qui les ont)."""
    import pyarrow.parquet as pq

    out = {}
    for p in sorted(src.glob("*.parquet")):
        if p.stem not in ("rejets", "fichiers") and set(columns) <= set(pq.read_schema(p).names):
            out[p.stem] = read_parquet_once(p, columns=columns)
    return out
