"""The camera agent: the software of a body-worn camera, or of a simulated one."""

from pathlib import Path

DEFAULT_HOME = Path("var/camera")  # a camera's keys, recordings and receipts (`temoin camera --home`)
SOURCE_HELP = (
    "VIDEO[+AUDIO]: VIDEO is synthetic, file:PATH or v4l2:/dev/videoN; AUDIO is synthetic, "
    "alsa:DEVICE, pulse:DEVICE or none (default: synthetic with synthetic video, none otherwise)"
)
