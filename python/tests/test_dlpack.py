"""Tensors through DLPack with PyTorch and NumPy: float32, float16 and bfloat16, contiguous and
strided, read and written in place (same data pointer, no allocation of the tensor's size)."""
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import agp_ptp as agp

torch = pytest.importorskip("torch")

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def rel_mse(a, b):
    a = a.double()
    b = b.double()
    return float(((a - b) ** 2).sum() / (a ** 2).sum())


def views(dtype, seed=0):
    """The same 16 x 256 values as a contiguous tensor, a transposed view and a strided slice."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(16, 256, generator=g).to(dtype)
    wide = torch.zeros(16, 512, dtype=dtype)
    wide[:, ::2] = base
    return {"contiguous": base,
            "transposed": base.t().contiguous().t(),   # column-major memory
            "every_other": wide[:, ::2]}               # stride 2 along the vector


@pytest.mark.parametrize("name", list(DTYPES))
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "every_other"])
def test_torch_tensors_are_read_and_written_in_place(name, layout):
    x = views(DTYPES[name], seed=3)[layout]
    address, via_dlpack = agp._tensor_address(x)
    assert via_dlpack and address == x.data_ptr()

    frame = agp.encode(x, "tq8")
    info = agp.inspect(frame)
    assert info.dtype == name and tuple(info.shape) == (16, 256)

    for out_layout, out in views(DTYPES[name], seed=9).items():  # overwritten below
        assert agp._tensor_address(out, writable=True)[0] == out.data_ptr()
        before = out.data_ptr()
        returned = agp.decode(frame, out=out)
        assert returned is out and out.data_ptr() == before
        assert rel_mse(x, out) < 2e-4, out_layout
    # The same frame decoded by NumPy's path gives the same values.
    reference = agp.decode(frame, dtype="float32")
    assert torch.equal(torch.from_dlpack(reference).to(DTYPES[name]), out)


@pytest.mark.parametrize("name", list(DTYPES))
def test_raw_packets_of_torch_tensors_are_exact(name):
    x = views(DTYPES[name], seed=4)["contiguous"]
    out = torch.empty_like(x)
    agp.decode(agp.encode(x, "raw"), out=out)
    assert torch.equal(out, x)


def test_results_go_to_numpy_and_torch_with_from_dlpack():
    x = views(torch.float16)["contiguous"]
    y = agp.decode(agp.encode(x, "tq4"))  # float16 packet: a NumPy array
    assert isinstance(y, np.ndarray) and y.dtype == np.float16
    t = torch.from_dlpack(y)
    assert t.dtype == torch.float16 and t.data_ptr() == y.ctypes.data
    assert np.from_dlpack(y).ctypes.data == y.ctypes.data

    b = views(torch.bfloat16)["contiguous"]
    z = agp.decode(agp.encode(b, "tq4"))  # bfloat16: NumPy has no such type
    assert isinstance(z, agp.Tensor) and z.dtype == "bfloat16" and z.shape == (16, 256)
    tz = torch.from_dlpack(z)
    assert tz.dtype == torch.bfloat16 and tz.shape == (16, 256)
    assert rel_mse(b, tz) < 0.012
    # The uint16 view NumPy sees holds the same bit patterns.
    assert np.array_equal(np.asarray(z), tz.view(torch.int16).numpy().view(np.uint16))
    del z  # the torch tensor keeps the memory alive
    assert rel_mse(b, tz) < 0.012
    with pytest.raises(agp.Error):
        agp.decode(agp.encode(b, "tq4"), dtype="int8")


def test_unusable_tensors_are_refused_with_the_reason():
    with pytest.raises(agp.Error, match="gradient"):
        agp.encode(torch.ones(4, 64, requires_grad=True), "tq4")
    with pytest.raises(agp.Error, match="int32"):
        agp.encode(torch.ones(4, 64, dtype=torch.int32), "tq4")
    with pytest.raises(agp.Error, match="does not match"):
        agp.encode(torch.ones(4, 64), "tq4", dtype="float16")
    frame = agp.encode(torch.ones(4, 64), "tq4")
    with pytest.raises(agp.Error, match="shape"):
        agp.decode(frame, out=torch.empty(4, 32))
    ro = np.ones((4, 64), np.float32)
    ro.setflags(write=False)
    with pytest.raises(agp.Error, match="read-only"):
        agp.decode(frame, out=ro)
    # NumPy's uint16 holding bfloat16 patterns still works, through DLPack too.
    u = torch.ones(4, 64, dtype=torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert agp.inspect(agp.encode(u, "raw", dtype="bfloat16")).dtype == "bfloat16"


def test_torch_tensors_cross_a_link_in_place():
    server = agp.Server("127.0.0.1", 0, chunk_vectors=8)
    x = views(torch.bfloat16, seed=5)["transposed"]
    out = torch.zeros(16, 256, dtype=torch.bfloat16).t().contiguous().t()
    address = out.data_ptr()
    errors = []

    def receive():
        try:
            link = server.accept(5000)
            link.receive(out, timeout_ms=5000)
            link.close()
        except Exception as e:  # reported by the main thread
            errors.append(e)

    th = threading.Thread(target=receive)
    th.start()
    link = agp.Link.connect("127.0.0.1", server.port, chunk_vectors=8)
    assert link.send(x, "tq8").chunks == 2
    link.close()
    th.join(10)
    assert not errors and not th.is_alive()
    assert out.data_ptr() == address and rel_mse(x, out) < 2e-4


# A child process measures its peak resident memory around one encode and one decode of a
# 64 or 128 MiB tensor: a copy of the tensor would raise the peak by at least its size.
MEMORY_PROBE = textwrap.dedent("""
    import resource, sys, torch, agp_ptp
    dtype = getattr(torch, sys.argv[1])
    if sys.argv[2] == "strided":
        x = torch.empty(1 << 17, 512, dtype=dtype).normal_()[:, :256]
    else:
        x = torch.empty(1 << 17, 256, dtype=dtype).normal_()
    out = torch.zeros(1 << 17, 256, dtype=dtype)
    enc = agp_ptp.Encoder("tq4")
    enc.encode(x[:64])                     # tables and first buffers
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    before = peak()
    frame = enc.encode(x)
    after_encode = peak()
    agp_ptp.decode(frame, out=out)
    after_decode = peak()
    print(x.numel() * x.element_size(), len(frame), after_encode - before, after_decode - after_encode)
""")


@pytest.mark.parametrize("name", list(DTYPES))
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_no_copy_of_the_tensor_is_made(name, layout):
    r = subprocess.run([sys.executable, "-c", MEMORY_PROBE, name, layout], capture_output=True,
                       text=True, timeout=120, env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    tensor_bytes, frame_bytes, encode_growth, decode_growth = map(int, r.stdout.split())
    # Encoding holds the encoded sections and the frame (bytes): about 2 frames. Decoding copies
    # the frame once (Frame) and writes into `out`.
    assert encode_growth < 2 * frame_bytes + tensor_bytes // 8, (encode_growth, tensor_bytes)
    assert decode_growth < frame_bytes + tensor_bytes // 8, (decode_growth, tensor_bytes)
