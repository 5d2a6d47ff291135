"""Compiler flags of the CoreNEURON mechanism library, and the identity of the CPU a tuned build is tied to.

The CoreNEURON library is compiled with :data:`TUNED_FLAGS` (``nrnivmodl -coreneuron -incflags``; the makefile's
own ``-O2`` comes first, so these override it). ``-march=native`` makes the library use this CPU's widest vector
instructions, so a tuned build is valid only on the CPU that made it: its cache key holds :func:`cpu_identity`,
and a cache shared by the nodes of a cluster keeps one build per CPU type. Setting the environment variable
:data:`PORTABLE_ENV` to 1 builds with :data:`PORTABLE_FLAGS` instead (same maths, baseline x86-64/arm64
instructions), whose key holds only the machine architecture.

Why these flags: the gain comes from vectorising the mechanisms' rate functions, whose ``exp`` (and ``pow``)
calls become SIMD calls into glibc's libmvec only when the compiler may drop ``errno`` (``-fno-math-errno``) and
glibc's ``math.h`` declares the vector variants, which it does only under ``__FAST_MATH__`` (defined here by
hand; the other headers that read it only set ``math_errhandling`` to 0 and pick NaN-checking variants).
``-fno-trapping-math`` lets loops with branches (the rate singularities) be if-converted and vectorised; this
code never enables floating-point traps. After ``exp``, the kernels' cost is division: NMODL writes each gate's
update as ``m + (1 - exp(dt·(-1/τ)))·(-(m∞/τ)/(-1/τ) - m)`` and each rate with constant divisors (``/6``), and
``-freciprocal-math`` lets the compiler multiply by reciprocals instead (each such result may differ from the
divided one in its last bit; sums keep their order). On x86-64 the tuned build also asks for 512-bit vectors
(``-mprefer-vector-width=512``: GCC otherwise keeps to 256 bits on CPUs with AVX-512, halving the width of the
SIMD ``exp``). Measured on cell1 (``benchmarks/sim_speed.py``): the two together cut CoreNEURON's CPU time by
about a quarter, with the same somatic trace to float32 precision. ``-ffast-math`` as a whole would also assume
no NaN or infinity exists (``-ffinite-math-only``), removing the checks that let a diverging simulation show as
NaN, and let the compiler reorder sums (``-fassociative-math``); without ``__FAST_MATH__`` it vectorises nothing.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
from pathlib import Path

#: Environment variable: "1" builds the CoreNEURON library with :data:`PORTABLE_FLAGS` (no CPU-specific code).
PORTABLE_ENV = "NEURONCOMPUTE_PORTABLE_MECHANISMS"
#: Environment variable: compiler flags used verbatim instead of either set (to measure other combinations).
FLAGS_ENV = "NEURONCOMPUTE_CORENEURON_FLAGS"
#: Maths flags shared by both builds: libmvec's SIMD exp (declared under ``__FAST_MATH__``), no errno, no traps,
#: multiplication by reciprocals.
_MATHS = "-O3 -fno-math-errno -fno-trapping-math -freciprocal-math -D__FAST_MATH__"
#: x86-64 only (GCC rejects the option elsewhere): full-width AVX-512 vectors where the CPU has them.
_WIDE_VECTORS = " -mprefer-vector-width=512" if platform.machine() in ("x86_64", "AMD64") else ""
TUNED_FLAGS = f"{_MATHS} -march=native{_WIDE_VECTORS}"
PORTABLE_FLAGS = _MATHS
_CPUINFO = Path("/proc/cpuinfo")
_CPU_KEYS = ("vendor_id", "cpu family", "model", "model name", "flags", "CPU implementer", "CPU part", "Features")


def portable_requested() -> bool:
    """Whether :data:`PORTABLE_ENV` asks for the portable build."""
    return os.environ.get(PORTABLE_ENV, "").strip().lower() in ("1", "true", "yes")


def coreneuron_flags() -> str:
    """The flags the CoreNEURON library is compiled with here: :data:`FLAGS_ENV`'s if set, else portable if asked
    for, else tuned."""
    if os.environ.get(FLAGS_ENV) is not None:
        return os.environ[FLAGS_ENV]
    return PORTABLE_FLAGS if portable_requested() else TUNED_FLAGS


def cpu_specific(flags: str) -> bool:
    """Whether ``flags`` tie the build to the CPU that compiles it."""
    return any(flag.startswith(("-march=native", "-mcpu=native", "-mtune=native")) for flag in flags.split())


@functools.cache
def cpu_identity() -> str:
    """This CPU's type: the machine architecture plus a sha256 (16 hex digits) of the first processor's
    vendor, family, model, model name and feature flags in /proc/cpuinfo (``platform.processor()`` where there
    is none). Nodes of one CPU type share it; a CPU with other features (what ``-march=native`` uses) differs."""
    lines = []
    if _CPUINFO.is_file():
        for line in _CPUINFO.read_text(errors="replace").splitlines():
            if not line.strip():
                if lines:
                    break
                continue
            key, _, value = (part.strip() for part in line.partition(":"))
            if key in _CPU_KEYS:
                lines.append(f"{key}={' '.join(sorted(value.split()))}")
    if not lines:
        lines.append(platform.processor())
    return f"{platform.machine()}-{hashlib.sha256(chr(10).join(lines).encode()).hexdigest()[:16]}"


def build_identity(flags: str) -> str:
    """What besides the sources decides a CoreNEURON build: the flags, and the CPU for CPU-specific flags (the
    architecture otherwise)."""
    target = cpu_identity() if cpu_specific(flags) else platform.machine()
    return f"coreneuron flags={' '.join(flags.split())} target={target}"
