// The review pages: search on a map (draw an area with plain mouse events), the recording page (the GPS
// track kept in step with the video, one-click tags, holds, integrity re-check, extraction).
(function () {
  "use strict";

  const root = document.getElementById("review");
  const dataEl = document.getElementById("review-data");
  if (!root || !dataEl) return;
  const data = JSON.parse(dataEl.textContent);
  const csrf = root.dataset.csrf || "";
  const RED = "#c8102e", INK = "#1d2433", BLUE = "#1f5fbf";
  // Agent and camera names go into Leaflet tooltips as text, never as HTML.
  const asText = (s) => { const el = document.createElement("span"); el.textContent = String(s == null ? "" : s); return el; };

  // --- helpers -------------------------------------------------------------------------------------

  async function api(method, url, body) {
    const headers = {Accept: "application/json", "X-CSRF-Token": csrf};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(url, {method, credentials: "same-origin", headers,
                                   body: body === undefined ? undefined : JSON.stringify(body)});
    } catch (err) {
      return {status: 0, ok: false, body: null};
    }
    let payload = null;
    try { payload = await response.json(); } catch (err) { /* not JSON */ }
    return {status: response.status, ok: response.ok, body: payload};
  }

  function detail(res, el) {
    if (res.status === 0) return el.dataset.network;
    const d = res.body && res.body.detail;
    let text = "HTTP " + res.status;
    if (typeof d === "string") text = d;
    else if (Array.isArray(d)) text = d.map(e => (e.loc || []).slice(1).join(".") + " : " + e.msg).join(" ; ");
    // The kind of problem in the page's language (Session expirée, Accès refusé...), then the server's detail.
    if (window.TemoinI18n) return window.TemoinI18n.problem(res.status, text);
    return (el.dataset.failed || "") + " : " + text;
  }

  function say(el, text, isError) {
    if (!el) return;
    el.textContent = text;
    el.classList.toggle("error", !!isError);
    el.classList.toggle("ok", !isError);
  }

  const paris = new Intl.DateTimeFormat(data.lang === "en" ? "en-GB" : "fr-FR", {
    timeZone: "Europe/Paris", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit"});
  const when = seconds => paris.format(new Date(seconds * 1000));

  // --- the search page -----------------------------------------------------------------------------

  function searchPage() {
    const el = document.getElementById("search-map");
    const map = TemoinMap.create(el, {fit: false});
    const areaInput = document.getElementById("area");
    const hint = document.getElementById("draw-hint");
    const rectBtn = document.getElementById("draw-rectangle");
    const polyBtn = document.getElementById("draw-polygon");
    const finishBtn = document.getElementById("finish-polygon");
    const areaStyle = {color: RED, weight: 2, fillOpacity: 0.08, interactive: false};
    let areaLayer = null, mode = null, start = null, temp = null, vertices = [];

    // An area shows where recordings were made (R241-10): like playback, the search then asks for the motive.
    const searchForm = document.getElementById("search-form");
    const motiveCode = searchForm.querySelector("[name=motive_code]");
    const motiveText = searchForm.querySelector("[name=motive_text]");
    function askMotive() {
      const need = areaInput.value.trim() !== "";
      motiveCode.required = need; motiveText.required = need; motiveText.minLength = need ? 3 : 0;
    }
    areaInput.addEventListener("input", askMotive);

    function setArea(latlngs, write) {
      if (areaLayer) areaLayer.remove();
      areaLayer = latlngs && latlngs.length >= 3 ? L.polygon(latlngs, areaStyle).addTo(map) : null;
      if (write) {
        areaInput.value = areaLayer
          ? latlngs.map(p => L.latLng(p)).map(p => p.lat.toFixed(6) + "," + p.lng.toFixed(6)).join(";") : "";
      }
      askMotive();
    }

    function stopDrawing() {
      mode = null; start = null; vertices = [];
      if (temp) { temp.remove(); temp = null; }
      map.dragging.enable(); map.doubleClickZoom.enable();
      el.classList.remove("drawing");
      rectBtn.setAttribute("aria-pressed", "false"); polyBtn.setAttribute("aria-pressed", "false");
      finishBtn.hidden = true; hint.textContent = "";
    }

    function startDrawing(kind) {
      stopDrawing();
      mode = kind;
      map.dragging.disable(); map.doubleClickZoom.disable();
      el.classList.add("drawing");
      (kind === "rectangle" ? rectBtn : polyBtn).setAttribute("aria-pressed", "true");
      finishBtn.hidden = kind !== "polygon";
      hint.textContent = hint.dataset[kind];
    }

    function finishPolygon() {
      const corners = vertices.slice();
      stopDrawing();
      if (corners.length >= 3) setArea(corners, true);
    }

    rectBtn.addEventListener("click", () => (mode === "rectangle" ? stopDrawing() : startDrawing("rectangle")));
    polyBtn.addEventListener("click", () => (mode === "polygon" ? stopDrawing() : startDrawing("polygon")));
    finishBtn.addEventListener("click", finishPolygon);
    document.getElementById("clear-area").addEventListener("click", () => { stopDrawing(); setArea(null, true); });

    map.on("mousedown", e => {
      if (mode !== "rectangle") return;
      start = e.latlng;
      temp = L.rectangle(L.latLngBounds(start, start), areaStyle).addTo(map);
    });
    map.on("mousemove", e => {
      if (mode === "rectangle" && start && temp) temp.setBounds(L.latLngBounds(start, e.latlng));
      if (mode === "polygon" && temp && vertices.length) temp.setLatLngs([...vertices, e.latlng]);
    });
    map.on("mouseup", e => {
      if (mode !== "rectangle" || !start) return;
      const b = L.latLngBounds(start, e.latlng);
      stopDrawing();
      if (b.getNorth() === b.getSouth() || b.getEast() === b.getWest()) return;  // a click, not a drag
      setArea([[b.getSouth(), b.getWest()], [b.getNorth(), b.getWest()], [b.getNorth(), b.getEast()],
               [b.getSouth(), b.getEast()]], true);
    });
    map.on("click", e => {
      if (mode !== "polygon") return;
      const last = vertices[vertices.length - 1];
      if (last && map.latLngToContainerPoint(last).distanceTo(map.latLngToContainerPoint(e.latlng)) < 4) return;
      vertices.push(e.latlng);
      if (!temp) temp = L.polyline(vertices, {color: RED, weight: 2, dashArray: "4 4", interactive: false}).addTo(map);
      else temp.setLatLngs(vertices);
    });
    map.on("dblclick", () => { if (mode === "polygon") finishPolygon(); });
    document.addEventListener("keydown", e => { if (e.key === "Escape" && mode) stopDrawing(); });

    if (data.area) setArea(data.area, false);
    const drawn = L.featureGroup().addTo(map);
    (data.results || []).forEach(r => {
      if (!r.points || !r.points.length) return;
      const open = () => { window.location.href = "/recordings/" + encodeURIComponent(r.id); };
      const label = r.started + " · " + r.agent + " · " + r.camera;
      L.polyline(r.points, {color: BLUE, weight: 4, opacity: 0.85}).bindTooltip(asText(label)).on("click", open).addTo(drawn);
      L.circleMarker(r.points[0], {radius: 6, color: INK, weight: 2, fillColor: "#fff", fillOpacity: 1})
        .bindTooltip(asText(label)).on("click", open).addTo(drawn);
    });
    map.basemapReady.then(territory => {
      const bounds = drawn.getLayers().length ? drawn.getBounds() : territory;
      if (areaLayer && bounds) bounds.extend(areaLayer.getBounds());
      if (bounds) map.fitBounds(bounds, {padding: [20, 20], maxZoom: 16});
    });

    const all = document.getElementById("select-all");
    const boxes = () => Array.from(document.querySelectorAll("input[name=recording_ids]"));
    if (all) all.addEventListener("change", () => boxes().forEach(b => { b.checked = all.checked; }));
    const bulk = document.getElementById("bulk-hold");
    if (bulk) bulk.addEventListener("submit", async e => {
      e.preventDefault();
      const status = bulk.querySelector(".status");
      const ids = boxes().filter(b => b.checked).map(b => b.value);
      if (!ids.length) { say(status, status.dataset.none, true); return; }
      const res = await api("POST", "/api/v1/recordings/holds", {
        recording_ids: ids, procedure: bulk.elements.procedure.value, reference: bulk.elements.reference.value});
      if (!res.ok) { say(status, detail(res, status), true); return; }
      say(status, status.dataset.done.replace("{n}", res.body.recording_ids.length), false);
      res.body.recording_ids.forEach(id => {
        const row = document.querySelector('tr[data-recording="' + CSS.escape(id) + '"]');
        if (!row) return;
        const flags = row.children[row.children.length - 2];
        if (!flags.querySelector(".hold")) {
          const flag = document.createElement("span");
          flag.className = "flag hold";
          flag.textContent = root.dataset.onHold || "⚖";
          flags.prepend(flag);
        }
        row.querySelector("input[name=recording_ids]").checked = false;
      });
    });
    window.temoinReview = {map, setArea};
  }

  // --- the recording page --------------------------------------------------------------------------

  function recordingPage() {
    const id = root.dataset.recording;
    const base = "/api/v1/recordings/" + encodeURIComponent(id);
    const play = data.play;
    const segs = play.segments, track = play.track;  // track: [epoch s, lat, lon]
    const el = document.getElementById("recording-map");
    const map = TemoinMap.create(el, {fit: !track.length});
    const player = document.getElementById("player");
    const timeOut = document.getElementById("video-time");
    const lostOut = document.getElementById("lost-playback");
    // Segments lost at the camera have no URL: playback goes from one stored segment to the next.
    const nextStored = from => { for (let j = from; j < segs.length; j++) if (!segs[j].lost) return j; return -1; };
    const lastStored = before => { for (let j = before; j >= 0; j--) if (!segs[j].lost) return j; return -1; };
    let marker = null, current = Math.max(0, nextStored(0)), pendingSeek = null;

    if (track.length) {
      const points = track.map(f => [f[1], f[2]]);
      const line = L.polyline(points, {color: BLUE, weight: 5, opacity: 0.9, interactive: false}).addTo(map);
      L.circleMarker(points[0], {radius: 6, color: INK, weight: 2, fillColor: "#fff", fillOpacity: 1,
                                 interactive: false}).addTo(map);
      marker = L.circleMarker(points[0], {radius: 9, color: "#fff", weight: 3, fillColor: RED, fillOpacity: 1,
                                          interactive: false}).addTo(map);
      map.fitBounds(line.getBounds(), {padding: [30, 30], maxZoom: 19});
      // A click on (or within a finger's width of) the track seeks the video to that moment.
      map.on("click", e => {
        const i = nearestFix(e.latlng);
        const near = map.latLngToContainerPoint(L.latLng(track[i][1], track[i][2])).distanceTo(e.containerPoint);
        if (near <= 24) seekTo(track[i][0]);
      });
      el.classList.add("seekable");
      showMarker(track[0][0]);
    }

    function positionAt(t) {
      if (t <= track[0][0]) return [track[0][1], track[0][2]];
      let lo = 0, hi = track.length - 1;
      if (t >= track[hi][0]) return [track[hi][1], track[hi][2]];
      while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (track[mid][0] <= t) lo = mid; else hi = mid; }
      const a = track[lo], b = track[hi], k = (t - a[0]) / ((b[0] - a[0]) || 1);
      return [a[1] + (b[1] - a[1]) * k, a[2] + (b[2] - a[2]) * k];
    }

    function nearestFix(latlng) {
      let best = 0, bestD = Infinity;
      track.forEach((f, i) => {
        const d = latlng.distanceTo(L.latLng(f[1], f[2]));
        if (d < bestD) { bestD = d; best = i; }
      });
      return best;
    }

    function showMarker(t) {
      if (!marker) return;
      const p = positionAt(t);
      marker.setLatLng(p);
      el.dataset.markerLat = p[0].toFixed(7);
      el.dataset.markerLon = p[1].toFixed(7);
      const placeOut = document.getElementById("marker-place");  // the marker's place in words (map.js)
      if (placeOut) TemoinMap.showPlace(placeOut, p[0], p[1]);
      el.dataset.videoTime = t.toFixed(2);
    }

    function absTime() { return segs[current].start + (player ? player.currentTime : 0); }

    function sayLost(i) {
      if (!lostOut) return;
      const s = segs[i];
      lostOut.textContent = lostOut.dataset.skipped.replace("{index}", s.index)
        .replace("{range}", when(s.start) + " – " + when(s.start + s.duration));
      lostOut.dataset.segment = String(s.index);
    }

    function load(i, offset, andPlay = true) {
      if (segs[i].lost) {  // never asked for: the vault does not hold it
        sayLost(i);
        const j = nextStored(i + 1);
        if (j < 0) return;
        i = j; offset = 0;
      }
      current = i;
      pendingSeek = offset || null;
      player.autoplay = andPlay;  // the attribute would start a paused player again on the new source
      player.src = player.dataset.segments ? JSON.parse(player.dataset.segments)[i] : player.src;
      if (!andPlay) return;  // a seek while paused stays paused, on the sought picture
      const started = player.play();
      if (started && started.catch) started.catch(() => {});
    }

    function seekTo(t) {
      if (!player) { showMarker(t); return; }  // no consultation yet: the marker only
      const playing = !player.paused;
      let i = segs.findIndex(s => t >= s.start && t < s.start + s.duration);
      if (i < 0) i = t < segs[0].start ? 0 : segs.length - 1;
      if (segs[i].lost) {  // a moment inside a lost segment: say so, and play from the next stored one
        sayLost(i);
        const j = nextStored(i + 1) >= 0 ? nextStored(i + 1) : lastStored(i - 1);
        load(j, 0, playing);
        showMarker(segs[j].start);
        return;
      }
      const offset = Math.max(0, Math.min(t - segs[i].start, segs[i].duration - 0.05));
      if (i === current && player.readyState >= 1) player.currentTime = offset;
      else load(i, offset, playing);
      showMarker(segs[i].start + offset);
    }

    // One timeline for the recording: the bar spans every segment (lost ones drawn as gaps), a click or drag
    // anywhere seeks through seekTo, which loads the right segment (same grant, same journaled viewing).
    const t0 = play.start;
    const span = Math.max(0.1, ...segs.map(s => s.start + s.duration)) - t0;
    const bar = document.getElementById("timeline-bar");
    const clock = s => {
      s = Math.max(0, Math.floor(s + 1e-6));
      const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, sec = String(s % 60).padStart(2, "0");
      return h ? h + ":" + String(m).padStart(2, "0") + ":" + sec : m + ":" + sec;
    };
    function showTimeline(t) {
      if (!bar) return;
      const at = Math.max(0, Math.min(span, t - t0)), pct = (100 * at / span) + "%";
      document.getElementById("timeline-done").style.width = pct;
      document.getElementById("timeline-head").style.left = pct;
      document.getElementById("timeline-time").value = clock(at) + " / " + clock(span);
      bar.setAttribute("aria-valuenow", at.toFixed(1));
      bar.setAttribute("aria-valuetext", clock(at) + " / " + clock(span));
    }
    function timeline() {
      const box = document.getElementById("timeline");
      if (!bar) return;
      bar.setAttribute("aria-valuemax", span.toFixed(1));
      segs.filter(s => s.lost).forEach(s => {
        const gap = document.createElement("div");
        gap.className = "timeline-gap";
        gap.dataset.index = String(s.index);
        gap.style.left = (100 * (s.start - t0) / span) + "%";
        gap.style.width = (100 * s.duration / span) + "%";
        gap.title = box.dataset.lost.replace("{index}", s.index) + " (" + when(s.start) + " – " + when(s.start + s.duration) + ")";
        bar.insertBefore(gap, bar.firstChild);
      });
      const seekAt = x => {
        const r = bar.getBoundingClientRect();
        seekTo(t0 + span * Math.max(0, Math.min(1, (x - r.left) / r.width)));
      };
      let dragging = false;
      bar.addEventListener("pointerdown", e => { dragging = true; bar.setPointerCapture(e.pointerId); seekAt(e.clientX); });
      bar.addEventListener("pointermove", e => { if (dragging) seekAt(e.clientX); });
      bar.addEventListener("pointerup", () => { dragging = false; });
      bar.addEventListener("keydown", e => {
        const step = {ArrowLeft: -5, ArrowRight: 5, Home: -Infinity, End: Infinity}[e.key];
        if (step === undefined) return;
        e.preventDefault();
        seekTo(Math.max(t0, Math.min(t0 + span - 0.05, absTime() + step)));
      });
      const playBtn = document.getElementById("timeline-play"), sound = document.getElementById("timeline-sound");
      const showPlaying = () => {
        const label = player.paused ? box.dataset.play : box.dataset.pause;
        playBtn.textContent = label;
      };
      playBtn.addEventListener("click", () => {
        if (player.paused) { const p = player.play(); if (p && p.catch) p.catch(() => {}); } else player.pause();
      });
      ["play", "pause", "playing"].forEach(ev => player.addEventListener(ev, showPlaying));
      sound.addEventListener("click", () => {
        player.muted = !player.muted;
        const label = player.muted ? box.dataset.soundOn : box.dataset.soundOff;
        sound.textContent = label;
        sound.setAttribute("aria-pressed", String(!player.muted));
      });
      showPlaying();
      showTimeline(absTime());
    }

    if (player) {
      const urls = JSON.parse(player.dataset.segments);
      // Each segment is a standalone MP4: play them one after the other.
      player.addEventListener("ended", () => { if (current + 1 < urls.length) load(current + 1, 0); });
      // Nothing to show for a lost segment: its time range stays on the page (#lost-segments).
      // A paused player may know too little of a new segment at loadedmetadata for the seek to hold (it lands
      // on 0): try again once its data is there, a few times at most.
      let seekTries = 0;
      const applySeek = e => {
        if (pendingSeek === null) return;
        if (e.type === "loadedmetadata") seekTries = 0;
        if (Math.abs(player.currentTime - pendingSeek) < 0.05 || seekTries++ > 3) { pendingSeek = null; return; }
        player.currentTime = pendingSeek;
      };
      ["loadedmetadata", "loadeddata", "seeked"].forEach(ev => player.addEventListener(ev, applySeek));
      const update = () => {
        const t = absTime();
        showMarker(t);
        if (timeOut) timeOut.value = when(t);
        showTimeline(t);
      };
      ["timeupdate", "seeked", "loadeddata"].forEach(ev => player.addEventListener(ev, update));
      const frame = () => { if (!player.paused) update(); requestAnimationFrame(frame); };
      requestAnimationFrame(frame);
      timeline();
      document.querySelectorAll(".use-current").forEach(b => b.addEventListener("click", () => {
        const input = document.querySelector("#extract-form input[name=" + b.dataset.target + "]");
        input.value = Math.max(0, absTime() - play.start).toFixed(1);
        document.querySelector("#extract-form input[name=trim]").checked = true;
      }));
    }

    // Tags: one click adds or removes a category.
    const chips = document.getElementById("chips");
    const tagStatus = document.getElementById("tags-status");
    async function saveTags(next) {
      const res = await api("PUT", base + "/categories", {categories: next});
      if (!res.ok) { say(tagStatus, detail(res, tagStatus), true); return false; }
      const saved = new Set(res.body.categories);
      saved.forEach(c => {
        if (!chips.querySelector('[data-category="' + CSS.escape(c) + '"]')) {
          const b = document.createElement("button");
          b.type = "button"; b.className = "chip"; b.dataset.category = c; b.textContent = c;
          chips.appendChild(b);
        }
      });
      chips.querySelectorAll(".chip").forEach(b => b.setAttribute("aria-pressed", String(saved.has(b.dataset.category))));
      say(tagStatus, "", false);
      return true;
    }
    const pressed = () => Array.from(chips.querySelectorAll('.chip[aria-pressed="true"]')).map(b => b.dataset.category);
    if (chips) {
      chips.addEventListener("click", e => {
        const chip = e.target.closest(".chip");
        if (!chip) return;
        const on = chip.getAttribute("aria-pressed") === "true";
        const next = pressed().filter(c => c !== chip.dataset.category);
        if (!on) next.push(chip.dataset.category);
        saveTags(next);
      });
      const add = document.getElementById("add-category");
      add.addEventListener("submit", async e => {
        e.preventDefault();
        const value = add.elements.category.value.trim();
        if (value && await saveTags([...pressed(), value])) add.reset();
      });
    }

    // Holds: place (procedure + reference), lift (reason).
    const holdForm = document.getElementById("hold-form");
    const liftForm = document.getElementById("lift-form");
    const holdMsg = document.getElementById("hold-msg");
    const holdStatus = document.getElementById("hold-status");
    if (holdForm) {
      holdForm.addEventListener("submit", async e => {
        e.preventDefault();
        const res = await api("POST", base + "/holds", {procedure: holdForm.elements.procedure.value,
                                                         reference: holdForm.elements.reference.value});
        if (!res.ok) { say(holdMsg, detail(res, holdMsg), true); return; }
        const label = holdMsg.dataset["procedure" + res.body.procedure[0].toUpperCase() + res.body.procedure.slice(1)];
        holdStatus.textContent = holdMsg.dataset.active + " : " + (label || res.body.procedure) + " · " + res.body.reference;
        holdStatus.className = "flag hold";
        holdForm.hidden = true; liftForm.hidden = false; holdForm.reset();
        say(holdMsg, holdMsg.dataset.placed, false);
      });
      liftForm.addEventListener("submit", async e => {
        e.preventDefault();
        const res = await api("POST", base + "/holds/lift", {reason: liftForm.elements.reason.value});
        if (!res.ok) { say(holdMsg, detail(res, holdMsg), true); return; }
        holdStatus.textContent = holdMsg.dataset.none;
        holdStatus.className = "";
        liftForm.hidden = true; holdForm.hidden = false; liftForm.reset();
        say(holdMsg, holdMsg.dataset.lifted, false);
      });
    }

    // Integrity: re-read and re-hash the stored copy on demand.
    const verify = document.getElementById("verify-now");
    if (verify) verify.addEventListener("click", async () => {
      const item = document.getElementById("integrity-full");
      const value = item.querySelector(".value");
      verify.disabled = true;
      const res = await api("POST", base + "/integrity");
      verify.disabled = false;
      if (!res.ok) { value.textContent = detail(res, verify); item.className = "error"; return; }
      const c = res.body;
      value.textContent = (c.ok ? verify.dataset.ok : verify.dataset.bad) + " · " + verify.dataset.checked + " "
        + when(Date.parse(c.at) / 1000) + " (" + c.by + ")"
        + ((c.lost_segments || []).length ? " · " + verify.dataset.lost + " : [" + c.lost_segments.join(", ") + "]" : "")
        + (c.problems.length ? " : " + c.problems.join(" ; ") : "");
      item.className = c.ok ? "ok" : "error";
    });

    // Extraction: asked as a background job (POST /api/v1/extractions/jobs), followed until its package is ready.
    const extract = document.getElementById("extract-form");
    if (extract) extract.addEventListener("submit", async e => {
      e.preventDefault();
      const f = extract.elements, msg = document.getElementById("extract-msg");
      const submit = extract.querySelector("button[type=submit]");
      const body = {recording_ids: [id], recipient_name: f.recipient_name.value, recipient_kind: f.recipient_kind.value,
                    procedure_type: f.procedure_type.value, reference: f.reference.value};
      if (f.trim.checked) body.trim = {recording_id: id, start_s: Number(f.start_s.value), end_s: Number(f.end_s.value)};
      const res = await api("POST", "/api/v1/extractions/jobs", body);
      if (!res.ok) { say(msg, detail(res, msg), true); return; }
      submit.disabled = true;
      const statusUrl = res.body.status_url;
      const cancel = document.createElement("button");
      cancel.type = "button"; cancel.textContent = msg.dataset.cancel;
      cancel.addEventListener("click", async () => {
        cancel.disabled = true;
        const r = await api("POST", statusUrl + "/cancel");
        if (!r.ok && r.status !== 409) { say(msg, detail(r, msg), true); cancel.disabled = false; }
      });
      let job = res.body;
      while (["queued", "running", "cancelling"].includes(job.state)) {
        const pct = job.total ? " " + Math.floor(100 * job.done / job.total) + " %" : "";
        say(msg, msg.dataset.progress + pct + " ", false);
        if (job.state !== "cancelling") msg.appendChild(cancel);
        await new Promise(resolve => setTimeout(resolve, 500));
        const r = await api("GET", statusUrl);
        if (!r.ok) { say(msg, detail(r, msg), true); submit.disabled = false; return; }
        job = r.body;
      }
      submit.disabled = false;
      if (job.state === "cancelled") { say(msg, msg.dataset.cancelled, false); return; }
      if (job.state !== "done" || !job.extraction) { say(msg, msg.dataset.failed + " : " + (job.error || ""), true); return; }
      say(msg, msg.dataset.done + " " + job.extraction.id + " ", false);
      const a = document.createElement("a");
      a.href = job.extraction.download_url; a.textContent = msg.dataset.download;
      msg.appendChild(a);
    });
    window.temoinReview = {map, marker: () => marker, seekTo, absTime: () => (player ? absTime() : null)};
  }

  if (root.dataset.page === "search") searchPage();
  else if (root.dataset.page === "recording") recordingPage();
})();
