"""The agp_ptp module: encode/decode through the buffer protocol, errors as agp_ptp.Error, frames
identical to the C API's, and a link on loopback."""
import ctypes
import os
import threading

import numpy as np
import pytest

import agp_ptp as agp


def gaussian(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def rel_mse(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(((a - b) ** 2).sum() / (a ** 2).sum())


@pytest.mark.parametrize("codec,limit", [("tq4", 0.012), ("tq8", 6e-5), ("int8", 6e-5),
                                         ("ec4", 0.03)])
def test_round_trip_error_is_the_codecs(codec, limit):
    x = gaussian((64, 256), seed=1)
    frame = agp.Encoder(codec).encode(x)
    y = agp.decode(frame)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert rel_mse(x, y) < limit


def test_raw_packets_are_exact_for_float16_and_float32():
    for dtype in (np.float16, np.float32):
        x = gaussian((3, 5, 128), seed=2, dtype=dtype)
        y = agp.decode(agp.encode(x, "raw"))
        assert y.dtype == dtype
        np.testing.assert_array_equal(x, y)


def test_bfloat16_travels_as_uint16_patterns():
    x = gaussian((16, 128), seed=3)
    bf16 = (x.view(np.uint32) >> 16).astype(np.uint16)  # truncation is a valid bf16 value
    frame = agp.encode(bf16, "raw", dtype="bfloat16")
    assert agp.inspect(frame).dtype == "bfloat16"
    back = agp.decode(frame, dtype="float32")
    np.testing.assert_array_equal(back, (bf16.astype(np.uint32) << 16).view(np.float32))


def test_strided_input_and_output_are_read_and_written_in_place():
    x = gaussian((256, 64), seed=4)  # vectors run along axis 0: x.T holds them as rows
    enc = agp.Encoder("tq4")
    from_view = enc.encode(x.T)  # a transposed view, not a copy
    from_copy = enc.encode(np.ascontiguousarray(x.T))
    assert from_view == from_copy
    along_axis0 = agp.decode(enc.encode(x, vector_axis=0))
    np.testing.assert_array_equal(along_axis0.T, agp.decode(from_copy))
    out = np.zeros((256, 64), dtype=np.float32)
    got = agp.decode(from_copy, out.T)
    assert got is not None and np.shares_memory(np.asarray(got), out)
    np.testing.assert_array_equal(out.T, agp.decode(from_copy))


def test_decode_into_a_caller_buffer_returns_that_buffer():
    x = gaussian((8, 256), seed=5)
    frame = agp.encode(x, "tq8")
    out = np.empty((8, 256), dtype=np.float16)
    assert agp.decode(frame, out) is out
    assert rel_mse(x, out) < 1e-3


def test_header_fields_come_back():
    fp = bytes(range(16))
    frame = agp.encode(gaussian((4, 128)), "tq4", name="layer2", stream_id=7, sequence=11,
                       layout="SD", fingerprint=fp, model_id="llama", split_layer=2)
    info = agp.inspect(frame, expected_fingerprint=fp)
    assert (info.name, info.stream_id, info.sequence, info.layout) == ("layer2", 7, 11, "SD")
    assert (info.model_id, info.split_layer, info.fingerprint) == ("llama", 2, fp)
    assert (info.codec, info.dtype, info.shape, info.vector_axis) == ("tq4", "float32", [4, 128], 1)
    assert info.frame_bytes == len(frame)


def test_errors_carry_the_library_code_and_message():
    x = gaussian((4, 128))
    with pytest.raises(agp.Error) as e:
        agp.Encoder("tq9")
    assert e.value.code == 300 and e.value.name == "invalid_argument" and "tq9" in str(e.value)
    with pytest.raises(agp.Error, match="elements"):
        agp.encode(np.zeros((4, 128), dtype=np.int32), "tq4")
    bad = x.copy()
    bad[1, 3] = np.nan
    with pytest.raises(agp.Error) as e:
        agp.encode(bad, "tq4")
    assert e.value.code == 400
    frame = bytearray(agp.encode(x, "tq4"))
    frame[len(frame) // 2] ^= 0x01  # inside the codes section
    with pytest.raises(agp.Error) as e:
        agp.decode(frame)
    assert e.value.code == 113  # section checksum
    with pytest.raises(agp.Error) as e:
        agp.decode(agp.encode(x, "tq4", fingerprint=b"a" * 16), expected_fingerprint=b"b" * 16)
    assert e.value.code == 117
    with pytest.raises(agp.Error) as e:
        agp.decode(agp.encode(x, "tq4")[:100])
    assert e.value.name == "truncated"
    with pytest.raises(agp.Error, match="shape"):
        agp.decode(agp.encode(x, "tq4"), np.zeros((4, 64), dtype=np.float32))
    with pytest.raises(agp.Error, match="fingerprint"):
        agp.encode(x, "tq4", fingerprint=b"short")


def test_frames_equal_the_c_apis():
    lib_path = os.environ.get("AGP_C_LIBRARY")
    if not lib_path:
        pytest.skip("AGP_C_LIBRARY is not set (ctest sets it)")
    lib = ctypes.CDLL(lib_path)

    class Tensor(ctypes.Structure):
        _fields_ = [("data", ctypes.c_void_p), ("dtype", ctypes.c_int), ("rank", ctypes.c_int32),
                    ("shape", ctypes.c_uint64 * 8), ("strides", ctypes.c_void_p),
                    ("vector_axis", ctypes.c_int32)]

    x = gaussian((32, 256), seed=6)
    codec = ctypes.c_void_p()
    encoder = ctypes.c_void_p()
    assert lib.agp_codec_create(b"tq4", 1, ctypes.byref(codec)) == 0
    assert lib.agp_encoder_create(codec, ctypes.byref(encoder)) == 0
    t = Tensor(x.ctypes.data, 1, 2, (ctypes.c_uint64 * 8)(32, 256), None, 1)
    frame = ctypes.POINTER(ctypes.c_uint8)()
    size = ctypes.c_size_t()
    assert lib.agp_encode(encoder, ctypes.byref(t), None, ctypes.byref(frame),
                          ctypes.byref(size)) == 0
    from_c = ctypes.string_at(frame, size.value)
    lib.agp_encoder_free(encoder)
    lib.agp_codec_free(codec)
    assert agp.encode(x, "tq4") == from_c


def test_checkpoint_fingerprint_equals_the_c_apis():
    lib_path = os.environ.get("AGP_C_LIBRARY")
    model = os.environ.get("AGP_DEVMODEL_DIR", "")
    if not lib_path or not os.path.exists(os.path.join(model, "config.json")):
        pytest.skip("needs AGP_C_LIBRARY and the devmodel fixture (ctest sets both when present)")
    lib = ctypes.CDLL(lib_path)
    out = (ctypes.c_uint8 * 16)()
    assert lib.agp_checkpoint_fingerprint(model.encode(), 2, ctypes.c_uint64(384), out) == 0
    fp = agp.checkpoint_fingerprint(model, 2, 384)
    assert fp == bytes(out) and len(fp) == 16
    assert agp.checkpoint_fingerprint(model + "/", 2, 384) == fp
    assert agp.checkpoint_fingerprint(model, 3, 384) != fp
    with pytest.raises(agp.Error) as e:
        agp.checkpoint_fingerprint(os.path.join(model, "absent"), 2, 384)
    assert e.value.name == "io_error"


BACKENDS = [
    pytest.param({}, id="tcp"),
    pytest.param({"backend": "ucx", "ucx_transports": "tcp"}, id="ucx",
                 marks=pytest.mark.skipif(not agp.ucx_available(), reason="this build has no UCX")),
]


@pytest.mark.parametrize("carrier", BACKENDS)
def test_link_on_loopback_delivers_every_packet_in_order(carrier):
    fp = b"\x01" * 16
    server = agp.Server("127.0.0.1", 0, fingerprint=fp, model_id="py-test", chunk_vectors=16,
                        decode_threads=2, **carrier)
    got = []

    def receive():
        link = server.accept(5000)
        for _ in range(12):
            info = link.next_packet(5000)
            got.append((info.sequence, info.name, link.receive(timeout_ms=5000)))
        link.close()

    th = threading.Thread(target=receive)
    th.start()
    link = agp.Link.connect("127.0.0.1", server.port, fingerprint=fp, model_id="py-test",
                            chunk_vectors=16, encode_threads=2, **carrier)
    sent = []
    for i in range(12):
        x = gaussian((64, 256), seed=100 + i, dtype=np.float16)
        receipt = link.send(x, "tq4" if i % 2 else "raw", name=f"h{i}")
        assert receipt.sequence == i + 1
        assert receipt.chunks == (4 if i % 2 else 1)
        sent.append(x)
    link.close()
    th.join(10)
    assert not th.is_alive()
    assert [g[0] for g in got] == list(range(1, 13))
    assert [g[1] for g in got] == [f"h{i}" for i in range(12)]
    for i, (_, _, y) in enumerate(got):
        if i % 2:
            assert rel_mse(sent[i], y) < 0.012
            np.testing.assert_array_equal(y, agp.decode(agp.encode(sent[i], "tq4")))
        else:
            np.testing.assert_array_equal(y, sent[i])
    assert link.counters()["packets_acked"] == 12


def test_manual_acknowledgement_holds_the_sender_until_the_receiver_recorded():
    server = agp.Server("127.0.0.1", 0, ack_on_receive=False, busy_poll_us=100)
    recorded = []
    state = {}

    def receive():
        link = server.accept(5000)
        recorded.append(link.receive(timeout_ms=5000).copy())  # "recorded", then acknowledged
        link.acknowledge()
        state["closed"] = link.close()

    th = threading.Thread(target=receive)
    th.start()
    link = agp.Link.connect("127.0.0.1", server.port, busy_poll_us=100)
    x = gaussian((16, 128), seed=9)
    receipt = link.send(x, "tq8")
    th.join(10)
    assert receipt.sequence == 1 and len(recorded) == 1
    assert rel_mse(x, recorded[0]) < 1e-4


def test_link_refuses_another_models_fingerprint():
    server = agp.Server("127.0.0.1", 0, fingerprint=b"\x01" * 16)
    errors = []

    def serve():
        try:
            server.accept(1500)
        except agp.Error as e:
            errors.append(e.code)

    th = threading.Thread(target=serve)
    th.start()
    with pytest.raises(agp.Error) as e:
        agp.Link.connect("127.0.0.1", server.port, fingerprint=b"\x02" * 16)
    th.join(5)
    assert e.value.code == 117
    assert errors == [500]  # the server saw no acceptable peer: accept timed out


GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden",
                      "codec")


@pytest.mark.parametrize("stem", ["seed_f16.tq4", "rows_f32.int4", "odd_bf16.prod3",
                                  "ec_f16.ec4", "ec_f16.ec8"])
def test_golden_packets_decode_to_their_stored_tensors(stem):
    path = os.path.join(GOLDEN, stem + ".ptp")
    if not os.path.exists(path):
        pytest.skip("golden packet " + stem + " not in this checkout")
    with open(path, "rb") as f:
        frame = f.read()
    want = np.load(os.path.join(GOLDEN, stem + ".decoded.npy"))
    got = agp.decode(frame, dtype="float32")
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_bad_arguments_are_agp_errors_not_python_ones():
    x = gaussian((4, 128))
    frame = agp.encode(x, "tq4")
    with pytest.raises(agp.Error) as e:  # trailing bytes: a Frame is one frame
        agp.decode(frame + b"\0" * 64)
    assert e.value.name == "invalid_argument" and "after the frame" in str(e.value)
    with pytest.raises(agp.Error):  # two frames
        agp.decode(frame + frame)
    read_only = np.zeros((4, 128), dtype=np.float32)
    read_only.flags.writeable = False
    with pytest.raises(agp.Error, match="read-only"):
        agp.decode(frame, read_only)
    with pytest.raises(agp.Error, match="buffer"):
        agp.decode(frame, "not a buffer")
    with pytest.raises(agp.Error, match="port"):
        agp.Link.connect("127.0.0.1", 70000)
    with pytest.raises(agp.Error, match="port"):
        agp.Server(port=-1)
    with pytest.raises(agp.Error, match="streams"):
        agp.Server(streams=99)
    with pytest.raises(agp.Error, match="encode_threads"):
        agp.Link.connect("127.0.0.1", 9, encode_threads=0)
    with pytest.raises(agp.Error, match="decode_threads"):
        agp.Server(decode_threads=17)
    with pytest.raises(agp.Error, match="key"):
        agp.Link.connect("127.0.0.1", 9, key=b"k")
    with pytest.raises(agp.Error, match="model_id"):
        agp.Server(model_id="m" * 5000)
    with pytest.raises(agp.Error, match="backend"):
        agp.Server(backend="carrier-pigeon")
    if not agp.ucx_available():
        with pytest.raises(agp.Error, match="UCX"):
            agp.Server(backend="ucx")
    server = agp.Server()
    with pytest.raises(agp.Error, match="timeout_ms"):
        server.accept(timeout_ms=-1)
    with pytest.raises(agp.Error, match="timeout_ms"):
        server.accept(timeout_ms=1.5)
    with pytest.raises(agp.Error, match="stream_id"):
        agp.encode(x, "tq4", stream_id=2 ** 40)


def write_calibration(path, mean, scale, group_starts, info="{}"):
    """A calibration file written from docs/codec.md alone; returns its id (the XXH3-64)."""
    xxhash = pytest.importorskip("xxhash")
    import struct
    dim, groups = len(mean), len(group_starts)
    info_bytes = info.encode()
    body = (b"AGPCAL\r\n" + struct.pack("<IIII", 1, dim, groups, len(info_bytes)) +
            np.asarray(mean, "<f4").tobytes() + np.asarray(scale, "<f4").tobytes() +
            np.asarray(group_starts, "<u4").tobytes() + info_bytes)
    digest = xxhash.xxh3_64_intdigest(body)
    with open(path, "wb") as f:
        f.write(body + struct.pack("<Q", digest))
    return digest


def test_calibrated_codec_with_a_calibration_file_written_from_the_docs(tmp_path):
    dim = 128
    scale = 3.0 / np.sqrt(1.0 + np.arange(dim))
    mean = np.linspace(-1, 1, dim)
    path = str(tmp_path / "test.agpcal")
    digest = write_calibration(path, mean, scale, [0, 4, 16, 48], '{"source":"pytest"}')
    cal = agp.Calibration(path)
    assert cal.id == digest and cal.dim == dim and cal.groups == 4 and "pytest" in cal.info
    x = (gaussian((96, dim), seed=3) * scale + mean).astype(np.float32)
    with pytest.raises(agp.Error) as e:
        agp.Encoder("cal4")  # no calibration
    assert e.value.name == "invalid_argument"
    frame = agp.encode(x, "cal4", calibration=cal)
    assert len(frame) * 8 <= 4 * x.size
    with pytest.raises(agp.Error) as e:
        agp.decode(frame)  # the receiver holds none
    assert e.value.name == "bad_codec_descriptor"
    y = agp.decode(frame, calibration=cal)
    assert rel_mse(x - mean, y - mean) < 0.02
    # A damaged file is a typed error.
    raw = bytearray(open(path, "rb").read())
    raw[40] ^= 1
    open(path, "wb").write(bytes(raw))
    with pytest.raises(agp.Error) as e:
        agp.Calibration(path)
    assert e.value.name == "bad_calibration"


def test_calibrated_codec_over_a_link_needs_the_calibration_on_both_ends(tmp_path):
    dim = 64
    path = str(tmp_path / "link.agpcal")
    write_calibration(path, np.zeros(dim), np.ones(dim), [0])
    cal = agp.Calibration(path)
    fp = b"\x03" * 16
    server = agp.Server("127.0.0.1", 0, fingerprint=fp, calibration=cal)
    got = []

    def receive():
        link = server.accept(5000)
        got.append(link.receive(timeout_ms=5000))
        link.close()

    th = threading.Thread(target=receive)
    th.start()
    link = agp.Link.connect("127.0.0.1", server.port, fingerprint=fp, calibration=cal)
    x = gaussian((64, dim), seed=4)
    link.send(x, "cal5")
    link.close()
    th.join(10)
    assert len(got) == 1 and rel_mse(x, got[0]) < 0.01
    other = agp.Server("127.0.0.1", 0, fingerprint=fp)
    # The accepted link is kept until the end: one dropped unclosed tells its peer it is gone.
    kept = {}
    accepting = threading.Thread(target=lambda: kept.update(peer=other.accept(5000)))
    accepting.start()
    plain = agp.Link.connect("127.0.0.1", other.port, fingerprint=fp)
    with pytest.raises(agp.Error) as e:
        plain.send(x, "cal5")  # this end holds no calibration
    assert e.value.name == "invalid_argument"
    accepting.join(10)
