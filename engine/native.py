"""Native kernels: C sources in ``engine/csrc`` built on first use with the machine's compiler.

- ``csrc/decode_attention.c``: one new token against a bfloat16 KV cache, where torch's CPU
  SDPA reaches ~5 GB/s and this kernel ~30 (the file says why).
- ``csrc/ggml_matmul.c``: products with weights in GGML's quantized blocks as the GGUF file
  holds them (fewer bytes a token than torch's int4/int8 forms), and their dequantization.
- ``csrc/decode_layers.c``: a whole decode step through every block in one call, for models
  whose projections are all GGML blocks (``engine.fused_decode`` decides and calls it).

They are built with ``-march=native`` into one library in the cache folder, keyed on the
sources, the flags and the CPU, so each later process only loads it (~1 ms). Its OpenMP calls are linked against the
libgomp that torch has already loaded, so they run on torch's own thread team, never a second
one (two teams on two cores cost half the decode speed, see ``engine.engine_thread``).

Everything here is optional: with no C compiler, a build error, a CPU without AVX-512, an
unwritable cache or ``CHATAPP_NATIVE=0``, :func:`decode_attention` returns None and the model
uses SDPA, and :func:`ggml_kernels` is False so the loader converts K-quant blocks to the
int4/int8 forms: this module never makes the engine fail.
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

CSRC = Path(__file__).with_name("csrc")
SOURCES = (CSRC / "decode_attention.c", CSRC / "ggml_matmul.c", CSRC / "decode_layers.c")
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
        self.ggml_matmul = lib.chatapp_ggml_matmul
        self.ggml_matmul.restype = ctypes.c_int
        self.ggml_matmul.argtypes = [
            *(ctypes.c_int, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p),
            *(ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int),
        ]
        self.ggml_dequant = lib.chatapp_ggml_dequant
        self.ggml_dequant.restype = ctypes.c_int
        self.ggml_dequant.argtypes = [
            *(ctypes.c_int, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p),
            *(ctypes.c_int64, ctypes.c_int),
        ]
        self.ggml_isa = int(lib.chatapp_ggml_isa())
        self.decode_layers = lib.chatapp_decode_layers
        self.decode_layers.restype = ctypes.c_int
        self.decode_layers.argtypes = [
            *(ctypes.c_void_p,) * 4,
            *(ctypes.c_int64,) * 3,
            *(ctypes.c_void_p,) * 4,
            ctypes.c_int,
        ]


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
    """Compile the kernels into ``dest_dir`` (if not already there) and return the library.

    Raises OSError or subprocess.CalledProcessError when it cannot be built."""
    cc = _compiler()
    if cc is None:
        raise OSError("no C compiler found (set CC)")
    gomp = _loaded_libgomp() if "OpenMP" in torch.__config__.parallel_info() else None
    flags = [*FLAGS, *extra_flags]
    key = hashlib.sha256(
        b"\0".join(
            [
                *(src.read_bytes() for src in SOURCES),
                " ".join(flags).encode(),
                " ".join(cc).encode(),
                _cpu_key().encode(),
                str(gomp).encode(),
            ]
        )
    ).hexdigest()[:16]
    lib = dest_dir / f"chatapp_native-{key}.so"
    if lib.exists():
        return lib
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".build-") as tmp:
        out = Path(tmp) / lib.name
        compile_flags = [*flags, "-fopenmp"] if gomp else flags
        run = dict(check=True, capture_output=True, timeout=BUILD_TIMEOUT)
        objs = [str(Path(tmp) / (src.stem + ".o")) for src in SOURCES]
        # The sources compile side by side (the first model load on a machine waits for this)
        compiles = [
            subprocess.Popen(
                [*cc, *compile_flags, "-c", str(src), "-o", obj],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for src, obj in zip(SOURCES, objs, strict=True)
        ]
        failed = None
        for proc in compiles:
            try:
                _, err = proc.communicate(timeout=BUILD_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            if proc.returncode != 0 and failed is None:
                failed = subprocess.CalledProcessError(proc.returncode, proc.args, stderr=err)
        if failed is not None:
            raise failed
        # Linked against the loaded libgomp by its path (not -lgomp): the library then needs
        # that very file, which the dynamic linker finds already in the process.
        link = [*cc, "-shared", *objs, *([gomp] if gomp else []), "-o", str(out), "-lm"]
        subprocess.run(link, **run)  # type: ignore[call-overload]
        os.replace(out, lib)
    for old in [*dest_dir.glob("chatapp_native-*.so"), *dest_dir.glob("decode_attention-*.so")]:
        if old != lib:  # builds of older sources (a process still using one keeps its map)
            old.unlink(missing_ok=True)
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
            log.debug("native kernels not built in %s: %s %s", where, e, detail[-500:])
            continue
        return kernel if kernel.isa > 0 else None
    return None


def kernel() -> _Kernel | None:
    """The native kernels, built or loaded once per process; None where unavailable."""
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


# GGML's type numbers for the blocks ``csrc/ggml_matmul.c`` reads.
GGML_TYPES = {"q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "q4_k": 12, "q6_k": 14}
GGML_MAX_ROWS = 64  # rows of x one ggml_matmul call takes (GGMLLinear sends fewer)


def ggml_kernels() -> bool:
    """Whether the K-quant kernels run here (they need AVX512-VNNI)."""
    kern = kernel()
    return kern is not None and kern.ggml_isa > 0


def ggml_matmul(
    kind: str, blocks: torch.Tensor, cols: int, x: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``x @ W.T`` for ``W`` ``[rows, cols]`` held as ``blocks`` (uint8 ``[rows, bytes a row]``
    of GGML ``kind`` blocks) and ``x`` bfloat16 ``[n, cols]``, n <= ``GGML_MAX_ROWS``, its
    rows contiguous. Returns bfloat16 ``[n, rows]``: ``out`` if given (a view whose rows are
    contiguous, e.g. columns of a wider output). Only where :func:`ggml_kernels`."""
    kern = kernel()
    assert kern is not None and x.dtype == torch.bfloat16 and x.stride(-1) == 1
    n, rows = x.shape[0], blocks.shape[0]
    y = torch.empty((n, rows), dtype=torch.bfloat16) if out is None else out
    assert y.shape == (n, rows) and y.dtype == torch.bfloat16 and y.stride(-1) == 1
    status = kern.ggml_matmul(
        GGML_TYPES[kind], blocks.data_ptr(), rows, cols, x.data_ptr(), x.stride(0), n,
        y.data_ptr(), y.stride(0), torch.get_num_threads(),
    )  # fmt: skip
    if status != 0:
        raise ValueError(f"ggml_matmul does not take {kind} {tuple(blocks.shape)} x {x.shape}")
    return y


def ggml_dequantize(
    kind: str, blocks: torch.Tensor, cols: int, out: torch.Tensor | None = None
) -> torch.Tensor:
    """The bfloat16 ``[rows, cols]`` values of GGML ``kind`` blocks (into ``out`` if given,
    a contiguous bfloat16 tensor of that shape). Only where :func:`ggml_kernels`."""
    kern = kernel()
    assert kern is not None and blocks.is_contiguous()
    rows = blocks.shape[0]
    if out is None:
        out = torch.empty((rows, cols), dtype=torch.bfloat16)
    assert out.shape == (rows, cols) and out.dtype == torch.bfloat16 and out.is_contiguous()
    status = kern.ggml_dequant(
        GGML_TYPES[kind], blocks.data_ptr(), rows, cols, out.data_ptr(), cols,
        torch.get_num_threads(),
    )  # fmt: skip
    if status != 0:
        raise ValueError(f"ggml_dequant does not take {kind} {tuple(blocks.shape)}")
    return out
