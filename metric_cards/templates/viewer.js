// Rollout viewer: renders the embedded rollout data with DOM APIs only.
// Model output is untrusted: it only ever reaches the page through textContent (never parsed as HTML,
// never as a class name, id, URL or attribute), so markup in a completion stays inert text.
(function () {
  "use strict";
  var SVG_NS = "http://www.w3.org/2000/svg";
  var DATA = JSON.parse(document.getElementById("rollout-data").textContent);
  var GROUPS = DATA.groups;
  var ROLLOUTS = DATA.rollouts;
  var PROBLEMS = DATA.problems;  // rollouts list indexes into this table of distinct texts
  var LAYERS = DATA.layer_names;
  var GROUPS_PER_PAGE = DATA.groups_per_page;
  var ROLLOUTS_PER_PAGE = DATA.rollouts_per_page;
  // Characters shown before a "show all" button: a 10 MB answer must not stall the first render.
  var SHOW = { completion: 4000, prompt: 1000, field: 200 };

  function byId(id) { return document.getElementById(id); }
  var ui = {
    list: byId("list"), order: byId("order"), show: byId("show"), min: byId("min-score"),
    max: byId("max-score"), reset: byId("reset"), prev: byId("prev"), next: byId("next"),
    pageInfo: byId("page-info"), count: byId("count")
  };
  var state = { page: 0 };
  var view = { mode: "groups", items: [], matched: 0 };

  // Element helper: `cls` is always one of our constant class names, `text` may be model data.
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  // `text` (model data) in a new element, cut at `limit` characters with a "show all" button.
  // `total` is the length in the rollout file when the page only embeds the beginning.
  function clipped(tag, cls, text, limit, total) {
    var node = el(tag, cls);
    var s = String(text);
    var full = typeof total === "number" ? total : s.length;
    if (s.length <= limit && full === s.length) {
      node.textContent = s;
      return node;
    }
    node.appendChild(document.createTextNode(s.slice(0, limit) + "…"));
    var more = el("button", "show-all", "show all (" + full.toLocaleString("en-US") + " chars)");
    more.type = "button";
    more.addEventListener("click", function () {
      node.textContent = s;
      if (full > s.length) {
        node.appendChild(el("span", "cut-note", " [cut: the page holds the first " +
          s.length.toLocaleString("en-US") + " of " + full.toLocaleString("en-US") +
          " characters; the rollout file has them all]"));
      }
    });
    node.appendChild(more);
    return node;
  }
  // An inline SVG that references a symbol of the Lucide sprite; the id is built from an integer
  // index (or one of our fixed names), never from model text.
  function icon(symbolId) {
    var svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    var use = document.createElementNS(SVG_NS, "use");
    use.setAttribute("href", "#" + symbolId);
    svg.appendChild(use);
    return svg;
  }
  function fmt(x, digits) { return typeof x === "number" && isFinite(x) ? x.toFixed(digits) : "n/a"; }
  function scoreClass(s) {
    if (typeof s !== "number") return "score lo";
    return s >= 0.8 ? "score hi" : s >= 0.5 ? "score mid" : "score lo";
  }

  // ---- filtering, sorting, paging (all client-side: the page needs no server) ----
  function readNumber(input) {
    var v = input.value.trim();
    if (v === "") return null;
    var n = Number(v);
    return isFinite(n) ? n : null;
  }
  function predicate() {
    var lo = readNumber(ui.min), hi = readNumber(ui.max), show = ui.show.value;
    return function (r) {
      if (lo !== null && !(typeof r.s === "number" && r.s >= lo)) return false;
      if (hi !== null && !(typeof r.s === "number" && r.s <= hi)) return false;
      if (show === "invalid") return r.k.st !== "ok";
      if (show === "problems") return r.pr.length > 0;
      if (show === "truncated") return r.f === "length";
      return true;
    };
  }
  function computeView() {
    var keep = predicate(), order = ui.order.value, i, r;
    var matched = [];
    for (i = 0; i < ROLLOUTS.length; i++) if (keep(ROLLOUTS[i])) matched.push(i);
    view.matched = matched.length;
    if (order === "file") {
      // Grouped, in file order: one item per group that still has a matching rollout.
      view.mode = "groups";
      view.items = [];
      var last = -1;
      for (i = 0; i < matched.length; i++) {
        r = ROLLOUTS[matched[i]];
        if (r.g !== last) { view.items.push({ g: r.g, rs: [] }); last = r.g; }
        view.items[view.items.length - 1].rs.push(matched[i]);
      }
    } else {
      // Flat list of rollouts by score; ties keep file order. Missing scores go last.
      var sign = order === "asc" ? 1 : -1;
      matched.sort(function (a, b) {
        var sa = ROLLOUTS[a].s, sb = ROLLOUTS[b].s;
        var na = typeof sa !== "number", nb = typeof sb !== "number";
        if (na || nb) return na === nb ? a - b : (na ? 1 : -1);
        return sa === sb ? a - b : sign * (sa - sb);
      });
      view.mode = "rollouts";
      view.items = matched;
    }
  }
  function pageSize() { return view.mode === "groups" ? GROUPS_PER_PAGE : ROLLOUTS_PER_PAGE; }
  function pageCount() { return Math.max(1, Math.ceil(view.items.length / pageSize())); }

  // ---- rendering ----
  function renderCard(r) {
    var k = r.k;
    var card = el("div", "metric-card" + (k.st === "invalid" ? " invalid" : k.st === "repaired" ? " repaired" : ""));
    var top = el("div", "mc-top");
    var title, value;
    if (k.st === "invalid") {
      title = el("div", "mc-title", "Not a metric card");
      value = el("div", "mc-value", k.e || "Invalid JSON");
    } else {
      if (k.t !== null && k.t !== undefined) title = clipped("div", "mc-title", k.t, SHOW.field);
      else { title = el("div", "mc-title"); title.appendChild(el("span", "missing", "no title")); }
      if (k.v !== null && k.v !== undefined) value = clipped("div", "mc-value", k.v, SHOW.field);
      else { value = el("div", "mc-value"); value.appendChild(el("span", "missing", "no value")); }
    }
    top.appendChild(title);
    var badge;
    if (k.st === "invalid") {
      badge = el("div", "mc-icon unknown", "!");
      badge.title = "invalid output";
    } else if (typeof k.ic === "number") {
      badge = el("div", "mc-icon");
      badge.appendChild(icon("ic-" + k.ic));
    } else if (k.i !== null && k.i !== undefined) {
      badge = el("div", "mc-icon unknown", "?");  // the name itself is shown in a chip below
    } else {
      badge = null;
    }
    if (badge) top.appendChild(badge);
    card.appendChild(top);
    card.appendChild(value);

    var foot = el("div", "mc-foot");
    if (k.tr) {
      var tcls = k.tr.p === true ? "mc-trend pos" : k.tr.p === false ? "mc-trend neg" : "mc-trend unk";
      var trend = el("span", tcls);
      trend.appendChild(icon(k.tr.dir < 0 ? "ui-down" : k.tr.dir > 0 ? "ui-up" : "ui-flat"));
      trend.appendChild(clipped("span", null, k.tr.v, SHOW.field));
      trend.title = "isPositive: " + (k.tr.p === null ? "missing" : String(k.tr.p));
      foot.appendChild(trend);
    }
    if (k.d !== null && k.d !== undefined) foot.appendChild(clipped("span", "mc-desc", k.d, SHOW.field));
    if (foot.childNodes.length) card.appendChild(foot);

    var meta = el("div", "mc-meta");
    if (k.st === "repaired") meta.appendChild(el("span", "chip warn", "lenient JSON repair"));
    if (k.m && k.m !== "bare" && k.st !== "invalid") meta.appendChild(el("span", "chip gray", "extracted: " + k.m));
    if (k.ct !== undefined && k.ct !== "metricCard") meta.appendChild(clipped("span", "chip bad", "componentType: " + k.ct, SHOW.field));
    if (k.i !== null && k.i !== undefined && typeof k.ic !== "number") meta.appendChild(clipped("span", "chip warn", "unknown icon: " + k.i, SHOW.field));
    if (k.cl !== null && k.cl !== undefined) meta.appendChild(clipped("span", "chip gray", "className: " + k.cl, SHOW.field));
    if (meta.childNodes.length) card.appendChild(meta);
    return card;
  }
  function renderLayers(r) {
    var box = el("div", "layers");
    if (!r.l) {
      box.appendChild(el("div", "unknown", "layers unknown (legacy file: the score is not ours)"));
      return box;
    }
    for (var i = 0; i < LAYERS.length; i++) {
      var row = el("div", "layer-row");
      row.appendChild(el("span", "name", LAYERS[i]));
      var bar = el("div", "bar"), fill = el("span");
      var v = r.l[i];
      if (typeof v === "number") fill.style.width = Math.max(0, Math.min(1, v)) * 100 + "%";  // CSSOM: allowed by the CSP
      else bar.className = "bar na";
      bar.appendChild(fill);
      row.appendChild(bar);
      row.appendChild(el("span", "num", fmt(v, 2)));
      box.appendChild(row);
    }
    return box;
  }
  function renderRollout(index, withGroup) {
    var r = ROLLOUTS[index], g = GROUPS[r.g];
    var art = el("article", "rollout");
    art.dataset.index = String(index);
    if (typeof r.s === "number") art.dataset.score = String(r.s);
    var head = el("div", "rollout-head");
    head.appendChild(el("span", "where", withGroup ? "group " + g.index + " · #" + r.r : "#" + r.r));
    if (r.f === "length") head.appendChild(el("span", "chip bad", "truncated"));
    head.appendChild(el("span", "spacer"));
    head.appendChild(el("span", scoreClass(r.s), fmt(r.s, 3)));
    art.appendChild(head);
    if (withGroup) art.appendChild(clipped("div", "rollout-prompt", g.prompt, SHOW.prompt, g.prompt_len));
    art.appendChild(renderCard(r));
    art.appendChild(renderLayers(r));
    if (r.cn && r.cn.length) {
      art.appendChild(el("div", "canaries", "canaries: " + r.cn.join(", ")));
    }
    if (r.pr.length) {
      var ul = el("ul", "problems");
      for (var i = 0; i < r.pr.length; i++) ul.appendChild(clipped("li", null, PROBLEMS[r.pr[i]], SHOW.field));
      art.appendChild(ul);
    } else if (r.l) {
      art.appendChild(el("div", "no-problems", "no problems"));
    }
    var raw = el("details", "raw");
    raw.open = true;
    var length = typeof r.c_len === "number" ? r.c_len : r.c.length;
    raw.appendChild(el("summary", null, "raw completion (" + length + " chars" + (r.f ? ", finish: " + r.f : "") + ")"));
    raw.appendChild(clipped("pre", "completion", r.c, SHOW.completion, r.c_len));
    art.appendChild(raw);
    return art;
  }
  function renderGroup(item) {
    var g = GROUPS[item.g];
    var sec = el("section", "group");
    var head = el("div", "group-head");
    head.appendChild(el("span", "gid", "Group " + g.index));
    head.appendChild(el("span", "chip gray", "line " + g.line));
    if (g.request) {
      head.appendChild(el("span", "chip", g.request.metric));
      head.appendChild(el("span", "chip", g.request.domain));
      head.appendChild(el("span", "chip", g.request.period));
    }
    if (g.legacy) head.appendChild(el("span", "chip warn", "legacy format"));
    if (typeof g.mean === "number") head.appendChild(el("span", "chip gray", "mean " + fmt(g.mean, 3)));
    head.appendChild(clipped("span", "prompt", g.prompt, SHOW.prompt, g.prompt_len));
    sec.appendChild(head);
    var grid = el("div", "grid");
    for (var i = 0; i < item.rs.length; i++) grid.appendChild(renderRollout(item.rs[i], false));
    sec.appendChild(grid);
    return sec;
  }
  function render() {
    var pages = pageCount();
    if (state.page >= pages) state.page = pages - 1;
    if (state.page < 0) state.page = 0;
    var size = pageSize(), start = state.page * size, end = Math.min(view.items.length, start + size);
    var frag = document.createDocumentFragment();
    if (view.mode === "groups") {
      for (var i = start; i < end; i++) frag.appendChild(renderGroup(view.items[i]));
    } else {
      var grid = el("div", "grid");
      for (var j = start; j < end; j++) grid.appendChild(renderRollout(view.items[j], true));
      frag.appendChild(grid);
    }
    if (!view.items.length) frag.appendChild(el("div", "empty", "No rollout matches the filter."));
    ui.list.replaceChildren(frag);
    ui.pageInfo.textContent = "page " + (state.page + 1) + " of " + pages;
    ui.prev.disabled = state.page === 0;
    ui.next.disabled = state.page >= pages - 1;
    var unit = view.mode === "groups" ? " groups" : " rollouts";
    ui.count.textContent = view.items.length ? (start + 1) + "–" + end + " of " + view.items.length + unit +
      " · " + view.matched + " of " + ROLLOUTS.length + " rollouts match" : "0 of " + ROLLOUTS.length + " rollouts match";
    document.body.dataset.ready = "1";
  }
  function refresh() { state.page = 0; computeView(); render(); }

  ui.order.addEventListener("change", refresh);
  ui.show.addEventListener("change", refresh);
  ui.min.addEventListener("input", refresh);
  ui.max.addEventListener("input", refresh);
  ui.reset.addEventListener("click", function () {
    ui.order.value = "file"; ui.show.value = "all"; ui.min.value = ""; ui.max.value = ""; refresh();
  });
  ui.prev.addEventListener("click", function () { state.page--; render(); window.scrollTo(0, 0); });
  ui.next.addEventListener("click", function () { state.page++; render(); window.scrollTo(0, 0); });
  refresh();
  // For scripts/bench_viewer.py and the browser tests: when the first page of cards is in the DOM.
  if (window.performance && performance.mark) performance.mark("viewer-ready");
})();
