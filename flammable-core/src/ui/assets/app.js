// Flammable's experiment browser: hover and zoom on the server-drawn charts, PNG downloads,
// and live updates of running runs (one request a page, each sent after the last answer).
// Everything else is plain HTML from the server; the pages work without it.
"use strict";

const REFRESH_MS = 2000;

// ---- charts -------------------------------------------------------------------------------

// The numbers of a line's data attribute, parsed once.
function numbers(el, name) {
  const key = "_" + name;
  if (!el[key]) el[key] = (el.dataset[name] || "").split(",").filter((s) => s !== "").map(Number);
  return el[key];
}

// The index of the step nearest `x` in the increasing array `steps`.
function nearest(steps, x) {
  let lo = 0, hi = steps.length - 1;
  if (hi < 0) return -1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (steps[mid] < x) lo = mid + 1; else hi = mid;
  }
  if (lo > 0 && Math.abs(steps[lo - 1] - x) <= Math.abs(steps[lo] - x)) lo -= 1;
  return lo;
}

function svgScale(svg) {
  const d = svg.dataset;
  return {
    x0: +d.x0, x1: +d.x1, left: +d.left, top: +d.top, w: +d.w, h: +d.h,
    ratio: svg.viewBox.baseVal.width / svg.getBoundingClientRect().width,
  };
}

// The SVG x coordinate of a mouse event.
function svgX(svg, ev) {
  const s = svgScale(svg);
  return (ev.clientX - svg.getBoundingClientRect().left) * s.ratio;
}

function stepAt(svg, x) {
  const s = svgScale(svg);
  const f = Math.min(1, Math.max(0, (x - s.left) / s.w));
  return s.x0 + f * (s.x1 - s.x0);
}

// How a chart's x reads in the hover: a step, an epoch, a time since the start, a UTC time.
function formatX(svg, x) {
  switch (svg.dataset.x) {
    case "epoch": return "epoch " + x.toFixed(2);
    case "time": return x < 180 ? format(x) + " s" : x < 10800 ? format(x / 60) + " min" : format(x / 3600) + " h";
    case "wall": return new Date(x * 1000).toISOString().replace("T", " ").slice(0, 23) + " UTC";
    default: return "step " + x;
  }
}

function format(v) {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-4 || a >= 1e6) ? v.toExponential(4) : String(+v.toPrecision(6));
}

function svgEl(name, attrs) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

function chartSource(box) {
  let src = box.dataset.src;
  if (box.dataset.from) src += "&from=" + box.dataset.from + "&to=" + box.dataset.to;
  return src;
}

// A chart's SVG and PNG downloads are of the chart as shown: zoomed or not.
function followDownloads(box) {
  const figure = box.closest("figure");
  if (!figure) return;
  const src = chartSource(box) + "&download=1";
  for (const a of figure.querySelectorAll(".downloads a[href^='/chart']")) a.href = src;
  for (const b of figure.querySelectorAll(".downloads button.png")) b.dataset.src = src;
}

async function reloadChart(box) {
  // Not under a drag: the drag's rectangle and scale belong to the chart shown. The chart is
  // reloaded when the drag ends.
  if (box.dataset.dragging) {
    box.dataset.stale = "1";
    return;
  }
  delete box.dataset.stale;
  followDownloads(box);
  try {
    const r = await fetch(chartSource(box), { credentials: "same-origin" });
    if (r.ok) box.innerHTML = await r.text();
  } catch (_) { /* keep the chart shown */ }
}

function setUpChart(box) {
  const tip = document.createElement("div");
  tip.className = "tip";
  tip.hidden = true;
  let drag = null;

  box.addEventListener("mousemove", (ev) => {
    const svg = box.querySelector("svg[data-x0]");
    if (!svg) return;
    const x = svgX(svg, ev);
    const s = svgScale(svg);
    if (drag) {
      const a = Math.min(drag.x, x), b = Math.max(drag.x, x);
      drag.rect.setAttribute("x", a);
      drag.rect.setAttribute("width", b - a);
    }
    let cursor = svg.querySelector("line.cursor");
    if (!cursor) {
      cursor = svgEl("line", { class: "cursor", y1: s.top, y2: s.top + s.h });
      svg.appendChild(cursor);
    }
    const step = stepAt(svg, x);
    const rows = [];
    for (const g of svg.querySelectorAll("g.line")) {
      const steps = numbers(g, "steps"), values = numbers(g, "values");
      const i = nearest(steps, step);
      if (i < 0) continue;
      rows.push([g.getAttribute("class").split(" ")[1], g.dataset.label, steps[i], values[i]]);
    }
    if (rows.length === 0) { tip.hidden = true; return; }
    const shownStep = rows[0][2];
    const cx = s.left + ((shownStep - s.x0) / (s.x1 - s.x0)) * s.w;
    cursor.setAttribute("x1", cx);
    cursor.setAttribute("x2", cx);
    tip.replaceChildren();
    const head = document.createElement("div");
    head.textContent = formatX(svg, shownStep);
    tip.appendChild(head);
    for (const [colour, label, , value] of rows.slice(0, 12)) {
      const line = document.createElement("div");
      const sw = document.createElement("span");
      sw.className = "swatch " + colour;
      line.appendChild(sw);
      line.appendChild(document.createTextNode(format(value) + (rows.length > 1 ? "  " + label : "")));
      tip.appendChild(line);
    }
    if (!tip.isConnected) box.appendChild(tip);
    tip.hidden = false;
    const bx = ev.clientX - box.getBoundingClientRect().left;
    tip.style.left = Math.min(bx + 14, box.clientWidth - tip.offsetWidth - 4) + "px";
    tip.style.top = "8px";
  });

  box.addEventListener("mouseleave", () => {
    tip.hidden = true;
    const cursor = box.querySelector("line.cursor");
    if (cursor) cursor.remove();
  });

  box.addEventListener("mousedown", (ev) => {
    const svg = box.querySelector("svg[data-x0]");
    if (!svg || ev.button !== 0) return;
    ev.preventDefault();
    const s = svgScale(svg);
    const x = svgX(svg, ev);
    const rect = svgEl("rect", { class: "zoom", x, y: s.top, width: 0, height: s.h });
    svg.appendChild(rect);
    drag = { x, rect, svg };
    box.dataset.dragging = "1";
  });

  window.addEventListener("mouseup", (ev) => {
    if (!drag) return;
    const { svg, rect, x: start } = drag;
    drag = null;
    delete box.dataset.dragging;
    rect.remove();
    const x = svgX(svg, ev);
    const a = Math.min(start, x), b = Math.max(start, x);
    // Steps are whole numbers; epochs and times are not.
    const whole = (svg.dataset.x || "step") === "step";
    const from = whole ? Math.floor(stepAt(svg, a)) : stepAt(svg, a);
    const to = whole ? Math.ceil(stepAt(svg, b)) : stepAt(svg, b);
    if (b - a >= 5 && Number.isFinite(from) && Number.isFinite(to)) {
      // Zoom: the server sends the range again, at full resolution where it fits.
      box.dataset.from = from;
      box.dataset.to = to;
      reloadChart(box);
    } else if (box.dataset.stale) {
      reloadChart(box);
    }
  });

  box.addEventListener("dblclick", () => {
    delete box.dataset.from;
    delete box.dataset.to;
    reloadChart(box);
  });
}

// ---- downloads ----------------------------------------------------------------------------

// A chart as PNG: its standalone SVG drawn on a canvas at twice its size, then saved.
async function savePng(button) {
  const r = await fetch(button.dataset.src, { credentials: "same-origin" });
  if (!r.ok) return;
  // A data: address (the pages' policy takes images from the server and data: only).
  const url = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(await r.text());
  const img = new Image();
  img.onload = () => {
    const canvas = document.createElement("canvas");
    canvas.width = img.width * 2;
    canvas.height = img.height * 2;
    const g = canvas.getContext("2d");
    g.fillStyle = "#fff";
    g.fillRect(0, 0, canvas.width, canvas.height);
    g.drawImage(img, 0, 0, canvas.width, canvas.height);
    const a = document.createElement("a");
    a.href = canvas.toDataURL("image/png");
    a.download = (button.dataset.name || "chart").replace(/[^A-Za-z0-9._-]/g, "_") + ".png";
    document.body.appendChild(a);
    a.click();
    a.remove();
  };
  img.src = url;
}

// ---- parallel coordinates -------------------------------------------------------------------

// Brushing: a drag along an axis keeps the runs that cross it within the drag; the lines of the
// others fade and their rows of the table hide. A click on an axis lets it go.
function setUpParallel(box) {
  const svg = box.querySelector("svg");
  if (!svg) return;
  const lines = [...svg.querySelectorAll("polyline.run")];
  const brushes = new Map();
  const rows = [...document.querySelectorAll("#parallel-table tbody tr")];
  const apply = () => {
    const keep = new Set();
    for (const l of lines) {
      let ok = true;
      for (const [i, [a, b]] of brushes) {
        const y = l.points.getItem(i).y;
        // A line at an axis's end counts as within a brush that reaches the end.
        if (y < a - 2 || y > b + 2) { ok = false; break; }
      }
      l.classList.toggle("out", !ok);
      if (ok) keep.add(l.dataset.id);
    }
    const shown = [];
    for (const tr of rows) {
      tr.hidden = !keep.has(tr.dataset.id);
      if (!tr.hidden) shown.push(tr.dataset.id);
    }
    const count = document.getElementById("shown-count");
    if (count) count.textContent = String(shown.length);
    const link = document.getElementById("compare-shown");
    if (link) link.href = "/compare?runs=" + encodeURIComponent(shown.slice(0, 200).join(","));
  };
  const yOf = (ev) => {
    const r = svg.getBoundingClientRect();
    return (ev.clientY - r.top) * (svg.viewBox.baseVal.height / r.height);
  };
  svg.querySelectorAll("g.axis").forEach((g, i) => {
    const area = g.querySelector("rect.brush-area");
    area.addEventListener("mousedown", (ev) => {
      ev.preventDefault();
      const start = yOf(ev);
      let rect = g.querySelector("rect.brush");
      if (!rect) {
        rect = svgEl("rect", { class: "brush", x: area.getAttribute("x"), width: area.getAttribute("width") });
        g.appendChild(rect);
      }
      const move = (e) => {
        const y = yOf(e), a = Math.min(start, y), b = Math.max(start, y);
        rect.setAttribute("y", a);
        rect.setAttribute("height", b - a);
      };
      const up = (e) => {
        window.removeEventListener("mousemove", move);
        window.removeEventListener("mouseup", up);
        const y = yOf(e), a = Math.min(start, y), b = Math.max(start, y);
        if (b - a < 3) { rect.remove(); brushes.delete(i); } else brushes.set(i, [a, b]);
        apply();
      };
      move(ev);
      window.addEventListener("mousemove", move);
      window.addEventListener("mouseup", up);
    });
  });
  apply();
}

// ---- managing runs -------------------------------------------------------------------------

// The ticked runs of the runs table (a group's box holds its runs' ids, separated by commas).
function tickedRuns() {
  const ids = [];
  for (const c of document.querySelectorAll("#runs-table input[type=checkbox]:checked")) ids.push(...c.value.split(","));
  return [...new Set(ids.filter((id) => id !== ""))];
}

// Sends a write of the runs page for the ticked runs, as its forms would (with the page's CSRF
// token), then shows where the server sends the browser: the page again, or the undo.
async function bulk(bar, action, fields) {
  const error = document.getElementById("bulk-error");
  error.textContent = "";
  const runs = tickedRuns();
  if (runs.length === 0) { error.textContent = "tick runs first"; return; }
  const body = new URLSearchParams({ csrf: bar.dataset.csrf, runs: runs.join(","), ...fields });
  const r = await fetch(action, { method: "POST", body, credentials: "same-origin" });
  if (r.ok) { window.location.assign(r.url); return; }
  // The server's reason, from its error page.
  const doc = new DOMParser().parseFromString(await r.text(), "text/html");
  const why = doc.querySelector("p.error");
  error.textContent = why ? why.textContent : "the server answered " + r.status;
}

function setUpBulk(bar) {
  bar.hidden = false;
  const tags = document.getElementById("bulk-tags");
  const withTags = (field) => () => {
    if (tags.value.trim() === "") { document.getElementById("bulk-error").textContent = "type tags first"; return; }
    bulk(bar, "/runs/edit", { [field]: tags.value });
  };
  document.getElementById("bulk-tag").addEventListener("click", withTags("add"));
  document.getElementById("bulk-untag").addEventListener("click", withTags("remove"));
  document.getElementById("bulk-delete").addEventListener("click", () => bulk(bar, "/runs/delete", {}));
}

// ---- live updates -------------------------------------------------------------------------

// Calls `tick` now and again REFRESH_MS after each answer, while it returns true: a slow
// server gets one request at a time, never a queue of them.
function every(tick) {
  const next = async () => {
    let go = true;
    try { go = await tick(); } catch (_) { /* try again on the next tick */ }
    if (go !== false) setTimeout(next, REFRESH_MS);
  };
  setTimeout(next, REFRESH_MS);
}

// ---- groups -------------------------------------------------------------------------------

// Opens or closes a group's row of the runs table: its runs' rows show under it.
function toggleGroup(button, open) {
  const table = button.closest("table");
  for (const tr of table.querySelectorAll("tr.member[data-group='" + button.dataset.group + "']")) tr.hidden = !open;
  button.setAttribute("aria-expanded", open ? "true" : "false");
  button.textContent = open ? "▾" : "▸";
}

async function refreshRuns(boxEl) {
  const table = document.getElementById("runs-table");
  if (!table || table.dataset.live !== "1") return true;
  const checked = new Set([...table.querySelectorAll("input[type=checkbox]:checked")].map((c) => c.value));
  const open = new Set([...table.querySelectorAll("button.toggle[aria-expanded=true]")].map((b) => b.dataset.group));
  const r = await fetch("/rows" + boxEl.dataset.query, { credentials: "same-origin" });
  if (!r.ok) return true;
  const doc = new DOMParser().parseFromString(await r.text(), "text/html");
  const fresh = doc.getElementById("runs-table");
  if (!fresh) return true;
  for (const c of fresh.querySelectorAll("input[type=checkbox]")) c.checked = checked.has(c.value);
  table.replaceWith(document.adoptNode(fresh));
  for (const b of fresh.querySelectorAll("button.toggle")) if (open.has(b.dataset.group)) toggleGroup(b, true);
  return true;
}

// One request brings a running run's status, progress, charts and log.
async function refreshRun(run) {
  if (run.dataset.live !== "1") return false;
  const id = run.dataset.run;
  const r = await fetch("/run/" + encodeURIComponent(id) + "/live" + window.location.search, { credentials: "same-origin" });
  if (!r.ok) return true;
  const doc = new DOMParser().parseFromString(await r.text(), "text/html");
  for (const el of doc.querySelectorAll("[id]")) {
    const old = document.getElementById(el.id);
    if (!old) {
      // A series the page has no chart for yet: show the page again.
      if (el.classList.contains("chart")) { window.location.reload(); return false; }
      continue;
    }
    if (old.classList.contains("chart")) {
      // A zoomed chart keeps its range (asked for apart); one under a drag is left alone.
      if (old.dataset.from) reloadChart(old);
      else if (old.dataset.dragging) old.dataset.stale = "1";
      else old.innerHTML = el.innerHTML;
    } else {
      old.replaceWith(document.adoptNode(el));
    }
  }
  const state = doc.querySelector("[data-status]");
  if (state && state.dataset.status !== "running") {
    // The run has ended: show its final record.
    run.dataset.live = "0";
    window.location.reload();
    return false;
  }
  return true;
}

document.addEventListener("DOMContentLoaded", () => {
  for (const box of document.querySelectorAll(".chart[data-src]")) setUpChart(box);
  for (const b of document.querySelectorAll("button.png")) b.addEventListener("click", () => savePng(b));
  const parallel = document.getElementById("parallel");
  if (parallel) setUpParallel(parallel);
  // The runs table is replaced as it refreshes: its group buttons are handled where it lives.
  document.addEventListener("click", (ev) => {
    const b = ev.target.closest && ev.target.closest("button.toggle");
    if (b) toggleGroup(b, b.getAttribute("aria-expanded") !== "true");
  });
  const form = document.getElementById("chart-view");
  if (form) for (const s of form.querySelectorAll("select")) s.addEventListener("change", () => form.submit());
  const bar = document.getElementById("bulk");
  if (bar) setUpBulk(bar);
  const tableBox = document.getElementById("table-box");
  if (tableBox) every(() => refreshRuns(tableBox));
  const run = document.getElementById("run");
  if (run) every(() => refreshRun(run));
});
