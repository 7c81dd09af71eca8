"""Calculs repris d'une exécution à l'autre (:mod:`analysis.indicators.persist`) : une clé par calcul,
faite des empreintes des lignes qu'il lit ; un calcul repris vaut le calcul refait."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from pipeline_data import write_fixture

from analysis.indicators import engine, persist
from analysis.reading.cleaning import clean_folder


@pytest.fixture
def store(tmp_path):
    persist.activate(tmp_path / "calculs", "code v1")
    yield tmp_path / "calculs"
    persist.deactivate()


def _frame(**cols) -> pd.DataFrame:
    return pd.DataFrame(cols)


def test_cached_computes_once_per_key(store):
    calls = []

    def compute():
        calls.append(1)
        return _frame(a=pd.array([1, None], dtype="Int64"), b=pd.array(["x", None], dtype="string"))

    first = persist.cached("essai", ["k1"], compute)
    again = persist.cached("essai", ["k1"], compute)
    assert len(calls) == 1 and again is not first
    pd.testing.assert_frame_equal(again, first, check_exact=True)  # mêmes valeurs, mêmes types
    persist.cached("essai", ["k2"], compute)  # autre clé
    persist.cached("autre", ["k1"], compute)  # autre calcul
    assert len(calls) == 3
    persist.activate(store, "code v2")  # autre code ou autres versions : rien n'est repris
    persist.cached("essai", ["k1"], compute)
    assert len(calls) == 4 and len(list(store.glob("*.pickle"))) == 4


def test_inactive_cache_always_computes(tmp_path):
    assert not persist.active()
    calls = []
    for _ in range(2):
        persist.cached("essai", ["k1"], lambda: calls.append(1))
    assert len(calls) == 2


def test_table_fingerprint_sees_values_types_and_order():
    base = _frame(finess_geo=pd.array(["1", "2"], dtype="string"), n=pd.array([3, 4], dtype="Int64"))
    fp = persist.table_fingerprint(base)
    assert persist.table_fingerprint(base.copy()) == fp  # même contenu, autre objet
    changed = base.copy()
    changed.loc[1, "n"] = 5
    assert persist.table_fingerprint(changed) != fp
    assert persist.table_fingerprint(base.astype({"n": "Float64"})) != fp  # 3 et 3.0 : autre type
    assert persist.table_fingerprint(base.iloc[::-1]) != fp
    assert persist.table_fingerprint(base.rename(columns={"n": "m"})) != fp
    assert persist.table_fingerprint(None) == "absente"


def test_table_fingerprint_tells_missing_values_from_their_text():
    """``hash_pandas_object`` seul donne la même empreinte à ``None`` et au texte « None », à ``NaN``
    et à « nan », à 1 et à « 1 » (colonnes ``object``) : l'empreinte les distingue."""
    fp = persist.table_fingerprint
    assert fp(_frame(c=pd.Series([None, "a"], dtype=object))) != fp(_frame(c=pd.Series(["None", "a"], dtype=object)))
    assert fp(_frame(c=pd.Series([float("nan"), "a"], dtype=object))) != fp(_frame(c=pd.Series(["nan", "a"], dtype=object)))
    assert fp(_frame(c=pd.array([None, "a"], dtype="string"))) != fp(_frame(c=pd.array(["None", "a"], dtype="string")))
    assert fp(_frame(c=pd.Series([1, 2], dtype=object))) != fp(_frame(c=pd.Series(["1", "2"], dtype=object)))
    assert fp(_frame(c=pd.Series([1, "2"], dtype=object))) != fp(_frame(c=pd.Series(["1", "2"], dtype=object)))
    with_attrs = _frame(c=[1, 2])
    with_attrs.attrs["source"] = "esin"
    assert fp(with_attrs) != fp(_frame(c=[1, 2]))


def test_unchanged_tables_are_written_from_the_table_cache_with_the_same_bytes(tmp_path, rules):
    """Tables nettoyées en Parquet (``write_processed``) : une table inchangée est reprise du cache
    (pas de nouvelle conversion), une table corrigée est écrite de nouveau ; octets identiques à une
    écriture sans cache."""
    from analysis.cache import ContentCache
    from analysis.reading.cleaning import write_processed

    result = clean_folder(write_fixture(tmp_path / "raw"), rules)
    cache = ContentCache(tmp_path / "tables", suffix=".parquet")
    write_processed(result, tmp_path / "a", cache=cache, cache_salt="v1")
    n_tables = len(result.tables)
    assert len(list(cache.folder.glob("*.parquet"))) == n_tables

    esin = result.tables["esin"]
    i = esin.index[(esin["finess_geo"] == "140000001") & (esin["annee"] == 2023)][0]
    esin.loc[i, "signalements"] = esin.loc[i, "signalements"] + 1  # une ligne corrigée
    written = []
    real_to_parquet = pd.DataFrame.to_parquet

    def spy(self, *args, **kwargs):
        written.append(len(self))
        return real_to_parquet(self, *args, **kwargs)

    pd.DataFrame.to_parquet = spy
    try:
        write_processed(result, tmp_path / "b", cache=cache, cache_salt="v1")
    finally:
        pd.DataFrame.to_parquet = real_to_parquet
    # esin seule convertie de nouveau, plus les rejets et le tableau des fichiers (toujours écrits)
    assert written == [len(esin), len(result.rejects), len(result.files_frame())]
    assert len(list(cache.folder.glob("*.parquet"))) == n_tables + 1
    write_processed(result, tmp_path / "sans_cache")
    for p in sorted((tmp_path / "sans_cache").glob("*.parquet")):
        assert (tmp_path / "b" / p.name).read_bytes() == p.read_bytes(), p.name
    assert (tmp_path / "a" / "etablissements.parquet").read_bytes() == \
        (tmp_path / "b" / "etablissements.parquet").read_bytes()
    assert (tmp_path / "a" / "esin.parquet").read_bytes() != (tmp_path / "b" / "esin.parquet").read_bytes()


def test_an_observation_reads_only_the_rows_of_its_scope(tmp_path, rules):
    """Chaque indicateur du fichier de règles, chaque année : l'observation sur les seules lignes de sa
    portée (:func:`engine.scope_rows`) est celle sur toute la source, ce qui permet de la reprendre sur
    l'empreinte de ces lignes. Portées attendues : l'année seule (compte, booléen, ratio), jusqu'à N
    (valeur), toutes (niveau daté)."""
    tables = clean_folder(write_fixture(tmp_path / "raw"), rules).tables
    seen = set()
    for _, code, ind in rules.indicators():
        src = engine.source_rows(tables, ind.source)
        if src is None:
            continue
        for annee in (2022, 2023, 2024):
            rows = engine.scope_rows(src, ind, annee)
            full = engine._observe_all(src, rules, code, annee)
            pd.testing.assert_frame_equal(engine._observe_all(rows, rules, code, annee), full, check_exact=True)
            years = set(rows["annee"].dropna().astype(int)) if "annee" in rows.columns else set()
            seen.add(ind.calcul)
            if ind.calcul in ("compte", "booleen", "ratio"):
                assert years <= {annee}
            elif ind.calcul == "valeur":
                assert years == {y for y in src["annee"].dropna().astype(int) if y <= annee}
            elif ind.date:
                assert len(rows) == len(src)
    assert seen == {"compte", "booleen", "ratio", "valeur", "niveau"}


def test_a_change_in_another_year_keeps_the_key_of_a_yearly_count(tmp_path, rules, store):
    """esin 2023 corrigé : l'empreinte des signalements de 2024 (compte de l'année) ne change pas, celle
    de 2023 change ; celle du score QLS de 2024 (valeur : lignes jusqu'à N) change quand une campagne
    2022 est corrigée."""
    data = write_fixture(tmp_path / "raw")
    before = clean_folder(data, rules).tables
    esin = data / "esin.csv"
    esin.write_text(esin.read_text(encoding="utf-8").replace("140000001;2023;10;oui", "140000001;2023;11;oui"),
                    encoding="utf-8")
    qls = data / "qls.csv"
    qls.write_text(qls.read_text(encoding="utf-8").replace("140000001;2022;MCO;70;60", "140000001;2022;MCO;71;60"),
                   encoding="utf-8")
    after = clean_folder(data, rules).tables
    signalements, score = rules.indicator("signalements"), rules.indicator("score_qls")
    assert engine.scope_fingerprint(after, signalements, 2024) == engine.scope_fingerprint(before, signalements, 2024)
    assert engine.scope_fingerprint(after, signalements, 2023) != engine.scope_fingerprint(before, signalements, 2023)
    assert engine.scope_fingerprint(after, score, 2024) != engine.scope_fingerprint(before, score, 2024)


def test_parquet_read_once_per_process_until_the_file_is_replaced(tmp_path):
    """Les notebooks d'un rapport (un noyau) relisent les mêmes tables : lues une fois, chaque appel
    reçoit sa copie, et un fichier remplacé (écrit par renommage, comme ceux du projet) est relu."""
    from analysis.cache import read_parquet_once, write_atomic

    path = tmp_path / "t.parquet"
    _frame(n=pd.array([1, 2], dtype="Int64")).to_parquet(path)
    a = read_parquet_once(path)
    a.loc[0, "n"] = 99  # la copie d'un appelant ne touche pas la table gardée
    assert read_parquet_once(path)["n"].tolist() == [1, 2]
    buf = io.BytesIO()
    _frame(n=pd.array([3], dtype="Int64")).to_parquet(buf)
    write_atomic(path, buf.getvalue())
    assert read_parquet_once(path)["n"].tolist() == [3]
