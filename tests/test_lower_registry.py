"""The lowering registry (``tinyedge.model.lower``): built once from the op-family modules, each op lowered
by exactly one family, the op lists consistent with it, and the same whatever the import order (nothing
is mutated at import time)."""

from __future__ import annotations

import importlib
import json
import sys
from collections import Counter

import pytest

from tinyedge.model import lower, program
from tinyedge.model.lower import fold, registry
from tinyedge.proc import run

pytestmark = pytest.mark.unit

#: Prints the op lists and the registry's keys as JSON after importing the given modules in order.
PROBE = ("import importlib, json, sys\n"
         "for m in sys.argv[1:]: importlib.import_module(m)\n"
         "from tinyedge.model import lower\n"
         "print(json.dumps([lower.KERNEL_OPS, lower.ALIAS_OPS, lower.FOLD_OPS, lower.SUPPORTED_OPS, "
         "list(lower.LOWERINGS), list(lower.FOLDERS)]))")


def _snapshot() -> list[list[str]]:
    return [list(lower.KERNEL_OPS), list(lower.ALIAS_OPS), list(lower.FOLD_OPS), list(lower.SUPPORTED_OPS),
            list(lower.LOWERINGS), list(lower.FOLDERS)]


def test_registry_covers_the_supported_ops_but_aliases_and_folds():
    supported = set(lower.SUPPORTED_OPS)
    assert len(supported) == len(lower.SUPPORTED_OPS), "an op is listed twice"
    assert lower.SUPPORTED_OPS == lower.KERNEL_OPS + lower.ALIAS_OPS + lower.FOLD_OPS
    # Every kernel op has a lowering, and only the fold ops beside them may (STRIDED_SLICE of a run-time tensor).
    assert set(lower.LOWERINGS) - set(lower.FOLD_OPS) == supported - set(lower.ALIAS_OPS) - set(lower.FOLD_OPS)
    assert set(lower.LOWERINGS) & set(lower.FOLD_OPS) == {"STRIDED_SLICE"}
    assert not set(lower.LOWERINGS) & set(lower.ALIAS_OPS)
    # Every fold op and alias can be folded.
    assert set(lower.FOLDERS) == set(lower.FOLD_OPS) | set(lower.ALIAS_OPS)
    assert set(lower.FOLD_OPS) == set(fold.FOLDINGS)


def test_each_op_is_registered_by_one_family():
    counts = Counter(op for _, table in registry.FAMILIES for op in table)
    assert {op: n for op, n in counts.items() if n > 1} == {}
    assert set(counts) == set(lower.LOWERINGS)
    for family, table in registry.FAMILIES:
        for op, fn in table.items():
            assert lower.LOWERINGS[op] is fn, f"{op} of {family}"


def test_a_duplicate_op_is_an_error_when_the_registry_is_built():
    conv = dict(registry.FAMILIES)["conv"]
    with pytest.raises(ValueError, match="CONV_2D is lowered by both lower.conv and lower.again"):
        registry.build_registry([("conv", conv), ("again", {"CONV_2D": conv["CONV_2D"]})])


def test_importing_twice_changes_nothing():
    before = _snapshot()
    for module in (registry, lower, program):
        importlib.reload(module)
    assert _snapshot() == before


@pytest.mark.parametrize("order", [
    ["tinyedge.model.program", "tinyedge.model.program"],
    ["tinyedge.model.lower.elementwise", "tinyedge.model.program"],
    ["tinyedge.model.ir", "tinyedge.model.lower.boundary", "tinyedge.model.lower.fold", "tinyedge.model.memplan"],
], ids=lambda o: "+".join(m.rsplit(".", 1)[-1] for m in o))
def test_same_op_lists_in_a_fresh_interpreter_whatever_the_import_order(order):
    out = run([sys.executable, "-c", PROBE, *order], what="the import-order probe").stdout
    assert json.loads(out) == _snapshot()
