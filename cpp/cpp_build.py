"""Where the installed runtimes keep their CMake packages: what `make cpp`, the C API tests
and docs/figures/c_api.py pass as CMAKE_PREFIX_PATH; and the aarch64 ExecuTorch runtime for
cross-compiling (cpp/cmake/aarch64-linux-gnu.cmake).

    python cpp/cpp_build.py                      # the prefixes, ';'-separated
    python cpp/cpp_build.py --aarch64 build/arm64  # fetch the aarch64 runtime
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

AARCH64_PLATFORMS = ("manylinux_2_28_aarch64", "manylinux2014_aarch64")


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(spec.submodule_search_locations[0])


def torch_cmake() -> str | None:
    root = _package_dir("torch")
    return str(root / "share" / "cmake") if root else None


def openvino_cmake() -> str | None:
    root = _package_dir("openvino")
    return str(root / "cmake") if root else None


def executorch_cmake() -> str | None:
    root = _package_dir("executorch")
    return str(root / "lib" / "cmake" / "executorch") if root else None


def cmake_prefixes() -> list[str]:
    return [p for p in (torch_cmake(), openvino_cmake(), executorch_cmake()) if p]


def aarch64_executorch_cmake(root: Path) -> Path:
    """The CMake folder of the aarch64 executorch wheel's runtime (its headers, libraries and
    config), unpacked under `root`: the wheel of the version installed here, fetched with pip
    the first time."""
    version = importlib.metadata.version("executorch")
    target = root / f"executorch-{version}"
    cmake = target / "executorch" / "lib" / "cmake" / "executorch"
    if cmake.is_dir():
        return cmake
    with tempfile.TemporaryDirectory() as tmp:
        platforms = [a for p in AARCH64_PLATFORMS for a in ("--platform", p)]
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--only-binary=:all:", *platforms, "--python-version",
                        f"{sys.version_info.major}.{sys.version_info.minor}", "-d", tmp,
                        f"executorch=={version}"], check=True)
        (wheel,) = Path(tmp).glob("executorch-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(target, [n for n in archive.namelist() if
                                        n.startswith(("executorch/lib/", "executorch/include/",
                                                      "executorch/share/"))])
    return cmake


if __name__ == "__main__":
    if sys.argv[1:2] == ["--aarch64"]:
        print(aarch64_executorch_cmake(Path(sys.argv[2])))
    else:
        print(";".join(cmake_prefixes()))
