"""Runs the module's pytest suite; exits 77 (ctest: skipped) when pytest or NumPy is missing."""
import sys

try:
    import numpy  # noqa: F401
    import pytest
except ImportError as missing:
    print(f"python tests skipped: {missing} (install python3-numpy and python3-pytest)")
    sys.exit(77)

sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", sys.argv[1]]))
