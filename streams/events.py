"""The token usage event contract, version 1.

One event per request that spent tokens. The wire format is plain JSON (UTF-8), keyed by
``tenant_id``; producers in any language can validate against
``streams/schemas/token-usage-event.v1.schema.json`` (exported from this module, a test keeps
the two in step). Rules the JSON Schema cannot say (cached <= input, thinking <= output,
timestamps within bounds) are enforced by :func:`parse` and listed in the schema's
``description``.

Every consumer parses with :func:`parse`, so a message is valid or invalid in the same way
everywhere; an invalid one raises :class:`InvalidEvent` with a short ``reason`` code (used to
group dead letters) and a human-readable ``detail``.
"""

from __future__ import annotations

import operator
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).parent / "schemas" / "token-usage-event.v1.schema.json"

#: Larger messages are refused before parsing: a usage event is a few hundred bytes.
MAX_EVENT_BYTES = 16 * 1024
#: No request carries more tokens of one type than this; larger counts are corrupt data.
MAX_TOKENS = 100_000_000
#: Nor does it keep an accelerator busy for longer than a day.
MAX_ACCELERATOR_MS = 24 * 3600 * 1000
#: Nothing was metered before this instant.
EARLIEST_EVENT = datetime(2000, 1, 1, tzinfo=UTC)

Id = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=128,
        # ``$(?!\n)``: in Python's re (msgspec's) a bare ``$`` also matches before a final
        # newline, which would make "evt-1\n" a valid id distinct from "evt-1".
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$(?!\n)",
        description="Identifier: ASCII letters, digits and . _ : @ / -, at most 128 characters.",
    ),
]
TokenCount = Annotated[int, msgspec.Meta(ge=0, le=MAX_TOKENS)]
Channel = Literal["own_product", "direct_api", "third_party_framework"]
ActorType = Literal["human", "agent"]
Mode = Literal["realtime", "batch"]

#: The ``product`` of a direct model API call (no application layer in between).
API_PRODUCT = "api"


class TokenUsageEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One request's token usage, as the serving layer measured it."""

    event_id: Annotated[Id, msgspec.Meta(description="Unique per request, reused on every retry.")]
    schema_version: Literal[1]
    occurred_at: Annotated[
        datetime, msgspec.Meta(tz=True, description="Event time, RFC 3339 with offset (UTC).")
    ]
    tenant_id: Id
    workspace_id: Id
    api_key_id: Id
    product: Annotated[Id, msgspec.Meta(description="The application, or 'api' for direct calls.")]
    channel: Channel
    actor_type: ActorType
    actor_id: Id
    session_id: Id
    request_id: Id
    model: Id
    region: Id
    chip_family: Id
    mode: Mode
    input_tokens: Annotated[TokenCount, msgspec.Meta(description="All input, cached included.")]
    cached_input_tokens: Annotated[
        TokenCount, msgspec.Meta(description="Input served from cache: a subset of input.")
    ]
    output_tokens: Annotated[TokenCount, msgspec.Meta(description="All output, thinking included.")]
    thinking_tokens: Annotated[
        TokenCount, msgspec.Meta(description="Reasoning output: a subset of output.")
    ]
    accelerator_ms: Annotated[int, msgspec.Meta(ge=0, le=MAX_ACCELERATOR_MS)]
    swarm_id: Id | None = None
    task_id: Id | None = None

    def __post_init__(self) -> None:
        # Cross-field rules; msgspec reports these as validation errors.
        if self.cached_input_tokens > self.input_tokens:
            raise ValueError(
                f"cached_input_tokens ({self.cached_input_tokens}) exceeds "
                f"input_tokens ({self.input_tokens})"
            )
        if self.thinking_tokens > self.output_tokens:
            raise ValueError(
                f"thinking_tokens ({self.thinking_tokens}) exceeds "
                f"output_tokens ({self.output_tokens})"
            )
        if self.actor_type == "human" and (self.swarm_id or self.task_id):
            raise ValueError("swarm_id and task_id are for agent work; actor_type is human")
        if self.channel == "own_product" and self.product == API_PRODUCT:
            raise ValueError("channel own_product needs a product other than 'api'")
        if self.channel == "direct_api" and self.product != API_PRODUCT:
            raise ValueError(f"channel direct_api needs product 'api', not {self.product!r}")


class InvalidEvent(ValueError):
    """A message that is not a valid token usage event.

    ``reason`` is a short stable code (``malformed_json``, ``missing_field``, ...) for
    grouping and alerting; ``detail`` says exactly what is wrong and where.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


_decoder = msgspec.json.Decoder(TokenUsageEvent)
_encoder = msgspec.json.Encoder()


# --- the fast path of parse ---------------------------------------------------------------
# msgspec checks an Id's pattern with one Python-level ``re.search`` per field: 13 of them
# cost ~80% of a strict decode (profiled: ~4 of ~5 us per event). The fast path decodes into
# a twin struct without the patterns, checks all Ids at once with two C-level passes over
# them joined by newlines, and builds the real event (its ``__post_init__`` runs). Anything
# it does not accept is decoded again strictly, so errors and results are exactly the strict
# decoder's: the fast path only ever accepts what the strict decoder accepts.
_META_ATTRS = (
    "gt", "ge", "lt", "le", "multiple_of", "min_length", "max_length", "tz",
    "title", "description", "examples", "extra_json_schema", "extra",
)  # fmt: skip


def _without_pattern(tp: Any) -> tuple[Any, set[str]]:
    """``tp`` with every ``Meta(pattern=...)`` dropped, and the patterns dropped."""
    if get_origin(tp) is Annotated:
        base, *metas = get_args(tp)
        had = set()
        kept = []
        for meta in metas:
            if isinstance(meta, msgspec.Meta) and meta.pattern is not None:
                had.add(meta.pattern)
                meta = msgspec.Meta(
                    **{k: getattr(meta, k) for k in _META_ATTRS if getattr(meta, k) is not None}
                )
            kept.append(meta)
        return Annotated[(_without_pattern(base)[0], *kept)], had
    if get_origin(tp) in (Union, UnionType):
        parts = [_without_pattern(arg) for arg in get_args(tp)]
        return Union[tuple(part for part, _ in parts)], set().union(*(had for _, had in parts))  # noqa: UP007
    return tp, set()


def _unpatterned_twin() -> tuple[type[msgspec.Struct], tuple[str, ...], set[str]]:
    fields: list[Any] = []
    patterned: list[str] = []
    patterns: set[str] = set()
    for info in msgspec.structs.fields(TokenUsageEvent):
        tp, had = _without_pattern(info.type)
        if had:
            patterned.append(info.name)
            patterns |= had
        fields.append((info.name, tp) if info.required else (info.name, tp, info.default))
    twin = msgspec.defstruct(
        "_UnpatternedEvent", fields, kw_only=True, frozen=True, forbid_unknown_fields=True
    )
    return twin, tuple(patterned), patterns


_Twin, _ID_FIELDS, _PATTERNS = _unpatterned_twin()
#: The Id patterns the fast path's checks implement (the second refuses a final newline
#: too; the checks refuse every newline). Any other pattern turns the fast path off, so a
#: changed contract can never be judged by stale checks.
_FAST_PATH_PATTERNS = {
    r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$",
    r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$(?!\n)",
}
_FAST_PATH = _PATTERNS <= _FAST_PATH_PATTERNS
_twin_decoder = msgspec.json.Decoder(_Twin)
_id_values = operator.attrgetter(*_ID_FIELDS)
_twin_as_dict = msgspec.structs.asdict
#: The Id pattern ``^[A-Za-z0-9][A-Za-z0-9._:@/-]*$`` as two checks over newline-joined Ids:
#: every byte is allowed (deleting the allowed ones leaves nothing) and no Id starts with
#: punctuation. Non-ASCII encodes to bytes >= 0x80, which are never allowed.
_ID_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:@/-\n"
_BAD_ID_START = re.compile(r"\n[^A-Za-z0-9]")


def _fast_twin(raw: bytes) -> Any:
    """The decoded twin if the fast path accepts ``raw`` (Ids included), else None."""
    if not _FAST_PATH:
        return None
    try:
        twin = _twin_decoder.decode(raw)
    except msgspec.DecodeError:
        return None
    ids = [*filter(None, _id_values(twin))]  # None: an optional Id left out
    joined = "\n".join(ids)
    if (
        joined.count("\n") != len(ids) - 1  # an Id holding a newline
        or joined.encode().translate(None, _ID_BYTES)
        or _BAD_ID_START.search("\n" + joined) is not None
    ):
        return None
    return twin


def _fast_decode(raw: bytes) -> TokenUsageEvent | None:
    """The event if the fast path accepts ``raw``, else None (then decode strictly)."""
    twin = _fast_twin(raw)
    if twin is None:
        return None
    try:
        return TokenUsageEvent(**_twin_as_dict(twin))
    except ValueError:  # a cross-field rule of __post_init__
        return None


# msgspec's messages mapped to stable reason codes, first match wins.
_REASONS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), reason)
    for pattern, reason in (
        (r"^JSON is malformed|^Input data was truncated", "malformed_json"),
        (r"missing required field", "missing_field"),
        (r"unknown field", "unknown_field"),
        (r"Invalid enum value", "unknown_enum_value"),
        (r"cached_input_tokens .* exceeds", "cached_exceeds_input"),
        (r"thinking_tokens .* exceeds", "thinking_exceeds_output"),
        (r"^swarm_id and task_id|^channel ", "inconsistent_fields"),
        (r"Expected `str` matching regex|Expected `str` of length", "invalid_id"),
        (r"Expected `int` [<>]=", "count_out_of_range"),
        (r"timezone component", "timestamp_without_timezone"),
        (r"Expected `object`, got", "not_an_object"),
        (r"Expected `", "wrong_type"),
        (r"Invalid RFC3339|Invalid ISO|datetime", "invalid_timestamp"),
    )
)


def _reason_for(message: str) -> str:
    for pattern, reason in _REASONS:
        if pattern.search(message):
            return reason
    return "invalid_event"


def parse(
    raw: bytes,
    *,
    now: datetime | None = None,
    max_future_skew: timedelta = timedelta(minutes=15),
) -> TokenUsageEvent:
    """Decode and validate one message; raise :class:`InvalidEvent` if it is not valid."""
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent("oversized", f"{len(raw)} bytes is over the {MAX_EVENT_BYTES} limit")
    event = _fast_decode(raw)
    if event is None:
        try:
            event = _decoder.decode(raw)
        except msgspec.DecodeError as error:
            message = str(error)
            raise InvalidEvent(_reason_for(message), message) from None
    check_time(event.occurred_at, now=now, max_future_skew=max_future_skew)
    return event


def check_time(
    occurred_at: datetime,
    *,
    now: datetime | None = None,
    max_future_skew: timedelta = timedelta(minutes=15),
) -> None:
    """Refuse event times far in the future (a broken clock) or before 2000."""
    if occurred_at < EARLIEST_EVENT:
        raise InvalidEvent(
            "timestamp_too_old", f"occurred_at {occurred_at.isoformat()} is before 2000"
        )
    limit = (now or datetime.now(UTC)) + max_future_skew
    if occurred_at > limit:
        raise InvalidEvent(
            "timestamp_in_future",
            f"occurred_at {occurred_at.isoformat()} is more than "
            f"{int(max_future_skew.total_seconds())}s ahead of now",
        )


def encode(event: TokenUsageEvent) -> bytes:
    """The wire form of an event: compact JSON, UTC timestamps."""
    if event.occurred_at.utcoffset() != _ZERO:
        # A producer may stamp local time with an offset; the wire form is always UTC.
        event = msgspec.structs.replace(event, occurred_at=event.occurred_at.astimezone(UTC))
    return _encoder.encode(event)


_ZERO = timedelta(0)


def encode_checked(
    event: TokenUsageEvent,
    *,
    now: datetime | None = None,
    max_future_skew: timedelta = timedelta(minutes=15),
) -> bytes:
    """The wire form of ``event`` after checking every rule :func:`parse` checks.

    Raises :class:`InvalidEvent` exactly when ``parse(encode(event))`` would (a struct built
    in code skipped validation), but without building a second event: the producer's path.
    """
    payload = encode(event)
    twin = _fast_twin(payload) if len(payload) <= MAX_EVENT_BYTES else None
    if twin is not None:
        try:
            TokenUsageEvent.__post_init__(twin)  # the cross-field rules, on the decoded values
        except ValueError:
            twin = None
    if twin is None:
        # Not accepted by the fast path: the strict parser raises its exact error.
        parse(payload, now=now, max_future_skew=max_future_skew)
    else:
        check_time(twin.occurred_at, now=now, max_future_skew=max_future_skew)
    return payload


def to_dict(event: TokenUsageEvent) -> dict[str, Any]:
    """The event as JSON-ready builtins (timestamps as RFC 3339 strings)."""
    result: dict[str, Any] = msgspec.to_builtins(event)
    return result


def from_dict(data: dict[str, Any], **parse_options: Any) -> TokenUsageEvent:
    """Build and validate an event from plain values (as a service would)."""
    return parse(_encoder.encode(data), **parse_options)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the contract, as committed in ``SCHEMA_PATH``."""
    body = msgspec.json.schema(TokenUsageEvent)["$defs"]["TokenUsageEvent"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://tokenhub.dev/schemas/token-usage-event.v1.schema.json",
        **body,
        "title": "Token usage event, version 1",
        "description": (
            "One event per request that spent tokens; Kafka topic token-usage.events.v1, "
            "key tenant_id, value this JSON (UTF-8). Rules beyond this schema: "
            "cached_input_tokens <= input_tokens; thinking_tokens <= output_tokens; "
            "swarm_id and task_id only when actor_type is agent; channel own_product needs "
            "product other than 'api', channel direct_api needs product 'api'; "
            "occurred_at not before 2000-01-01 and not more than 15 minutes ahead of the "
            f"consumer's clock; message at most {MAX_EVENT_BYTES} bytes. event_id is the "
            "idempotency key: reuse it on every retry of the same request."
        ),
    }
