"""Real media from the camera agent: synthetic scene, burned-in overlay, standalone fMP4 segments."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta

import av
import numpy as np
import pytest

from temoin.camera.media import (
    EncodedSegment,
    SegmentWriter,
    SyntheticScene,
    burn_in,
    encode_recording,
    format_burn_in,
    iter_recording,
)

STARTED_AT = datetime(2026, 11, 23, 16, 4, 5, tzinfo=UTC)
AGENT = "PM-0421"
CAMERA = "cam-abc"
FPS = 15
FRAME_S = 1 / FPS
# The first text line of the overlay at 320x240 (margin 4 px, bitmap font about 11 px high).
CLOCK_AREA = (slice(4, 18), slice(4, 200))
# Well below the overlay box: only the scene.
SCENE_AREA = (slice(120, 240), slice(0, 320))


@pytest.fixture(scope="module")
def scene() -> SyntheticScene:
    return SyntheticScene(width=320, height=240, fps=FPS, seed=0)


@pytest.fixture(scope="module")
def segments(scene: SyntheticScene) -> list[EncodedSegment]:
    return encode_recording(scene, STARTED_AT, 12, segment_s=5, agent_id=AGENT, camera_id=CAMERA)


def decode_video(data: bytes) -> list[av.VideoFrame]:
    with av.open(io.BytesIO(data)) as container:
        return list(container.decode(video=0))


def decoded_seconds(frames: list[av.VideoFrame]) -> float:
    """From the first frame's timestamp to the end of the last frame."""
    return float((frames[-1].pts - frames[0].pts) * frames[0].time_base) + FRAME_S


def diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def glyph_mismatches(a: np.ndarray, b: np.ndarray) -> int:
    """Pixels that are text in one image and box in the other (compression noise stays far below)."""
    luma = np.array([0.299, 0.587, 0.114])
    return int((np.abs(a.astype(float) @ luma - b.astype(float) @ luma) > 80).sum())


# --- segmentation ------------------------------------------------------------------------------


def test_twelve_seconds_in_five_second_segments(segments: list[EncodedSegment]) -> None:
    assert [s.index for s in segments] == [0, 1, 2]
    assert [s.duration_s for s in segments] == pytest.approx([5, 5, 2], abs=FRAME_S)
    assert [s.started_at for s in segments] == [STARTED_AT + timedelta(seconds=5 * i) for i in range(3)]
    assert all(s.started_at.utcoffset() == timedelta(0) for s in segments)
    assert all(s.size == len(s.data) > 1000 for s in segments)
    assert len({s.sha256 for s in segments}) == 3


def test_each_segment_opens_alone_with_h264_and_audio(segments: list[EncodedSegment]) -> None:
    for segment in segments:
        with av.open(io.BytesIO(segment.data)) as container:
            assert container.format.name.startswith("mov,mp4")
            video, audio = container.streams.video[0], container.streams.audio[0]
            assert video.codec_context.name == "h264"
            assert (video.codec_context.width, video.codec_context.height) == (320, 240)
            assert audio.codec_context.name in {"aac", "opus"}
            assert audio.codec_context.sample_rate == 48_000
            samples = sum(frame.samples for frame in container.decode(audio=0))
        # The encoder adds its priming and pads the last frame: allow two codec frames.
        assert samples / 48_000 == pytest.approx(segment.duration_s, abs=2048 / 48_000)


def test_decoded_durations_add_up(segments: list[EncodedSegment]) -> None:
    total = 0.0
    for segment in segments:
        frames = decode_video(segment.data)
        assert len(frames) == round(segment.duration_s * FPS)
        assert frames[0].pts == 0
        assert frames[0].format.name == "yuv420p"
        seconds = decoded_seconds(frames)
        assert seconds == pytest.approx(segment.duration_s, abs=2 * FRAME_S)
        total += seconds
    assert total == pytest.approx(12, abs=2 * FRAME_S)


def test_each_segment_starts_with_a_keyframe(segments: list[EncodedSegment]) -> None:
    for segment in segments:
        with av.open(io.BytesIO(segment.data)) as container:
            first_packet = next(p for p in container.demux(video=0) if p.size)
            assert first_packet.is_keyframe
        assert decode_video(segment.data)[0].key_frame


def test_recording_is_produced_one_segment_at_a_time(scene: SyntheticScene) -> None:
    segments = iter_recording(scene, STARTED_AT, 3, segment_s=1, audio=False)
    first = next(segments)
    assert first.index == 0 and first.duration_s == pytest.approx(1)
    assert [s.index for s in segments] == [1, 2]


def test_thirty_seconds_encode_quickly(scene: SyntheticScene) -> None:
    began = time.perf_counter()
    segments = encode_recording(scene, STARTED_AT, 30, segment_s=10)
    elapsed = time.perf_counter() - began
    assert len(segments) == 3
    # About 1 s on two cores; the bound only catches an accidental slow path.
    assert elapsed < 10, f"encoding 30 s took {elapsed:.1f} s"


# --- burned-in overlay -------------------------------------------------------------------------


def test_clock_ticks_in_the_burned_in_text(segments: list[EncodedSegment]) -> None:
    frames = [f.to_ndarray(format="rgb24")[CLOCK_AREA] for f in decode_video(segments[0].data)]
    assert glyph_mismatches(frames[0], frames[1]) == 0  # same second, same text
    assert glyph_mismatches(frames[0], frames[FPS]) > 0  # one second later
    assert diff(frames[0], frames[FPS]) > diff(frames[0], frames[1])


def test_text_box_is_burned_over_the_scene(segments: list[EncodedSegment], scene: SyntheticScene) -> None:
    decoded = decode_video(segments[1].data)[0].to_ndarray(format="rgb24")
    raw = scene.rgb(5 * FPS)  # the first frame of the second segment
    assert diff(decoded[CLOCK_AREA], raw[CLOCK_AREA]) > 30
    # Elsewhere the picture is the scene, give or take compression.
    assert diff(decoded[SCENE_AREA], raw[SCENE_AREA]) < 8


def test_overlay_shows_the_capture_time(segments: list[EncodedSegment], scene: SyntheticScene) -> None:
    decoded = decode_video(segments[1].data)[0].to_ndarray(format="rgb24")[CLOCK_AREA]
    captured = STARTED_AT + timedelta(seconds=5)

    def mismatch(offset_s: int) -> int:
        at = captured + timedelta(seconds=offset_s)
        expected = burn_in(scene.rgb(5 * FPS), format_burn_in(at, AGENT, CAMERA))
        return glyph_mismatches(decoded, expected[CLOCK_AREA])

    # The text is exactly that of the capture time, not that of a nearby second (an encode time).
    assert mismatch(0) == 0
    assert all(mismatch(offset) > 0 for offset in (-1, 1, 2, 3600))


def test_burn_in_writes_white_text_on_a_dark_box(scene: SyntheticScene) -> None:
    raw = scene.rgb(0)
    image = scene.rgb(0)
    assert burn_in(image, ["12:00:00", "Agent X"]) is image
    box = image[4:30, 4:60]
    assert (box.max(axis=2) < 40).mean() > 0.5  # mostly the dark box
    assert (box.min(axis=2) > 200).any()  # some white text
    assert diff(image[SCENE_AREA], raw[SCENE_AREA]) == 0
    other = burn_in(scene.rgb(0), ["12:00:01", "Agent X"])
    assert diff(image[CLOCK_AREA], other[CLOCK_AREA]) > 0


def test_burn_in_rejects_non_rgb_arrays() -> None:
    with pytest.raises(ValueError):
        burn_in(np.zeros((240, 320), dtype=np.uint8), ["x"])


def test_format_burn_in_uses_paris_time() -> None:
    summer = format_burn_in(datetime(2026, 7, 1, 10, 0, 0, tzinfo=UTC), AGENT, CAMERA)
    winter = format_burn_in(datetime(2026, 1, 1, 10, 0, 0, tzinfo=UTC), AGENT, CAMERA)
    assert summer[0] == "2026-07-01 12:00:00 Europe/Paris"
    assert winter[0] == "2026-01-01 11:00:00 Europe/Paris"
    assert format_burn_in(STARTED_AT, AGENT, CAMERA) == [
        "2026-11-23 17:04:05 Europe/Paris",
        "Agent PM-0421",
        "Caméra cam-abc",
    ]
    with pytest.raises(ValueError):
        format_burn_in(datetime(2026, 1, 1, 10, 0, 0), AGENT, CAMERA)


# --- synthetic scene ---------------------------------------------------------------------------


def test_scene_is_deterministic_and_moves() -> None:
    a, b = SyntheticScene(seed=7), SyntheticScene(seed=7)
    assert np.array_equal(a.rgb(42), b.rgb(42))
    assert not np.array_equal(a.rgb(42), SyntheticScene(seed=8).rgb(42))
    assert not np.array_equal(a.rgb(0), a.rgb(FPS))
    frame = a.video_frame(3)
    assert (frame.width, frame.height, frame.format.name) == (320, 240, "rgb24")


def test_scene_tone_is_440_hz_and_continuous() -> None:
    scene = SyntheticScene()
    second = scene.samples(0, 48_000)
    crossings = np.count_nonzero(np.diff(np.signbit(second)))
    assert crossings == pytest.approx(880, abs=2)
    # Chunks join without a click: same samples however the sound is cut.
    joined = np.concatenate([scene.samples(0, 960), scene.samples(960, 960)])
    assert np.array_equal(joined, scene.samples(0, 1920))
    frame = scene.audio_frame(0, 960)
    assert (frame.samples, frame.sample_rate, frame.layout.name) == (960, 48_000, "mono")


def test_scene_rejects_odd_sizes() -> None:
    with pytest.raises(ValueError):
        SyntheticScene(width=321)


# --- streaming writer --------------------------------------------------------------------------


def test_segment_writer_uses_capture_times(scene: SyntheticScene) -> None:
    # A live camera's frames arrive with jitter; their timestamps follow the capture clock.
    jitter = [0, 0.004, -0.003]
    with SegmentWriter(4, STARTED_AT, width=320, height=240, fps=FPS, agent_id=AGENT, camera_id=CAMERA) as writer:
        for i in range(2 * FPS):
            at = STARTED_AT + timedelta(seconds=i * FRAME_S + jitter[i % 3])
            writer.add_video(scene.video_frame(i), at)
            writer.add_audio(scene.audio_frame(i * 3200, 3200))
        segment = writer.close()
    assert segment.index == 4
    assert segment.started_at == STARTED_AT
    assert segment.duration_s == pytest.approx(2, abs=FRAME_S)
    assert segment.ended_at == STARTED_AT + timedelta(seconds=segment.duration_s)
    frames = decode_video(segment.data)
    assert len(frames) == 2 * FPS
    assert float(frames[1].pts * frames[1].time_base) == pytest.approx(FRAME_S + 0.004, abs=1e-4)
    with pytest.raises(ValueError):
        writer.close()


def test_segment_writer_without_frames_is_refused() -> None:
    writer = SegmentWriter(0, STARTED_AT, width=320, height=240, fps=FPS, agent_id=AGENT, camera_id=CAMERA)
    with pytest.raises(ValueError):
        writer.close()


def test_segment_writer_requires_aware_times(scene: SyntheticScene) -> None:
    with pytest.raises(ValueError):
        SegmentWriter(0, datetime(2026, 1, 1), width=320, height=240, fps=FPS, agent_id=AGENT, camera_id=CAMERA)
    with SegmentWriter(0, STARTED_AT, width=320, height=240, fps=FPS, agent_id=AGENT, camera_id=CAMERA) as w:
        with pytest.raises(ValueError):
            w.add_video(scene.rgb(0), datetime(2026, 1, 1))


# --- external player ---------------------------------------------------------------------------


def test_ffprobe_reads_a_segment_alone(segments: list[EncodedSegment], tmp_path) -> None:
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        if os.environ.get("CI"):
            pytest.fail("ffprobe is required in CI (apt-get install ffmpeg)")
        pytest.skip("ffprobe is not installed on this machine")
    for segment in segments:
        path = tmp_path / f"segment-{segment.index}.mp4"
        path.write_bytes(segment.data)
        result = subprocess.run(
            [ffprobe, "-v", "error", "-show_streams", "-of", "json", str(path)],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        streams = json.loads(result.stdout)["streams"]
        codecs = {s["codec_type"]: s["codec_name"] for s in streams}
        assert codecs["video"] == "h264"
        assert codecs["audio"] in {"aac", "opus"}
        assert result.stderr == ""


def test_the_live_feed_takes_sound_while_the_csu_ends_and_restarts_the_session():
    """The capture loop hands sound to the live feed while the live link closes and opens it from another thread
    (the CSU ends a session, the wearer presses live again): no error ever reaches the capture loop (one once
    killed its thread, and with it the recording)."""
    import threading

    import av
    import numpy as np

    from temoin.camera.live_media import LiveFeed

    feed = LiveFeed(64, 48, 10)
    stop = threading.Event()

    def toggle() -> None:
        while not stop.is_set():
            feed.open()
            feed.close()

    frame = av.AudioFrame.from_ndarray(np.zeros((1, 960), np.float32), format="flt", layout="mono")
    frame.sample_rate = 48_000
    toggler = threading.Thread(target=toggle, daemon=True)
    toggler.start()
    try:
        for _ in range(3000):
            feed.put_audio(frame)
            feed.put_video(np.zeros((48, 64, 3), np.uint8))
    finally:
        stop.set()
        toggler.join(5)
    feed.open()
    feed.put_audio(frame)  # a session opened afterwards hears the microphone again
    assert len(feed._audio) > 0
