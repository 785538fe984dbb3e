// tickcast console: the symbol page's chart (uPlot) and live channel (server-sent events).
// No framework: the page is rendered by the server; this only fills in what changes.
"use strict";

(function () {
  const page = document.getElementById("symbol-page");
  if (!page) return;

  const utc = (ms) => (ms ? new Date(Number(ms)).toISOString().replace("T", " ").slice(0, 19) : "–");
  const fmt = (v, digits) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));

  function show(latest) {
    const p = latest.prediction;
    const box = document.getElementById("prediction");
    const set = (name, text) => { const el = box.querySelector(`[data-field="${name}"]`); if (el) el.textContent = text; };
    if (p) {
      set("value", fmt(p.value, 4));
      set("expected_return", fmt(p.expected_return, 6));
      set("model", `${p.model} v${p.version}`);
      set("role", p.role);
      set("event_time", utc(p.event_time));
      set("age_s", `${fmt(p.age_s, 1)} s`);
      const stale = box.querySelector('[data-field="stale"]');
      stale.textContent = p.stale ? "yes" : "no";
      stale.className = p.stale ? "bad" : "ok";
      const none = document.getElementById("no-prediction");
      if (none) none.remove();
      page.dataset.lastEventTime = p.event_time;
    }
    const f = latest.features;
    if (f) {
      document.getElementById("features-time").textContent = utc(f.event_time);
      document.getElementById("features-age").textContent = `${fmt(f.age_s, 1)} s`;
      document.getElementById("features-set").textContent = f.feature_set_version || "–";
      const body = document.querySelector("#features tbody");
      for (const [name, value] of Object.entries(f.features || {})) {
        let cell = body.querySelector(`[data-feature="${CSS.escape(name)}"]`);
        if (!cell) {
          const row = body.insertRow();
          const th = document.createElement("th");
          th.scope = "row"; th.textContent = name; row.appendChild(th);
          cell = row.insertCell(); cell.dataset.feature = name;
        }
        cell.textContent = value === null ? "warming up" : Number(value).toPrecision(6);
      }
    }
    page.dataset.updates = String(Number(page.dataset.updates || 0) + 1);
  }

  // Live: one EventSource; the browser reconnects by itself (retry: 2 s) and we re-read.
  const state = document.getElementById("live-state");
  const source = new EventSource(page.dataset.liveUrl);
  source.onopen = () => {
    state.textContent = "live"; state.className = "badge ok";
    fetch(page.dataset.latestUrl, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : null)).then((d) => d && show(d)).catch(() => {});
  };
  source.onerror = () => { state.textContent = "reconnecting…"; state.className = "badge bad"; };
  source.addEventListener("update", (event) => {
    const latest = JSON.parse(event.data);
    latest.received_at = Date.now();
    window.tickcastLastUpdate = latest;
    show(latest);
  });

  // Chart: close price (left axis) and the champion's P(up) (right axis), outcomes as points.
  const holder = document.getElementById("chart");
  const note = document.getElementById("chart-note");
  fetch(page.dataset.seriesUrl, { credentials: "same-origin" })
    .then((r) => r.json())
    .then((s) => {
      if (s.error) { note.textContent = `History unavailable: ${s.error}`; return; }
      const times = Array.from(new Set([...s.price.ts, ...s.predictions.ts])).sort((a, b) => a - b);
      const index = new Map(times.map((t, i) => [t, i]));
      const close = new Array(times.length).fill(null);
      const prob = new Array(times.length).fill(null);
      const hits = new Array(times.length).fill(null);
      const misses = new Array(times.length).fill(null);
      s.price.ts.forEach((t, i) => { close[index.get(t)] = s.price.close[i]; });
      s.predictions.ts.forEach((t, i) => {
        const k = index.get(t);
        prob[k] = s.predictions.prob_up[i];
        if (s.predictions.hit[i] === 1) hits[k] = s.predictions.prob_up[i];
        if (s.predictions.hit[i] === 0) misses[k] = s.predictions.prob_up[i];
      });
      holder.dataset.points = String(times.length);
      holder.dataset.prices = String(s.price.ts.length);
      holder.dataset.predictions = String(s.predictions.ts.length);
      if (!times.length) { note.textContent = "No history in this range."; return; }
      if (!s.price.ts.length) note.textContent = "No closes stored: the sink stores ticks when TICKCAST_SINK_TOPICS includes ticks.";
      const width = Math.max(320, holder.clientWidth || 800);
      const opts = {
        width, height: 320,
        scales: { x: { time: true }, p: { range: [0, 1] } },
        axes: [{}, { label: "close" }, { scale: "p", side: 1, label: "P(up)", grid: { show: false } }],
        series: [
          { value: (u, v) => utc(v * 1000) },
          { label: "close", stroke: "#1f4e9c", width: 1.5, spanGaps: true },
          { label: "P(up)", scale: "p", stroke: "#b36b00", width: 1, spanGaps: true },
          { label: "hit", scale: "p", stroke: "#1b7f3b", width: 0, points: { show: true, size: 5, fill: "#1b7f3b" } },
          { label: "miss", scale: "p", stroke: "#b3261e", width: 0, points: { show: true, size: 5, fill: "#b3261e" } },
        ],
      };
      const data = [times.map((t) => t / 1000), close, prob, hits, misses];
      new uPlot(opts, data, holder);
      holder.dataset.rendered = "1";
    })
    .catch((e) => { note.textContent = `History unavailable: ${e}`; });
})();
