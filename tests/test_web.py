"""Le rapport HTML comme page web, dans un vrai navigateur (Chromium sans écran, piloté par Playwright) :
accessibilité (axe-core), colonne lisible, sommaire qui reste visible, recherche d'un FINESS, tri.

Ignorés, avec leur raison, si Playwright ou Chromium manquent (``.ci/run`` installe Chromium)."""

from __future__ import annotations

import os
import shutil

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright pour Python absent (pip install playwright)")


def _chromium() -> str | None:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (path := shutil.which(name)):
            return path
    return None


@pytest.fixture(scope="module")
def browser():
    exe = _chromium()
    if exe is None:
        pytest.skip("Chromium absent (apt-get install chromium) : tests de la page web ignorés")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, built):
    final = built[3]
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=True)
    # la page ne demande rien au réseau : toute requête autre que le fichier lui-même est refusée
    requests: list[str] = []
    ctx.route("**/*", lambda route: (requests.append(route.request.url), route.abort())
              if not route.request.url.startswith(("file:", "data:")) else route.continue_())
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto((final / "rapport_annuel.html").as_uri())
    pg.wait_for_load_state("load")
    yield pg
    assert not errors, errors
    assert not requests, requests
    ctx.close()


def _visible_rows_with(pg, text: str) -> int:
    return pg.evaluate(
        """t => Array.from(document.querySelectorAll('main tbody tr'))
               .filter(r => r.offsetParent !== null && r.textContent.includes(t)).length""", text)


def test_no_serious_or_critical_axe_violation(page):
    axe = pytest.importorskip("axe_playwright_python.sync_playwright",
                              reason="axe-playwright-python absent (pip install axe-playwright-python)")
    results = axe.Axe().run(page)
    bad = [(v["id"], v["impact"], len(v["nodes"])) for v in results.response["violations"]
           if v["impact"] in ("serious", "critical")]
    assert bad == [], results.generate_report()


def test_readable_column_and_margins(page):
    geo = page.evaluate("""() => {
        const p = document.querySelector('main p');
        const m = document.querySelector('main').getBoundingClientRect();
        const r = p.getBoundingClientRect();
        const fs = parseFloat(getComputedStyle(p).fontSize);
        return {left: r.left, width: r.width, mainLeft: m.left, mainRight: m.right, fs: fs,
                vw: window.innerWidth};
    }""")
    assert geo["fs"] >= 15  # texte d'écran (16 px), pas les 9,5 pt de l'impression
    assert geo["width"] <= 75 * geo["fs"] * 0.6  # au plus ~75 caractères par ligne
    assert geo["mainLeft"] >= 200  # marge à gauche (le sommaire occupe la colonne de gauche)
    assert geo["vw"] - geo["mainRight"] >= 24  # marge à droite


def test_navigation_present_and_stays_in_view(page):
    nav = page.locator("nav.toc")
    assert nav.count() == 1
    assert nav.locator("a[href^='#sec-']").count() >= 6
    page.evaluate("window.scrollTo(0, document.body.scrollHeight * 0.6)")
    page.wait_for_timeout(100)
    assert page.evaluate("window.scrollY") > 1000
    box = page.locator(".panneau").bounding_box()
    assert box is not None and 0 <= box["y"] <= 40, box  # collé en haut de la fenêtre
    assert page.locator("#recherche-etab").is_visible()
    # un lien du sommaire mène à sa section
    page.locator("nav.toc a[href='#sec-qualite-des-donnees']").click()
    page.wait_for_timeout(100)
    top = page.evaluate("document.getElementById('sec-qualite-des-donnees').getBoundingClientRect().top")
    assert 0 <= top < 200


def test_search_finds_one_finess(page):
    label = page.locator("label[for='recherche-etab']")
    assert label.is_visible() and "Rechercher un établissement" in label.inner_text()
    field = page.locator("input[type='search']#recherche-etab")
    total = page.evaluate("document.querySelectorAll('main tbody tr').length")
    assert _visible_rows_with(page, "140000002") >= 2 and _visible_rows_with(page, "760000001") >= 1
    field.fill("140000002")
    # toutes les lignes visibles des tableaux d'établissements sont celles de ce FINESS
    visible = page.evaluate("""() => Array.from(document.querySelectorAll('main table'))
        .filter(t => /FINESS/i.test(t.tHead ? t.tHead.textContent : ''))
        .flatMap(t => Array.from(t.tBodies[0].rows)).filter(r => r.offsetParent !== null)
        .map(r => r.textContent)""")
    assert visible and all("140000002" in row for row in visible)
    assert _visible_rows_with(page, "760000001") == 0
    status = page.locator("#recherche-statut").inner_text()
    assert f"{len(visible)} ligne" in status
    # par le nom, sans accents ni casse
    field.fill("caen fictif")
    assert _visible_rows_with(page, "CH de Caen fictif") >= 1 and _visible_rows_with(page, "140000002") == 0
    field.fill("")
    assert page.evaluate("document.querySelectorAll('main tbody tr').length") == total
    assert _visible_rows_with(page, "760000001") >= 1


def test_keyboard_skip_link_and_sortable_table(page):
    page.keyboard.press("Tab")
    focused = page.evaluate("[document.activeElement.className, document.activeElement.textContent]")
    assert focused == ["lien-evitement ecran-seulement", "Aller au contenu"]
    assert page.locator(".lien-evitement").is_visible()
    # un long tableau (fichiers lus : 10 fichiers) est triable au clavier
    table = page.locator("table.triable").filter(has_text="dont autres régions")
    header = table.locator("thead th").first
    button = header.locator("button.tri")
    assert button.count() == 1
    first_cells = lambda: table.locator("tbody tr td:first-child").all_inner_texts()  # noqa: E731
    before = first_cells()
    button.focus()
    page.keyboard.press("Enter")
    assert header.get_attribute("aria-sort") == "ascending"
    # ordre du tri français du navigateur (localeCompare « fr ») : casse ignorée, et la ponctuation
    # avant les lettres, « _ » avant « . » (CLDR) : qls_dossiers.csv avant qls.csv
    def fr_key(s):
        return s.lower().translate({ord("_"): "\x01", ord("-"): "\x02", ord("."): "\x03"})

    assert first_cells() == sorted(before, key=fr_key)
    page.keyboard.press("Enter")
    assert header.get_attribute("aria-sort") == "descending"
    assert first_cells() == sorted(before, key=fr_key, reverse=True)


def test_figures_numbered_on_screen(page):
    captions = page.locator("figure.figure figcaption").all_inner_texts()
    assert captions and all(c.startswith(f"Figure {i}") for i, c in enumerate(captions, start=1))


def test_screenshot_1280(page, built):
    """Capture d'écran à 1 280 px (à regarder : tmp/…/rapport_1280.png, chemin affiché par -s)."""
    out = built[0] / "rapport_1280.png"
    page.screenshot(path=str(out))
    assert out.stat().st_size > 20_000
    print(f"capture : {out}")
