"""Docked: every finalised recording handed to the vault (`DeviceStore.hand_over`), its local copy deleted only
once the vault's receipt verifies and matches; what became of each (`OffloadOutcome`) and what the wearer is told.

A receipt that does not verify or does not match is an incident: the recording stays, the store logs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from temoin.camera.device_store import DeviceStore, ReceiptRejected, StoreError, VaultDeletion
from temoin.camera.offload import OffloadError, VaultClient
from temoin.camera.signals import Signals, Vibration
from temoin.evidence.manifest import SignedReceipt


@dataclass
class OffloadOutcome:
    sent: dict[str, SignedReceipt] = field(default_factory=dict)
    kept: dict[str, str] = field(default_factory=dict)  # recording id -> why it stays on the camera
    deleted: dict[str, VaultDeletion] = field(default_factory=dict)  # deleted by the vault before the upload ended
    quarantined: dict[str, list[str]] = field(default_factory=dict)  # recording id -> damaged segment files kept

    def record(self, recording_id: str, result: SignedReceipt | VaultDeletion, store: DeviceStore) -> None:
        """File what `DeviceStore.hand_over` returned under the right heading."""
        if isinstance(result, VaultDeletion):
            self.deleted[recording_id] = result
            return
        self.sent[recording_id] = result
        for q in store.quarantined():  # segments damaged on the camera: the others are in the vault
            if q.recording_id == recording_id:
                self.quarantined[recording_id] = q.files


def offload_pending(
    store: DeviceStore, signals: Signals, vault: VaultClient, progress: Callable[[str, int], None] | None = None
) -> OffloadOutcome:
    """Hand every recording `store` has pending to `vault`; `progress(recording_id, n)` as in `CameraAgent.offload`."""
    outcome = OffloadOutcome()
    for rid in store.pending():
        send = (
            vault.offload
            if progress is None
            else (
                lambda signed, segments, rid=rid, **kw: vault.offload(
                    signed, segments, progress=lambda n: progress(rid, n), **kw
                )
            )
        )
        try:
            outcome.record(rid, store.hand_over(rid, send), store)
        except ReceiptRejected as exc:  # not a network failure: an incident (logged by the store)
            outcome.kept[rid] = f"{type(exc).__name__}: {exc}"
            signals.warn(
                f"the vault's receipt for {rid} was rejected ({exc}): the recording stays on "
                "the camera; report this incident"
            )
            signals.vibrate(Vibration.ATTENTION)
        except (OffloadError, StoreError, httpx.HTTPError) as exc:
            outcome.kept[rid] = f"{type(exc).__name__}: {exc}"
        if rid in outcome.deleted:
            signals.warn(
                f"{rid} was deleted by the vault ({outcome.deleted[rid].reason}) before its upload "
                "ended: signed certificate checked, local copy deleted"
            )
        if rid in outcome.quarantined:
            signals.warn(
                f"{rid}: damaged segment(s) {', '.join(outcome.quarantined[rid])} kept in the "
                "camera's quarantine; the other segments are in the vault"
            )
    return outcome
