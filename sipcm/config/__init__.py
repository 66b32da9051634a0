"""sipcm configuration: schema, YAML loading, -E overrides, validation (SPEC sections 2, 12).

`load_config(path, overrides)` returns a frozen `Config` tree or raises ConfigError;
`describe()` lists every key with default and help; `Config.to_dict()` masks secrets.
"""

from sipcm.config.kinds import format_duration, format_size, parse_duration, parse_size
from sipcm.config.loader import describe, load_config
from sipcm.config.rules import is_loopback
from sipcm.config.schema import (
    EVENT_NAMES,
    MASK,
    Config,
    ConsoleOutput,
    ElasticsearchOutput,
    FileOutput,
    KeyDoc,
    Outputs,
    key_docs,
)

__all__ = [
    "EVENT_NAMES",
    "MASK",
    "Config",
    "ConsoleOutput",
    "ElasticsearchOutput",
    "FileOutput",
    "KeyDoc",
    "Outputs",
    "describe",
    "format_duration",
    "format_size",
    "is_loopback",
    "key_docs",
    "load_config",
    "parse_duration",
    "parse_size",
]
