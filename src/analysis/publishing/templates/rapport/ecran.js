/* Rapport annuel CPOM qualité — page web : recherche d'établissement, tri des tableaux,
   sommaire qui suit la lecture. JavaScript autonome, sans dépendance ni réseau ; ignoré par
   WeasyPrint (le PDF n'en dépend pas). Sans JavaScript, la page reste lisible. */
(function () {
  "use strict";
  var main = document.getElementById("contenu");
  if (!main) return;

  var live = document.createElement("div");
  live.className = "visuellement-cache";
  live.setAttribute("aria-live", "polite");
  document.body.appendChild(live);

  function norm(text) {
    return (text || "").normalize("NFD").replace(/[\u0300-\u036f]/g, "")
      .toLowerCase().replace(/[\s\u00a0\u202f]+/g, " ").trim();
  }
  function headRow(table) {
    return table.tHead && table.tHead.rows.length === 1 ? table.tHead.rows[0] : null;
  }
  function bodyRows(table) {
    var rows = [];
    Array.prototype.forEach.call(table.tBodies, function (tb) {
      Array.prototype.forEach.call(tb.rows, function (tr) {
        if (!tr.querySelector("td.vide")) rows.push(tr);
      });
    });
    return rows;
  }
  var tables = Array.prototype.slice.call(main.querySelectorAll("table"));

  /* Tableaux plus larges que la colonne : défilement horizontal accessible au clavier. */
  var headingsInMain = Array.prototype.slice.call(main.querySelectorAll("h1, h2, h3, h4"));
  function sectionOf(node) {
    var found = null;
    headingsInMain.forEach(function (h) {
      if (h.compareDocumentPosition(node) & Node.DOCUMENT_POSITION_FOLLOWING) found = h;
    });
    return found ? found.textContent.trim() : "rapport";
  }
  tables.forEach(function (table, k) {
    var box = document.createElement("div");
    box.className = "tableau-defilant";
    table.parentNode.insertBefore(box, table);
    box.appendChild(table);
    if (box.scrollWidth > box.clientWidth + 1) {
      box.tabIndex = 0;
      box.setAttribute("role", "region");
      box.setAttribute("aria-label", "Tableau " + (k + 1) + " (" + sectionOf(table) + "), défilant horizontalement");
    }
  });

  /* Tri des longs tableaux : un bouton par en-tête de colonne, état dans aria-sort. */
  var SORT_MIN_ROWS = 8;
  function cellValue(tr, i) {
    var cell = tr.cells[i];
    var text = cell ? cell.textContent.trim() : "";
    var t = text.replace(/[\s\u00a0\u202f%]/g, "").replace(/^\u2212/, "-").replace(",", ".");
    if (/^[+-]?\d+(\.\d+)?$/.test(t)) return { empty: false, num: parseFloat(t), text: text };
    var d = /^(\d{2})\/(\d{2})\/(\d{4})$/.exec(text);
    if (d) return { empty: false, num: Number(d[3] + d[2] + d[1]), text: text };
    return { empty: text === "" || text === "\u2014" || text === "-", num: null, text: text };
  }
  function compare(a, b) {
    if (a.empty !== b.empty) return a.empty ? 1 : -1;
    if (a.num !== null && b.num !== null) return a.num - b.num;
    return a.text.localeCompare(b.text, "fr", { numeric: true, sensitivity: "base" });
  }
  function sortTable(table, index, th) {
    var descending = th.getAttribute("aria-sort") === "ascending";
    var row = headRow(table);
    Array.prototype.forEach.call(row.cells, function (c) { c.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
    var tbody = table.tBodies[0];
    var rows = bodyRows(table).map(function (tr, k) { return { tr: tr, k: k, v: cellValue(tr, index) }; });
    rows.sort(function (x, y) {
      var c = compare(x.v, y.v);
      if (c === 0) return x.k - y.k;
      return descending ? (x.v.empty !== y.v.empty ? c : -c) : c;
    });
    rows.forEach(function (r) { tbody.appendChild(r.tr); });
    live.textContent = "Tableau trié par « " + th.textContent.trim() + " », ordre " +
      (descending ? "décroissant" : "croissant") + ".";
  }
  tables.forEach(function (table) {
    var row = headRow(table);
    if (!row || table.tBodies.length !== 1 || bodyRows(table).length < SORT_MIN_ROWS) return;
    if (table.querySelector("[colspan], [rowspan]")) return;
    table.classList.add("triable");
    Array.prototype.forEach.call(row.cells, function (th, index) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "tri";
      while (th.firstChild) button.appendChild(th.firstChild);
      var icon = document.createElement("span");
      icon.className = "tri-icone";
      icon.setAttribute("aria-hidden", "true");
      button.appendChild(icon);
      button.title = "Trier selon cette colonne";
      th.appendChild(button);
      button.addEventListener("click", function () { sortTable(table, index, th); });
    });
  });

  /* Recherche d'un établissement par nom ou FINESS dans les tableaux d'établissements. */
  var search = document.querySelector(".recherche");
  var input = document.getElementById("recherche-etab");
  var status = document.getElementById("recherche-statut");
  var etabTables = tables.filter(function (table) {
    var row = headRow(table);
    return row && Array.prototype.some.call(row.cells, function (c) { return /finess/i.test(c.textContent); });
  });
  if (search && input && etabTables.length) {
    search.hidden = false;
    var indexed = etabTables.map(function (table) {
      var empty = document.createElement("p");
      empty.className = "aucun-resultat";
      empty.hidden = true;
      empty.textContent = "Aucune ligne de ce tableau ne correspond à la recherche.";
      table.parentNode.parentNode.insertBefore(empty, table.parentNode.nextSibling);
      return {
        box: table.parentNode,
        empty: empty,
        rows: bodyRows(table).map(function (tr) {
          var text = norm(tr.textContent);
          return { tr: tr, text: text, compact: text.replace(/ /g, "") };
        }),
      };
    });
    var first = null;
    var filter = function () {
      var q = norm(input.value);
      var qc = q.replace(/ /g, "");
      var n = 0, k = 0;
      first = null;
      indexed.forEach(function (t) {
        var shown = 0;
        t.rows.forEach(function (r) {
          var ok = !q || r.text.indexOf(q) >= 0 || (/^[0-9ab ]+$/.test(q) && r.compact.indexOf(qc) >= 0);
          r.tr.hidden = !ok;
          r.tr.classList.toggle("trouve", Boolean(q) && ok);
          if (ok) { shown += 1; if (!first && q) first = r.tr; }
        });
        t.empty.hidden = !q || shown > 0;
        t.box.hidden = Boolean(q) && shown === 0;
        if (q && shown) { n += shown; k += 1; }
      });
      status.textContent = !q ? "" : n === 0
        ? "Aucun établissement ne correspond à « " + input.value.trim() + " »."
        : n + (n > 1 ? " lignes trouvées" : " ligne trouvée") + " dans " + k +
          (k > 1 ? " tableaux" : " tableau") + " (Entrée pour y aller).";
    };
    input.addEventListener("input", filter);
    input.addEventListener("search", filter);
    input.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" && first) {
        ev.preventDefault();
        first.scrollIntoView({ block: "center" });
      }
    });
  }

  /* Sommaire : la section en cours de lecture est signalée (aria-current). */
  var links = {};
  Array.prototype.forEach.call(document.querySelectorAll("nav.toc a[href^='#']"), function (a) {
    links[a.getAttribute("href").slice(1)] = a;
  });
  var headings = Array.prototype.filter.call(main.querySelectorAll("h1[id], h2[id]"), function (h) {
    return links[h.id];
  });
  if ("IntersectionObserver" in window && headings.length) {
    var current = null;
    var observer = new IntersectionObserver(function () {
      var best = headings[0];
      headings.forEach(function (h) { if (h.getBoundingClientRect().top < 120) best = h; });
      if (current !== best) {
        if (current) links[current.id].removeAttribute("aria-current");
        links[best.id].setAttribute("aria-current", "location");
        current = best;
      }
    }, { rootMargin: "0px 0px -60% 0px" });
    headings.forEach(function (h) { observer.observe(h); });
  }
})();
