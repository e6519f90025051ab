// CSU dashboard: live sessions of the tenant, updated from the events channel (alerts, states, positions,
// link health); acknowledge from here, open the viewer.
"use strict";
(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const body = document.querySelector("#live-sessions tbody");
  const STATES = {requested: "Demandé", streaming: "En direct", acknowledged: "Réception confirmée",
                  reinforcements_sent: "Renforts envoyés", ended: "Terminé"};
  const sessions = new Map();
  const dash = window.temoinDashboard = {sessions, alerts: 0};

  const time = (iso) => iso ? new Date(iso).toLocaleTimeString("fr-FR") : "";
  const pos = (p) => p ? `${p.lat.toFixed(5)}, ${p.lon.toFixed(5)}` : "—";
  const linkText = (s) => s.state === "ended" ? "—" : s.link === "lost" ? `Perdue depuis ${Math.floor(s.silent_s || 0)} s`
    : s.link === "live" ? "En direct" : "En attente du flux";

  function render() {
    body.textContent = "";
    const rows = [...sessions.values()].sort((a, b) => (b.requested_at || "").localeCompare(a.requested_at || ""));
    for (const s of rows) {
      const tr = document.createElement("tr");
      tr.dataset.session = s.id;
      tr.className = `state-${s.state}` + (s.link === "lost" ? " link-lost" : "");
      const cells = [s.agent || s.device_id, STATES[s.state] || s.state, linkText(s), pos(s.position), time(s.requested_at)];
      cells.forEach((text, i) => {
        const td = document.createElement("td");
        td.textContent = text;
        if (i === 2) td.className = "link";
        tr.appendChild(td);
      });
      const actions = document.createElement("td");
      if (s.state !== "ended") {
        const view = document.createElement("a");
        view.href = `/live/${encodeURIComponent(s.id)}`;
        view.textContent = "Voir";
        actions.appendChild(view);
        const ack = document.createElement("button");
        ack.type = "button";
        ack.textContent = "Accuser réception";
        ack.disabled = !!s.acknowledged_at;
        ack.addEventListener("click", () => acknowledge(s.id));
        actions.append(" ", ack);
      }
      tr.appendChild(actions);
      body.appendChild(tr);
    }
    document.getElementById("live-empty").hidden = rows.some((s) => s.state !== "ended");
  }
  function merge(s) { sessions.set(s.id, Object.assign(sessions.get(s.id) || {}, s)); render(); }

  async function acknowledge(id) {
    const r = await fetch(`/api/v1/live/sessions/${encodeURIComponent(id)}/ack`,
                          {method: "POST", headers: {"X-CSRF-Token": csrf}});
    if (r.ok) merge(await r.json());
  }

  const es = new EventSource("/api/v1/live/events");
  es.onopen = () => { document.getElementById("live-connection").textContent = "Canal d'événements connecté"; };
  es.onerror = () => { document.getElementById("live-connection").textContent = "Canal d'événements interrompu, reconnexion…"; };
  es.addEventListener("snapshot", (e) => { for (const s of JSON.parse(e.data).sessions) sessions.set(s.id, s); render(); });
  es.addEventListener("alert", (e) => { dash.alerts += 1; merge(JSON.parse(e.data)); });
  es.addEventListener("session", (e) => merge(JSON.parse(e.data)));
  es.addEventListener("position", (e) => { const d = JSON.parse(e.data); if (sessions.has(d.id)) merge({id: d.id, position: d.position}); });
  es.addEventListener("stream", (e) => {
    const d = JSON.parse(e.data);
    if (sessions.has(d.id) && d.link) merge({id: d.id, link: d.link, silent_s: d.silent_s});
  });
})();
