"""Rendering of the Jinja templates in ``firmware_templates/`` (always StrictUndefined); the bottom layer,
so every stage can render its own files."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2

from .paths import templates_dir


def c_hex(value: int, width: int = 8) -> str:
    return f"0x{value:0{width}X}"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["hex"] = c_hex
    return env


def render(template: str, **context: Any) -> str:
    """Render ``firmware_templates/<template>``; a missing variable is an error, never an empty string."""
    return environment().get_template(template).render(**context)
