"""syncadmin/lib/counters.py: a label set's key, the grouping key of a series, whether made or remembered."""

from hypothesis import given
from hypothesis import strategies as st

from syncadmin.lib import counters
from syncadmin.lib.counters import LABEL_VALUE_MAX, labels_key, labels_parse

names = st.text(min_size=1, max_size=12)
values = st.one_of(st.text(max_size=80), st.integers(), st.floats(allow_nan=False), st.booleans(), st.none())


@given(st.dictionaries(names, values, max_size=5))
def test_a_label_sets_key_is_the_same_made_or_remembered_and_in_any_order(labels):
    counters._KEYS.clear()
    made = labels_key(labels)
    assert labels_key(labels) == made  # remembered
    assert labels_key(dict(reversed(list(labels.items())))) == made  # the same set in another order
    assert labels_parse(made) == {k: str(v)[:LABEL_VALUE_MAX] for k, v in labels.items()}


def test_a_value_that_cannot_be_remembered_is_still_keyed():
    assert labels_key({"le": ["1", "2"]}) == "{\"le\":\"['1', '2']\"}"


def test_the_memory_of_keys_is_bounded(monkeypatch):
    monkeypatch.setattr(counters, "_KEYS_MAX", 3)
    counters._KEYS.clear()
    for n in range(10):
        labels_key({"n": str(n)})
    assert len(counters._KEYS) <= 3
