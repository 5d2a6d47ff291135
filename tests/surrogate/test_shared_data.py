"""Arrays loaded once and mapped by several processes (surrogate.shared_data), and NeuronIOArrays shared that way."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from biophys.dataset import NeuronIOStore
from surrogate import data, shared_data

REPO = Path(__file__).resolve().parents[2]

# Run by two processes at once: each asks for the same key; the loader logs its pid and takes a while, so that
# the second process arrives while the first still loads.
_CHILD = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    from surrogate.shared_data import load_shared

    share, log = sys.argv[1], sys.argv[2]

    def load(alloc):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(0.5)
        a = alloc((3, 4), np.int16)
        a[:] = np.arange(12).reshape(3, 4)
        return a, {"note": "companion"}

    array, extra = load_shared(share, ("store", 7), load)
    assert not array.flags.writeable and extra == {"note": "companion"}
    print(int(array.sum()))
""")


def test_two_processes_load_once_and_map_the_same_array(tmp_path):
    log = tmp_path / "loads.log"
    with shared_data.share_directory() as share:
        children = [subprocess.Popen([sys.executable, "-c", _CHILD, str(share), str(log)], cwd=REPO,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = [child.communicate(timeout=120) for child in children]
        for child, (out, err) in zip(children, outputs):
            assert child.returncode == 0, err
            assert out.strip() == str(sum(range(12)))
        assert len(log.read_text().split()) == 1  # the loader ran in one process only
        assert len(list(share.glob("*.npy"))) == 1
    assert not share.exists()  # removed with its files


def test_a_terminated_sweep_removes_its_directory(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import time
        from surrogate.shared_data import share_directory, sigterm_as_exit
        with sigterm_as_exit(), share_directory() as share:
            (share / "big.npy").write_bytes(b"x" * 1000)
            print(share, flush=True)
            time.sleep(60)
        """)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    share = Path(child.stdout.readline().strip())
    assert share.is_dir()
    child.terminate()
    assert child.wait(timeout=30) == 128 + 15
    assert not share.exists()


def test_a_killed_sweeps_directory_is_removed_by_the_next_one(tmp_path, monkeypatch):
    monkeypatch.setattr(shared_data, "SHM_ROOT", tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = tmp_path / f"neuroncompute-share-{dead.pid}-abc"
    live = tmp_path / "neuroncompute-share-1-abc"  # pid 1 is always alive
    other = tmp_path / "someone-else"
    for d in (orphan, live, other):
        d.mkdir()
    with shared_data.share_directory() as share:
        assert share.parent == tmp_path
    assert not orphan.exists() and live.exists() and other.exists()


def test_a_failed_load_leaves_nothing_taken_for_finished(tmp_path):
    def broken(alloc):
        alloc((2,), np.float32)
        raise OSError("disk gone")

    def good(alloc):
        a = alloc((2,), np.float32)
        a[:] = [1.5, 2.5]
        return a, None

    with pytest.raises(OSError, match="disk gone"):
        shared_data.load_shared(tmp_path, "k", broken)
    array, extra = shared_data.load_shared(tmp_path, "k", good)  # tried again, not read half-made
    np.testing.assert_array_equal(array, [1.5, 2.5])
    assert extra is None
    with pytest.raises(ValueError, match="must return the array it allocated"):
        shared_data.load_shared(tmp_path, "other", lambda alloc: (np.zeros(2), None))


def test_no_room_for_the_array_is_one_clear_error(tmp_path, monkeypatch):
    def full(fd, offset, length):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shared_data.os, "posix_fallocate", full)
    with pytest.raises(OSError, match=r"has no room for a shared array of .* GB \(No space left on device\)"):
        shared_data.load_shared(tmp_path, "k", lambda alloc: (alloc((10,), np.uint8), None))
    assert not list(tmp_path.glob("*.npy")) or all("partial" in p.name for p in tmp_path.glob("*.npy"))


def test_neuronio_arrays_shared_through_a_directory_match_a_plain_read(fake_store, monkeypatch):
    plain = data.NeuronIOArrays.from_store(fake_store)
    with shared_data.share_directory() as share:
        with shared_data.reuse_loaded(share):
            shared = data.NeuronIOArrays.from_store(fake_store)
        np.testing.assert_array_equal(shared.spikes, plain.spikes)
        np.testing.assert_array_equal(shared.soma_mv, plain.soma_mv)
        assert shared.layout == plain.layout and not shared.spikes.flags.writeable
        # another block (as another process would) maps the file instead of reading the store again
        monkeypatch.setattr(NeuronIOStore, "read_input_spikes", lambda *a, **k: pytest.fail("read the store again"))
        with shared_data.reuse_loaded(share):
            again = data.NeuronIOArrays.from_store(fake_store)
        np.testing.assert_array_equal(again.spikes, plain.spikes)
