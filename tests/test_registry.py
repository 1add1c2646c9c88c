"""Every registered method, through the registry: runs with its defaults, returns the right size, and
leaves the shared modules (processors, scheduler, weights) as it found them."""

from __future__ import annotations

import sys

import pytest
import torch

from methods.core.examples import example_inputs
from methods.core.registry import get_method, list_methods
from methods.core.runner import run_comparison
from methods.core.slots import Slot
from methods.core.spec import Condition, Method, Strategy
from tests.helpers import weights_checksum

METHODS = [m.name for m in list_methods()]


def test_every_condition_has_a_method() -> None:
    missing = [c.value for c in Condition if not list_methods(c)]
    assert not missing, f"conditions without a method: {missing}"


def test_unknown_method_lists_known_ones() -> None:
    with pytest.raises(KeyError) as error:
        get_method("no-such-method")
    assert "sdedit" in str(error.value)


def check_declarations(method: type[Method]) -> None:
    """What every method declares: paper, strategy, a docstring (its file's), distinct typed parameters, known
    add-ons and slots."""
    assert method.paper.year >= 2015 and method.paper.url.startswith("https://")
    assert isinstance(method.strategy, Strategy)
    doc = method.__dict__.get("__doc__") or sys.modules[method.__module__].__doc__
    assert doc and len(doc.strip()) >= 200, f"{method.name}: its file's docstring should say what the paper does"
    assert len({p.name for p in method.params}) == len(method.params)
    for param in method.params:
        assert param.coerce(None) == param.default
    from methods.core.addons import ADDONS

    assert set(method.addons) <= set(ADDONS)
    assert all(isinstance(slot, Slot) for slot in (*method.requires, *method.optional))


def check_runs_with_defaults_and_restores_shared_state(backbone, method: type[Method]) -> None:
    """With the example inputs (its slots' example values), the method runs, returns its declared size, and
    leaves the shared modules as it found them."""
    name = method.name
    inputs = example_inputs(method.condition, backbone)
    for addon in method.addons:  # load first, so the fingerprint covers the add-ons too
        backbone.addon(addon)
    before_state, before_weights = backbone.state_fingerprint(), weights_checksum(backbone)
    comparison = run_comparison(backbone, method.condition, [name], inputs, seed=0)
    record = comparison.records[0]
    assert record["status"] == "ok", record["message"]
    output = comparison.result(name)
    expected = inputs.image.size if inputs.image is not None else (backbone.size, backbone.size)
    expected = method.output_size(expected, method.resolve_params(None), backbone.size_multiple)
    assert output.size == expected
    assert backbone.state_fingerprint() == before_state
    after_weights = weights_checksum(backbone)
    assert {k: after_weights[k] for k in before_weights} == before_weights
    assert not any(p.requires_grad for p in backbone.unet.parameters())
    assert torch.is_grad_enabled()


def check_missing_inputs_become_a_skipped_cell(backbone, method: type[Method]) -> None:
    inputs = example_inputs(method.condition, backbone)
    for slot in method.requires:
        inputs[slot] = None
    comparison = run_comparison(backbone, method.condition, [method.name], inputs, seed=0)
    assert comparison.records[0]["status"] == "skipped"
    assert "needs" in comparison.records[0]["message"]


@pytest.mark.parametrize("name", METHODS)
def test_declarations(name: str) -> None:
    check_declarations(get_method(name))


@pytest.mark.parametrize("name", METHODS)
def test_runs_with_defaults_and_restores_shared_state(backbone, name: str) -> None:
    check_runs_with_defaults_and_restores_shared_state(backbone, get_method(name))


@pytest.mark.parametrize("name", METHODS)
def test_missing_inputs_become_a_skipped_cell(backbone, name: str) -> None:
    check_missing_inputs_become_a_skipped_cell(backbone, get_method(name))
