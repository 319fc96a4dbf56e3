import pytest
from tests.logger import spec_model


@pytest.fixture(params=["fusedstats", "model"])
def lib(request):
    """The module under test: fusedstats itself, or the model of docs/logger.md (run
    through the same examples, so the model that the property tests trust is checked too).
    Both expose ``Stats`` and ``MetricsLogger``."""
    if request.param == "model":
        return spec_model
    import fusedstats

    return fusedstats
