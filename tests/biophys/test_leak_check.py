"""The section-leak check of tests/biophys/conftest.py, run on a small test file in a separate pytest process."""

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.neuron

CASES = textwrap.dedent("""
    import pytest

    kept = []

    def test_pure():
        assert True

    def test_clean():
        from neuron import h
        sec = h.Section(name="clean")
        h.delete_section(sec=sec)

    def test_leaks():
        from neuron import h
        kept.append(h.Section(name="leaked"))

    def test_fails_and_leaks():
        from neuron import h
        kept.append(h.Section(name="left_by_failure"))
        assert False, "deliberate failure"

    @pytest.fixture(scope="module")
    def module_cell():
        from neuron import h
        sec = h.Section(name="module_cell")
        yield sec
        h.delete_section(sec=sec)

    def test_uses_module_cell(module_cell):
        assert module_cell.name() == "module_cell"
""")


def test_only_passing_tests_that_leak_fail(tmp_path):
    pytest.importorskip("neuron")
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_cases.py").write_text(CASES)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "test_cases.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    lines = done.stdout.splitlines()

    def outcome(name: str) -> set[str]:
        return {line.split()[0] for line in lines if line.startswith(("PASSED", "FAILED", "ERROR"))
                and line.split()[1].endswith(f"::{name}")}

    assert outcome("test_pure") == {"PASSED"}, done.stdout
    assert outcome("test_clean") == {"PASSED"}, done.stdout
    assert outcome("test_leaks") == {"PASSED", "ERROR"}, done.stdout  # the call passed, the teardown check failed
    assert "test leaked 1 NEURON sections" in done.stdout
    assert outcome("test_fails_and_leaks") == {"FAILED"}, done.stdout  # no second complaint after a failure
    assert outcome("test_uses_module_cell") == {"PASSED"}, done.stdout  # wider-scoped cells are not leaks
