"""Audio features exactly as the MLPerf Tiny keyword-spotting reference computes them.

16 kHz mono, one second (16000 samples, zero padded); the waveform is divided by its maximum
(as the reference does for MFCC features); STFT with a 30 ms (480-sample) Hann window, 20 ms
(320-sample) stride, FFT length 512; magnitude; 40 mel bins from 20 Hz to 4000 Hz;
log(mel + 1e-6); DCT (tf.signal.mfccs_from_log_mel_spectrograms); the first 10 coefficients.
Result: 49 frames x 10 coefficients x 1 channel.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from toolchain.errors import StqError

RATE = 16000
SAMPLES = 16000
WINDOW = 480
STRIDE = 320
MEL_BINS, LOW_HZ, HIGH_HZ = 40, 20.0, 4000.0
COEFFS = 10
FRAMES = 1 + (SAMPLES - WINDOW) // STRIDE  # 49


def read_wav(path: Path) -> np.ndarray:
    """A 16-bit PCM mono WAV as float32 samples in [-1, 1)."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1:
                raise StqError(f"{path}: expected 16-bit mono PCM, got {w.getnchannels()} "
                               f"channel(s) of {8 * w.getsampwidth()} bits")
            if w.getframerate() != RATE:
                raise StqError(f"{path}: sample rate {w.getframerate()} Hz; expected {RATE}")
            data = w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError) as exc:
        raise StqError(f"{path} is not a readable WAV file ({exc})") from None
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def mfcc(samples: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    x = np.zeros(SAMPLES, dtype=np.float32)
    n = min(len(samples), SAMPLES)
    x[:n] = samples[:n]
    peak = float(np.max(x))
    if peak > 0:
        x = x / peak
    stft = tf.signal.stft(tf.constant(x), frame_length=WINDOW, frame_step=STRIDE,
                          fft_length=None, window_fn=tf.signal.hann_window)
    spec = tf.abs(stft)
    mel_matrix = tf.signal.linear_to_mel_weight_matrix(MEL_BINS, int(spec.shape[-1]), RATE,
                                                       LOW_HZ, HIGH_HZ)
    log_mel = tf.math.log(tf.tensordot(spec, mel_matrix, 1) + 1e-6)
    feats = tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., :COEFFS]
    return feats.numpy().reshape(FRAMES, COEFFS, 1)
