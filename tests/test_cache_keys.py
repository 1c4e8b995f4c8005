"""store/cache/keys.py: canonical JSON, keys that cover the whole request, row ids."""

from __future__ import annotations

import hashlib
import math
import re

import pytest

from claude_force_nb.store.cache import ResponseCache, canonical_json, rowid_of
from claude_force_nb.store.cache.keys import check_key, rowid_if_key, stored_rowid

from .cache_fixtures import BASE_REQUEST, _fresh_warnings, cache, clock, settings  # noqa: F401 (fixtures)


def test_canonical_json():
    assert canonical_json({"b": 1, "a": [1.5, "é"]}) == '{"a":[1.5,"é"],"b":1}'.encode()
    assert canonical_json({"s": "lone \ud800"}) == '{"s":"lone \ud800"}'.encode("utf-8", "surrogatepass")
    with pytest.raises(ValueError):
        canonical_json({"x": math.inf})


def test_key_format_and_stable_across_dict_orderings(cache):
    key = cache.key_for(BASE_REQUEST)
    assert re.fullmatch(r"v1:[0-9a-f]{64}", key)
    reordered = dict(reversed(list(BASE_REQUEST.items())))
    reordered["tools"] = [dict(reversed(list(t.items()))) for t in BASE_REQUEST["tools"]]
    assert cache.key_for(reordered) == key
    assert cache.key_for(dict(BASE_REQUEST)) == key


@pytest.mark.parametrize(
    "change",
    [
        {"model": "claude-haiku-4-5"},
        {"system": "You are a careless code reviewer."},
        {"messages": [{"role": "user", "content": "Review: def f(): return 2"}]},
        {"messages": BASE_REQUEST["messages"] + [{"role": "assistant", "content": "ok"}]},
        {"max_tokens": 1025},
        {"temperature": 0.7},
        {"stop_sequences": ["STOP"]},
        {"tools": [{"name": "lint", "description": "run a linter!", "input_schema": {"type": "object"}}]},
        {"top_k": 41},
        {"top_p": 0.9},
        {"metadata": {"user_id": "u1"}},
        {"thinking": {"type": "enabled", "budget_tokens": 2048}},
    ],
    ids=lambda c: next(iter(c)),
)
def test_every_request_field_changes_the_key(cache, change):
    assert cache.key_for({**BASE_REQUEST, **change}) != cache.key_for(BASE_REQUEST)


@pytest.mark.parametrize("param", ["temperature", "stop_sequences", "tools", "top_k", "system"])
def test_absent_and_present_params_differ(cache, param):
    without = {k: v for k, v in BASE_REQUEST.items() if k != param}
    assert cache.key_for(without) != cache.key_for(BASE_REQUEST)
    # no defaults are filled in: absent is not the same as an explicit default
    assert cache.key_for({**without, param: None}) != cache.key_for(without)


def test_numeric_sampling_params_normalised(cache):
    assert cache.key_for({**BASE_REQUEST, "temperature": 1}) == cache.key_for({**BASE_REQUEST, "temperature": 1.0})
    assert cache.key_for({**BASE_REQUEST, "top_p": 1}) == cache.key_for({**BASE_REQUEST, "top_p": 1.0})
    assert cache.key_for({**BASE_REQUEST, "temperature": 0.5}) == cache.key_for({**BASE_REQUEST, "temperature": 0.50})
    assert cache.key_for({**BASE_REQUEST, "temperature": 0}) != cache.key_for({**BASE_REQUEST, "temperature": 1})
    # only the sampling floats: max_tokens stays an int
    assert cache.key_for({**BASE_REQUEST, "max_tokens": 10}) != cache.key_for({**BASE_REQUEST, "max_tokens": 10.0})


def test_key_is_an_hmac_of_the_secret(settings):
    with ResponseCache(settings) as a, ResponseCache(settings.replace(cache_secret=b"another secret")) as b:
        assert a.key_for(BASE_REQUEST) != b.key_for(BASE_REQUEST)
    # and not a plain hash of the canonical request that anyone could recompute
    material = canonical_json({"schema": "claude-force-nb/1", "request": BASE_REQUEST})
    with ResponseCache(settings) as a:
        assert hashlib.sha256(material).hexdigest() not in a.key_for(BASE_REQUEST)


def test_key_for_refuses_non_json(cache):
    with pytest.raises(ValueError):
        cache.key_for({**BASE_REQUEST, "temperature": math.nan})
    with pytest.raises(TypeError):
        cache.key_for({**BASE_REQUEST, "extra": object()})
    with pytest.raises(TypeError, match="must be a dict"):
        cache.key_for([("model", "m")])


def test_row_id_is_the_first_60_bits_of_a_well_formed_key():
    key = "v1:" + "0123456789abcde" + "f" * 49
    assert rowid_of(key) == rowid_if_key(key) == check_key(key) == 0x0123456789ABCDE
    assert stored_rowid(key.encode()) == 0x0123456789ABCDE
    for bad in ["v1:" + "0" * 63, "v1:" + "A" * 64, "v2:" + "0" * 64, "v1:" + "0" * 64 + "\n", 42, None]:
        assert rowid_if_key(bad) is None
        with pytest.raises(TypeError, match="is not a cache key: pass the string key_for"):
            check_key(bad)
    assert stored_rowid(key) is None and stored_rowid(b"junk") is None
