// A redacted copy for an access request: pick the requester's faces, draw regions by hand over a still of the
// original, produce the copy, watch it and approve or reject it. Every call goes to /api/v1/rights/copies/{id}.
(function () {
  "use strict";
  const root = document.getElementById("copy");
  if (!root) return;
  const id = root.dataset.copy;
  const api = "/api/v1/rights/copies/" + id;
  const duration = parseFloat(root.dataset.duration) || 0;
  const $ = (sel) => document.getElementById(sel);
  const keep = new Set();
  let regions = [];  // {mode: "add"|"remove", start_frame, end_frame, x, y, w, h}
  let fps = 0, frameShown = -1, drawn = null, facesLoaded = false, copyState = null, videoFor = null;

  async function call(method, path, body) {
    const headers = {Accept: "application/json", "X-CSRF-Token": root.dataset.csrf || ""};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let res;
    try {
      res = await fetch(api + path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body),
                                     credentials: "same-origin"});
    } catch (e) {
      throw new Error(root.dataset.network);
    }
    const data = await res.json().catch(() => ({}));
    if (!res.ok) {
      const detail = data.detail ? JSON.stringify(data.detail).replace(/^"|"$/g, "") : "";
      throw new Error(window.TemoinI18n ? window.TemoinI18n.problem(res.status, detail) : root.dataset.failed + " : " + (detail || res.status));
    }
    return data;
  }

  function say(message) { $("copy-error").textContent = message || ""; }

  function stateText(state) { return root.dataset["state" + state.replace(/(^|_)(\w)/g, (m, a, b) => b.toUpperCase())] || state; }

  function render(copy) {
    copyState = copy.state;
    const label = $("copy-state");
    label.dataset.state = copy.state;
    label.textContent = stateText(copy.state);
    const running = copy.state === "detecting" || copy.state === "redacting";
    const bar = $("copy-progress");
    bar.hidden = !running;
    bar.value = copy.progress || 0;
    $("cancel-step").hidden = !running;
    if (copy.state === "failed") say(copy.error);
    const editable = ["tracks_ready", "rejected", "to_review"].includes(copy.state);
    $("prepare").hidden = !editable;
    if (editable && !facesLoaded) {
      facesLoaded = true;
      (copy.keep_tracks || []).forEach((t) => keep.add(t));
      regions = (copy.add_regions || []).map((r) => Object.assign({mode: "add"}, r))
        .concat((copy.remove_regions || []).map((r) => Object.assign({mode: "remove"}, r)));
      listRegions();
      loadFaces().catch((e) => say(e.message));
    }
    const produced = ["to_review", "approved", "rejected"].includes(copy.state);
    $("review-copy").hidden = !produced;
    $("review-actions").hidden = copy.state !== "to_review";
    const flagged = (copy.tracks || []).reduce((n, t) => n + (t.review || []).length, 0);
    $("flagged-box").hidden = !flagged;
    $("flagged-count").textContent = flagged;
    if (produced && videoFor !== copy.produced_at) {
      videoFor = copy.produced_at;  // a copy produced again is watched again
      $("copy-video").src = api + "/video?v=" + encodeURIComponent(copy.produced_at || "");
    }
    $("reviewed").textContent = copy.review_reason ? copy.review_reason : "";
    $("download").hidden = !(copy.state === "approved" && root.dataset.canDeliver === "true");
    if (running) setTimeout(poll, 700);
  }

  async function poll() {
    try { render(await call("GET", "")); } catch (e) { say(e.message); setTimeout(poll, 2000); }
  }

  async function loadFaces() {
    const faces = await call("GET", "/faces");
    const box = $("faces");
    box.replaceChildren();
    if (!faces.length) { box.textContent = root.dataset.noFaces; return; }
    for (const face of faces) {
      const card = document.createElement("figure");
      card.className = "face";
      card.dataset.track = face.id;
      if (face.thumbnail) {
        const img = document.createElement("img");
        img.src = face.thumbnail; img.alt = "#" + face.id;
        card.append(img);
      }
      const caption = document.createElement("figcaption");
      caption.textContent = "#" + face.id + " · " + root.dataset.times.replace("{a}", face.start_s).replace("{b}", face.end_s);
      const label = document.createElement("label");
      label.className = "check";
      const box2 = document.createElement("input");
      box2.type = "checkbox"; box2.name = "keep"; box2.value = face.id; box2.checked = keep.has(face.id);
      box2.addEventListener("change", () => { if (box2.checked) keep.add(face.id); else keep.delete(face.id); });
      label.append(box2, " " + root.dataset.keep);
      caption.append(document.createElement("br"), label);
      card.append(caption);
      // Stretches where the detector was unsure: each can be hidden whole in one click.
      if ((face.review || []).length) {
        const flags = document.createElement("ul");
        flags.className = "flags";
        flags.append(root.dataset.flagged);
        for (const r of face.review) {
          const li = document.createElement("li");
          li.className = "flag " + r.why;
          li.append(r.start_s + "–" + r.end_s + " s · " + (root.dataset["why" + r.why[0].toUpperCase() + r.why.slice(1)] || r.why) + " ");
          const hide = document.createElement("button");
          hide.type = "button"; hide.className = "hide-stretch"; hide.textContent = root.dataset.flagHide;
          hide.addEventListener("click", () => {
            const [x, y, w, h] = r.box;
            regions.push({mode: "add", start_frame: r.start_frame, end_frame: r.end_frame, x, y, w, h});
            hide.disabled = true;
            listRegions();
            paint();
          });
          li.append(hide);
          flags.append(li);
        }
        card.append(flags);
      }
      box.append(card);
    }
  }

  // --- the still and the regions drawn over it ---

  async function showStill() {
    say("");
    const at = Math.max(0, parseFloat($("still-at").value) || 0);
    let res;
    try {
      res = await fetch(api + "/still?at=" + at, {credentials: "same-origin"});
    } catch (e) { say(root.dataset.network); return; }
    if (!res.ok) {
      const data = await res.json().catch(() => ({}));
      say(window.TemoinI18n ? window.TemoinI18n.problem(res.status, data.detail || "") : root.dataset.failed + " : " + (data.detail || res.status));
      return;
    }
    fps = parseFloat(res.headers.get("X-Frame-Rate")) || 25;
    frameShown = parseInt(res.headers.get("X-Frame-Index"), 10);
    const shownAt = parseFloat(res.headers.get("X-Frame-Time")) || at;
    const url = URL.createObjectURL(await res.blob());
    const img = $("still");
    img.onload = () => { URL.revokeObjectURL(url); $("still-box").hidden = false; fitCanvas(); };
    img.src = url;
    img.dataset.frame = String(frameShown);
    $("region-from").value = Math.max(0, shownAt - 1).toFixed(1);
    $("region-to").value = Math.min(duration, shownAt + 1).toFixed(1);
    drawn = null;
  }

  function scale() { const img = $("still"); return img.naturalWidth / (img.clientWidth || 1); }

  function fitCanvas() {
    const img = $("still"), canvas = $("still-draw");
    canvas.width = img.clientWidth; canvas.height = img.clientHeight;
    paint();
  }

  function paint() {
    const canvas = $("still-draw"), ctx = canvas.getContext("2d"), k = scale();
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.lineWidth = 2;
    for (const r of regions) {
      if (frameShown < r.start_frame || frameShown > r.end_frame) continue;
      ctx.strokeStyle = r.mode === "add" ? "#c8102e" : "#1b7a3a";
      ctx.fillStyle = r.mode === "add" ? "#c8102e55" : "#1b7a3a33";
      ctx.fillRect(r.x / k, r.y / k, r.w / k, r.h / k);
      ctx.strokeRect(r.x / k, r.y / k, r.w / k, r.h / k);
    }
    if (drawn) {
      ctx.setLineDash([6, 4]); ctx.strokeStyle = "#ffd400";
      ctx.strokeRect(drawn.x, drawn.y, drawn.w, drawn.h);
      ctx.setLineDash([]);
    }
  }

  function pointer() {
    const canvas = $("still-draw");
    let start = null;
    const at = (e) => { const b = canvas.getBoundingClientRect(); return [e.clientX - b.left, e.clientY - b.top]; };
    canvas.addEventListener("pointerdown", (e) => { start = at(e); canvas.setPointerCapture(e.pointerId); });
    canvas.addEventListener("pointermove", (e) => {
      if (!start) return;
      const [x, y] = at(e);
      drawn = {x: Math.min(x, start[0]), y: Math.min(y, start[1]), w: Math.abs(x - start[0]), h: Math.abs(y - start[1])};
      paint();
    });
    canvas.addEventListener("pointerup", () => { start = null; if (drawn && (drawn.w < 3 || drawn.h < 3)) drawn = null; paint(); });
    window.addEventListener("resize", () => { if (!$("still-box").hidden) fitCanvas(); });
  }

  function addRegion() {
    if (!drawn || !fps) { say(root.dataset.drawFirst); return; }
    say("");
    const k = scale(), img = $("still");
    const from = Math.max(0, parseFloat($("region-from").value) || 0);
    const to = Math.max(from, parseFloat($("region-to").value) || from);
    const x = Math.max(0, Math.round(drawn.x * k)), y = Math.max(0, Math.round(drawn.y * k));
    regions.push({
      mode: $("region-mode").value, start_frame: Math.floor(from * fps), end_frame: Math.ceil(to * fps),
      x, y, w: Math.min(img.naturalWidth - x, Math.round(drawn.w * k)), h: Math.min(img.naturalHeight - y, Math.round(drawn.h * k)),
    });
    drawn = null;
    listRegions();
    paint();
  }

  function listRegions() {
    const list = $("regions");
    list.replaceChildren();
    if (!regions.length) { const li = document.createElement("li"); li.textContent = root.dataset.noRegions; list.append(li); return; }
    regions.forEach((r, i) => {
      const li = document.createElement("li");
      li.className = "region " + r.mode;
      const times = fps ? " · " + (r.start_frame / fps).toFixed(1) + "–" + (r.end_frame / fps).toFixed(1) + " s" : "";
      li.append((r.mode === "add" ? root.dataset.hide : root.dataset.clear) + times + " · " + r.w + "×" + r.h + " @ " + r.x + "," + r.y + " ");
      const drop = document.createElement("button");
      drop.type = "button"; drop.textContent = root.dataset.remove;
      drop.addEventListener("click", () => { regions.splice(i, 1); listRegions(); paint(); });
      li.append(drop);
      list.append(li);
    });
  }

  async function produce() {
    say("");
    const strip = (r) => ({start_frame: r.start_frame, end_frame: r.end_frame, x: r.x, y: r.y, w: r.w, h: r.h});
    try {
      render(await call("POST", "/redact", {
        keep_tracks: Array.from(keep), voice: $("voice").checked,
        add_regions: regions.filter((r) => r.mode === "add").map(strip),
        remove_regions: regions.filter((r) => r.mode === "remove").map(strip),
      }));
    } catch (e) { say(e.message); }
  }

  async function reviewed(approve) {
    say("");
    try {
      render(await call("POST", "/review", {
        approve, reason: $("reject-reason").value || null, flagged_seen: $("flagged-seen").checked,
      }));
    } catch (e) { say(e.message); }
  }

  $("show-still").addEventListener("click", showStill);
  $("add-region").addEventListener("click", addRegion);
  $("produce").addEventListener("click", produce);
  $("approve").addEventListener("click", () => reviewed(true));
  $("reject").addEventListener("click", () => reviewed(false));
  $("cancel-step").addEventListener("click", async () => {
    $("cancel-step").disabled = true;  // the poll under way shows the copy failed, "cancelled"
    try { await call("POST", "/cancel"); } catch (e) { say(e.message); $("cancel-step").disabled = false; }
  });
  pointer();
  poll();
})();
