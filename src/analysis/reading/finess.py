"""Extrait public FINESS des établissements, lu tel que téléchargé, comme référentiel.

Fichiers ``etalab-cs1100502-stock-AAAAMMJJ-HHMM.csv`` (établissements) et
``etalab-cs1100507-stock-…`` (les mêmes, suivis d'une section ``geolocalisation``) du jeu
data.gouv.fr « FINESS Extraction du Fichier des établissements ». Ils sont reconnus par leur contenu,
quel que soit leur nom : première ligne ``finess;etalab;<n>;<date d'extraction AAAA-MM-JJ>``, puis des
lignes ``structureet`` de 32 champs séparés par ``;``, sans ligne d'en-tête.

Le référentiel qui en est tiré :

- ne garde que les établissements de santé, par ``categetab`` (liste ``referentiel_finess.
  categories_retenues`` du fichier de règles) ; les autres lignes (EHPAD, pharmacies, médico-social…)
  sont comptées « hors référentiel » avec leur catégorie, comme celles des départements hors ARS
  (``9E`` Saint-Pierre-et-Miquelon, ``9J`` Wallis-et-Futuna) ;
- prend ``finess_ej``, la raison sociale longue (``rslongue``, à défaut ``rs``), la catégorie
  (``libcategetab``) et le département de la ligne ; la région vient du département
  (:mod:`analysis.reading.regions`, ``9A`` … ``9F`` → 971 … 976) ;
- déduit le statut de ``codesph`` puis ``codemft`` (correspondances du fichier de règles) ; sinon
  le statut reste manquant (« non renseigné » dans le rapport et les fiches) ;
- est complété, quand un fichier ``etablissements`` est aussi déposé, par ce fichier : pour chaque
  FINESS, ses valeurs non vides (activités, spécificité, lits, statut…) l'emportent ; ses lignes
  absentes de l'extrait (établissements fermés depuis l'extraction, ou hors des catégories
  retenues) y sont ajoutées et doivent alors porter les colonnes obligatoires. C'est ainsi qu'un
  établissement fermé garde ses années passées dans les tendances.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from .readers import FILE_COL, LINE_COL, RawTable, first_line
from .regions import region_of_departement

KIND = "finess_extrait"
FIELDS = [
    "structureet", "nofinesset", "nofinessej", "rs", "rslongue", "complrs", "compldistrib", "numvoie",
    "typvoie", "voie", "compvoie", "lieuditbp", "commune", "departement", "libdepartement",
    "ligneacheminement", "telephone", "telecopie", "categetab", "libcategetab", "categagretab",
    "libcategagretab", "siret", "codeape", "codemft", "libmft", "codesph", "libsph", "dateouv",
    "dateautor", "datemaj", "numuai",
]
_HEADER = re.compile(r"^\ufeff?finess;etalab;(\d*);(\d{4}-\d{2}-\d{2})\s*$")
ETAB_COLUMNS = [
    "finess_geo", "finess_ej", "raison_sociale", "departement", "region", "statut", "categorie",
    "mco", "ssr", "psy", "had", "specificite", "lits",
]
# columns an ``etablissements`` file must carry for an establishment the extract does not hold
REQUIRED_OUTSIDE = ("raison_sociale", "departement", "region", "statut")
MISSING_STATUT = "non renseigné"


def _fr_date(iso: str) -> str:
    y, m, d = iso.split("-")
    return f"{d}/{m}/{y}"


def _fmt(n: int) -> str:
    return f"{n:,}".replace(",", "\u00a0")


def sniff(path: Path) -> str | None:
    """Date d'extraction (``AAAA-MM-JJ``) si ``path`` a la première ligne d'un extrait FINESS."""
    first = first_line(path, 256)
    if first is None:
        return None
    m = _HEADER.match(first.decode("latin-1"))
    return m.group(2) if m else None


def read_extract(path: Path) -> RawTable:
    """Lignes ``structureet`` d'un extrait FINESS (chaînes, 32 colonnes nommées, ``_ligne``).

    Les autres lignes sont comptées dans ``data.attrs["finess"]`` (géolocalisation, autres sections) ;
    une ligne ``structureet`` qui n'a pas 32 champs est « mal formée » (rejetée avec son numéro).
    """
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = raw.decode("cp1252", errors="replace"), "windows-1252"
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=";", quotechar='"')
    header = next(reader)
    date = header[3].strip() if len(header) > 3 else ""
    rows: list[list[str]] = []
    lines: list[int] = []
    malformed: list[tuple[int, str]] = []
    other: Counter = Counter()
    empty = 0
    n = len(FIELDS)
    for rec in reader:
        line = reader.line_num
        if not rec or all(not c.strip() for c in rec):
            empty += 1
            continue
        kind = rec[0].strip()
        if kind != "structureet":
            other[kind or "(vide)"] += 1
            continue
        if len(rec) > n and not any(c.strip() for c in rec[n:]):
            rec = rec[:n]
        if len(rec) == n - 1:  # the last field (numuai) and its separator left out
            rec = rec + [""]
        if len(rec) != n:
            malformed.append((line, f"ligne « structureet » de {len(rec)} champs pour {n} attendus (séparateur « ; »)"))
            continue
        rows.append(rec)
        lines.append(line)
    df = pd.DataFrame(rows, columns=FIELDS, dtype=object) if rows else pd.DataFrame(columns=FIELDS, dtype=object)
    df[LINE_COL] = pd.Series(lines, dtype="int64")
    df.attrs["finess"] = {"date_extraction": date, "autres_lignes": dict(other), "numero": header[2] if len(header) > 2 else ""}
    return RawTable(
        path=path, data=df, original_headers={f: f for f in FIELDS}, encoding=encoding, separator=";",
        empty_lines=empty, malformed=malformed,
    )


def is_extract_table(columns) -> bool:
    return {"structureet", "nofinesset", "nofinessej", "categetab", "departement"} <= set(columns)


def describe(path: Path, table: RawTable) -> dict:
    """Nature, date et lignes sans objet d'un extrait lu par :func:`read_extract`."""
    info = table.data.attrs.get("finess", {})
    date = info.get("date_extraction", "")
    other = info.get("autres_lignes", {})
    notes = []
    if other:
        parts = ", ".join(f"{_fmt(v)} « {k} »" for k, v in sorted(other.items()))
        notes.append(
            f"« {path.name} » : {_fmt(sum(other.values()))} ligne(s) d'autres sections que les établissements "
            f"({parts}) ne sont pas utilisées (comptées « sans objet »)."
        )
    return {
        "nature": f"extrait FINESS du {date}" if date else "extrait FINESS",
        "date_extraction": date,
        "sans_objet": int(sum(other.values())),
        "notes": notes,
    }


# --------------------------------------------------------------------------------------------
# Referential


@dataclass
class Referential:
    table: pd.DataFrame
    rejects: list[pd.DataFrame] = field(default_factory=list)
    outcomes: list[pd.DataFrame] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extract_date: str = ""
    extract_file: str = ""


def derive_statut(codesph: pd.Series, codemft: pd.Series, rules: dict) -> pd.Series:
    """Statut (``public``, ``prive_non_lucratif``…) déduit de ``codesph`` puis ``codemft`` ; vide sinon."""
    conf = (rules.get("referentiel_finess") or {}).get("statut") or {}
    sph = {str(k).strip(): v for k, v in (conf.get("codesph") or {}).items()}
    mft = {str(k).strip().zfill(2): v for k, v in (conf.get("codemft") or {}).items()}
    a = codesph.astype(str).str.strip().map(sph)
    b = codemft.astype(str).str.strip().map(lambda v: mft.get(v.zfill(2)) if v else None)
    return a.where(a.notna(), b).fillna("").astype(object)


def _categories(rules: dict) -> dict[str, str | None]:
    conf = rules.get("referentiel_finess") or {}
    return {str(k).strip(): v for k, v in (conf.get("categories_retenues") or {}).items()}


def _outcome(file: str, lines, issue: str) -> pd.DataFrame:
    lines = list(lines)
    return pd.DataFrame({FILE_COL: file, LINE_COL: pd.Series(lines, dtype="int64"), "issue": issue, "repare": False})


def _extract_to_etab(d: pd.DataFrame, name: str, rules: dict) -> pd.DataFrame:
    long = d["rslongue"].astype(str).str.strip()
    dep = d["departement"].astype(str).str.strip().str.upper()
    return pd.DataFrame(
        {
            "finess_geo": d["nofinesset"].astype(str).str.strip().values,
            "finess_ej": d["nofinessej"].astype(str).str.strip().values,
            "raison_sociale": long.where(long != "", d["rs"].astype(str).str.strip()).values,
            "departement": dep.values,
            "region": dep.map(lambda v: region_of_departement(v) or "").values,
            "statut": derive_statut(d["codesph"], d["codemft"], rules).values,
            "categorie": d["libcategetab"].astype(str).str.strip().values,
            FILE_COL: name,
            LINE_COL: d[LINE_COL].values,
        }
    )


def build_referential(extracts: list, hand: list[RawTable], rules: dict, validate: Callable) -> Referential:
    """Référentiel des établissements tiré du (plus récent) extrait FINESS, complété par ``hand``.

    ``extracts`` : fichiers officiels reconnus (:class:`analysis.reading.official.OfficialFile`
    de nature FINESS) ; ``hand`` : tables brutes des fichiers ``etablissements`` ;
    ``validate(raw, noms_de_fichiers, optional)`` valide une table brute de la source
    ``etablissements`` (colonnes obligatoires levées pour ``optional``) et renvoie
    (acceptées, rejets, issues par ligne).
    """
    SOURCES = rules.source_specs

    out = Referential(table=pd.DataFrame())
    extracts = sorted(extracts, key=lambda o: (o.meta.get("date_extraction", ""), o.path.name))
    main, older = extracts[-1], extracts[:-1]
    for o in older:
        out.outcomes.append(_outcome(o.path.name, o.table.data[LINE_COL], "hors_referentiel"))
        out.notes.append(
            f"« {o.path.name} » (extrait FINESS du {o.meta.get('date_extraction') or '?'}) : un extrait plus récent "
            f"(« {main.path.name} ») est présent ; ses {_fmt(len(o.table.data))} établissement(s) ne sont pas "
            "utilisés (comptés hors référentiel)."
        )
    name = main.path.name
    date = main.meta.get("date_extraction", "")
    out.extract_date, out.extract_file = date, name
    date_txt = _fr_date(date) if date else "date inconnue"
    d = main.table.data
    for line, msg in main.table.malformed:
        out.rejects.append(pd.DataFrame([{"fichier": name, "ligne": line, "colonne": "", "valeur": "",
                                          "motif": f"ligne mal formée : {msg}"}]))
        out.outcomes.append(_outcome(name, [line], "rejete"))
    ext = _extract_to_etab(d, name, rules)

    # 1. hand-made file(s): every column but finess_geo is optional when they complete the extract
    required = set(SOURCES["etablissements"].required_columns)
    hand_acc = None
    hand_names: list[str] = []
    if hand:
        hand_names = [t.name for t in hand]
        raw_hand = pd.concat([t.data for t in hand], ignore_index=True)
        hand_acc, rej, hout = validate(raw_hand, hand_names, frozenset(required - {"finess_geo"}))
        out.rejects.append(rej)
    hand_finess = set(hand_acc["finess_geo"].dropna()) if hand_acc is not None else set()

    # 2. which extract lines enter the referential
    cats = _categories(rules)
    code = d["categetab"].astype(str).str.strip()
    health = code.isin(set(cats)).to_numpy()
    in_ars = (ext["region"] != "").to_numpy()
    named = ext["finess_geo"].str.upper().isin(hand_finess).to_numpy()
    keep = in_ars & (health | named)
    left = ~keep
    if left.any():
        out.outcomes.append(_outcome(name, ext.loc[left, LINE_COL], "hors_referentiel"))
    # 3. validate the retained lines (the statut may stay empty: « non renseigné »)
    ext_acc, rej, eout = validate(ext[keep].reset_index(drop=True), [name], frozenset({"statut"}))
    out.rejects.append(rej)
    out.outcomes.append(eout)

    # 4. merge: hand values override, hand-only rows are added when complete
    cols = SOURCES["etablissements"].column_names
    table = ext_acc.copy()
    n_completed = n_added = 0
    if hand_acc is not None and len(hand_acc):
        in_ext = hand_acc["finess_geo"].isin(set(ext_acc["finess_geo"]))
        over = hand_acc[in_ext].drop_duplicates("finess_geo", keep="last").set_index("finess_geo")
        n_completed = len(over)
        if n_completed:
            t = table.set_index("finess_geo")
            for c in cols:
                if c == "finess_geo" or c not in over.columns:
                    continue
                vals = over[c]
                vals = vals[vals.notna()]
                if len(vals):
                    t.loc[vals.index, c] = vals
            table = t.reset_index()[ext_acc.columns]
        extra = hand_acc[~in_ext].copy()
        if len(extra):
            derived = extra["departement"].map(lambda v: region_of_departement(v) if isinstance(v, str) else None)
            extra["region"] = extra["region"].where(extra["region"].notna(), derived.astype("string"))
            bad = pd.Series(False, index=extra.index)
            for c in REQUIRED_OUTSIDE:
                m = extra[c].isna()
                if m.any():
                    out.rejects.append(pd.DataFrame({
                        "fichier": extra.loc[m, FILE_COL].astype(str), "ligne": extra.loc[m, LINE_COL],
                        "colonne": c, "valeur": "",
                        "motif": f"valeur obligatoire manquante (établissement absent de l'extrait FINESS du {date_txt})",
                    }))
                bad |= m
            if bad.any():
                hout = hout.copy()
                key = set(zip(extra.loc[bad, FILE_COL].astype(str), extra.loc[bad, LINE_COL].astype(int)))
                hit = [(f, int(l)) in key for f, l in zip(hout[FILE_COL], hout[LINE_COL])]
                hout.loc[hit, "issue"] = "rejete"
                hout.loc[hit, "repare"] = False
            extra = extra[~bad]
            n_added = len(extra)
            table = pd.concat([table, extra[ext_acc.columns]], ignore_index=True)
        out.outcomes.append(hout)
    elif hand:
        out.outcomes.append(hout)
    table = table.sort_values("finess_geo", kind="mergesort").reset_index(drop=True)
    out.table = table

    # 5. what the data-quality section says
    n_lines = len(d)
    left_codes = code[left & in_ars]
    labels = d.loc[left & in_ars, "libcategetab"].astype(str).str.strip()
    by_cat = Counter(zip(left_codes, labels))
    top = sorted(by_cat.items(), key=lambda kv: (-kv[1], kv[0]))
    cat_txt = " ; ".join(f"{lab or '?'} ({c}) : {_fmt(k)}" for (c, lab), k in top[:8])
    if len(top) > 8:
        cat_txt += f" ; {len(top) - 8} autre(s) catégorie(s) : {_fmt(sum(k for _, k in top[8:]))}"
    outside = d.loc[~in_ars, "departement"].astype(str).str.strip().value_counts().sort_index()
    n_ext = int(ext_acc.shape[0])
    msg = (
        f"Référentiel tiré de l'extrait FINESS du {date_txt} (« {name} ») : {_fmt(n_lines)} établissement(s) lus, "
        f"{_fmt(n_ext)} retenus"
    )
    n_named = int((keep & ~health).sum())
    if n_named:
        msg += f" (dont {_fmt(n_named)} hors des catégories retenues, gardés parce que le fichier etablissements les nomme)"
    msg += "."
    if int((left & in_ars).sum()):
        msg += (f" Hors référentiel, car ce ne sont pas des établissements de santé (categetab hors de "
                f"referentiel_finess.categories_retenues) : {_fmt(int((left & in_ars).sum()))} — {cat_txt}.")
    if len(outside):
        msg += (" Hors des régions ARS (département " + ", ".join(f"{k} : {_fmt(int(v))}" for k, v in outside.items())
                + ").")
    out.notes.append(msg)
    no_statut = int(table["statut"].isna().sum())
    if no_statut:
        out.notes.append(
            f"Statut {MISSING_STATUT} pour {_fmt(no_statut)} établissement(s) de l'extrait FINESS : ni le code SPH ni "
            "le mode de fixation des tarifs de la ligne ne le disent (correspondances : referentiel_finess.statut). "
            "Complétez la colonne statut d'un fichier etablissements pour le préciser."
        )
    if hand:
        out.notes.append(
            f"Référentiel : {_fmt(n_ext)} établissement(s) de l'extrait FINESS ; "
            + ", ".join(f"« {h} »" for h in hand_names)
            + f" en complète {_fmt(n_completed)} et en ajoute {_fmt(n_added)} absent(s) de l'extrait "
            "(fermés depuis son extraction, ou hors des catégories retenues)."
        )
    return out


def absent_note(rejects: pd.DataFrame, reports: dict, ref: Referential, unknown_motif: str,
                national_files: set[str]) -> list[str]:
    """Avertissement sur les lignes d'établissements absents du référentiel tiré de l'extrait."""
    n_rej = int((rejects["motif"] == unknown_motif).sum()) if len(rejects) else 0
    n_nat = sum(r.hors_referentiel for f, r in reports.items() if f in national_files)
    if not n_rej and not n_nat:
        return []
    date_txt = _fr_date(ref.extract_date) if ref.extract_date else "?"
    return [
        f"Établissements absents du référentiel (extrait FINESS du {date_txt} et fichier etablissements) : "
        f"{_fmt(n_rej)} ligne(s) des fichiers saisis rejetée(s) (« {unknown_motif} ») et {_fmt(n_nat)} ligne(s) "
        "des fichiers nationaux comptée(s) hors référentiel. L'extrait ne liste que les établissements ouverts à "
        "sa date : un établissement fermé depuis n'y est plus, et ses années passées ne comptent dans les "
        "tendances que si le fichier etablissements garde sa ligne (il complète l'extrait)."
    ]
