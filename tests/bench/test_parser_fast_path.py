"""The fast path of ``events.parse`` (an optimisation the benchmarks drove) changes nothing.

``parse`` first decodes into a pattern-free twin and checks every Id at once, falling back to
the strict msgspec decoder for anything it does not accept. These properties pin that the
result is exactly the strict decoder's: the same event, or the same reason and detail.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import events
from tests.streams.test_events import valid_event

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
ID_FIELDS = ("event_id", "tenant_id", "actor_id", "model", "swarm_id", "task_id", "product")


def strict_parse(raw: bytes) -> events.TokenUsageEvent | tuple[str, str]:
    """What ``parse`` did before the fast path: msgspec with its patterns, then the time."""
    if len(raw) > events.MAX_EVENT_BYTES:
        return ("oversized", "")
    try:
        event = events._decoder.decode(raw)
        events.check_time(event.occurred_at, now=NOW)
    except msgspec.DecodeError as error:
        return (events._reason_for(str(error)), str(error))
    except events.InvalidEvent as invalid:
        return (invalid.reason, invalid.detail)
    return event


def fast_parse(raw: bytes) -> events.TokenUsageEvent | tuple[str, str]:
    try:
        return events.parse(raw, now=NOW)
    except events.InvalidEvent as invalid:
        return (invalid.reason, "" if invalid.reason == "oversized" else invalid.detail)


id_like = st.text(max_size=20) | st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@/\n-]{0,12}")
values = st.none() | st.integers(-5, 10**9) | id_like | st.booleans() | st.floats()


@settings(max_examples=400)
@given(field=st.sampled_from(sorted(valid_event())), value=values)
def test_parse_gives_the_strict_decoders_result_for_one_field_changed(
    field: str, value: Any
) -> None:
    data = {**valid_event(), field: value}
    raw = json.dumps(data, ensure_ascii=False).encode()
    assert fast_parse(raw) == strict_parse(raw)


@settings(max_examples=200)
@given(
    field=st.sampled_from(ID_FIELDS),
    value=id_like,
    drop=st.sampled_from([None, "swarm_id", "task_id", "region"]),
)
def test_ids_are_judged_exactly_as_the_pattern_judges_them(
    field: str, value: str, drop: str | None
) -> None:
    data = valid_event(**{field: value})
    if drop:
        data.pop(drop)
    raw = json.dumps(data, ensure_ascii=False).encode()
    assert fast_parse(raw) == strict_parse(raw)


def _refused_reason(event: events.TokenUsageEvent) -> str | None:
    try:
        events.encode_checked(event, now=NOW)
    except events.InvalidEvent as invalid:
        return invalid.reason
    return None


def test_encode_checked_refuses_what_parse_refuses() -> None:
    event = events.parse(json.dumps(valid_event()).encode(), now=NOW)
    assert events.encode_checked(event, now=NOW) == events.encode(event)
    assert _refused_reason(msgspec.structs.replace(event, tenant_id="-dash")) == "invalid_id"
    # Structs built in code are not validated: a wrong type or a broken rule is caught here.
    wrong_type = msgspec.structs.replace(event)
    msgspec.structs.force_setattr(wrong_type, "input_tokens", "150000")
    assert _refused_reason(wrong_type) == "wrong_type"
    too_much_thinking = msgspec.structs.replace(event)
    msgspec.structs.force_setattr(too_much_thinking, "thinking_tokens", 10**6)
    assert _refused_reason(too_much_thinking) == "thinking_exceeds_output"
    future = msgspec.structs.replace(event, occurred_at=datetime(2030, 1, 1, tzinfo=UTC))
    assert _refused_reason(future) == "timestamp_in_future"


def test_the_fast_path_is_on_for_the_current_id_pattern() -> None:
    # Otherwise the properties above would only compare the strict decoder with itself.
    assert events._FAST_PATH
    assert events._fast_twin(json.dumps(valid_event()).encode()) is not None
    assert events._fast_twin(json.dumps(valid_event(model="-bad")).encode()) is None
