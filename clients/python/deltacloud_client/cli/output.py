"""How the CLI prints messages: aligned tables for people, JSON for scripts, and the
instance state machine as a table or a Graphviz graph."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from deltacloud.client.rpc import short_name
from deltacloud.v1 import instance_pb2


def as_dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def to_json(value: Message | Sequence[Message]) -> str:
    if isinstance(value, Message):
        return json.dumps(as_dict(value), indent=2, sort_keys=True)
    return json.dumps([as_dict(m) for m in value], indent=2, sort_keys=True)


def cell(message: Message, field: Any) -> str:
    """One field as table text: enums by their short name, lists joined by commas."""
    value = getattr(message, field.name)
    if field.is_repeated:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            return ",".join(f"{k}={v}" for k, v in sorted(value.items()))
        return ",".join(_scalar(field, v) for v in value)
    if field.message_type is not None:
        if not message.HasField(field.name):
            return ""
        if field.message_type.full_name == "google.protobuf.Timestamp":
            return str(value.ToJsonString())
        return json.dumps(as_dict(value), separators=(",", ":"))
    return _scalar(field, value)


def _scalar(field: Any, value: Any) -> str:
    if field.enum_type is not None:
        return short_name(field.enum_type, value)
    if field.message_type is not None:
        return json.dumps(as_dict(value), separators=(",", ":"))
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [list(header), *rows]
    ]
    return "\n".join(lines)


def list_table(items: Sequence[Message], item_type: type[Message]) -> str:
    """One row per item; the columns are the item's fields that hold simple values."""
    fields = [
        f
        for f in item_type.DESCRIPTOR.fields
        if f.message_type is None or f.message_type.full_name == "google.protobuf.Timestamp"
    ]
    # Drop the columns empty in every row: tables stay narrow.
    rows = [[cell(item, f) for f in fields] for item in items]
    keep = [i for i, f in enumerate(fields) if f.name == "id" or any(r[i] for r in rows)]
    header = [fields[i].name.upper() for i in keep]
    return table([[r[i] for i in keep] for r in rows], header)


def record(message: Message) -> str:
    """One message as ``field: value`` lines."""
    rows = [[f"{f.name}:", cell(message, f)] for f in message.DESCRIPTOR.fields]
    return table(rows, ["", ""]).split("\n", 1)[1] if rows else ""


def state_machine(machine: instance_pb2.InstanceStateMachine, fmt: str) -> str:
    state_enum = instance_pb2.Transition.DESCRIPTOR.fields_by_name["to"].enum_type
    action_enum = instance_pb2.Transition.DESCRIPTOR.fields_by_name["action"].enum_type
    assert state_enum is not None and action_enum is not None
    if fmt == "json":
        return to_json(machine)
    edges = [
        (
            short_name(state_enum, node.state),
            short_name(state_enum, t.to),
            "auto" if t.automatic else short_name(action_enum, t.action),
        )
        for node in machine.states
        for t in node.transitions
    ]
    if fmt == "dot":
        lines = ["digraph instance_states {", "  rankdir=LR;"]
        lines += [f'  "{a}" -> "{b}" [label="{label}"];' for a, b, label in edges]
        return "\n".join([*lines, "}"])
    return table([list(e) for e in edges], ["FROM", "TO", "ACTION"])


def event_line(event: instance_pb2.InstanceEvent) -> str:
    state_enum = instance_pb2.InstanceEvent.DESCRIPTOR.fields_by_name["state"].enum_type
    cause_enum = instance_pb2.InstanceEvent.DESCRIPTOR.fields_by_name["cause"].enum_type
    assert state_enum is not None and cause_enum is not None
    return (
        f"{event.revision:>6}  {event.time.ToJsonString()}  {event.instance_id}  "
        f"{short_name(state_enum, event.previous_state)} -> {short_name(state_enum, event.state)}"
        f"  ({short_name(cause_enum, event.cause)})"
    )
