"""Mise en forme à la française (analysis.publishing.fmt) et graduations des figures."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from analysis.publishing.fmt import (
    MISSING,
    NBSP,
    fmt_date,
    fmt_dec,
    fmt_num,
    fmt_pct,
    fmt_value,
    french_table,
)


def test_fmt_pct_and_num():
    assert fmt_pct(82.5) == "82,5\u00a0%"
    assert fmt_pct(82.5) == f"82,5{NBSP}%"
    assert fmt_num(1500) == "1\u00a0500"
    assert fmt_num(1234567) == "1\u00a0234\u00a0567"
    assert fmt_num(999) == "999"
    assert fmt_pct(100, 0) == "100\u00a0%"


def test_fmt_dec():
    assert fmt_dec(0.0004, 4) == "0,0004"
    assert fmt_dec(1234.56, 1) == "1\u00a0234,6"
    assert fmt_dec(82.45, 1) == "82,5"  # demi vers le haut, comme Excel
    assert fmt_dec(-0.04, 1) == "0,0"  # jamais « -0,0 »
    assert fmt_dec(-1.25, 1) == "-1,3"
    assert fmt_dec(2024, 0, thousands=False) == "2024"


@pytest.mark.parametrize("missing", [None, np.nan, pd.NA, pd.NaT, float("nan")])
def test_missing_values(missing):
    assert fmt_pct(missing) == MISSING == "—"
    assert fmt_num(missing) == MISSING
    assert fmt_dec(missing, 2) == MISSING
    assert fmt_date(missing) == MISSING
    assert fmt_value(missing) == MISSING


def test_fmt_date():
    assert fmt_date(pd.Timestamp("2024-12-31")) == "31/12/2024"
    assert fmt_date(dt.date(2024, 1, 5)) == "05/01/2024"
    assert fmt_date("2024-03-01") == "01/03/2024"


def test_fmt_value_types():
    assert fmt_value(np.int64(1500)) == "1\u00a0500"
    assert fmt_value(2.0) == "2,0"
    assert fmt_value(True) == "oui"
    assert fmt_value(np.bool_(False)) == "non"
    assert fmt_value("texte") == "texte"


def test_french_table_escapes_and_formats():
    df = pd.DataFrame(
        {
            "<b>nom</b>": ["<script>alert(1)</script> & Cie", "B"],
            "taux": [82.5, None],
            "n": pd.array([1500, None], dtype="Int64"),
        }
    )
    html = french_table(df, {"taux": "pct"}, caption="Tableau <1>")
    assert html.startswith('<table class="tableau">')
    assert "<thead>" in html and "<tbody>" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Cie" in html
    assert "<script>" not in html
    assert "&lt;b&gt;nom&lt;/b&gt;" in html
    assert "Tableau &lt;1&gt;" in html
    assert "82,5\u00a0%" in html and "1\u00a0500" in html
    assert '<td class="num">—</td>' in html


def test_french_table_empty_and_bad_format():
    html = french_table(pd.DataFrame({"a": []}), {})
    assert "Aucune ligne" in html
    with pytest.raises(ValueError):
        french_table(pd.DataFrame({"a": [1]}), {"a": "inconnu"})


def test_french_axis_formatter():
    from analysis.publishing.figures import FrenchFormatter

    f = FrenchFormatter(suffix="\u00a0%")
    f.set_locs([0.0, 0.25, 0.5])
    assert f(0.25) == "0,25\u00a0%"
    g = FrenchFormatter()
    g.set_locs([0, 5000, 10000])
    assert g(10000) == "10\u00a0000"
    years = FrenchFormatter(0, thousands=False)
    assert years(2024) == "2024"
