"""A page's dict -> its HTML, server-side: one function per page kind, all text through
:mod:`modelbox.web.html` (escaped), links relative to the page so the site works under
any sub-path (GitHub Pages' ``/REPO/``) and from ``file://``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from modelbox.web import charts
from modelbox.web.html import Markup, el, join
from modelbox.web.pages import DESCRIPTION_MAX

__all__ = ["render"]


def href(doc: dict[str, Any], target: str, ext: str = ".html") -> str:
    """The relative URL from ``doc``'s page to ``target`` (a path without extension, or a
    static file when ``ext`` is empty)."""
    return "../" * str(doc["path"]).count("/") + target + ext


def _a(doc: dict[str, Any], target: str, text: object, **attrs: object) -> Markup:
    return el("a", {"href": href(doc, target), **attrs}, text)


def _size(n: object) -> str:
    if not isinstance(n, int):
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)


def _value(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True,
                                                           ensure_ascii=False)


def _table(tid: str, head: list[str], rows: list[list[object]], **attrs: object) -> Markup:
    if not rows:
        return el("p", {"class": "empty", "id": tid}, "none")
    return el("div", {"class": "scroll"}, el(
        "table", {"id": tid, **attrs},
        el("thead", None, el("tr", None, [el("th", {"scope": "col"}, h) for h in head])),
        el("tbody", None, [el("tr", None, [el("td", None, c) for c in row]) for row in rows])))


def _dl(values: dict[str, object], tid: str) -> Markup:
    if not values:
        return el("p", {"class": "empty", "id": tid}, "none")
    return el("dl", {"id": tid}, [[el("dt", None, k), el("dd", None, _value(v))]
                                  for k, v in sorted(values.items())])


def _model_link(doc: dict[str, Any], model: str, **attrs: object) -> Markup:
    return _a(doc, f"m/{model}/_model", model, **attrs)


def _ref_link(doc: dict[str, Any], ref: str) -> Markup:
    """``M@V`` as a link to its version page, ``M`` to its model page."""
    model, sep, version = ref.partition("@")
    if sep:
        return _a(doc, f"m/{model}/_v/{version}", ref)
    return _model_link(doc, model)


def _description(doc: dict[str, Any]) -> Markup:
    text = str(doc["manifest"].get("description", ""))
    cut = len(text) > DESCRIPTION_MAX
    more = el("p", {"class": "note", "id": "description-cut"},
              f"Description shortened to {DESCRIPTION_MAX:,} of {len(text):,} characters; "
              "the full text is in ", el("a", {"href": href(doc, doc["path"], ".json")},
                                          "this page's JSON"), ".") if cut else ""
    text = text[:DESCRIPTION_MAX]
    return join([el("p", {"class": "description", "id": "description"}, text) if text
                 else "", more])


# -- pages -----------------------------------------------------------------------------
def _index(doc: dict[str, Any]) -> Markup:
    search = el(
        "form", {"id": "search", "role": "search", "data-search": href(doc, "search", ".json")},
        el("label", {"for": "q"}, "Search"),
        el("input", {"id": "q", "name": "q", "type": "search", "placeholder": "model name"}),
        [[el("label", {"for": f"f-{f}"}, f.capitalize()),
          el("input", {"id": f"f-{f}", "name": f, "type": "text"})]
         for f in ("task", "owner", "tag")],
        el("button", {"type": "submit", "id": "search-go"}, "Search"),
    )
    namespaces = el("ul", {"id": "namespaces"}, [
        el("li", None, _a(doc, f"m/{n['namespace']}/_ns", n["namespace"],
                          data_testid="ns-link"), f" ({n['models']})")
        for n in doc["namespaces"]])
    reviews = [el("li", None, _a(doc, f"review/{b}", b, data_testid="review-link"))
               for b in doc["reviews"]]
    return join([
        el("p", None, f"{doc['models']} models and collections, {doc['experiments']} "
           "experiments."),
        search,
        el("noscript", None, el("p", None, "Search needs JavaScript; browse by namespace.")),
        el("div", {"id": "search-results", "aria-live": "polite"}),
        el("h2", None, "Namespaces"), namespaces,
        el("h2", None, "Reviews"), el("ul", {"id": "reviews"}, reviews) if reviews
        else el("p", {"class": "empty"}, "No proposal branches."),
    ])


def _model_rows(doc: dict[str, Any], models: list[dict[str, Any]]) -> list[list[object]]:
    return [[_model_link(doc, m["model"], data_testid="model-link"),
             "collection" if m["collection"] else "model", m["owner"], m["task"],
             ", ".join(m["tags"]), m["versions"], m["description"]] for m in models]


def _namespace(doc: dict[str, Any]) -> Markup:
    below = [el("li", None, _a(doc, f"m/{ns}/_ns", ns, data_testid="ns-link"))
             for ns in doc["namespaces"]]
    return join([
        el("form", {"id": "filter", "class": "filter", "data-table": "models"},
           el("label", {"for": "f-text"}, "Filter rows"),
           el("input", {"id": "f-text", "type": "search"})),
        _table("models", ["Model", "Kind", "Owner", "Task", "Tags", "Versions",
                          "Description"], _model_rows(doc, doc["models"])),
        el("h2", None, "Namespaces below"), el("ul", {"id": "namespaces"}, below) if below
        else el("p", {"class": "empty"}, "none"),
    ])


def _version_rows(doc: dict[str, Any], versions: list[dict[str, Any]]) -> list[list[object]]:
    model = doc["model"]
    return [[
        _a(doc, f"m/{model}/_v/{v['version']}", v["version"], data_testid="version-link"),
        v["name"], ", ".join(v["tags"]), v["framework"], _size(v["size"]),
        "released" if v["released"] else "open", "archived" if v["archived"] else "",
        [[_ref_link(doc, c), " "] for c in v["collections"]],
        [_ref_link(doc, v["link"])] if v.get("link") else "", v["created_at"],
    ] for v in versions]


_VERSION_HEAD = ["Version", "Name", "Tags", "Framework", "Size", "State", "Archived",
                 "In collections", "Links to", "Created"]


def _model(doc: dict[str, Any]) -> Markup:
    m, model = doc["manifest"], doc["model"]
    pages = [el("li", None, _a(doc, f"m/{model}/_versions/{n}", f"page {n}"))
             for n in range(1, doc["version_pages"] + 1)]
    timeline = [[e["time"], e["target"].rpartition(":")[2], e["before"] or "-",
                 e["after"] or "-", e["author"], e["operation"], e["commit"][:10]]
                for e in doc["timeline"]]
    return join([
        _description(doc),
        _dl({"owner": m.get("owner", ""), "task": m.get("task", ""),
             "created": m.get("created_at", ""), "datasets": m.get("datasets", []),
             "collection": m.get("collection", False)}, "facts"),
        el("h2", None, "Metadata"), _dl(m.get("metadata", {}), "metadata"),
        el("h2", None, "Tags"), _dl(dict(doc["tags"]), "tags"),
        el("p", None, _a(doc, f"m/{model}/_metrics", "Metric charts",
                         data_testid="metrics-link")),
        el("h2", None, f"Versions ({doc['version_total']}, newest first)"),
        _table("versions", _VERSION_HEAD, _version_rows(doc, doc["versions"])),
        el("nav", {"aria-label": "version pages"}, el("ul", {"id": "version-pages"}, pages))
        if pages else "",
        el("h2", None, "Tag timeline"),
        _table("timeline", ["When", "Tag", "From", "To", "Who", "Operation", "Commit"],
               timeline),
    ])


def _versions(doc: dict[str, Any]) -> Markup:
    return join([el("p", None, _model_link(doc, doc["model"]),
                    f": page {doc['page']}, oldest first"),
                 _table("versions", _VERSION_HEAD, _version_rows(doc, doc["versions"])),
                 _pager(doc, f"m/{doc['model']}/_versions/", f"m/{doc['model']}/_model")])


def _pager(doc: dict[str, Any], base: str, newest: str) -> Markup:
    """Older / newer / newest. A page links the next one only once it is full (then the
    next exists or comes with the next entry), so a full page never changes."""
    n = doc["page"]
    return el("nav", {"aria-label": "pages", "class": "pager"},
              _a(doc, f"{base}{n - 1}", "older", id="older") if n > 1 else "", " ",
              _a(doc, f"{base}{n + 1}", "newer", id="newer") if doc["full"] else "", " ",
              _a(doc, newest, "newest", id="newest") if doc["path"] != newest else "")


def _listing(artifact: dict[str, Any]) -> Markup:
    """A directory artifact's files, or why they are not shown."""
    listing = artifact.get("listing") or {}
    if "files" not in listing:
        return el("span", {"class": "note", "data-testid": "listing-unavailable"},
                  f"directory of {artifact['files']} files; {listing.get('unavailable', '')}")
    shown = listing["files"]
    return el("details", {"data-testid": "listing"},
              el("summary", None, f"{listing['total']} files"
                 + (f" (first {len(shown)})" if len(shown) < listing["total"] else "")),
              el("ul", None, [el("li", None, f["path"], f" · {_size(f['size'])}")
                              for f in shown]))


def _version(doc: dict[str, Any]) -> Markup:
    m = doc["manifest"]
    artifacts = [[a["path"], a["file_type"], _size(a["size"]),
                  el("code", None, a["sha256"] or a.get("uri") or "-"),
                  _listing(a) if a["directory"] else ""]
                 for a in doc["artifacts"]]
    lineage = el("ol", {"id": "lineage"}, [
        el("li", None, f"{n['kind']}: ",
           _ref_link(doc, n["name"]) if n["kind"] in ("link", "version")
           else (_a(doc, f"x/{n['name'].partition('@')[0]}/_experiment", n["name"])
                 if not n["missing"] else n["name"]),
           " (missing)" if n["missing"] else "") for n in doc["lineage"]])
    events = [[e.get("name", ""), e.get("source", ""), e.get("wallclock", ""),
               _value(e.get("metadata", {}))] for e in doc["events"] if isinstance(e, dict)]
    return join([
        el("p", None, "Model: ", _model_link(doc, doc["model"], data_testid="model-link")),
        [el("p", {"class": "problem", "role": "alert"}, p) for p in doc["problems"]],
        _description(doc),
        _dl({"name": m.get("name", ""), "framework": m.get("framework", ""),
             "created": m.get("created_at", ""), "archived": m.get("archived", False),
             "released": (m.get("released") or {}).get("at", "open"),
             "digest": m.get("digest") or "-", "tags": doc["tags"],
             "link": m.get("link") or "-"}, "facts"),
        el("h2", None, "Metrics (latest)"), _dl(m.get("metrics", {}), "metrics"),
        el("p", None, el("a", {"href": href(doc, doc["series"], ".json"),
                               "data-testid": "series-link"}, "Full metric series (JSON)"),
           " · ", _a(doc, f"m/{doc['model']}/_metrics", "charts")) if doc["series"] else "",
        el("h2", None, "Metadata"), _dl(m.get("metadata", {}), "metadata"),
        el("h2", None, "Artifacts"),
        _table("artifacts", ["Path", "Type", "Size", "SHA-256 / URI", ""], artifacts),
        el("h2", None, "Lineage"), lineage,
        el("h2", None, "In collections"),
        el("ul", {"id": "collections"}, [el("li", None, _ref_link(doc, c))
                                         for c in doc["collections"]]),
        el("h2", None, "Events"),
        _table("events", ["Name", "Source", "Wallclock", "Metadata"], events),
    ])


def _chart(doc: dict[str, Any], back: Markup) -> Markup:
    chart = doc["chart"]
    keys = sorted({s["key"] for s in chart})
    key = keys[0] if keys else None
    data = json.dumps({"chart": chart, "colours": charts.COLOURS}, ensure_ascii=True,
                      separators=(",", ":"))
    # JSON in a <script> is not HTML: `<`, `>`, `&` become \u escapes so that no
    # `</script>` or `<!--` from a label can end it (the one place not el()'s text).
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    toggles = [el("li", None, el("label", None, el(
        "input", {"type": "checkbox", "class": "series-toggle", "data-series": i,
                  "data-key": s["key"], "checked": True, "data-testid": "series-toggle"}),
        el("span", {"class": "swatch", "style": f"background:"
                    f"{charts.COLOURS[i % len(charts.COLOURS)]}"}),
        f" {s['label']} · {s['key']} ({s['total']} points)"),
        " ", el("a", {"href": href(doc, s["full"], ".json")}, "full series")
        if s.get("full") else "") for i, s in enumerate(chart)]
    return join([
        back,
        el("form", {"id": "chart-controls", "class": "controls"},
           el("label", {"for": "chart-key"}, "Metric"),
           el("select", {"id": "chart-key"}, [el("option", {"value": k,
                                                            "selected": k == key}, k)
                                              for k in keys]),
           el("fieldset", None, el("legend", None, "x axis"),
              el("label", None, el("input", {"type": "radio", "name": "axis", "value": "step",
                                             "id": "axis-step", "checked": True}), " step"),
              el("label", None, el("input", {"type": "radio", "name": "axis",
                                             "value": "wallclock", "id": "axis-wallclock"}),
                 " wallclock"))),
        el("div", {"id": "chart"}, charts.svg(chart, key)),
        el("ul", {"id": "series", "class": "series"}, toggles),
        el("script", {"type": "application/json", "id": "chart-data"}, Markup(data)),
    ])


def _metrics(doc: dict[str, Any]) -> Markup:
    return _chart(doc, el("p", None, _model_link(doc, doc["model"])))


def _experiments(doc: dict[str, Any]) -> Markup:
    return _table("experiments", ["Experiment", "Owner", "Task", "Framework", "Created"], [
        [_a(doc, f"x/{e['experiment']}/_experiment", e["experiment"],
            data_testid="experiment-link"), e["owner"], e["task"], e["framework"],
         e["created_at"]] for e in doc["experiments"]])


def _experiment(doc: dict[str, Any]) -> Markup:
    m = doc["manifest"]
    rows = [[c["checkpoint"], c.get("epoch"), c.get("step"), _value(c.get("metrics", {})),
             [[_ref_link(doc, p), " "] for p in c.get("promoted_to", [])], c["created_at"]]
            for c in doc["checkpoints"]]
    return join([
        _dl({"owner": m.get("owner", ""), "task": m.get("task", ""),
             "framework": m.get("framework", ""), "external_id": m.get("external_id", ""),
             "created": m.get("created_at", "")}, "facts"),
        el("h2", None, "Metadata"), _dl(m.get("metadata", {}), "metadata"),
        el("h2", None, "Checkpoints"),
        _table("checkpoints", ["Checkpoint", "Epoch", "Step", "Metrics", "Promoted to",
                               "Created"], rows),
        el("h2", None, "Metrics"), _chart(doc, Markup("")),
    ])


def _collections(doc: dict[str, Any]) -> Markup:
    out = []
    for c in doc["collections"]:
        links = [[el("a", {"href": href(doc, f"m/{c['collection']}/_v/{v}")}, v), " → ",
                  _ref_link(doc, source)] for v, source in sorted(c["links"].items())]
        out.append(el("section", {"class": "collection"},
                      el("h2", None, _model_link(doc, c["collection"],
                                                 data_testid="collection-link")),
                      el("p", None, c["description"]),
                      el("ul", None, [el("li", None, link) for link in links])))
    return join(out) if out else el("p", {"class": "empty"}, "No collections.")


def _log(doc: dict[str, Any]) -> Markup:
    rows = [[e["time"], e["author"], e["operation"], e["target"], e["before"] or "-",
             e["after"] or "-", e["subject"], e["commit"][:10]] for e in doc["events"]]
    return join([
        el("p", None, f"Page {doc['page']}; page 1 holds the oldest events. Filters apply "
           "to this page."),
        el("form", {"id": "log-filter", "class": "filter", "data-table": "log"},
           [[el("label", {"for": f"f-{f}"}, f.capitalize()),
             el("input", {"id": f"f-{f}", "type": "search", "data-column": col})]
            for f, col in (("actor", 1), ("action", 2), ("target", 3), ("date", 0))]),
        _table("log", ["When", "Who", "Action", "Target", "Before", "After", "Subject",
                       "Commit"], rows),
        _pager(doc, "log/", "log"),
    ])


def _review(doc: dict[str, Any]) -> Markup:
    d = doc["diff"]
    tags = [[t.get("model", ""), t.get("tag", ""), t.get("before") or "-",
             t.get("after") or "-"] for t in d["tags"]]
    versions = [[v.get("model", ""), v.get("version", ""), v.get("change", ""),
                 _value({k: x for k, x in v.items()
                         if k not in ("model", "version", "change")})] for v in d["versions"]]
    artifacts = [[a.get("target", ""), a.get("path", ""), a.get("change", ""),
                  _size(a.get("size"))] for a in d["artifacts"]]
    models = [[m.get("model", ""), m.get("change", ""), _value(m)] for m in d["models"]]
    return join([
        el("p", None, f"{d['base']['rev']} ({(d['base']['commit'] or '-')[:10]}) → "
           f"{d['head']['rev']} ({(d['head']['commit'] or '-')[:10]})"),
        el("h2", None, "Tags moved"), _table("review-tags", ["Model", "Tag", "From", "To"],
                                             tags),
        el("h2", None, "Versions"), _table("review-versions", ["Model", "Version", "Change",
                                                               "Details"], versions),
        el("h2", None, "Artifacts"), _table("review-artifacts", ["Target", "Path", "Change",
                                                                 "Size"], artifacts),
        el("h2", None, "Models"), _table("review-models", ["Model", "Change", "Details"],
                                         models),
        el("h2", None, "Other files"), el("ul", {"id": "review-other"},
                                          [el("li", None, f) for f in d["other_files"]]),
    ])


def _error(doc: dict[str, Any]) -> Markup:
    return el("p", {"class": "problem", "role": "alert", "id": "error"},
              f"modelbox: error: {doc['error']}")


_BODIES: dict[str, Callable[[dict[str, Any]], Markup]] = {
    "error": _error,
    "index": _index, "namespace": _namespace, "model": _model, "versions": _versions,
    "version": _version, "metrics": _metrics, "experiments": _experiments,
    "experiment": _experiment, "collections": _collections, "log": _log, "review": _review,
}


def render(doc: dict[str, Any]) -> str:
    """The HTML page of ``doc`` (a dict from :mod:`modelbox.web.pages`)."""
    body = _BODIES[doc["kind"]](doc)
    nav = el("nav", {"aria-label": "site", "id": "site-nav"}, el("ul", None, [
        el("li", None, _a(doc, "index", "Models", id="nav-models")),
        el("li", None, _a(doc, "experiments", "Experiments", id="nav-experiments")),
        el("li", None, _a(doc, "collections", "Collections", id="nav-collections")),
        el("li", None, _a(doc, "log", "Audit log", id="nav-log")),
    ]))
    twin = href(doc, doc["path"], ".json")
    page = el(
        "html", {"lang": "en"},
        el("head", None,
           el("meta", {"charset": "utf-8"}),
           el("meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"}),
           el("title", None, f"{doc['title']} · modelbox"),
           # An empty icon: without one, a browser asks for /favicon.ico and logs its 404.
           el("link", {"rel": "icon", "href": "data:,"}),
           el("link", {"rel": "stylesheet", "href": href(doc, "static/modelbox.css", "")}),
           el("link", {"rel": "alternate", "type": "application/json", "href": twin}),
           el("script", {"src": href(doc, "static/modelbox.js", ""), "defer": True})),
        el("body", None,
           el("a", {"href": "#main", "class": "skip"}, "Skip to content"),
           el("header", None, nav),
           el("main", {"id": "main"}, el("h1", {"id": "title"}, doc["title"]), body),
           el("footer", None, el("a", {"href": twin, "id": "json-twin"}, "JSON"))),
    )
    return "<!doctype html>\n" + page + "\n"
