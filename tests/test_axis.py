"""Témoin as the content destination of the Axis Body Worn system (temoin.axis, docs/axis.md).

A simulated Body Worn system, written from Axis's integration API, talks to the real application over HTTP."""

from __future__ import annotations

import hashlib
import uuid

import orjson
import pytest
from sqlalchemy import select

from temoin.axis import connection
from temoin.axis.simulator import BodyWornSystem, Bookmark, sample_recording
from temoin.journal.entry import Actor
from temoin.vault.models import Quarantine, Recording, RecordingState
from tests.helpers import agent_number, make_commune

SLUG = "la-grande-motte"


def _connection_file(p, *, encryption: bool = True, url: str = "http://testserver", certificates=()) -> dict:
    with p.session() as db:
        issued = connection.issue(p, db, p.tenant(db, SLUG), urls=[url], by=Actor.system("test"),
                                  want_encryption=encryption, certificates=list(certificates))
    return orjson.loads(issued.json_bytes())


@pytest.fixture
def commune(platform):
    return make_commune(platform, SLUG, cameras=0, authorised=2)


@pytest.fixture
def bws(platform, client, commune) -> BodyWornSystem:
    system = BodyWornSystem(_connection_file(platform), http=client)
    system.authenticate()
    return system


def _enrolled(bws: BodyWornSystem, commune, serial: str = "ACCC8E000001") -> str:
    user = str(uuid.uuid4())
    bws.register_system()
    bws.register_user(user, "Agent Dupont", agent_number(commune))
    assert bws.register_device(serial, "Caméra 1").status_code == 201
    return user


def test_whole_hand_over_becomes_a_stored_recording(platform, client, commune, bws):
    caps = bws.capabilities()
    for name in ("StoreReadSystemID", "StoreUserIDKey", "StoreBookmarks", "StoreGNSSTrackRecording",
                 "StoreRejectedContent", "StoreSignedVideo", "ReadCategories"):
        assert caps[name] is True
    categories = bws.read_json("Categories.json")
    assert {"Id": "violence", "Name": "violences"} in categories
    user = _enrolled(bws, commune)
    rec = sample_recording(user, "ACCC8E000001", bookmarks=[Bookmark(at=__import__("datetime").datetime.now(
        __import__("datetime").UTC), description="Interpellation à 12h", category_id="arrest",
        category_name="interpellation", tags="TriggerOn:Button")])
    container = bws.upload(rec, complete=False)
    with platform.session() as db:
        receiving = db.scalar(select(Recording).where(Recording.trigger == "axis"))
        assert receiving.state == RecordingState.RECEIVING
    bws.complete(container)
    with platform.session() as db:
        stored = db.scalar(select(Recording).where(Recording.trigger == "axis"))
        assert stored.state == RecordingState.STORED
        assert stored.segment_count == len(rec.clips)
        assert [s.duration_s for s in stored.segments] == [2.0, 2.0]
        assert stored.categories == ["arrest"]
        doc = orjson.loads(stored.manifest)
        assert len(doc["manifest"]["gps_track"]) == len(rec.track)
        assert hashlib.sha256(stored.manifest.encode()).hexdigest() == stored.manifest_sha256
        assert stored.agent_user_id is not None  # matched to the Témoin agent by matricule
        # Encrypted by the camera for Témoin: the received bytes are the evidence; they decrypt to the clip.
        from temoin.axis.vault import clip_plaintext

        assert clip_plaintext(platform, db, stored, 0) == rec.clips[0].data
        assert stored.segments[0].sha256 != hashlib.sha256(rec.clips[0].data).hexdigest()
