"""The public API cannot drift without this test failing."""

import nbcost


def test_all_is_the_sorted_public_surface():
    assert nbcost.__all__ == sorted(nbcost.__all__)
    assert nbcost.__all__ == [
        "BudgetExceeded", "ConfigError", "LedgerError", "NbcostError", "Tracked", "__version__",
        "load_ipython_extension", "session", "track", "unload_ipython_extension",
    ]
    for name in nbcost.__all__:
        assert hasattr(nbcost, name)
