"""The exception every agp_ptp call raises on failure."""


class Error(Exception):
    """A failed agp_ptp call: ``code`` is the library's stable error number (for example 113 for
    a section checksum mismatch), ``name`` its short name, and the message says what was wrong."""

    def __init__(self, message: str, code: int = 0, name: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.name = name

    def __str__(self) -> str:
        return f"{self.name} ({self.code}): {self.args[0]}" if self.name else str(self.args[0])
