"""Notebook exécuté (Papermill) → HTML imprimable → PDF (analysis.publishing.render, analysis.publishing.figures)."""

from __future__ import annotations

import re

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from analysis.publishing.rapport_pdf import html_to_pdf
from analysis.publishing.render import build_toc, css_string, notebook_to_html

DANGEROUS = "<script>alert(1)</script> & Cie"


def _notebook():
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    params = new_code_cell("annee = 2000")
    params.metadata["tags"] = ["parameters"]
    removed = new_code_cell("print('CELLULE_SUPPRIMEE')")
    removed.metadata["tags"] = ["remove_cell"]
    hidden_out = new_code_cell("print('SORTIE_MASQUEE')")
    hidden_out.metadata["tags"] = ["remove_output"]
    nb.cells = [
        params,
        new_code_cell(
            "import warnings\n"
            "import pandas as pd\n"
            "from analysis.publishing import figures as F\n"
            "F.setup_matplotlib()\n"
            "warnings.warn('AVERTISSEMENT_INTERNE')"
        ),
        new_markdown_cell("# Synthèse régionale\n\nTexte d'introduction.\n\n## Établissements"),
        new_code_cell(
            "CODE_SECRET = 1\n"
            f"pd.DataFrame({{'raison_sociale': [{DANGEROUS!r}, 'CH B'], 'lits': [10, 20]}})"
        ),
        new_markdown_cell("# Tendances"),
        new_code_cell(
            "df = pd.DataFrame({'annee': [2022, 2023, annee], 'v': [1.5, 2.5, 3.0]})\n"
            "F.show(F.line_trend(df, 'annee', 'v', title='Évolution', ylabel='Valeur'),\n"
            "       alt='Valeur passée de 1,5 en 2022 à 3,0 en 2024 : hausse continue.',\n"
            "       caption='Évolution de la valeur <test>')\n"
            "F.show(F.line_trend(df, 'annee', 'v', title='Sans texte'))"
        ),
        removed,
        hidden_out,
    ]
    return nb


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    papermill = pytest.importorskip("papermill")
    d = tmp_path_factory.mktemp("rapport")
    src, out = d / "source.ipynb", d / "execute.ipynb"
    nbformat.write(_notebook(), src)
    papermill.execute_notebook(str(src), str(out), parameters={"annee": 2024},
                               kernel_name="python3", progress_bar=False)
    return out


@pytest.fixture(scope="module")
def html_file(executed):
    html = executed.with_name("rapport.html")
    notebook_to_html(executed, html, title="Rapport de test", region_label="Région <Test>",
                     annee=2024, fictif=True)
    return html


def test_html_has_no_code_and_is_escaped(html_file):
    text = html_file.read_text(encoding="utf-8")
    assert "CODE_SECRET" not in text  # pas de code source
    assert "import pandas" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Cie" in text
    # un seul script, en ligne (celui de la page web) : ni require.js, ni MathJax, ni script externe
    assert text.lower().count("<script") == 1 and "<script>\n/* Rapport annuel CPOM" in text
    assert "<script src" not in text.lower()
    assert "mathjax" not in text.lower() and "require.js" not in text.lower()
    assert not re.search(r"""(src|href)=["']https?://""", text)  # aucune ressource externe
    assert "In&nbsp;[" not in text and "Out[" not in text  # pas d'invites
    assert "CELLULE_SUPPRIMEE" not in text and "SORTIE_MASQUEE" not in text
    assert "AVERTISSEMENT_INTERNE" not in text
    assert "cell-id=" not in text


def test_html_has_toc_svg_cover(html_file):
    text = html_file.read_text(encoding="utf-8")
    assert '<nav class="toc">' in text
    assert '<a href="#sec-synthese-regionale">Synthèse régionale</a>' in text
    assert 'href="#sec-etablissements"' in text and 'href="#sec-tendances"' in text
    assert '<h1 id="sec-synthese-regionale"' in text
    # figure SVG vectorielle incorporée comme image data: (pas de <svg> en ligne : voir le modèle)
    assert "data:image/svg+xml;base64," in text
    assert "<svg" not in text
    assert "DONNÉES FICTIVES" in text
    assert "Région &lt;Test&gt;" in text
    assert '<html lang="fr">' in text


def test_html_is_deterministic(executed, html_file, tmp_path):
    again = tmp_path / "bis.html"
    notebook_to_html(executed, again, title="Rapport de test", region_label="Région <Test>",
                     annee=2024, fictif=True)
    assert again.read_bytes() == html_file.read_bytes()


def test_pdf(html_file, tmp_path):
    from pypdf import PdfReader

    pdf = tmp_path / "rapport.pdf"
    html_to_pdf(html_file, pdf)
    reader = PdfReader(str(pdf))
    n = len(reader.pages)
    assert n >= 4  # couverture, sommaire, deux chapitres
    texts = [p.extract_text() for p in reader.pages]
    full = "\n".join(texts)
    assert f"2 / {n}" in full  # pagination « n / N »
    assert "Synthèse régionale" in full and "Tendances" in full
    assert "Sommaire" in full
    assert "DONNÉES FICTIVES" in full
    assert "<script>alert(1)</script> & Cie" in full
    assert "CODE_SECRET" not in full
    assert reader.metadata.title == "Rapport de test"
    assert str(reader.trailer["/Root"]["/Lang"]).startswith("fr")
    # la figure SVG est dessinée : la page des tendances n'est pas vide de contenu graphique
    tendances = next(i for i, t in enumerate(texts) if "Tendances" in t and i > 1)
    assert len(reader.pages[tendances].get_contents().get_data()) > 5000
    # reproductible
    pdf2 = tmp_path / "rapport2.pdf"
    html_to_pdf(html_file, pdf2)
    assert pdf2.read_bytes() == pdf.read_bytes()


def test_build_toc_unique_ids():
    body, toc = build_toc('<h1 id="x">A &amp; B</h1><h2>Été</h2><h2>Été</h2><h3>non</h3>')
    assert '<h1 id="sec-a-b">' in body
    assert 'id="sec-ete"' in body and 'id="sec-ete-2"' in body
    assert "A &amp; B" in toc and "non" not in toc
    assert build_toc("<p>rien</p>") == ("<p>rien</p>", "")


def test_css_string_escapes():
    s = css_string('a "b" \\ </style>')
    assert s.startswith('"') and s.endswith('"')
    assert "</style>" not in s and '"b"' not in s


def test_svg_is_deterministic():
    import pandas as pd

    from analysis.publishing import figures as F

    df = pd.DataFrame({"annee": [2022, 2023, 2024] * 2, "v": [1, 2, 3, 2, 3, 4],
                       "g": ["a"] * 3 + ["b"] * 3})
    a = F.fig_to_svg(F.line_trend(df, "annee", "v", "g", "Titre", "Valeur", target=2.5))
    b = F.fig_to_svg(F.line_trend(df, "annee", "v", "g", "Titre", "Valeur", target=2.5))
    assert a == b and a.startswith("<svg")
    assert "<dc:date>" not in a


def test_figures_numbered_with_caption_and_alt(html_file):
    text = html_file.read_text(encoding="utf-8")
    figs = re.findall(r'<figure id="figure-(\d+)"[^>]*>\s*<img alt="([^"]*)"[^>]*>\s*'
                      r'<figcaption class="legende-figure">(.*?)</figcaption>', text, re.S)
    assert [(n, alt) for n, alt, _ in figs] == [
        ("1", "Valeur passée de 1,5 en 2022 à 3,0 en 2024 : hausse continue."),
        ("2", "Figure"),  # sans alt= : texte générique (repérable, voir figures.GENERIC_ALT)
    ]
    assert figs[0][2] == ('<span class="numero-figure">Figure 1\u00a0: </span>'
                          "Évolution de la valeur &lt;test&gt;")
    # sans caption= : le titre du graphique
    assert figs[1][2] == '<span class="numero-figure">Figure 2\u00a0: </span>Sans texte'


def test_table_headers_have_scope(html_file):
    text = html_file.read_text(encoding="utf-8")
    table = re.search(r"<table.*?</table>", text, re.S).group(0)
    thead, tbody = table.split("</thead>")
    assert re.findall(r"<th\b[^>]*>", thead) and all(
        'scope="col"' in t for t in re.findall(r"<th\b[^>]*>", thead))
    assert all('scope="row"' in t for t in re.findall(r"<th\b[^>]*>", tbody))  # index du DataFrame
    assert re.findall(r"<th\b[^>]*>", tbody)


def test_add_header_scopes_keeps_existing_scope():
    from analysis.publishing.render import add_header_scopes

    got = add_header_scopes('<p><th>x</th></p><table><thead><tr><th scope="colgroup">a</th><th class="num">b'
                            '</th></tr></thead><tbody><tr><th>i</th><td>1</td></tr></tbody></table>')
    assert got == ('<p><th>x</th></p><table><thead><tr><th scope="colgroup">a</th><th scope="col" class="num">b'
                   '</th></tr></thead><tbody><tr><th scope="row">i</th><td>1</td></tr></tbody></table>')


def _preload_object_streams(reader) -> None:
    """Lit une fois chaque flux d'objets du PDF (pypdf le décompresse et le relit pour chaque objet :
    des dizaines de secondes pour l'arbre de structure d'un rapport)."""
    from io import BytesIO

    from pypdf.generic import IndirectObject, read_object

    for stm in sorted({stm for stm, _ in reader.xref_objStm.values()}):
        obj_stm = IndirectObject(stm, 0, reader).get_object()
        data = obj_stm.get_data()
        first, n = int(obj_stm["/First"]), int(obj_stm["/N"])
        header = data[:first].split()
        buf = BytesIO(data)
        for i in range(n):
            num, off = int(header[2 * i]), int(header[2 * i + 1])
            if reader.cache_get_indirect_object(0, num) is None:
                buf.seek(first + off)
                reader.cache_indirect_object(0, num, read_object(buf, reader))


def _struct_elements(reader):
    """Éléments de structure du PDF balisé, dans l'ordre de lecture (parcours en profondeur de
    l'arbre depuis /StructTreeRoot)."""
    out = []

    def walk(node):
        kids = node.get("/K")
        kids = [] if kids is None else kids if isinstance(kids, list) else [kids]
        for kid in kids:
            kid = kid.get_object() if hasattr(kid, "get_object") else kid
            if isinstance(kid, dict) and kid.get("/Type") == "/StructElem":
                out.append(kid)
                walk(kid)

    walk(reader.trailer["/Root"]["/StructTreeRoot"].get_object())
    return out


def check_tagged_pdf(pdf_path, title: str, *, allow_generic: bool = False) -> list[str]:
    """Vérifie un PDF balisé PDF/UA-1 (et PDF/A-2a) ; renvoie les textes alternatifs des figures."""
    from pypdf import PdfReader

    from analysis.publishing.figures import GENERIC_ALT

    reader = PdfReader(str(pdf_path))
    _preload_object_streams(reader)
    root = reader.trailer["/Root"]
    assert str(root["/Lang"]).startswith("fr")
    assert root["/MarkInfo"]["/Marked"] == True  # noqa: E712 (BooleanObject)
    assert root["/ViewerPreferences"]["/DisplayDocTitle"] == True  # noqa: E712
    assert reader.metadata.title == title
    xmp = root["/Metadata"].get_object().get_data().decode("utf-8")
    assert "<pdfuaid:part>1</pdfuaid:part>" in xmp
    assert "<pdfaid:part>2</pdfaid:part>" in xmp and "<pdfaid:conformance>A</pdfaid:conformance>" in xmp
    assert title in xmp  # dc:title
    elems = _struct_elements(reader)
    kinds = {e["/S"] for e in elems}
    assert {"/H1", "/Table", "/TH", "/TD", "/Figure", "/Caption"} <= kinds, kinds
    alts = [str(e.get("/Alt", "")) for e in elems if e["/S"] == "/Figure"]
    assert all(alts), "figure sans texte alternatif"
    if not allow_generic:
        assert not [a for a in alts if a.strip() == GENERIC_ALT], alts
    # chaque cellule de données est rattachée à l'en-tête de sa colonne
    th_ids = {str(e["/ID"]) for e in elems if e["/S"] == "/TH"}
    def table_attrs(e):  # /A : un dictionnaire d'attributs ou une liste (propriétaire /Table, /Layout…)
        attrs = e.get("/A")
        attrs = attrs if isinstance(attrs, list) else [attrs] if attrs is not None else []
        return next((a for a in attrs if a.get("/O") == "/Table"), {})

    tds = [e for e in elems if e["/S"] == "/TD"]
    headers = [table_attrs(e).get("/Headers") for e in tds]
    assert tds and all(h and {str(x) for x in h} <= th_ids for h in headers)
    assert all(table_attrs(e).get("/Scope") == "/Column" for e in elems if e["/S"] == "/TH")
    return alts


def test_pdf_is_tagged_pdf_ua(html_file, tmp_path):
    import shutil
    import subprocess

    pdf = tmp_path / "balise.pdf"
    html_to_pdf(html_file, pdf)
    alts = check_tagged_pdf(pdf, "Rapport de test", allow_generic=True)
    assert alts == ["Valeur passée de 1,5 en 2022 à 3,0 en 2024 : hausse continue.", "Figure"]
    if shutil.which("pdfinfo"):
        info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
        assert re.search(r"^Tagged:\s+yes$", info, re.M), info


REPORT_TITLE = "Suivi qualité des CPOM — rapport annuel"


def test_annual_report_pdf_is_tagged_pdf_ua(built):
    """Le rapport annuel construit de bout en bout est balisé (PDF/UA-1, PDF/A-3u), figures comprises."""
    pdf = built[3] / "rapport_annuel.pdf"
    alts = check_tagged_pdf(pdf, REPORT_TITLE, allow_generic=True)
    assert len(alts) >= 3
    html = (built[3] / "rapport_annuel.html").read_text(encoding="utf-8")
    captions = re.findall(r'<span class="numero-figure">Figure (\d+)', html)
    assert captions == [str(i) for i in range(1, len(alts) + 1)]


def test_annual_report_figures_have_meaningful_alt(built):
    check_tagged_pdf(built[3] / "rapport_annuel.pdf", REPORT_TITLE, allow_generic=False)


def test_no_table_is_squeezed_much_below_its_longest_words(built):
    """Chaque tableau du rapport tient dans la largeur de la page : à sa largeur naturelle, ou ses
    colonnes réparties entre largeur minimale (plus long mot) et naturelle ; au pire (tableau
    « compact » des fichiers lus), resserrées de moins de 15 % sous leurs plus longs mots, coupés
    alors en syllabes."""
    from analysis.publishing.rapport_pdf import query

    html = (built[3] / "rapport_annuel.html").read_text(encoding="utf-8")
    assert len(query(html, "table")) >= 10
    squeezed = query(html, "<tableau-resserre>")
    assert all(t["value"]["resserrement"] >= 0.85 for t in squeezed), squeezed
    assert query(html, "<debordement>") == []  # aucun nombre, code ou nom de fichier hors de sa cellule


def _table_html(rows: list[list[str]]) -> str:
    head = "".join(f"<th>{c}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows[1:])
    return (f"<html><head><title>T</title></head><body><main><h1>A</h1><table class='tableau'>"
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></main></body></html>")


def test_table_columns_follow_css_automatic_layout():
    from analysis.publishing.rapport_pdf import query, report_tree

    # tient sur une ligne : colonnes à leur largeur naturelle, rien de resserré
    small = _table_html([["Fichier", "Lues"], ["esin.csv", "2 324"]])
    assert query(small, "<tableau-resserre>") == []
    # un long texte se répartit sur plusieurs lignes : pas de resserrement non plus
    long = _table_html([["Motif", "Valeur"], ["mot " * 200, "1"]])
    assert query(long, "<tableau-resserre>") == []
    # 12 colonnes de mots de 20 lettres : resserrées (les mots se coupent en syllabes), sans déborder
    wide = _table_html([[f"c{i}" for i in range(12)], ["anticonstitutionnels"] * 12])
    [squeezed] = query(wide, "<tableau-resserre>")
    assert squeezed["value"]["colonnes"] == 12 and squeezed["value"]["resserrement"] < 1
    assert query(wide, "<debordement>") == []
    # 12 colonnes de codes de 20 caractères (jamais coupés) : plus larges que la page, signalé
    codes = _table_html([[f"c{i}" for i in range(12)], ["ab_cd_ef_gh_ij_kl_mn"] * 12])
    [over] = query(codes, "<debordement>")
    assert over["value"]["colonnes"] == 12 and over["value"]["exces_pt"] > 100
    # les mesures envoyées au gabarit : plus longs mots et plus longues cellules de chaque colonne
    [table] = [n for n in report_tree(_table_html([["A", "Établissements"], ["un deux", "Sainte-Marie-le-Château"],
                                                   ["hospitalisation", "esatis_ssr_2024.xlsx"]]))["contenu"]
               if n["t"] == "table"]
    assert table["cols"] == 2
    assert table["mesures"][0] == {"min": [["hospitalisation", False], ["deux", False], ["un", False]],
                                   "min_cesure": [["hospital-", False], ["deux", False], ["un", False]],
                                   "min_th": [["A", True]], "min_th_cesure": [["A", True]], "insecable": [],
                                   "max": [["hospitalisation", False], ["un deux", False], ["A", True]]}
    m = table["mesures"][1]
    assert m["min"] == [["esatis_ssr_2024.xlsx", False], ["Château", False], ["Sainte-", False]]  # trait d'union
    assert m["min_cesure"][0] == ["esatis_ssr_2024.xlsx", False]  # un nom de fichier ne se coupe pas en syllabes
    assert m["insecable"] == [["esatis_ssr_2024.xlsx", False]]  # ni « Sainte- », ni « Château »
    assert m["min_th_cesure"] == [["Établis-", True]]  # 14 lettres : les 7 premières


def test_report_pdf_prints_markup_characters_as_typed(tmp_path):
    from pypdf import PdfReader

    evil = "#set text(red) *gras* $x^2$ [a] \\ @ref <lab> _x_ `c` // c"
    html = tmp_path / "r.html"
    html.write_text(f"<html><head><title>T</title></head><body><main><h1>A</h1><p>{evil.replace('<', '&lt;')}"
                    "</p><p>Centre 医院</p></main></body></html>", encoding="utf-8")
    pdf = tmp_path / "r.pdf"
    html_to_pdf(html, pdf)
    text = "\n".join(p.extract_text() for p in PdfReader(str(pdf)).pages)
    assert evil in text
    assert "Centre \ufffd\ufffd" in text  # glyphes absents de la police : marque visible


def test_drawn_figures_are_reused_only_for_the_same_data(tmp_path, monkeypatch):
    """Une figure déjà dessinée (même fonction, mêmes données, mêmes réglages) est reprise du cache,
    aux mêmes octets ; une valeur, un titre ou l'ordre des catégories changés la font redessiner ;
    une fonction de dessin d'un autre module n'est jamais reprise (son code n'est pas dans la clé)."""
    import pandas as pd

    from analysis.publishing import figures as F

    F.setup_matplotlib()
    calls = []
    real_new = F._new_figure
    monkeypatch.setattr(F, "_new_figure", lambda *a, **k: (calls.append(1), real_new(*a, **k))[1])
    df = pd.DataFrame({"annee": [2022, 2023, 2024], "v": [1.0, 2.0, 3.0]})
    without_cache = F.draw(F.line_trend, df, "annee", "v", title="Titre")
    F.use_cache(tmp_path / "figures")
    try:
        first = F.draw(F.line_trend, df, "annee", "v", title="Titre")
        again = F.draw(F.line_trend, df.copy(), "annee", "v", title="Titre")
        assert len(calls) == 2 and again == first == without_cache  # repris : pas de nouveau dessin
        assert first.title == "Titre" and first.svg.startswith("<svg")
        changed = F.draw(F.line_trend, df.assign(v=[1.0, 2.0, 3.5]), "annee", "v", title="Titre")
        assert len(calls) == 3 and changed.svg != first.svg
        F.draw(F.line_trend, df, "annee", "v", title="Autre titre")
        assert len(calls) == 4
        # mêmes valeurs, catégories dans un autre ordre (couleurs et légende changent) : autre clé
        for order in (["a", "b"], ["b", "a"]):
            F.draw(F.line_trend, df.assign(g=pd.Categorical(["a", "b", "a"], categories=order)), "annee", "v",
                   hue="g", title="T")
        assert len(calls) == 6

        def elsewhere(*args, **kwargs):
            return F.line_trend(*args, **kwargs)

        F.draw(elsewhere, df, "annee", "v", title="Titre")
        F.draw(elsewhere, df, "annee", "v", title="Titre")
        assert len(calls) == 8
        assert len(list((tmp_path / "figures").glob("*.json"))) == 5
    finally:
        F.use_cache(None)


def test_show_publishes_the_svg_ipython_would_with_alt_as_plain_text(monkeypatch):
    """La sortie de :func:`figures.show` : le SVG tel que l'écrirait ``IPython.display.SVG`` (relu une
    seule fois, au dessin), le texte alternatif en texte brut et la légende en métadonnées."""
    import pandas as pd
    from IPython.display import SVG

    from analysis.publishing import figures as F

    F.setup_matplotlib()
    sent = []
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: sent.append((a, k)))
    df = pd.DataFrame({"annee": [2022, 2023, 2024], "v": [1.0, 2.0, 3.0]})
    drawn = F.draw(F.line_trend, df, "annee", "v", title="Titre")
    F.show(drawn, alt="  Trois   années ", caption="Légende")
    fig = F.line_trend(df, "annee", "v", title="Titre")
    expected = SVG(data=F.fig_to_svg(fig)).data
    F.show(F.line_trend(df, "annee", "v", title="Titre"))
    [(args, kwargs), (args2, kwargs2)] = sent
    assert args == ({"image/svg+xml": expected, "text/plain": "Trois années"},) and kwargs["raw"] is True
    assert kwargs["metadata"] == {"cpom_figure": {"alt": "Trois années", "caption": "Légende"}}
    assert args2[0] == {"image/svg+xml": expected, "text/plain": F.GENERIC_ALT}
    assert kwargs2["metadata"]["cpom_figure"]["caption"] == "Titre"


def test_report_pdf_keeps_every_text_of_unusual_html(tmp_path):
    """HTML que le paquet ne produit pas aujourd'hui mais qu'un notebook ou un texte Markdown peut
    produire : le PDF se construit et ne perd aucun texte (relecture de code)."""
    import base64

    from pypdf import PdfReader

    from analysis.publishing.rapport_pdf import report_tree

    svg = ('<svg xmlns="http://www.w3.org/2000/svg" width="100pt" height="40pt" viewBox="0 0 100 40">'
           '<text x="2" y="20" style="font-family: DejaVu Sans">Centre 医院</text></svg>')
    src = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
    html = ("<html><head><title>T</title></head><body><main>"
            '<div class="ecran-seulement"/><nav><span/></nav><p>APRES-MASQUE</p>'      # balises auto-fermées
            '<h1 id="a">Un</h1><h3 id="a">Trois</h3>'                                   # niveau sauté, doublon
            '<p id="p1">Lien <a href="#p1">vers un paragraphe</a> et <a href="#a">vers Un</a></p>'
            "<p>ouvert<p>SUIVANT</p>"                                                  # fin implicite
            "<ul><li>un<li>DEUX</ul>"
            "<pre><code>ligne 1\nLIGNE 2</code></pre><p><code>a<b>B</b>c</code></p>"
            '<div class="jp-OutputArea-output">Alpha</div><div class="jp-OutputArea-output">Beta</div>'
            "<table><tr><th>x</th><th>y</th></tr><tr><td>1</td></tr><tr><td>2</td><td>3</td></tr></table>"
            f'<figure class="figure"><img alt="" src="{src}"><figcaption>Légende sans alt</figcaption></figure>'
            '<figure class="figure"><figcaption>Sans image</figcaption></figure>'
            "</main></body></html>")
    (tmp_path / "r.html").write_text(html, encoding="utf-8")
    html_to_pdf(tmp_path / "r.html", tmp_path / "r.pdf")
    text = "\n".join(p.extract_text() for p in PdfReader(str(tmp_path / "r.pdf")).pages)
    for expected in ("APRES-MASQUE", "Trois", "vers un paragraphe", "SUIVANT", "DEUX", "LIGNE 2", "aBc",
                     "Légende sans alt", "[Figure]", "Sans image"):
        assert expected in text, expected
    assert "AlphaBeta" not in text and "Alpha" in text and "Beta" in text
    [table] = [n for n in report_tree(html)["contenu"] if isinstance(n, dict) and n["t"] == "table"]
    assert table["cols"] == 2 and len(table["head"]) == 1  # première ligne d'en-têtes : en-tête
    assert [len(r) for r in table["rows"]] == [2, 2]  # ligne courte complétée d'une cellule vide


def test_caches_named_by_relative_paths_stay_out_of_the_report_being_built(tmp_path, monkeypatch):
    """``make report`` charge les modèles HTML (et, sans « fork », calcule les étapes) pendant que
    Papermill exécute un notebook dans le dossier du rapport en construction : les caches désignés
    par un chemin relatif (``data/processed`` par défaut) restent dans le dossier courant de leur
    désignation, jamais dans le rapport publié (vu le 03/12 : le cache des modèles y était écrit)."""
    from pathlib import Path

    from analysis.indicators import persist
    from analysis.publishing import render

    monkeypatch.chdir(tmp_path)
    (tmp_path / "rapport").mkdir()
    try:
        render.use_template_cache(Path("data/processed/.cache-modeles"))
        persist.activate(Path("data/processed/.cache-calculs"), "sel")
        monkeypatch.chdir(tmp_path / "rapport")  # comme Papermill pendant un notebook
        render.warm_up()
        assert persist.cached("essai", [1], lambda: 42) == 42
    finally:
        persist.deactivate()
        render.use_template_cache(None)
    assert list((tmp_path / "data" / "processed" / ".cache-modeles").glob("__jinja2_*"))
    assert list((tmp_path / "data" / "processed" / ".cache-calculs").rglob("*.pickle"))
    assert list((tmp_path / "rapport").rglob("*")) == []
