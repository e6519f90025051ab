"""Voice alteration: a vocoder that keeps the words and drops the voice.

Each short frame of sound (32 to 43 ms) is reduced to its spectral envelope (cepstral smoothing: the
resonances of the mouth that make the vowels and consonants), the envelope is stretched along the frequency axis (the
formants move, as for another vocal tract), and it is played again on a new source: a steady buzz at a pitch
six semitones away from the speaker's median pitch, plus some breath noise. The speaker's own pitch, its melody
and the fine structure of the voice are not carried over at all, so there is nothing to shift back; the loudness
of each frame is kept, so speech stays intelligible and silences stay silent. The output has exactly as many
samples as the input.

Numpy only, streamed (constant memory): about 10x faster than real time on one core at 48 kHz, 80x at the
16 kHz the pipeline uses.
"""

from __future__ import annotations

import numpy as np

SHIFT_SEMITONES = 6.0
FORMANT_UP, FORMANT_DOWN = 1.18, 0.86
SPLIT_HZ = 165.0  # median pitches below are moved up (and their formants too), others down
DEFAULT_PITCH_HZ = 150.0  # assumed when no voiced sound is found
BREATH = 0.35  # noise mixed into the buzz, relative level


def frame_size(rate: int) -> int:
    """About 40 ms rounded to a power of two (32 ms at 16 kHz, 43 ms at 48 kHz): long enough for the envelope,
    short enough for speech sounds."""
    return int(2 ** np.round(np.log2(rate * 0.04)))


def estimate_pitch(samples: np.ndarray, rate: int) -> float | None:
    """The median pitch (Hz) of the voiced frames of a mono signal, by normalised autocorrelation."""
    n = frame_size(rate)
    hop = n // 2
    if len(samples) < n:
        return None
    lo, hi = int(rate / 400), int(rate / 65)  # 65 to 400 Hz: speaking voices
    count = 1 + (len(samples) - n) // hop
    frames = np.lib.stride_tricks.as_strided(samples, (count, n), (samples.strides[0] * hop, samples.strides[0]))
    frames = frames - frames.mean(axis=1, keepdims=True)
    energy = (frames**2).sum(axis=1)
    loud = energy > max(1e-7 * n, 0.05 * np.median(energy[energy > 0]) if np.any(energy > 0) else 0)
    if not loud.any():
        return None
    spec = np.fft.rfft(frames[loud] * np.hanning(n), 2 * n)
    ac = np.fft.irfft(np.abs(spec) ** 2)[:, :n]
    ac /= np.maximum(ac[:, :1], 1e-12)
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    strength = ac[np.arange(len(lag)), lag]
    voiced = strength > 0.45
    if voiced.sum() < 3:
        return None
    return float(np.median(rate / lag[voiced]))


def plan(pitch_hz: float | None) -> tuple[float, float]:
    """(new pitch in Hz, formant stretch) for a speaker of median pitch `pitch_hz`."""
    pitch = pitch_hz or DEFAULT_PITCH_HZ
    if pitch < SPLIT_HZ:
        return pitch * 2 ** (SHIFT_SEMITONES / 12), FORMANT_UP
    return pitch * 2 ** (-SHIFT_SEMITONES / 12), FORMANT_DOWN


class VoiceChanger:
    """Streams mono float samples through the vocoder: `process()` as sound arrives, `flush()` at the end."""

    def __init__(self, rate: int, pitch_hz: float | None = None, seed: int = 0) -> None:
        self.rate = rate
        self.n = frame_size(rate)
        self.hop = self.n // 4
        target, self.stretch = plan(pitch_hz)
        self.period = max(2, int(round(rate / target)))
        self.pitch_hz = rate / self.period
        # One period of a band-limited pulse: every harmonic below Nyquist at the same level.
        harmonics = np.zeros(self.period // 2 + 1)
        harmonics[1:] = 1.0
        pulse = np.fft.irfft(harmonics, self.period)
        self._pulse = (pulse / np.sqrt(np.mean(pulse**2))).astype(np.float64)
        self._noise = np.random.default_rng(seed).standard_normal(1 << 16)
        self._window = np.hanning(self.n + 1)[:-1]
        self._norm = 1.5  # sum of squared Hann windows at a quarter-frame hop
        bins = np.arange(self.n // 2 + 1)
        self._warp = np.clip(bins / self.stretch, 0, self.n // 2)  # envelope read at bin k / stretch
        self._lifter = max(8, int(rate * 0.0018))  # keep quefrencies under ~1.8 ms: the envelope, not the pitch
        pad = self.n - self.hop
        self._buf = np.zeros(pad)
        self._frame_start = -pad  # absolute sample index of the next frame's first sample
        self._ola = np.zeros(self.n)
        self._taken = 0  # input samples received
        self._given = 0  # output samples returned

    def _source(self, start: int, count: int) -> np.ndarray:
        """The new voice's source under `count` frames from absolute sample `start`: (count, n), a view."""
        idx = np.maximum(np.arange(start, start + (count - 1) * self.hop + self.n), 0)
        signal = self._pulse[idx % self.period] + BREATH * self._noise[idx % len(self._noise)]
        s = signal.strides[0]
        return np.lib.stride_tricks.as_strided(signal, (count, self.n), (s * self.hop, s))

    def _frames(self, frames: np.ndarray, start: int) -> np.ndarray:
        spec = np.fft.rfft(frames * self._window, axis=1)
        power = (np.abs(spec) ** 2).sum(axis=1, keepdims=True)
        log_mag = np.log(np.abs(spec) + 1e-9)
        cep = np.fft.irfft(log_mag, self.n, axis=1)
        cep[:, self._lifter : self.n - self._lifter + 1] = 0
        envelope = np.fft.rfft(cep, axis=1).real
        lo = np.floor(self._warp).astype(int)
        hi = np.minimum(lo + 1, self.n // 2)
        frac = self._warp - lo
        warped = np.exp(envelope[:, lo] * (1 - frac) + envelope[:, hi] * frac)
        source = np.fft.rfft(self._source(start, len(frames)) * self._window, axis=1)
        out = warped * source
        out *= np.sqrt(power / np.maximum((np.abs(out) ** 2).sum(axis=1, keepdims=True), 1e-20))
        return np.fft.irfft(out, self.n, axis=1) * self._window / self._norm

    def _run(self) -> np.ndarray:
        count = 1 + (len(self._buf) - self.n) // self.hop if len(self._buf) >= self.n else 0
        if count == 0:
            return np.empty(0)
        s = self._buf.strides[0]
        frames = np.lib.stride_tricks.as_strided(self._buf, (count, self.n), (s * self.hop, s))
        synth = self._frames(frames, self._frame_start).reshape(count, 4, self.hop)
        # Overlap-add, a quarter frame at a time; the last three quarters carry over to the next call.
        total = np.zeros((count + 3, self.hop))
        total[:3] += self._ola.reshape(4, self.hop)[1:]
        for j in range(4):
            total[j : j + count] += synth[:, j]
        out = total[:count].ravel()
        self._ola = np.concatenate([np.zeros(self.hop), total[count:].ravel()])
        first = self._frame_start
        self._frame_start += count * self.hop
        self._buf = self._buf[count * self.hop :]
        # Output positions first .. first + len(out): drop the lead-in before sample 0.
        return out[max(0, -first) :] if first < 0 else out

    def process(self, samples: np.ndarray) -> np.ndarray:
        self._taken += len(samples)
        self._buf = np.concatenate([self._buf, np.asarray(samples, np.float64)])
        out = self._run()
        out = out[: max(0, self._taken - self._given)]
        self._given += len(out)
        return out.astype(np.float32)

    def flush(self) -> np.ndarray:
        """The rest: the output then has exactly as many samples as the input."""
        self._buf = np.concatenate([self._buf, np.zeros(self.n)])
        out = self._run()[: max(0, self._taken - self._given)]
        if len(out) < self._taken - self._given:
            out = np.concatenate([out, np.zeros(self._taken - self._given - len(out))])
        self._given += len(out)
        return np.clip(out, -1, 1).astype(np.float32)


def alter(samples: np.ndarray, rate: int) -> np.ndarray:
    """A whole mono signal at once (tests, short clips)."""
    changer = VoiceChanger(rate, estimate_pitch(samples, rate))
    return np.concatenate([changer.process(samples), changer.flush()])
