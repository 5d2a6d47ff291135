"""Fixtures for the biophys tests: every test here fails if it leaves more NEURON sections than it found.

The check only looks and never deletes: a failed test's traceback keeps its synapses and NetCons alive, and
deleting the sections under them makes NEURON segfault in the next run. So it also only checks tests whose
call phase passed (a failure already says what is wrong), and it never imports NEURON itself — tests that did
not touch NEURON cost nothing.
"""

import sys

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Store each phase's report on the item (``item.rep_setup``, ``item.rep_call``) for fixtures to read."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def neuron_section_count() -> int:
    """Sections NEURON holds now; 0 when NEURON has not been imported in this process."""
    if "neuron" not in sys.modules:
        return 0
    from neuron import h

    return sum(1 for _ in h.allsec())


@pytest.fixture(autouse=True)
def no_leaked_sections(request):
    """Fail a passing test that ends with more NEURON sections than it started with.

    Function-scoped autouse fixtures are set up after module- and session-scoped ones and torn down before
    them, so cells held by wider fixtures are counted in both totals and are not leaks.
    """
    before = neuron_section_count()
    yield
    call = getattr(request.node, "rep_call", None)
    if call is None or not call.passed:
        return
    after = neuron_section_count()
    if after > before:
        from neuron import h

        names = [sec.name() for sec in h.allsec()][:5]
        pytest.fail(f"test leaked {after - before} NEURON sections (now {after}, e.g. {names})", pytrace=False)
