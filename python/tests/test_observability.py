"""Metrics (counters, latency histograms per codec, the Prometheus text format), the tools'
/metrics endpoint scraped over loopback, and the library's records through logging."""
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

import agp_ptp as agp
from agp_ptp import _tools


def parse_exposition(text):
    """{(name, frozenset(labels)): value} and {family: type}, with Prometheus' own parser when it
    is installed (python3-prometheus-client), else a strict reading of the text format."""
    samples, types = {}, {}
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        text_string_to_metric_families = None
    if text_string_to_metric_families:
        for family in text_string_to_metric_families(text):
            types[family.name] = family.type
            for s in family.samples:
                samples[(s.name, frozenset(s.labels.items()))] = s.value
        return samples, types
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name.removesuffix("_total")] = kind
            continue
        if not line or line.startswith("#"):
            continue
        head, value = line.rsplit(" ", 1)
        name, _, rest = head.partition("{")
        labels = {}
        for pair in filter(None, rest.rstrip("}").split('",')):
            k, v = pair.split('="', 1)
            labels[k] = v.rstrip('"')
        samples[(name, frozenset(labels.items()))] = float(value)
    return samples, types


def value(samples, name, **labels):
    matches = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert len(matches) == 1, (name, labels, len(matches))
    return matches[0]


def linked_pair(**options):
    server = agp.Server("127.0.0.1", 0, **options)
    got = {}
    th = threading.Thread(target=lambda: got.update(peer=server.accept(5000)))
    th.start()
    link = agp.Link.connect("127.0.0.1", server.port, **options)
    th.join(10)
    return server, link, got["peer"]


def test_links_report_histograms_per_codec_in_the_prometheus_format():
    server, link, peer = linked_pair(chunk_vectors=16)
    x = np.random.default_rng(0).standard_normal((64, 128)).astype(np.float16)
    th = threading.Thread(target=lambda: [peer.receive(timeout_ms=5000) for _ in range(5)])
    th.start()
    for i in range(5):
        link.send(x, "tq4" if i % 2 else "raw")
    th.join(10)
    m = link.metrics()
    assert m["packets_acked"] == 5
    assert m["codecs"]["tq4"]["ack"]["count"] == 2 and m["codecs"]["raw"]["ack"]["count"] == 3
    assert sum(m["codecs"]["tq4"]["ack"]["counts"]) == 2
    assert len(m["codecs"]["tq4"]["ack"]["counts"]) == len(m["codecs"]["tq4"]["ack"]["bounds_us"]) + 1
    assert 0 < m["codecs"]["tq4"]["ack"]["p50_us_at_most"] <= m["codecs"]["tq4"]["ack"]["p99_us_at_most"]
    assert peer.metrics()["codecs"]["tq4"]["decode"]["count"] == 2

    samples, types = parse_exposition(agp.metrics_text({"sender": link, "receiver": peer}))
    assert value(samples, "agp_ptp_packets_acked_total", link="sender") == 5
    assert value(samples, "agp_ptp_packets_delivered_total", link="receiver") == 5
    assert value(samples, "agp_ptp_ack_latency_seconds_count", link="sender", codec="tq4") == 2
    assert value(samples, "agp_ptp_ack_latency_seconds_bucket", link="sender", codec="raw",
                 le="+Inf") == 3
    assert value(samples, "agp_ptp_decode_seconds_count", link="receiver", codec="raw") == 3
    assert types["agp_ptp_ack_latency_seconds"] == "histogram"
    assert types["agp_ptp_unacked_bytes"] == "gauge"
    one, _ = parse_exposition(link.metrics_text("a \"quoted\" name"))
    assert value(one, "agp_ptp_packets_sent_total", link='a "quoted" name') == 5
    link.close()
    peer.close()


def tool(name):
    d = os.environ.get("AGP_TOOLS_DIR")
    path = os.path.join(d, name) if d else _tools.path(name)
    if not os.access(path, os.X_OK):
        pytest.skip(f"{name} is not built here (AGP_TOOLS_DIR or a pip install provides it)")
    return path


def scrape(port, path="/metrics"):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read().decode()


def test_the_tools_serve_metrics_over_http():
    recv = subprocess.Popen([tool("ptp-recv"), "--listen", "127.0.0.1", "--port", "0",
                             "--metrics-port", "0", "--sessions", "2", "--quiet",
                             "--idle-timeout-ms", "20000"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(recv.stdout.readline().split()[1])
        metrics_port = int(recv.stdout.readline().split()[1])
        samples, _ = parse_exposition(scrape(metrics_port))  # before any sender
        assert value(samples, "agp_ptp_handshake_rejections_total", link="server") == 0
        send = subprocess.Popen([tool("ptp-send"), "--port", str(port), "--count", "6",
                                 "--warmup", "0", "--codecs", "raw,tq4", "--chunk-vectors", "64",
                                 "--quiet", "--metrics-port", "0", "--metrics-linger-s", "3"],
                                stdout=subprocess.PIPE, text=True)
        send_metrics = int(send.stdout.readline().split()[1])
        deadline = time.monotonic() + 20
        while True:  # the receiver publishes after every packet
            samples, _ = parse_exposition(scrape(metrics_port))
            delivered = [v for (n, ls), v in samples.items()
                         if n == "agp_ptp_packets_delivered_total" and ("link", "recv") in ls]
            if delivered == [12] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert delivered == [12]
        assert value(samples, "agp_ptp_decode_seconds_count", link="recv", codec="tq4") == 6
        # The sender's own endpoint, while it lingers after its run.
        deadline = time.monotonic() + 10
        while True:
            sent, _ = parse_exposition(scrape(send_metrics))
            if value(sent, "agp_ptp_packets_acked_total", link="send") == 12:
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert value(sent, "agp_ptp_ack_latency_seconds_count", link="send", codec="raw") == 6
        with pytest.raises(urllib.error.HTTPError) as e:
            scrape(metrics_port, "/other")
        assert e.value.code == 404
        assert send.wait(20) == 0
        # The second session ends the receiver.
        subprocess.run([tool("ptp-send"), "--port", str(port), "--count", "1", "--warmup", "0",
                        "--quiet"], check=True, stdout=subprocess.DEVNULL, timeout=20)
        assert recv.wait(20) == 0
    finally:
        for p in (recv,):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_records_go_to_the_agp_ptp_logger():
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = logging.getLogger("agp_ptp")
    keep = Keep(level=logging.INFO)
    logger.addHandler(keep)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        server, link, peer = linked_pair()
        # Another model's peer: the server (driven by a thread meanwhile) refuses it.
        serving = threading.Thread(target=lambda: pytest.raises(agp.Error, server.accept, 3000))
        serving.start()
        with pytest.raises(agp.Error) as e:
            agp.Link.connect("127.0.0.1", server.port, fingerprint=b"\x07" * 16)
        serving.join(10)
        assert e.value.name == "fingerprint_mismatch"
        events = [getattr(r, "agp_event", None) for r in records]
        assert "connected" in events and "peer_accepted" in events
        for event in ("handshake_failed", "peer_refused"):
            r = next(r for r in records if getattr(r, "agp_event", "") == event)
            assert r.levelno == logging.WARNING and "fingerprint" in r.getMessage(), event
        link.close()
        peer.close()
    finally:
        logger.removeHandler(keep)
        logger.setLevel(old_level)


def test_silent_unless_logging_is_configured():
    script = textwrap.dedent("""
        import threading, agp_ptp as agp
        server = agp.Server("127.0.0.1", 0)
        got = {}
        th = threading.Thread(target=lambda: got.update(p=server.accept(5000)))
        th.start()
        link = agp.Link.connect("127.0.0.1", server.port)
        th.join()
        try:
            agp.Link.connect("127.0.0.1", server.port, fingerprint=b"\\x07" * 16)
        except agp.Error:
            pass
        server.poll()
        link.close()
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    assert r.stderr == "" and r.stdout == ""
