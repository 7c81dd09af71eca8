"""Rapport annuel HTML → PDF A4 balisé avec Typst (PDF/A-2a et PDF/UA-1).

Le HTML produit par :func:`analysis.publishing.render.notebook_to_html` est la seule source du
rapport : la page web et le PDF ont le même contenu. Ce module en lit la couverture et le contenu
(``<main>``) et en fait un arbre simple (éléments et textes), transmis en JSON au gabarit
``templates/rapport/rapport.typ``, qui le compose : aucun texte n'y est jamais interprété comme du
balisage Typst (« # * $ [ ] \\ @ < » s'impriment comme saisis).

Le vocabulaire HTML reconnu est celui que produisent le paquet et le Markdown des notebooks :
titres ``h1``–``h4``, paragraphes (``p.note``, ``p.encadre``), listes, ``b``/``strong``,
``i``/``em``, ``code``, liens (internes vers un titre ou une figure, ou ``http(s)``/``mailto``),
tableaux (``thead`` : en-têtes de colonnes, répétés sur chaque page ; ``colspan``/``rowspan`` ;
cellules ``num`` alignées à droite), figures (SVG incorporé en ``data:``, texte alternatif,
légende), chiffres clés (``div.kpis``), encadrés (``div.note``, ``div.alerte``). Un autre élément
est composé comme un bloc (ou un texte dans une ligne) : son texte n'est jamais perdu.

Pourquoi Typst plutôt que WeasyPrint : le rapport de démonstration (30 pages, 15 figures) est composé
en environ 0,3 s au lieu de 3,5 à 4 s (``make bench``), et c'est lui qui bornait la relance après
une correction ; Typst balise le PDF (titres, listes, tableaux et leurs en-têtes, figures et leur
texte alternatif, légendes ; en-têtes et pieds de page en artefacts) et refuse de produire un
PDF/UA-1 qui n'en remplit pas les exigences.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from html.parser import HTMLParser
from pathlib import Path

from .render import REPORT_TEMPLATE, TEMPLATES_DIR, pdf_date

log = logging.getLogger("analysis")

TYPST_TEMPLATE = TEMPLATES_DIR / REPORT_TEMPLATE / "rapport.typ"
PDF_STANDARDS = ["a-2a", "ua-1"]  # archivage (PDF/A-2a, balisé) et accessibilité (PDF/UA-1)

#: éléments composés en ligne (les autres sont des blocs)
INLINE = frozenset({"a", "b", "strong", "i", "em", "code", "span", "br", "img", "sub", "sup", "small",
                    "abbr", "kbd", "mark", "s", "u", "q", "time", "data", "label"})
#: éléments dont ni le contenu ni le texte ne sont imprimés
SKIPPED = frozenset({"script", "style", "nav", "input", "button", "template", "noscript", "head", "title"})
#: classes masquées à l'impression (feuilles de style du rapport)
HIDDEN_CLASSES = frozenset({"ecran-seulement", "anchor-link", "jp-mod-noOutputs", "jp-Collapser",
                            "jp-InputPrompt", "jp-OutputPrompt", "bandeau-courant"})
#: texte alternatif d'une figure qui n'en a pas (comme :data:`analysis.publishing.figures.GENERIC_ALT`)
GENERIC_ALT = "Figure"
VOID = frozenset({"br", "img", "hr", "meta", "link", "input", "col", "wbr", "source"})
_WS = re.compile(r"[ \t\n\r\f]+")


def _png_as_svg(b64: str) -> str:
    """Image PNG (base64) enveloppée dans un SVG à sa taille (96 px par pouce) : le gabarit ne reçoit
    que des textes, et Typst lit les images incorporées d'un SVG."""
    import struct

    raw = base64.b64decode(b64)
    width, height = struct.unpack(">II", raw[16:24]) if raw[:8] == b"\x89PNG\r\n\x1a\n" else (600, 400)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'width="{width * 0.75}pt" height="{height * 0.75}pt" viewBox="0 0 {width} {height}">'
            f'<image width="{width}" height="{height}" xlink:href="data:image/png;base64,{b64}"/></svg>')


class _TreeBuilder(HTMLParser):
    """HTML du rapport → arbre ``{"t": balise, "k": classes, "c": enfants, ...}`` et textes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = {"t": "root", "c": []}
        self.stack = [self.root]
        self.skip = 0  # profondeur dans un élément ignoré
        self.title = ""
        self._in_title = False
        self.body_classes: list[str] = []

    def handle_starttag(self, tag, attrs, self_closing: bool = False):
        a = {k: (v or "") for k, v in attrs}
        if tag == "title":
            self._in_title = True
        if tag == "body":
            self.body_classes = a.get("class", "").split()
        classes = a.get("class", "").split()
        if self.skip or tag in SKIPPED or HIDDEN_CLASSES.intersection(classes) or "hidden" in a:
            if tag not in VOID and not self_closing:
                self.skip += 1
            return
        self._close_implied(tag)
        node = {"t": tag, "c": []}
        if classes:
            node["k"] = classes
        if a.get("id"):
            node["id"] = a["id"]
        for name in ("colspan", "rowspan"):
            if a.get(name, "").isdigit() and int(a[name]) > 1:
                node[name] = int(a[name])
        if tag == "a" and a.get("href"):
            node["href"] = a["href"]
        if tag == "img":
            node["alt"] = a.get("alt", "")
            src = a.get("src", "")
            if src.startswith("data:image/svg+xml;base64,"):
                node["svg"] = base64.b64decode(src.split(",", 1)[1]).decode("utf-8", errors="replace")
            elif src.startswith("data:image/png;base64,"):
                node["svg"] = _png_as_svg(src.split(",", 1)[1])
        self.stack[-1]["c"].append(node)
        if tag not in VOID and not self_closing:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs, self_closing=True)

    def _close_implied(self, tag: str) -> None:
        """Fins de balise implicites du HTML : ``<p>`` ferme le paragraphe ouvert (comme tout bloc
        qui commence dans un paragraphe), ``<li>`` l'élément de liste ouvert de sa liste, ``<tr>``
        la ligne ouverte, ``<td>``/``<th>`` la cellule ouverte."""
        def close_to(names, stop):
            for i in range(len(self.stack) - 1, 0, -1):
                t = self.stack[i]["t"]
                if t in names:
                    del self.stack[i:]
                    return
                if t in stop:
                    return

        if tag not in INLINE:
            close_to({"p"}, {"div", "li", "td", "th", "blockquote", "figure", "header", "main", "section"})
        if tag == "li":
            close_to({"li"}, {"ul", "ol"})
        elif tag in ("td", "th"):
            close_to({"td", "th"}, {"tr", "table"})
        elif tag == "tr":
            close_to({"tr"}, {"table", "thead", "tbody", "tfoot"})

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        if tag in VOID:
            return
        if self.skip:
            self.skip -= 1
            return
        # fermeture tolérante : remonte jusqu'à l'élément ouvert du même nom
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i]["t"] == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if self.skip or not data:
            return
        self.stack[-1]["c"].append(data)


def _is_block(node) -> bool:
    return isinstance(node, dict) and node["t"] not in INLINE


def _normalise(node, pre: bool = False):
    """Espaces comme en HTML : suites d'espaces réduites à une, espaces de bord des blocs et
    textes blancs entre deux blocs retirés ; conteneurs sans classe ni identifiant (cellules de
    nbconvert) remplacés par leurs enfants."""
    if isinstance(node, str):
        return node if pre else _WS.sub(" ", node)
    pre = pre or node["t"] == "pre"
    kids = []
    for child in node["c"]:
        child = _normalise(child, pre)
        if isinstance(child, dict) and child["t"] == "div" and child.get("_flatten"):
            kids.extend(child["c"])
        elif child != "":
            kids.append(child)
    if not pre and _is_block(node):
        # textes blancs à côté d'un bloc, espaces au début et à la fin d'une suite de textes
        out = []
        for i, child in enumerate(kids):
            if isinstance(child, str):
                prev_block = i == 0 or _is_block(kids[i - 1])
                next_block = i == len(kids) - 1 or _is_block(kids[i + 1])
                if prev_block:
                    child = child.lstrip(" ")
                if next_block:
                    child = child.rstrip(" ")
                if not child:
                    continue
            out.append(child)
        kids = out
    if node["t"] in ("pre", "code", "kbd"):
        kids = [_text({"c": kids})] if kids else []  # texte brut : « <pre><code>…</code></pre> » compris
    node["c"] = kids
    # enveloppes des cellules de nbconvert : remplacées par leurs enfants, sauf si elles contiennent
    # du texte en ligne (deux sorties de texte voisines resteraient sinon collées)
    if node["t"] == "div" and not node.get("id") and all(k.startswith("jp-") for k in node.get("k", [])) \
            and all(_is_block(c) for c in kids):
        node["_flatten"] = True
    return node


def _strip_private(node):
    if isinstance(node, dict):
        node.pop("_flatten", None)
        for child in node["c"]:
            _strip_private(child)
    return node


def _find(node, pred):
    return next((n for n in _walk(node) if pred(n)), None)


def _text(node) -> str:
    if node is None:
        return ""
    if isinstance(node, str):
        return node
    return "".join(_text(c) for c in node["c"])


def _svg_width_pt(svg: str) -> float | None:
    m = re.search(r"<svg\b[^>]*\swidth=\"([\d.]+)(pt|px)?\"", svg)
    if not m:
        return None
    value = float(m.group(1))
    return value * 0.75 if m.group(2) == "px" else value


LABELLED = ("h1", "h2", "h3", "h4", "h5", "h6", "figure")


def _walk(node):
    if isinstance(node, dict):
        yield node
        for child in node["c"]:
            yield from _walk(child)


def _targets_and_levels(main: dict) -> set[str]:
    """Cibles des liens internes : identifiants des titres et des figures (les seuls éléments qui
    portent une étiquette dans le PDF), chacun une fois (un doublon perd le sien). Niveaux des
    titres sans saut (PDF/UA) : un titre ne descend que d'un niveau sous le précédent."""
    targets: set[str] = set()
    level = 0
    for n in _walk(main):
        if n["t"] in LABELLED[:-1]:
            level = min(int(n["t"][1]), level + 1, 4)
            n["t"] = f"h{level}"
        if "id" in n:
            if n["t"] in LABELLED and n["id"] not in targets:
                targets.add(n["id"])
            else:
                del n["id"]
    return targets


def _prepare_figure(node) -> None:
    """Figure : son image SVG et son texte alternatif (à défaut, sa légende ou « Figure ») ; sans
    image reproductible, un bloc qui en donne le texte alternatif et la légende."""
    img = next((c for c in node["c"] if isinstance(c, dict) and c["t"] == "img"), None)
    cap = next((c for c in node["c"] if isinstance(c, dict) and c["t"] == "figcaption"), None)
    if img is not None and "svg" in img:
        img["alt"] = " ".join(img.get("alt", "").split()) or " ".join(_text(cap).split()) or GENERIC_ALT
        return
    alt = " ".join((img or {}).get("alt", "").split()) or GENERIC_ALT
    node.clear()
    node.update({"t": "div", "k": ["note"], "c": [{"t": "p", "c": [f"[{alt}]"]}] + ([cap] if cap else [])})


def _prepare(node, ids: set[str]) -> None:
    """Ce que le gabarit ne calcule pas lui-même : nombre de colonnes et lignes d'en-tête des
    tableaux, largeur naturelle des figures, liens internes vers une cible existante."""
    if not isinstance(node, dict):
        return
    if node["t"] == "figure":
        _prepare_figure(node)
    elif node["t"] == "img":
        node["alt"] = " ".join(node.get("alt", "").split()) or "Image"
        if "svg" in node:
            node["w"] = _svg_width_pt(node["svg"])
    if node["t"] == "table":
        for child in node["c"]:  # cellules d'abord (liens, images), le tableau ensuite
            _prepare(child, ids)
        _prepare_table(node)
        return
    # un paragraphe qui introduit une liste, un tableau ou une figure reste sur la page de ce qui
    # le suit (comme « p:has(+ table) { break-after: avoid } » de print.css)
    kids = [c for c in node["c"] if isinstance(c, dict)]
    for cur, nxt in zip(kids, kids[1:]):
        if cur["t"] == "p" and nxt["t"] in ("ul", "ol", "table", "figure"):
            cur["colle"] = True
    if node["t"] == "a":
        href = node.get("href", "")
        if href.startswith("#"):
            if href[1:] in ids:
                node["ref"] = href[1:]
            node.pop("href")
        elif not href.startswith(("http://", "https://", "mailto:")):
            node.pop("href", None)
    for child in node["c"]:
        _prepare(child, ids)


def _prepare_table(table: dict) -> None:
    header, body = [], []
    for part in table["c"]:
        if not isinstance(part, dict):
            continue
        if part["t"] == "thead":
            header.extend(r for r in part["c"] if isinstance(r, dict) and r["t"] == "tr")
        elif part["t"] in ("tbody", "tfoot"):
            body.extend(r for r in part["c"] if isinstance(r, dict) and r["t"] == "tr")
        elif part["t"] == "tr":
            body.append(part)
    caption = next((p for p in table["c"] if isinstance(p, dict) and p["t"] == "caption"), None)
    for row in header + body:  # seules les cellules comptent (un texte perdu entre deux : en cellule)
        row["c"] = [c if isinstance(c, dict) and c["t"] in ("th", "td") else {"t": "td", "c": [c]}
                    for c in row["c"] if not (isinstance(c, str) and not c.strip())]
    if not header and body and body[0]["c"] and all(c["t"] == "th" for c in body[0]["c"]):
        header, body = body[:1], body[1:]  # sans <thead> : une première ligne d'en-têtes en tient lieu
    # nombre de colonnes : cellules de chaque ligne, en tenant compte des fusions
    placed, occupied = _placed(header + body)
    ncols = max([x + cell.get("colspan", 1) for _, x, cell in placed] + [1])
    # lignes courtes complétées de cellules vides : Typst place les cellules à la suite, une ligne
    # courte prendrait sinon des cellules de la suivante (ajoutées en fin de ligne : les places
    # déjà calculées ne changent pas)
    for y, row in enumerate(header + body):
        free = sum(1 for x in range(ncols) if (y, x) not in occupied)
        row["c"].extend({"t": "td", "c": []} for _ in range(free))
    table["cols"] = ncols
    for row in header + body:
        _breakable(row)
    table["mesures"] = _column_samples(placed, ncols)
    table["head"] = [[c for c in r["c"] if isinstance(c, dict)] for r in header]
    table["rows"] = [[c for c in r["c"] if isinstance(c, dict)] for r in body]
    table["caption"] = caption
    table["c"] = []


def _placed(rows: list[dict]) -> tuple[list[tuple[int, int, dict]], set[tuple[int, int]]]:
    """Place de chaque cellule ``(ligne, colonne, cellule)`` dans la grille du tableau, fusions
    (``colspan``, ``rowspan``) comprises, et les places occupées."""
    placed, occupied = [], set()
    for y, row in enumerate(rows):
        x = 0
        for cell in row["c"]:
            while (y, x) in occupied:
                x += 1
            placed.append((y, x, cell))
            occupied.update((y + dy, x + dx) for dy in range(cell.get("rowspan", 1))
                            for dx in range(cell.get("colspan", 1)))
            x += cell.get("colspan", 1)
    return placed, occupied


def _half(word: str) -> str:
    """Largeur minimale d'un mot qui se coupe en syllabes, comptée pour sa première moitié."""
    return word[: (len(word) + 1) // 2] + "-" if len(word) > 6 else word


def _column_samples(placed: list[tuple[int, int, dict]], ncols: int) -> list[dict]:
    """Pour chaque colonne, les textes qui en font la largeur ; le gabarit les mesure dans leur
    police et calcule les largeurs des colonnes comme la mise en page automatique des tableaux en
    CSS :

    - ``min`` et ``min_th`` : les plus longs mots des cellules et des en-têtes (largeur minimale) ;
    - ``min_cesure`` et ``min_th_cesure`` : les mêmes quand ils se coupent en syllabes (un mot de
      cellule fait de lettres seulement ; un en-tête toujours) ;
    - ``insecable`` : les plus longs nombres, codes ou noms de fichier, qui ne se coupent jamais ;
    - ``max`` : les plus longues cellules sur une ligne (largeur naturelle).

    Les nombres mis en forme à la française (espaces insécables) ne se coupent jamais ; un mot se
    coupe après un trait d'union, et un mot de plus de 30 caractères (long nom de fichier…) après
    « _ », « . » ou « / » (voir :func:`_breakable`)."""
    words = [[] for _ in range(ncols)]
    head_words = [[] for _ in range(ncols)]
    head_halves = [[] for _ in range(ncols)]
    body_halves = [[] for _ in range(ncols)]
    unbreakable = [[] for _ in range(ncols)]
    texts: list[list[tuple[str, bool]]] = [[] for _ in range(ncols)]
    for _, x, cell in placed:
        if cell.get("colspan", 1) == 1 and x < ncols:
            bold = cell["t"] == "th"
            text = _text(cell).strip()
            texts[x].append((text, bold))
            for w in filter(None, _WORD_SPLIT.split(text)):
                if not _WORD.fullmatch(w.rstrip("-")):
                    unbreakable[x].append((w, bold))  # nombre, code, nom de fichier
                if bold:
                    head_words[x].append((w, True))
                    head_halves[x].append((_half(w), True))
                else:
                    words[x].append((w, False))
                    # un mot (lettres seules) peut se couper en syllabes ; un nom de fichier,
                    # un code ou un nombre jamais
                    body_halves[x].append((_half(w) if _WORD.fullmatch(w) else w, False))

    def longest(items):
        return [list(t) for t in sorted(set(items), key=lambda t: (-len(t[0]), t))[:3]]

    return [{"min": longest(words[i]), "min_cesure": longest(body_halves[i]), "min_th": longest(head_words[i]),
             "min_th_cesure": longest(head_halves[i]), "insecable": longest(unbreakable[i]),
             "max": longest(texts[i])} for i in range(ncols)]


_BREAK_AFTER = re.compile(r"([_./\\])(?=[^\s])")
_WORD = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")
#: coupures possibles d'un texte de cellule : espace, espace sans chasse, après un trait d'union
_WORD_SPLIT = re.compile(r" |\u200b|(?<=-)")


def _breakable(node) -> None:
    """Mots de plus de 30 caractères des cellules de tableau : coupure permise (espace sans
    chasse) après « _ », « . », « / » ou « \\ », pour qu'un long nom de fichier ne fasse
    pas déborder son tableau."""
    if not isinstance(node, dict):
        return
    for i, child in enumerate(node["c"]):
        if isinstance(child, str):
            node["c"][i] = " ".join(
                _BREAK_AFTER.sub("\\1\u200b", w) if len(w) > 30 else w for w in child.split(" "))
        else:
            _breakable(child)


_SVG_TEXT = re.compile(r">([^<]+)<")


def _clean_texts(node, clean, pre: bool = False) -> None:
    """Textes affichables par la police : contrôles bidirectionnels retirés, caractères sans glyphe
    dans DejaVu Sans remplacés par « � » (comme sur les fiches ; Typst refuse sinon de produire un
    PDF/A), texte alternatif et textes des figures SVG compris ; lignes d'un ``<pre>`` gardées."""
    if not isinstance(node, dict):
        return
    if "alt" in node:
        node["alt"] = clean(node["alt"])
    if "svg" in node:
        node["svg"] = _SVG_TEXT.sub(lambda m: ">" + "\n".join(clean(x) for x in m.group(1).split("\n")) + "<",
                                    node["svg"])
    pre = pre or node["t"] == "pre"
    for i, child in enumerate(node["c"]):
        if isinstance(child, str):
            node["c"][i] = "\n".join(clean(x) for x in child.split("\n")) if pre else clean(child)
        else:
            _clean_texts(child, clean, pre)


def report_tree(html_text: str, warnings: list[str] | None = None) -> dict:
    """Données du gabarit Typst : titre, couverture et contenu du rapport. ``warnings`` reçoit les
    avertissements du nettoyage des textes (caractères remplacés ou retirés)."""
    from .fiches import _TextCleaner

    builder = _TreeBuilder()
    builder.feed(html_text)
    builder.close()
    clean = _TextCleaner()
    _clean_texts(builder.root, clean)
    builder.title = clean(builder.title)
    if warnings is not None:
        warnings.extend(clean.warnings("Rapport annuel (PDF)"))
    root = _strip_private(_normalise(builder.root))
    cover = _find(root, lambda n: n["t"] == "header" and "couverture" in n.get("k", []))
    main = _find(root, lambda n: n["t"] == "main") or root

    def cls(name):
        return _text(_find(cover, lambda n: name in n.get("k", []))).strip() if cover else ""

    banner = _find(cover, lambda n: "bandeau-fictif" in n.get("k", [])) if cover else None
    _prepare(main, _targets_and_levels(main))
    return {
        "titre": " ".join(builder.title.split()) or cls("couverture-titre"),
        "organisme": cls("couverture-organisme"),
        "titre_couverture": cls("couverture-titre"),
        "region": cls("couverture-region"),
        "annee": cls("couverture-annee"),
        "note": cls("couverture-note"),
        "fictif": banner is not None or "fictif" in builder.body_classes,
        "bandeau": _text(banner["c"][0]).strip() if banner and banner["c"] else "",
        "bandeau_detail": _text(banner["c"][1]).strip() if banner and len(banner["c"]) > 1 else "",
        "contenu": main["c"],
    }


_USED = False


def _typst():
    """Le module ``typst``, noté comme utilisé dans ce processus (voir :func:`started`)."""
    global _USED
    import typst

    _USED = True
    return typst


def started() -> bool:
    """Typst a servi au rapport dans ce processus : voir
    :func:`analysis.publishing.fiches.typst_started`."""
    return _USED


def warm_up() -> None:
    """Importe Typst (appelé pendant que le noyau travaille), sans rien compiler."""
    import typst  # noqa: F401 - import seul : aucun fil d'exécution de Typst n'est encore lancé


def _document(html_text: str, warnings: list[str] | None = None) -> dict:
    """Arguments communs de ``typst.compile`` et ``typst.query`` : gabarit, polices DejaVu de
    matplotlib (celles des fiches et des figures), données du rapport (JSON) et date du PDF/A."""
    from .fiches import _font_dir

    data = report_tree(html_text, warnings)
    data["date"] = pdf_date()
    return {"input": str(TYPST_TEMPLATE), "root": str(TYPST_TEMPLATE.parent), "font_paths": [str(_font_dir())],
            "ignore_system_fonts": True,
            "sys_inputs": {"rapport": json.dumps(data, ensure_ascii=False, separators=(",", ":"))}}


def query(html_text: str, selector: str) -> list[dict]:
    """Éléments ``selector`` du rapport composé (``typst query``) : par exemple
    ``"<tableau-resserre>"``, les tableaux dont les colonnes ont dû être resserrées sous la
    largeur de leurs plus longs mots (mots coupés en syllabes), avec leur taux de resserrement."""
    return json.loads(_typst().query(selector=selector, **_document(html_text)))


def html_to_pdf(html_path: Path, pdf_out: Path) -> None:
    """HTML du rapport (:func:`analysis.publishing.render.notebook_to_html`) → PDF A4 balisé.

    PDF/A-2a et PDF/UA-1 ; titre et langue ``fr`` en métadonnées ; reproductible : la date du
    document est ``SOURCE_DATE_EPOCH``, sinon le 1er janvier 1980 (PDF/A exige une date), comme les
    fiches. Une compilation par rapport, sans garder de compilateur : un ``typst.Compiler`` gardé
    retiendrait environ 220 Mio par processus de région après le rapport de démonstration, une
    compilation isolée environ 90 Mio (mesuré). Le PDF est écrit à côté puis renommé : un rendu
    interrompu ne laisse jamais de PDF partiel.
    """
    from ..cache import write_atomic as _write_atomic

    html_path, pdf_out = Path(html_path), Path(pdf_out)
    warnings: list[str] = []
    document = _document(html_path.read_text(encoding="utf-8"), warnings)
    for message in warnings:
        log.warning("Avertissement : %s", message)
    pdf = _typst().compile(pdf_standards=PDF_STANDARDS, **document)
    pdf_out.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(pdf_out, pdf)
