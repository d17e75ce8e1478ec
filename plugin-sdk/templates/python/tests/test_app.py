from app import transform
from hookshape_plugin.testing import delivered_json, event, run, skipped


def test_json_events_become_messages():
    body = delivered_json(run(transform, event("order.paid", "application/json", '{"id": 7}'), {"prefix": "New: "}))
    assert body["text"] == "New: order.paid from acme"
    assert body["event"] == {"id": 7}


def test_documents_are_skipped():
    assert skipped(run(transform, event("report", "application/xml", "<r/>"))) == "application/xml is not JSON"
