"""Every method declares its class-dependent head (``head_modules``), which
``--init-from`` re-creates when the parent's classes differ: the names exist, and they
cover every tensor whose leading dimension is the class count (driven by the registry)."""

from __future__ import annotations

import pytest

import methods  # noqa: F401  (registers every method)
from cvbench.init_from import head_keys
from methods.registry import create_method, list_methods

CLASSES = 7  # a count no tiny layer has


@pytest.mark.parametrize("name", list_methods())
def test_head_modules_name_the_class_dependent_tensors(name: str) -> None:
    model = create_method(name, "tiny", num_classes=CLASSES)
    declared = model.head_modules()
    own = model.state_dict()
    for head in declared:  # every declared name is a tensor or a module prefix
        assert any(key == head or key.startswith(f"{head}.") for key in own), head
    keys = set(head_keys(model, {}, None))
    by_shape = {k for k, v in own.items() if v.dim() and v.shape[0] == CLASSES}
    assert by_shape <= keys, sorted(by_shape - keys)
