"""cbam.bench's reading of the cache sizes, from a sysfs tree made for the test (no timings)."""

from __future__ import annotations

from cbam.bench import _parse_size, cache_sizes


def test_sizes_are_read_as_sysfs_and_lscpu_spell_them():
    assert _parse_size("32K\n") == 32 * 1024
    assert _parse_size("32768K") == 32 * 2**20
    assert _parse_size("1M") == 2**20
    assert _parse_size("512 KiB") == 512 * 1024
    assert _parse_size("4096") == 4096


def _cache(root, index, level, kind, size):
    folder = root / f"index{index}"
    folder.mkdir()
    (folder / "level").write_text(f"{level}\n")
    (folder / "type").write_text(f"{kind}\n")
    (folder / "size").write_text(f"{size}\n")


def test_data_caches_are_named_by_level_and_the_instruction_cache_left_out(tmp_path):
    _cache(tmp_path, 0, 1, "Data", "48K")
    _cache(tmp_path, 1, 1, "Instruction", "32K")
    _cache(tmp_path, 2, 2, "Unified", "2048K")
    _cache(tmp_path, 3, 3, "Unified", "30M")
    assert cache_sizes(str(tmp_path)) == {"L1d": 48 * 1024, "L2": 2 * 2**20, "L3": 30 * 2**20}


def test_no_sysfs_gives_no_sizes_rather_than_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr("cbam.bench.sys.platform", "linux")
    assert cache_sizes(str(tmp_path / "absent")) == {}
    broken = tmp_path / "broken" / "index0"
    broken.mkdir(parents=True)
    (broken / "level").write_text("1\n")  # no type, no size
    assert cache_sizes(str(tmp_path / "broken")) == {}
