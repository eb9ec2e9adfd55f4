"""Native kernels: C sources in ``engine/csrc`` built on first use with the machine's compiler.

Only decode attention for now (``csrc/decode_attention.c``): one new token against a bfloat16
KV cache, where torch's CPU SDPA reaches ~5 GB/s and this kernel ~30 (the file says why). It
is built with ``-march=native`` into the cache folder, keyed on the source, the flags and the
CPU, so each later process only loads it (~1 ms). Its OpenMP calls are linked against the
libgomp that torch has already loaded, so they run on torch's own thread team, never a second
one (two teams on two cores cost half the decode speed, see ``engine.engine_thread``).

Everything here is optional: with no C compiler, a build error, a CPU without AVX-512, an
unwritable cache or ``CHATAPP_NATIVE=0``, :func:`decode_attention` returns None and the model
uses SDPA, so this module never makes the engine fail.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import torch

from engine.paths import cache_dir

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("csrc") / "decode_attention.c"
FLAGS = ["-O3", "-march=native", "-fPIC", "-std=c11"]
BUILD_TIMEOUT = 120  # seconds
ENV = "CHATAPP_NATIVE"  # "0" turns the kernels off (A/B benchmarks, bug hunts)

_lock = threading.Lock()
_kernel: _Kernel | None = None
_tried = False


class _Kernel:
    def __init__(self, lib: ctypes.CDLL) -> None:
        fn = lib.chatapp_decode_attention
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64] * 6 + [ctypes.c_float, ctypes.c_int]
        self.fn = fn
        self.isa = int(lib.chatapp_decode_attention_isa())


def _loaded_libgomp() -> str | None:
    """The libgomp this process has loaded (torch's), or None."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    for line in maps.splitlines():
        path = line.split(maxsplit=5)[-1]
        if os.path.basename(path).startswith("libgomp") and ".so" in path:
            return path
    return None


def _cpu_key() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _compiler() -> list[str] | None:
    cc = os.environ.get("CC")  # may carry words: "ccache gcc"
    if cc:
        return shlex.split(cc)
    found = next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    return [found] if found else None


def build(dest_dir: Path, *, extra_flags: tuple[str, ...] = ()) -> Path:
    """Compile the kernel into ``dest_dir`` (if not already there) and return the library.

    Raises OSError or subprocess.CalledProcessError when it cannot be built."""
    cc = _compiler()
    if cc is None:
        raise OSError("no C compiler found (set CC)")
    gomp = _loaded_libgomp() if "OpenMP" in torch.__config__.parallel_info() else None
    flags = [*FLAGS, *extra_flags]
    source = SOURCE.read_bytes()
    key = hashlib.sha256(
        b"\0".join(
            [
                source,
                " ".join(flags).encode(),
                " ".join(cc).encode(),
                _cpu_key().encode(),
                str(gomp).encode(),
            ]
        )
    ).hexdigest()[:16]
    lib = dest_dir / f"decode_attention-{key}.so"
    if lib.exists():
        return lib
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".build-") as tmp:
        obj, out = Path(tmp) / "kernel.o", Path(tmp) / lib.name
        compile_flags = [*flags, "-fopenmp"] if gomp else flags
        run = dict(check=True, capture_output=True, timeout=BUILD_TIMEOUT)
        subprocess.run([*cc, *compile_flags, "-c", str(SOURCE), "-o", str(obj)], **run)  # type: ignore[call-overload]
        # Linked against the loaded libgomp by its path (not -lgomp): the library then needs
        # that very file, which the dynamic linker finds already in the process.
        link = [*cc, "-shared", str(obj), *([gomp] if gomp else []), "-o", str(out), "-lm"]
        subprocess.run(link, **run)  # type: ignore[call-overload]
        os.replace(out, lib)
    return lib


def _load() -> _Kernel | None:
    if os.environ.get(ENV, "1") == "0" or not sys.platform.startswith("linux"):
        return None
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None  # the kernel is AVX-512 only
    for where in (cache_dir() / "native", Path(tempfile.gettempdir()) / "chatapp-native"):
        try:
            kernel = _Kernel(ctypes.CDLL(str(build(where))))
        except (OSError, subprocess.SubprocessError, AttributeError) as e:
            detail = getattr(e, "stderr", b"") or b""
            log.debug("decode attention kernel not built in %s: %s %s", where, e, detail[-500:])
            continue
        return kernel if kernel.isa > 0 else None
    return None


def kernel() -> _Kernel | None:
    """The decode-attention kernel, built or loaded once per process; None where unavailable."""
    global _kernel, _tried
    if not _tried:
        with _lock:
            if not _tried:
                _kernel = _load()
                _tried = True
    return _kernel


def decode_attention_path(dtype: torch.dtype, device: torch.device | str) -> str:
    """What a model of this dtype on this device decodes its attention with: ``native`` or
    ``sdpa`` (for ``chatapp bench``)."""
    usable = dtype == torch.bfloat16 and torch.device(device).type == "cpu"
    return "native" if usable and kernel() is not None else "sdpa"


def decode_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None
) -> torch.Tensor | None:
    """Attention of one new token: q ``[1, heads, 1, dim]``, k/v ``[1, kv_heads, T, dim]``
    (views of the cache are fine). Returns ``[1, 1, heads * dim]``, or None where the kernel
    does not apply (then use SDPA): not built, not bfloat16 on the CPU, an odd layout."""
    kern = kernel()
    if kern is None or q.dtype != torch.bfloat16 or q.device.type != "cpu":
        return None
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        return None  # no backward here: training keeps SDPA
    batch, heads, n, dim = q.shape
    kv_heads, length = k.shape[1], k.shape[2]
    if (
        n != 1
        or batch != 1
        or k.dtype != q.dtype
        or v.dtype != q.dtype
        or heads % kv_heads
        or q.stride(1) != dim
        or q.stride(3) != 1
        or k.stride(3) != 1
        or v.stride(3) != 1
        or (length > 1 and (k.stride(2) != dim or v.stride(2) != dim))
    ):
        return None
    out = torch.empty((1, 1, heads * dim), dtype=q.dtype)
    status = kern.fn(
        q.data_ptr(),
        k.data_ptr(),
        v.data_ptr(),
        out.data_ptr(),
        kv_heads,
        heads // kv_heads,
        dim,
        length,
        k.stride(1),
        v.stride(1),
        dim**-0.5 if scale is None else scale,
        torch.get_num_threads(),
    )
    return out if status == 0 else None
