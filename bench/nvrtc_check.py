#!/usr/bin/env python3
"""Compile CUDA sources with NVRTC off the GPU machine, as CubeCL does at run time.

For kernels dumped by `kernels/lm-kernels/tests/flash_cuda_source.rs`: catches CUDA
compile errors and reports registers/spills without a device.

    python3 -m venv /tmp/cuvenv && /tmp/cuvenv/bin/pip install nvidia-cuda-nvrtc \
        nvidia-cuda-runtime nvidia-cuda-cccl
    /tmp/cuvenv/bin/python bench/nvrtc_check.py [--arch sm_90a] [--ptxas] FILE.cu ...

With `--ptxas` (needs `ptxas` on PATH, e.g. from pip's nvidia-cuda-nvcc) each PTX is also
assembled with `-v` to print register and spill counts.
"""
import argparse
import ctypes
import glob
import os
import subprocess
import sys
import tempfile


def nvidia_root():
    import nvidia  # the pip wheels' namespace package

    for base in nvidia.__path__:
        for sub in ("cu13", "cu12", "cuda_nvrtc"):
            if os.path.isdir(os.path.join(base, sub)):
                return os.path.join(base, sub)
    sys.exit("no nvidia CUDA wheel found; install nvidia-cuda-nvrtc")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", default="sm_90a")
    parser.add_argument("--ptxas", action="store_true")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()

    root = nvidia_root()
    lib = glob.glob(os.path.join(root, "lib", "libnvrtc.so*"))
    lib = [p for p in lib if "builtins" not in p]
    nvrtc = ctypes.CDLL(sorted(lib)[0])
    includes = [os.path.join(root, "include")]
    cccl = os.path.join(root, "include", "cccl")
    if os.path.isdir(cccl):
        includes.append(cccl)

    failed = 0
    for path in args.files:
        source = open(path, "rb").read()
        prog = ctypes.c_void_p()
        assert nvrtc.nvrtcCreateProgram(ctypes.byref(prog), source, None, 0, None, None) == 0
        opts = [f"--gpu-architecture={args.arch}", "-lineinfo"] + [f"--include-path={i}" for i in includes]
        c_opts = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
        status = nvrtc.nvrtcCompileProgram(prog, len(opts), c_opts)
        size = ctypes.c_size_t()
        nvrtc.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        nvrtc.nvrtcGetProgramLog(prog, log)
        if status != 0:
            failed += 1
            print(f"FAIL {path}\n{log.value.decode(errors='replace')}")
            continue
        nvrtc.nvrtcGetPTXSize(prog, ctypes.byref(size))
        ptx = ctypes.create_string_buffer(size.value)
        nvrtc.nvrtcGetPTX(prog, ptx)
        line = f"ok   {path} ({size.value} bytes of PTX)"
        if args.ptxas:
            with tempfile.NamedTemporaryFile(suffix=".ptx", delete=False) as f:
                f.write(ptx.value)
            out = subprocess.run(
                ["ptxas", "-v", f"-arch={args.arch}", f.name, "-o", os.devnull],
                capture_output=True, text=True,
            )
            stats = [l.split("info    : ")[-1] for l in out.stderr.splitlines() if "registers" in l or "spill" in l]
            line += " | " + " | ".join(stats)
        print(line)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
