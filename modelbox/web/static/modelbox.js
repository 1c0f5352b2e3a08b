// modelbox site: search, row filters and the chart's series toggles. No library, no
// network but the page's own JSON; text is set with textContent, never innerHTML.
"use strict";
(function () {
  function $(id) { return document.getElementById(id); }

  // Index: search the models by name, task, owner and tag (data: search.json).
  var search = $("search");
  if (search) {
    var models = null;
    search.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var out = $("search-results");
      function show() {
        var q = $("q").value.toLowerCase(), task = $("f-task").value.toLowerCase(),
            owner = $("f-owner").value.toLowerCase(), tag = $("f-tag").value.toLowerCase();
        var found = models.filter(function (m) {
          return m.model.toLowerCase().indexOf(q) >= 0 &&
            m.task.toLowerCase().indexOf(task) >= 0 &&
            m.owner.toLowerCase().indexOf(owner) >= 0 &&
            (!tag || m.tags.some(function (t) { return t.toLowerCase() === tag; }));
        });
        out.textContent = "";
        var p = document.createElement("p");
        p.textContent = found.length + " models" + (found.length > 200 ? " (first 200)" : "");
        out.appendChild(p);
        var ul = document.createElement("ul");
        ul.id = "search-list";
        found.slice(0, 200).forEach(function (m) {
          var li = document.createElement("li"), a = document.createElement("a");
          a.href = search.dataset.search.replace(/search\.json$/, "") +
            "m/" + m.model + "/_model.html";
          a.textContent = m.model;
          a.setAttribute("data-testid", "search-hit");
          li.appendChild(a);
          li.appendChild(document.createTextNode(" " + m.owner + " " + m.task +
            (m.tags.length ? " [" + m.tags.join(", ") + "]" : "")));
          ul.appendChild(li);
        });
        out.appendChild(ul);
      }
      if (models) { show(); return; }
      fetch(search.dataset.search).then(function (r) { return r.json(); })
        .then(function (doc) { models = doc.models; show(); })
        .catch(function () { out.textContent = "Search data could not be read."; });
    });
  }

  // Tables: filter rows by text, per column where the input says data-column.
  document.querySelectorAll("form.filter").forEach(function (form) {
    var table = $(form.dataset.table);
    if (!table) { return; }
    var inputs = form.querySelectorAll("input");
    function apply() {
      table.querySelectorAll("tbody tr").forEach(function (tr) {
        var ok = true;
        inputs.forEach(function (input) {
          var want = input.value.toLowerCase();
          if (!want) { return; }
          var col = input.dataset.column;
          var text = (col === undefined ? tr.textContent : tr.cells[+col].textContent);
          if (text.toLowerCase().indexOf(want) < 0) { ok = false; }
        });
        tr.hidden = !ok;
      });
    }
    form.addEventListener("input", apply);
    form.addEventListener("submit", function (ev) { ev.preventDefault(); apply(); });
  });

  // Charts: redraw the SVG for the chosen metric, x axis and series.
  var dataNode = $("chart-data");
  if (dataNode) {
    var data = JSON.parse(dataNode.textContent), chart = data.chart, colours = data.colours;
    var NS = "http://www.w3.org/2000/svg", W = 720, H = 320, PAD = 40;
    function node(name, attrs, text) {
      var n = document.createElementNS(NS, name);
      Object.keys(attrs).forEach(function (k) { n.setAttribute(k, attrs[k]); });
      if (text !== undefined) { n.textContent = text; }
      return n;
    }
    function draw() {
      var key = $("chart-key").value;
      var axis = document.querySelector("input[name=axis]:checked").value;
      var on = {};
      document.querySelectorAll(".series-toggle").forEach(function (box) {
        box.closest("li").hidden = box.dataset.key !== key;
        on[box.dataset.series] = box.checked && box.dataset.key === key;
      });
      function x(p, j) { var v = axis === "wallclock" ? p[1] : p[0]; return v === null ? j : v; }
      var xs = [], ys = [];
      chart.forEach(function (s, i) {
        if (!on[i]) { return; }
        s.points.forEach(function (p, j) { xs.push(x(p, j)); ys.push(p[2]); });
      });
      var svg = node("svg", {id: "chart-svg", viewBox: "0 0 " + W + " " + H, role: "img",
                             "aria-label": key + " by " + axis, "data-testid": "chart"});
      svg.appendChild(node("rect", {x: PAD, y: PAD, width: W - 2 * PAD, height: H - 2 * PAD,
                                    "class": "frame"}));
      // Axis labels to six significant digits, as the server draws them (Python's :g).
      function num(v) { return String(+v.toPrecision(6)); }
      if (xs.length) {
        var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs);
        var y0 = Math.min.apply(null, ys), y1 = Math.max.apply(null, ys);
        var sx = (W - 2 * PAD) / ((x1 - x0) || 1), sy = (H - 2 * PAD) / ((y1 - y0) || 1);
        chart.forEach(function (s, i) {
          if (!on[i]) { return; }
          var pts = s.points.map(function (p, j) {
            return (PAD + (x(p, j) - x0) * sx).toFixed(1) + "," +
              (H - PAD - (p[2] - y0) * sy).toFixed(1);
          }).join(" ");
          var line = node("polyline", {points: pts, fill: "none", "stroke-width": "1.5",
                                       stroke: colours[i % colours.length], "data-series": i});
          line.appendChild(node("title", {}, s.label + " " + s.key));
          svg.appendChild(line);
        });
        svg.appendChild(node("text", {x: PAD, y: H - 8, "class": "axis"}, num(x0)));
        svg.appendChild(node("text", {x: W - PAD, y: H - 8, "class": "axis",
                                      "text-anchor": "end"}, num(x1) + " (" + axis + ")"));
        svg.appendChild(node("text", {x: 4, y: PAD - 8, "class": "axis"}, num(y1)));
        svg.appendChild(node("text", {x: 4, y: H - PAD + 14, "class": "axis"}, num(y0)));
      } else {
        svg.appendChild(node("text", {x: W / 2, y: H / 2, "text-anchor": "middle",
                                      "class": "axis"}, "no series selected"));
      }
      var box = $("chart");
      box.replaceChild(svg, $("chart-svg"));
    }
    $("chart-controls").addEventListener("change", draw);
    document.querySelectorAll(".series-toggle").forEach(function (b) {
      b.addEventListener("change", draw);
    });
    draw();
  }
})();
