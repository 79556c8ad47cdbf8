"""Shared test helpers: preset templates as versions."""

from functools import cache
from pathlib import Path

import yaml

from models.template import TemplateSpec, TemplateVersion

PRESETS = Path(__file__).resolve().parent.parent / "templates"


@cache
def preset(key: str, version: int = 1) -> TemplateVersion:
    spec = TemplateSpec.model_validate(yaml.safe_load((PRESETS / f"{key}.yaml").read_text()))
    return TemplateVersion(key=spec.key, version=version, spec=spec)
