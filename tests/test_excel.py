"""Classeur Excel (analysis.publishing.excel) et CSV de sortie (analysis.publishing.outputs)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from openpyxl import load_workbook

from analysis.publishing.excel import write_cpom_xlsx
from analysis.publishing.outputs import read_csv_output, write_csv

DANGEROUS = ["=1+1", "+33 6 00 00 00 00", "-2", "@SOMME(A1)", "=HYPERLINK(\"http://x\")",
             "010000016"]


def _tables():
    ciblage = pd.DataFrame({
        "finess_geo": DANGEROUS,
        "raison_sociale": ["CH é", "=cmd|' /C calc'!A0", "B", "C", "D", "E"],
        "valeur": [1.5, np.nan, 2.0, 3.0, None, 0.25],
        "n": pd.array([1, None, 3, 4, 5, 6], dtype="Int64"),
    })
    suivi = pd.DataFrame({"finess_geo": pd.Series([], dtype="string"),
                          "statut": pd.Series([], dtype="string")})
    rejets = pd.DataFrame({"fichier": ["qls.csv"], "ligne": [3], "colonne": ["score"],
                           "valeur": ["=2*3\x07"], "motif": ["valeur non numérique"],
                           "date": [pd.Timestamp("2024-12-31")], "ok": [True]})
    return {"ciblage": ciblage, "suivi_engagements": suivi, "rejets": rejets}


def test_formula_like_strings_stay_text(tmp_path):
    path = tmp_path / "cpom_53_2024.xlsx"
    write_cpom_xlsx(path, _tables())
    wb = load_workbook(path)
    assert wb.sheetnames == ["ciblage", "suivi_engagements", "rejets"]
    ws = wb["ciblage"]
    assert [c.value for c in ws[1]] == ["finess_geo", "raison_sociale", "valeur", "n"]
    assert all(c.font.b for c in ws[1])
    assert ws.freeze_panes == "A2"
    for i, expected in enumerate(DANGEROUS, start=2):
        cell = ws.cell(row=i, column=1)
        assert cell.data_type == "s", expected
        assert cell.value == expected
    assert ws.cell(row=3, column=2).value == "=cmd|' /C calc'!A0"
    assert ws.cell(row=3, column=2).data_type == "s"
    assert ws.cell(row=2, column=3).value == 1.5 and ws.cell(row=2, column=3).data_type == "n"
    assert ws.cell(row=3, column=3).value is None  # NaN -> vide
    assert ws.cell(row=2, column=4).value == 1
    # aucune formule nulle part
    for sheet in wb.worksheets:
        for row in sheet.iter_rows():
            assert all(c.data_type != "f" for c in row)
    r = wb["rejets"]
    assert r.cell(row=2, column=4).value == "=2*3\ufffd"
    assert r.cell(row=2, column=6).value == dt.datetime(2024, 12, 31)
    assert r.cell(row=2, column=7).value is True
    assert [c.value for c in wb["suivi_engagements"][1]] == ["finess_geo", "statut"]
    assert wb["suivi_engagements"].max_row == 1
    assert ws.column_dimensions["B"].width >= len("=cmd|' /C calc'!A0")


def test_xlsx_is_byte_identical(tmp_path, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    a, b = tmp_path / "a.xlsx", tmp_path / "b.xlsx"
    write_cpom_xlsx(a, _tables())
    write_cpom_xlsx(b, _tables())
    assert a.read_bytes() == b.read_bytes()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1735603200")
    write_cpom_xlsx(b, _tables())
    assert load_workbook(b).properties.created == dt.datetime(2024, 12, 31)


def test_write_csv(tmp_path):
    df = pd.DataFrame({"finess_geo": ["010000016", "=1+1"], "valeur": [19.9, None],
                       "motif": ["a;b", 'guillemet "x"'],
                       "date": [pd.Timestamp("2024-12-31"), pd.NaT]})
    path = tmp_path / "ciblage.csv"
    write_csv(df, path)
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert b"\r\n" not in raw
    text = raw.decode("utf-8-sig")
    assert text.splitlines()[0] == "finess_geo;valeur;motif;date"
    assert text.splitlines()[1] == '010000016;19.9;"a;b";2024-12-31'
    assert text.splitlines()[2] == "'=1+1;;\"guillemet \"\"x\"\"\";"  # formula neutralised (OWASP)
    back = pd.read_csv(path, sep=";", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert back["finess_geo"].tolist() == ["010000016", "'=1+1"]
    assert read_csv_output(path)["finess_geo"].tolist() == ["010000016", "=1+1"]
    path2 = tmp_path / "bis.csv"
    write_csv(df, path2)
    assert path2.read_bytes() == raw
    write_csv(df.iloc[:0], path2)
    assert path2.read_bytes() == "\ufefffiness_geo;valeur;motif;date\n".encode()
    write_csv(df, path2, sort_by=["finess_geo"])
    assert path2.read_text(encoding="utf-8-sig").splitlines()[1].startswith("010000016")
