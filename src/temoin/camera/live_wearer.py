"""What the wearer is told of the live link (`CameraAgent` passes on each `LiveEvent`): the CSU's acknowledgement,
reinforcements sent, the transmission ended by the CSU, the uplink lost and restored, a request that failed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from temoin.camera.signals import Signals, Vibration

if TYPE_CHECKING:  # aiortc is loaded only by a camera that has a live link
    from temoin.camera.live_publisher import LiveEvent


def tell_wearer(signals: Signals, event: LiveEvent) -> None:
    if event.kind == "acknowledged":
        signals.acknowledged(f"the CSU has your live alert ({event.data.get('by') or 'CSU'})")
        signals.vibrate(Vibration.ACKNOWLEDGED)
    elif event.kind == "reinforcements_sent":
        note = event.data.get("note")
        signals.warn(f"CSU: reinforcements sent{f' ({note})' if note else ''}")
    elif event.kind == "ended" and event.data.get("by") != "camera":
        signals.warn("live transmission ended by the CSU: the camera goes on recording")
    elif event.kind == "interrupted":
        signals.warn("live link lost: reconnecting (the camera goes on recording)")
    elif event.kind == "resumed":
        signals.warn("live link restored: the CSU sees and hears you again")
    elif event.kind == "failed":
        signals.vibrate(Vibration.ATTENTION)
        signals.warn(
            f"live transmission: {event.data.get('why')}"
            + (": the camera records; call the CSU by radio" if event.data.get("final", True) else "")
        )
