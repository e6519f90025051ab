"""What the map tests share: a small streets file of the demo commune."""

from __future__ import annotations

STREETS = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "properties": {"nom": "Rue du Port", "importance": 3},
            "geometry": {"type": "LineString", "coordinates": [[4.079, 43.553], [4.080, 43.558], [4.081, 43.563]]},
        },
        {
            "type": "Feature",
            "properties": {"name": "Quai des Pêcheurs"},
            "geometry": {"type": "LineString", "coordinates": [[4.084, 43.553], [4.092, 43.554]]},
        },
        {
            "type": "Feature",
            "properties": {"name": "Rue de l'Église"},
            "geometry": {"type": "MultiLineString", "coordinates": [[[4.070, 43.560], [4.075, 43.560]]]},
        },
        {
            "type": "Feature",
            "properties": {},
            "geometry": {"type": "LineString", "coordinates": [[4.0, 43.0], [4.1, 43.1]]},
        },
    ],
}
