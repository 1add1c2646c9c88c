"""The add-on table by family: specs beside their loaders, tiny builders named by string and imported only
when a tiny add-on is built, the metric models in ``evaluation``."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from methods.core.addons import ADDONS, FAMILIES, AddonSpec, get_addon_spec

ROOT = Path(__file__).resolve().parents[1]

_PROBE = """
import json, sys
import methods.core.addons as addons
def loaded():
    return sorted(m for m in sys.modules if m.rsplit(".", 1)[-1].startswith("tiny_") or m.startswith("evaluation"))
at_import = loaded()
names = sorted(addons.ADDONS)
print(json.dumps({"at_import": at_import, "after_read": loaded(), "names": names}))
"""


def test_reading_the_table_imports_no_tiny_builder() -> None:
    """In a fresh interpreter: importing the table imports no family (so not ``evaluation`` either), and
    reading it imports the families but none of their ``tiny_*`` builder modules."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300, check=True
    )
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["at_import"] == []
    assert probe["after_read"] == ["evaluation", "evaluation.metric_models"]
    assert probe["names"] == sorted(ADDONS)


def test_every_spec_belongs_to_one_family_and_names_its_builder_beside_it() -> None:
    seen: dict[str, str] = {}
    for family in FAMILIES:
        module = importlib.import_module(family)
        package, _, leaf = family.rpartition(".")
        for spec in module.SPECS:
            assert isinstance(spec, AddonSpec)
            assert spec.name not in seen, f"{spec.name} in {seen.get(spec.name)} and {family}"
            seen[spec.name] = family
            builder_module, _, function = spec.build_tiny.partition(":")
            assert builder_module == f"{package}.tiny_{leaf}" and function.startswith("build_"), spec.name
            assert callable(spec.builder())
    assert seen.keys() == set(ADDONS)


def test_metric_models_are_add_ons_from_evaluation() -> None:
    for name in ("metric_clip", "metric_dino", "metric_lpips"):
        assert name in ADDONS
        assert ADDONS[name].build_tiny.startswith("evaluation.tiny_metric_models:")
        assert ADDONS[name].load.__module__ == "evaluation.metric_models"


def test_unknown_add_on_names_the_known_ones() -> None:
    assert get_addon_spec("controlnet_seg").repo == "lllyasviel/control_v11p_sd15_seg"
    with pytest.raises(KeyError, match="unknown add-on 'nope'; known add-ons: ade20k_segmenter, annotator_hed"):
        get_addon_spec("nope")
    assert "nope" not in ADDONS


def test_non_commercial_weights_are_flagged_in_the_tabs() -> None:
    from demos.common import licence_warning, method_choices, methods_help
    from methods.core.spec import Condition

    assert ADDONS["dit"].non_commercial and ADDONS["imagebind_audio"].non_commercial
    assert not ADDONS["ip_adapter"].non_commercial and not ADDONS["clap"].non_commercial
    class_warning = licence_warning(Condition.CLASS)
    assert "DDIB (DiT): dit (CC BY-NC 4.0" in class_warning and "Prompt-to-Prompt" not in class_warning
    assert "imagebind_audio (CC BY-NC-SA 4.0" in licence_warning(Condition.AUDIO)
    assert licence_warning(Condition.TEXT) == ""
    labels = dict((name, label) for label, name in method_choices(Condition.AUDIO))
    assert labels["sound_guidance"].endswith("non-commercial weights")
    assert not labels["clap_sdedit"].endswith("non-commercial weights")
    assert "ip_adapter (Apache 2.0)" in methods_help(Condition.REFERENCE)
