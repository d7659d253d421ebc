"""asyncio for links and servers: awaitable send, post, receive and accept that never block the
event loop.

A call first tries on the loop's thread without waiting, when nothing else of that link is pending
and its tensor is small (at most ``inline_bytes``, 1 MiB by default: about a third of a millisecond
of encoding, like any short computation of the loop). When it would wait, or the tensor is large,
it goes to a helper thread, one per library event loop (a connecting Link, or a Server with the
Links it accepted). That thread tries every pending call with a zero timeout, then sleeps in the
library until something happens on the wire (``wait_event``), and resolves the futures on the
event loop. Cancelling an await leaves the link usable: a cancelled post that was not yet queued
is not sent; a packet already queued is still delivered (the link is reliable); a cancelled
receive leaves its packet for the next receive.
"""
import asyncio
import collections
import functools
import threading
import time
import weakref

from ._agp_ptp import Link, Server
from ._errors import Error

INLINE_BYTES = 1 << 20  # work on the loop's thread only up to this many tensor bytes
_IDLE_POLL_S = 0.1      # an idle helper keeps acknowledgements and heartbeats moving


def _is_timeout(e):
    return isinstance(e, Error) and e.name == "timeout"


class _Op:
    """One awaited call: `step()` tries it once with a zero timeout and returns (done, value)."""
    __slots__ = ("future", "loop", "step", "deadline", "cancelled", "last_timeout", "owner")

    def __init__(self, loop, step, timeout_ms, owner):
        self.loop = loop
        self.future = loop.create_future()
        self.step = step
        self.deadline = time.monotonic() + timeout_ms / 1000.0
        self.cancelled = False
        self.last_timeout = None
        self.owner = owner  # keeps the Link or Server alive while the call is pending
        self.future.add_done_callback(self._on_done)

    def _on_done(self, future):
        if future.cancelled():
            self.cancelled = True

    def settle(self, value=None, error=None):
        self.loop.call_soon_threadsafe(_settle, self.future, value, error)


def _settle(future, value, error):
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


class _Driver:
    """The helper thread of one library event loop (see the module's text)."""

    def __init__(self, waiter):
        self._waiter = weakref.ref(waiter)
        self._ops = collections.deque()
        self._cv = threading.Condition()
        self._thread = None

    def pending(self):
        return bool(self._ops)

    def submit(self, op):
        with self._cv:
            self._ops.append(op)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="agp_ptp-aio", daemon=True)
                self._thread.start()
            self._cv.notify()
        waiter = self._waiter()
        if waiter is not None:
            waiter._wake()  # end a wait_event the thread may be in

    def _run(self):
        while True:
            with self._cv:
                if not self._ops:
                    self._cv.wait(_IDLE_POLL_S)
                ops = list(self._ops)
            waiter = self._waiter()
            if waiter is None:
                return  # the link or server is gone (pending calls keep it alive)
            if not ops:
                try:
                    waiter.poll()
                except Error:
                    pass  # a closed link: its next call says so
                continue
            progressed = False
            now = time.monotonic()
            for op in ops:
                done, value, error = self._attempt(op, now)
                if done:
                    progressed = True
                    with self._cv:
                        self._ops.remove(op)
                    if not op.cancelled:
                        op.settle(value, error)
            if not progressed:
                with self._cv:
                    deadlines = [op.deadline for op in self._ops]
                wait_s = min([_IDLE_POLL_S] + [d - time.monotonic() for d in deadlines])
                try:
                    waiter._wait_event(max(0, int(wait_s * 1000)))
                except Error:
                    pass
            del waiter

    @staticmethod
    def _attempt(op, now):
        if op.cancelled:
            return True, None, None
        try:
            done, value = op.step()
        except Error as e:
            if not _is_timeout(e):
                return True, None, e
            done, value, op.last_timeout = False, None, e
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting task
            return True, None, e
        if done:
            return True, value, None
        if now >= op.deadline:
            return True, None, op.last_timeout or Error("deadline passed", 0, "timeout")
        return False, None, None


def _driver_of(native):
    d = native._driver
    if d is None:
        d = _Driver(native)
        native._driver = d
    return d


async def _run(native, step, timeout_ms, inline):
    """Tries `step` on the loop's thread when allowed, else awaits it through the helper."""
    driver = _driver_of(native)
    if inline and not driver.pending():
        try:
            done, value = step()
            if done:
                return value
        except Error as e:
            if not _is_timeout(e):
                raise
    loop = asyncio.get_running_loop()
    op = _Op(loop, step, timeout_ms, native)
    driver.submit(op)
    return await op.future


def _tensor_bytes(tensor):
    n = getattr(tensor, "nbytes", None)
    if isinstance(n, int):
        return n
    try:
        return memoryview(tensor).nbytes
    except TypeError:
        return INLINE_BYTES + 1  # unknown: not on the loop's thread


# --- Link


async def post_async(self, tensor, codec, *, timeout_ms=10000, inline_bytes=None, **meta):
    """Awaitable :meth:`post`: encodes and queues ``tensor``, waiting (without blocking the event
    loop) while the send window is full; returns the packet's sequence number. ``meta``: the
    keyword arguments of :meth:`post` (vector_axis, dtype, name, stream_id, layout)."""
    limit = INLINE_BYTES if inline_bytes is None else inline_bytes
    driver = self._driver
    if (driver is None or not driver._ops) and _tensor_bytes(tensor) <= limit:
        # The common case, kept short: room in the window (post takes in acknowledgements
        # after each packet), nothing of this link pending.
        try:
            return self.post(tensor, codec, timeout_ms=0, **meta)
        except Error as e:
            if e.name != "timeout":
                raise

    def step():
        self.poll()  # acknowledgements that arrived free the window
        return True, self.post(tensor, codec, timeout_ms=0, **meta)
    return await _run(self, step, timeout_ms, False)


async def wait_acked_async(self, sequence, *, timeout_ms=10000):
    """Awaitable :meth:`wait_acked`: the :class:`Receipt` once the peer decoded the packet."""
    def step():
        self.poll()
        return True, self.wait_acked(sequence, 0)
    return await _run(self, step, timeout_ms, True)


async def send_async(self, tensor, codec, *, timeout_ms=10000, inline_bytes=None, **meta):
    """Awaitable :meth:`send`: posts ``tensor`` and returns the :class:`Receipt` once the peer has
    verified and decoded it. Cancelled after the post, the packet is still delivered."""
    t0 = time.monotonic()
    seq = await post_async(self, tensor, codec, timeout_ms=timeout_ms, inline_bytes=inline_bytes,
                           **meta)
    left = max(0, timeout_ms - int((time.monotonic() - t0) * 1000))
    return await wait_acked_async(self, seq, timeout_ms=left)


async def flush_async(self, *, timeout_ms=10000):
    """Awaitable :meth:`flush`: returns once every posted packet is acknowledged."""
    def step():
        self.poll()
        self.flush(0)
        return True, None
    return await _run(self, step, timeout_ms, True)


async def next_packet_async(self, *, timeout_ms=10000):
    """Awaitable :meth:`next_packet`: describes the next packet, which stays queued."""
    def step():
        self.poll()
        return True, self.next_packet(0)
    return await _run(self, step, timeout_ms, True)


async def receive_async(self, out=None, *, dtype="", timeout_ms=10000, inline_bytes=None):
    """Awaitable :meth:`receive`: decodes the next packet into ``out`` (any tensor with
    ``__dlpack__`` or the buffer protocol) or a new array, acknowledges it and returns it."""
    limit = INLINE_BYTES if inline_bytes is None else inline_bytes
    inline = False
    if not _driver_of(self).pending():
        self.poll()
        inline = 0 <= self._next_packet_bytes(dtype) <= limit  # -1: nothing queued yet

    def step():
        return True, self.receive(out, dtype, 0)
    return await _run(self, step, timeout_ms, inline)


@classmethod
async def connect_async(cls, host, port, **options):
    """Awaitable :meth:`connect` (the handshake runs on a worker thread)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(cls.connect, host, port, **options))


# --- Server


async def accept_async(self, *, timeout_ms=10000):
    """Awaitable :meth:`accept`: the :class:`Link` of the next peer that completes the handshake
    (other peers' handshakes and the server's links go on meanwhile)."""
    def step():
        self.poll()
        return True, self.accept(0)
    return await _run(self, step, timeout_ms, True)


Link.post_async = post_async
Link.wait_acked_async = wait_acked_async
Link.send_async = send_async
Link.flush_async = flush_async
Link.next_packet_async = next_packet_async
Link.receive_async = receive_async
Link.connect_async = connect_async
Server.accept_async = accept_async
