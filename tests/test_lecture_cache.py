"""Cache des sources validées (``<processed>/.cache-lecture``) : après la correction d'une ligne, seule
la source corrigée est validée à nouveau, et la lecture est identique à une lecture à froid."""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

import pandas as pd
from pipeline_data import write_fixture

from analysis.cache import ContentCache
from analysis.reading import cleaning
from analysis.rules.loader import load_rules

DEMO = Path(__file__).resolve().parents[1] / "data" / "raw"


def _same(a, b) -> None:
    assert sorted(a.tables) == sorted(b.tables)
    for name in a.tables:
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name], check_exact=True, obj=name)
    pd.testing.assert_frame_equal(a.rejects, b.rejects, check_exact=True)
    assert [asdict(f) for f in a.files] == [asdict(f) for f in b.files]
    assert (a.warnings, a.absent_sources, a.ignored_files) == (b.warnings, b.absent_sources, b.ignored_files)


def test_one_row_correction_revalidates_only_its_source_and_equals_a_cold_read(tmp_path, monkeypatch):
    data = write_fixture(tmp_path / "raw")
    shutil.copy(DEMO / "esatis_ssr_2024.xlsx", data)  # un fichier officiel (e-Satis SSR, HAS)
    rules = load_rules()
    cache = ContentCache(tmp_path / "cache", suffix=".pickle")
    read_cache = ContentCache(tmp_path / "fichiers", suffix=".pickle")
    calls: list[str] = []
    reads: list[str] = []
    real = cleaning.validate_source
    monkeypatch.setattr(cleaning, "validate_source", lambda src, *a, **k: calls.append(src) or real(src, *a, **k))
    real_read = cleaning.official.read_candidate
    monkeypatch.setattr(cleaning.official, "read_candidate", lambda p: reads.append(p.name) or real_read(p))

    def read(with_cache=True, salt="code v1"):
        calls.clear()
        reads.clear()
        return cleaning.clean_folder(data, rules, cache=cache if with_cache else None, cache_salt=salt,
                                     read_cache=read_cache if with_cache else None)

    read()
    every = sorted(calls)
    files = sorted(reads)
    assert {"etablissements", "esin", "esatis"} <= set(every)
    assert len(files) == 12 and "esatis_ssr_2024.xlsx" in files
    assert len(list(cache.folder.glob("*.pickle"))) == len(every)  # une entrée par source validée
    assert len(list(read_cache.folder.glob("*.pickle"))) == len(files)  # et par fichier lu
    read()
    assert calls == [] and reads == []  # rien n'a changé : tout est repris, aucun fichier relu

    # correction d'une ligne d'esin.csv (0 → 1 signalement)
    esin = data / "esin.csv"
    text = esin.read_text(encoding="utf-8")
    assert "140000002;2024;0;non" in text
    esin.write_text(text.replace("140000002;2024;0;non", "140000002;2024;1;non"), encoding="utf-8")
    warm = read()
    assert calls == ["esin"] and reads == ["esin.csv"]
    cold = read(with_cache=False)
    assert sorted(calls) == every and sorted(reads) == files
    _same(warm, cold)
    row = warm.tables["esin"].set_index(["finess_geo", "annee"]).loc[("140000002", 2024)]
    assert row["signalements"] == 1

    # un établissement de plus au référentiel : toutes les sources qu'il filtre sont validées à nouveau
    etab = data / "etablissements.csv"
    etab.write_text(etab.read_text(encoding="utf-8") + "140000099;Clinique ajoutée;14;28;public;oui;non;non;;10\n",
                    encoding="utf-8")
    read()
    assert sorted(calls) == every
    # un autre code (ou d'autres versions) : rien n'est repris
    read(salt="code v2")
    assert sorted(calls) == every


def test_two_official_files_of_one_source_keep_their_own_rows(tmp_path):
    """Deux campagnes e-Satis (deux fichiers officiels, une source) : chacune est validée sous sa propre
    clé ; avec le cache, vide puis plein, la lecture est celle d'une lecture sans cache (153 lignes par
    campagne, aucune reprise de l'une pour l'autre)."""
    data = tmp_path / "raw"
    shutil.copytree(DEMO, data)
    shutil.copy(DEMO / "esatis_ssr_2024.xlsx", data / "esatis_ssr_2023.xlsx")
    rules = load_rules()
    cold = cleaning.clean_folder(data, rules)
    assert cold.tables["esatis"]["annee"].value_counts().sort_index().to_dict() == {2023: 153, 2024: 153}
    cache = ContentCache(tmp_path / "cache", suffix=".pickle")
    for _ in range(2):  # cache vide, puis rempli
        _same(cleaning.clean_folder(data, rules, cache=cache, cache_salt="x"), cold)


def test_cache_bounded_by_size_keeps_the_most_recently_used(tmp_path):
    import os

    cache = ContentCache(tmp_path / "c", suffix=".pickle")
    for i, key in enumerate(("a", "b", "c", "d")):
        cache.put(key * 64, bytes(100))  # 100 octets chacune
        path = next(cache.folder.glob(f"{key * 64}-*.pickle"))
        os.utime(path, (1_000_000 + i, 1_000_000 + i))  # d : la plus récente
    assert cache.prune(max_entries=10, max_bytes=250) == 2  # 100 + 100 ≤ 250 < 300
    assert sorted(p.name[0] for p in cache.folder.glob("*.pickle")) == ["c", "d"]
    assert cache.prune(max_entries=10, max_bytes=10) == 1  # la plus récente reste, même trop grosse
    assert [p.name[0] for p in cache.folder.glob("*.pickle")] == ["d"]
    assert ContentCache(tmp_path / "c", suffix=".pickle").get("d" * 64) == bytes(100)
