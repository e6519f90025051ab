// The CSU dashboard. Everything the operator needs comes up by itself when an agent presses the live button:
// the alert (with sound, escalating if nobody acknowledges), the agent on the map, their live feed, the CCTV
// cameras that can see them (following them as they move), the PTZ cameras aimed at them, and the nearest
// agents to send. Data flows one way: the events channel and a few GETs feed `state`; render functions draw it.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  // Text from the server (camera, street and agent names) goes into the DOM as text, never as HTML: Leaflet's
  // tooltips and attributions take HTML strings, so they get an element whose textContent is the text.
  const asText = (s) => { const el = document.createElement("span"); el.textContent = String(s ?? ""); return el; };
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const settings = JSON.parse($("csu-settings").textContent);
  const lang = document.documentElement.lang === "en" ? "en" : "fr";
  const WALL_CCTV = 4;  // CCTV tiles shown beside the agent's feed, nearest first
  const STALE_MS = 2000;

  // The texts come from the one catalogue (web/locale/*.po, through i18n.js): English msgids here, French there.
  const {t: T, label: codeLabel} = window.TemoinI18n;
  const labels = (kind, codes) => Object.fromEntries(codes.map((c) => [c, codeLabel(kind, c)]));
  const TEXT = {csu: T("Supervision centre"), connecting: T("Connecting to the events channel…"),
    connected: T("Events channel connected"), interrupted: T("Events channel interrupted, reconnecting…"),
    patrol: codeLabel("agent_status", "patrol"), recording: codeLabel("agent_status", "recording"), live: codeLabel("agent_status", "live"),
    cctv: T("CCTV"), alert: T("Alert"), state: T("State"), requested_at: T("Requested at"), position: T("Position"),
    link: T("Link"), acked_by: T("Acknowledged by"), acknowledge: T("Acknowledge"), sound: T("Sound on"),
    aim_ptz: T("Aim the PTZ cameras"), end: T("End the transmission"), reinforcements: T("Reinforcements"),
    ack_first: T("Acknowledge to send reinforcements."), send: T("Send reinforcements"),
    timeline: T("Incident record"), sessions: T("Transmissions"), agent: T("Agent"), camera: T("Camera"),
    no_sessions: T("No live transmission."),
    wall_empty: T("No picture shown: an alert, or a click on a camera of the map, shows one here."), view: T("View"),
    show: T("Show"), close: T("Close"), no_candidates: T("No available agent nearby."),
    choose: T("Tick the agents to send."), lost_since: T("Link lost for {n} s"),
    waiting: T("Waiting for the stream"), frozen: T("Picture frozen for {n} s"), aimed: T("{n} PTZ camera(s) aimed"),
    aim_failed: T("{id}: {error}"), no_ptz: T("No PTZ camera in range."), sent: T("{n} reinforcement(s) sent"),
    threat: T("Threat to safety"), min: T("min"), reinforcing: T("Reinforcement"),
    states: labels("live_state", ["requested", "streaming", "acknowledged", "reinforcements_sent", "ended"]),
    orders: labels("order_state", ["sent", "acknowledged", "arrived", "cancelled"]),
    sound_off: T("Click to enable sound"), sound_on: T("Sound enabled"),
    sound_alarm: T("Alert in progress: click to enable sound"), expired: T("Session expired: sign in again"),
    expired_state: T("Session expired"),
    expired_help: T("Alerts, pictures and actions no longer reach this screen."), sign_in: T("Sign in again"),
    close_incident: T("Close the incident"), incident_closed: T("Incident closed"),
    confirm_close_incident: T("Close the incident? The reinforcements engaged will be recalled."),
    confirm_end: T("Close the transmission? The incident stays open: the reinforcements engaged keep going.")};
  const fmt = (text, values) => text.replace(/\{(\w+)\}/g, (_, k) => String(values[k]));
  // The page's own texts are rendered by the server in the visitor's language (csu.html): nothing to swap here.

  // --- state ---------------------------------------------------------------------------------------------
  const state = window.temoinCsu = {
    sessions: new Map(), agents: new Map(), cameras: new Map(), orders: new Map(), tiles: new Map(),
    focus: null, nearby: [], alerts: 0, beeps: 0, sounded: 0, escalated: false, timeline: [], candidates: [], aims: [],
    expired: false,
    shown: [],  // {id, at}: when each alert was on screen (Date.now()), for the end-to-end benchmark
    settings,
  };
  window.temoinDashboard = {sessions: state.sessions, get alerts() { return state.alerts; }};
  const locale = lang === "en" ? "en-GB" : "fr-FR";
  const time = (iso) => iso ? new Date(iso).toLocaleTimeString(locale, {timeZone: "Europe/Paris"}) : "";
  // A position in words (the nearest street, then the coordinates); drawn again once the street is known.
  const pos = (p) => p ? TemoinMap.placeText(p.lat, p.lon, () => { renderAlert(); renderTable(); })
    + (p.accuracy_m ? ` (± ${Math.round(p.accuracy_m)} m)` : "") : "—";
  const api = async (method, path, body) => {
    const init = {method, headers: {"X-CSRF-Token": csrf}};
    if (body !== undefined) { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
    const r = await fetch(path, init);
    if (r.status === 401) sessionExpired();
    const data = await r.json().catch(() => null);
    if (!r.ok) throw Object.assign(new Error((data && data.detail) || r.statusText), {status: r.status});
    return data;
  };
  const list = (data, key) => Array.isArray(data) ? data : (data && data[key]) || [];

  // --- an expired session says so ----------------------------------------------------------------------
  // Signed out elsewhere, revoked or timed out: nothing on this screen is live any more, so it blocks the page
  // with a way back in (to /live) rather than looking healthy.
  let es = null;
  function sessionExpired() {
    if (state.expired) return;
    state.expired = true;
    if (es) es.close();
    const status = $("live-connection");
    status.textContent = TEXT.expired_state;
    status.classList.add("expired");
    for (const t of state.tiles.values()) { t.lost.hidden = false; t.lost.textContent = TEXT.expired_state; }
    $("csu-expired").hidden = false;
    $("csu-expired-link").focus();
  }

  // --- map -----------------------------------------------------------------------------------------------
  const map = L.map("csu-map", {preferCanvas: true, zoomControl: true}).setView([46.6, 2.4], 6);
  state.map = map;
  const layers = {basemap: L.layerGroup().addTo(map), cctv: L.layerGroup().addTo(map),
                  agents: L.layerGroup().addTo(map), orders: L.layerGroup().addTo(map)};
  // One canvas for the CCTV cameras (drawn once), one for the agents (redrawn every second): an agent moving
  // must not redraw 2,000 camera wedges.
  map.createPane("cctv").style.zIndex = 410;
  map.createPane("agents").style.zIndex = 420;
  const cctvCanvas = L.canvas({pane: "cctv"}), agentCanvas = L.canvas({pane: "agents"});
  const COLOURS = {patrol: "#2563eb", recording: "#ea8a00", live: "#c8102e"};
  const agentMarkers = new Map();
  let alertMarker = null;

  async function loadBasemap() {
    // The same basemap as every map (map.js): tiles or the offline overlay with the street names, and its notice.
    const bounds = TemoinMap.drawBasemap(map, await api("GET", "/api/v1/map/basemap"), layers.basemap);
    if (bounds) map.fitBounds(bounds, {padding: [10, 10]});
  }

  // A point `m` metres from (lat, lon) on a compass bearing (a local flat approximation: fine within a few km).
  function offset(lat, lon, bearing, m) {
    const rad = bearing * Math.PI / 180;
    return [lat + (m * Math.cos(rad)) / 111320, lon + (m * Math.sin(rad)) / (111320 * Math.cos(lat * Math.PI / 180))];
  }
  function fovWedge(c) {
    const pts = [[c.lat, c.lon]];
    const from = c.heading_deg - c.fov_deg / 2;
    for (let i = 0; i <= 12; i++) pts.push(offset(c.lat, c.lon, from + (c.fov_deg * i) / 12, c.range_m));
    return pts;
  }
  async function loadCameras() {
    let fc;
    try { fc = await api("GET", "/api/v1/cctv/cameras"); } catch { return; }
    layers.cctv.clearLayers();
    state.cameras.clear();
    for (const f of (fc.features || [])) {
      const [lon, lat] = f.geometry.coordinates;
      const c = Object.assign({lat, lon}, f.properties);
      state.cameras.set(c.id, c);
      if (c.ptz) L.circle([lat, lon], {radius: c.range_m, color: "#475569", weight: 1, dashArray: "3 4", fill: false,
                                       interactive: false, renderer: cctvCanvas}).addTo(layers.cctv);
      else L.polygon(fovWedge(c), {color: "#475569", weight: 1, fillOpacity: 0.12, interactive: false,
                                   renderer: cctvCanvas}).addTo(layers.cctv);
      L.circleMarker([lat, lon], {radius: 5, color: "#fff", weight: 1, fillColor: "#475569", fillOpacity: 1,
                                  renderer: cctvCanvas})
        .bindTooltip(asText(`${c.name}${c.ptz ? " (PTZ)" : ""}`))
        .on("click", () => showCctv(c.id, {pinned: true}))
        .addTo(layers.cctv);
    }
  }

  function drawAgent(a) {
    if (!a.position) return;
    const ll = [a.position.lat, a.position.lon];
    let m = agentMarkers.get(a.device_id);
    const colour = COLOURS[a.status] || COLOURS.patrol;
    const label = `${a.name || a.agent || a.device_id} · ${TEXT[a.status] || a.status || ""}`;
    if (!m) {
      m = L.circleMarker(ll, {radius: 7, color: "#fff", weight: 2, fillColor: colour, fillOpacity: 1,
                              renderer: agentCanvas}).addTo(layers.agents);
      agentMarkers.set(a.device_id, m);
    } else {
      m.setLatLng(ll);
      if (m.options.fillColor !== colour) m.setStyle({fillColor: colour});
    }
    // Only what changed is touched: 500 agents report every second and the map must stay fluid.
    if (m.label !== label) { m.label = label; m.unbindTooltip().bindTooltip(asText(label)); }
  }

  async function loadAgents() {
    try {
      for (const a of list(await api("GET", "/api/v1/dispatch/agents"), "agents")) queueAgent(a);
    } catch { /* the dispatch service answers once cameras report; the events fill in */ }
  }
  function mergeAgent(a) {
    const merged = Object.assign(state.agents.get(a.device_id) || {}, a);
    state.agents.set(a.device_id, merged);
    return merged;
  }
  // Positions arrive one event per agent: they are drawn together, once per animation frame.
  const pendingAgents = new Map();
  let agentFrame = null;
  function queueAgent(a) {
    pendingAgents.set(a.device_id, mergeAgent(a));
    if (agentFrame === null) agentFrame = requestAnimationFrame(() => {
      agentFrame = null;
      for (const merged of pendingAgents.values()) drawAgent(merged);
      pendingAgents.clear();
      if (state.orders.size) renderOrders();
    });
  }

  // --- the video wall ------------------------------------------------------------------------------------
  function tile(key, label, kind) {
    let t = state.tiles.get(key);
    if (t) return t;
    const el = document.createElement("div");
    el.className = `csu-tile ${kind}`;
    el.dataset.tile = key;
    const video = document.createElement("video");
    video.muted = true; video.autoplay = true; video.playsInline = true;
    const head = document.createElement("div");
    head.className = "label";
    const name = document.createElement("span");
    name.textContent = label;
    const close = document.createElement("button");
    close.type = "button"; close.textContent = "×"; close.title = TEXT.close; close.setAttribute("aria-label", TEXT.close);
    close.addEventListener("click", () => removeTile(key));
    head.append(name, close);
    const lost = document.createElement("div");
    lost.className = "lost"; lost.hidden = true;
    el.append(video, head, lost);
    if (kind === "agent") $("csu-wall").prepend(el); else $("csu-wall").append(el);
    t = {key, kind, el, video, lost, player: null, pinned: false};
    state.tiles.set(key, t);
    $("csu-wall-empty").hidden = true;
    return t;
  }
  function removeTile(key) {
    const t = state.tiles.get(key);
    if (!t) return;
    if (t.player) t.player.close();
    t.el.remove();
    state.tiles.delete(key);
    $("csu-wall-empty").hidden = state.tiles.size > 0;
  }
  async function playInto(t, url, audio) {
    try {
      t.player = await TemoinWhep.play(url, t.video, {csrf, audio});
      if (t.player.error && t.player.error.startsWith("401")) { sessionExpired(); t.lost.hidden = false; t.lost.textContent = TEXT.expired_state; }
      else if (t.player.error) { t.lost.hidden = false; const [code, ...detail] = t.player.error.split(" "); t.lost.textContent = window.TemoinI18n.problem(code, detail.join(" ")); }
    } catch (err) {
      t.lost.hidden = false; t.lost.textContent = String(err);
    }
  }
  function showAgentFeed(s) {
    const key = `session:${s.id}`;
    if (state.tiles.has(key)) return state.tiles.get(key);
    const t = tile(key, `${s.agent || s.camera || s.device_id} · ${TEXT.live}`, "agent");
    t.session = s.id;
    playInto(t, `/api/v1/live/whep/${encodeURIComponent(s.id)}`, true);
    return t;
  }
  function showCctv(id, {pinned = false} = {}) {
    const key = `cctv:${id}`;
    const c = state.cameras.get(id) || {name: id};
    if (state.tiles.has(key)) { if (pinned) state.tiles.get(key).pinned = true; return; }
    const t = tile(key, `${c.name}${c.ptz ? " (PTZ)" : ""}`, "cctv");
    t.pinned = pinned;
    t.camera = id;
    const session = state.focus ? `?session_id=${encodeURIComponent(state.focus)}` : "";
    playInto(t, `/api/v1/cctv/cameras/${encodeURIComponent(id)}/whep${session}`, false);  // street cameras carry no sound
  }
  // A frozen picture is never shown as live: each tile says how long it has been without a new frame.
  setInterval(() => {
    const now = Date.now();
    for (const t of state.tiles.values()) {
      if (!t.player || t.player.error || state.expired) continue;
      const last = t.player.stats.lastProgress;
      const s = t.session ? state.sessions.get(t.session) : null;
      let silentMs = last === null ? 0 : now - last;
      if (s && s.link === "lost" && typeof s.silent_s === "number") silentMs = Math.max(silentMs, s.silent_s * 1000);
      const stale = last !== null && silentMs > STALE_MS && !(s && s.state === "ended");
      t.el.classList.toggle("stale", stale);
      t.lost.hidden = !(stale || last === null);
      t.lost.textContent = last === null ? TEXT.waiting
        : fmt(t.session ? TEXT.lost_since : TEXT.frozen, {n: Math.floor(silentMs / 1000)});
    }
  }, 500);

  // --- nearby CCTV, following the agent ------------------------------------------------------------------
  let nearbyBusy = false, nearbyAgain = false, nearbyAt = 0;
  async function followNearby() {
    const s = state.sessions.get(state.focus);
    if (!s || !s.position || s.state === "ended") return;
    if (nearbyBusy || Date.now() - nearbyAt < 2000) { nearbyAgain = true; return; }
    nearbyBusy = true; nearbyAt = Date.now();
    try {
      const found = list(await api("GET", `/api/v1/cctv/nearby?lat=${s.position.lat}&lon=${s.position.lon}`), "cameras");
      state.nearby = found.map((c) => c.id);
      const wanted = new Set(state.nearby.slice(0, WALL_CCTV));
      for (const t of [...state.tiles.values()]) {
        if (t.kind === "cctv" && !t.pinned && !wanted.has(t.camera)) removeTile(t.key);
      }
      for (const id of state.nearby.slice(0, WALL_CCTV)) showCctv(id);
    } catch { /* the registry may be empty */ } finally {
      nearbyBusy = false;
      if (nearbyAgain) { nearbyAgain = false; setTimeout(followNearby, 2000); }
    }
  }

  // --- the alert -----------------------------------------------------------------------------------------
  // Browsers start no audio before a gesture on the page: the context is made at load, the operator's first click
  // (anywhere, blocking nothing) resumes it, and until then the screen says so, loudly when an alert is waiting.
  let audio = null, escalation = null, repeat = null, unheard = false;
  function audioContext() {
    if (!audio) {
      try { audio = new AudioContext(); audio.onstatechange = renderSound; } catch { audio = null; }
    }
    return audio;
  }
  const soundArmed = () => !!audio && audio.state === "running";
  state.audioState = () => audio ? audio.state : "none";
  function renderSound() {
    const armed = soundArmed();
    const el = $("csu-sound-state");
    el.textContent = armed ? TEXT.sound_on : TEXT.sound_off;
    el.classList.toggle("armed", armed);
    const s = state.sessions.get(state.focus);
    const waiting = !!s && s.state !== "ended" && !s.acknowledged_at;
    $("csu-sound-alarm").hidden = armed || !waiting;
    if (armed && unheard) { unheard = false; if (waiting) beep(); }  // the alert missed: heard now
  }
  function armSound() {
    const ctx = audioContext();
    if (ctx && ctx.state !== "running") ctx.resume().then(renderSound, () => {});
  }
  document.addEventListener("click", armSound, true);
  document.addEventListener("keydown", armSound, true);
  audioContext();
  renderSound();
  function beep() {
    state.beeps += 1;
    if (!soundArmed()) { unheard = true; armSound(); renderSound(); return; }  // shown, heard at the first click
    state.sounded += 1;
    try {
      const t0 = audio.currentTime;
      for (const [at, f] of [[0, 880], [0.3, 660], [0.6, 880]]) {
        const o = audio.createOscillator(), g = audio.createGain();
        o.frequency.value = f; g.gain.value = 0.2;
        o.connect(g).connect(audio.destination);
        o.start(t0 + at); o.stop(t0 + at + 0.22);
      }
    } catch { /* no audio device: the panel still flashes */ }
  }
  function stopEscalation() {
    clearTimeout(escalation); clearInterval(repeat); escalation = repeat = null;
    state.escalated = false;
    $("csu-alert").classList.remove("escalated");
  }
  function armEscalation(s) {
    stopEscalation();
    if (s.acknowledged_at) return;
    const waited = Date.now() - new Date(s.requested_at).getTime();
    escalation = setTimeout(() => {
      const now = state.sessions.get(s.id);
      if (!now || now.acknowledged_at || now.state === "ended") return;
      state.escalated = true;
      $("csu-alert").classList.add("escalated");
      beep();
      repeat = setInterval(beep, 3000);
    }, Math.max(0, settings.alert_escalation_s * 1000 - waited));
  }

  function focusOn(id, {alert = false} = {}) {
    const s = state.sessions.get(id);
    if (!s) return;
    const changed = state.focus !== id;
    state.focus = id;
    $("csu-alert").hidden = false;
    if (changed) {
      message("");
      lastAim = null;
      for (const t of [...state.tiles.values()]) if (!t.pinned) removeTile(t.key);
      state.orders.clear(); layers.orders.clearLayers(); renderOrders();
      state.candidates = []; renderCandidates();
      armEscalation(s);
      if (alert) beep();
      if (s.position) map.setView([s.position.lat, s.position.lon], Math.max(map.getZoom(), 17));
      followWithPtz(s);
    }
    if (s.state !== "ended") showAgentFeed(s);
    renderAlert();
    followNearby();
    loadTimeline();
    if (s.acknowledged_at) loadCandidates();
  }

  function renderAlert() {
    const s = state.sessions.get(state.focus);
    if (!s) return;
    $("csu-alert-agent").textContent = s.agent || s.camera || s.device_id;
    $("csu-alert-state").textContent = s.incident_closed_at ? TEXT.incident_closed : (TEXT.states[s.state] || s.state);
    $("csu-alert-time").textContent = time(s.requested_at);
    $("csu-alert-position").textContent = pos(s.position);
    $("csu-alert-link").textContent = linkText(s);
    $("csu-alert-acked").textContent = s.acknowledged_by ? `${s.acknowledged_by} · ${time(s.acknowledged_at)}` : "—";
    $("csu-ack").disabled = !!s.acknowledged_at || s.state === "ended";
    $("csu-end").disabled = s.state === "ended";
    $("csu-close-incident").disabled = !!s.incident_closed_at;
    $("csu-alert").classList.toggle("acknowledged", !!s.acknowledged_at);
    $("csu-candidates-help").textContent = s.acknowledged_at ? (state.candidates.length ? TEXT.choose : TEXT.no_candidates) : TEXT.ack_first;
    if (s.acknowledged_at || s.state === "ended") stopEscalation();
    renderSound();
    if (s.position) {
      const ll = [s.position.lat, s.position.lon];
      if (!alertMarker) {
        alertMarker = L.marker(ll, {icon: L.divIcon({className: "csu-agent-marker live", iconSize: [22, 22],
          html: '<svg width="22" height="22" viewBox="0 0 22 22"><circle cx="11" cy="11" r="9" fill="#c8102e" stroke="#fff" stroke-width="3"/></svg>'}),
          zIndexOffset: 1000}).addTo(map);
      } else alertMarker.setLatLng(ll);
      alertMarker.bindTooltip(asText(`${s.agent || s.camera || s.device_id} · ${TEXT.alert}`));
    }
  }

  async function acknowledge(id) {
    try { merge(await api("POST", `/api/v1/live/sessions/${encodeURIComponent(id)}/ack`)); }
    catch (err) { message(window.TemoinI18n.problem(err.status, err.message)); }
  }
  function message(text) { $("csu-alert-message").textContent = text; }

  // With the tenant's automatic aiming, the PTZ cameras follow the agent too (re-aimed after 15 m).
  let lastAim = null;
  function followWithPtz(s) {
    if (!settings.ptz_auto_aim || !s.position || s.state === "ended") return;
    if (lastAim && L.latLng(lastAim).distanceTo([s.position.lat, s.position.lon]) < 15) return;
    aimPtz();
  }
  async function aimPtz() {
    if (!state.focus) return;
    const s = state.sessions.get(state.focus);
    if (s && s.position) lastAim = [s.position.lat, s.position.lon];
    try {
      const out = await api("POST", "/api/v1/cctv/aim-all", {session_id: state.focus});
      const results = list(out, "results");
      state.aims = results;
      const ok = results.filter((r) => !r.error);
      const failed = results.filter((r) => r.error).map((r) => fmt(TEXT.aim_failed, {id: r.camera_id, error: r.error}));
      message(results.length ? [fmt(TEXT.aimed, {n: ok.length}), ...failed].join(" · ") : TEXT.no_ptz);
      for (const r of ok) showCctv(r.camera_id);  // the aimed cameras belong on the wall
    } catch (err) { message(window.TemoinI18n.problem(err.status, err.message)); }
  }

  // --- reinforcements ------------------------------------------------------------------------------------
  async function loadCandidates() {
    const id = state.focus;
    try {
      state.candidates = list(await api("GET", `/api/v1/dispatch/sessions/${encodeURIComponent(id)}/candidates`), "candidates");
    } catch { state.candidates = []; }
    if (id === state.focus) renderCandidates();
  }
  function renderCandidates() {
    const ul = $("csu-candidates");
    const ticked = new Set([...ul.querySelectorAll("input:checked")].map((i) => i.value));
    ul.textContent = "";
    for (const c of state.candidates) {
      const li = document.createElement("li");
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox"; box.value = c.device_id; box.checked = ticked.has(c.device_id);
      box.addEventListener("change", () => { $("csu-send").disabled = !ul.querySelector("input:checked"); });
      const eta = Math.max(1, Math.round((c.eta_s || 0) / 60));
      label.append(box, ` ${c.name || c.agent || c.device_id} · ${Math.round(c.distance_m)} m · ${eta} ${TEXT.min}`);
      li.append(label);
      ul.append(li);
    }
    $("csu-send").disabled = !ul.querySelector("input:checked");
    const s = state.sessions.get(state.focus);
    if (s) $("csu-candidates-help").textContent = s.acknowledged_at ? (state.candidates.length ? TEXT.choose : TEXT.no_candidates) : TEXT.ack_first;
  }
  async function sendReinforcements() {
    const ids = [...$("csu-candidates").querySelectorAll("input:checked")].map((i) => i.value);
    if (!ids.length || !state.focus) return;
    $("csu-send").disabled = true;
    try {
      const out = await api("POST", `/api/v1/dispatch/sessions/${encodeURIComponent(state.focus)}/reinforcements`, {device_ids: ids});
      for (const o of list(out, "orders")) mergeOrder(o);
      message(fmt(TEXT.sent, {n: ids.length}));
      loadCandidates();
    } catch (err) { message(window.TemoinI18n.problem(err.status, err.message)); $("csu-send").disabled = false; }
  }
  function mergeOrder(o) {
    if (o.session_id && o.session_id !== state.focus) return;
    const id = o.order_id || o.id;
    state.orders.set(id, Object.assign(state.orders.get(id) || {}, o, {order_id: id}));
    renderOrders();
  }
  function renderOrders() {
    const ul = $("csu-orders");
    ul.textContent = "";
    layers.orders.clearLayers();
    for (const o of state.orders.values()) {
      const li = document.createElement("li");
      li.dataset.order = o.order_id;
      li.dataset.state = o.state;
      const a = state.agents.get(o.device_id);
      li.textContent = `${TEXT.reinforcing} ${(a && a.name) || o.agent || o.device_id} · ${TEXT.orders[o.state] || o.state}`;
      ul.append(li);
      // The map shows them converging: a line from each reinforcing agent to the target.
      if (a && a.position && o.target && o.state !== "cancelled") {
        L.polyline([[a.position.lat, a.position.lon], [o.target.lat, o.target.lon]],
                   {color: "#2563eb", weight: 2, dashArray: "6 6"}).addTo(layers.orders);
      }
    }
  }

  // --- incident record -----------------------------------------------------------------------------------
  let timelineTimer = null;
  function loadTimeline() {
    clearTimeout(timelineTimer);
    timelineTimer = setTimeout(async () => {
      const id = state.focus;
      if (!id) return;
      try {
        const out = await api("GET", `/api/v1/live/sessions/${encodeURIComponent(id)}/timeline`);
        if (id !== state.focus) return;
        state.timeline = out.entries;
        const ol = $("csu-timeline");
        ol.textContent = "";
        for (const e of out.entries) {
          const li = document.createElement("li");
          li.dataset.event = e.event;
          const t = document.createElement("time");
          t.dateTime = e.at; t.textContent = time(e.at);
          li.append(t, `${codeLabel("event", e.event)} · ${e.actor.name || e.actor.id}`);  // a sentence, not the code
          ol.append(li);
        }
      } catch { /* shown again at the next event */ }
    }, 300);
  }

  // --- the sessions table (also the video wall without an alert) -----------------------------------------
  const linkText = (s) => s.state === "ended" ? "—" : s.link === "lost" ? fmt(TEXT.lost_since, {n: Math.floor(s.silent_s || 0)})
    : s.link === "live" ? TEXT.live : TEXT.waiting;
  function renderTable() {
    const body = document.querySelector("#live-sessions tbody");
    body.textContent = "";
    const rows = [...state.sessions.values()].sort((a, b) => (b.requested_at || "").localeCompare(a.requested_at || ""));
    for (const s of rows) {
      const tr = document.createElement("tr");
      tr.dataset.session = s.id;
      tr.className = `state-${s.state}` + (s.link === "lost" ? " link-lost" : "");
      // The camera by the name people use (its label); its technical id as the tooltip.
      [s.agent || s.camera || s.device_id, s.camera || s.device_id, TEXT.states[s.state] || s.state, linkText(s),
       pos(s.position), time(s.requested_at)].forEach((text, i) => {
        const td = document.createElement("td");
        td.textContent = text;
        if (i === 1) { td.className = "camera"; td.title = s.device_id; }
        if (i === 3) td.className = "link";
        tr.append(td);
      });
      const actions = document.createElement("td");
      if (s.state === "ended" && !s.incident_closed_at) {  // the picture stopped, the incident goes on
        const show = document.createElement("button");
        show.type = "button"; show.className = "show"; show.textContent = TEXT.show;
        show.addEventListener("click", () => focusOn(s.id));
        actions.append(show);
      }
      if (s.state !== "ended") {
        const view = document.createElement("a");
        view.href = `/live/${encodeURIComponent(s.id)}`;
        view.textContent = TEXT.view;
        const show = document.createElement("button");
        show.type = "button"; show.className = "show"; show.textContent = TEXT.show;
        show.addEventListener("click", () => focusOn(s.id));
        const ack = document.createElement("button");
        ack.type = "button"; ack.className = "ack"; ack.textContent = TEXT.acknowledge;
        ack.disabled = !!s.acknowledged_at;
        ack.addEventListener("click", () => acknowledge(s.id));
        actions.append(view, " ", show, " ", ack);
      }
      tr.append(actions);
      body.append(tr);
    }
    $("live-empty").hidden = rows.some((s) => s.state !== "ended");
  }

  function merge(s) {
    const before = state.sessions.get(s.id);
    const wasAcked = before && before.acknowledged_at;
    const merged = Object.assign(before || {}, s);
    state.sessions.set(s.id, merged);
    renderTable();
    if (state.focus === s.id) {
      renderAlert();
      if (merged.acknowledged_at && !wasAcked) loadCandidates();
      if (merged.state === "ended") {
        for (const t of [...state.tiles.values()]) if (t.session === s.id) removeTile(t.key);
      }
    }
    return merged;
  }

  // --- the events channel --------------------------------------------------------------------------------
  es = new EventSource("/api/v1/live/events");
  es.onopen = () => { if (!state.expired) $("live-connection").textContent = TEXT.connected; };
  // EventSource hides the status of a refused reconnection: one API call tells an expired session (401) apart.
  es.onerror = () => {
    if (state.expired) return;
    $("live-connection").textContent = TEXT.interrupted;
    api("GET", "/api/v1/live/sessions").catch(() => {});
  };
  const on = (type, fn) => es.addEventListener(type, (e) => { try { fn(JSON.parse(e.data)); } catch (err) { console.error(err); } });
  on("snapshot", (d) => {
    for (const s of d.sessions) state.sessions.set(s.id, Object.assign(state.sessions.get(s.id) || {}, s));
    renderTable();
    if (!state.focus) {
      const open = d.sessions.find((s) => s.state !== "ended" && !s.acknowledged_at) || d.sessions.find((s) => s.state !== "ended")
        || d.sessions.find((s) => !s.incident_closed_at);
      if (open) focusOn(open.id);
    }
  });
  on("alert", (s) => {
    state.alerts += 1;
    merge(s);
    const current = state.sessions.get(state.focus);
    // A new alert takes the panel unless the operator is handling one not yet acknowledged.
    if (!current || current.state === "ended" || current.acknowledged_at) focusOn(s.id, {alert: true});
    else beep();
    requestAnimationFrame(() => state.shown.push({id: s.id, at: Date.now()}));  // painted with the next frame
  });
  on("session", (s) => { merge(s); if (s.id === state.focus) loadTimeline(); });
  on("position", (d) => {
    if (!state.sessions.has(d.id)) return;
    const s = merge({id: d.id, position: d.position});
    if (d.id === state.focus) { followNearby(); followWithPtz(s); }
  });
  on("stream", (d) => { if (state.sessions.has(d.id) && d.link) merge({id: d.id, link: d.link, silent_s: d.silent_s}); });
  on("agent", queueAgent);
  on("reinforcement", (o) => { mergeOrder(o); if (o.session_id === state.focus) loadTimeline(); });
  on("ptz", (d) => { if (d.session_id === state.focus) loadTimeline(); });
  on("cctv", (d) => { if (d.session_id === state.focus) loadTimeline(); });
  on("registry", async () => {  // cameras imported or withdrawn: redraw them, drop a withdrawn one from the wall
    await loadCameras();
    for (const t of [...state.tiles.values()]) if (t.kind === "cctv" && !state.cameras.has(t.camera)) removeTile(t.key);
    followNearby();
  });

  $("csu-ack").addEventListener("click", () => state.focus && acknowledge(state.focus));
  $("csu-sound").addEventListener("click", () => {
    for (const t of state.tiles.values()) if (t.kind === "agent") { t.video.muted = false; t.video.play().catch(() => {}); }
    state.sound = true;
  });
  $("csu-ptz").addEventListener("click", aimPtz);
  $("csu-send").addEventListener("click", sendReinforcements);
  $("csu-end").addEventListener("click", async () => {
    if (!state.focus || !window.confirm(TEXT.confirm_end)) return;
    try { merge(await api("POST", `/api/v1/live/sessions/${encodeURIComponent(state.focus)}/end`)); }
    catch (err) { message(window.TemoinI18n.problem(err.status, err.message)); }
  });
  $("csu-close-incident").addEventListener("click", async () => {
    if (!state.focus || !window.confirm(TEXT.confirm_close_incident)) return;
    try { merge(await api("POST", `/api/v1/live/sessions/${encodeURIComponent(state.focus)}/close`)); }
    catch (err) { message(window.TemoinI18n.problem(err.status, err.message)); }
  });
  window.addEventListener("pagehide", () => { for (const t of state.tiles.values()) if (t.player) t.player.close(true); });

  loadBasemap().catch(() => {}).then(loadCameras).then(loadAgents);
})();
