"""AGP-PTP from Python: compressed, verified transfer of neural-network state.

Tensors are PyTorch tensors, MLX and NumPy arrays, or any object with ``__dlpack__`` (in host
memory) or the buffer protocol: float16, float32 or bfloat16 (DLPack's own, or uint16 holding
bfloat16 patterns with ``dtype="bfloat16"``), any strides. They are read and written in place, never
copied. Results are NumPy arrays, or :class:`Tensor` for bfloat16 (``torch.from_dlpack(t)``).
Every failure raises :class:`Error`.

    enc = agp_ptp.Encoder("tq4")
    frame = enc.encode(hidden, vector_axis=-1)          # bytes, about 4 bits per value
    restored = agp_ptp.decode(frame)                    # NumPy array, the packet's dtype

    server = agp_ptp.Server("127.0.0.1", 0)             # receiving host
    link = agp_ptp.Link.connect("127.0.0.1", server.port)  # sending host
    link.send(hidden, "tq4")                            # returns once the peer decoded it

    index = agp_ptp.Index(768)                          # compressed embedding index
    index.add(embeddings)                               # [n, 768]
    ids, scores = index.search(query, k=10, rerank=100)
"""

from ._errors import Error
from . import _aio  # noqa: F401  (adds the awaitable methods to Link and Server)
from . import _log  # noqa: F401  (the library's records go to logging.getLogger("agp_ptp"))
from ._agp_ptp import (Calibration, Encoder, Frame, Index, Link, PacketInfo, Receipt, Server, Tensor,
                       _tensor_address,
                       checkpoint_fingerprint, metrics_text, read_vectors, ucx_available)

__all__ = ["Error", "Calibration", "Encoder", "Frame", "Index", "Link", "PacketInfo", "Receipt", "Tensor",
           "Server", "encode", "decode", "inspect", "checkpoint_fingerprint", "metrics_text",
           "read_vectors", "ucx_available"]


def encode(tensor, codec: str, *, calibration=None, **kwargs) -> bytes:
    """Encodes ``tensor`` with ``codec`` into one frame (see :meth:`Encoder.encode` for the
    keyword arguments; ``calibration`` for cal2..cal8). Keep an :class:`Encoder` instead when
    encoding many tensors."""
    return Encoder(codec, calibration=calibration).encode(tensor, **kwargs)


def decode(frame, out=None, *, dtype: str = "", expected_fingerprint: bytes = b"",
           calibration=None):
    """Verifies ``frame`` and decodes it into ``out`` or a new NumPy array, which it returns
    (calibrated packets need the :class:`Calibration` they were coded with)."""
    return Frame(frame, expected_fingerprint).decode(out, dtype, calibration)


def inspect(frame, *, expected_fingerprint: bytes = b"") -> PacketInfo:
    """Verifies ``frame`` and returns what its header says, without decoding."""
    return Frame(frame, expected_fingerprint).info
