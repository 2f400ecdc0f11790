"""Test configuration: the repository root is importable and TensorFlow logs stay quiet; tiny fine
exports (tests/fine_export.py) for the fine stage's inference tests."""
import os
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)


@pytest.fixture(scope="session")
def tiny_fine_export(tmp_path_factory):
    """A fine export (tests/fine_export.py) of an untrained coarse network and a 32 x 32, 8-channel
    fine network whose last layer is zero: the mean face, frontal, with zero displacement."""
    from model.face import FaceModel
    from tests.fine_export import make_fine_export
    return make_fine_export(tmp_path_factory.mktemp("fine_export"), FaceModel())


@pytest.fixture(scope="session")
def tiny_nonzero_fine_export(tmp_path_factory):
    """As tiny_fine_export, with a random last layer: a non-zero displacement map."""
    from model.face import FaceModel
    from tests.fine_export import make_fine_export
    return make_fine_export(tmp_path_factory.mktemp("fine_export_nonzero"), FaceModel(), output_std=0.3)
