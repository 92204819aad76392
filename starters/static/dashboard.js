// Tocsin dashboard: draws the build-time charts (plain SVG, no library) and refreshes the page.
// The page is rendered on the server; every REFRESH seconds this script fetches it again and swaps
// <main> in, so the markup lives in one place (starters/templates/dashboard.html).
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const COLOURS = { success: "#2da44e", failure: "#cf222e", timed_out: "#cf222e", other: "#8c959f" };
  let selected = null; // data-id of the pipeline whose trend the big chart shows

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    if (parent) parent.appendChild(node);
    return node;
  }

  function clear(svg) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
  }

  function points(svg) {
    try {
      const data = JSON.parse(svg.getAttribute("data-points") || "[]");
      return Array.isArray(data) ? data.filter((p) => typeof p.seconds === "number" && p.at) : [];
    } catch (_) {
      return [];
    }
  }

  function colour(status) {
    return COLOURS[status] || COLOURS.other;
  }

  function seconds(value) {
    if (value === 0) return "0s";
    if (value < 60) return value.toFixed(value < 10 ? 1 : 0) + "s";
    const m = Math.floor(value / 60);
    const s = Math.round(value % 60);
    return m < 60 ? m + "m" + (s ? s + "s" : "") : Math.floor(m / 60) + "h" + (m % 60 ? (m % 60) + "m" : "");
  }

  // x and y of each point in a box: builds are evenly spaced (the order is what matters); y from 0 to the
  // max, or from the min to the max for a sparkline (``fromMin``), so small changes still show.
  function layout(data, left, top, width, height, fromMin) {
    const values = data.map((p) => p.seconds);
    const max = Math.max(...values, fromMin ? 0 : 1);
    const min = fromMin ? Math.min(...values) : 0;
    const span = max - min;
    const step = data.length > 1 ? width / (data.length - 1) : 0;
    const y = (v) => (span > 0 ? top + height - ((v - min) / span) * height : top + height / 2);
    return {
      max: max,
      xy: data.map((p, i) => [left + (data.length > 1 ? i * step : width / 2), y(p.seconds)]),
    };
  }

  function pathOf(xy) {
    return xy.map(([x, y], i) => (i ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1)).join(" ");
  }

  function drawSpark(svg) {
    clear(svg);
    const data = points(svg);
    const w = Number(svg.getAttribute("width")), h = Number(svg.getAttribute("height"));
    if (!data.length) {
      el("text", { x: 2, y: h / 2 + 4, class: "none" }, svg).textContent = "no durations yet";
      return;
    }
    const { xy } = layout(data, 3, 3, w - 6, h - 6, true);
    el("path", { d: pathOf(xy), class: "line" }, svg);
    const [x, y] = xy[xy.length - 1];
    el("circle", { cx: x, cy: y, r: 2.5, fill: colour(data[data.length - 1].status) }, svg);
  }

  function drawChart(svg, data, title) {
    clear(svg);
    document.getElementById("trend-title").textContent = title ? "— " + title : "";
    const w = Number(svg.getAttribute("width")), h = Number(svg.getAttribute("height"));
    const pad = { left: 52, right: 14, top: 12, bottom: 28 };
    const iw = w - pad.left - pad.right, ih = h - pad.top - pad.bottom;
    if (!data.length) {
      el("text", { x: w / 2, y: h / 2, "text-anchor": "middle", class: "none" }, svg).textContent =
        "No build has reported a duration yet (tocsin build --duration SECONDS).";
      return;
    }
    const { max, xy } = layout(data, pad.left, pad.top, iw, ih);
    for (const f of [0, 0.5, 1]) {
      const y = pad.top + ih - f * ih;
      el("line", { x1: pad.left, x2: pad.left + iw, y1: y, y2: y, class: "grid" }, svg);
      el("text", { x: pad.left - 6, y: y + 4, "text-anchor": "end", class: "axis" }, svg).textContent = seconds(max * f);
    }
    const first = new Date(data[0].at), last = new Date(data[data.length - 1].at);
    el("text", { x: pad.left, y: h - 8, class: "axis" }, svg).textContent = first.toISOString().slice(0, 16).replace("T", " ");
    el("text", { x: pad.left + iw, y: h - 8, "text-anchor": "end", class: "axis" }, svg).textContent =
      last.toISOString().slice(0, 16).replace("T", " ") + " UTC";
    el("path", { d: pathOf(xy), class: "line main" }, svg);
    xy.forEach(([x, y], i) => {
      const dot = el("circle", { cx: x, cy: y, r: 4, fill: colour(data[i].status), class: "point" }, svg);
      el("title", {}, dot).textContent = data[i].status + ": " + seconds(data[i].seconds) + " at " + data[i].at;
    });
  }

  function draw() {
    const sparks = Array.from(document.querySelectorAll("svg.spark"));
    sparks.forEach(drawSpark);
    for (const meter of document.querySelectorAll(".meter[data-weight]")) {
      meter.style.width = Math.max(0, Math.min(100, Number(meter.getAttribute("data-weight")))) * 0.6 + "px";
    }
    const chart = document.getElementById("trend-chart");
    if (!chart) return;
    const rowOf = (svg) => svg.closest("tr.pipeline");
    let pick = sparks.find((s) => rowOf(s) && rowOf(s).getAttribute("data-id") === selected);
    if (!pick) pick = sparks.find((s) => points(s).length > 0);
    for (const s of sparks) {
      const row = rowOf(s);
      if (row) row.classList.toggle("selected", s === pick);
    }
    if (pick && rowOf(pick)) selected = rowOf(pick).getAttribute("data-id");
    drawChart(chart, pick ? points(pick) : [], pick ? pick.getAttribute("data-title") : "");
  }

  // ---- actions, for someone signed in with an API token (kept in this tab's sessionStorage only)

  const TOKEN_KEY = "tocsin.dashboard.token";
  const ACTIONS = {
    ack: { path: (id) => "/api/v1/incidents/" + id + "/ack", body: { note: "acknowledged on the dashboard" }, done: "Acknowledged" },
    approve: { path: (id) => "/api/v1/deployments/" + id + "/approve", body: { comment: "approved on the dashboard" }, done: "Approved" },
  };
  let me = null; // {name, verified, method} once the token is accepted

  function say(text, bad) {
    const box = document.getElementById("action-state");
    box.textContent = text;
    box.classList.toggle("bad", Boolean(bad));
    box.hidden = !text;
  }

  function showSession() {
    document.getElementById("who").textContent = me ? "signed in as " + me.name : "";
    document.getElementById("signin-open").hidden = Boolean(me);
    document.getElementById("signout").hidden = !me;
    if (me) document.getElementById("signin").hidden = true;
    for (const button of document.querySelectorAll("button.act")) button.hidden = !me;
  }

  async function whoami(token) {
    const resp = await fetch("/api/v1/dashboard/me", { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
    return resp.ok ? resp.json() : null;
  }

  async function signIn(token) {
    me = token ? await whoami(token) : null;
    if (me) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
    showSession();
    return me;
  }

  async function act(button) {
    const action = ACTIONS[button.getAttribute("data-act")];
    const id = button.getAttribute("data-id") || "";
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!action || !token) return;
    button.disabled = true;
    const path = action.path(id.split("/").map(encodeURIComponent).join("/"));
    try {
      const resp = await fetch(path, {
        method: "POST",
        headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
        body: JSON.stringify(action.body),
      });
      const answer = await resp.json().catch(() => ({}));
      if (resp.ok) say(action.done + " " + id + " as " + me.name + ".", false);
      else say("Refused (" + resp.status + "): " + (answer.error || resp.statusText), true);
    } catch (_) {
      say("The gateway did not answer; try again.", true);
    }
    button.disabled = false;
    await refresh();
  }

  async function refresh() {
    const state = document.getElementById("refresh-state");
    try {
      const resp = await fetch(window.location.href, { headers: { Accept: "text/html" }, cache: "no-store" });
      const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
      const main = doc.getElementById("content");
      if (!main) throw new Error("no content");
      document.getElementById("content").replaceWith(document.adoptNode(main));
      const generated = doc.getElementById("generated");
      if (generated) document.getElementById("generated").textContent = generated.textContent;
      if (state) state.textContent = "";
      draw();
      showSession();
    } catch (_) {
      if (state) state.textContent = "(refresh failed; retrying)";
    }
  }

  document.addEventListener("click", (event) => {
    const button = event.target instanceof Element ? event.target.closest("button.act") : null;
    if (button) {
      act(button);
      return;
    }
    const spark = event.target instanceof Element ? event.target.closest("svg.spark") : null;
    const row = spark ? spark.closest("tr.pipeline") : null;
    if (!row) return;
    selected = row.getAttribute("data-id");
    draw();
  });

  document.addEventListener("DOMContentLoaded", () => {
    draw();
    document.getElementById("signin-open").addEventListener("click", () => {
      const form = document.getElementById("signin");
      form.hidden = false;
      document.getElementById("signin-token").focus();
    });
    document.getElementById("signout").addEventListener("click", () => {
      signIn(null);
      say("", false);
    });
    document.getElementById("signin").addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = document.getElementById("signin-token");
      const who = await signIn(input.value.trim());
      input.value = "";
      say(who ? "" : "That token was not accepted.", !who);
    });
    const kept = sessionStorage.getItem(TOKEN_KEY);
    if (kept) signIn(kept);
    const every = Number(document.body.getAttribute("data-refresh")) || 15;
    window.setInterval(refresh, every * 1000);
  });
})();
