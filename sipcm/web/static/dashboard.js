"use strict";
// sipcm dashboard: polls the JSON API, keeps a short samples and draws it on <canvas>.
// Every value from the API is inserted with textContent, never as HTML (SIP headers are
// attacker-controlled).
(function () {
  const POLL_MS = 2000;
  const SLOW_EVERY = 3;            // calls, registrations, rates, outcomes... every 3rd poll
  const MIN_SPAN_MS = 60000;
  const TABLE_ROWS = 100;
  const AUTH_ROWS = 20;
  const TOKEN_KEY = "sipcm-token";
  const TZ_KEY = "sipcm-tz";       // "utc" or "local", remembered in localStorage
  const PALETTE = ["#4e9af1", "#f1a24e", "#5cc98b", "#e5534b", "#b083f0", "#e0c341",
                   "#3fc1c9", "#f778ba", "#8b949e", "#a5d6ff"];
  const GOOD = new Set(["call-start", "call-end", "reg-new", "reg-del", "other-ok"]);
  const BAD = new Set(["call-attempt", "reg-expired", "auth-failed", "other-failed",
                       "other-timeout", "parse-error"]);

  const $ = (id) => document.getElementById(id);
  // The server's counter history (capture clock): {t: ns, c: {"group.name": n}, calls}.
  let samples = [];
  let historyCap = 720;
  let prevCounters = null;         // {at: ms, flat} of the previous poll (counter table rates)
  const colors = new Map();
  let prevPublished = null;
  let recentDocs = [];             // newest first, at most TABLE_ROWS
  let polls = 0;
  let timer = null;
  let blacklistDirty = false;
  let knownActions = [];
  let utc = localStorage.getItem(TZ_KEY) !== "local";
  const redraw = [];               // re-renders of the last API answers (time zone switch)
  let callsAt = { ms: 0, live: false };

  // -- token: accepted once from ?token=, then kept in sessionStorage --------------------------
  (function takeToken() {
    const params = new URLSearchParams(location.search);
    if (!params.has("token")) return;
    sessionStorage.setItem(TOKEN_KEY, params.get("token"));
    params.delete("token");
    const rest = params.toString();
    replaceUrl(location.pathname + (rest ? "?" + rest : "") + location.hash);
  })();
  function replaceUrl(url) { try { window.history.replaceState(null, "", url); } catch (e) { /* file: */ } }

  class AuthError extends Error {}

  async function api(path, options) {
    const opts = Object.assign({ headers: {}, cache: "no-store" }, options || {});
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) opts.headers["Authorization"] = "Bearer " + token;
    const resp = await fetch(path, opts);
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (resp.status === 401) throw new AuthError((body && body.error) || "unauthorized");
    if (!resp.ok) throw new Error((body && body.error) || ("HTTP " + resp.status));
    return body;
  }

  // -- small DOM helpers ------------------------------------------------------------------------
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmt(n) { return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"); }
  function fmtRate(r) {
    if (r === null || r === undefined || !isFinite(r)) return "";
    if (r === 0) return "0/s";
    return (r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2)) + "/s";
  }
  function fmtShort(v) {
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + "M";
    if (a >= 1e3) return (v / 1e3).toFixed(a >= 1e4 ? 0 : 1) + "k";
    if (a >= 10 || Number.isInteger(v)) return v.toFixed(0);
    return v.toFixed(a >= 1 ? 1 : 2);
  }
  function pad(n, w) { return String(n).padStart(w || 2, "0"); }
  // Every time shown goes through fmtTime: UTC (with "Z") or the browser's zone (no suffix).
  function parts(ms) {
    const d = new Date(ms);
    return utc
      ? [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()]
      : [d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds()];
  }
  function fmtTime(ms, frac) {
    const [y, mo, da, h, mi, se] = parts(ms);
    const f = frac === undefined ? "" : "." + frac;
    return y + "-" + pad(mo) + "-" + pad(da) + " " + pad(h) + ":" + pad(mi) + ":" + pad(se) + f + (utc ? "Z" : "");
  }
  function fmtClock(ms) {
    const p = parts(ms);
    return pad(p[3]) + ":" + pad(p[4]) + (p[5] ? ":" + pad(p[5]) : "");
  }
  function fmtNs(ns) {
    if (ns === null || ns === undefined) return "";
    return fmtTime(Math.floor(Number(ns) / 1e6));
  }
  function fmtTs(iso) {
    if (!iso) return "";
    const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(String(iso));
    if (!m) return String(iso);
    const frac = (m[2] || "").padEnd(3, "0").slice(0, 3);
    return fmtTime(Date.parse(m[1] + "Z") + Number(frac), frac);
  }
  function fmtDur(ns) {
    if (ns === null || ns === undefined) return "";
    const s = Math.floor(Number(ns) / 1e9);
    const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
    return (h ? h + ":" + pad(m) : String(m)) + ":" + pad(s % 60);
  }
  function fmtPct(r) { return r === null || r === undefined ? "–" : (r * 100).toFixed(1) + "%"; }
  function hostPort(v) {
    if (!v) return "";
    if (Array.isArray(v)) return v[0] + (v.length > 1 ? ":" + v[1] : "");
    return (v.ip || "") + (v.port !== undefined ? ":" + v.port : "");
  }
  function color(name) {
    if (!colors.has(name)) colors.set(name, PALETTE[colors.size % PALETTE.length]);
    return colors.get(name);
  }
  function fillTable(table, rows, cols, emptyText) {
    const tbody = table.tBodies[0];
    const frag = document.createDocumentFragment();
    if (!rows.length) {
      const tr = el("tr");
      const td = el("td", "empty", emptyText);
      td.colSpan = cols;
      tr.appendChild(td);
      frag.appendChild(tr);
    }
    const heads = table.tHead.rows[0].cells;
    for (const cells of rows) {
      const tr = el("tr");
      cells.forEach((c, i) => {
        if (heads[i] && heads[i].classList.contains("opt")) c.classList.add("opt");
        if (c.textContent && !c.title) c.title = c.textContent;
        tr.appendChild(c);
      });
      frag.appendChild(tr);
    }
    tbody.replaceChildren(frag);
  }
  const td = (text, cls) => el("td", cls, text);
  function cidCell(cid) {
    const cell = el("td", "mono");
    if (!cid) return cell;
    const a = el("a", "cid", cid);
    a.title = "show events of this call";
    a.addEventListener("click", () => { $("f-call_id").value = cid; refreshEvents(); });
    cell.appendChild(a);
    const flow = el("a", "flow");  // its arrow is drawn by CSS: the cell's text stays the Call-ID
    flow.href = "/call?id=" + encodeURIComponent(cid);
    flow.title = "message flow of this call";
    flow.setAttribute("aria-label", "message flow of " + cid);
    cell.appendChild(flow);
    return cell;
  }

  // -- counters and samples ---------------------------------------------------------------------
  function flatten(groups) {
    const flat = {};
    for (const [g, names] of Object.entries(groups)) {
      for (const [k, v] of Object.entries(names)) {
        if (typeof v === "number") flat[g + "." + k] = v;
        else for (const [d, n] of Object.entries(v)) flat[g + "." + k + "/" + d] = n;
      }
    }
    return flat;
  }
  // Per-second rate of a running total between history samples i-1 and i (t in ns).
  function rateAt(i, key) {
    if (i < 1) return null;
    const a = samples[i - 1], b = samples[i];
    if (!(key in b.c)) return null;
    const dt = (b.t - a.t) / 1e9;
    const d = b.c[key] - (a.c[key] || 0);
    return dt > 0 && d >= 0 ? d / dt : 0;
  }
  const lastRate = (key) => rateAt(samples.length - 1, key);
  function pollRate(flat, key) {
    if (!prevCounters || !(key in flat)) return null;
    const dt = (Date.now() - prevCounters.at) / 1000;
    const d = flat[key] - (prevCounters.flat[key] || 0);
    return dt > 0 && d >= 0 ? d / dt : 0;
  }
  function sumKeys(flat, pred) {
    let s = null;
    for (const [k, v] of Object.entries(flat)) if (pred(k)) s = (s || 0) + v;
    return s;
  }

  function renderTiles(flat) {
    const set = (id, key) => {
      $(id).textContent = fmt(key in flat ? flat[key] : 0);
      const r = lastRate(key);
      $(id + "-rate").textContent = r === null ? "" : fmtRate(r);
    };
    set("tile-messages", "sip.messages");
    set("tile-events", "events.published");
    set("tile-errors", "sip.parse_errors");
    const lost = sumKeys(flat, (k) => /^(kernel|capture)\..*(lost|drop)/.test(k));
    $("tile-lost").textContent = lost === null ? "–" : fmt(lost);
    $("tile-lost-rate").textContent = lost === null ? "no live capture" : "";
  }

  function renderOutcomes(o) {
    $("tile-asr").textContent = fmtPct(o.asr);
    $("tile-asr-rate").textContent = fmt(o.answered) + " of " + fmt(o.attempted) + " calls answered";
    $("tile-ner").textContent = fmtPct(o.ner);
    $("tile-ner-rate").textContent = fmt(o.effective) + " of " + fmt(o.attempted) + " effective";
    const failed = o.failures.reduce((n, f) => n + f.calls, 0);
    $("failures-count").textContent = "(" + fmt(failed) + " of " + fmt(o.attempted) + " calls)";
    const rows = o.failures.map((f) => [td(f.outcome, "mono"), td(f.meaning), td(fmt(f.calls), "num"),
      td(fmtPct(f.share), "num"), td(f.user_side ? "user" : "network", f.user_side ? "user" : "")]);
    fillTable($("failures"), rows, 5, "no failed calls");
  }

  function renderAuth(a) {
    $("auth-count").textContent = "(" + fmt(a.total) + " failures from " + fmt(a.sources) + " sources)";
    const rows = a.top.map((r) => [td(r.source_ip === null ? "(none)" : r.source_ip, "mono"),
      td(fmt(r.failures), "num"), td(fmtNs(r.first_ns)), td(fmtNs(r.last_ns))]);
    fillTable($("auth"), rows, 4, "no auth failures");
    $("auth-note").textContent = a.untracked
      ? fmt(a.untracked) + " failures came from sources beyond the table's " + fmt(a.capacity) +
        " addresses and are counted in the total only"
      : "";
  }

  function renderCounters(groups) {
    const rows = [];
    const flat = flatten(groups);
    for (const [g, names] of Object.entries(groups)) {
      const head = el("td", "group", g);
      head.colSpan = 3;
      rows.push([head]);
      for (const [k, v] of Object.entries(names)) {
        const sub = typeof v === "number" ? [[k, v]] :
          Object.entries(v).map(([d, x]) => [k + " / " + d, x]);
        for (const [label, value] of sub) {
          const key = g + "." + (typeof v === "number" ? k : label.replace(" / ", "/"));
          rows.push([td(label, "mono"), td(fmt(value), "num"), td(fmtRate(pollRate(flat, key)), "num")]);
        }
      }
    }
    fillTable($("counters"), rows, 3, "no counters yet");
  }

  // -- charts -----------------------------------------------------------------------------------
  function niceStep(raw) {
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
  }
  const TICKS_S = [15, 30, 60, 120, 300, 600, 900, 1800, 3600];
  function drawChart(canvas, legend, series, opts) {
    const o = Object.assign({ fmtAxis: fmtShort, fmtLast: fmtRate, top: null }, opts || {});
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 600, h = canvas.clientHeight || 220;
    if (canvas.width !== Math.round(w * dpr)) canvas.width = Math.round(w * dpr);
    if (canvas.height !== Math.round(h * dpr)) canvas.height = Math.round(h * dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const L = 48, R = 10, T = 8, B = 22, pw = w - L - R, ph = h - T - B;
    // Times in ms of the capture clock; the window is the whole history, at least 1 minute.
    const tEnd = samples.length ? samples[samples.length - 1].t / 1e6 : Date.now();
    const have = samples.length ? tEnd - samples[0].t / 1e6 : 0;
    const span = Math.max(MIN_SPAN_MS, have);
    const tick = 1000 * (TICKS_S.find((t) => span / (t * 1000) <= 6) || 7200);
    const x = (t) => L + (t - (tEnd - span)) / span * pw;
    let max = 0;
    for (const s of series) for (const p of s.points) if (p[1] > max) max = p[1];
    const step = o.top ? o.top / 4 : niceStep(max > 0 ? max / 4 : 0.25);
    const top = o.top || Math.max(step, Math.ceil(max / step) * step);
    const y = (v) => T + ph - v / top * ph;
    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    ctx.strokeStyle = "#263040";
    ctx.fillStyle = "#8b98a8";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let v = 0; v <= top + step / 2; v += step) {
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(L, yy); ctx.lineTo(L + pw, yy); ctx.stroke();
      ctx.fillText(o.fmtAxis(v), L - 6, yy);
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    // Ticks on round clock times (whole minutes in the shown zone), labelled HH:MM[:SS].
    const offset = utc ? 0 : -new Date(tEnd).getTimezoneOffset() * 60000;
    for (let t = Math.ceil((tEnd - span + offset) / tick) * tick - offset; t <= tEnd; t += tick) {
      const xx = Math.round(x(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(xx, T + ph); ctx.lineTo(xx, T + ph + 4); ctx.stroke();
      ctx.fillText(fmtClock(t), xx, T + ph + 6);
    }
    let drawn = 0;
    for (const s of series) {
      if (!s.points.length) continue;
      ctx.strokeStyle = ctx.fillStyle = s.color;
      ctx.lineWidth = 1.8;
      ctx.beginPath();
      s.points.forEach((p, i) => (i ? ctx.lineTo(x(p[0]), y(p[1])) : ctx.moveTo(x(p[0]), y(p[1]))));
      if (s.points.length === 1) ctx.lineTo(x(s.points[0][0]) - 1, y(s.points[0][1]));
      ctx.stroke();
      const last = s.points[s.points.length - 1];
      ctx.beginPath(); ctx.arc(x(last[0]), y(last[1]), 2.5, 0, 2 * Math.PI); ctx.fill();
      drawn++;
    }
    if (!drawn) {
      ctx.fillStyle = "#8b98a8";
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.fillText("collecting data…", L + pw / 2, T + ph / 2);
    }
    const items = series.map((s) => {
      const item = el("span");
      const sw = el("span", "sw");
      sw.style.background = s.color;
      const last = s.points.length ? s.points[s.points.length - 1][1] : null;
      item.append(sw, s.name, el("b", null, last === null ? "–" : o.fmtLast(last)));
      return item;
    });
    legend.replaceChildren(...items);
  }

  function trafficSeries() {
    const latest = samples.length ? samples[samples.length - 1].c : {};
    const keys = Object.keys(latest).filter((k) => k.startsWith("interfaces.")).sort();
    const named = keys.map((k) => [k, k.slice("interfaces.".length).replace("/", " ") + " frames"]);
    named.push(["sip.messages", "SIP messages"], ["sip.parse_errors", "parse errors"],
               ["events.published", "events"]);
    return named.map(([key, name]) => {
      return { name, color: color("t:" + key), points: ratePoints(key) };
    });
  }
  function ratePoints(key) {
    const points = [];
    for (let i = 1; i < samples.length; i++) {
      const r = rateAt(i, key);
      if (r !== null) points.push([samples[i].t / 1e6, r]);
    }
    return points;
  }

  const BY_ACTION = "events_published.";
  function eventSeries() {
    const actions = new Set();
    for (const h of samples) for (const k of Object.keys(h.c)) if (k.startsWith(BY_ACTION)) actions.add(k.slice(BY_ACTION.length));
    return [...actions].sort().map((a) => ({ name: a, color: color("e:" + a), points: ratePoints(BY_ACTION + a) }));
  }

  function callSeries() {
    return [["asr", "ASR"], ["ner", "NER"]].map(([k, name]) => ({
      name, color: color("c:" + k),
      points: samples.filter((h) => h.calls && h.calls[k] !== null && h.calls[k] !== undefined)
        .map((h) => [h.t / 1e6, h.calls[k] * 100]),
    }));
  }

  function drawCharts() {
    drawChart($("chart-traffic"), $("legend-traffic"), trafficSeries());
    drawChart($("chart-events"), $("legend-events"), eventSeries());
    const pct = (v) => v.toFixed(0) + "%";
    drawChart($("chart-calls"), $("legend-calls"), callSeries(),
              { fmtAxis: pct, fmtLast: (v) => v.toFixed(1) + "%", top: 100 });
    const info = $("history-info");
    if (samples.length) {
      const first = samples[0].t / 1e6, last = samples[samples.length - 1].t / 1e6;
      info.textContent = "History: " + fmt(samples.length) + " samples from " + fmtTime(first) +
        " to " + fmtTime(last) + " (capture clock; kept by the sensor, at most " + fmt(historyCap) + ")";
    } else {
      info.textContent = "History: no samples yet";
    }
  }

  // Answers start with the last sample already held (see historyPath): a sample taken again
  // at the same time (the end of input) replaces it.
  function takeHistory(resp) {
    historyCap = resp.capacity || historyCap;
    if (resp.samples.length) {
      const from = resp.samples[0].t;
      samples = samples.filter((h) => h.t < from).concat(resp.samples);
    }
    if (samples.length > historyCap) samples = samples.slice(samples.length - historyCap);
  }
  function historyPath() {
    return samples.length > 1 ? "/api/history?after=" + samples[samples.length - 2].t : "/api/history";
  }

  // Only new events are fetched (after=<previous published total>); the table keeps the
  // newest TABLE_ROWS client-side.
  function eventsPath() {
    return "/api/events?limit=" + TABLE_ROWS + (prevPublished === null ? "" : "&after=" + prevPublished);
  }

  function takeEvents(resp) {
    const prev = prevPublished;
    prevPublished = resp.published;
    if (prev === null || resp.published < prev) { recentDocs = resp.events.slice(0, TABLE_ROWS); return; }
    recentDocs = resp.events.concat(recentDocs).slice(0, TABLE_ROWS);
  }

  // -- tables -----------------------------------------------------------------------------------
  // Durations are measured by the sensor at its capture clock; during a live capture those
  // of open calls keep growing here between polls.
  function durCell(c) {
    const cell = td(fmtDur(c.duration_ns), "num dur");
    if (callsAt.live && !c.ended && c.duration_ns !== null && c.duration_ns !== undefined) {
      cell.dataset.ns = String(c.duration_ns);
    }
    return cell;
  }
  function tickDurations() {
    const extra = (Date.now() - callsAt.ms) * 1e6;
    for (const cell of document.querySelectorAll("#calls td.dur[data-ns]")) {
      cell.textContent = fmtDur(Number(cell.dataset.ns) + extra);
    }
  }
  function renderCalls(resp) {
    const active = resp.calls.filter((c) => !c.ended).length;
    $("calls-count").textContent = "(" + fmt(active) + " active, " + fmt(resp.count - active) + " ended)";
    $("tile-calls").textContent = fmt(active);
    const rows = resp.calls.map((c) => {
      const state = td(c.state_text || c.state);
      state.title = c.state;  // the tracker's own state name
      return [cidCell(c.call_id), state, td(c.from, "mono"),
        td(c.to, "mono"), td(hostPort(c.client), "mono"), td(hostPort(c.server), "mono"),
        td(fmtNs(c.invite_ns)), td(fmtNs(c.answer_ns)), durCell(c), td(fmtNs(c.last_ns))];
    });
    fillTable($("calls"), rows, 10, "no active calls");
  }

  function renderRegs(resp) {
    $("regs-count").textContent = "(" + fmt(resp.count) + ")";
    $("tile-regs").textContent = fmt(resp.count);
    const rows = resp.registrations.map((r) => [td(r.aor, "mono"), td(r.contact, "mono"),
      td(r.expires === null || r.expires === undefined ? "" : r.expires + " s", "num"),
      td(fmtNs(r.refreshed_ns)), td(fmtNs(r.expires_at_ns)), td(hostPort(r.client), "mono"),
      cidCell(r.call_id)]);
    fillTable($("regs"), rows, 7, "no registrations");
  }

  function renderEvents(resp) {
    $("events-count").textContent = "(" + fmt(resp.count) + " shown, " + fmt(resp.published) +
      " published)";
    const rows = resp.events.map((d) => {
      const ev = d.event || {}, sip = d.sip || {};
      const action = ev.action || "";
      const badge = el("td");
      badge.appendChild(el("span", "act " + (GOOD.has(action) ? "good" : BAD.has(action) ? "bad" : "info"), action));
      const from = sip.from && sip.from.uri ? sip.from.uri.original : "";
      const to = sip.to && sip.to.uri ? sip.to.uri.original : "";
      return [td(fmtTs(d["@timestamp"])), badge, cidCell(sip.call_id), td(sip.method || ""),
        td(sip.code === undefined ? "" : sip.code, "num"), td(from, "mono"), td(to, "mono"),
        td(hostPort(d.source), "mono"), td(hostPort(d.destination), "mono"),
        td(ev.reason || (d.error && d.error.message) || "")];
    });
    fillTable($("events"), rows, 10, "no events match");
  }

  function fmtWindow(sec) {
    return sec % 3600 === 0 ? sec / 3600 + "h" : sec % 60 === 0 ? sec / 60 + "min" : sec + "s";
  }
  function renderRates(resp) {
    $("rates-count").textContent = "(" + fmt(resp.count) + ")";
    const rows = resp.rates.map((r) => {
      const state = el("td");
      state.appendChild(el("span", "act " + (r.blacklisted ? "bad" : "good"),
                           r.blacklisted ? "blacklisted" : "ok"));
      const rates = (r.rates || []).map((w) =>
        fmtWindow(w.window) + ": " + fmtShort(Number(w.current)) +
        (w.limit ? "/" + w.limit : " (not limited)")).join("  ");
      return [td(r.event), td(r.source_ip === null ? "(none)" : r.source_ip, "mono"), state,
        td(fmt(r.events), "num"), td(fmt(r.exceeded), "num"), td(rates, "mono"),
        td(fmtTs(r.last_seen)), td(fmtTs(r.since))];
    });
    fillTable($("rates"), rows, 8, "no rate entries");
  }

  function renderBlacklist(resp) {
    knownActions = resp.valid;
    const sel = $("f-action");
    if (sel.options.length !== resp.valid.length + 1) {
      const keep = sel.value;
      const opts = [el("option", null, "all event types")];
      opts[0].value = "";
      for (const v of resp.valid) { const o = el("option", null, v); o.value = v; opts.push(o); }
      sel.replaceChildren(...opts);
      sel.value = keep;
    }
    if (blacklistDirty) return;
    const on = new Set(resp.blacklist);
    const boxes = resp.valid.map((name) => {
      const label = el("label");
      const box = el("input");
      box.type = "checkbox";
      box.value = name;
      box.checked = on.has(name);
      box.addEventListener("change", () => { blacklistDirty = true; $("blacklist-msg").textContent = "unsaved"; });
      label.append(box, " " + name);
      return label;
    });
    $("blacklist").replaceChildren(...boxes);
  }

  async function saveBlacklist() {
    const names = [...document.querySelectorAll("#blacklist input:checked")].map((b) => b.value);
    try {
      const resp = await api("/api/blacklist", {
        method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify(names) });
      blacklistDirty = false;
      renderBlacklist(resp);
      $("blacklist-msg").textContent = "saved: " + (resp.blacklist.join(", ") || "(empty)");
    } catch (e) {
      $("blacklist-msg").textContent = "not saved: " + e.message;
      if (e instanceof AuthError) needToken(e.message);
    }
  }

  // -- polling ----------------------------------------------------------------------------------
  function eventQuery() {
    const q = new URLSearchParams();
    for (const f of ["action", "call_id", "user", "ip"]) {
      const v = $("f-" + f).value.trim();
      if (v) q.set(f, v);
    }
    return q;
  }

  async function refreshEvents() {
    const q = eventQuery();
    q.set("limit", String(TABLE_ROWS));
    try { renderEvents(await api("/api/events?" + q)); } catch (e) { showError(e); }
  }

  async function poll() {
    timer = null;
    const slow = polls % SLOW_EVERY === 0;
    polls++;
    try {
      const filtered = [...eventQuery().keys()].length > 0;
      const jobs = [api("/api/counters"), api(eventsPath()), api(historyPath())];
      if (slow) jobs.push(api("/api/calls"), api("/api/registrations"), api("/api/rates"),
                          api("/api/blacklist"), api("/api/call-outcomes"),
                          api("/api/auth-sources?limit=" + AUTH_ROWS));
      const [counters, events, history, calls, regs, rates, blacklist, outcomes, auth] = await Promise.all(jobs);
      const now = Date.now();
      takeEvents(events);
      takeHistory(history);
      const flat = flatten(counters);
      renderTiles(flat);
      renderCounters(counters);
      prevCounters = { at: now, flat };
      const showEvents = () => renderEvents({ published: events.published, count: recentDocs.length, events: recentDocs });
      if (filtered) refreshEvents();
      else showEvents();
      if (slow) {
        callsAt = { ms: now, live: !!calls.live };
        const show = () => { renderCalls(calls); renderRegs(regs); renderRates(rates); renderAuth(auth); };
        show();
        renderBlacklist(blacklist);
        renderOutcomes(outcomes);
        redraw.length = 0;
        redraw.push(show);
      }
      redraw[1] = filtered ? refreshEvents : showEvents;
      drawCharts();
      setStatus("ok", "live");
      $("updated").textContent = "updated " + fmtClock(now) + (utc ? " UTC" : "");
    } catch (e) {
      if (e instanceof AuthError) { needToken(e.message); return; }
      showError(e);
    }
    timer = setTimeout(poll, POLL_MS);
  }

  function setStatus(cls, text) { const s = $("status"); s.className = "status " + cls; s.textContent = text; }
  function showError(e) { setStatus("bad", "error: " + e.message); }

  function needToken(msg) {
    if (timer) { clearTimeout(timer); timer = null; }
    setStatus("bad", "access token required");
    $("login-msg").textContent = sessionStorage.getItem(TOKEN_KEY)
      ? "The stored access token was refused (" + msg + "). Enter the sensor's access token."
      : "This sensor requires an access token for its API.";
    $("login").hidden = false;
    $("main").hidden = true;
  }

  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token-input").value);
    $("token-input").value = "";
    $("login").hidden = true;
    $("main").hidden = false;
    polls = 0;
    poll();
  });
  $("filters").addEventListener("submit", (ev) => { ev.preventDefault(); refreshEvents(); });
  $("f-clear").addEventListener("click", () => {
    for (const f of ["action", "call_id", "user", "ip"]) $("f-" + f).value = "";
    refreshEvents();
  });
  $("blacklist-save").addEventListener("click", saveBlacklist);
  window.addEventListener("resize", drawCharts);
  function showZone() {
    const b = $("tz");
    b.textContent = utc ? "UTC" : "local time";
    b.setAttribute("aria-pressed", utc ? "false" : "true");
  }
  $("tz").addEventListener("click", () => {
    utc = !utc;
    localStorage.setItem(TZ_KEY, utc ? "utc" : "local");
    showZone();
    for (const fn of redraw) if (fn) fn();
    drawCharts();
  });
  showZone();
  setInterval(tickDurations, 1000);
  poll();
})();
