"""Size limits at the door: values cut with a visible marker, alerts within 64 KiB, signals within 256 KiB."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.service import RPCError, RPCStatusCode

from operations import BadInput, Context, Unavailable
from operations.alerts import Dispatched, dispatch_alerts, fingerprint, signal_batches
from workflows.config import default_config
from workflows.incident.models import Alert
from workflows.policy.alert_limits import (
    ALERT_MAX_BYTES,
    ANNOTATION_VALUE_MAX,
    LABEL_VALUE_MAX,
    MAX_LABELS,
    SIGNAL_BUDGET,
    alert_size,
    bounded_fingerprint,
    compact_alert_parts,
    human_size,
    truncate,
    utf8_len,
)


def test_short_text_is_untouched() -> None:
    assert truncate("payments", 4096) == "payments"
    assert truncate("", 10) == ""


def test_long_text_is_cut_within_the_limit_with_a_marker() -> None:
    cut = truncate("a" * 100 * 1024, LABEL_VALUE_MAX)
    assert utf8_len(cut) <= LABEL_VALUE_MAX
    assert cut.startswith("a" * 4000) and cut.endswith("…[truncated 96 KiB]")


def test_ten_megabytes_say_so() -> None:
    cut = truncate("x" * 10 * 1024 * 1024, ANNOTATION_VALUE_MAX)
    assert utf8_len(cut) <= ANNOTATION_VALUE_MAX and cut.endswith("…[truncated 10.0 MiB]")


def test_multibyte_text_is_cut_on_a_character_boundary() -> None:
    cut = truncate("é" * 5000, 4096)
    assert utf8_len(cut) <= 4096
    assert set(cut.split("…[")[0]) == {"é"}


def test_cut_again_keeps_the_first_marker() -> None:
    once = truncate("b" * 10 * 1024 * 1024, ANNOTATION_VALUE_MAX)
    twice = truncate(once, 1024)
    assert utf8_len(twice) <= 1024 and twice.endswith("…[truncated 10.0 MiB]")


def test_lone_surrogates_never_raise() -> None:
    assert utf8_len("a\ud800b") == 5
    assert truncate("a\ud800b", 100) == "a\ufffdb"
    assert truncate("\ud83d\ude00", 100) == "\U0001f600"
    assert fingerprint({"service": "x\udcff"}) == fingerprint({"service": "x\udcff"})
    assert len(bounded_fingerprint("\ud800")) == 16


def test_human_sizes() -> None:
    assert [human_size(n) for n in (10, 2048, 3 * 1024 * 1024)] == ["10 B", "2 KiB", "3.0 MiB"]


def test_long_fingerprints_become_a_hash() -> None:
    assert bounded_fingerprint("abcdef0123456789") == "abcdef0123456789"
    long = bounded_fingerprint("f" * 10_000)
    assert len(long) == 16 and long == bounded_fingerprint("f" * 10_000)


def test_an_alert_is_compacted_to_its_total_budget() -> None:
    labels = {f"label{i}": "v" * 4000 for i in range(40)}
    annotations = {"summary": "s" * 20_000, "description": "d" * 20_000, **{f"a{i}": "z" * 9000 for i in range(30)}}
    out_labels, out_annotations = compact_alert_parts(labels, annotations)
    assert alert_size(out_labels, out_annotations) <= ALERT_MAX_BYTES
    assert set(out_labels) == set(labels), "labels are cut, not dropped, while values can shrink"
    assert "summary" in out_annotations and "truncated" in out_annotations["summary"]


def test_too_many_labels_keep_the_well_known_ones() -> None:
    labels = {f"l{i:03}": "v" for i in range(200)} | {"alertname": "A", "service": "s", "severity": "critical"}
    out, _ = compact_alert_parts(labels, {})
    assert len(out) == MAX_LABELS and {"alertname", "service", "severity"} <= set(out)


def test_alert_bounded_is_itself_when_within_limits() -> None:
    alert = Alert(fingerprint="abc", labels={"alertname": "A"}, annotations={"summary": "ok"})
    assert alert.bounded() is alert
    big = Alert(fingerprint="abc", labels={"alertname": "A", "service": "s" * 100_000})
    assert big.bounded().labels["service"].endswith("…[truncated 94 KiB]")


def _alerts(n: int, status: str = "firing") -> list[Alert]:
    out = []
    for i in range(n):
        labels = {"alertname": "Big", "instance": f"host-{i}", **{f"k{j}": f"value-{j}-{i}" for j in range(13)}}
        out.append(Alert(fingerprint=fingerprint(labels), labels=labels, status=status))  # type: ignore[arg-type]
    return out


def test_signal_batches_stay_within_the_budget_and_keep_every_alert() -> None:
    alerts = _alerts(6000)
    batches = signal_batches(alerts)
    assert len(batches) > 1
    assert sum(len(b) for b in batches) == 6000
    for batch in batches:
        assert sum(len(a.model_dump_json()) for a in batch) <= SIGNAL_BUDGET


def test_one_batch_keeps_the_alerts_as_given() -> None:
    alerts = _alerts(3)
    resolved = alerts[0].model_copy(update={"status": "resolved"})
    assert signal_batches([resolved, *alerts]) == [[resolved, *alerts]]


def test_several_batches_send_firing_alerts_first_and_each_fingerprint_once() -> None:
    alerts = _alerts(3000)
    resolved = [a.model_copy(update={"status": "resolved"}) for a in _alerts(3000)[:1000]]
    batches = signal_batches(resolved + alerts[1000:])
    flat = [a for b in batches for a in b]
    statuses = [a.status for a in flat]
    assert statuses == sorted(statuses), "firing before resolved"
    assert len(flat) == len({a.fingerprint for a in flat}) == 3000


def test_dispatched_is_a_list_of_ids() -> None:
    result = Dispatched(["incident/a"], {"incident/b": "too large"})
    [only] = result
    assert only == "incident/a" and result.rejected == {"incident/b": "too large"}
    assert Dispatched(["x"]) == ["x"]


class FakeClient:
    """Answers signal-with-start: refuses for good, is unavailable, or accepts, by alert name in the id."""

    def __init__(self, answers: dict[str, RPCStatusCode]) -> None:
        self.answers = answers
        self.started: list[str] = []

    async def start_workflow(self, *args: Any, **kwargs: Any) -> None:
        [batch] = kwargs["start_signal_args"]
        name = batch.alerts[0].labels["alertname"]
        if name in self.answers:
            raise RPCError(f"{name} refused", self.answers[name], b"")
        self.started.append(kwargs["id"])


def _ctx(answers: dict[str, RPCStatusCode]) -> tuple[Context, FakeClient]:
    client = FakeClient(answers)
    return Context(client, default_config(), "q"), client  # type: ignore[arg-type]


def _named(*names: str) -> list[Alert]:
    return [Alert(fingerprint=n, labels={"alertname": n, "service": "s"}) for n in names]


async def test_a_group_refused_for_good_does_not_stop_the_others() -> None:
    ctx, client = _ctx({"Poison": RPCStatusCode.INVALID_ARGUMENT})
    result = await dispatch_alerts(ctx, _named("Poison", "Normal"), source="test")
    assert list(result) == client.started and len(result) == 1
    [(rejected, reason)] = result.rejected.items()
    assert rejected not in result and "Poison refused (after 0 of 1 alerts)" == reason


async def test_a_message_over_the_grpc_limit_is_refused_for_good() -> None:
    ctx, _ = _ctx({"Poison": RPCStatusCode.RESOURCE_EXHAUSTED})
    with pytest.raises(Unavailable):  # a plain RESOURCE_EXHAUSTED is an outage: retry later
        await dispatch_alerts(ctx, _named("Poison", "Normal"), source="test")
    client = FakeClient({})

    async def too_big(*args: Any, **kwargs: Any) -> None:
        raise RPCError("grpc: received message larger than max", RPCStatusCode.RESOURCE_EXHAUSTED, b"")

    client.start_workflow = too_big  # type: ignore[method-assign]
    with pytest.raises(BadInput) as refused:
        await dispatch_alerts(Context(client, default_config(), "q"), _named("Poison"), source="test")  # type: ignore[arg-type]
    assert refused.value.field == "alerts" and "larger than max" in refused.value.message


async def test_an_outage_is_unavailable_after_the_other_groups_went() -> None:
    ctx, client = _ctx({"Down": RPCStatusCode.UNAVAILABLE})
    with pytest.raises(Unavailable):
        await dispatch_alerts(ctx, _named("Down", "Normal"), source="test")
    assert len(client.started) == 1, "the other group was still sent"
