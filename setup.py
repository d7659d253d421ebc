"""pip's build step: configures and builds the native code with CMake, then packs the extension
module, the C library and the command-line tools into the agp_ptp package (pyproject.toml).

Environment: AGP_CMAKE_ARGS (extra CMake arguments, space separated), AGP_PIP_BUILD_DIR (the CMake
build directory; default: setuptools' temporary directory, kept between builds so a rebuild is
incremental), CMAKE_BUILD_PARALLEL_LEVEL (parallel jobs; default: every core)."""
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
TOOLS = ["ptp-send", "ptp-recv", "ptp-inspect", "ptp-index", "ptp-fidelity", "ptp-calibrate"]


def project_version():
    text = (ROOT / "CMakeLists.txt").read_text()
    m = re.search(r"project\(agp_ptp VERSION ([0-9.]+)", text)
    if not m:
        raise RuntimeError("CMakeLists.txt has no project(agp_ptp VERSION ...)")
    return m.group(1)


def cmake_program():
    found = shutil.which("cmake")
    if found:
        return found
    try:  # the cmake package from PyPI, under build isolation
        import cmake
        return os.path.join(cmake.CMAKE_BIN_DIR, "cmake")
    except ImportError:
        raise RuntimeError("agp_ptp needs CMake >= 3.20 to build (apt install cmake, brew install "
                           "cmake, or pip install cmake)") from None


class CMakeBuild(build_ext):
    """Builds the CMake targets the package carries and copies them into it."""

    def build_extension(self, ext):
        cmake = cmake_program()
        build_dir = Path(os.environ.get("AGP_PIP_BUILD_DIR") or Path(self.build_temp) / "cmake")
        build_dir.mkdir(parents=True, exist_ok=True)
        args = [cmake, "-S", str(ROOT), "-B", str(build_dir),
                "-DCMAKE_BUILD_TYPE=Release", f"-DPython3_EXECUTABLE={sys.executable}",
                "-DAGP_BUILD_PYTHON=ON", "-DAGP_BUILD_TOOLS=ON", "-DAGP_BUILD_TESTS=OFF",
                "-DAGP_BUILD_BENCH=OFF", "-DAGP_BUILD_EXAMPLES=OFF", "-DAGP_BUILD_FUZZ=OFF",
                "-DAGP_SANITIZE=OFF"]
        if shutil.which("ninja") and not (build_dir / "CMakeCache.txt").exists():
            args.append("-GNinja")
        try:  # pybind11's CMake files: from the pybind11 package (build isolation, macOS) ...
            import pybind11
            args.append(f"-Dpybind11_DIR={pybind11.get_cmake_dir()}")
        except ImportError:
            pass  # ... or the system's (Debian's pybind11-dev)
        args += shlex.split(os.environ.get("AGP_CMAKE_ARGS", ""))
        self.announce("agp_ptp: configuring with CMake in " + str(build_dir), level=2)
        subprocess.run(args, check=True)
        cache = (build_dir / "CMakeCache.txt").read_text()
        fidelity = re.search(r"^AGP_BUILD_FIDELITY:BOOL=ON$", cache, re.M) is not None
        tools = [t for t in TOOLS if fidelity or t not in ("ptp-fidelity", "ptp-calibrate")]
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 2)
        subprocess.run([cmake, "--build", str(build_dir), "-j", jobs, "--target", "_agp_ptp",
                        "agp_c", *tools], check=True)

        # The extension module, under the name setuptools expects.
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        built = build_dir / "python" / "agp_ptp" / ("_agp_ptp" + suffix)
        target = Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built, target)
        package = target.parent
        # The tools (run by the console scripts of agp_ptp._tools) and the C library.
        (package / "bin").mkdir(exist_ok=True)
        for tool in tools:
            shutil.copy2(build_dir / "tools" / tool, package / "bin" / tool)
        # The C library (loaded by path: ctypes, cffi) with its header.
        (package / "lib").mkdir(exist_ok=True)
        ext_lib = ".dylib" if sys.platform == "darwin" else ".so"
        real = [f for f in (build_dir / "capi").glob("libagp_ptp_c*") if f.is_file() and not f.is_symlink()]
        if len(real) != 1:
            raise RuntimeError(f"expected one built C library in {build_dir / 'capi'}, found {real}")
        shutil.copy2(real[0], package / "lib" / ("libagp_ptp_c" + ext_lib))
        shutil.copytree(ROOT / "capi" / "include", package / "include", dirs_exist_ok=True)


setup(version=project_version(),
      ext_modules=[Extension("agp_ptp._agp_ptp", sources=[])],
      cmdclass={"build_ext": CMakeBuild})
