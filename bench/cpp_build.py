"""Where the installed runtimes keep their CMake packages: what `make cpp`, the C API tests
and bench/c_api.py pass as CMAKE_PREFIX_PATH.

    python -m emo_toolkit.bench.cpp_build    # prints the prefixes, ';'-separated
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


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


if __name__ == "__main__":
    print(";".join(cmake_prefixes()))
