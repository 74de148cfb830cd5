"""A setting: a dataclass field with what its command-line option needs, so a configuration
and its options are written once (emo_toolkit.cli.support.dataclass_options makes the
options; every command's options come from the dataclass they set).

    batch_size: int = setting(1, "segments run together", range=(1, 256))

Metadata a setting may carry: `option` (the option's name when it is not the field's),
`choices`, `range` (low, high) for numbers, `path` (click.Path's arguments, for paths),
`flags` (more spellings, e.g. ("-o",)), `metavar` and `show_default`.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any


def setting(default: Any, help: str, **metadata: Any) -> Any:
    """A field with its command-line help and option metadata (see the module docstring)."""
    return field(default=default, metadata={"help": help, **metadata})
