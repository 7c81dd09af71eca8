"""Fiches établissement PDF (analysis.publishing.fiches)."""

from __future__ import annotations

import pytest

from analysis.publishing.fiches import normalize_fiche, render_fiche_html, render_fiches


def _fiche(finess: str, nom: str, motif: str | None = None, **extra) -> dict:
    f = {
        "finess_geo": finess,
        "finess_ej": "350000008",
        "raison_sociale": nom,
        "departement": "35",
        "categorie": "Centre hospitalier",
        "statut": "Public",
        "lits": 1200,
        "activites": ["MCO", "SSR"],
        "ciblage": [{"risque": "infectieux", "motif": motif}] if motif else [],
        "engagements": [
            {
                "engagement": "lettre_liaison",
                "periode": "2023–2027",
                "indicateurs": [
                    {"indicateur": "score_qls_mco", "valeur": 78.5, "cible": "≥ 80 %",
                     "unite": "%", "statut": "non_atteint",
                     "historique": {2022: 70.0, "2023": 75.25}},
                    {"indicateur": "score_qls_ssr", "valeur": None, "cible": "≥ 80 %",
                     "unite": "%", "statut": "non_evaluable"},
                ],
            },
            {
                "engagement": "signalement_esin",
                "indicateurs": [
                    {"indicateur": "responsable_connecte", "valeur": True, "cible": "oui",
                     "statut": "atteint"},
                    {"indicateur": "signalements", "valeur": 1500, "cible": None,
                     "statut": "sans_cible"},
                ],
            },
        ],
        "plans_actions": [
            {"engagement": "lettre_liaison", "action": "Audit des lettres de liaison",
             "pilote": "Direction qualité", "echeance": "2025-06-30", "statut": "en_cours",
             "statut_libelle": "En cours"},
        ],
    }
    f.update(extra)
    return f


FICHES = [
    _fiche("350000016", "<script>alert(1)</script> & Cie",
           "Non déclarant : aucun signalement e-SIN en 2024"),
    _fiche("290000017", "Clinique de l'Odet", None,
           experience_patient=[{"annee": 2024, "secteur": "SSR", "score": 73.2,
                                "classement": "B", "evolution": "stable"}],
           observations=["Nouvelle direction qualité."]),
    _fiche("560000018", "Hôpital privé de Vannes", "Score QLS MCO de 15,0 % sous le seuil",
           plans_actions=[]),
]


def _text(path):
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    return reader, "\n".join(p.extract_text() for p in reader.pages)


def test_render_fiches(tmp_path):
    progress = []
    paths = render_fiches(FICHES, tmp_path / "j1", region_label="Bretagne", annee=2024,
                          fictif=True, progress=lambda done, total: progress.append((done, total)))
    assert [p.name for p in paths] == ["290000017.pdf", "350000016.pdf", "560000018.pdf"]
    assert progress[-1] == (3, 3)
    reader, text = _text(tmp_path / "j1" / "350000016.pdf")
    assert 1 <= len(reader.pages) <= 2
    assert "<script>alert(1)</script> & Cie" in text
    assert "Non déclarant : aucun signalement e-SIN en 2024" in text
    assert "Fiche établissement — Bretagne 2024" in text
    assert f"page 1 / {len(reader.pages)}" in text
    assert "DONNÉES FICTIVES" in text
    assert "78,5 %" in text.replace("\u00a0", " ")
    assert "Non atteint" in text and "Non évaluable" in text and "Sans cible" in text
    assert reader.metadata.title.startswith("Fiche établissement")
    _, text2 = _text(tmp_path / "j1" / "290000017.pdf")
    assert "Clinique de l'Odet" in text2 and "non ciblé" in text2
    assert "Expérience patient" in text2
    _, text3 = _text(tmp_path / "j1" / "560000018.pdf")
    assert "Score QLS MCO de 15,0 % sous le seuil" in text3
    assert "Aucun plan d'actions transmis." in text3


def test_jobs_2_is_byte_identical(tmp_path):
    one = render_fiches(FICHES, tmp_path / "j1", region_label="Bretagne", annee=2024,
                        fictif=False, jobs=1)
    two = render_fiches(FICHES, tmp_path / "j2", region_label="Bretagne", annee=2024,
                        fictif=False, jobs=2)
    assert [p.name for p in one] == [p.name for p in two]
    for a, b in zip(one, two):
        assert a.read_bytes() == b.read_bytes(), a.name
    assert "DONNÉES FICTIVES" not in _text(one[0])[1]


def test_html_autoescape_and_badges():
    html = render_fiche_html(FICHES[0], region_label="Bretagne <b>", annee=2024, fictif=False)
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Cie" in html
    assert "Bretagne &lt;b&gt;" in html
    # statut : couleur ET texte ET symbole
    assert 'class="badge badge-non_atteint">✗ Non atteint<' in html
    assert 'class="badge badge-atteint">✓ Atteint<' in html


def test_normalize_fiche():
    f = normalize_fiche(FICHES[0], 2024)
    assert f["annees_historique"] == [2022, 2023]
    ind = f["engagements"][0]["indicateurs"][0]
    assert ind["valeur"] == "78,5\u00a0%" and ind["historique"][2023] == "75,3\u00a0%"
    assert f["engagements"][1]["indicateurs"][0]["valeur"] == "oui"
    assert f["engagements"][1]["indicateurs"][1]["valeur"] == "1\u00a0500"
    assert f["lits"] == "1\u00a0200"
    assert f["statut"] == "Public"
    assert f["plans_actions"][0]["echeance"] == "30/06/2025"
    assert f["plans_actions"][0]["statut"] == "En cours"
    with pytest.raises(ValueError):
        normalize_fiche({"finess_geo": "350000016"}, 2024)
    with pytest.raises(ValueError):
        normalize_fiche({"finess_geo": "../x", "raison_sociale": "X"}, 2024)


def test_duplicate_finess_rejected(tmp_path):
    with pytest.raises(ValueError, match="double"):
        render_fiches([FICHES[0], FICHES[0]], tmp_path, region_label="B", annee=2024,
                      fictif=False)


# --------------------------------------------------------------------------- PDF/UA, textes sûrs, cache


def _struct_types(reader) -> set[str]:
    """Types des éléments de structure (H1, H2, Table, TH…) de l'arbre de structure du PDF."""
    seen, stack, out = set(), [reader.trailer["/Root"]["/StructTreeRoot"]], set()
    while stack:
        node = stack.pop()
        if hasattr(node, "get_object"):
            if id(node.get_object()) in seen:
                continue
            node = node.get_object()
            seen.add(id(node))
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not hasattr(node, "get"):
            continue
        if "/S" in node:
            out.add(str(node["/S"]).lstrip("/"))
        kids = node.get("/K")
        if kids is not None:
            stack.append(kids)
    return out


def test_sheets_are_tagged_pdf_ua1_with_language_title_headings_and_table_headers(tmp_path):
    from pypdf import PdfReader

    [path] = render_fiches(FICHES[:1], tmp_path, region_label="Bretagne", annee=2024, fictif=False)
    reader = PdfReader(str(path))
    root = reader.trailer["/Root"]
    assert str(root["/Lang"]).startswith("fr")
    assert bool(root["/MarkInfo"]["/Marked"])
    assert bool(root["/ViewerPreferences"]["/DisplayDocTitle"])
    xmp = root["/Metadata"].get_object().get_data().decode("utf-8")
    assert "<pdfuaid:part>1</pdfuaid:part>" in xmp
    assert "<pdfaid:part>2</pdfaid:part>" in xmp and "<pdfaid:conformance>A</pdfaid:conformance>" in xmp  # archivage
    assert reader.metadata.title == ("Fiche établissement — <script>alert(1)</script> & Cie (350000016) "
                                     "— Bretagne 2024")
    types = _struct_types(reader)
    assert {"H1", "H2", "Table", "TH", "TD"} <= types, types


def test_markup_characters_print_as_typed_and_bidi_controls_do_not_reorder(tmp_path):
    from pypdf import PdfReader

    evil = "#set text(red) *gras* $x^2$ [a] \\ @ref <lab> _x_ `c` // c /* d"
    fiche = _fiche("350000016", evil, "\u202egnp.exe\u202c (pièce jointe)",
                   observations=["Centre 医院 n° 2 \u2067abc\u2069"])
    stats: dict = {}
    [path] = render_fiches([fiche], tmp_path, region_label="Bretagne", annee=2024, fictif=False, stats=stats)
    text = "\n".join(p.extract_text() for p in PdfReader(str(path)).pages)
    assert evil in text                      # aucun balisage Typst interprété
    assert "gnp.exe (pièce jointe)" in text  # ordre saisi : jamais « exe.png »
    assert "exe.png" not in text and "\u202e" not in text
    assert "Centre \ufffd\ufffd n° 2 abc" in text  # glyphes absents : marque visible, pas d'effacement
    warns = stats["avertissements"]
    assert len(warns) == 2
    assert warns[0].startswith("Fiche 350000016 : 4 caractère(s) de contrôle bidirectionnel")  # 202E 202C 2067 2069
    assert "U+533B « 医 »" in warns[1] and "U+9662 « 院 »" in warns[1]


def test_cleaner_counts_bidi_controls_exactly():
    from analysis.publishing.fiches import _TextCleaner

    clean = _TextCleaner()
    assert clean("\u202egnp.exe\u202c") == "gnp.exe"
    assert clean("a\u2066b\u2069\u200fc\td") == "abc d"
    assert clean.bidi == 5 and not clean.missing


def test_same_bytes_across_runs_and_jobs(tmp_path):
    a = render_fiches(FICHES, tmp_path / "a", region_label="Bretagne", annee=2024, fictif=True)
    b = render_fiches(FICHES, tmp_path / "b", region_label="Bretagne", annee=2024, fictif=True, jobs=2)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


def test_cache_reuses_unchanged_sheets_with_the_same_bytes(tmp_path):
    from analysis.publishing.fiches import SheetCache

    kw = dict(region_label="Bretagne", annee=2024, fictif=False, cache_dir=tmp_path / "cache")
    st: dict = {}
    render_fiches(FICHES, tmp_path / "r1", stats=st, **kw)
    assert (st["rendues"], st["reprises"]) == (3, 0)
    changed = [dict(FICHES[0], lits=1201)] + FICHES[1:]
    render_fiches(changed, tmp_path / "r2", stats=st, **kw)
    assert (st["rendues"], st["reprises"]) == (1, 2)
    cold = render_fiches(changed, tmp_path / "froid", region_label="Bretagne", annee=2024, fictif=False)
    for p in cold:
        assert (tmp_path / "r2" / p.name).read_bytes() == p.read_bytes(), p.name
    # une entrée abîmée n'est jamais reprise : la fiche est rendue à nouveau et l'entrée réécrite
    from analysis.publishing.fiches import sheet_json, sheet_key, sheet_view

    view, _ = sheet_view(changed[1], region_label="Bretagne", annee=2024, fictif=False)
    [entry] = (tmp_path / "cache").glob(sheet_key(sheet_json(view)) + "-*.pdf")
    entry.write_bytes(b"%PDF-abime")
    render_fiches(changed, tmp_path / "r3", stats=st, **kw)
    assert st["rendues"] == 1
    assert entry.read_bytes() == (tmp_path / "froid" / f"{changed[1]['finess_geo']}.pdf").read_bytes()  # réparée
    assert sorted(p.read_bytes() for p in (tmp_path / "r3").glob("*.pdf")) == \
        sorted(p.read_bytes() for p in cold)
    # cache borné : les entrées les moins récemment utilisées partent
    assert len(list((tmp_path / "cache").glob("*.pdf"))) == 4  # 3 fiches + l'ancienne version de l'une
    assert SheetCache(tmp_path / "cache").prune(max_entries=2) == 2
    assert len(list((tmp_path / "cache").glob("*.pdf"))) == 2


def test_figure_has_its_alternative_text_in_the_structure(tmp_path):
    from pypdf import PdfReader

    svg = ('<svg xmlns="http://www.w3.org/2000/svg" width="200" height="50" viewBox="0 0 200 50">'
           '<rect x="0" y="10" width="120" height="30" fill="#0072b2"/></svg>')
    alt = "Score QLS MCO 2021–2024 : de 70 % à 78,5 %, sous la cible de 80 %"
    fiche = _fiche("350000016", "CH fictif", None, figure_svg=svg, figure_titre="Historique", figure_alt=alt)
    [path] = render_fiches([fiche], tmp_path, region_label="Bretagne", annee=2024, fictif=False)
    reader = PdfReader(str(path))
    alts, stack, seen = [], [reader.trailer["/Root"]["/StructTreeRoot"]], set()
    while stack:
        node = stack.pop()
        node = node.get_object() if hasattr(node, "get_object") else node
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, list):
            stack.extend(node)
        elif hasattr(node, "get"):
            if node.get("/S") == "/Figure":
                alts.append(str(node.get("/Alt")))
            if node.get("/K") is not None:
                stack.append(node["/K"])
    assert alts == [alt]


def test_a_sheet_typst_cannot_compose_is_named_in_french(tmp_path):
    fiche = _fiche("350000016", "CH fictif", None, figure_svg="<svg pas fermé", figure_titre="Historique")
    with pytest.raises(RuntimeError, match="La fiche établissement 350000016 n'a pas pu être composée"):
        render_fiches([fiche], tmp_path, region_label="Bretagne", annee=2024, fictif=False)
