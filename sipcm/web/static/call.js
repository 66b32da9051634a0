"use strict";
// sipcm call page: the ladder of one call (/api/calls/{id}/flow) as SVG, the raw message and
// its SDP on click, and the call's events. Values from the API go in with textContent only.
(function () {
  const TOKEN_KEY = "sipcm-token";
  const TZ_KEY = "sipcm-tz";       // shared with the dashboard: "utc" or "local"
  const SVG = "http://www.w3.org/2000/svg";
  const LEFT = 200, COL = 240, TOP = 56, ROW = 32, LABEL_MAX = 46;
  const MARKS = { retrans: " [retransmission]", copy: " [copy]" };
  const $ = (id) => document.getElementById(id);

  const params = new URLSearchParams(location.search);
  if (params.has("token")) {
    sessionStorage.setItem(TOKEN_KEY, params.get("token"));
    params.delete("token");
    try { history.replaceState(null, "", location.pathname + "?" + params.toString()); } catch (e) { /* */ }
  }
  const callId = params.get("id") || "";
  let utc = localStorage.getItem(TZ_KEY) !== "local";
  let shown = { flow: null, events: null };  // redrawn when the time zone is toggled

  async function api(path) {
    const opts = { headers: {}, cache: "no-store" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) opts.headers["Authorization"] = "Bearer " + token;
    const resp = await fetch(path, opts);
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (!resp.ok) throw new Error((body && body.error) || ("HTTP " + resp.status));
    return body;
  }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function td(text) { const e = document.createElement("td"); e.textContent = text == null ? "" : String(text); return e; }
  function pad(n) { return String(n).padStart(2, "0"); }
  // An RFC 3339 UTC time from the API in UTC ("Z") or the browser's zone (no suffix), as the
  // dashboard shows times; the fraction is kept as sent (Date holds milliseconds only).
  function fmtIso(iso) {
    const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z$/.exec(iso == null ? "" : String(iso));
    if (!m) return iso == null ? "" : String(iso);
    const d = new Date(m[1] + "Z");
    const p = utc
      ? [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()]
      : [d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds()];
    return p[0] + "-" + pad(p[1]) + "-" + pad(p[2]) + " " + pad(p[3]) + ":" + pad(p[4]) + ":" + pad(p[5]) +
      (m[2] || "") + (utc ? "Z" : "");
  }
  function clock(iso) { return fmtIso(iso).slice(11, 23) + (utc ? "Z" : ""); }
  function rel(ns) { return "+" + (ns / 1e9).toFixed(3) + "s"; }
  function setStatus(cls, text) { const s = $("status"); s.className = "status " + cls; s.textContent = text; }

  function drawLadder(flow) {
    const root = $("ladder");
    root.textContent = "";
    const hosts = flow.hosts, msgs = flow.messages;
    const width = LEFT + Math.max(hosts.length, 1) * COL;
    const height = TOP + msgs.length * ROW + 16;
    root.setAttribute("width", width);
    root.setAttribute("height", height);
    root.setAttribute("viewBox", "0 0 " + width + " " + height);
    const defs = svg("defs", {});
    const marker = svg("marker", { id: "arrowhead", viewBox: "0 0 10 10", refX: 10, refY: 5,
      markerWidth: 8, markerHeight: 8, orient: "auto-start-reverse" });
    marker.appendChild(svg("path", { d: "M0,0 L10,5 L0,10 z" }));
    defs.appendChild(marker);
    root.appendChild(defs);
    const x = (i) => LEFT + i * COL + COL / 2;
    hosts.forEach((h, i) => {
      root.appendChild(svg("text", { class: "host", x: x(i), y: 20, "data-host": i }, h));
      root.appendChild(svg("line", { class: "lane", x1: x(i), y1: 30, x2: x(i), y2: height }));
    });
    msgs.forEach((m, j) => {
      const y = TOP + j * ROW + 14;
      const kind = m.first_line.startsWith("SIP/2.0 ") ? "response" : "request";
      const g = svg("g", { class: "msg " + kind + (m.dup !== "new" ? " " + m.dup : ""),
        id: "msg-" + j, "data-from": m.from, "data-to": m.to, "data-dup": m.dup });
      g.appendChild(svg("text", { class: "time", x: 4, y: y + 4 }, clock(m.time)));
      g.appendChild(svg("text", { class: "time", x: 110, y: y + 4 }, rel(m.rel_ns)));
      const x1 = x(m.from), x2 = x(m.to);
      if (x1 === x2) {
        g.appendChild(svg("line", { x1: x1, y1: y, x2: x1 + 30, y2: y }));
      } else {
        g.appendChild(svg("line", { x1: x1, y1: y, x2: x2, y2: y, "marker-end": "url(#arrowhead)" }));
      }
      let label = m.first_line;
      if (label.length > LABEL_MAX) label = label.slice(0, LABEL_MAX - 1) + "\u2026";
      g.appendChild(svg("text", { class: "label", x: (x1 + x2) / 2 + (x1 === x2 ? 60 : 0), y: y - 5 },
        label + (MARKS[m.dup] || "")));
      g.appendChild(svg("title", {}, m.first_line + " \u2014 " + m.src + " \u2192 " + m.dst + " " +
        m.transport.toUpperCase() + ", " + m.size + " bytes, " + fmtIso(m.time)));
      g.addEventListener("click", () => {
        show(flow, j);
        try { history.replaceState(null, "", location.pathname + location.search + "#msg-" + j); } catch (e) { /* */ }
      });
      root.appendChild(g);
    });
  }

  function show(flow, j) {
    const m = flow.messages[j];
    document.querySelectorAll("g.msg.selected").forEach((g) => g.classList.remove("selected"));
    $("msg-" + j).classList.add("selected");
    $("msg-title").textContent = "#" + (j + 1) + " " + m.src + " \u2192 " + m.dst + " at " + fmtIso(m.time);
    if (m.raw === null) {
      $("raw").textContent = flow.anonymized ? "(not kept: anonymization is on)" : "(not kept: flow limits)";
      $("sdp").textContent = "";
      return;
    }
    $("raw").textContent = m.raw;
    const cut = m.raw.indexOf("\r\n\r\n");
    const body = cut >= 0 ? m.raw.slice(cut + 4) : "";
    $("sdp").textContent = /^content-type:\s*application\/sdp/im.test(m.raw.slice(0, cut)) ? body : "(none)";
  }

  function drawEvents(resp) {
    shown.events = resp;
    const body = $("events").tBodies[0];
    body.textContent = "";
    const docs = resp.events.slice().reverse();
    $("events-count").textContent = "(" + docs.length + ")";
    for (const d of docs) {
      const sip = d.sip || {}, ev = d.event || {};
      const tr = document.createElement("tr");
      [fmtIso(d["@timestamp"]), ev.action, sip.method, sip.code, ev.reason].forEach((v) => tr.appendChild(td(v)));
      body.appendChild(tr);
    }
  }

  function flowCut(flow) {
    const cut = [];
    if (flow.messages_dropped) cut.push(flow.messages_dropped + " messages not kept");
    if (flow.raw_dropped) cut.push(flow.raw_dropped + " without their text");
    return cut;
  }

  function drawFlow(flow) {
    shown.flow = flow;
    drawLadder(flow);
    $("flow-count").textContent = "(" + flow.messages.length + " messages, " + flow.hosts.length + " hosts)";
    const cut = flowCut(flow);
    $("summary").textContent = flow.messages.length ? "first message " + fmtIso(flow.messages[0].time) +
      (cut.length ? " \u2014 flow limits: " + cut.join(", ") : "") : "";
    const pick = /^#msg-(\d+)$/.exec(location.hash);  // a link to one message, or the one clicked
    if (pick && Number(pick[1]) < flow.messages.length) show(flow, Number(pick[1]));
  }

  function showZone() {
    const b = $("tz");
    b.textContent = utc ? "UTC" : "local time";
    b.setAttribute("aria-pressed", utc ? "false" : "true");
  }
  $("tz").addEventListener("click", () => {
    utc = !utc;
    localStorage.setItem(TZ_KEY, utc ? "utc" : "local");
    showZone();
    if (shown.flow) drawFlow(shown.flow);
    if (shown.events) drawEvents(shown.events);
  });
  showZone();

  async function load() {
    $("call-id").textContent = callId;
    document.title = "sipcm call " + callId;
    const path = "/api/calls/" + encodeURIComponent(callId);
    try {
      const flow = await api(path + "/flow");
      drawFlow(flow);
      const cut = flowCut(flow);
      if (!flow.anonymized && !cut.length) {
        const token = sessionStorage.getItem(TOKEN_KEY);
        $("pcap").href = path + "/pcap" + (token ? "?token=" + encodeURIComponent(token) : "");
        $("pcap").hidden = false;
      }
      setStatus("ok", "loaded");
    } catch (e) {
      setStatus("bad", e.message);
      $("summary").textContent = e.message;
    }
    try {
      drawEvents(await api("/api/events?limit=10000&call_id=" + encodeURIComponent(callId)));
    } catch (e) {
      $("events-count").textContent = "(" + e.message + ")";
    }
  }
  load();
})();
