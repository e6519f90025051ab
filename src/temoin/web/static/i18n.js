// The pages' scripts speak from the one catalogue (web/locale/<lang>/LC_MESSAGES/messages.po), never from tables
// of their own: the page carries it as JSON (<script id="temoin-i18n" type="application/json">, which the CSP
// allows: data, not code), else it comes from /i18n/<lang>.json. Source texts are English; French first.
"use strict";
(() => {
  const lang = document.documentElement.lang === "en" ? "en" : "fr";
  const inline = document.getElementById("temoin-i18n");
  let data = inline ? JSON.parse(inline.textContent) : {messages: {}, labels: {}};
  const fmt = (text, values) => values ? text.replace(/\{(\w+)\}/g, (_, k) => String(values[k] ?? "")) : text;
  const api = {
    lang,
    // t("Link lost for {n} s", {n: 3}): the text in the page's language (the English source if missing).
    t: (msgid, values) => fmt(data.messages[msgid] || msgid, values),
    // label("event", "ptz.aimed"): the label of a code, or the code itself when it has none.
    label: (kind, code) => ((data.labels[kind] || {})[code]) || code,
    // A refusal from the API as a person reads it: the kind of problem (by its HTTP status), then the detail.
    problem: (status, detail) => {
      const title = api.label("problem", String(status || 0));
      const kind = title === String(status || 0) ? api.t("Error") : title;
      return detail && detail !== kind ? api.t("{title}: {detail}", {title: kind, detail}) : kind;
    },
    // Elements marked data-i18n="English text" get the text in the page's language.
    translate: (root) => {
      for (const el of (root || document).querySelectorAll("[data-i18n]")) el.textContent = api.t(el.dataset.i18n);
    },
    ready: Promise.resolve(),
  };
  if (!inline) {
    api.ready = fetch(`/i18n/${lang}.json`).then((r) => r.json()).then((d) => { data = d; api.translate(); })
      .catch(() => {});
  }
  window.TemoinI18n = api;
})();
