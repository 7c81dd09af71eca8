"""Issue 13 « rien de silencieusement faux » : fichiers endommagés comme les produisent les vrais
exports. Chaque cas est d'abord reproduit sur les données de démonstration (``data/raw``) : une
ligne endommagée ne coûte qu'elle-même, une valeur est lue comme l'analyste l'a voulue ou rejetée,
et tout doute est dit."""

from __future__ import annotations

import hashlib
import re
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import Workbook

from analysis.reading.cleaning import clean_folder
from analysis.reading.readers import InputError, read_any
from analysis.rules.loader import load_rules

PROJECT = Path(__file__).resolve().parents[1]
DEMO = PROJECT / "data" / "raw"
RULES = load_rules()


def demo_copy(tmp: Path, *names: str) -> Path:
    """The demo referential plus the named demo files, copied to ``tmp``."""
    tmp.mkdir(parents=True, exist_ok=True)
    for name in ("etablissements.csv", *names):
        shutil.copyfile(DEMO / name, tmp / name)
    return tmp


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def report(res, name: str):
    return {f.fichier: f for f in res.files}[name]


def rejects_of(res, name: str) -> pd.DataFrame:
    return res.rejects[res.rejects["fichier"] == name]


# ------------------------------------------------------------------------------------------
# 1. An unbalanced quote costs its line only


def test_unbalanced_quote_costs_only_its_line(tmp_path):
    data = demo_copy(tmp_path, "esin.csv")
    clean = clean_folder(data, RULES).tables["esin"]
    lines = lines_of(data / "esin.csv")
    assert len(lines) == 2325  # header + 2 324 rows
    fields = lines[9].split(";")  # line 10 of the file
    bad = f'{fields[0]};{fields[1]};"{fields[2]};{fields[3]}'
    lines[9] = bad
    (data / "esin.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    res = clean_folder(data, RULES)
    rep = report(res, "esin.csv")
    assert (rep.lignes_lues, rep.rejetees, rep.acceptees) == (2324, 1, 2322)
    [rej] = rejects_of(res, "esin.csv").to_dict("records")
    assert rej["ligne"] == 10 and rej["colonne"] == "signalements"
    assert rej["valeur"] == f'"{fields[2]};{fields[3]}' and "guillemet ouvert" in rej["motif"]
    # every other row is read exactly as before
    key = ["finess_geo", "annee"]
    before = clean[~((clean.finess_geo == fields[0]) & (clean.annee == int(fields[1])))]
    after = res.tables["esin"]
    pd.testing.assert_frame_equal(
        before.drop(columns=["_ligne"]).reset_index(drop=True), after.drop(columns=["_ligne"]).reset_index(drop=True)
    )
    assert len(after) == len(clean) - 1 and set(map(tuple, after[key].astype(str).values)) <= set(
        map(tuple, clean[key].astype(str).values))


def test_quoted_value_over_two_lines_is_one_row(tmp_path):
    """A text between quotes holding a line break (Alt+Entrée in Excel) stays one row."""
    data = demo_copy(tmp_path, "plans_actions.csv")
    lines = lines_of(data / "plans_actions.csv")
    f = lines[1].split(",")
    lines[1] = ",".join(f[:2]) + ',"Première partie,\nsuite de l\'action",' + ",".join(f[3:])
    (data / "plans_actions.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    res = clean_folder(data, RULES)
    rep = report(res, "plans_actions.csv")
    assert (rep.lignes_lues, rep.acceptees, rep.rejetees) == (178, 178, 0)
    pa = res.tables["plans_actions"]
    assert "Première partie,\nsuite de l'action" in pa["action"].tolist()


def test_misplaced_quote_rejected_with_column():
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "esin.csv"
        p.write_text('finess_geo;annee;signalements;responsable_connecte\n010000016;"2024"x;1;oui\n'
                     "010000016;2023;1;oui\n", encoding="utf-8")
        t = read_any(p)
        assert t.data["annee"].tolist() == ["2023"]
        [(line, col, val, motif)] = t.malformed
        assert (line, col, val) == (2, "annee", '"2024"x') and "guillemet mal placé" in motif


# ------------------------------------------------------------------------------------------
# 2. XLSX whose <dimension> under-declares the sheet


def _csv_to_xlsx(src: Path, dest: Path, percent_cols: tuple[str, ...] = ()) -> None:
    df = pd.read_csv(src, sep=";", dtype=str, keep_default_na=False)
    wb = Workbook()
    ws = wb.active
    ws.append(list(df.columns))
    for row in df.itertuples(index=False):
        out = []
        for col, v in zip(df.columns, row):
            if v == "":
                out.append(None)
            elif col in percent_cols:
                out.append(float(v.replace(",", ".")) / 100)
            else:
                try:
                    out.append(float(v.replace(",", ".")) if col in ("score", "ic_bas", "ic_haut") else int(v))
                except ValueError:
                    out.append(v)
        ws.append(out)
    if percent_cols:
        idx = [list(df.columns).index(c) + 1 for c in percent_cols]
        for r in ws.iter_rows(min_row=2):
            for c in r:
                if c.column in idx:
                    c.number_format = "0.0%"
    wb.save(dest)


def _set_dimension(path: Path, ref: str) -> None:
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.startswith("xl/worksheets/sheet"):
                data, n = re.subn(rb'<dimension ref="[^"]*"', f'<dimension ref="{ref}"'.encode(), data)
                assert n == 1
            zout.writestr(item, data)
    tmp.replace(path)


def test_xlsx_under_declared_dimension_is_read_whole(tmp_path):
    data = demo_copy(tmp_path / "d")
    _csv_to_xlsx(DEMO / "qls.csv", data / "qls.xlsx")
    _set_dimension(data / "qls.xlsx", "A1:G100")
    res = clean_folder(data, RULES)
    rep = report(res, "qls.xlsx")
    assert rep.lignes_lues == 1040
    ref = clean_folder(demo_copy(tmp_path / "ref", "qls.csv"), RULES)
    assert (rep.acceptees, rep.rejetees) == (report(ref, "qls.csv").acceptees, report(ref, "qls.csv").rejetees)
    a = res.tables["qls"].drop(columns=["_fichier", "_ligne"])
    b = ref.tables["qls"].drop(columns=["_fichier", "_ligne"])
    pd.testing.assert_frame_equal(a, b)


# ------------------------------------------------------------------------------------------
# 3. Excel percentages


def test_excel_percent_cells_read_as_the_percentage_shown(tmp_path):
    data = demo_copy(tmp_path / "d")
    _csv_to_xlsx(DEMO / "qls.csv", data / "qls.xlsx", percent_cols=("score", "ic_bas", "ic_haut"))
    res = clean_folder(data, RULES)
    ref = clean_folder(demo_copy(tmp_path / "ref", "qls.csv"), RULES)
    # the demo's score of 104 (rejected) and the unknown FINESS stay rejected: same counts
    assert report(res, "qls.xlsx").rejetees == report(ref, "qls.csv").rejetees == 2
    a = res.tables["qls"].drop(columns=["_fichier", "_ligne"])
    b = ref.tables["qls"].drop(columns=["_fichier", "_ligne"])
    pd.testing.assert_frame_equal(a, b)  # 0.853 shown 85,3 % is read 85.3, exactly
    assert (a["score"] < 20).sum() == (b["score"] < 20).sum() < 10


def test_percent_format_rule():
    from analysis.reading.readers import _percent_to_str, is_percent_format

    assert is_percent_format("0.0%") and is_percent_format("0%") and is_percent_format("#,##0.00 %")
    assert not is_percent_format('0.0" %"') and not is_percent_format("0.0\\%") and not is_percent_format("General")
    assert [_percent_to_str(v) for v in (0.853, 1, 0.2, 0.199, 0.0)] == ["85.3", "100", "20", "19.9", "0"]


# ------------------------------------------------------------------------------------------
# 4. A line cut short


def test_line_cut_short_is_rejected_not_padded(tmp_path):
    data = demo_copy(tmp_path, "qls.csv")
    text = (data / "qls.csv").read_text(encoding="utf-8")
    last = text.rstrip("\n").splitlines()[-1]
    assert len(last.split(";")) == 7
    cut = ";".join(last.split(";")[:3]) + ";7"  # the file stops in the middle of the score
    (data / "qls.csv").write_text(text.rstrip("\n").rsplit("\n", 1)[0] + "\n" + cut, encoding="utf-8")
    res = clean_folder(data, RULES)
    rej = rejects_of(res, "qls.csv")
    row = rej[rej["ligne"] == 1041].to_dict("records")
    assert len(row) == 1 and row[0]["colonne"] == "n_dossiers" and row[0]["valeur"] == cut
    assert row[0]["motif"].startswith("ligne incomplète : 4 champ(s) pour 7 colonnes")
    assert report(res, "qls.csv").lignes_lues == 1040 and report(res, "qls.csv").reconciles()


# ------------------------------------------------------------------------------------------
# 5. Thousands separators in counts


def test_thousands_separators_in_counts(tmp_path):
    data = demo_copy(tmp_path, "activite.csv")
    lines = lines_of(data / "activite.csv")
    f2, f3, f4 = (lines[i].split(";") for i in (2, 3, 4))
    lines[2] = f"{f2[0]};{f2[1]};37.000"
    lines[3] = f"{f3[0]};{f3[1]};12,000"
    lines[4] = f"{f4[0]};{f4[1]};37 000"
    (data / "activite.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    res = clean_folder(data, RULES)
    rej = rejects_of(res, "activite.csv").set_index("ligne")
    for line, val in ((3, "37.000"), (4, "12,000")):
        assert rej.loc[line, "valeur"] == val and rej.loc[line, "colonne"] == "sejours"
        assert "séparateur ambigu" in rej.loc[line, "motif"]
    act = res.tables["activite"]
    got = act[(act.finess_geo == f4[0]) & (act.annee == int(f4[1]))]["sejours"].tolist()
    assert got == [37000]  # a space between groups of three digits is the French thousands separator


def test_integer_rules():
    from analysis.reading.parsing import parse_float, parse_int

    s = pd.Series(["37.000", "12,000", "1.234", "37 000", "1\u00a0234", "12,0", "1 2", "99999999999999999999", "-5"])
    p = parse_int(s)
    assert p.values.tolist()[3:6] == [37000, 1234, 12] and p.values.tolist()[-1] == -5
    assert p.errors.notna().tolist() == [True, True, True, False, False, False, True, True, False]
    assert "trop grand" in p.errors.iloc[7]
    f = parse_float(pd.Series(["37.000", "1 234,5", "1e300", "19,9"]))
    assert f.values.tolist()[:2] == [37.0, 1234.5] and f.values.tolist()[3] == 19.9
    assert "trop grand" in f.errors.iloc[2]


def test_oversized_integer_costs_its_row(tmp_path):
    data = demo_copy(tmp_path, "esin.csv")
    lines = lines_of(data / "esin.csv")
    f = lines[5].split(";")
    lines[5] = f"{f[0]};{f[1]};12345678901234567890;{f[3]}"
    (data / "esin.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    res = clean_folder(data, RULES)
    [rej] = rejects_of(res, "esin.csv").to_dict("records")
    assert (rej["ligne"], rej["colonne"], rej["valeur"]) == (6, "signalements", "12345678901234567890")
    assert report(res, "esin.csv").acceptees == 2322


# ------------------------------------------------------------------------------------------
# Encodings


ETAB_HEAD = "finess_geo;raison_sociale;departement;region;statut\n"


def test_mixed_utf8_and_windows_1252_lines(tmp_path):
    raw = (ETAB_HEAD + "010000016;Hôpital Sainte-Hélène;01;84;public\n").encode("utf-8")
    raw += "010000024;Clinique Saint-Jérôme;01;84;prive_lucratif\n".encode("cp1252")
    raw += "690000011;Centre médical;69;84;public\n".encode("utf-8")
    (tmp_path / "etablissements.csv").write_bytes(raw)
    res = clean_folder(tmp_path, RULES)
    assert res.tables["etablissements"]["raison_sociale"].tolist() == [
        "Hôpital Sainte-Hélène", "Clinique Saint-Jérôme", "Centre médical"]
    assert res.files[0].encodage == "mixte (utf-8 et windows-1252)"
    assert any("mélange deux encodages : 1 ligne(s) en Windows-1252 (ligne(s) 3)" in w for w in res.warnings)


def test_utf8_bom_file_with_one_windows_1252_byte(tmp_path):
    raw = b"\xef\xbb\xbf" + (ETAB_HEAD + "010000016;Hôpital;01;84;public\n").encode("utf-8")
    raw += "010000024;Clinique Saint-Jérôme;01;84;public\n".encode("cp1252")
    (tmp_path / "etablissements.csv").write_bytes(raw)
    res = clean_folder(tmp_path, RULES)
    assert res.tables["etablissements"]["raison_sociale"].tolist() == ["Hôpital", "Clinique Saint-Jérôme"]
    assert any("mélange deux encodages" in w for w in res.warnings)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le"])
def test_utf16_is_read(tmp_path, encoding):
    text = ETAB_HEAD + "010000016;Hôpital;01;84;public\n"
    (tmp_path / "etablissements.csv").write_bytes(text.encode(encoding))
    res = clean_folder(tmp_path, RULES)
    assert res.tables["etablissements"]["raison_sociale"].tolist() == ["Hôpital"]
    assert res.files[0].encodage == "utf-16"


# ------------------------------------------------------------------------------------------
# Unreadable or odd files: a clear French message naming the file


def test_broken_sheet_xml_names_the_file(tmp_path):
    (tmp_path / "etablissements.csv").write_text(ETAB_HEAD + "010000016;H;01;84;public\n", encoding="utf-8")
    wb = Workbook()
    wb.active.append(["finess_geo", "annee", "sejours"])
    wb.active.append(["010000016", 2024, 100])
    wb.save(tmp_path / "activite.xlsx")
    tmp = tmp_path / "x.zip"
    with zipfile.ZipFile(tmp_path / "activite.xlsx") as zin, zipfile.ZipFile(tmp, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data[: len(data) // 2]
            zout.writestr(item, data)
    tmp.replace(tmp_path / "activite.xlsx")
    with pytest.raises(InputError, match=r"« activite\.xlsx » est illisible : la feuille « Sheet » est endommagée"):
        clean_folder(tmp_path, RULES)


def test_xlsx_formula_without_cached_value(tmp_path):
    (tmp_path / "etablissements.csv").write_text(ETAB_HEAD + "010000016;H;01;84;public\n", encoding="utf-8")
    wb = Workbook()
    ws = wb.active
    ws.append(["finess_geo", "annee", "sejours", "commentaire"])
    ws.append(["010000016", 2023, "=1000*2", None])  # openpyxl writes no cached value
    ws.append(["010000016", 2024, 300, "=A2"])  # formula in a column the source does not use
    wb.save(tmp_path / "activite.xlsx")
    res = clean_folder(tmp_path, RULES)
    [rej] = rejects_of(res, "activite.xlsx").to_dict("records")
    assert (rej["ligne"], rej["colonne"], rej["valeur"]) == (2, "sejours", "=1000*2")
    assert rej["motif"].startswith("formule sans valeur calculée")
    assert res.tables["activite"]["sejours"].tolist() == [300]
    assert any("2 cellule(s) contiennent une formule sans valeur calculée" in w for w in res.warnings)


def test_data_pointing_to_a_file(tmp_path):
    with pytest.raises(InputError, match="est un fichier, pas un dossier"):
        clean_folder(DEMO / "esin.csv", RULES)


def test_header_only_source_is_said_and_absent(tmp_path):
    data = demo_copy(tmp_path)
    (data / "audits.csv").write_text("finess_geo;annee;audits_total;audits_precautions\n", encoding="utf-8")
    res = clean_folder(data, RULES)
    assert "audits" in res.absent_sources
    assert any("« audits.csv » (source « audits ») ne contient que sa ligne d'en-tête" in w for w in res.warnings)
    assert report(res, "audits.csv").lignes_lues == 0


def test_second_file_lacking_a_required_column_stops(tmp_path):
    data = demo_copy(tmp_path, "esin.csv")
    (data / "esin_2025.csv").write_text("finess_geo;annee;signalements\n149048506;2025;3\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        clean_folder(data, RULES)
    msg = str(err.value)
    assert "esin_2025.csv" in msg and "responsable_connecte" in msg and "esin.csv »" not in msg


# ------------------------------------------------------------------------------------------
# Pipeline guards that need no report build


def _tables(**years):
    return {src: pd.DataFrame({"annee": ys}) for src, ys in years.items()}


def test_year_without_data_stops_clearly():
    from analysis.orchestration.pipeline import resolve_year

    tables = _tables(esin=[2023, 2024], qls=[2022, 2024])
    assert resolve_year(tables, None) == 2024 and resolve_year(tables, 2023) == 2023
    with pytest.raises(InputError, match=r"Aucune donnée pour l'année 2031 .* Années présentes : 2022 à 2024"):
        resolve_year(tables, 2031)


def test_empty_referential_message(tmp_path):
    from analysis.orchestration.pipeline import Params, Progress, prepare

    (tmp_path / "etablissements.csv").write_text(ETAB_HEAD, encoding="utf-8")
    p = Params(data_dir=tmp_path, out_dir=tmp_path / "out", processed_dir=tmp_path / "proc", quiet=True)
    with pytest.raises(InputError, match=r"« etablissements\.csv » est vide : il ne contient aucune ligne"):
        prepare(p, Progress(quiet=True))
    (tmp_path / "etablissements.csv").write_text(ETAB_HEAD + "123;H;01;84;public\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"toutes été rejetées .*ligne 2, finess_geo : numéro FINESS invalide"):
        prepare(p, Progress(quiet=True))


@pytest.mark.parametrize("text", ["0000", "1899", "2101"])
def test_cli_refuses_absurd_year(text, capsys):
    from analysis.orchestration.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["report", "--annee", text])
    assert exc.value.code == 2 and "année invalide" in capsys.readouterr().err


def test_cli_usage_errors_and_help_are_french(capsys):
    from analysis.orchestration.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["report", "--jobs", "x"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert "utilisation : python -m analysis report" in err and "erreur : argument --jobs : valeur invalide" in err
    with pytest.raises(SystemExit):
        main([])
    assert "arguments obligatoires manquants : commande" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "affiche cette aide et quitte" in out and "usage:" not in out


def test_leftovers_of_a_killed_run_are_cleaned(tmp_path):
    from analysis.orchestration.pipeline import recover_leftovers

    out, proc = tmp_path / "out", tmp_path / "proc"
    dead = 2**22 + 12345  # above the default pid_max: no such process
    (out / f".tmp-2024-28-{dead}" / "notebooks").mkdir(parents=True)
    (proc / f".tmp-abcd-{dead}").mkdir(parents=True)
    import os

    (out / f".tmp-2024-11-{os.getpid()}").mkdir()  # a run in progress: left alone
    # a crash between the two renames of the swap: old report aside, no report in place
    (out / "2024" / f".ancien-28-{dead}").mkdir(parents=True)
    (out / "2024" / f".ancien-28-{dead}" / "manifest.json").write_text("{}")
    (out / "2023" / "28").mkdir(parents=True)
    (out / "2023" / f".ancien-28-{dead}").mkdir()
    done = recover_leftovers(out, proc)
    assert len(done) == 4
    assert not (out / f".tmp-2024-28-{dead}").exists() and not (proc / f".tmp-abcd-{dead}").exists()
    assert (out / f".tmp-2024-11-{os.getpid()}").exists()
    assert (out / "2024" / "28" / "manifest.json").is_file()
    assert not (out / "2023" / f".ancien-28-{dead}").exists() and (out / "2023" / "28").is_dir()


def test_swap_replaces_and_never_leaves_the_place_empty(tmp_path):
    from analysis.orchestration.pipeline import replace_dir

    final, new = tmp_path / "2024" / "28", tmp_path / ".tmp-new"
    final.mkdir(parents=True)
    (final / "v").write_text("ancien")
    new.mkdir()
    (new / "v").write_text("neuf")
    replace_dir(new, final)
    assert (final / "v").read_text() == "neuf" and not new.exists()
    assert [p.name for p in (tmp_path / "2024").iterdir()] == ["28"]


def test_failed_notebook_is_kept_where_the_message_says(tmp_path):
    from analysis.orchestration.pipeline import NotebookFailed, keep_failed_notebook

    nb = tmp_path / ".tmp-2024-28-1" / "notebooks" / "02_ciblage.ipynb"
    nb.parent.mkdir(parents=True)
    nb.write_text("{}")
    exc = keep_failed_notebook(NotebookFailed("02_ciblage.ipynb", nb, "(cellule 3) : KeyError : 'x'"),
                               tmp_path / "out", 2024, "28")
    kept = tmp_path / "out" / ".echecs" / "2024-28" / "02_ciblage.ipynb"
    assert kept.is_file() and f"« {kept} »" in str(exc) and "KeyError" in str(exc)


def test_corrupt_cache_entry_is_detected(tmp_path):
    import hashlib

    from analysis.orchestration.pipeline import CACHE_SUMS, _write_json, cache_intact

    d = tmp_path / "abc"
    (d / "regles").mkdir(parents=True)
    (d / "fichiers.parquet").write_bytes(b"PAR1 ok")
    (d / "regles" / "regles_cpom.yml").write_bytes(b"version: 1\n")
    _write_json(d / CACHE_SUMS, {p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                                 for p in d.rglob("*") if p.is_file()})
    assert cache_intact(d)
    (d / "fichiers.parquet").write_bytes(b"PAR1 ko")
    assert not cache_intact(d)
    (d / CACHE_SUMS).unlink()
    assert not cache_intact(d)


def test_rules_used_by_notebooks_are_the_bytes_hashed(tmp_path):
    """The notebooks load the copy of the rules taken (validated and hashed) when the run started."""
    from pipeline_data import write_fixture

    from analysis.orchestration import pipeline
    from analysis.orchestration.context import load_context

    rules_path = tmp_path / "regles_cpom.yml"
    original = (PROJECT / "config" / "regles_cpom.yml").read_bytes()
    rules_path.write_bytes(original)
    data = write_fixture(tmp_path / "raw")
    prep = pipeline.prepare(pipeline.Params(data_dir=data, out_dir=tmp_path / "out", rules=rules_path,
                                            processed_dir=tmp_path / "proc", quiet=True),
                            pipeline.Progress(quiet=True))
    rules_path.write_bytes(original.replace(b"version:", b"# modifie pendant l'execution\nversion:", 1))
    snapshot = prep.processed / "regles" / "regles_cpom.yml"
    ctx = load_context(2024, "28", str(prep.processed), str(tmp_path / "o"), str(snapshot))
    assert ctx.rules.sha256 == prep.rules.sha256 == hashlib.sha256(original).hexdigest()
    assert ctx.rules.name == "regles_cpom.yml"
