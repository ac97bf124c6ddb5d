"""The ICRA 2020 LiDAR trace reader: real files, the standard split, clear errors for bad input."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from nodes.control.dataset import (N_BEAMS, SEQ_LEN, TEST_TRACES, VAL_TRACES, DatasetError, cut_sequences,
                                   read_trace, standard_split, trace_files)
from tests.conftest import LIDAR_DATASET

needs_data = pytest.mark.skipif(not LIDAR_DATASET.is_dir(), reason=f"ICRA 2020 LiDAR dataset not found at {LIDAR_DATASET}")


@needs_data
def test_reads_real_traces_and_splits():
    t = read_trace(LIDAR_DATASET / "trace_0009.csv.gz")
    assert t.number == 9 and t.scans.shape == (66, N_BEAMS) and t.state.shape == (66, 2)
    assert t.steering.shape == (66,) and np.all(np.abs(t.steering) <= 1)
    assert t.state.max() <= 1.0  # column 1 reads 2.1 ... 2.3 in this trace before clipping
    assert 0 <= t.scans.min() and t.scans.max() < 8
    split = standard_split(LIDAR_DATASET)
    assert sorted(x.number for x in split.test) == sorted(TEST_TRACES) and len(TEST_TRACES) == 7
    train_numbers = {x.number for x in split.train}
    assert len(train_numbers) == 29 - 7 - len(VAL_TRACES)
    assert not train_numbers & set(TEST_TRACES) and not train_numbers & set(VAL_TRACES)
    assert len(split.train) == 2 * len(train_numbers)  # mirrored copies
    test = split.sequences("test")
    assert test.scans.shape[1:] == (SEQ_LEN, N_BEAMS) and test.steering.shape[1] == SEQ_LEN


@needs_data
def test_mirror_reverses_scan_and_negates_steering():
    t = read_trace(LIDAR_DATASET / "trace_0001.csv.gz")
    m = t.mirrored()
    np.testing.assert_array_equal(m.scans, t.scans[:, ::-1])
    np.testing.assert_array_equal(m.steering, -t.steering)
    # both state values are turn-direction quantities (sign-symmetric in the data): both negated
    np.testing.assert_array_equal(m.state, -t.state)
    assert (t.state[:, 0] > 0).any() and (t.state[:, 0] < 0).any()
    # simulator episodes keep their speed value: state (v, -omega) mirrors to (v, +omega)
    sim = t.mirrored(state_signs=(1.0, -1.0))
    np.testing.assert_array_equal(sim.state[:, 0], t.state[:, 0])
    np.testing.assert_array_equal(sim.state[:, 1], -t.state[:, 1])


@needs_data
def test_keras_ncp_split_matches_the_public_loader():
    from nodes.control.dataset import KERAS_TEST_TRACES, ZERO_RETURN_RATE, keras_split, load_traces

    # the public loader: default_rng(20200822).shuffle of the 29 files, the first 7 are the test set
    order = list(range(29))
    np.random.default_rng(20200822).shuffle(order)
    assert tuple(sorted(i + 1 for i in order[:7])) == KERAS_TEST_TRACES
    split = keras_split(LIDAR_DATASET)
    assert len(split.test) == 14 and {t.number for t in split.test} == set(KERAS_TEST_TRACES)  # with mirrors
    test = split.sequences("test")
    # always-zero MSE on this split: 0.1752 (the dataset README's "about 0.175")
    assert float(np.mean(test.steering ** 2)) == pytest.approx(0.1752, abs=5e-4)
    # sequences start at range(0, n - 32, 16) per trace (no tail window), as the public loader cuts them
    expected = sum(len(range(0, len(t.steering) - SEQ_LEN, 16)) for t in split.test)
    assert len(test) == expected
    assert not {t.number for t in split.train} & set(KERAS_TEST_TRACES)
    # the zero-return rate used by the simulator is the one in the data
    scans = np.concatenate([t.scans for t in load_traces(LIDAR_DATASET).values()])
    assert float(np.mean(scans == 0)) == pytest.approx(ZERO_RETURN_RATE, abs=2e-4)


def test_sequences_overlap_by_half_and_cover_the_tail():
    from nodes.control.dataset import Trace

    n = 70
    t = Trace(1, np.zeros((n, N_BEAMS), np.float32), np.zeros((n, 2), np.float32), np.arange(n, dtype=np.float32), None)
    s = cut_sequences([t])
    starts = s.steering[:, 0].astype(int).tolist()
    assert starts == [0, 16, 32, 38]  # stride 16, plus one window aligned to the end
    assert s.steering[-1, -1] == n - 1


def test_missing_directory_and_malformed_trace(tmp_path):
    with pytest.raises(DatasetError, match="dataset directory not found"):
        trace_files(tmp_path / "nope")
    with pytest.raises(DatasetError, match="no trace_NNNN"):
        trace_files(tmp_path)
    good = ",".join(["0", "0.1", "-0.2"] + ["1.5"] * N_BEAMS + ["0.3"])
    bad = tmp_path / "trace_0001.csv.gz"
    with gzip.open(bad, "wt") as f:
        f.write(good + "\n" + good + "\n" + ",".join(["1", "0.1"] + ["1.5"] * N_BEAMS + ["0.3"]) + "\n")
    with pytest.raises(DatasetError, match=r"trace_0001\.csv\.gz: line 3: 544 columns, expected 545"):
        read_trace(bad)
    with gzip.open(bad, "wt") as f:
        f.write(good + "\n" + good.replace("1.5", "x1", 1) + "\n")
    with pytest.raises(DatasetError, match=r"line 2: not a number: 'x1'"):
        read_trace(bad)
    plain = tmp_path / "trace_0002.csv"
    plain.write_text(good + "\n")
    assert read_trace(plain).scans.shape == (1, N_BEAMS)
    with pytest.raises(DatasetError, match=r"missing traces \[3, 4"):
        trace_files(tmp_path)
