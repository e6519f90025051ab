// Live viewer: WHEP playback of one live session, its state from the events channel, and a visible
// "link lost since N s" instead of a silently frozen picture.
"use strict";
(() => {
  const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
  const sessionId = meta("live-session");
  const csrf = meta("csrf-token");
  const $ = (id) => document.getElementById(id);
  const video = $("live-video");
  const STALE_AFTER_MS = 2000;
  // Texts from the one catalogue (i18n.js): English msgids, the page's language from the catalogue.
  const {t: T, label: codeLabel, problem} = window.TemoinI18n;
  const live = window.temoinLive = {
    sessionId, resource: null, state: null, connection: "new",
    stats: {framesDecoded: 0, audioPackets: 0, audioSamples: 0, audioBytes: 0},
    lastProgress: null, serverSilentSince: null, lostForS: 0, events: [],
  };
  const headers = (extra) => Object.assign({"X-CSRF-Token": csrf}, extra || {});

  function showSession(s) {
    if (!s || s.id !== sessionId) return;
    live.state = s.state;
    $("live-state").textContent = codeLabel("live_state", s.state);
    $("live-agent").textContent = s.agent || s.device_id;
    $("live-reason").textContent = s.reason === "threat" ? T("Threat to safety") : s.reason;
    if (s.position) showPosition(s.position);
    const at = s.acknowledged_at && new Date(s.acknowledged_at).toLocaleTimeString(window.TemoinI18n.lang === "en" ? "en-GB" : "fr-FR", {timeZone: "Europe/Paris"});
    $("live-acked").textContent = s.acknowledged_by ? T("{who} at {time}", {who: s.acknowledged_by, time: at}) : "—";
    $("live-ack").disabled = !!s.acknowledged_at || s.state === "ended";
    $("live-reinforce").disabled = !s.acknowledged_at || s.state === "ended";
    if (s.state === "ended") setStatus(T("Transmission ended"));
  }
  function showPosition(p) {
    $("live-position").textContent = `${p.lat.toFixed(5)}, ${p.lon.toFixed(5)}` + (p.accuracy_m ? ` (± ${Math.round(p.accuracy_m)} m)` : "");
  }
  function setStatus(text) { $("live-status").textContent = text; }

  async function waitGathering(pc) {
    if (pc.iceGatheringState === "complete") return;
    await new Promise((resolve) => {
      const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, 2000);  // host candidates are enough on a LAN; do not wait for slow servers
    });
  }

  async function watch() {
    const pc = live.pc = new RTCPeerConnection();
    pc.addTransceiver("video", {direction: "recvonly"});
    pc.addTransceiver("audio", {direction: "recvonly"});
    const stream = new MediaStream();
    video.srcObject = stream;
    pc.ontrack = (e) => { stream.addTrack(e.track); };
    pc.onconnectionstatechange = () => { live.connection = pc.connectionState; };
    await pc.setLocalDescription(await pc.createOffer());
    await waitGathering(pc);
    const r = await fetch(`/api/v1/live/whep/${encodeURIComponent(sessionId)}`, {
      method: "POST", body: pc.localDescription.sdp, headers: headers({"Content-Type": "application/sdp"}),
    });
    if (r.status !== 201) {
      const detail = await r.json().then((j) => j.detail).catch(() => r.statusText);
      setStatus(problem(r.status, detail));
      live.error = r.status;
      return;
    }
    live.resource = r.headers.get("Location");
    await pc.setRemoteDescription({type: "answer", sdp: await r.text()});
    setStatus(T("Connecting to the stream…"));
  }

  async function poll() {
    if (!live.pc) return;
    const report = await live.pc.getStats();
    const now = Date.now();
    report.forEach((s) => {
      if (s.type !== "inbound-rtp") return;
      if (s.kind === "video") {
        if ((s.framesDecoded || 0) > live.stats.framesDecoded) live.lastProgress = now;
        live.stats.framesDecoded = s.framesDecoded || 0;
        live.stats.frameWidth = s.frameWidth;
      } else if (s.kind === "audio") {
        live.stats.audioPackets = s.packetsReceived || 0;
        live.stats.audioSamples = s.totalSamplesReceived || 0;
        live.stats.audioBytes = s.bytesReceived || 0;
      }
    });
    // Lost: no new picture for a while here, or the server saw the camera fall silent.
    let lostMs = live.lastProgress === null ? 0 : now - live.lastProgress;
    if (live.serverSilentSince !== null) lostMs = Math.max(lostMs, now - live.serverSilentSince);
    const lost = live.state !== "ended" && live.lastProgress !== null && lostMs > STALE_AFTER_MS;
    live.lostForS = lost ? Math.floor(lostMs / 1000) : 0;
    $("live-lost").hidden = !lost;
    $("live-frame").classList.toggle("stale", lost);
    $("live-lost-s").textContent = String(live.lostForS);
    if (!lost && live.lastProgress !== null && live.state !== "ended") setStatus(T("Live"));
  }

  function listen() {
    const es = live.eventSource = new EventSource("/api/v1/live/events");
    es.addEventListener("snapshot", (e) => {
      for (const s of JSON.parse(e.data).sessions) showSession(s);
    });
    for (const type of ["alert", "session"]) {
      es.addEventListener(type, (e) => { const d = JSON.parse(e.data); live.events.push(type); showSession(d); });
    }
    es.addEventListener("position", (e) => {
      const d = JSON.parse(e.data);
      if (d.id === sessionId) showPosition(d.position);
    });
    es.addEventListener("stream", (e) => {
      const d = JSON.parse(e.data);
      if (d.id !== sessionId) return;
      live.events.push(`stream:${d.link || (d.publishing ? "up" : "down")}`);
      if (d.link === "lost" && typeof d.silent_s === "number") live.serverSilentSince = Date.now() - d.silent_s * 1000;
      else if (d.link === "live") live.serverSilentSince = null;
    });
  }

  async function post(path) {
    const r = await fetch(`/api/v1/live/sessions/${encodeURIComponent(sessionId)}/${path}`,
                          {method: "POST", headers: headers()});
    if (r.ok) showSession(await r.json());
    else setStatus(problem(r.status, await r.json().then((j) => j.detail).catch(() => "")));
  }
  $("live-ack").addEventListener("click", () => post("ack"));
  $("live-reinforce").addEventListener("click", () => post("reinforcements"));
  $("live-sound").addEventListener("click", () => { video.muted = false; video.play().catch(() => {}); });
  window.addEventListener("pagehide", () => {
    if (live.resource) fetch(live.resource, {method: "DELETE", headers: headers(), keepalive: true});
  });

  fetch(`/api/v1/live/sessions/${encodeURIComponent(sessionId)}`).then((r) => r.json()).then(showSession);
  listen();
  watch().catch((err) => { setStatus(T("{title}: {detail}", {title: T("Error"), detail: String(err)})); live.error = String(err); });
  setInterval(() => { poll().catch(() => {}); }, 500);
})();
