"""Emulated clock.

Azure jobs take minutes; tests cannot wait that long.  Emulated time runs `scale` times faster
than real time starting from the real wall-clock time at start-up (so timestamps look current) and
can be pushed forward with `advance()` (control API `POST /clock`).  Every ASR timeline (jobs,
recovery points, initial replication) is expressed in emulated seconds.  Token lifetimes and the
ARM throttling buckets stay on real time, as on Azure, because clients measure them with their own
clocks.
"""
import threading
import time


class Clock:
    def __init__(self, scale=60.0):
        self._lock = threading.Lock()
        self._scale = float(scale)
        self._real0 = time.time()
        self._emu0 = self._real0
        self._offset = 0.0

    @property
    def scale(self):
        return self._scale

    def now(self):
        with self._lock:
            return self._emu0 + (time.time() - self._real0) * self._scale + self._offset

    def set_scale(self, scale):
        with self._lock:
            real = time.time()
            self._emu0 = self._emu0 + (real - self._real0) * self._scale
            self._real0 = real
            self._scale = float(scale)

    def advance(self, seconds):
        with self._lock:
            self._offset += float(seconds)

    def real_seconds(self, emulated_seconds):
        """How long (real seconds) an emulated duration takes."""
        return emulated_seconds / self._scale
