"""What a machine lacks for a hardware option (`facenet doctor`), and the environment MindSpore's GPU plugin needs
without a system CUDA (`facenet gpu-env`).

MindSpore 2.10's PyPI wheel carries `lib/plugin/libmindspore_gpu.so.11.6`, built against CUDA 11 and cuDNN 8. It
tries the plugin only when `CUDA_HOME` is set and `$CUDA_HOME/bin/nvcc --version` reports 11.6 or 11.8, and it
needs the CUDA libraries on `LD_LIBRARY_PATH`. PyPI ships those libraries (`pip install .[gpu]`); where no CUDA
toolkit is installed, a two-line `nvcc` shim answers the version question. Only the driver (`libcuda.so.1`) must
come from the system.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

PLUGIN = "libmindspore_gpu.so.11.6"
GPU_EXTRA = (
    "nvidia-cublas-cu11==11.11.3.6",
    "nvidia-cudnn-cu11==8.9.6.50",
    "nvidia-cuda-runtime-cu11==11.8.89",
    "nvidia-curand-cu11==10.3.0.86",
    "nvidia-cusolver-cu11==11.4.1.48",
    "nvidia-cufft-cu11==10.9.0.58",
    "nvidia-cusparse-cu11==11.7.5.86",
    "nvidia-cuda-nvrtc-cu11==11.8.89",
)
DRIVER = "libcuda.so.1"
NVCC_SHIM = """#!/bin/sh
# written by `facenet gpu-env`: MindSpore asks nvcc for the CUDA version to pick its GPU plugin
echo "nvcc: NVIDIA (R) Cuda compiler driver"
echo "Cuda compilation tools, release 11.6, V11.6.124"
"""


def mindspore_dir() -> Path:
    """The installed mindspore package folder, found without importing it (importing reads CUDA_HOME)."""
    return Path(sysconfig.get_paths()["purelib"]) / "mindspore"


def nvidia_lib_dirs(site: Path | None = None) -> list[Path]:
    """`lib` folders of the pip-installed NVIDIA packages (nvidia/<component>/lib)."""
    root = (site or Path(sysconfig.get_paths()["purelib"])) / "nvidia"
    return sorted(p for p in root.glob("*/lib") if p.is_dir())


def gpu_env(shim_dir: Path, site: Path | None = None, environ: dict | None = None) -> dict[str, str]:
    """CUDA_HOME and LD_LIBRARY_PATH for the GPU plugin. A CUDA_HOME whose nvcc exists is kept; otherwise an nvcc
    shim reporting 11.6 is written under `shim_dir`."""
    environ = dict(os.environ if environ is None else environ)
    cuda_home = environ.get("CUDA_HOME")
    if not cuda_home or not (Path(cuda_home) / "bin" / "nvcc").exists():
        nvcc = shim_dir / "bin" / "nvcc"
        nvcc.parent.mkdir(parents=True, exist_ok=True)
        nvcc.write_text(NVCC_SHIM)
        nvcc.chmod(0o755)
        cuda_home = str(shim_dir)
    plugin = mindspore_dir() / "lib" / "plugin"
    dirs = [str(d) for d in nvidia_lib_dirs(site)] + [str(plugin / "gpu11.6"), str(plugin)]
    old = [p for p in environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p and p not in dirs]
    return {"CUDA_HOME": cuda_home, "LD_LIBRARY_PATH": os.pathsep.join(dirs + old)}


def unresolved_libraries(library: Path, ld_library_path: str) -> list[str]:
    """Shared libraries `library` needs that the loader cannot find with this LD_LIBRARY_PATH (via ldd)."""
    if shutil.which("ldd") is None:
        raise RuntimeError("ldd is not available on this system")
    out = subprocess.run(
        ["ldd", str(library)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LD_LIBRARY_PATH": ld_library_path},
    ).stdout
    return sorted({line.split("=>")[0].strip() for line in out.splitlines() if "not found" in line})


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def checks(hardware: str, shim_dir: Path) -> list[Check]:
    """The checklist for `hardware` (cpu, gpu, cpu_dp, gpu_dp, ascend, ascend_dp)."""
    from importlib import metadata

    out = []
    try:
        version = metadata.version("mindspore")
        out.append(Check("mindspore installed", True, version))
    except metadata.PackageNotFoundError:
        return [Check("mindspore installed", False, "pip install mindspore==2.10.0")]
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA")
    out.append(
        Check(
            "oneDNN ISA pinned (fast CPU convolutions)",
            isa is not None,
            isa or "unset: `import facenet` sets AVX2 before mindspore is imported",
        )
    )
    if hardware.endswith("_dp"):
        msrun = Path(sys.executable).with_name("msrun")
        found = msrun.exists() or shutil.which("msrun") is not None
        out.append(Check("msrun launcher", found, str(msrun) if found else "not found: reinstall mindspore"))
        on_path = shutil.which("python")
        same = on_path is not None and Path(on_path).resolve() == Path(sys.executable).resolve()
        out.append(
            Check(
                "`python` on PATH is this environment's (msrun starts it)",
                same,
                on_path or "no python on PATH: activate the environment",
            )
        )
    if hardware.startswith("gpu"):
        plugin = mindspore_dir() / "lib" / "plugin" / PLUGIN
        out.append(Check("MindSpore GPU plugin", plugin.is_file(), str(plugin)))
        libs = nvidia_lib_dirs()
        hint = "" if len(libs) >= 8 else ": pip install .[gpu]"
        out.append(
            Check(
                "CUDA 11 / cuDNN 8 libraries (pip install .[gpu])",
                len(libs) >= 8,
                f"{len(libs)} of 8 nvidia lib folders{hint}",
            )
        )
        if plugin.is_file() and shutil.which("ldd"):
            env = gpu_env(shim_dir)
            missing = unresolved_libraries(plugin, env["LD_LIBRARY_PATH"])
            runtime = [m for m in missing if m != DRIVER]
            out.append(
                Check(
                    "plugin libraries resolve (with `facenet gpu-env`)",
                    not runtime,
                    "all found" if not runtime else "missing " + ", ".join(runtime),
                )
            )
            out.append(
                Check(
                    f"NVIDIA driver ({DRIVER})",
                    DRIVER not in missing,
                    "found" if DRIVER not in missing else "not found: install the NVIDIA driver",
                )
            )
        in_env = os.environ.get("CUDA_HOME") and Path(os.environ["CUDA_HOME"], "bin", "nvcc").exists()
        out.append(
            Check(
                "CUDA_HOME with bin/nvcc set",
                bool(in_env),
                os.environ.get("CUDA_HOME") or 'unset: eval "$(facenet gpu-env)" before running',
            )
        )
    if hardware.startswith("ascend"):
        plugin = mindspore_dir() / "lib" / "plugin" / "libmindspore_ascend.so.2"
        out.append(Check("MindSpore Ascend plugin", plugin.is_file(), str(plugin)))
        cann = os.environ.get("ASCEND_HOME_PATH") or os.environ.get("ASCEND_OPP_PATH")
        out.append(
            Check(
                "CANN toolkit environment (set_env.sh sourced)",
                bool(cann),
                cann or "source /usr/local/Ascend/ascend-toolkit/set_env.sh",
            )
        )
    out.append(
        Check(
            "onnxruntime (ONNX models, optional)",
            _installed("onnxruntime"),
            "installed" if _installed("onnxruntime") else "pip install .[onnx]",
        )
    )
    return out
