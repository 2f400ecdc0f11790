"""The one-way dependencies of shared/DESIGN.md: renderer <- model.face <- {networks, preprocess, resources}."""
import ast
import glob
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETWORK_MODULES = ("model.coarse", "model.vgg_face", "model.losses", "model.training", "model.data")


def imported_modules(path):
    """Absolute module names that the file imports (module level or inside functions)."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update("%s.%s" % (node.module, alias.name) for alias in node.names)
    return names


def python_files(folder):
    return sorted(glob.glob(os.path.join(REPO, folder, "**", "*.py"), recursive=True))


def reaches(names, prefixes):
    return sorted(n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes))


@pytest.mark.parametrize("path", python_files("model/face"), ids=os.path.basename)
def test_the_face_model_imports_neither_preprocess_nor_the_networks(path):
    assert reaches(imported_modules(path), ("preprocess", "resources") + NETWORK_MODULES) == []


@pytest.mark.parametrize("path", python_files("preprocess"), ids=os.path.basename)
def test_preprocess_never_imports_the_networks(path):
    assert reaches(imported_modules(path), NETWORK_MODULES) == []


@pytest.mark.parametrize("path", python_files("renderer"), ids=os.path.basename)
def test_the_renderer_imports_nothing_above_it(path):
    assert reaches(imported_modules(path), ("model", "preprocess", "resources")) == []


def test_only_preprocess_faces_calls_dlib():
    callers = [os.path.relpath(p, REPO) for folder in ("model", "preprocess", "resources", "bench")
               for p in python_files(folder) if reaches(imported_modules(p), ("dlib",))]
    callers += [name for name in ("train.py", "test.py")
                if reaches(imported_modules(os.path.join(REPO, name)), ("dlib",))]
    assert callers == ["preprocess/faces.py"]
