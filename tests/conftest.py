"Shared pytest settings: markers for slow and CUDA tests."
import pytest, torch

def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running test, skipped in CPU CI")
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU")

def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available(): return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords: item.add_marker(skip)
