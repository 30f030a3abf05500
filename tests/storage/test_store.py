"""The artifact store: atomic writes, corruption detection and rebuild, concurrent writers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from interp.storage.store import Store, config_key

ROOT = Path(__file__).resolve().parents[2]


def _files(value: float = 1.0) -> dict:
    return {"w": {"a": torch.full((4, 3), value), "b": torch.arange(5.0)}}


def test_put_get_roundtrip_and_key_depends_on_config(tmp_path):
    store = Store(tmp_path)
    e = store.put("k", {"lr": 1e-3, "n": 2}, _files(), {"acc": [0.5]})
    got = store.get("k", {"n": 2, "lr": 0.001})  # same config, other order and spelling
    assert got is not None and got.key == e.key and got.meta == {"acc": [0.5]}
    assert torch.equal(got.load("w")["a"], torch.full((4, 3), 1.0))
    assert store.get("k", {"lr": 1e-3, "n": 3}) is None
    assert config_key("k", {"a": 1}) != config_key("other", {"a": 1})


def test_get_or_build_hits_after_miss(tmp_path, caplog):
    store = Store(tmp_path)
    calls = []

    def build():
        calls.append(1)
        return _files(), {}

    caplog.set_level("INFO", logger="interp.storage.store")
    store.get_or_build("k", {"x": 1}, build)
    store.get_or_build("k", {"x": 1}, build)
    assert len(calls) == 1 and (store.hits, store.misses) == (1, 1)
    assert "cache miss" in caplog.text and "cache hit" in caplog.text


@pytest.mark.parametrize("damage", ["truncate", "flip", "manifest", "delete", "meta", "empty",
                                    "moved"])
@pytest.mark.parametrize("read_first", [False, True])
def test_corrupt_entry_is_detected_and_rebuilt(tmp_path, caplog, damage, read_first):
    """read_first: the entry was read (its manifest parsed, its files hashed and both
    remembered for this process) before the damage, which must still be seen."""
    store = Store(tmp_path)
    entry = store.put("k", {"x": 1}, _files(1.0), {"acc": 0.5})
    if read_first:
        assert store.get("k", {"x": 1}).meta == {"acc": 0.5}
    f = entry.files["w"]
    if damage == "truncate":
        f.write_bytes(f.read_bytes()[:-7])
    elif damage == "flip":
        data = bytearray(f.read_bytes())
        data[-3] ^= 0xFF
        f.write_bytes(bytes(data))
    elif damage == "manifest":
        (entry.path / "manifest.json").write_text("{not json")
    elif damage == "meta":  # a metadata value edited, the JSON still valid
        m = json.loads((entry.path / "manifest.json").read_text())
        m["meta"]["acc"] = 0.99
        (entry.path / "manifest.json").write_text(json.dumps(m))
    elif damage == "empty":
        (entry.path / "manifest.json").write_text("{}")
    elif damage == "moved":  # another entry's (valid) manifest in this entry's place
        other = store.put("k", {"x": 2}, _files(1.0), {"acc": 0.5})
        (entry.path / "manifest.json").write_bytes((other.path / "manifest.json").read_bytes())
    else:
        f.unlink()
    caplog.set_level("WARNING", logger="interp.storage.store")
    assert store.get("k", {"x": 1}) is None
    assert "corrupt entry" in caplog.text
    rebuilt = store.get_or_build("k", {"x": 1}, lambda: (_files(2.0), {}))
    assert torch.equal(rebuilt.load("w")["a"], torch.full((4, 3), 2.0))


def test_failed_build_leaves_no_entry(tmp_path):
    store = Store(tmp_path)

    def build():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.get_or_build("k", {"x": 1}, build)
    assert store.get("k", {"x": 1}) is None
    assert not list((tmp_path / "k").glob(".tmp-*"))


def _python(code: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                            env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_writer_killed_mid_write_leaves_nothing_visible(tmp_path):
    # the writer saves one file, signals, then stalls before the next: SIGKILL it there
    marker = tmp_path / "first_file_written"
    code = f"""
        import time, torch, safetensors.torch as st
        import interp.storage.store as s
        real = st.save_file
        def slow(tensors, path):
            real(tensors, path)
            open({str(marker)!r}, "w").close()
            time.sleep(60)
        s.save_file = slow
        s.Store({str(tmp_path / 'cache')!r}).put("k", {{"x": 1}},
            {{"a": {{"t": torch.ones(3)}}, "b": {{"t": torch.zeros(3)}}}})
    """
    proc = _python(code, {})
    deadline = time.time() + 60
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = Store(tmp_path / "cache")
    assert store.get("k", {"x": 1}) is None  # the half-written entry was never renamed in
    assert list((tmp_path / "cache" / "k").glob(".tmp-*"))  # its temp dir is there ...
    store.get_or_build("k", {"x": 1}, lambda: (_files(), {}))
    assert not list((tmp_path / "cache" / "k").glob(".tmp-*"))  # ... and cleaned on rebuild


def test_concurrent_writers_build_once(tmp_path):
    code = f"""
        import time, torch
        from interp.storage.store import Store
        def build():
            with open({str(tmp_path / 'builds.log')!r}, "a") as f:
                f.write("built\\n")
            time.sleep(1.5)
            return {{"w": {{"t": torch.arange(1000.0)}}}}, {{}}
        e = Store({str(tmp_path / 'cache')!r}).get_or_build("k", {{"x": 1}}, build)
        print(e.load("w")["t"].sum().item())
    """
    procs = [_python(code, {}) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert [o[0].strip() for o in outs] == ["499500.0", "499500.0"]
    assert (tmp_path / "builds.log").read_text().count("built") == 1


def test_read_refuses_paths_outside_the_store(tmp_path):
    from interp.storage.store import ArtifactError

    store = Store(tmp_path / "c")
    e = store.put("k", {"x": 1}, _files())
    assert torch.equal(store.read(e.files["w"])["b"], torch.arange(5.0))
    link = e.path / "evil.safetensors"
    link.symlink_to("/etc/passwd")
    outside = tmp_path / "w.safetensors"
    outside.write_bytes(e.files["w"].read_bytes())  # a valid file, but not in the store
    for bad in ("/etc/passwd", "/dev/zero", str(e.path / "../../../etc/passwd"), str(link),
                str(outside), str(e.path / "manifest.json"), "k"):
        with pytest.raises(ArtifactError) as err:
            store.read(bad)
        assert "\n" not in str(err.value)


def test_read_verifies_bytes_and_names_the_fix(tmp_path):
    from interp.storage.store import ArtifactError

    store = Store(tmp_path / "c")
    e = store.put("k", {"x": 1}, _files())
    data = bytearray(e.files["w"].read_bytes())
    data[-2] ^= 1
    e.files["w"].write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="corrupt .*rerun the study"):
        store.read(e.files["w"])
    e.files["w"].unlink()
    with pytest.raises(ArtifactError, match="corrupt"):
        store.file_sha(e.files["w"])
    import shutil

    shutil.rmtree(e.path)
    with pytest.raises(ArtifactError, match="missing"):
        store.read(e.files["w"])


def test_thread_count_is_part_of_the_key(tmp_path):
    store = Store(tmp_path)
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = store.put("k", {"x": 1}, _files())
        torch.set_num_threads(2)
        assert store.get("k", {"x": 1}) is None
        two = store.put("k", {"x": 1}, _files())
    finally:
        torch.set_num_threads(n)
    assert one.key != two.key and (one.manifest["threads"], two.manifest["threads"]) == (1, 2)


def test_group_member_lost_later_is_rebuilt_alone(tmp_path):
    """A stacked build stores every member; a member removed later (gc, an interrupted
    run) reruns the build once and the others stay as they were."""
    import shutil

    store = Store(tmp_path)
    calls = []

    def build():
        calls.append(1)
        return [(_files(1.0), {"i": 0}), (_files(2.0), {"i": 1}), (_files(3.0), {"i": 2})]

    members = [("g/a", {"n": 0}), ("g/b", {"n": 1}), ("g/c", {"n": 2})]
    first = store.get_or_build_group(members, build)
    assert len(calls) == 1 and [e.meta["i"] for e in first] == [0, 1, 2]
    shutil.rmtree(first[1].path)
    again = store.get_or_build_group(members, build)
    assert len(calls) == 2
    assert [e.key for e in again] == [e.key for e in first]
    assert torch.equal(again[1].load("w")["a"], torch.full((4, 3), 2.0))
    assert again[0].path == first[0].path and again[2].meta == {"i": 2}


def test_code_digest_refuses_source_edited_after_start(tmp_path, monkeypatch):
    """A builder's file edited while a run is in flight: its digest would describe code the
    process is not running, so the next key is refused with a one-line error."""
    import importlib

    from interp.errors import UsageError
    from interp.storage import store as store_mod

    mod = tmp_path / "edited_builder.py"
    mod.write_text("def build():\n    return 1\n")
    os.utime(mod, (store_mod._STARTED - 60, store_mod._STARTED - 60))
    monkeypatch.syspath_prepend(str(tmp_path))
    fn = importlib.import_module("edited_builder").build
    before = store_mod.code_digest(fn)
    assert before == store_mod.code_digest(fn)
    mod.write_text("def build():\n    return 2\n")  # the edit, mid-run
    with pytest.raises(UsageError, match="changed after this process started.*rerun"):
        store_mod.code_digest(fn)
