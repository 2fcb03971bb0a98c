"""Atomic writes (`workbench/atomic.py`): a reader sees the old file or the new one, never a mix."""

import json
import threading

import pytest

from workbench.atomic import atomic_path, atomic_write_json, read_json


def test_two_writers_of_one_file_do_not_collide(tmp_path):
    """Two processes sharing a sweep write its plan at once; each writer needs its own temporary file."""
    path, errors = tmp_path / "sweep.json", []
    start = threading.Barrier(2)

    def write(who: int) -> None:
        start.wait()
        try:
            for i in range(300):
                atomic_write_json(path, {"who": who, "i": i, "pad": "x" * 4096})
        except OSError as e:
            errors.append(e)

    threads = [threading.Thread(target=write, args=(w,)) for w in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert read_json(path)["i"] == 299 and [p.name for p in tmp_path.iterdir()] == ["sweep.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.json"
    atomic_write_json(path, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert json.loads(path.read_text()) == {"v": 1} and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_missing_folder_is_named_in_the_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere/a.json"):
        atomic_write_json(tmp_path / "nowhere" / "a.json", {})
