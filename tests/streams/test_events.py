"""The event contract: round trip, each validation error's reason code, the committed schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams import events

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)


def valid_event(**changes: Any) -> dict[str, Any]:
    """A valid agent event as a service would write it; ``changes`` override fields
    (``...`` removes one)."""
    data: dict[str, Any] = {
        "event_id": "evt-0001",
        "schema_version": 1,
        "occurred_at": "2026-03-20T11:59:00.250Z",
        "tenant_id": "tn-0001",
        "workspace_id": "ws-0001-01",
        "api_key_id": "ak-0123456789abcdef",
        "product": "agent_platform",
        "channel": "own_product",
        "actor_type": "agent",
        "actor_id": "ag-0001-planner",
        "swarm_id": "sw-0001-01",
        "task_id": "task-42",
        "session_id": "ses-1",
        "request_id": "req-1",
        "model": "qwen-plus",
        "region": "cn-hangzhou",
        "chip_family": "domestic-npu-a",
        "mode": "realtime",
        "input_tokens": 150_000,
        "cached_input_tokens": 100_000,
        "output_tokens": 2_000,
        "thinking_tokens": 1_200,
        "accelerator_ms": 9_500,
    }
    for key, value in changes.items():
        if value is ...:
            del data[key]
        else:
            data[key] = value
    return data


def reason_of(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else msgspec.json.encode(data)
    with pytest.raises(events.InvalidEvent) as caught:
        events.parse(raw, now=NOW)
    assert caught.value.detail  # always says what is wrong
    return caught.value.reason


def test_round_trip_keeps_every_field() -> None:
    event = events.from_dict(valid_event(), now=NOW)
    assert event.occurred_at == datetime(2026, 3, 20, 11, 59, 0, 250_000, tzinfo=UTC)
    again = events.parse(events.encode(event), now=NOW)
    assert again == event
    assert events.to_dict(again) == {**valid_event(), "occurred_at": "2026-03-20T11:59:00.250000Z"}


def test_offsets_are_normalised_to_utc() -> None:
    event = events.from_dict(valid_event(occurred_at="2026-03-20T19:59:00+08:00"), now=NOW)
    assert event.occurred_at == datetime(2026, 3, 20, 11, 59, tzinfo=UTC)
    assert b'"occurred_at":"2026-03-20T11:59:00Z"' in events.encode(event)


def test_swarm_and_task_are_optional() -> None:
    event = events.from_dict(valid_event(swarm_id=..., task_id=...), now=NOW)
    assert event.swarm_id is None and event.task_id is None


@given(
    input_tokens=st.integers(0, events.MAX_TOKENS),
    output_tokens=st.integers(0, events.MAX_TOKENS),
    data=st.data(),
)
def test_any_consistent_counts_round_trip(input_tokens: int, output_tokens: int, data) -> None:
    cached = data.draw(st.integers(0, input_tokens))
    thinking = data.draw(st.integers(0, output_tokens))
    raw = valid_event(
        input_tokens=input_tokens,
        cached_input_tokens=cached,
        output_tokens=output_tokens,
        thinking_tokens=thinking,
    )
    event = events.from_dict(raw, now=NOW)
    assert events.parse(events.encode(event), now=NOW) == event


@pytest.mark.parametrize("field", ["input_tokens", "cached_input_tokens", "output_tokens", "thinking_tokens", "accelerator_ms"])  # fmt: skip
def test_negative_count_is_out_of_range(field: str) -> None:
    assert reason_of(valid_event(**{field: -1})) == "count_out_of_range"


@pytest.mark.parametrize("value", [12.5, "120", True, None])
def test_non_integer_count_is_wrong_type(value: object) -> None:
    assert reason_of(valid_event(output_tokens=value)) == "wrong_type"


def test_cached_above_input() -> None:
    assert reason_of(valid_event(cached_input_tokens=150_001)) == "cached_exceeds_input"


def test_thinking_above_output() -> None:
    assert reason_of(valid_event(thinking_tokens=2_001)) == "thinking_exceeds_output"


@pytest.mark.parametrize(
    ("field", "value"),
    [("channel", "email"), ("actor_type", "robot"), ("mode", "priority"), ("schema_version", 2)],
)
def test_unknown_enum_value(field: str, value: object) -> None:
    assert reason_of(valid_event(**{field: value})) == "unknown_enum_value"


@pytest.mark.parametrize("field", ["event_id", "tenant_id", "workspace_id", "api_key_id", "actor_id", "session_id", "request_id"])  # fmt: skip
def test_missing_id(field: str) -> None:
    assert reason_of(valid_event(**{field: ...})) == "missing_field"


@pytest.mark.parametrize("value", ["tn 0001", "", "-tn", "租户", "x" * 129, "tn\n1"])
def test_invalid_id_characters(value: str) -> None:
    assert reason_of(valid_event(tenant_id=value)) == "invalid_id"


def test_timestamp_far_in_the_future() -> None:
    ahead = (NOW + timedelta(minutes=16)).isoformat()
    assert reason_of(valid_event(occurred_at=ahead)) == "timestamp_in_future"
    # A clock a few minutes fast is tolerated.
    events.parse(
        msgspec.json.encode(valid_event(occurred_at=(NOW + timedelta(minutes=14)).isoformat())),
        now=NOW,
    )


def test_timestamp_before_2000() -> None:
    assert reason_of(valid_event(occurred_at="1999-12-31T23:59:59Z")) == "timestamp_too_old"


def test_timestamp_without_timezone() -> None:
    assert reason_of(valid_event(occurred_at="2026-03-20T11:59:00")) == "timestamp_without_timezone"


def test_oversized_message() -> None:
    raw = msgspec.json.encode(valid_event(actor_id="a" * events.MAX_EVENT_BYTES))
    assert reason_of(raw) == "oversized"


@pytest.mark.parametrize("raw", [b"{", b"", b"not json", b"{'event_id': 1}", b'{"event_id": "e",}'])
def test_malformed_json(raw: bytes) -> None:
    assert reason_of(raw) == "malformed_json"


def test_json_that_is_not_an_object() -> None:
    assert reason_of(b"[1, 2]") == "not_an_object"


def test_extra_field() -> None:
    assert reason_of(valid_event(cost_cny="0.1")) == "unknown_field"


def test_swarm_ids_on_a_human_event_are_inconsistent() -> None:
    assert reason_of(valid_event(actor_type="human")) == "inconsistent_fields"
    assert reason_of(valid_event(channel="direct_api")) == "inconsistent_fields"
    assert reason_of(valid_event(product="api", swarm_id=..., task_id=...)) == "inconsistent_fields"


def test_json_schema_file_matches_model() -> None:
    committed = json.loads(events.SCHEMA_PATH.read_text())
    assert committed == events.json_schema(), (
        "streams/schemas/token-usage-event.v1.schema.json is out of date: regenerate it with "
        "python -c 'import json; from streams import events; "
        "events.SCHEMA_PATH.write_text(json.dumps(events.json_schema(), indent=2, sort_keys=True) + chr(10))'"
    )


def test_json_schema_lists_every_field_and_the_required_ones() -> None:
    schema = events.json_schema()
    assert set(schema["properties"]) == set(events.TokenUsageEvent.__struct_fields__)
    assert set(schema["required"]) == set(events.TokenUsageEvent.__struct_fields__) - {
        "swarm_id",
        "task_id",
    }
    assert schema["additionalProperties"] is False
