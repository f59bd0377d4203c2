"""Compile generated C for the host and run it: the host-native check of the C kernels."""

from __future__ import annotations

import ctypes
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from toolchain.errors import StqError
from toolchain.firmware.cflags import MODEL_STRICT
from toolchain.ir.graph import Graph
from toolchain.reference.model import NP_DTYPE
from toolchain.resources import firmware_dir

HOST_MAIN = firmware_dir() / "host" / "stq_host_main.c"


def compile_host(cdir: Path, exe: Path, cc: str = "gcc", extra: list[str] | None = None,
                 with_main: bool = True) -> Path:
    """Build the host runner against the model sources in ``cdir`` (without ``with_main``: the
    model alone, e.g. as a shared library with ``extra=["-shared", "-fPIC"]``)."""
    srcs = [str(cdir / f) for f in ("model.c", "weights.c", "kernels.c")]
    srcs += [str(HOST_MAIN)] if with_main else []
    cmd = [cc, *MODEL_STRICT, "-O2", f"-I{cdir}", *srcs, "-o", str(exe), *(extra or [])]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise StqError(f"host compile of {cdir} failed:\n{proc.stderr.strip()}")
    return exe


class HostLibrary:
    """The generated C model compiled as a shared library and called in-process (ctypes): one C
    call per input and no process per batch, for oracles queried one input at a time (the
    binary searches of HopSkipJump and Boundary, Square). The same sources and flags as
    ``compile_host``; outputs are bit for bit the executable's."""

    def __init__(self, g: Graph, cdir: Path, workdir: Path | None = None) -> None:
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="stq-host-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        # a fresh name per instance: dlopen of a path it already holds returns the old library
        fd, so = tempfile.mkstemp(prefix="libstq_model_", suffix=".so", dir=self.workdir)
        os.close(fd)
        compile_host(Path(cdir), Path(so), extra=["-shared", "-fPIC"], with_main=False)
        self._lib = ctypes.CDLL(so)
        self._run = self._lib.stq_model_run
        self._run.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self._run.restype = ctypes.c_int
        tin, tout = g.tensors[g.input], g.tensors[g.output]
        self._in_dtype = np.dtype(NP_DTYPE[tin.dtype])
        self._in_size = int(tin.size)
        self._out_dtype = np.dtype(NP_DTYPE[tout.dtype])
        self._out_size = int(tout.size)

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """Outputs (N, count) for a batch of integer inputs (N, ...)."""
        x = np.ascontiguousarray(np.asarray(inputs).astype(self._in_dtype)).reshape(
            len(inputs), self._in_size)
        y = np.empty((len(x), self._out_size), self._out_dtype)
        run, xp, yp = self._run, x.ctypes.data, y.ctypes.data
        xs, ys = x.strides[0], y.strides[0]
        for i in range(len(x)):
            status = run(xp + i * xs, yp + i * ys)
            if status != 0:
                raise StqError(f"host model library: stq_model_run returned {status} on input {i}")
        return y


class HostModel:
    """The generated C model as a host executable."""

    def __init__(self, g: Graph, cdir: Path, workdir: Path | None = None,
                 extra_cflags: list[str] | None = None) -> None:
        self.g = g
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="stq-host-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.exe = compile_host(Path(cdir), self.workdir / "stq_host", extra=extra_cflags)

    def _run(self, inputs: np.ndarray, layers: bool) -> bytes:
        tin = self.g.tensors[self.g.input]
        x = np.asarray(inputs).astype(NP_DTYPE[tin.dtype]).reshape(len(inputs), -1)
        fi = self.workdir / "inputs.bin"
        fo = self.workdir / "outputs.bin"
        fi.write_bytes(x.tobytes())
        args = [str(self.exe), str(fi), str(fo)] + (["layers"] if layers else [])
        proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise StqError(f"host model failed (exit {proc.returncode}): {proc.stderr.strip()}")
        data = fo.read_bytes()
        os.unlink(fo)
        return data

    def predict(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Outputs (N, count) and the C argmax (N,) for a batch of integer inputs."""
        tout = self.g.tensors[self.g.output]
        dt = np.dtype(NP_DTYPE[tout.dtype]).newbyteorder("<")
        rec = np.dtype([("y", dt, (tout.size,)), ("top", "<i4")])
        arr = np.frombuffer(self._run(inputs, False), dtype=rec)
        return arr["y"].copy(), arr["top"].copy()

    def layers(self, inputs: np.ndarray) -> list[dict[str, np.ndarray]]:
        """Every layer's output, per input, keyed by output tensor name."""
        data = self._run(inputs, True)
        result, pos = [], 0
        for _ in range(len(inputs)):
            per: dict[str, np.ndarray] = {}
            for n in self.g.nodes:
                t = self.g.tensors[n.output]
                dt = np.dtype(NP_DTYPE[t.dtype]).newbyteorder("<")
                per[n.output] = np.frombuffer(data, dt, t.size, pos).reshape(t.shape)
                pos += t.nbytes
            result.append(per)
        if pos != len(data):
            raise StqError(f"host model wrote {len(data)} bytes, expected {pos}")
        return result
