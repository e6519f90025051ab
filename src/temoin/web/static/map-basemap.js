// A Leaflet map on the tenant's basemap, with no network by default.
//
//   const map = TemoinMap.create(element, {basemapUrl: "/api/v1/map/basemap"});
//   map.basemapReady.then(bounds => ...);   // bounds of the territory, or null
//
// The basemap (GET /api/v1/map/basemap) is {tile_url, attribution, overlay}: a raster tile layer when the
// tenant set one (tile_url); the overlay (GeoJSON: its territory outline and, for the demo, its streets) is
// drawn as vectors on top, which needs no network. Options: basemapUrl (default "/api/v1/map/basemap"),
// basemap (the object itself, instead of fetching it), fit (default true: fit the view to the territory
// once drawn), and any L.map option.
(function () {
  "use strict";

  // Names from the server go into tooltips as text, never as HTML (Leaflet takes HTML strings).
  const asText = (s) => { const el = document.createElement("span"); el.textContent = String(s == null ? "" : s); return el; };
  const escapeHtml = (s) => String(s == null ? "" : s).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");

  const STYLES = {
    territory: {color: "#1d2433", weight: 2, dashArray: "6 4", fillColor: "#ffffff", fillOpacity: 0.55},
    street: {color: "#8a93a6", weight: 4, opacity: 0.9},
    other: {color: "#5b6478", weight: 2},
  };

  function drawVectors(map, geojson, overTiles) {
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
        }
      },
    }).addTo(map);
    layer.bringToBack();
    return layer;
  }

  function create(element, options) {
    const opts = Object.assign({basemapUrl: "/api/v1/map/basemap", fit: true}, options || {});
    const mapOptions = Object.assign({}, opts);
    ["basemapUrl", "basemap", "fit"].forEach(k => delete mapOptions[k]);
    const map = L.map(element, Object.assign({zoomSnap: 0.25, attributionControl: true}, mapOptions));
    element.classList.add("temoin-map");
    map.setView([46.6, 2.4], 6);  // France, until the basemap says where the territory is
    const source = opts.basemap ? Promise.resolve(opts.basemap)
      : fetch(opts.basemapUrl, {credentials: "same-origin", headers: {Accept: "application/json"}})
          .then(r => (r.ok ? r.json() : null)).catch(() => null);
    map.basemapReady = source.then(basemap => {
      if (!basemap) return null;
      if (basemap.tile_url) {
        L.tileLayer(basemap.tile_url, {maxZoom: 19, attribution: escapeHtml(basemap.attribution)}).addTo(map);
      }
      const overlay = basemap.overlay || basemap.geojson;
      const features = (overlay && overlay.features) || [];
      if (!features.length) return null;
      const layer = drawVectors(map, overlay, !!basemap.tile_url);
      const bounds = layer.getBounds();
      if (opts.fit && bounds.isValid()) map.fitBounds(bounds, {padding: [10, 10]});
      return bounds.isValid() ? bounds : null;
    });
    return map;
  }

  window.TemoinMap = {create};
})();
