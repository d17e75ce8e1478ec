"""The SDK's helpers and its host stand-in."""

import pytest

from hookshape_plugin import Deliver, PluginError, Skip, deliver, deliver_json, dumps, log, plugin, skip
from hookshape_plugin.testing import delivered_json, event, failed, run, sample_event, skipped


def test_event_helpers_read_json_text_and_documents():
    assert event("t", "application/json", {"a": [1, 2]}).json() == {"a": [1, 2]}
    assert event("t", "application/cloudevents+json; charset=utf-8", "{}").is_json()
    xml = event("t", "application/xml", "<a/>")
    assert not xml.is_json() and xml.payload_value() == "<a/>" and xml.text() == "<a/>"
    with pytest.raises(PluginError, match="not UTF-8 text"):
        event("t", "text/plain", b"\xff").text()
    with pytest.raises(PluginError, match="^invalid event payload: "):
        event("t", "application/json", "{").json()


def test_sample_files_become_events():
    body = '{"type": "project.published", "content_type": "application/xml", "payload": "<p/>"}'
    e = sample_event(body, tenant="atscale")
    assert (e.event_type, e.tenant, e.payload) == ("project.published", "atscale", b"<p/>")
    assert sample_event('{"type": "t", "payload": {"b": 1, "a": 2.0}}').payload == b'{"a":2.0,"b":1}'


def test_json_is_written_as_hookshape_writes_it():
    assert dumps({"b": "é\n", "a": [1, None, True]}) == '{"a":[1,null,true],"b":"é\\n"}'.encode()
    request = deliver_json({"x": 1}).header("x-one", "1")
    assert request == Deliver(b'{"x":1}', "application/json", [("x-one", "1")])
    assert deliver("<a/>", "application/xml").body == b"<a/>"


def test_config_is_an_object_and_errors_say_so():
    def echo(e, s):
        return skip(repr(s.config()))

    assert skipped(run(echo, event("t"), {"k": 1})) == "{'k': 1}"
    assert skipped(run(echo, event("t"))) == "{}"
    assert failed(run(echo, event("t"), [1])) == "invalid plugin config: expected an object, found an array"


def test_a_plugin_error_fails_with_its_message_alone():
    def refuse(e, s):
        raise PluginError("no channel configured")

    assert failed(run(refuse, event("t"))) == "no channel configured"


def test_any_other_exception_fails_with_its_message_and_last_frames():
    def divide(e, s):
        return ratio(0)

    def ratio(n):
        return 1 / n

    message = failed(run(divide, event("t")))
    lines = message.splitlines()
    assert lines[0] == "ZeroDivisionError: division by zero"
    assert 'in divide' in message and 'in ratio' in message and "return 1 / n" in message


def test_a_wrong_return_value_is_an_error():
    assert failed(run(lambda e, s: {"text": "hi"}, event("t"))).startswith(
        "transform returned dict, not a request")


def test_logs_are_collected_by_the_stand_in():
    def chatty(e, s):
        log.info("one")
        log.warn("two")
        return Skip("quiet")

    report = run(chatty, event("t"))
    assert report.logs == [("info", "one"), ("warn", "two")]


def test_plugin_defines_the_export_componentize_py_calls():
    def transform(e, s):
        return skip("x")

    assert plugin(transform) is transform
    assert hasattr(__import__(__name__), "WitWorld")
