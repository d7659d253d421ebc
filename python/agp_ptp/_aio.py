"""asyncio for links and servers: awaitable send, post, receive and accept that never block the
event loop.

A call first tries on the loop's thread without waiting, when nothing else of that link is pending,
its tensor is small (at most ``inline_bytes``, 1 MiB by default: about a third of a millisecond
of encoding, like any short computation of the loop) and no other thread is inside the library
with that link (its lock is not waited for). When it would wait, or the tensor is large, it goes to
a helper thread, one per library event loop (a connecting Link, or a Server with the Links it
accepted). That thread tries every pending call with a zero timeout, then sleeps in the library
until something happens on the wire (``wait_event``), and resolves the futures on the event loop.

Cancelling an await leaves the link usable. A post cancelled before the helper began it is not
sent; one cancelled while it was being encoded is sent (``counters()["packets_sent"]`` is the
sequence number of the last packet posted). A receive cancelled after its packet was decoded
keeps that packet for the next receive (or next_packet) on the link, sync or async: nothing is
lost or reordered.
"""
import asyncio
import atexit
import collections
import functools
import threading
import time
import weakref

from ._agp_ptp import Link, Server, _copy_into, _set_try_lock
from ._errors import Error

INLINE_BYTES = 1 << 20  # work on the loop's thread only up to this many tensor bytes
_IDLE_POLL_S = 0.1      # an idle helper keeps acknowledgements and heartbeats moving
_MAX_TIMEOUT_MS = 1 << 31
_DROPPED = object()  # a cancelled call the helper never began: nothing to hand over
_drivers = weakref.WeakSet()
_stopping = False


@atexit.register
def _stop_helpers():
    # Before the interpreter goes: a helper thread inside the library then could not take the GIL
    # back (and would take the process down with it).
    global _stopping
    _stopping = True
    for d in list(_drivers):
        d.stop()


def _is_timeout(e):
    return isinstance(e, Error) and e.name == "timeout"


def _timeout_ms(value):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_TIMEOUT_MS:
        raise Error(f"timeout_ms must be an integer 0..{_MAX_TIMEOUT_MS}, got {value!r}", 300,
                    "invalid_argument")
    return value


class _Op:
    """One awaited call: `step()` tries it once with a zero timeout and returns (done, value)."""
    __slots__ = ("future", "loop", "step", "deadline", "cancelled", "last_timeout", "owner",
                 "keeps", "entry")

    def __init__(self, loop, step, timeout_ms, owner, keeps):
        self.loop = loop
        self.future = loop.create_future()
        self.step = step
        self.deadline = time.monotonic() + timeout_ms / 1000.0
        self.cancelled = False
        self.last_timeout = None
        self.owner = owner  # keeps the Link or Server alive while the call is pending
        # Receives and accepts: a result whose await was cancelled meanwhile is kept for the next
        # call (a packet taken from the link cannot be put back). `entry` is its place in the
        # driver's queue of results on their way, in the order they were taken.
        self.keeps = keeps
        self.entry = None
        self.future.add_done_callback(self._on_done)

    def _on_done(self, future):
        if future.cancelled():
            self.cancelled = True

    def settle(self, driver, value=None, error=None):
        if error is None and self.keeps:
            self.entry = [value, "transit", self]
            with driver._cv:
                driver.results.setdefault(self.owner, collections.deque()).append(self.entry)
        try:
            self.loop.call_soon_threadsafe(_settle, driver, self, value, error)
        except RuntimeError:  # the event loop is closed: nobody awaits this any more
            driver.orphan(self)


def _settle(driver, op, value, error):
    if op.future.done():  # cancelled meanwhile
        driver.orphan(op)
        return
    # A kept result's entry stays until the awaiting task has it (_run): a task cancelled after
    # its future got the result never sees it.
    if error is not None:
        op.future.set_exception(error)
    else:
        op.future.set_result(value)


class _Driver:
    """The helper thread of one library event loop (see the module's text)."""

    def __init__(self, waiter):
        self._waiter = weakref.ref(waiter)
        self._ops = collections.deque()
        self._cv = threading.Condition()
        self._thread = None
        # Results taken for awaits (receives, accepts), per link or server, oldest first: on their
        # way to the awaiting task ("transit"), or kept for the next call because the await was
        # cancelled meanwhile ("orphan").
        self.results = weakref.WeakKeyDictionary()
        _drivers.add(self)

    def orphan(self, op):
        if op.entry is None:
            return
        with self._cv:
            op.entry[1] = "orphan"
        op.owner._wake()  # a call waiting behind it goes on

    def take(self, owner, wait_for_transit):
        """The oldest kept result of `owner`, or None; with wait_for_transit, raises a timeout
        while an older result is still on its way to an await that may yet be cancelled."""
        with self._cv:
            q = self.results.get(owner)
            if not q:
                return None
            if q[0][1] == "orphan" or q[0][2].loop.is_closed():
                return q.popleft()[0]
            if wait_for_transit:
                raise Error("an earlier receive's result is on its way", 500, "timeout")
            return None

    def stop(self):
        with self._cv:
            self._cv.notify()
            thread = self._thread
        waiter = self._waiter()
        if waiter is not None:
            waiter._wake()
        if thread is not None and thread is not threading.current_thread():
            thread.join(2)

    def pending(self):
        return bool(self._ops)

    def submit(self, op):
        with self._cv:
            self._ops.append(op)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="agp_ptp-aio", daemon=True)
                self._thread.start()
            self._cv.notify()
        op.owner._wake()  # end a wait_event the thread may be in (one event loop per family)

    def _run(self):
        while not _stopping:
            with self._cv:
                if not self._ops:
                    self._cv.wait(_IDLE_POLL_S)
                ops = list(self._ops)
            # A pending call's owner drives the family's event loop (any member does); idle, the
            # object this helper was made for keeps acknowledgements and heartbeats moving.
            waiter = ops[0].owner if ops else self._waiter()
            if not ops:
                if waiter is None or getattr(waiter, "_closed", False):
                    with self._cv:
                        if not self._ops:
                            return  # nothing left to wait for; a new call starts a new thread
                    continue
                try:
                    waiter.poll()
                except Error:
                    pass  # a closed link: its next call says so
                del waiter
                continue
            progressed = False
            now = time.monotonic()
            for op in ops:
                done, value, error = self._attempt(op, now)
                if done:
                    progressed = True
                    with self._cv:
                        self._ops.remove(op)
                    if value is not _DROPPED:
                        op.settle(self, value, error)
            if not progressed:
                with self._cv:
                    deadlines = [op.deadline for op in self._ops]
                wait_s = min([_IDLE_POLL_S] + [d - time.monotonic() for d in deadlines])
                try:
                    waiter._wait_event(max(0, int(wait_s * 1000)))
                except Error:
                    pass
            del waiter, ops

    @staticmethod
    def _attempt(op, now):
        if op.cancelled:
            return True, _DROPPED, None  # not begun: nothing happened
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
            return True, None, op.last_timeout or Error("deadline passed", 500, "timeout")
        return False, None, None


def _driver_of(native):
    d = native._driver
    if d is None:
        d = _Driver(native)
        native._driver = d
    return d


def _try_inline(step):
    """(done, value) of `step` on the loop's thread, never waiting for the link's lock."""
    _set_try_lock(True)
    try:
        return step()
    except Error as e:
        if not _is_timeout(e):
            raise
        return False, None
    finally:
        _set_try_lock(False)


async def _run(native, step, timeout_ms, inline, keeps=False):
    """Tries `step` on the loop's thread when allowed, else awaits it through the helper."""
    timeout_ms = _timeout_ms(timeout_ms)
    driver = _driver_of(native)
    if inline and not driver.pending():
        done, value = _try_inline(step)
        if done:
            return value
    op = _Op(asyncio.get_running_loop(), step, timeout_ms, native, keeps)
    driver.submit(op)
    try:
        value = await op.future
    except asyncio.CancelledError:
        driver.orphan(op)  # its result, if it came, goes to the next call
        raise
    if op.entry is not None:
        with driver._cv:
            driver.results[op.owner].remove(op.entry)
    return value


def _tensor_bytes(tensor):
    n = getattr(tensor, "nbytes", None)
    if isinstance(n, int):
        return n
    try:
        return memoryview(tensor).nbytes
    except TypeError:
        return INLINE_BYTES + 1  # unknown: not on the loop's thread


# --- receiving: packets kept for cancelled awaits come first

_native_receive = Link.receive
_native_next_packet = Link.next_packet


def _take(native, wait_for_transit=False):
    d = native._driver
    return d.take(native, wait_for_transit) if d is not None else None


def _hand_over(kept, out):
    info, value = kept
    if out is None or out is value:
        return value
    _copy_into(value, out)
    return out


def receive(self, out=None, dtype="", timeout_ms=10000):
    """Decodes the next packet into `out` or a new array, acknowledges it, returns it."""
    kept = _take(self)
    if kept is not None:
        return _hand_over(kept, out)
    return _native_receive(self, out, dtype, timeout_ms)


def _peek(native):
    d = native._driver
    if d is None:
        return None
    with d._cv:
        q = d.results.get(native)
        return q[0][0][0] if q and q[0][1] == "orphan" else None


def next_packet(self, timeout_ms=10000):
    """Waits for the next packet and describes it (it stays queued)."""
    info = _peek(self)
    if info is not None:
        return info
    return _native_next_packet(self, timeout_ms)


receive.__doc__ = _native_receive.__doc__
next_packet.__doc__ = _native_next_packet.__doc__


# --- Link


async def post_async(self, tensor, codec, *, timeout_ms=10000, inline_bytes=None, **meta):
    """Awaitable :meth:`post`: encodes and queues ``tensor``, waiting (without blocking the event
    loop) while the send window is full; returns the packet's sequence number. ``meta``: the
    keyword arguments of :meth:`post` (vector_axis, dtype, name, stream_id, layout)."""
    limit = INLINE_BYTES if inline_bytes is None else inline_bytes
    driver = self._driver
    if (driver is None or not driver._ops) and _tensor_bytes(tensor) <= limit:
        # The common case, kept short: room in the window (post takes in acknowledgements
        # after each packet), nothing of this link pending, its lock free.
        _timeout_ms(timeout_ms)
        seq = self._post_nowait(tensor, codec, **meta)
        if seq:
            return seq

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
    info = _peek(self)
    if info is not None:
        return info

    def step():
        self.poll()
        return True, _native_next_packet(self, 0)
    return await _run(self, step, timeout_ms, True)


async def receive_async(self, out=None, *, dtype="", timeout_ms=10000, inline_bytes=None):
    """Awaitable :meth:`receive`: decodes the next packet into ``out`` (any tensor with
    ``__dlpack__`` or the buffer protocol) or a new array, acknowledges it and returns it."""
    _timeout_ms(timeout_ms)
    kept = _take(self)
    if kept is not None:
        return _hand_over(kept, out)
    limit = INLINE_BYTES if inline_bytes is None else inline_bytes
    inline = False
    if not _driver_of(self).pending():
        def probe():
            self.poll()
            return True, self._next_packet_bytes(dtype)
        done, n = _try_inline(probe)
        inline = done and 0 <= n <= limit  # -1: nothing queued yet

    def step():
        kept = _take(self, wait_for_transit=True)  # in order behind earlier receives
        if kept is not None:
            return True, (kept[0], _hand_over(kept, out))
        info = _native_next_packet(self, 0)
        return True, (info, _native_receive(self, out, dtype, 0))
    info, value = await _run(self, step, timeout_ms, inline, keeps=True)
    return value


async def metrics_async(self):
    """Awaitable :meth:`metrics`, for event loops: the link's lock may be busy with a long encode."""
    def step():
        return True, self.metrics()
    return await _run(self, step, 10000, True)


@classmethod
async def connect_async(cls, host, port, **options):
    """Awaitable :meth:`connect` (the handshake runs on a worker thread)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(cls.connect, host, port, **options))


# --- Server


_native_accept = Server.accept


def accept(self, timeout_ms=10000):
    """Waits for a peer to complete the handshake; returns its Link."""
    kept = _take(self)
    if kept is not None:
        return kept
    return _native_accept(self, timeout_ms)


async def accept_async(self, *, timeout_ms=10000):
    """Awaitable :meth:`accept`: the :class:`Link` of the next peer that completes the handshake
    (other peers' handshakes and the server's links go on meanwhile). A link accepted for an await
    that was cancelled meanwhile goes to the next accept."""
    _timeout_ms(timeout_ms)
    kept = _take(self)
    if kept is not None:
        return kept

    def step():
        kept = _take(self, wait_for_transit=True)
        if kept is not None:
            return True, kept
        self.poll()
        return True, _native_accept(self, 0)
    return await _run(self, step, timeout_ms, True, keeps=True)


Link.receive = receive
Link.next_packet = next_packet
Link.post_async = post_async
Link.wait_acked_async = wait_acked_async
Link.send_async = send_async
Link.flush_async = flush_async
Link.next_packet_async = next_packet_async
Link.receive_async = receive_async
Link.metrics_async = metrics_async
Link.connect_async = connect_async
Server.accept = accept
Server.accept_async = accept_async
