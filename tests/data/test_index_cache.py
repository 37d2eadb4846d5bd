"""The per-process video index cache is bounded (LRU) and compact, and its size can be set."""

from __future__ import annotations

import tracemalloc
from array import array

import pytest

from offnet.data import decode
from offnet.data.decode import count_frames, index_cache_size, read_frames, set_index_cache_size


@pytest.fixture(autouse=True)
def fresh_cache():
    size = index_cache_size()
    decode.clear_cache()
    yield
    set_index_cache_size(size)
    decode.clear_cache()


def test_least_recently_used_index_is_forgotten(make_video, synth):
    a, b, c = (make_video(f"{name}.avi", num_frames=10) for name in "abc")
    set_index_cache_size(2)
    count_frames(a)
    count_frames(b)
    count_frames(a)  # a is now more recent than b
    count_frames(c)  # evicts b
    assert decode._cache_key(a) in decode._CACHE and decode._cache_key(c) in decode._CACHE
    assert decode._cache_key(b) not in decode._CACHE and len(decode._CACHE) == 2
    assert decode._CACHE.evictions == 1
    frames = read_frames(b, [0, 9])  # indexed again after eviction, frames still exact
    assert [synth.frame_id(f) for f in frames] == [0, 9] and decode._cache_key(a) not in decode._CACHE


def test_shrinking_the_cache_evicts_at_once(make_video, make_frame_folder):
    videos = [make_video(f"v{i}.avi", num_frames=6) for i in range(3)]
    folders = [make_frame_folder(f"f{i}", num_frames=4, flow=False) for i in range(3)]
    for path in (*videos, *folders):
        count_frames(path)
    assert len(decode._CACHE) == 3 and len(decode._FOLDER_CACHE) == 3
    set_index_cache_size(1)
    assert len(decode._CACHE) == 1 and len(decode._FOLDER_CACHE) == 1 and index_cache_size() == 1


def test_timestamps_are_stored_packed(synthetic_mp4):
    count_frames(synthetic_mp4)
    index = decode._video_index(synthetic_mp4)
    assert isinstance(index.pts, array) and index.pts.itemsize == 8 and len(index.pts) == 30
    assert isinstance(index.key_positions, array) and index.key_positions[0] == 0


def test_memory_stays_bounded_on_a_large_index():
    """5 000 videos of 300 frames indexed through a cache of 100: memory of ~100 indexes, not 5 000."""
    set_index_cache_size(100)
    tracemalloc.start()
    try:
        for i in range(5_000):
            pts = array("q", range(i, i + 300 * 512, 512))
            decode._CACHE.put((f"/data/kinetics/train/x/{i:011d}.mp4", 1, 2),
                              decode._VideoIndex(300, 240, 320, pts, array("q", range(0, 300, 12))))
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(decode._CACHE) == 100 and decode._CACHE.evictions == 4_900
    assert current < 100 * 4096  # about 3 KB an index; unbounded, 5 000 would hold ~15 MB


@pytest.mark.parametrize("value", [0, -3, 2.5, True])
def test_bad_sizes_are_refused(value):
    with pytest.raises(ValueError, match="index cache size must be an integer >= 1"):
        set_index_cache_size(value)


def test_size_from_the_environment(monkeypatch):
    monkeypatch.setenv(decode.INDEX_CACHE_ENV, "128")
    assert decode._size_from_env() == 128
    monkeypatch.setenv(decode.INDEX_CACHE_ENV, "lots")
    with pytest.raises(ValueError, match="OFFNET_INDEX_CACHE='lots': give the number of videos"):
        decode._size_from_env()
    monkeypatch.delenv(decode.INDEX_CACHE_ENV)
    assert decode._size_from_env() == 4096
