// finpulse live page. News text is untrusted: it is only ever set with textContent / createTextNode,
// never as HTML markup; links are made only for http(s) URLs. No inline script (the page's CSP forbids it).
"use strict";

(function () {
  const REFRESH_MS = 3000;
  const COLOURS = ["#f0a35e", "#79b8ff", "#b392f0", "#4cc38a", "#f97583", "#ffd33d", "#56d4dd", "#d2a8ff", "#85e89d", "#ffab70"];
  const $ = (id) => document.getElementById(id);

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function safeHref(url) {
    if (typeof url !== "string" || url === "") return null;
    try {
      const parsed = new URL(url);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch (e) {
      return null;
    }
  }

  function linkOrText(text, url) {
    const href = safeHref(url);
    if (!href) return el("span", text);
    const a = el("a", text);
    a.href = href;
    a.rel = "noopener noreferrer nofollow";
    a.target = "_blank";
    return a;
  }

  function fmtPct(x) {
    return typeof x === "number" ? (x * 100).toFixed(0) + "%" : "–";
  }

  function fmtTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return isNaN(d.getTime()) ? String(iso) : d.toISOString().replace("T", " ").slice(0, 19) + "Z";
  }

  async function getJSON(path) {
    const response = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
    const body = await response.json();
    if (!response.ok) throw new Error(body && body.error ? body.error : "HTTP " + response.status);
    return body;
  }

  const chartLayout = (yTitle, yFormat) => ({
    margin: { l: 50, r: 10, t: 10, b: 40 },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    font: { color: "#e6edf3", size: 11 },
    xaxis: { type: "date", gridcolor: "#243240" },
    yaxis: { title: { text: yTitle }, tickformat: yFormat, gridcolor: "#243240", rangemode: "tozero" },
    legend: { orientation: "h", y: -0.18 },
    showlegend: true,
  });
  const chartConfig = { displayModeBar: false, responsive: true, staticPlot: false };

  function drawCharts(data) {
    const shareTraces = [];
    const volumeTraces = [];
    let points = 0;
    data.series.forEach((s, i) => {
      const colour = s.key === "market" ? "#e6edf3" : COLOURS[i % COLOURS.length];
      const x = s.points.map((p) => p.t);
      points += s.points.length;
      shareTraces.push({
        type: "scatter", mode: "lines+markers", name: s.key, x: x, y: s.points.map((p) => p.share),
        line: { color: colour, width: s.key === "market" ? 3 : 2 }, hovertemplate: "%{y:.0%}<extra>" + s.key + "</extra>",
      });
      volumeTraces.push({
        type: "bar", name: s.key, x: x, y: s.points.map((p) => p.n), marker: { color: colour },
        hovertemplate: "%{y} articles<extra>" + s.key + "</extra>",
      });
    });
    const shareLayout = chartLayout("negative share", ".0%");
    shareLayout.yaxis.range = [0, 1];
    const volumeLayout = chartLayout("articles", "d");
    volumeLayout.barmode = "group";
    if (window.Plotly) {
      window.Plotly.react($("chart-share"), shareTraces, shareLayout, chartConfig);
      window.Plotly.react($("chart-volume"), volumeTraces, volumeLayout, chartConfig);
    }
    $("chart-share").dataset.points = String(points);
    $("chart-volume").dataset.points = String(points);
  }

  function drawAlerts(alerts) {
    const list = $("alerts");
    const items = alerts.map((a) => {
      const li = el("li", null, "alert severity-" + String(a.severity || ""));
      li.dataset.resource = String(a.resource || "");
      li.appendChild(el("div", String(a.resource) + " — " + String(a.severity) + " (" + String(a.status) + ")", "head"));
      const pValue = typeof a.pValue !== "number" ? "–" : a.pValue < 0.001 ? a.pValue.toExponential(2) : a.pValue.toPrecision(3);
      li.appendChild(el("div",
        "k=" + a.k + " of n=" + a.n + " negative · share " + fmtPct(a.share) + " · baseline " + fmtPct(a.baseline) +
        " · p=" + pValue + " · window " + fmtTime(a.windowStart) + " – " + fmtTime(a.windowEnd), "evidence"));
      const ul = el("ul");
      (a.headlines || []).forEach((h) => {
        const hl = el("li");
        const score = typeof h.negative_score === "number" ? "[" + h.negative_score.toFixed(2) + "] " : "";
        hl.appendChild(document.createTextNode(score));
        hl.appendChild(linkOrText(h.title, h.url));
        ul.appendChild(hl);
      });
      li.appendChild(ul);
      return li;
    });
    list.replaceChildren(...items);
    $("alert-count").textContent = String(alerts.length);
    $("alerts-empty").classList.toggle("hidden", alerts.length > 0);
  }

  function drawHeadlines(headlines) {
    const rows = headlines.map((h) => {
      const tr = el("tr");
      tr.appendChild(el("td", h.label, "label-" + String(h.label)));
      tr.appendChild(el("td", typeof h.negative_score === "number" ? h.negative_score.toFixed(2) : "", "num"));
      tr.appendChild(el("td", (h.tickers || []).join(", ")));
      tr.appendChild(el("td", h.source));
      const title = el("td", null, "title");
      title.appendChild(linkOrText(h.title, h.url));
      tr.appendChild(title);
      tr.appendChild(el("td", fmtTime(h.scored_at), "num"));
      return tr;
    });
    $("headlines").replaceChildren(...rows);
  }

  function drawUsers(data) {
    const select = $("user");
    const chosen = select.value;
    const options = [el("option", "(choose a user)")];
    options[0].value = "";
    data.users.forEach((u) => {
      const o = el("option", u);
      o.value = u;
      options.push(o);
    });
    select.replaceChildren(...options);
    select.value = data.users.includes(chosen) ? chosen : "";
  }

  function drawRecommendations(data) {
    const items = (data.items || []).map((r) => {
      const li = el("li");
      li.appendChild(linkOrText(r.title || r.article_id, r.url));
      if (typeof r.score === "number") li.appendChild(document.createTextNode(" (" + r.score.toFixed(3) + ")"));
      return li;
    });
    $("recommendations").replaceChildren(...items);
    $("recs-empty").classList.toggle("hidden", items.length > 0);
  }

  let busy = false;
  async function refresh() {
    if (busy) return;
    busy = true;
    const status = $("status");
    const errors = [];
    const minutes = $("range").value;
    const tickers = $("tickers").value.trim();
    const q = "minutes=" + encodeURIComponent(minutes) + (tickers ? "&tickers=" + encodeURIComponent(tickers) : "");
    const tasks = [
      getJSON("/api/series?" + q).then(drawCharts),
      getJSON("/api/alerts").then((d) => drawAlerts(d.alerts)),
      getJSON("/api/headlines?size=20").then((d) => drawHeadlines(d.headlines)),
      getJSON("/api/users").then(drawUsers).then(() => {
        const raw = $("raw-user").value.trim();
        const user = $("user").value;
        const query = raw ? "raw_user=" + encodeURIComponent(raw) : user ? "user=" + encodeURIComponent(user) : "";
        return query ? getJSON("/api/recommendations?" + query).then(drawRecommendations) : drawRecommendations({ items: [] });
      }),
    ];
    const results = await Promise.allSettled(tasks);
    results.forEach((r) => { if (r.status === "rejected") errors.push(String(r.reason && r.reason.message || r.reason)); });
    status.textContent = errors.length ? "error: " + errors.join("; ") : "updated " + new Date().toLocaleTimeString();
    status.classList.toggle("error", errors.length > 0);
    document.body.dataset.refreshed = String((Number(document.body.dataset.refreshed) || 0) + 1);
    busy = false;
  }

  function start() {
    $("range").addEventListener("change", refresh);
    $("tickers").addEventListener("change", refresh);
    $("user").addEventListener("change", () => { $("raw-user").value = ""; refresh(); });
    $("raw-user").addEventListener("change", refresh);
    refresh();
    window.setInterval(refresh, REFRESH_MS);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
