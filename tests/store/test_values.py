"""Payload values through JSON and the database: NaN and +-Inf come back as they went."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.store.support import PAYLOADS, same_payload

from fusedstats.store.values import (
    check_payload,
    decode_payload,
    decode_value,
    encode_payload,
    jsonable,
    to_db,
)


@given(PAYLOADS)
def test_payloads_survive_strict_json(payload):
    wire = json.dumps(encode_payload(payload), allow_nan=False)
    assert same_payload(decode_payload(json.loads(wire)), payload)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_database_form_is_null_for_nan_only(value):
    stored = to_db(value)
    assert (stored is None) == math.isnan(value)
    back = decode_value(stored)
    assert back == value or (math.isnan(back) and math.isnan(value))


def test_unknown_strings_are_refused():
    with pytest.raises(ValueError, match="'NaN'"):
        decode_value("NaN")


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
        max_leaves=10,
    )
)
def test_attributes_always_become_strict_json(document):
    json.dumps(jsonable(document), allow_nan=False)


def test_numpy_values_are_numbers():
    np = pytest.importorskip("numpy")
    assert check_payload({"a": np.float32(0.5), "b": np.int64(3)}) == {"a": 0.5, "b": 3.0}
    assert jsonable({"x": np.float64("nan"), "y": np.int32(2)}) == {"x": "nan", "y": 2}


def test_importing_the_store_package_loads_no_heavy_library():
    code = (
        "import sys, fusedstats, fusedstats.store, fusedstats.sinks; "
        "print([m for m in ('sqlalchemy', 'httpx', 'fastapi', 'uvicorn') if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"
