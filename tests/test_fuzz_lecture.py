"""Fuzzing des lecteurs (issue 13), par un générateur à graine fixe (reproductible, quelques secondes).

Des fichiers valides (référentiel et e-SIN, séparateur « ; » ou « , », fins de ligne LF ou CRLF,
UTF-8 ou Windows-1252) reçoivent des dommages tirés au hasard sur quelques lignes : ligne coupée,
ligne cassée en deux, guillemet égaré ou ouvrant un champ sans être refermé, ligne réencodée en
Windows-1252 au milieu d'un fichier UTF-8, séparateur changé, valeur démesurée, ligne vide insérée.
Deux propriétés doivent tenir à chaque tirage :

- aucune ligne non endommagée n'est changée : elle est acceptée avec exactement les valeurs lues
  dans le fichier intact (une ligne réencodée compte comme intacte : elle doit se lire pareil) ;
- chaque ligne physique du fichier finit acceptée, rejetée (avec sa ligne, dans les lignes
  endommagées seulement), vide comptée ou prise dans la valeur entre guillemets de la ligne
  au-dessus ; les comptes par fichier se réconcilient.
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import pandas as pd
import pytest

from analysis.reading.cleaning import clean_folder
from analysis.reading.readers import read_any
from analysis.rules.loader import load_rules

RULES = load_rules()
DEPTS = ["01", "14", "27", "2A", "50", "61", "76", "69"]
NAMES = ["Hôpital", "Clinique", "Centre médical", "CH", "Maison de santé"]
PLACES = ["Sainte-Hélène", "Saint-Jérôme", "de l'Étang", "des Pins, annexe", "Côte-d'Or", "Noël"]
ETAB_HEAD = ["finess_geo", "raison_sociale", "departement", "region", "statut", "mco", "lits"]
ESIN_HEAD = ["finess_geo", "annee", "signalements", "responsable_connecte"]
DAMAGES = ("cut", "break", "quote", "open_quote", "encoding", "sep", "huge", "blank")
SETS = 4  # valid file pairs (separator, line ending, encoding vary)
DAMAGED_PER_SET = 10


def _valid_tables(rng: random.Random) -> tuple[list[list[str]], list[list[str]]]:
    finess: list[str] = []
    while len(finess) < 25:
        f = rng.choice(DEPTS) + "".join(rng.choice("0123456789") for _ in range(7))
        if f not in finess:
            finess.append(f)
    etab = [[f, f"{rng.choice(NAMES)} {rng.choice(PLACES)}", f[:2], "28",
             rng.choice(["public", "prive_lucratif", "prive_non_lucratif"]), rng.choice(["oui", "non", "1", "0"]),
             str(rng.randint(0, 1500))] for f in finess]
    esin = [[f, str(y), str(rng.randint(0, 60)), rng.choice(["oui", "non", "Oui", "NON"])]
            for f in finess for y in (2022, 2023, 2024)]
    return etab, esin


def _lines(header: list[str], rows: list[list[str]], sep: str) -> list[str]:
    out = []
    for r in [header, *rows]:
        buf = io.StringIO()
        csv.writer(buf, delimiter=sep, lineterminator="").writerow(r)
        out.append(buf.getvalue())
    return out


def _damage(rng: random.Random, lines: list[str], sep: str, file_encoding: str):
    """Returns (physical lines as (text, encoding)), set of damaged physical line numbers (1-based),
    set of original data line numbers whose row must read unchanged."""
    n = len(lines)
    targets = rng.sample(range(1, n), rng.randint(1, 4))
    out: list[tuple[str, str]] = []
    damaged: set[int] = set()
    intact_rows: set[int] = set(range(2, n + 1))
    for i, text in enumerate(lines):
        kind = rng.choice(DAMAGES) if i in targets else None
        if kind == "encoding" and (file_encoding != "utf-8" or text.isascii()):
            kind = "quote"
        if kind is None:
            out.append((text, file_encoding))
            continue
        if kind == "encoding":  # bytes differ, meaning does not: still an intact row
            out.append((text, "cp1252"))
            continue
        intact_rows.discard(i + 1)
        if kind == "cut":
            out.append((text[: rng.randint(1, len(text) - 1)], file_encoding))
            damaged.add(len(out))
        elif kind == "break":
            k = rng.randint(1, len(text) - 1)
            out.append((text[:k], file_encoding))
            damaged.add(len(out))
            out.append((text[k:], file_encoding))
            damaged.add(len(out))
        elif kind == "quote":
            k = rng.randint(0, len(text))
            out.append((text[:k] + '"' + text[k:], file_encoding))
            damaged.add(len(out))
        elif kind == "open_quote":  # a quote opening a field, never closed: the case that swallowed files
            starts = [0] + [j + 1 for j, ch in enumerate(text) if ch == sep]
            k = rng.choice(starts)
            out.append((text[:k] + '"' + text[k:], file_encoding))
            damaged.add(len(out))
        elif kind == "sep":
            other = "," if sep == ";" else ";"
            out.append((text.replace(sep, other), file_encoding))
            damaged.add(len(out))
        elif kind == "huge":
            cells = next(csv.reader([text], delimiter=sep))
            numeric = [j for j, c in enumerate(cells) if c.isdigit()]
            cells[rng.choice(numeric)] = "9" * rng.randint(17, 30)
            buf = io.StringIO()
            csv.writer(buf, delimiter=sep, lineterminator="").writerow(cells)
            out.append((buf.getvalue(), file_encoding))
            damaged.add(len(out))
        elif kind == "blank":
            intact_rows.add(i + 1)  # the row itself is untouched; a blank line comes before it
            out.append(("", file_encoding))
            damaged.add(len(out))
            out.append((text, file_encoding))
    return out, damaged, intact_rows


def _write(path: Path, physical: list[tuple[str, str]], eol: str) -> None:
    path.write_bytes(b"".join(t.encode(e) + eol.encode() for t, e in physical))


def _write_plain(path: Path, lines: list[str], encoding: str, eol: str) -> None:
    path.write_bytes(b"".join(t.encode(encoding) + eol.encode() for t in lines))


def _rows_by_key(table: pd.DataFrame, key: list[str]) -> dict[tuple, dict]:
    t = table.drop(columns=["_fichier", "_ligne"]).astype("string").fillna("")
    return {tuple(r[k] for k in key): r for r in t.to_dict("records")}


def _line_of(lines: list[str], sep: str, key: list[str], header: list[str]) -> dict[int, tuple]:
    """Original data line number -> key values as the cleaned table writes them."""
    out = {}
    for i, text in enumerate(lines[1:], start=2):
        cells = dict(zip(header, next(csv.reader([text], delimiter=sep))))
        out[i] = tuple(cells[k] for k in key)
    return out


@pytest.mark.parametrize("seed", range(SETS))
def test_random_damage_never_changes_an_intact_row(tmp_path, seed):
    rng = random.Random(seed)
    sep = [";", ","][seed % 2]
    eol = ["\n", "\r\n"][seed // 2 % 2]
    encoding = ["utf-8", "cp1252", "utf-8"][seed % 3]
    etab, esin = _valid_tables(rng)
    files = {"etablissements.csv": (_lines(ETAB_HEAD, etab, sep), ["finess_geo"], ETAB_HEAD),
             "esin.csv": (_lines(ESIN_HEAD, esin, sep), ["finess_geo", "annee"], ESIN_HEAD)}
    base = tmp_path / "intact"
    base.mkdir()
    for name, (lines, _, _) in files.items():
        _write_plain(base / name, lines, encoding, eol)
    ref = clean_folder(base, RULES)
    for it in range(DAMAGED_PER_SET):
        victim = ["etablissements.csv", "esin.csv"][it % 2]
        bad = tmp_path / f"abime_{it}"
        bad.mkdir()
        for name, (lines, _, _) in files.items():
            if name != victim:
                _write_plain(bad / name, lines, encoding, eol)
        lines, key, header = files[victim]
        physical, damaged, intact_rows = _damage(rng, lines, sep, encoding)
        _write(bad / victim, physical, eol)

        res = clean_folder(bad, RULES)
        src = victim.removesuffix(".csv")
        ctx = f"tirage {seed}/{it} : {victim}, sep {sep!r}, {encoding}, dommages lignes {sorted(damaged)}"

        # 1. intact rows unchanged
        before = _rows_by_key(ref.tables[src], key)
        after = _rows_by_key(res.tables[src], key)
        assert len(before) == len(lines) - 1, ctx
        keys = _line_of(lines, sep, key, header)
        for line in intact_rows:
            k = next(kk for kk in before if kk == tuple(
                str(v).zfill(9) if h == "finess_geo" else str(v) for h, v in zip(key, keys[line])))
            assert after.get(k) == before[k], f"{ctx} : ligne d'origine {line} changée"
        # the other file is not damaged: all its rows read as before (none depends on a lost row
        # except e-SIN rows of an establishment whose referential line was damaged)
        other = next(n for n in files if n != victim).removesuffix(".csv")
        if other == "etablissements":
            assert _rows_by_key(res.tables[other], ["finess_geo"]) == _rows_by_key(ref.tables[other], ["finess_geo"])

        # 2. every physical line accounted for, rejects only on damaged lines
        rep = {f.fichier: f for f in res.files}[victim]
        raw = read_any(bad / victim)
        assert rep.reconciles(), ctx
        assert rep.lignes_lues + rep.lignes_vides + raw.joined_lines == len(physical) - 1, ctx
        rej = res.rejects[res.rejects["fichier"] == victim]
        if victim == "esin.csv":
            lost = set(ref.tables["etablissements"]["finess_geo"]) - set(res.tables["etablissements"]["finess_geo"])
            assert not lost
        assert set(rej["ligne"]) <= damaged, f"{ctx} : rejets hors des lignes endommagées {sorted(set(rej['ligne']) - damaged)}"
        assert (rej["motif"].str.len() > 0).all() and rej["ligne"].notna().all(), ctx
