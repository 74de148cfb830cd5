"""What an installed C library maps per artifact format (docs/c-api.md), measured:

    python -m docs.figures.c_api_install --run RUN --out docs/figures/results/c-api-install

Builds libemo_toolkit with every runtime installed here (as `make cpp`), installs it with
`cmake --install` into a temporary prefix, and for each artifact of RUN/export that exists
(model.onnx, model.pte, model.torchscript.pt, model.aoti.pt2) runs the installed
`emo_classify` once under LD_DEBUG=libs: the libraries of the installed tree the process
initialised, and their bytes. Each runtime is a plugin loaded when a file it runs is
opened, so a format maps its own runtime only. Also the bytes of the install's lib/.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import click
import soundfile as sf

from cpp.cpp_build import cmake_prefixes
from docs.figures.c_api import loaded_libraries
from emo_toolkit.bench.machine import describe, machine_info
from emo_toolkit.bench.report import write_figures
from emo_toolkit.data.demo_corpus import speech_like

ROOT = Path(__file__).resolve().parents[2]  # the repository (this file: docs/figures/)
ARTIFACTS = ("model.onnx", "model.pte", "model.torchscript.pt", "model.aoti.pt2")


def install(work: Path) -> Path:
    """The default build (every runtime found), installed under work/prefix."""
    build, prefix = work / "build", work / "prefix"
    subprocess.run(["cmake", "-S", ROOT / "cpp", "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                    f"-DCMAKE_PREFIX_PATH={';'.join(cmake_prefixes())}"], check=True,
                   capture_output=True)
    subprocess.run(["cmake", "--build", build, "-j", "2"], check=True, capture_output=True)
    subprocess.run(["cmake", "--install", build, "--prefix", prefix], check=True,
                   capture_output=True)
    return prefix


def mapped(prefix: Path, artifact: Path, clip: Path) -> dict[str, int]:
    """The installed tree's libraries that one emo_classify run initialised, with bytes."""
    libs = loaded_libraries(prefix / "bin" / "emo_classify", artifact, clip,
                            env={"PATH": "/usr/bin:/bin"})
    return {p.name: p.stat().st_size for p in libs if p.is_relative_to(prefix)}


@click.command()
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              required=True, help="a run whose export/ holds the artifacts")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("docs/figures/results/c-api-install"), show_default=True)
def main(run_dir: Path, out: Path) -> None:
    """Measure what the installed C library maps per format (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="emo-c-install-") as tmp:
        work = Path(tmp)
        click.echo("building and installing ...", err=True)
        prefix = install(work)
        clip = work / "clip.wav"
        sf.write(str(clip), speech_like(3.0, 1), 16_000, subtype="FLOAT")
        rows = []
        for name in ARTIFACTS:
            artifact = run_dir / "export" / name
            if artifact.exists():
                libs = mapped(prefix, artifact, clip)
                rows.append({"artifact": name, "mapped_mb": sum(libs.values()) / 2**20,
                             "libraries": dict(sorted(libs.items()))})
        lib_mb = sum(f.stat().st_size for f in (prefix / "lib").iterdir() if f.is_file()) / 2**20
    report = {"created": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_info("cpu"),
              "install_lib_mb": lib_mb, "rows": rows}
    lines = [f"Installed C library, {report['created']}; machine: {describe(report['machine'])}.",
             "", f"lib/ of the install (every runtime found): {lib_mb:.0f} MB", "",
             "| artifact | installed libraries it maps | MB |", "|---|---|---:|"]
    lines += [f"| {r['artifact']} | {', '.join(r['libraries'])} | {r['mapped_mb']:.0f} |"
              for r in rows]
    click.echo(write_figures(out, "c-api-install", report, "\n".join(lines) + "\n"))


if __name__ == "__main__":
    main()
