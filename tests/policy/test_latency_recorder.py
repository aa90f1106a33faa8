import numpy as np
import pytest

from policy.latency import LatencyInjector, LatencySpec
from policy.recording import PolicyRecorder, read_records
from tests.policy.helpers import WavePolicy, make_obs


def test_injected_latencies_are_deterministic_and_shaped_as_asked():
    fixed = LatencyInjector("fixed:80")
    assert {fixed.sample_s() for _ in range(10)} == {0.08}
    a = [LatencyInjector("jitter:80,20", seed=4).sample_s() for _ in range(3)]
    b = [LatencyInjector("jitter:80,20", seed=4).sample_s() for _ in range(3)]
    assert a == b
    jit = LatencyInjector("jitter:80,20", seed=1)
    xs = np.array([jit.sample_s() for _ in range(500)])
    assert xs.min() >= 0.06 and xs.max() <= 0.1 and xs.std() > 0.005
    heavy = LatencyInjector("heavy:80,1.5", seed=1)
    hs = np.array([heavy.sample_s() for _ in range(2000)])
    assert hs.min() >= 0.08 and np.percentile(hs, 99) > 3 * np.median(hs)
    assert hs.max() <= 20 * 0.08 + 1e-9
    spike = LatencyInjector("spike:80,0.1,600", seed=2)
    ss = np.array([spike.sample_s() for _ in range(1000)])
    assert set(np.round(ss, 3)) == {0.08, 0.6} and 0.05 < np.mean(ss == 0.6) < 0.15
    assert LatencyInjector("fixed:80").sample_ticks(1 / 30) == 3
    assert LatencyInjector("fixed:200").sample_ticks(1 / 30) == 6


def test_bad_latency_specs_say_how_to_write_them():
    with pytest.raises(ValueError, match="fixed:MS"):
        LatencySpec.parse("80ms")
    with pytest.raises(ValueError, match="negative"):
        LatencySpec.parse("jitter:10,20")
    with pytest.raises(ValueError, match="numbers"):
        LatencySpec.parse("fixed:abc")


def test_recorder_wraps_a_policy_and_writes_readable_episodes(tmp_path):
    rec = PolicyRecorder(WavePolicy(), tmp_path)
    prefix = np.ones((2, 10), dtype=np.float32) * 0.001
    c1 = rec.infer(make_obs(0), None)
    c2 = rec.infer(make_obs(10), prefix)
    rec.reset()
    rec.infer(make_obs(0))
    rec.close()
    assert rec.version == "wave-1"
    files = sorted(tmp_path.glob("episode_*.msgpack"))
    assert len(files) == 2
    records = list(read_records(files[0]))
    assert [r["obs"]["step"] for r in records] == [0, 10]
    np.testing.assert_array_equal(records[0]["actions"], c1)
    np.testing.assert_array_equal(records[1]["actions"], c2)
    np.testing.assert_array_equal(records[1]["prefix"], prefix)
    assert records[0]["prefix"] is None
    assert records[0]["obs"]["images"]["head"].dtype == np.uint8
