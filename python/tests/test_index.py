"""agp_ptp.Index: build, search with NumPy in and out, save and open, export, vector files, and
the errors a caller meets."""
import json
import os
import tempfile

import numpy as np
import pytest

import agp_ptp as agp


def clustered(n, dim, seed):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, dim))
    return (centres[rng.integers(0, 20, n)] + 0.8 * rng.standard_normal((n, dim))).astype(np.float32)


def brute_force(data, queries, k):
    d = data / np.linalg.norm(data, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    return np.argsort(-(q @ d.T), axis=1)[:, :k]


def test_search_finds_neighbours_and_rerank_finds_them_all():
    data = clustered(3000, 128, 1)
    queries = clustered(20, 128, 2)
    index = agp.Index(128)
    index.add(data)
    assert len(index) == 3000 and index.dim == 128 and index.bits == 4
    assert index.code_bits_per_dimension == pytest.approx(4.25)
    truth = brute_force(data, queries, 10)
    ids, scores = index.search(queries, k=10)
    assert ids.shape == (20, 10) and ids.dtype == np.int64 and scores.dtype == np.float32
    assert np.all(np.diff(scores, axis=1) <= 0)  # best first
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth)])
    assert recall > 0.8
    ids, _ = index.search(queries, k=10, rerank=100, threads=2)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth)])
    assert recall > 0.99
    # One query [dim] gives [k]; it finds itself first, at cosine 1.
    one_ids, one_scores = index.search(data[42], k=3, rerank=10)
    assert one_ids.shape == (3,) and one_ids[0] == 42
    assert one_scores[0] == pytest.approx(1.0, abs=1e-3)
    # float16 and float64 rows are converted; a 1-D query of another length is refused.
    assert index.search(data[42].astype(np.float16), k=1)[0][0] == 42
    assert index.search(data[42].astype(np.float64), k=1, coarse=0)[0][0] == 42
    with pytest.raises(agp.Error) as e:
        index.search(data[42][:100])
    assert e.value.name == "invalid_argument" and "[128]" in str(e.value)


def test_missing_hits_are_minus_one_and_nan():
    index = agp.Index(16)
    index.add(np.eye(16, dtype=np.float32)[:3])
    ids, scores = index.search(np.ones(16, np.float32), k=5)
    assert list(ids[:3]) != [-1] * 3 and list(ids[3:]) == [-1, -1]
    assert np.isnan(scores[3:]).all()


def test_snapshot_round_trip_and_damage():
    data = clustered(500, 64, 3)
    index = agp.Index(64, bits=3)
    index.add(data)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "x.agpidx")
        index.save(path)
        opened = agp.Index.open(path)
        a = index.search(data[:5], k=4)
        b = opened.search(data[:5], k=4)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_allclose(opened.vectors(10, 2), index.vectors(10, 2))
        exported = opened.vectors()
        assert exported.shape == (500, 64)
        np.testing.assert_allclose(np.linalg.norm(exported, axis=1), 1.0, atol=1e-3)
        raw = bytearray(open(path, "rb").read())
        raw[300] ^= 0xFF
        open(path, "wb").write(bytes(raw))
        with pytest.raises(agp.Error) as e:
            agp.Index.open(path)
        assert e.value.name == "section_checksum_mismatch"


def test_bad_vectors_add_nothing():
    index = agp.Index(8)
    bad = np.ones((4, 8), np.float32)
    bad[2, 5] = np.nan
    with pytest.raises(agp.Error) as e:
        index.add(bad)
    assert e.value.name == "non_finite_input" and "vector 2" in str(e.value)
    assert len(index) == 0
    with pytest.raises(agp.Error):
        index.add(np.zeros((1, 8), np.float32))
    with pytest.raises(agp.Error):
        index.add(np.ones((2, 9), np.float32))
    with pytest.raises(agp.Error):
        agp.Index(0)
    with pytest.raises(agp.Error):
        agp.Index(8, bits=9)


def test_read_vectors_every_row_shape_and_bad_lines():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "rows.jsonl")
        with open(path, "w") as f:
            f.write(json.dumps([1, 2, 3]) + "\n")
            for field in ("embedding", "vector", "values", "embedding_vector"):
                f.write(json.dumps({field: [4, 5, 6], "id": field}) + "\n")
        v = agp.read_vectors(path)
        assert v.shape == (5, 3) and v.dtype == np.float32
        np.testing.assert_array_equal(v[1], [4, 5, 6])
        with open(path, "a") as f:
            f.write(json.dumps({"embedding": [1, 2]}) + "\n")
        with pytest.raises(agp.Error) as e:
            agp.read_vectors(path)
        assert e.value.name == "bad_vector_file" and "rows.jsonl:6" in str(e.value)
        npy = os.path.join(d, "v.npy")
        np.save(npy, np.arange(12, dtype=np.float16).reshape(3, 4) + 1)
        np.testing.assert_array_equal(agp.read_vectors(npy)[2], [9, 10, 11, 12])
