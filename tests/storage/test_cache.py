"""Reference tracking in the store and the ``python -m interp.cache`` list/info/gc CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import time

import pytest
import torch

from interp.cache import main
from interp.storage.gc import gc
from interp.storage.store import Store


def _files(value: float = 1.0) -> dict:
    return {"w": {"a": torch.full((4, 3), value), "b": torch.arange(5.0)}}


def _snapshot(path) -> dict:
    return {str(f.relative_to(path)): f.read_bytes() for f in path.rglob("*") if f.is_file()}


def _read(path) -> dict:
    return json.loads(path.read_text())


def test_touched_records_put_get_and_get_or_build(tmp_path):
    store = Store(tmp_path / "c")
    a = store.put("k", {"n": 1}, _files())
    assert list(store.touched) == [f"k/{a.key}"]

    other = Store(tmp_path / "c")
    assert other.get("k", {"n": 2}) is None  # a miss touches nothing
    assert list(other.touched) == []
    other.get("k", {"n": 1})
    b = other.get_or_build("fam/sub", {"n": 3}, lambda: (_files(3.0), {}))
    other.get_or_build("fam/sub", {"n": 3}, lambda: pytest.fail("should hit"))
    assert list(other.touched) == [f"k/{a.key}", f"fam/sub/{b.key}"]  # ordered, no repeats


def test_write_refs_unions_with_existing_file(tmp_path):
    root, run = tmp_path / "c", tmp_path / "run"
    run.mkdir()
    s1 = Store(root)
    a = s1.put("k", {"n": 1}, _files())
    path = s1.write_refs(run)
    assert path.parent == root / "refs" and path.suffix == ".json"
    first = _read(path)
    assert first["run_dir"] == str(run.resolve()) and first["entries"] == [a.name]

    s2 = Store(root)  # a later process writing into the same run dir
    b = s2.put("fam/sub", {"n": 2}, _files(2.0))
    time.sleep(0.01)
    assert s2.write_refs(tmp_path / "." / "run") == path  # same dir, same refs file
    second = _read(path)
    assert second["entries"] == sorted([a.name, b.name])
    assert second["updated"] > first["updated"]
    assert [r["run_dir"] for r in Store(root).refs()] == [str(run.resolve())]

    other = tmp_path / "run2"
    other.mkdir()
    assert s2.write_refs(other) != path and len(s2.refs()) == 2


def test_refs_skips_unreadable_file(tmp_path, caplog):
    store = Store(tmp_path / "c")
    store.put("k", {"n": 1}, _files())
    store.write_refs(tmp_path)
    (store.root / "refs" / "broken.json").write_text("{not json")
    assert [r["run_dir"] for r in store.refs()] == [str(tmp_path.resolve())]
    assert "broken.json" in caplog.text


def test_entry_size_is_total_bytes(tmp_path):
    e = Store(tmp_path).put("k", {"n": 1}, _files())
    assert e.size == sum(f.stat().st_size for f in e.path.iterdir())
    assert e.size > e.path.joinpath("w.safetensors").stat().st_size


def _two_entries(tmp_path):
    """A store with a kept entry (referenced by an existing run dir) and an orphan."""
    root, run = tmp_path / "c", tmp_path / "run"
    run.mkdir()
    user = Store(root)
    kept = user.put("fam/sub", {"n": 1}, _files())
    user.write_refs(run)
    orphan = Store(root).put("k", {"n": 2}, _files(2.0))
    return Store(root), kept, orphan, run


def test_gc_removes_unreferenced_and_keeps_referenced(tmp_path):
    store, kept, orphan, _ = _two_entries(tmp_path)
    with store._lock(orphan.kind, orphan.key):  # a lock file beside the entry
        pass
    stale = orphan.path.parent / f".tmp-{orphan.key}-deadbeef"
    stale.mkdir()
    before = _snapshot(kept.path)

    removed = gc(store, grace=0)
    assert [e.name for e in removed] == [orphan.name]
    assert removed[0].size > 0  # still known after the files are gone
    assert not orphan.path.exists() and not stale.exists()
    assert not (orphan.path.parent / f"{orphan.key}.lock").exists()
    assert _snapshot(kept.path) == before
    got = Store(store.root).get("fam/sub", {"n": 1})  # verifies every checksum
    assert got is not None and torch.equal(got.load("w")["a"], torch.full((4, 3), 1.0))
    assert gc(store, grace=0) == []


def test_gc_skips_entry_whose_lock_is_held_and_sweeps_old_temp_dirs(tmp_path):
    store, kept, orphan, _ = _two_entries(tmp_path)
    fresh = store.root / "k" / ".tmp-aaaa-11111111"  # a writer may be filling this one
    old = store.root / "k" / ".tmp-bbbb-22222222"  # a killed writer left this one
    fresh.mkdir()
    old.mkdir()
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    with store._lock(orphan.kind, orphan.key):  # another builder holds the orphan's lock
        assert gc(store, grace=0) == []
    assert orphan.path.exists() and fresh.exists() and not old.exists()
    assert [e.name for e in gc(store, grace=0)] == [orphan.name]


def test_gc_drops_refs_of_deleted_run_dir_then_collects(tmp_path):
    store, kept, orphan, run = _two_entries(tmp_path)
    run.rmdir()
    removed = gc(store, grace=0)
    assert sorted(e.name for e in removed) == sorted([kept.name, orphan.name])
    assert store.refs() == [] and store.entries() == []


def test_gc_dry_run_removes_nothing(tmp_path, capsys):
    store, kept, orphan, run = _two_entries(tmp_path)
    run.rmdir()
    before = _snapshot(store.root)
    removed = gc(store, dry_run=True, grace=0)
    assert sorted(e.name for e in removed) == sorted([kept.name, orphan.name])
    assert main(["--root", str(store.root), "gc", "--dry-run", "--grace", "0"]) == 0
    out = capsys.readouterr().out
    assert f"would remove {orphan.name}" in out and "would free" in out
    assert _snapshot(store.root) == before


def test_gc_cli_reports_freed_bytes(tmp_path, capsys):
    store, kept, orphan, _ = _two_entries(tmp_path)
    size = orphan.size
    assert main(["gc", "--root", str(store.root), "--grace", "0"]) == 0
    out = capsys.readouterr().out
    assert f"removed {orphan.name}" in out and "freed" in out and f"({size} bytes)" in out
    assert kept.path.exists() and not orphan.path.exists()


def test_gc_refuses_on_unreadable_refs(tmp_path, capsys):
    store, kept, orphan, _ = _two_entries(tmp_path)
    (store.root / "refs" / "broken.json").write_text("")
    assert main(["--root", str(store.root), "gc"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "broken.json" in err
    assert kept.path.exists() and orphan.path.exists()


def test_list_shows_keys_sizes_and_ref_counts(tmp_path, capsys):
    store, kept, orphan, _ = _two_entries(tmp_path)
    assert main(["--root", str(store.root), "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["KIND", "KEY", "SIZE", "CREATED", "RUNS"]
    row = {line.split()[1]: line.split() for line in lines[1:-1]}
    assert row[kept.key][0] == "fam/sub" and row[kept.key][-1] == "1"
    assert row[orphan.key][0] == "k" and row[orphan.key][-1] == "0"
    assert row[kept.key][3] == "B" and int(row[kept.key][2]) == kept.size  # "<n> B"
    assert lines[-1].startswith("total: 2 entries,")


def test_list_empty_store(tmp_path, capsys):
    assert main(["--root", str(tmp_path / "none"), "list"]) == 0
    assert "no entries" in capsys.readouterr().out


def test_info_by_prefix_and_kind_key(tmp_path, capsys):
    store, kept, _, run = _two_entries(tmp_path)
    for query in (kept.key[:6], kept.name):
        assert main(["--root", str(store.root), "info", query]) == 0
        out = capsys.readouterr().out
        assert f"key:     {kept.key}" in out and "kind:    fam/sub" in out
        assert f"({kept.size} bytes)" in out and "w.safetensors" in out
        assert str(run.resolve()) in out and '"n": 1' in out


def test_info_truncates_long_meta(tmp_path, capsys):
    e = Store(tmp_path).put("k", {"n": 1}, _files(), {"log": list(range(3000))})
    assert main(["--root", str(tmp_path), "info", e.key]) == 0
    out = capsys.readouterr().out
    assert "more chars)" in out and len(out) < 4000


def test_info_unknown_key_is_one_line_error(tmp_path, capsys):
    store, *_ = _two_entries(tmp_path)
    assert main(["--root", str(store.root), "info", "zzzz"]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err.startswith("error: ") and "'zzzz'" in cap.err
    assert cap.err.count("\n") == 1 and "Traceback" not in cap.err


def test_info_ambiguous_prefix_names_matches(tmp_path, capsys):
    store = Store(tmp_path)
    # find two configs whose keys share a first hex digit
    by_digit: dict[str, list[int]] = {}
    n = 0
    while True:
        by_digit.setdefault(store.key("k", {"n": n})[0], []).append(n)
        if len(by_digit[store.key("k", {"n": n})[0]]) == 2:
            break
        n += 1
    prefix = store.key("k", {"n": n})[0]
    a, b = (store.put("k", {"n": i}, _files()) for i in by_digit[prefix])
    assert main(["--root", str(tmp_path), "info", prefix]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "ambiguous" in err and err.count("\n") == 1
    assert a.name in err and b.name in err


def test_entries_ignores_temp_dirs_and_refs(tmp_path):
    store = Store(tmp_path)
    e = store.put("k", {"n": 1}, _files())
    store.write_refs(tmp_path)
    half = e.path.parent / ".tmp-abc-12345678"
    half.mkdir()
    (half / "manifest.json").write_text((e.path / "manifest.json").read_text())
    assert [x.name for x in store.entries()] == [e.name]


@dataclasses.dataclass
class _Cfg:
    fail: bool = False


def _fake_run(config: _Cfg, seeds: list[int], out, store: Store) -> dict:
    store.put("fake/stage", {"seeds": seeds}, _files())
    if config.fail:
        raise RuntimeError("interrupted")
    return {}


@pytest.mark.parametrize("fail", [False, True])
def test_run_study_writes_refs_even_when_the_study_fails(tmp_path, monkeypatch, fail):
    from interp.studies import runner as study_mod
    from interp.studies.registry import Study

    fake = Study(name="fake", config_cls=_Cfg, run=_fake_run, description="", default_seeds=1)
    monkeypatch.setattr(study_mod, "get_study", lambda name: fake)
    store = Store(tmp_path / "c")
    sets = [f"fail={fail}"]
    if fail:
        with pytest.raises(RuntimeError):
            study_mod.run_study("fake", out=tmp_path / "run", sets=sets, store=store)
    else:
        study_mod.run_study("fake", out=tmp_path / "run", sets=sets, store=store)
    refs = store.refs()
    assert [r["run_dir"] for r in refs] == [str((tmp_path / "run").resolve())]
    assert refs[0]["entries"] == [e.name for e in store.entries()] != []
    assert gc(store, grace=0) == []


def test_bound_store_records_refs_as_entries_are_used(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    store = Store(tmp_path / "c")
    store.bind(run)
    a = store.get_or_build("k", {"n": 1}, lambda: (_files(), {}))
    refs = _read(store.refs_path(run))
    assert refs["entries"] == [a.name] and refs["status"] == "running"  # before the run ends
    assert gc(store, grace=0) == [] and a.path.exists()
    store.finish()
    assert _read(store.refs_path(run))["status"] == "finished"


def test_gc_keeps_new_entries_within_grace_and_removes_corrupt_ones(tmp_path, capsys):
    store = Store(tmp_path / "c")
    young = store.put("k", {"n": 1}, _files())
    bad = store.put("k", {"n": 2}, _files())
    (bad.path / "manifest.json").write_text('{"trunc')
    assert main(["--root", str(store.root), "list"]) == 0
    out = capsys.readouterr().out
    assert "CORRUPT" in out and bad.key in out
    assert [e.name for e in gc(store)] == [bad.name]  # default grace keeps the young one
    assert young.path.exists() and not bad.path.exists()


def test_gc_rechecks_refs_under_the_entry_lock(tmp_path):
    from interp.storage.gc import _Live, _remove_entry

    run = tmp_path / "run"
    run.mkdir()
    store = Store(tmp_path / "c")
    e = store.put("k", {"n": 1}, _files())
    live = _Live(store)
    assert e.name not in live.names()  # gc's first look: unreferenced
    user = Store(tmp_path / "c")
    user.bind(run)
    user.get("k", {"n": 1})  # a run starts using it before gc takes the lock
    assert not _remove_entry(store, store.entries()[0], live) and e.path.exists()


def test_refs_of_a_running_process_survive_its_deleted_run_dir(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    store = Store(tmp_path / "c")
    store.bind(run)
    e = store.put("k", {"n": 1}, _files())
    run.rmdir()
    assert gc(store, grace=0) == [] and e.path.exists()  # this process still runs
    refs = _read(store.refs_path(run))
    refs["pid"] = 2**22 + 12345  # a process that does not exist
    store.refs_path(run).write_text(json.dumps(refs))
    assert [x.name for x in gc(store, grace=0)] == [e.name]
