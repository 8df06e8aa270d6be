#!/usr/bin/env python3
"""Compiles every source of ours that includes LibTorch, syntax only, against another LibTorch's headers.

The flags are the build's own (its compile_commands.json) with LibTorch's include folders swapped for TORCH_INCLUDE
and the build's precompiled header rebuilt against them once. With --cuda-include the sources compile as a CUDA build
of that LibTorch would compile them: NCCL's process groups and the CUDA allocator's statistics included
(USE_C10D_NCCL, VIDGEN_CUDA_MEMORY_STATS), the CUDA toolkit's headers from that folder, and the one header that only
a CUDA build of LibTorch generates stubbed when the headers lack it (a CPU package's).

    torch_headers_check.py BUILD_DIR TORCH_INCLUDE [--cuda-include DIR] [--jobs N] [--only PATH_PART]

Exits 1 when a source fails, after printing what the compiler said about each failure."""

import argparse
import concurrent.futures
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile

API_INCLUDE = "torch/csrc/api/include"
PCH_SOURCE = "torch_pch.cc"  # the translation unit that builds the precompiled header (cmake/vidgen.cmake)
CUDA_DEFINES = ["-DUSE_C10D_NCCL", "-DVIDGEN_CUDA_MEMORY_STATS"]


def torch_version(include):
    for header in ("torch/headeronly/version.h", f"{API_INCLUDE}/torch/version.h"):
        path = os.path.join(include, header)
        if os.path.exists(path):
            with open(path) as f:
                parts = dict(re.findall(r"#define TORCH_VERSION_(MAJOR|MINOR|PATCH) (\d+)", f.read()))
            if len(parts) == 3:
                return "{MAJOR}.{MINOR}.{PATCH}".format(**parts)
    sys.exit(f"{include} holds no LibTorch headers (no torch/version.h)")


def uses_torch(args):
    return any(arg.rstrip("/").endswith(API_INCLUDE) for arg in args)


def retarget(args, torch_include, extra, pch):
    """The build's flags for one source (without the source, -c and -o) with LibTorch's include folders swapped, the
    build's precompiled header swapped for PCH (dropped where None), no optimisation, and EXTRA added."""
    flags = []
    words = iter(args[1:-1])
    for arg in words:
        if arg == "-o":
            next(words)
        elif arg in ("-isystem", "-I"):
            folder = next(words).rstrip("/")
            # LibTorch's API folder and the include root above it (absent from the flags where it is /usr/include).
            if not (folder.endswith(API_INCLUDE) or os.path.join(folder, API_INCLUDE) in args):
                flags += [arg, folder]
        elif arg == "-include":
            header = next(words)
            if not header.endswith("cmake_pch.hxx"):
                flags += [arg, header]
            elif pch:
                flags += [arg, pch]
        elif arg != "-c" and not arg.startswith("-O"):
            flags.append(arg)
    return [args[0]] + flags + extra + ["-isystem", torch_include, "-isystem", os.path.join(torch_include, API_INCLUDE)]


def compile_one(directory, command):
    done = subprocess.run(command, cwd=directory, capture_output=True, text=True)
    return command[-1], done.returncode, done.stdout + done.stderr


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_dir")
    parser.add_argument("torch_include")
    parser.add_argument("--cuda-include", help="the CUDA toolkit's headers: compile as a CUDA build would")
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--only", help="only the sources whose path contains this")
    options = parser.parse_args()
    torch_include = os.path.abspath(options.torch_include)
    version = torch_version(torch_include)

    with open(os.path.join(options.build_dir, "compile_commands.json")) as f:
        entries = [(e["directory"], shlex.split(e["command"]), e["file"]) for e in json.load(f)]
    entries = [e for e in entries if uses_torch(e[1]) and (not options.only or options.only in e[2] or
                                                           os.path.basename(e[2]) == PCH_SOURCE)]
    if not any(os.path.basename(e[2]) == PCH_SOURCE for e in entries):
        sys.exit(f"{options.build_dir}/compile_commands.json has no {PCH_SOURCE}: is it a build of vidgen?")

    with tempfile.TemporaryDirectory(prefix="torch-headers-") as work:
        return check(entries, torch_include, version, options, work)


def check(entries, torch_include, version, options, work):
    extra = []
    if options.cuda_include:
        extra = CUDA_DEFINES + ["-isystem", options.cuda_include]
        macros = "c10/cuda/impl/cuda_cmake_macros.h"
        if not os.path.exists(os.path.join(torch_include, macros)):
            os.makedirs(os.path.join(work, os.path.dirname(macros)))
            with open(os.path.join(work, macros), "w") as f:
                f.write("#pragma once\n")
            extra += ["-I", work]

    # The precompiled header, built with the build's own flags for it and every extra definition (a PCH only serves
    # compilations that define at least what it was built with).
    pch = os.path.join(work, "torch_pch.hxx")
    with open(pch, "w") as f:
        f.write("#include <torch/torch.h>\n")
    directory, args, _ = next(e for e in entries if os.path.basename(e[2]) == PCH_SOURCE)
    build_pch = retarget(args, torch_include, extra, pch=None) + ["-x", "c++-header", pch, "-o", pch + ".gch"]
    _, status, said = compile_one(directory, build_pch)
    if status != 0:
        print(said)
        sys.exit(f"the precompiled header does not compile against LibTorch {version}")

    sources = [(d, retarget(a, torch_include, extra, pch) + ["-fsyntax-only", a[-1]])
               for d, a, f in entries if os.path.basename(f) != PCH_SOURCE]
    kind = "a CUDA build of " if options.cuda_include else ""
    print(f"{len(sources)} sources against {kind}LibTorch {version} ({torch_include}), {options.jobs} at a time",
          flush=True)
    failed = []
    with concurrent.futures.ThreadPoolExecutor(options.jobs) as pool:
        for source, status, said in pool.map(lambda s: compile_one(*s), sources):
            if status != 0:
                failed.append(source)
                print(f"--- {source}\n{said}", flush=True)
    if failed:
        print(f"{len(failed)} of {len(sources)} sources do not compile against {kind}LibTorch {version}:")
        print("\n".join(f"  {source}" for source in failed))
        return 1
    print(f"all {len(sources)} compile against {kind}LibTorch {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
