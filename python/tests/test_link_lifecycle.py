"""A link's life from Python: a close() that times out leaves the link open and loses nothing, a
peer that gives up is heard at once, and limits a receiver sets for untrusted peers."""
import threading
import time

import numpy as np
import pytest

import agp_ptp as agp
from test_observability import linked_pair


def test_a_close_that_times_out_leaves_the_link_open_and_delivers_once():
    server, link, peer = linked_pair(chunk_vectors=4096)
    x = np.random.default_rng(1).standard_normal((65536, 256)).astype(np.float16)  # 32 MiB
    seq = link.post(x, "tq4")
    with pytest.raises(agp.Error) as e:
        link.close(timeout_ms=1)
    assert e.value.name == "timeout" and "stays open" in str(e.value)
    received = []
    th = threading.Thread(target=lambda: received.append(peer.receive(timeout_ms=10000)))
    th.start()
    for _ in range(100):  # a host's retry loop
        try:
            link.close(timeout_ms=200)
            break
        except agp.Error as err:
            assert err.name == "timeout"
    th.join(10)
    assert len(received) == 1 and received[0].shape == x.shape
    assert link.wait_acked(seq, timeout_ms=0).sequence == seq
    c = link.counters()
    assert c["packets_sent"] == 1 and c["packets_acked"] == 1
    with pytest.raises(agp.Error) as e:
        peer.receive(timeout_ms=2000)
    assert e.value.name == "connection_closed"


def test_an_abort_reaches_the_peer_at_once_with_its_reason():
    server, link, peer = linked_pair()
    t0 = time.monotonic()
    th = threading.Thread(target=lambda: (time.sleep(0.2), link.abort("the input file is gone")))
    th.start()
    with pytest.raises(agp.Error) as e:
        peer.receive(timeout_ms=10000)
    th.join(10)
    assert e.value.name == "aborted" and "the input file is gone" in str(e.value)
    assert time.monotonic() - t0 < 2


def test_max_tensor_bytes_refuses_larger_packets():
    server, link, peer = linked_pair(max_tensor_bytes=1 << 16)
    small = np.ones((64, 256), np.float16)  # 32 KiB
    th = threading.Thread(target=lambda: link.send(small, "raw"))
    th.start()
    assert peer.receive(timeout_ms=5000).shape == small.shape
    th.join(10)
    big = np.ones((256, 256), np.float16)  # 128 KiB: the sender is held to the peer's limit too
    with pytest.raises(agp.Error) as e:
        link.send(big, "raw", timeout_ms=3000)
    assert e.value.name in ("body_too_large", "bad_encoded_data", "capability_mismatch", "timeout")
    with pytest.raises(agp.Error):
        agp.Server("127.0.0.1", 0, max_tensor_bytes=0)


def test_checkpoint_fingerprint_refuses_bad_numbers_as_library_errors():
    with pytest.raises(agp.Error):
        agp.checkpoint_fingerprint("/nonexistent", -5, -1)
