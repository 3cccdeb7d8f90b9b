"""The documentation's API reference lists every public name of the package."""

from __future__ import annotations

import re
from pathlib import Path

import bayeshrink as bs

API = Path(__file__).parent.parent / "docs" / "api.rst"


def test_every_public_name_is_in_the_api_reference():
    text = API.read_text()
    listed = set(re.findall(r"^   ([A-Za-z_][A-Za-z0-9_]*)$", text, flags=re.M))
    missing = sorted(set(bs.__all__) - listed)
    assert not missing, f"add {missing} to docs/api.rst"
