"""The site's number format in Python against the table that the JavaScript twin
(site/static/common.js, tests/js/common.test.js) is tested against too."""

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.site.numbers import DASH, format_number, format_signed

TABLE = Path(__file__).resolve().parent / "data" / "number_format.json"
# JSON has no NaN or infinity: the table writes them as strings.
SPECIAL = {"NaN": float("nan"), "inf": float("inf"), "-inf": float("-inf")}
CASES = json.loads(TABLE.read_text(encoding="utf-8"))["cases"]


def decoded(value):
    return SPECIAL[value] if isinstance(value, str) else value


@pytest.mark.parametrize("case", CASES, ids=[repr(c["value"]) for c in CASES])
def test_the_shared_table(case):
    value = decoded(case["value"])
    assert format_number(value) == case["plain"]
    assert format_signed(value) == case["signed"]


def test_the_table_holds_the_cases_the_issue_names():
    values = [c["value"] for c in CASES]
    for named in (0, 100, 150, -300, 1234.5, 0.000123, 1.2e10, -1e-12, "NaN", None, "inf", "-inf"):
        assert named in values, named


def test_numpy_scalars_and_ints_read_as_their_value():
    assert format_number(np.float32(0.5)) == "0.5"
    assert format_number(np.float64(-300.0)) == "-300"
    assert format_number(np.int64(150)) == "150"
    assert format_signed(np.float32(np.nan)) == DASH
