"""The command-line tools a pip install carries (agp_ptp/bin), run by their console scripts."""
import os
import sys


def path(name: str) -> str:
    """Where the installed package keeps tool `name` (ptp-send, ptp-recv, ...)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin", name)


def _run(name: str) -> None:
    exe = path(name)
    if not os.access(exe, os.X_OK):
        sys.exit(f"{name}: not in this agp_ptp package ({exe}); it is built with the fidelity "
                 "harness (a BLAS), or install the project with CMake")
    os.execv(exe, [name] + sys.argv[1:])


def ptp_send() -> None:
    _run("ptp-send")


def ptp_recv() -> None:
    _run("ptp-recv")


def ptp_inspect() -> None:
    _run("ptp-inspect")


def ptp_index() -> None:
    _run("ptp-index")


def ptp_fidelity() -> None:
    _run("ptp-fidelity")


def ptp_calibrate() -> None:
    _run("ptp-calibrate")
