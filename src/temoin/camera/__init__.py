"""The camera agent: the software of a body-worn camera, or of a simulated one."""

import sys
from pathlib import Path

# httpx loads its command-line client (rich, pygments: about 6 MiB) whenever click is installed, as it is for
# Témoin's own CLI; a camera never runs that client, and its memory budget is tight (issue #20's 150 MB).
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]  # None blocks an import; typeshed omits it

DEFAULT_HOME = Path("var/camera")  # a camera's keys, recordings and receipts (`temoin camera --home`)
SOURCE_HELP = (
    "VIDEO[+AUDIO]: VIDEO is synthetic, file:PATH or v4l2:/dev/videoN; AUDIO is synthetic, "
    "alsa:DEVICE, pulse:DEVICE or none (default: synthetic with synthetic video, none otherwise)"
)
