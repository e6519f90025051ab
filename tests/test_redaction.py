"""The redaction engine on a generated clip with real faces at known places (tests/facesynth.py).

What a user relies on: every face is hidden from the first frame it is on to the last, the requester's face
stays clear when kept, boxes added or removed by hand are honoured, the voice is not the speaker's any more,
the copy has the source's size, rate and length, the source is untouched, and a bad file is refused clearly.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import numpy as np
import pytest

from temoin.rights.redaction import (
    FaceTrack,
    ManualRegion,
    RedactionError,
    detect_tracks,
    redact_file,
)
from temoin.rights.redaction.tracker import Tracker, face_track
from temoin.rights.redaction.voice import alter, estimate_pitch
from tests.facesynth import Clip, clear, coverage, luma_frames, make_clip, voice


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def audio_of(path: Path) -> tuple[np.ndarray, int]:
    with av.open(str(path)) as container:
        rate = container.streams.audio[0].codec_context.sample_rate
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=rate)
        chunks = [f.to_ndarray()[0] for frame in container.decode(audio=0) for f in resampler.resample(frame)]
    return np.concatenate(chunks), rate


def video_facts(path: Path) -> dict:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = list(container.decode(video))
        return {
            "codec": video.codec_context.name,
            "size": (video.width, video.height),
            "rate": float(video.average_rate),
            "frames": len(frames),
            "span": float((frames[-1].pts - frames[0].pts) * frames[0].time_base),
            "audio": container.streams.audio[0].codec_context.name if container.streams.audio else None,
        }


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    return make_clip(tmp_path_factory.mktemp("clip") / "street.mp4")


@pytest.fixture(scope="module")
def tracks(clip: Clip) -> list[FaceTrack]:
    return detect_tracks(clip.path)


def track_of(clip: Clip, tracks: list[FaceTrack], actor: int) -> FaceTrack:
    """The track that follows an actor on most of its frames (by centre inside the ground-truth box)."""

    def hits(track: FaceTrack) -> int:
        n = 0
        for frame, truth in enumerate(clip.truth):
            for a, (x, y, w, h) in truth:
                box = track.boxes.get(frame)
                if a == actor and box and x <= box[0] + box[2] / 2 <= x + w and y <= box[1] + box[3] / 2 <= y + h:
                    n += 1
        return n

    return max(tracks, key=hits)


def test_every_face_is_blurred_and_the_voice_altered(clip: Clip, tmp_path: Path) -> None:
    before = sha256(clip.path)
    seen: list[tuple[int, int]] = []
    out = tmp_path / "copy.mp4"

    report = redact_file(clip.path, out, progress=lambda done, total: seen.append((done, total)))

    assert sha256(clip.path) == before  # the source is only read
    result = coverage(clip, out)
    assert result.frames_compared == clip.frames
    assert result.recall >= 0.98, f"faces left visible: {result.missed[:20]}"
    src, dst = video_facts(clip.path), video_facts(out)
    assert dst["codec"] == "h264" and dst["audio"] == "aac"
    assert (dst["size"], dst["rate"], dst["frames"]) == (src["size"], src["rate"], src["frames"])
    assert dst["span"] == pytest.approx(src["span"], abs=1e-3)
    assert report.frames == clip.frames and report.tracks >= 6 and report.faces_detected > 0
    assert "CPUExecutionProvider" in report.providers and report.audio == "altered"
    assert seen[-1] == (clip.frames, clip.frames) and seen == sorted(seen)
    # The voice: same length, but its pitch is moved by several semitones and no longer follows the speaker's.
    original, rate = audio_of(clip.path)
    altered, _ = audio_of(out)
    assert abs(len(altered) - len(original)) <= rate * 0.025
    p0, p1 = estimate_pitch(original, rate), estimate_pitch(altered, rate)
    assert abs(12 * np.log2(p1 / p0)) >= 4
    assert float(np.sqrt(np.mean(altered**2))) > 0.3 * float(np.sqrt(np.mean(original**2)))  # not muted


def test_tracks_follow_each_face_from_its_first_frame(clip: Clip, tracks: list[FaceTrack]) -> None:
    assert [t.id for t in tracks] == list(range(1, len(tracks) + 1))
    for actor_index, _actor in enumerate(clip.actors):
        track = track_of(clip, tracks, actor_index)
        visible = [f for f, truth in enumerate(clip.truth) if any(a == actor_index for a, _ in truth)]
        assert track.first_frame <= visible[0], (actor_index, track.first_frame, visible[0])
        assert track.last_frame >= visible[-1]
        assert set(track.detected) <= set(track.boxes)
    assert detect_tracks(clip.path) == tracks  # the same file always gives the same tracks


def test_kept_face_added_and_removed_boxes_in_mask_mode(clip: Clip, tracks: list[FaceTrack], tmp_path: Path) -> None:
    requester = track_of(clip, tracks, 0)
    x, y, w, h = next(box for a, box in clip.truth[45] if a == 1)
    false_alarm = ManualRegion(30, 59, x - 30, y - 30, w + 60, h + 60)  # as a reviewer would draw it
    forced = ManualRegion(10, 20, 280, 300, 60, 40)  # on the wall: nobody there
    out = tmp_path / "access.mp4"

    # The tracks are found again by redact_file: the ids chosen on detect_tracks' result must still hold.
    report = redact_file(
        clip.path,
        out,
        mode="mask",
        keep_tracks=[requester.id],
        add_regions=[forced],
        remove_regions=[false_alarm],
        voice=False,
    )

    assert report.kept_tracks == [requester.id] and report.audio == "copied"
    src_frames, out_frames = list(luma_frames(clip.path)), list(luma_frames(out))
    kept_clear = [
        clear(src_frames[f], out_frames[f], box) for f, truth in enumerate(clip.truth) for a, box in truth if a == 0
    ]
    assert np.mean(kept_clear) >= 0.95
    for f, truth in enumerate(clip.truth):
        for a, (bx, by, bw, bh) in truth:
            region = out_frames[f][by : by + bh, bx : bx + bw]
            if a == 0:
                continue
            if a == 1 and false_alarm.covers(f):
                assert clear(src_frames[f], out_frames[f], (bx, by, bw, bh)), f  # removed by hand
            else:
                assert region.std() < 4 and region.mean() < 30, (f, a)  # a solid black box
    fx, fy = forced.x, forced.y
    assert out_frames[15][fy : fy + forced.h, fx : fx + forced.w].std() < 4
    assert out_frames[15][fy : fy + forced.h, fx : fx + forced.w].mean() < 30
    assert (
        np.abs(
            out_frames[25][fy : fy + forced.h, fx : fx + forced.w].astype(int)
            - src_frames[25][fy : fy + forced.h, fx : fx + forced.w]
        ).mean()
        < 6
    )
    original, _ = audio_of(clip.path)
    copied, _ = audio_of(out)
    assert np.array_equal(original, copied)  # voice=False: the sound is the source's, bit for bit


def test_reviewed_tracks_are_used_as_given(clip: Clip, tracks: list[FaceTrack], tmp_path: Path) -> None:
    one = track_of(clip, tracks, 2)
    out = tmp_path / "reviewed.mp4"

    report = redact_file(clip.path, out, tracks=[one], voice=False)

    assert report.providers == [] and report.faces_detected == 0  # no detection ran
    assert coverage(clip, out, actors={2}).recall >= 0.98
    assert coverage(clip, out, actors={0, 1, 3, 4, 5}).recall == 0.0


def test_bad_input_is_refused_clearly(clip: Clip, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    with pytest.raises(RedactionError, match="does not exist"):
        redact_file(tmp_path / "missing.mp4", out)
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 100)
    with pytest.raises(RedactionError, match="not a video file"):
        redact_file(text, out)
    with pytest.raises(RedactionError, match="over its source"):
        redact_file(clip.path, clip.path)
    with pytest.raises(ValueError, match="mode"):
        redact_file(clip.path, out, mode="pixelate-lightly")
    with pytest.raises(ValueError):
        ManualRegion(10, 5, 0, 0, 10, 10)
    assert not out.exists() and not list(tmp_path.glob(".*.part"))


def remux(src: Path, dst: Path, movflags: str) -> Path:
    """The same packets in another MP4 layout (index at the front, at the end, or fragments)."""
    with (
        av.open(str(src)) as inp,
        av.open(str(dst), "w", format="mp4", options={"movflags": movflags} if movflags else {}) as out,
    ):
        streams = {s.index: out.add_stream_from_template(s) for s in (inp.streams.video[0], inp.streams.audio[0])}
        for packet in inp.demux(list(inp.streams.video) + list(inp.streams.audio)):
            if packet.size:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    return dst


LAYOUTS = {"faststart": "+faststart", "index at the end": "", "fragmented": "frag_keyframe+empty_moov"}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_file_cut_short_is_refused_whatever_its_layout(clip: Clip, tmp_path: Path, layout: str) -> None:
    whole = remux(clip.path, tmp_path / "whole.mp4", LAYOUTS[layout])
    assert len(detect_tracks(whole)) >= 6  # the complete file in this layout is accepted
    data = whole.read_bytes()
    out = tmp_path / "copy.mp4"
    for fraction in (0.6, 0.97):
        cut = tmp_path / f"cut-{fraction}.mp4"
        cut.write_bytes(data[: int(len(data) * fraction)])
        for redacting in (False, True):
            with pytest.raises(RedactionError, match="cut short") as refused:
                redact_file(cut, out, voice=False) if redacting else detect_tracks(cut)
            message = str(refused.value)
            if layout == "index at the end":  # the index went with the cut: no frame can be located
                assert "0 video frames can be read" in message and "'moov' box) is missing" in message
            else:
                found = int(message.split(": ")[1].split(" of the ")[0])
                assert 0 < found <= clip.frames and f"of the {clip.frames} video frames" in message, message
            assert "Nothing was redacted" in message
        assert not out.exists() and not list(tmp_path.glob(".*.part"))


def test_a_cut_file_whose_box_sizes_were_patched_is_refused_on_its_frame_count(clip: Clip, tmp_path: Path) -> None:
    """A repair tool may shrink the media box to the bytes left: the boxes look whole, the index still
    announces every frame, and the frames found fall short of it."""
    data = bytearray(remux(clip.path, tmp_path / "whole.mp4", "+faststart").read_bytes())
    mdat = data.index(b"mdat") - 4
    keep = mdat + (len(data) - mdat) * 6 // 10
    data[mdat : mdat + 4] = (keep - mdat).to_bytes(4, "big")
    cut = tmp_path / "patched.mp4"
    cut.write_bytes(bytes(data[:keep]))
    out = tmp_path / "copy.mp4"

    with pytest.raises(RedactionError, match=rf"\d+ of the {clip.frames} video frames the header announces") as refused:
        redact_file(cut, out, voice=False)
    assert "box declares" not in str(refused.value)  # found by counting the frames, after decoding
    assert not out.exists() and not list(tmp_path.glob(".*.part"))


def test_voice_alteration_moves_pitch_and_keeps_length() -> None:
    rate = 16_000
    speech = voice(2.0, rate)
    silence = np.zeros(rate // 2, np.float32)
    signal = np.concatenate([speech, silence])

    out = alter(signal, rate)

    assert len(out) == len(signal)
    assert abs(12 * np.log2(estimate_pitch(out[: len(speech)], rate) / estimate_pitch(speech, rate))) >= 4
    assert np.abs(out[len(speech) + rate // 10 :]).max() < 1e-3  # silence stays silent
    spectrum_in = np.abs(np.fft.rfft(speech))
    spectrum_out = np.abs(np.fft.rfft(out[: len(speech)]))
    assert np.corrcoef(spectrum_in, spectrum_out)[0, 1] < 0.5  # not the same sound


def test_tracker_bridges_a_missed_detection_and_extends_both_ends() -> None:
    tracker = Tracker(interval=5, max_missed=2)
    face = np.array([[100, 100, 140, 150, 0.9]], np.float32)
    for key in range(0, 45, 5):
        seen = 10 <= key <= 30 and key != 20  # missed once, on key frame 20
        moved = face + np.array([[key, 0, key, 0, 0]], np.float32)
        tracker.update(key, moved if seen else np.empty((0, 5), np.float32))
    tracker.finish(44)

    assert tracker.created == 1
    track = face_track(tracker.tracks[0], 640, 360)
    assert track.detected == (10, 15, 25, 30)
    assert track.first_frame == 5 and track.last_frame == 35  # one interval before and after
    x, y, w, h = track.boxes[20]  # interpolated where the detector missed it
    assert abs((x + w / 2) - 140) <= 2 and abs((y + h / 2) - 125) <= 2


def test_small_faces_get_a_closer_look_on_every_key_frame() -> None:
    from temoin.rights.redaction.detect import Planner

    hd = Planner(1920, 1080, 640, 1920, tiles=True, roi=True, per_key=2)
    assert len(hd.tiles) == 12 and hd.rounds == 6  # 4 rows of 3 tiles at full size, two per key frame in turn
    covered = np.zeros((1080, 1920), bool)
    for tile in hd.tiles:
        x0, y0, x1, y1 = tile.rect
        covered[y0:y1, x0:x1] = True
        assert (x1 - x0) / tile.width == pytest.approx(1.0, abs=0.1)  # a 24 px face is 24 px there
    assert covered.all()
    seen = [look for k in range(7) for look in hd.looks(k, [])[1:]]
    assert seen[:12] == hd.tiles and seen[12] == hd.tiles[0]
    small = np.array([1500.0, 900.0, 26.0, 30.0])
    first, roi = hd.looks(0, [(small, False)])[0], hd.looks(0, [(small, False)])[-1]
    assert first == hd.full and (first.width, first.height) == (640, 352)
    x0, y0, x1, y1 = roi.rect
    assert x0 < 1500 - 26 and x1 > 1500 + 26 and y0 < 900 - 30 and y1 > 900 + 30
    assert roi.width >= x1 - x0  # full resolution around the face
    uhd = Planner(3840, 2160, 640, 1920, tiles=True, roi=True)
    roi = uhd.looks(0, [(small * 2, False)])[-1]
    assert roi.width == pytest.approx((roi.rect[2] - roi.rect[0]) / 2, abs=32)  # 4K: half size, as 1080p
    sd = Planner(640, 360, 640, 1920, tiles=True, roi=True)
    assert sd.tiles == [] and sd.looks(3, [(small / 3, False)]) == [sd.full]  # nothing more to see up close


def test_tracker_keeps_a_small_fast_face_and_reaches_over_the_tile_round() -> None:
    tracker = Tracker(interval=5, max_missed=2, small_px=72, small_reach=20, speed_px=20)
    for key in range(0, 90, 5):
        seen = 40 <= key <= 60  # first found by a tile at key 40, followed up close until key 60
        x = 100 + 15 * key  # 15 px per frame: 3 of its widths between two key frames
        det = np.array([[x, 500, x + 24, 528, 0.6]], np.float32)
        tracker.update(key, det if seen else np.empty((0, 5), np.float32))
    tracker.finish(89)

    assert tracker.created == 1  # one face, one track
    track = face_track(tracker.tracks[0], 1920, 1080)
    assert track.detected == (40, 45, 50, 55, 60)
    # It may have been there since the tile last looked (20 frames) and may still be there as long.
    assert track.first_frame == 20 and track.last_frame == 80
    for frame in (25, 75):
        x, _, w, _ = track.boxes[frame]
        centre = 100 + 15 * frame + 12
        assert x <= centre <= x + w, frame  # extended at the track's speed


def test_a_dim_face_is_found_once_the_detector_input_is_lifted() -> None:
    """Night footage: a face at a twelfth of daylight, with sensor noise, is below the detector's threshold
    as it is, and found once its look's luma is lifted; the picture itself is not changed."""
    from temoin.demo.passersby import face_images, paste_face
    from temoin.rights.redaction import effects
    from temoin.rights.redaction.detect import Look, detect, lift_table
    from temoin.rights.redaction.model import DEFAULT_THRESHOLD
    from temoin.rights.redaction.pipeline import shared_detector
    from tests.facesynth import background

    width, height, face = 1280, 720, (600, 300, 48, 58)
    img = background(width, height)
    paste_face(img, face_images()[5], face)
    noise = np.random.default_rng(1).normal(0, 3, (height, width, 1))
    dim = np.clip(img.astype(np.float32) * 0.08 + noise, 0, 255).astype(np.uint8)
    frame = av.VideoFrame.from_ndarray(dim, format="rgb24").reformat(format="yuv420p")
    planes = effects.frame_planes(frame)
    before = [p.pixels.copy() for p in planes]
    look = [Look((0, 0, width, height), 640, 352)]

    def found(lift: float) -> bool:
        dets = detect(shared_detector(), planes, look, DEFAULT_THRESHOLD, lift)
        x, y, w, h = face
        return any(d[0] < x + w and d[2] > x and d[1] < y + h and d[3] > y for d in dets)

    assert not found(lift=0.0)
    assert found(lift=120.0)
    assert all(np.array_equal(p.pixels, b) for p, b in zip(planes, before, strict=True))  # input only
    assert lift_table(120.0, 120.0) is None  # a picture in normal light goes to the detector as it is


def test_a_weak_detection_continues_a_track_but_never_starts_one() -> None:
    tracker = Tracker(interval=5, max_missed=1, start_score=0.2)
    face = np.array([[100, 100, 140, 150, 0.9]], np.float32)
    weak = np.array([[100, 100, 140, 150, 0.12]], np.float32)
    elsewhere = np.array([[400, 100, 440, 150, 0.15]], np.float32)
    for key in range(0, 50, 5):
        dets = face if key <= 10 else weak  # the face turns away or the light drops: the detector is unsure
        tracker.update(key, np.concatenate([dets, elsewhere]))
    tracker.finish(49)

    assert tracker.created == 1  # the weak response away from any track started nothing
    track = face_track(tracker.tracks[0], 640, 360)
    assert track.detected == tuple(range(0, 50, 5))  # kept through the weak sightings (max_missed is 1)
    assert any(why == "low" for _, _, why in track.review)  # and flagged for the operator


def test_a_weak_detection_beside_a_track_does_not_carry_it_away() -> None:
    tracker = Tracker(interval=5, max_missed=1, start_score=0.2)
    face = np.array([[100, 100, 140, 150, 0.9]], np.float32)
    beside = np.array([[130, 100, 170, 150, 0.12]], np.float32)  # 0.75 widths away, overlap 0.14: a strong one matches
    for key in range(0, 30, 5):
        tracker.update(key, face if key <= 10 else beside)
    tracker.finish(29)

    assert tracker.created == 1
    assert face_track(tracker.tracks[0], 640, 360).detected == (0, 5, 10)  # ended: weak and not where expected


def _weak(x: float, y: float, w: float, score: float = 0.12) -> np.ndarray:
    return np.array([[x, y, x + w, y + w * 1.15, score]], np.float32)


def test_a_small_face_seen_weakly_key_after_key_is_drawn_and_a_passing_blip_is_not() -> None:
    """A small dark face the detector scores 0.1-0.2 is redacted once seen on three key frames in a row (and
    followed up close meanwhile); a weak response seen once or twice, elsewhere, is never drawn."""
    nothing = np.empty((0, 5), np.float32)

    def run(confirm_keys: int) -> Tracker:
        tracker = Tracker(
            interval=5, max_missed=2, small_px=72, small_reach=20, start_score=0.2, confirm_keys=confirm_keys
        )
        for key in range(0, 80, 5):
            dets = [_weak(600 + key, 400, 24)] if 30 <= key <= 60 else []
            if key in (10, 15):
                dets.append(_weak(1200, 700, 30, 0.15))  # a patch of wall that looks like a face twice
            tracker.update(key, np.concatenate(dets) if dets else nothing)
            if key == 30 and confirm_keys:
                follow = tracker.to_follow(35)
                assert len(follow) == 1 and abs(float(follow[0][0][0]) - 642) < 2  # looked at up close already
        tracker.finish(79)
        return tracker

    tracker = run(confirm_keys=3)
    drawn = [t for t in tracker.tracks if t.confirmed]
    assert tracker.created == 1 and len(drawn) == 1
    track = face_track(drawn[0], 1920, 1080, 5)
    assert track.detected == (30, 35, 40, 45, 50, 55, 60)
    assert track.first_frame == 10  # confirmed late, it still reaches back over the tile round (20 frames)
    assert tracker.settle > 20 + 10  # and frames wait for that: none was final before the face was confirmed
    assert all(not any(abs(x - 1200) < 60 for _, (x, *_) in tracker.boxes_at(f, 1920, 1080)) for f in range(5, 25))
    assert run(confirm_keys=0).created == 0  # without tentative tracks the face stayed visible throughout


def test_a_fast_small_face_seen_once_is_looked_for_as_far_as_it_may_have_gone() -> None:
    """Someone running across a 1080p picture (35 px per frame, seven of their face widths between two key
    frames): the close look around a face seen once reaches that far, and the two sightings make one track."""
    from temoin.rights.redaction.detect import Planner

    hd = Planner(1920, 1080, 640, 1920, tiles=True, roi=True, per_key=2, young_px=200)
    face = np.array([900.0, 500.0, 24.0, 28.0])
    x0, _, x1, _ = hd.looks(0, [(face, True)])[-1].rect
    assert x0 <= 900 - 200 - 12 and x1 >= 900 + 200 + 12
    x0, _, x1, _ = hd.looks(0, [(face, False)])[-1].rect  # speed known: around where it is predicted, narrower
    assert x1 - x0 < 200

    tracker = Tracker(interval=5, max_missed=2, small_px=72, small_reach=5, speed_px=40)
    for key in range(0, 30, 5):
        x = 100 + 35 * key
        tracker.update(key, np.array([[x, 500, x + 24, 528, 0.6]], np.float32))
    tracker.finish(29)
    assert tracker.created == 1
    track = face_track(tracker.tracks[0], 1920, 1080)
    for frame in range(0, 26):
        x, _, w, _ = track.boxes[frame]
        assert x <= 100 + 35 * frame + 12 <= x + w, frame
