"""Type stubs for agp_ptp (the native part is _agp_ptp)."""
from typing import Any, Optional

import numpy as np

class Error(Exception):
    code: int
    name: str
    def __init__(self, message: str, code: int = ..., name: str = ...) -> None: ...

class PacketInfo:
    sequence: int
    stream_id: int
    timestamp_ns: int
    split_layer: int
    name: str
    dtype: str
    shape: list[int]
    vector_axis: int
    layout: str
    codec: str
    model_id: str
    fingerprint: bytes
    frame_bytes: int

class Receipt:
    sequence: int
    wire_bytes: int
    chunks: int
    encode_us: float
    latency_us: float

class Calibration:
    def __init__(self, path: str) -> None: ...
    @property
    def id(self) -> int: ...
    @property
    def dim(self) -> int: ...
    @property
    def groups(self) -> int: ...
    @property
    def info(self) -> str: ...

class Encoder:
    def __init__(self, codec: str, *, calibration: Optional[Calibration] = None) -> None: ...
    @property
    def codec(self) -> str: ...
    def encode(self, tensor: Any, *, vector_axis: int = -1, dtype: str = "", name: str = "",
               stream_id: int = 0, sequence: int = 0, layout: str = "",
               fingerprint: bytes = b"", model_id: str = "", split_layer: int = -1) -> bytes: ...

class Frame:
    def __init__(self, data: Any, expected_fingerprint: bytes = b"") -> None: ...
    @property
    def info(self) -> PacketInfo: ...
    def decode(self, out: Optional[Any] = None, dtype: str = "",
               calibration: Optional[Calibration] = None) -> Any: ...

class Link:
    @staticmethod
    def connect(host: str, port: int, *, fingerprint: bytes = b"", model_id: str = "",
                split_layer: int = -1, peer_name: str = "", key: bytes = b"",
                chunk_vectors: int = 0, streams: int = 1, encode_threads: int = 1,
                dead_peer_timeout_ms: int = 1000, busy_poll_us: int = 0,
                calibration: Optional[Calibration] = None) -> Link: ...
    def send(self, tensor: Any, codec: str, *, vector_axis: int = -1, dtype: str = "",
             name: str = "", stream_id: int = 0, layout: str = "",
             timeout_ms: int = 10000) -> Receipt: ...
    def next_packet(self, timeout_ms: int = 10000) -> PacketInfo: ...
    def receive(self, out: Optional[Any] = None, dtype: str = "",
                timeout_ms: int = 10000) -> Any: ...
    def acknowledge(self) -> None: ...
    def close(self, timeout_ms: int = 5000) -> None: ...
    def counters(self) -> dict[str, int]: ...

class Server:
    def __init__(self, address: str = "127.0.0.1", port: int = 0, *, fingerprint: bytes = b"",
                 model_id: str = "", split_layer: int = -1, key: bytes = b"",
                 chunk_vectors: int = 0, streams: int = 1,
                 dead_peer_timeout_ms: int = 1000, ack_on_receive: bool = True,
                 busy_poll_us: int = 0, calibration: Optional[Calibration] = None) -> None: ...
    @property
    def port(self) -> int: ...
    def accept(self, timeout_ms: int = 10000) -> Link: ...

def encode(tensor: Any, codec: str, *, calibration: Optional[Calibration] = None,
           **kwargs: Any) -> bytes: ...
def decode(frame: Any, out: Optional[Any] = None, *, dtype: str = "",
           expected_fingerprint: bytes = b"",
           calibration: Optional[Calibration] = None) -> np.ndarray: ...
def inspect(frame: Any, *, expected_fingerprint: bytes = b"") -> PacketInfo: ...
def checkpoint_fingerprint(dir: str, split_layer: int, hidden_size: int, *,
                           calibration: Optional[Calibration] = None) -> bytes: ...
