"""The package's data files (TOML and YAML), read through :mod:`importlib.resources`."""

from __future__ import annotations

import tomllib
from importlib import resources

# the files that define the drugs given by a regimen (antibodies, FcRn blockers, complement inhibitors, ...)
DRUG_FILES = ("antibodies.toml", "immunomodulators.toml", "fcrn_blockers.toml", "complement_inhibitors.toml")


def entry_names(*files: str) -> list[str]:
    """The top-level entries of data files, in file order (names only, unvalidated: for help texts)."""
    return [name for file in files
            for name in tomllib.loads(resources.files(__package__).joinpath(file).read_text())]
