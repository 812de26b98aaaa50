// The zone and line editor: points clicked on a stream's newest raw frame, saved into the config file.
// The canvas has the stream's own size, so canvas coordinates are the stream's pixels (what rules use).
"use strict";

const Editor = (() => {
  let api = null, reloadConfig = null, cfg = null;
  let sizes = {}, used = {}; // stream -> [w, h]; stream -> {zones, lines}
  let image = null, points = [];
  const $ = (id) => document.getElementById(id);
  const canvas = () => $("e-canvas");

  function status(text, isError) {
    $("e-status").textContent = text;
    $("e-status").className = isError ? "error" : "ok";
  }

  function drawShape(ctx, pts, closed, color, width) {
    if (!pts.length) return;
    ctx.strokeStyle = color; ctx.lineWidth = width; ctx.beginPath();
    pts.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    if (closed && pts.length > 2) { ctx.closePath(); ctx.fillStyle = color + "33"; ctx.fill(); }
    ctx.stroke();
  }

  function draw() {
    const c = canvas(), ctx = c.getContext("2d");
    ctx.clearRect(0, 0, c.width, c.height);
    if (image) ctx.drawImage(image, 0, 0, c.width, c.height);
    const u = used[$("e-stream").value] || { zones: [], lines: [] };
    const scale = Math.max(1, c.width / 640);
    if (cfg) {
      for (const name of u.zones) if (cfg.zones[name]) drawShape(ctx, cfg.zones[name], true, "#ffc400", 2 * scale);
      for (const name of u.lines) if (cfg.lines[name]) drawShape(ctx, cfg.lines[name], false, "#00dcff", 2 * scale);
    }
    const zone = $("e-kind").value === "zones";
    drawShape(ctx, points, zone, "#ff3b7f", 3 * scale);
    ctx.fillStyle = "#ff3b7f";
    points.forEach(([x, y]) => { ctx.beginPath(); ctx.arc(x, y, 5 * scale, 0, 2 * Math.PI); ctx.fill(); });
  }

  function loadFrame() {
    const stream = $("e-stream").value;
    if (!stream) return;
    const size = sizes[stream];
    if (size) { canvas().width = size[0]; canvas().height = size[1]; }
    const img = new Image();
    img.onload = () => { image = img; if (!size) { canvas().width = img.naturalWidth; canvas().height = img.naturalHeight; } draw(); };
    img.onerror = () => status("No frame from " + stream + " yet: press 'New frame' once it runs.", true);
    img.src = "/v1/streams/" + encodeURIComponent(stream) + "/frame.jpg?annotate=false&t=" + Date.now();
  }

  function fillExisting() {
    const select = $("e-existing");
    const options = [el("option", { value: "", text: "(new)" })];
    if (cfg) {
      for (const n of Object.keys(cfg.zones)) options.push(el("option", { value: "zones/" + n, text: "zone " + n }));
      for (const n of Object.keys(cfg.lines)) options.push(el("option", { value: "lines/" + n, text: "line " + n }));
    }
    const current = select.value;
    select.replaceChildren(...options);
    if ([...select.options].some((o) => o.value === current)) select.value = current;
  }

  function pick() {
    const v = $("e-existing").value;
    if (!v) { points = []; $("e-name").value = ""; draw(); return; }
    const [kind, name] = [v.slice(0, v.indexOf("/")), v.slice(v.indexOf("/") + 1)];
    $("e-kind").value = kind; $("e-name").value = name;
    points = cfg[kind][name].map((p) => [p[0], p[1]]);
    draw();
  }

  function click(e) {
    const c = canvas(), rect = c.getBoundingClientRect();
    const x = ((e.clientX - rect.left) * c.width) / rect.width, y = ((e.clientY - rect.top) * c.height) / rect.height;
    if ($("e-kind").value === "lines" && points.length >= 2) points = [points[0]];
    points.push([Math.round(x * 10) / 10, Math.round(y * 10) / 10]);
    draw();
  }

  async function save(remove) {
    const kind = $("e-kind").value, name = $("e-name").value.trim();
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) return status("Give it a name: letters, digits, . _ -", true);
    if (!remove && kind === "zones" && points.length < 3) return status("A zone needs 3 or more points.", true);
    if (!remove && kind === "lines" && points.length !== 2) return status("A line needs 2 points.", true);
    if (remove && !confirm("Delete " + kind.slice(0, -1) + " " + name + " from the config?")) return;
    const options = remove ? { method: "DELETE" }
      : { method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ points }) };
    try {
      const r = await api("/v1/" + kind + "/" + encodeURIComponent(name), options);
      let text = (remove ? "Deleted from " : "Saved to ") + r.path + " (previous file kept as " + r.backup + "). ";
      text += r.rules_updated.length ? "Rules updated live: " + r.rules_updated.join(", ") + "." : "No rule uses it yet.";
      if (r.restart_required.length) text += " Restart needed for other changes in: " + r.restart_required.join(", ") + ".";
      status(text, false);
      await reloadConfig();
      $("e-existing").value = remove ? "" : kind + "/" + name;
      if (remove) points = [];
      draw();
    } catch (err) {
      status("Not saved: " + err.message, true);
    }
  }

  return {
    init(apiFn, reload) {
      api = apiFn; reloadConfig = reload;
      canvas().addEventListener("click", click);
      $("e-stream").addEventListener("change", () => { image = null; loadFrame(); });
      $("e-existing").addEventListener("change", pick);
      $("e-kind").addEventListener("change", () => { points = []; draw(); });
      $("e-undo").addEventListener("click", () => { points.pop(); draw(); });
      $("e-clear").addEventListener("click", () => { points = []; draw(); });
      $("e-reload").addEventListener("click", loadFrame);
      $("e-save").addEventListener("click", () => save(false));
      $("e-delete").addEventListener("click", () => save(true));
    },
    config(c) { cfg = c; fillExisting(); draw(); },
    streamsChanged() { loadFrame(); },
    streamInfo(streams) {
      let resized = false;
      for (const s of streams) {
        used[s.stream] = { zones: s.zones, lines: s.lines };
        if (s.width && !sizes[s.stream]) { sizes[s.stream] = [s.width, s.height]; resized = resized || s.stream === $("e-stream").value; }
      }
      if (resized || (!image && sizes[$("e-stream").value])) loadFrame();
    },
  };
})();
