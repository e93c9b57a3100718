"""Properties that must hold for every input, found by hypothesis rather than by examples we thought of."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heard_intake import domain
from heard_intake.ratelimit import TokenBucketLimiter
from heard_intake.sessions import RejectedItem, SessionItem, UploadError, parse_csv_items, validate_row
from heard_shared import events as ev

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=20,
)
attribute_names = st.sampled_from(["specversion", "id", "source", "type", "time", "subject", "datacontenttype", "data"])


@PROPERTY_SETTINGS
@given(text=st.text(max_size=400))
def test_redaction_is_idempotent(text: str) -> None:
    once = domain.redact(text)
    assert domain.redact(once) == once


@PROPERTY_SETTINGS
@given(
    email=st.from_regex(r"[a-z]{1,10}\.[a-z]{1,10}@[a-z]{2,10}\.(org|com|net)", fullmatch=True),
    before=st.text(alphabet=st.characters(categories=["Ll", "Zs"]), max_size=40),
)
def test_redaction_removes_every_email_address(email: str, before: str) -> None:
    assert email not in domain.redact(f"{before} {email} thanks")


@PROPERTY_SETTINGS
@given(data=st.data())
def test_tracking_codes_survive_how_people_retype_them(data: st.DataObject) -> None:
    code = domain.new_tracking_code()
    symbols = code.replace("-", "")
    # Lower case, lost or extra dashes and spaces, and O/I/L typed for 0/1.
    retyped = "".join(
        data.draw(st.sampled_from([c, c.lower()])) + data.draw(st.sampled_from(["", "", " ", "-"])) for c in symbols
    )
    retyped = retyped.replace("0", data.draw(st.sampled_from(["0", "O", "o"]))).replace(
        "1", data.draw(st.sampled_from(["1", "I", "l", "L"]))
    )
    assert domain.normalise_tracking_code(retyped) == code


@PROPERTY_SETTINGS
@given(text=st.text(max_size=60))
def test_normalised_tracking_codes_are_a_fixed_point(text: str) -> None:
    normalised = domain.normalise_tracking_code(text)
    if normalised is not None:
        assert domain.normalise_tracking_code(normalised) == normalised
        assert len(normalised) == 23


@PROPERTY_SETTINGS
@given(
    value=st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode()), st.none()),
    headers=st.dictionaries(
        st.one_of(attribute_names.map(lambda a: f"ce_{a}"), st.just("content-type"), st.text(max_size=10)),
        st.binary(max_size=40),
        max_size=5,
    ),
)
def test_decode_raises_nothing_but_invalid_event(value: bytes | None, headers: dict[str, bytes]) -> None:
    try:
        ev.decode(value, headers, expected=(ev.INBOUND,))
    except ev.InvalidEvent as invalid:
        assert invalid.code


@PROPERTY_SETTINGS
@given(fields=st.dictionaries(attribute_names, json_values, max_size=8))
def test_decode_of_any_json_object_raises_nothing_but_invalid_event(fields: dict[str, Any]) -> None:
    fields.setdefault("type", "org.heard.feedback.inbound.v1")
    try:
        event = ev.decode(json.dumps(fields).encode())
    except ev.InvalidEvent:
        return
    assert isinstance(event.data, ev.FeedbackInboundV1)


inbound_data = st.builds(
    ev.FeedbackInboundV1,
    kind=st.sampled_from(["praise", "concern", "complaint", "suggestion", "question"]),
    text=st.text(min_size=1, max_size=200),
    category=st.none() | st.text(max_size=80),
    language=st.sampled_from(["en", "es"]),
    rating=st.none() | st.integers(min_value=1, max_value=5),
)


@PROPERTY_SETTINGS
@given(data=inbound_data, source=st.text(min_size=1, max_size=50), binary=st.booleans())
def test_inbound_events_round_trip_in_both_kafka_modes(data: ev.FeedbackInboundV1, source: str, binary: bool) -> None:
    event = ev.new_event(ev.INBOUND, data, source=source, subject="s")
    if binary:
        attributes = json.loads(ev.encode(event))
        payload = attributes.pop("data")
        headers = {f"ce_{k}": str(v).encode() for k, v in attributes.items() if k != "datacontenttype"}
        decoded = ev.decode(json.dumps(payload).encode(), {**headers, "content-type": b"application/json"})
    else:
        decoded = ev.decode(ev.encode(event))
    assert decoded.data == data
    assert (decoded.source, decoded.id) == (source, event.id)


@PROPERTY_SETTINGS
@given(rows=st.lists(st.lists(st.text(max_size=20), max_size=9), max_size=8))
def test_any_csv_sheet_is_either_refused_whole_or_judged_row_by_row(rows: list[list[str]]) -> None:
    lines = ["kind,text,rating"] + [",".join(json.dumps(cell) for cell in row) for row in rows]
    try:
        parsed = parse_csv_items("\n".join(lines).encode())
    except UploadError:
        return
    for raw in parsed:
        assert isinstance(validate_row(raw), SessionItem | RejectedItem)


@PROPERTY_SETTINGS
@given(
    steps=st.lists(st.tuples(st.floats(min_value=0, max_value=10), st.integers(min_value=1, max_value=5)), max_size=50)
)
def test_a_client_never_gets_more_than_burst_plus_refill(steps: list[tuple[float, int]]) -> None:
    now = [0.0]
    limiter = TokenBucketLimiter(burst=3, per_second=0.5, clock=lambda: now[0])
    allowed = 0
    for elapsed, attempts in steps:
        now[0] += elapsed
        allowed += sum(1 for _ in range(attempts) if limiter.take("client") == 0.0)
    assert allowed <= 3 + now[0] * 0.5 + 1e-9
