// A small line chart on a canvas: objects per class (y) over time (x), one point per second, gaps kept.
"use strict";

const CHART_COLORS = ["#f5a623", "#4a90e2", "#7ed321", "#d0021b", "#bd10e0", "#50e3c2", "#b8e986", "#9013fe"];

function drawChart(canvas, data) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 36, R = 10, T = 24, B = 22;
  ctx.clearRect(0, 0, W, H);
  ctx.font = "11px sans-serif";
  const names = Object.keys(data.series);
  let top = 1;
  for (const n of names) top = Math.max(top, ...data.series[n]);
  const x = (t) => L + ((t - data.start) / Math.max(1, data.end - data.start)) * (W - L - R);
  const y = (v) => H - B - (v / top) * (H - T - B);
  ctx.strokeStyle = "#555"; ctx.fillStyle = "#aaa";
  ctx.beginPath(); ctx.moveTo(L, T); ctx.lineTo(L, H - B); ctx.lineTo(W - R, H - B); ctx.stroke();
  const step = Math.max(1, Math.ceil(top / 4));
  for (let v = 0; v <= top; v += step) {
    ctx.fillText(String(v), 8, y(v) + 4);
    ctx.strokeStyle = "#333"; ctx.beginPath(); ctx.moveTo(L, y(v)); ctx.lineTo(W - R, y(v)); ctx.stroke();
  }
  const span = data.end - data.start;
  ctx.fillText("-" + (span >= 120 ? Math.round(span / 60) + " min" : span + " s"), L, H - 6);
  ctx.fillText("now", W - R - 22, H - 6);
  if (!names.length) {
    ctx.fillText(data.times.length ? "nothing detected" : "no frames yet", W / 2 - 40, H / 2);
    return;
  }
  names.forEach((name, i) => {
    const color = CHART_COLORS[i % CHART_COLORS.length];
    ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.beginPath();
    let prev = null;
    data.times.forEach((t, k) => {
      const px = x(t), py = y(data.series[name][k]);
      if (prev !== null && t - prev > 2) ctx.moveTo(px, py); else if (prev === null) ctx.moveTo(px, py); else ctx.lineTo(px, py);
      prev = t;
    });
    ctx.stroke(); ctx.lineWidth = 1;
    ctx.fillStyle = color; ctx.fillRect(L + 8 + i * 90, 6, 10, 10);
    ctx.fillStyle = "#ddd"; ctx.fillText(name, L + 22 + i * 90, 15);
  });
}
