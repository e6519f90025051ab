// The maps of the web UI, on Leaflet, with no network by default.
//
//   const map = TemoinMap.create(element, {basemapUrl: "/api/v1/map/basemap"});
//   map.basemapReady.then(bounds => ...);   // bounds of the territory, or null
//   TemoinMap.drawBasemap(map, basemap, group);   // a map made elsewhere (the CSU's) draws the same basemap
//   TemoinMap.placeText(lat, lon, onNamed);  // "Rue du Port · 43.55800, 4.08000" once the street is known
//   TemoinMap.showPlace(element, lat, lon);  // the same, written into an element (latest position wins)
//
// The basemap (GET /api/v1/map/basemap) is {tile_url, attribution, offline, notice, overlay}: a raster tile layer
// when the tenant set one (tile_url); the overlay (GeoJSON: its territory outline and its named streets) is drawn
// as vectors on top, which needs no network. Without tiles the map says so (notice). Options of create:
// basemapUrl (default "/api/v1/map/basemap"), basemap (the object itself, instead of fetching it), fit (default
// true: fit the view to the territory once drawn), and any L.map option.
//
// A form holding [data-place-picker] gets a map picker: a click sets the place (lat/lon inputs), a handle on the
// circle's edge sets the radius, a street search centres the map; the typed fields stay for keyboard users.
(function () {
  "use strict";

  // Names from the server go into tooltips as text, never as HTML (Leaflet takes HTML strings).
  const asText = (s) => { const el = document.createElement("span"); el.textContent = String(s == null ? "" : s); return el; };
  const escapeHtml = (s) => String(s == null ? "" : s).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
  const getJson = (url) => fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}})
    .then(r => (r.ok ? r.json() : null)).catch(() => null);

  const STYLES = {
    territory: {color: "#1d2433", weight: 2, dashArray: "6 4", fillColor: "#ffffff", fillOpacity: 0.55},
    street: {color: "#8a93a6", weight: 4, opacity: 0.9},
    other: {color: "#5b6478", weight: 2},
  };
  const LABELS_FROM_ZOOM = 15;  // below, street names would cover one another
  const MAX_LABELS = 250;  // a town centre's worth: more costs more than it tells

  // Street names as labels: only those in view and only close enough in, so a city's thousands stay fluid.
  function labelStreets(map, streets) {
    const update = () => {
      const view = map.getBounds(), close = map.getZoom() >= LABELS_FROM_ZOOM;
      let shown = 0;
      streets.forEach(l => {
        const show = close && shown < MAX_LABELS && view.intersects(l.getBounds());
        if (show) { shown++; l.openTooltip(); } else l.closeTooltip();
      });
    };
    map.on("zoomend moveend", update);
    update();
  }

  function drawVectors(map, geojson, overTiles, group) {
    const streets = [];
    const layer = L.geoJSON(geojson, {
      interactive: false,
      style: f => {
        const style = Object.assign({}, STYLES[(f.properties || {}).kind] || STYLES.other);
        if (overTiles) style.fillOpacity = 0.05;  // the tiles show through the territory
        return style;
      },
      onEachFeature: (f, l) => {
        const props = f.properties || {};
        if (props.kind === "street" && props.name) {
          l.bindTooltip(asText(props.name), {permanent: true, direction: "center", className: "street-label"});
          streets.push(l);
        }
      },
    }).addTo(group || map);
    layer.bringToBack();
    labelStreets(map, streets);
    return layer;
  }

  // Said on the map itself, so whoever installs sees why there is no background and where to read how.
  function showNotice(map, text) {
    const Notice = L.Control.extend({
      onAdd: () => {
        const el = L.DomUtil.create("div", "map-notice");
        el.setAttribute("role", "note");
        el.textContent = text;
        return el;
      },
    });
    new Notice({position: "bottomleft"}).addTo(map);
  }

  // Draw a basemap object on a map; returns the bounds of its overlay, or null.
  function drawBasemap(map, basemap, group) {
    if (!basemap) return null;
    if (basemap.tile_url) {
      L.tileLayer(basemap.tile_url, {maxZoom: 19, attribution: escapeHtml(basemap.attribution)}).addTo(group || map);
    }
    if (basemap.offline && basemap.notice) showNotice(map, basemap.notice);
    const overlay = basemap.overlay || basemap.geojson;
    const features = (overlay && overlay.features) || [];
    if (!features.length) return null;
    const bounds = drawVectors(map, overlay, !!basemap.tile_url, group).getBounds();
    return bounds.isValid() ? bounds : null;
  }

  function create(element, options) {
    const opts = Object.assign({basemapUrl: "/api/v1/map/basemap", fit: true}, options || {});
    const mapOptions = Object.assign({}, opts);
    ["basemapUrl", "basemap", "fit"].forEach(k => delete mapOptions[k]);
    const map = L.map(element, Object.assign({zoomSnap: 0.25, attributionControl: true}, mapOptions));
    element.classList.add("temoin-map");
    map.setView([46.6, 2.4], 6);  // France, until the basemap says where the territory is
    const source = opts.basemap ? Promise.resolve(opts.basemap) : getJson(opts.basemapUrl);
    map.basemapReady = source.then(basemap => {
      const bounds = drawBasemap(map, basemap);
      if (opts.fit && bounds) map.fitBounds(bounds, {padding: [10, 10]});
      return bounds;
    });
    return map;
  }

  // --- positions in words: the nearest street (GET /api/v1/map/place), then the coordinates --------------
  // One request per ~10 m cell, shared by every caller: the CSU redraws its table every second.
  const places = new Map();
  const cell = (lat, lon) => lat.toFixed(4) + "," + lon.toFixed(4);
  const coordinates = (lat, lon) => lat.toFixed(5) + ", " + lon.toFixed(5);

  function placeText(lat, lon, onNamed) {
    const key = cell(lat, lon);
    const known = places.get(key);
    if (known && known.street !== undefined) {
      return known.street ? known.street + " · " + coordinates(lat, lon) : coordinates(lat, lon);
    }
    if (!known) {
      const entry = {street: undefined, waiting: []};
      places.set(key, entry);
      getJson("/api/v1/map/place?lat=" + lat.toFixed(6) + "&lon=" + lon.toFixed(6)).then(p => {
        entry.street = p ? p.street : null;  // unanswered: the coordinates alone, not a request per redraw
        entry.waiting.splice(0).forEach(f => f());
      });
    }
    if (onNamed) places.get(key).waiting.push(onNamed);
    return coordinates(lat, lon);
  }

  function showPlace(element, lat, lon) {
    element.dataset.lat = String(lat); element.dataset.lon = String(lon);
    const write = () => {
      if (element.dataset.lat !== String(lat) || element.dataset.lon !== String(lon)) return;  // moved on since
      element.textContent = placeText(lat, lon);
    };
    element.textContent = placeText(lat, lon, write);
  }

  // --- the place picker of a form ----------------------------------------------------------------------

  function picker(root) {
    const form = root.closest("form");
    const latIn = form.querySelector("[name=lat]"), lonIn = form.querySelector("[name=lon]");
    const radiusIn = form.querySelector("[name=radius_m]");
    const mapEl = root.querySelector(".place-map"), placeOut = root.querySelector(".place-text");
    const search = root.querySelector(".street-search"), results = root.querySelector(".street-results");
    const map = create(mapEl, {});
    let circle = null, handle = null;
    const num = (input) => { const v = parseFloat(String(input.value).replace(",", ".")); return isFinite(v) ? v : null; };
    const radius = () => Math.max(1, num(radiusIn) || 200);

    // The handle sits on the circle's east edge; dragging it sets the radius.
    function handleAt(centre, r) {
      return L.latLng(centre.lat, centre.lng + r / (111320 * Math.cos(centre.lat * Math.PI / 180)));
    }
    function draw(fromInputs) {
      const lat = num(latIn), lon = num(lonIn);
      if (lat === null || lon === null || Math.abs(lat) > 90 || Math.abs(lon) > 180) {
        if (circle) { circle.remove(); handle.remove(); circle = handle = null; }
        placeOut.textContent = "";
        return;
      }
      const centre = L.latLng(lat, lon);
      if (!circle) {
        circle = L.circle(centre, {radius: radius(), color: "#c8102e", weight: 2, fillOpacity: 0.1, interactive: false}).addTo(map);
        handle = L.marker(handleAt(centre, radius()), {draggable: true, keyboard: false,
          icon: L.divIcon({className: "radius-handle", iconSize: [14, 14]})}).addTo(map);
        handle.on("drag", () => {
          const r = Math.round(circle.getLatLng().distanceTo(handle.getLatLng()));
          radiusIn.value = String(Math.max(1, r));
          circle.setRadius(Math.max(1, r));
        });
        handle.on("dragend", () => handle.setLatLng(handleAt(circle.getLatLng(), radius())));
      }
      circle.setLatLng(centre); circle.setRadius(radius());
      handle.setLatLng(handleAt(centre, radius()));
      showPlace(placeOut, lat, lon);
      root.dataset.lat = String(lat); root.dataset.lon = String(lon);
      if (fromInputs && !map.getBounds().contains(centre)) map.setView(centre, Math.max(map.getZoom(), 16));
    }
    function setPlace(lat, lon) {
      latIn.value = lat.toFixed(6); lonIn.value = lon.toFixed(6);
      draw(false);
    }
    map.on("click", e => setPlace(e.latlng.lat, e.latlng.lng));
    [latIn, lonIn, radiusIn].forEach(input => input.addEventListener("input", () => draw(true)));

    // Street search: names from the tenant's list, a click (or Enter on one) centres the map and sets the place.
    let asked = 0, timer = null;
    function pick(street) {
      results.textContent = "";
      search.value = street.name;
      map.setView([street.lat, street.lon], Math.max(map.getZoom(), 17));
      setPlace(street.lat, street.lon);
    }
    search.addEventListener("input", () => {
      clearTimeout(timer);
      const q = search.value.trim();
      if (!q) { results.textContent = ""; return; }
      timer = setTimeout(async () => {
        const n = ++asked;
        const found = await getJson("/api/v1/map/streets?q=" + encodeURIComponent(q));
        if (n !== asked) return;  // a later keystroke asked since
        results.textContent = "";
        (found || []).forEach(street => {
          const li = document.createElement("li");
          const b = document.createElement("button");
          b.type = "button"; b.textContent = street.name;
          b.addEventListener("click", () => pick(street));
          li.append(b); results.append(li);
        });
        if (!(found || []).length) {
          const li = document.createElement("li");
          li.className = "none"; li.textContent = results.dataset.none || "";
          results.append(li);
        }
      }, 150);
    });
    search.addEventListener("keydown", e => {  // Enter picks the first street rather than sending the form
      if (e.key !== "Enter") return;
      e.preventDefault();
      const first = results.querySelector("button");
      if (first) first.click();
    });
    map.basemapReady.then(() => draw(true));
    root.temoinMap = map;
    return map;
  }

  window.TemoinMap = {create, drawBasemap, placeText, showPlace, picker};
  document.querySelectorAll("[data-place-picker]").forEach(picker);
})();
