// The dashboard: live views with health figures, the alarm list, the engine table; polls the JSON API.
"use strict";

const STATE_CLASS = { running: "ok", connecting: "warn", stalled: "bad", reconnecting: "bad", failed: "bad" };

// fetch() with the session cookie and the CSRF header; JSON answers parsed, errors thrown with the server's text.
async function api(path, options = {}) {
  const headers = { "X-Requested-With": "yolostream", ...(options.headers || {}) };
  const r = await fetch(path, { credentials: "same-origin", ...options, headers });
  if (r.status === 401) {
    location.href = "/login";
    throw new Error("not logged in");
  }
  const json = (r.headers.get("content-type") || "").includes("json") ? await r.json() : null;
  if (!r.ok) throw new Error((json && json.error) || r.status + " " + r.statusText);
  return json;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

const ms = (v) => (v === null || v === undefined ? "-" : v.toFixed(0));
let knownStreams = [];

function streamCard(s) {
  const img = el("img", { class: "live", id: "live-" + s.stream, alt: "live view of " + s.stream,
    src: "/v1/streams/" + encodeURIComponent(s.stream) + "/live" });
  img.addEventListener("error", () => setTimeout(() => { img.src = img.src.split("?")[0] + "?r=" + Date.now(); }, 2000));
  const figures = el("dl", { class: "figures", id: "fig-" + s.stream });
  return el("div", { class: "card", id: "card-" + s.stream },
    el("div", { class: "card-head" }, el("strong", { text: s.stream }), el("span", { class: "badge", id: "state-" + s.stream })),
    img, figures);
}

function updateCard(s) {
  const badge = document.getElementById("state-" + s.stream);
  badge.textContent = s.state;
  badge.className = "badge " + (STATE_CLASS[s.state] || "");
  const items = [
    ["fps", s.fps.toFixed(1)], ["latency p50 / p99", ms(s.latency_p50_ms) + " / " + ms(s.latency_p99_ms) + " ms"],
    ["drops", s.drops], ["reconnects", s.reconnects], ["decode errors", s.decode_errors], ["alarms", s.alarms],
    ["size", s.width ? s.width + "x" + s.height : "-"], ["viewers", s.viewers],
  ];
  const dl = document.getElementById("fig-" + s.stream);
  dl.replaceChildren(...items.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })]));
  if (s.last_error) dl.append(el("dt", { text: "last error" }), el("dd", { class: "error", text: s.last_error }));
}

function fillSelect(select, values, keepFirst) {
  const current = select.value;
  const first = keepFirst ? [select.options[0]] : [];
  select.replaceChildren(...first, ...values.map((v) => el("option", { value: v, text: v })));
  if ([...select.options].some((o) => o.value === current)) select.value = current;
}

async function pollStreams() {
  const data = await api("/v1/streams");
  const names = data.streams.map((s) => s.stream);
  if (names.join() !== knownStreams.join()) {
    knownStreams = names;
    document.getElementById("stream-grid").replaceChildren(...data.streams.map(streamCard));
    fillSelect(document.getElementById("f-stream"), names, true);
    fillSelect(document.getElementById("c-stream"), names, false);
    fillSelect(document.getElementById("e-stream"), names, false);
    Editor.streamsChanged();
  }
  data.streams.forEach(updateCard);
  Editor.streamInfo(data.streams);
}

async function pollEngine() {
  const e = await api("/v1/engine");
  const mode = e.compile_mode ? e.engine + " (" + e.compile_mode + ")" : "eager";
  document.getElementById("engine-line").textContent =
    e.family + " on " + e.device + " - " + mode + " - " + e.dtype + " - batch " + e.mean_batch.toFixed(1) +
    " - infer " + e.infer_ms.toFixed(1) + " ms";
  const rows = [
    ["model", e.model], ["family", e.family], ["device", e.device], ["input", e.imgsz + " px, " + e.dtype],
    ["engine", mode], ["buckets", e.buckets.length ? e.buckets.join(", ") : "any shape (eager)"],
    ["max batch", e.max_batch === null ? "-" : e.max_batch], ["detector calls", e.batches],
    ["frames", e.frames], ["batch sizes", Object.entries(e.batch_sizes).map(([k, v]) => k + ": " + v).join(", ") || "-"],
    ["per call", "pre " + e.preprocess_ms.toFixed(1) + " / infer " + e.infer_ms.toFixed(1) + " / post " +
      e.postprocess_ms.toFixed(1) + " ms"], ["last batch", e.last_batch_ms.toFixed(1) + " ms"],
    ["inference errors", e.inference_errors], ["API uploads", e.detect_requests + " (" + e.detect_refused_busy + " refused busy)"],
    ["uptime", e.uptime_s.toFixed(0) + " s"],
  ];
  document.getElementById("engine-table").replaceChildren(
    ...rows.map(([k, v]) => el("tr", {}, el("th", { text: k }), el("td", { text: String(v) }))));
}

function objectsText(objects) {
  return objects.map((o) => o.name + (o.track_id !== null && o.track_id !== undefined ? " #" + o.track_id : "") +
    " " + o.conf.toFixed(2)).join(", ");
}

let seenEvents = new Set();

async function pollEvents() {
  const q = new URLSearchParams({ limit: "50" });
  const stream = document.getElementById("f-stream").value;
  const rule = document.getElementById("f-rule").value;
  const from = document.getElementById("f-from").value;
  const since = Number(document.getElementById("f-since").value);
  if (stream) q.set("stream", stream);
  if (rule) q.set("rule", rule);
  if (from) q.set("since", String(new Date(from).getTime() / 1000));
  else if (since > 0) q.set("since", String(Date.now() / 1000 - since));
  let data;
  try {
    data = await api("/v1/events?" + q);
  } catch (err) {
    document.getElementById("alarm-note").textContent = err.message;
    return;
  }
  const rows = data.events.map((ev) => {
    const shot = ev.snapshot_url
      ? el("a", { href: ev.snapshot_url, target: "_blank" }, el("img", { class: "thumb", src: ev.snapshot_url, alt: "snapshot", loading: "lazy" }))
      : el("span", { class: "muted", text: "-" });
    const row = el("tr", { class: "sev-" + ev.severity + (seenEvents.size && !seenEvents.has(ev.event_id) ? " new" : ""), "data-rule": ev.rule, "data-id": ev.event_id },
      el("td", { text: new Date(ev.time * 1000).toLocaleString() }), el("td", { text: ev.stream }), el("td", { text: ev.rule }),
      el("td", { text: ev.kind }), el("td", { text: ev.severity }), el("td", { text: objectsText(ev.objects) }), el("td", {}, shot));
    return row;
  });
  seenEvents = new Set(data.events.map((ev) => ev.event_id).concat([...seenEvents]));
  document.getElementById("alarm-rows").replaceChildren(...rows);
  document.getElementById("alarm-count").textContent = data.count + (data.count === 50 ? "+ (newest 50)" : "") + " alarm(s)";
  document.getElementById("alarm-note").textContent = data.count ? "" : "No alarm in this range yet.";
}

async function pollCounts() {
  const stream = document.getElementById("c-stream").value;
  if (!stream) return;
  const seconds = document.getElementById("c-seconds").value;
  const data = await api("/v1/counts?stream=" + encodeURIComponent(stream) + "&seconds=" + seconds);
  drawChart(document.getElementById("chart"), data);
}

async function loadConfig() {
  const cfg = await api("/v1/config");
  fillSelect(document.getElementById("f-rule"), cfg.rules.map((r) => r.name), true);
  Editor.config(cfg);
}

function every(seconds, fn) {
  const run = async () => {
    try { await fn(); } catch (err) { console.warn(fn.name, err.message); }
    setTimeout(run, seconds * 1000);
  };
  run();
}

document.getElementById("logout").addEventListener("click", async () => {
  await api("/v1/session", { method: "DELETE" });
  location.href = "/login";
});
for (const id of ["f-stream", "f-rule", "f-since", "f-from"]) document.getElementById(id).addEventListener("change", pollEvents);
for (const id of ["c-stream", "c-seconds"]) document.getElementById(id).addEventListener("change", pollCounts);

Editor.init(api, loadConfig);
loadConfig().then(() => {
  every(1, pollStreams);
  every(2, pollEngine);
  every(2, pollEvents);
  every(2, pollCounts);
});
