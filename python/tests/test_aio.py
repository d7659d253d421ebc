"""asyncio: awaitable send, post, receive and accept that never block the event loop; cancellation
that leaves the link usable; post/flush/wait_acked from Python."""
import asyncio
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import agp_ptp as agp


def gaussian(shape, seed, dtype=np.float16):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def run(coro, timeout=60):
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


class Ticker:
    """Measures the longest the event loop went without running this task."""

    def __init__(self):
        self.longest = 0.0
        self._task = None

    async def _tick(self):
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.002)
            now = time.monotonic()
            self.longest = max(self.longest, now - last)
            last = now

    def __enter__(self):
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc):
        self._task.cancel()


def test_two_tasks_send_and_receive_every_packet_in_order():
    async def main():
        server = agp.Server("127.0.0.1", 0, chunk_vectors=32)
        sent = [gaussian((300, 256), seed=i) for i in range(16)]

        async def receiver():
            link = await server.accept_async(timeout_ms=5000)
            got = []
            for _ in sent:
                info = await link.next_packet_async(timeout_ms=5000)
                got.append((info.name, await link.receive_async(timeout_ms=5000)))
            with pytest.raises(agp.Error) as e:
                await link.receive_async(timeout_ms=5000)
            assert e.value.name == "connection_closed"
            return got

        with Ticker() as ticker:
            rx = asyncio.create_task(receiver())
            link = await agp.Link.connect_async("127.0.0.1", server.port, chunk_vectors=32)
            for i, x in enumerate(sent):
                codec = "tq4" if i % 2 else "raw"
                if i % 4 < 2:
                    receipt = await link.send_async(x, codec, name=f"p{i}")
                    assert receipt.sequence == i + 1
                else:
                    assert await link.post_async(x, codec, name=f"p{i}") == i + 1
            await link.flush_async(timeout_ms=5000)
            link.close()
            got = await rx
        assert [g[0] for g in got] == [f"p{i}" for i in range(16)]
        for i, (_, y) in enumerate(got):
            expected = agp.decode(agp.encode(sent[i], "tq4")) if i % 2 else sent[i]
            np.testing.assert_array_equal(y, expected)
        assert ticker.longest < 1.0
    run(main())


def test_large_tensors_are_coded_off_the_event_loop():
    # 32 MiB per packet: beyond inline_bytes, so encoding and decoding run on the helper thread.
    async def main():
        server = agp.Server("127.0.0.1", 0, chunk_vectors=4096)
        x = gaussian((65536, 256), seed=1, dtype=np.float32)
        out = np.zeros_like(x)

        async def receiver():
            link = await server.accept_async()
            await link.receive_async(out, timeout_ms=20000)
            return link

        rx = asyncio.create_task(receiver())
        link = await agp.Link.connect_async("127.0.0.1", server.port, chunk_vectors=4096)
        with Ticker() as ticker:
            receipt = await link.send_async(x, "tq4", timeout_ms=20000)
            peer = await rx
        assert receipt.chunks == 16
        np.testing.assert_array_equal(out, agp.decode(agp.encode(x, "tq4")))
        # The encode alone takes far longer than the loop ever waited for this task.
        t0 = time.monotonic()
        agp.encode(x, "tq4")
        assert ticker.longest < max(0.2, (time.monotonic() - t0) / 2), ticker.longest
        link.close()
        peer.close()
    run(main())


def test_cancelled_sends_leave_the_link_usable():
    async def main():
        server = agp.Server("127.0.0.1", 0)
        link_task = asyncio.create_task(agp.Link.connect_async("127.0.0.1", server.port,
                                                               window_packets=2))
        peer = await server.accept_async()
        link = await link_task
        xs = [gaussian((8, 128), seed=i) for i in range(8)]
        # Nobody receives yet: the first send waits for its acknowledgement; cancel it there.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(link.send_async(xs[0], "raw"), 0.2)
        assert await link.post_async(xs[1], "raw") == 2  # the window (2) is now full
        # A post that waits for room is cancelled before it is queued: never sent.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(link.post_async(xs[2], "raw"), 0.2)
        # The receiver starts; further sends go through, in order, nothing lost or doubled.
        got = []

        async def receiver(n):
            for _ in range(n):
                got.append(await peer.receive_async(timeout_ms=5000))

        rx = asyncio.create_task(receiver(5))
        for i in (3, 4, 5):
            receipt = await link.send_async(xs[i], "raw", timeout_ms=5000)
            assert receipt.sequence == i  # sequences 1, 2 went out; the cancelled post took none
        await rx
        for y, i in zip(got, (0, 1, 3, 4, 5)):
            np.testing.assert_array_equal(y, xs[i])
        assert link.counters()["packets_acked"] == 5
        # A cancelled receive leaves its packet for the next one.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(peer.receive_async(), 0.1)
        receipt, y = await asyncio.gather(link.send_async(xs[6], "tq4"), peer.receive_async())
        assert receipt.sequence == 6
        np.testing.assert_array_equal(y, agp.decode(agp.encode(xs[6], "tq4")))
        link.close()
        peer.close()
    run(main())


def test_deadlines_raise_the_librarys_timeout():
    async def main():
        server = agp.Server("127.0.0.1", 0)
        link_task = asyncio.create_task(agp.Link.connect_async("127.0.0.1", server.port))
        peer = await server.accept_async()
        link = await link_task
        t0 = time.monotonic()
        with pytest.raises(agp.Error) as e:
            await peer.receive_async(timeout_ms=150)
        assert e.value.name == "timeout" and time.monotonic() - t0 < 5
        with pytest.raises(agp.Error) as e:
            await server.accept_async(timeout_ms=50)
        assert e.value.name == "timeout"
        with pytest.raises(agp.Error) as e:
            await link.wait_acked_async(99, timeout_ms=50)
        assert e.value.name == "invalid_argument"
        link.close()
        peer.close()
    run(main())


def test_post_flush_and_wait_acked_without_asyncio():
    import threading
    server = agp.Server("127.0.0.1", 0, chunk_vectors=16)
    got = []

    def receive():
        peer = server.accept(5000)
        for _ in range(6):
            got.append(peer.receive(timeout_ms=5000))
        peer.close()

    th = threading.Thread(target=receive)
    th.start()
    link = agp.Link.connect("127.0.0.1", server.port, chunk_vectors=16)
    x = gaussian((64, 128), seed=3)
    seqs = []
    for i in range(6):
        x[:] = gaussian((64, 128), seed=10 + i)  # reused at once: post does not keep it
        seqs.append(link.post(x, "tq8" if i % 2 else "raw"))
    assert seqs == [1, 2, 3, 4, 5, 6]
    receipt = link.wait_acked(3)
    assert receipt.sequence == 3 and receipt.latency_us > 0
    link.flush()
    th.join(10)
    for i, y in enumerate(got):
        x = gaussian((64, 128), seed=10 + i)
        if i % 2:
            np.testing.assert_array_equal(y, agp.decode(agp.encode(x, "tq8")))
        else:
            np.testing.assert_array_equal(y, x)
    with pytest.raises(agp.Error) as e:
        link.wait_acked(7)
    assert e.value.name == "invalid_argument"
    link.close()


RECEIVER = textwrap.dedent("""
    import asyncio, sys, numpy as np, agp_ptp as agp
    async def main():
        server = agp.Server("127.0.0.1", 0, chunk_vectors=64)
        print(server.port, flush=True)
        link = await server.accept_async(timeout_ms=20000)
        total = 0.0
        n = 0
        while True:
            try:
                y = await link.receive_async(timeout_ms=20000)
            except agp.Error as e:
                if e.name == "connection_closed":
                    break
                raise
            total += float(np.asarray(y, dtype=np.float64).sum())
            n += 1
        print(n, repr(total), flush=True)
    asyncio.run(main())
""")


def test_two_processes_stream_with_asyncio():
    proc = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ))
    try:
        port = int(proc.stdout.readline())

        async def main():
            link = await agp.Link.connect_async("127.0.0.1", port, chunk_vectors=64)
            expected = 0.0
            for i in range(40):
                x = gaussian((1, 1280, 1, 256), seed=i)
                codec = "tq4" if i % 2 else "raw"
                await link.post_async(x, codec, vector_axis=1)
                y = agp.decode(agp.encode(x, codec, vector_axis=1)) if i % 2 else x
                expected += float(np.asarray(y, dtype=np.float64).sum())
            await link.flush_async(timeout_ms=20000)
            link.close()
            return expected

        expected = run(main())
        n, total = proc.stdout.readline().split()
        assert int(n) == 40
        assert float(total) == pytest.approx(expected, rel=1e-9)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_zero_timeout_receives_deliver_every_packet_intact():
    # Packets of 20 chunks received with zero timeouts: most tries end part way, and the next try
    # goes on in the array the first one made. (A new array could sit where that one was freed,
    # and the library would take it for the same buffer: the receiver of the two-process test
    # above once got NaN that way.)
    import threading
    server = agp.Server("127.0.0.1", 0, chunk_vectors=64)
    xs = [gaussian((1280, 256), seed=20 + i) for i in range(12)]

    def send():
        link = agp.Link.connect("127.0.0.1", server.port, chunk_vectors=64)
        for x in xs:
            link.post(x, "tq4", timeout_ms=20000)
        link.flush(20000)
        link.close()

    th = threading.Thread(target=send)
    th.start()
    peer = server.accept(5000)
    timeouts = 0
    got = []
    for _ in range(1000000):  # bounded: zero-timeout tries while the chunks arrive
        if len(got) == len(xs):
            break
        try:
            got.append(peer.receive(timeout_ms=0))
        except agp.Error as e:
            assert e.name == "timeout"
            timeouts += 1
            # The host's own work between tries reuses freed memory, as hosts do.
            np.full((1280, 256), np.nan, np.float16)
            peer.poll()  # a zero timeout does not wait: take in what arrived
    th.join(20)
    assert len(got) == len(xs) and timeouts > 0
    for x, y in zip(xs, got):
        np.testing.assert_array_equal(y, agp.decode(agp.encode(x, "tq4")))


def test_cancelled_receives_lose_nothing_and_keep_the_order():
    # Receives of 1 MiB packets (through the helper thread) cancelled at random moments: a packet
    # taken for a cancelled await goes to the next receive.
    import random
    rng = random.Random(5)

    async def main():
        server = agp.Server("127.0.0.1", 0, chunk_vectors=256)
        link_task = asyncio.create_task(agp.Link.connect_async("127.0.0.1", server.port,
                                                               chunk_vectors=256))
        peer = await server.accept_async()
        link = await link_task
        n = 24

        async def send():
            for i in range(n):
                x = np.full((2048, 256), i, dtype=np.float16)
                await link.post_async(x, "raw", timeout_ms=20000)
            await link.flush_async(timeout_ms=20000)

        sender = asyncio.create_task(send())
        got, cancels = [], 0
        for _ in range(20000):  # bounded
            if len(got) == n:
                break
            try:
                y = await asyncio.wait_for(peer.receive_async(inline_bytes=0, timeout_ms=20000),
                                           rng.uniform(0.0005, 0.01))
                got.append(int(y[0, 0]))
            except asyncio.TimeoutError:
                cancels += 1
        await sender
        assert got == list(range(n)), (got, cancels)
        assert cancels > 0
        link.close()
        peer.close()
    run(main(), timeout=120)


def test_a_retry_into_another_buffer_at_the_same_address_starts_over():
    # Zero-timeout tries alternating between two views of one pool (same address, distinct
    # objects), the pool cleared before each: every switch must decode the packet from its start.
    import threading
    server = agp.Server("127.0.0.1", 0, chunk_vectors=64)
    x = gaussian((1280, 256), seed=30)

    def send():
        link = agp.Link.connect("127.0.0.1", server.port, chunk_vectors=64)
        link.send(x, "tq8", timeout_ms=20000)
        link.close()

    th = threading.Thread(target=send)
    th.start()
    peer = server.accept(5000)
    pool = np.zeros(1280 * 256, np.float16)
    views = [pool.reshape(1280, 256), pool[:].reshape(1280, 256)]
    assert views[0] is not views[1] and views[0].ctypes.data == views[1].ctypes.data
    done = False
    for i in range(1000000):  # bounded
        out = views[i % 2]
        try:
            peer.receive(out, timeout_ms=0)
            done = True
            break
        except agp.Error as e:
            assert e.name == "timeout"
            pool[:] = 0  # the pool's next user found it cleared
            peer.poll()
    th.join(20)
    assert done
    np.testing.assert_array_equal(out, agp.decode(agp.encode(x, "tq8")))


def test_one_encoder_shared_by_threads():
    import threading
    enc = agp.Encoder("tq4")
    xs = [gaussian((256, 128), seed=40 + i) for i in range(4)]
    expected = [agp.Encoder("tq4").encode(x) for x in xs]
    bad = []

    def work(k):
        for _ in range(50):
            if enc.encode(xs[k]) != expected[k]:
                bad.append(k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not bad


def test_a_log_handler_may_call_into_the_library():
    import logging
    import threading
    seen = []
    holder = {}

    class Reentrant(logging.Handler):
        def emit(self, record):
            if "link" in holder:  # into the library, from inside a record
                seen.append((record.agp_event, len(holder["link"].metrics_text())))

    logger = logging.getLogger("agp_ptp")
    handler = Reentrant(level=logging.INFO)
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        server = agp.Server("127.0.0.1", 0)
        th = threading.Thread(target=lambda: holder.update(peer=server.accept(5000)))
        th.start()
        link = agp.Link.connect("127.0.0.1", server.port)
        th.join(10)
        holder["link"] = link
        serving = threading.Thread(target=lambda: pytest.raises(agp.Error, server.accept, 3000))
        serving.start()
        with pytest.raises(agp.Error):
            agp.Link.connect("127.0.0.1", server.port, fingerprint=b"\x05" * 16)
        serving.join(10)
        assert not serving.is_alive()
        link.poll()
        assert any(e == "peer_refused" and n > 0 for e, n in seen), seen
        link.close()
        holder["peer"].close()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
