"""The Rust slack-threshold's unit tests, on the Python port (same inputs, same answers)."""

from pathlib import Path

import pytest

from app import num, transform
from hookshape_plugin.testing import delivered_json, event, failed, run, sample_event, skipped

SAMPLES = Path(__file__).resolve().parents[4] / "shared" / "samples"
RUN_URL = "https://studio.example.com/api/acme/reports/9f2c41/runs/b7d0e3"


def report_run():
    return sample_event(SAMPLES / "analyst-studio-report-run-completed.json", tenant="analyst-studio")


def on(ev, config):
    return run(transform, ev, config)


def at(ev_type, content_type, payload):
    return event(ev_type, content_type, payload, tenant="analyst-studio")


def revenue(row, op, threshold):
    return {"pointer": f"/rows/{row}/revenue", "op": op, "threshold": threshold}


def test_crossing_the_threshold_delivers_a_slack_message():
    config = {**revenue(0, ">", 100000.0), "message": "Daily revenue crossed the line"}
    report = on(report_run(), config)
    body = delivered_json(report)
    assert body["text"] == "Daily revenue crossed the line: revenue is 128450.5 (&gt; 100000)"
    assert body["blocks"][0] == {"type": "section", "text": {"type": "mrkdwn",
        "text": "*Daily revenue crossed the line*\nrevenue is *128450.5* (&gt; 100000)"}}
    assert body["blocks"][1] == {"type": "context", "elements": [{"type": "mrkdwn",
        "text": f"<{RUN_URL}|Open> · report_run_completed · analyst-studio"}]}
    assert "channel" not in body and "username" not in body
    assert report.logs == [("info", "revenue 128450.5 is > 100000: notifying Slack")]


def test_staying_under_the_threshold_skips_with_the_reason():
    assert skipped(on(report_run(), revenue(1, ">", 100000.0))) == "revenue 96410 is not > 100000"
    assert skipped(on(report_run(), revenue(0, "<=", 128450.0))) == "revenue 128450.5 is not <= 128450"


@pytest.mark.parametrize("op,threshold,delivers", [
    (">", 96410.0, False), (">=", 96410.0, True), ("<", 96410.0, False), ("<=", 96410.0, True),
    ("==", 96410.0, True), ("!=", 96410.0, False), ("<", 100000.0, True), ("!=", 1.0, True),
])
def test_every_operator_compares_as_written(op, threshold, delivers):
    outcome = on(report_run(), revenue(1, op, threshold)).outcome
    assert (type(outcome).__name__ == "Deliver") == delivers, outcome


def test_headline_placeholders_and_overrides_are_applied():
    config = {"pointer": "/rows/0/orders", "op": ">=", "threshold": 1000,
              "message": "{tenant}: {name} {value} {op} {threshold} on {event_type} <&>",
              "channel": "#revenue", "username": "hookshape"}
    body = delivered_json(on(report_run(), config))
    assert body["text"] == ("analyst-studio: orders 1310 &gt;= 1000 on report_run_completed "
                            "&lt;&amp;&gt;: orders is 1310 (&gt;= 1000)")
    assert body["channel"] == "#revenue" and body["username"] == "hookshape"


def test_default_headline_is_the_event_type_and_links_are_optional():
    config = {"pointer": "/a~1b/c~0d", "op": "<", "threshold": 0, "link_pointer": "/link"}
    payload = {"a/b": {"c~d": -2.5}, "link": "javascript:alert(1)"}
    body = delivered_json(on(at("metric", "application/json", payload), config))
    assert body["text"] == "metric: c~d is -2.5 (&lt; 0)"
    assert body["blocks"][1]["elements"][0]["text"] == "metric · analyst-studio"


def test_array_index_names_use_the_whole_pointer():
    config = {"pointer": "/values/1", "op": ">", "threshold": 5}
    assert skipped(on(at("m", "application/json", '{"values": [9, 3]}'), config)) == "/values/1 3 is not > 5"


def test_missing_or_non_numeric_values_are_errors_by_default():
    payload = '{"rows": [{"revenue": "abc"}, {"revenue": null}]}'

    def missing(pointer):
        return failed(on(at("report_run_completed", "application/json", payload),
                         {"pointer": pointer, "op": ">", "threshold": 1}))

    assert missing("/rows/0/revenue") == 'no number at /rows/0/revenue: found string "abc"'
    assert missing("/rows/1/revenue") == "no number at /rows/1/revenue: found null"
    assert missing("/rows/2/revenue") == "no number at /rows/2/revenue: nothing there"
    assert missing("/rows") == "no number at /rows: found an array"


def test_on_missing_skip_turns_those_errors_into_skips():
    config = {"pointer": "/rows/5/revenue", "op": ">", "threshold": 1, "on_missing": "skip"}
    assert skipped(on(report_run(), config)) == "no number at /rows/5/revenue: nothing there"
    assert skipped(on(at("project.published", "application/xml", "<project/>"), config)) == (
        "no number at /rows/5/revenue: the payload is not JSON")


def test_payloads_that_do_not_match_their_content_type_fail_even_with_on_missing_skip():
    config = {"pointer": "/rows/0/revenue", "op": ">", "threshold": 1, "on_missing": "skip"}
    message = failed(on(at("upload", "application/octet-stream", b"\xff"), config))
    assert message.startswith("the event payload is not UTF-8 text"), message
    assert failed(on(at("m", "application/json", '{"rows": ['), config)).startswith("invalid event payload")


def test_bad_config_names_the_field():
    bad_op = failed(on(report_run(), {"pointer": "/rows/0/revenue", "op": "=>", "threshold": 1}))
    assert bad_op.startswith("invalid plugin config at `op`: unknown variant `=>`"), bad_op
    assert "missing field `pointer`" in failed(on(report_run(), {"op": ">", "threshold": 1}))
    assert failed(on(report_run(), {"pointer": "rows/0", "op": ">", "threshold": 1})) == (
        "invalid plugin config at `pointer`: \"rows/0\" is not a JSON pointer "
        "(it must start with '/', e.g. \"/rows/0/revenue\")")
    bad_threshold = failed(on(report_run(), {"pointer": "/a", "op": ">", "threshold": "100k"}))
    assert bad_threshold.startswith("invalid plugin config at `threshold`"), bad_threshold
    typo = failed(on(report_run(), {"pointer": "/a", "op": ">", "threshold": 1, "treshold": 2}))
    assert "unknown field `treshold`" in typo


def test_numbers_print_without_a_trailing_zero_fraction():
    assert num(96410.0) == "96410"
    assert num(128450.5) == "128450.5"
    assert num(-0.25) == "-0.25"
    assert num(1e16) == "10000000000000000"
    assert num(1e-7) == "0.0000001"
