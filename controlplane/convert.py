"""Maps the control plane's records to and from the wire types (`faregate.v1`).

The control plane's only module, besides the gRPC services, that touches `_pb2`
types: the stored form of a snapshot (serialized `faregate.v1.Snapshot` bytes) and
the Admin API's response messages. No I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable

from controlplane.diff import Change
from controlplane.store import RevisionInfo, SidecarHello, SidecarInfo, SpendRow
from faregate.convert import snapshot_from_pb, snapshot_to_pb
from faregate.model import Snapshot
from faregate.v1 import admin_pb2, control_pb2, types_pb2


def encode_snapshot(snapshot: Snapshot) -> bytes:
    # Deterministic, so equal snapshots are stored as equal bytes.
    return snapshot_to_pb(snapshot).SerializeToString(deterministic=True)


def decode_snapshot(data: bytes) -> Snapshot:
    return snapshot_from_pb(types_pb2.Snapshot.FromString(data))


def hello_from_pb(hello: control_pb2.Hello, controlplane_id: str) -> SidecarHello:
    return SidecarHello(
        sidecar_id=hello.sidecar_id,
        service=hello.service,
        incarnation=hello.incarnation,
        snapshot_version=hello.snapshot_version,
        hostname=hello.hostname,
        controlplane_id=controlplane_id,
    )


def change_to_pb(change: Change) -> admin_pb2.ConfigChange:
    return admin_pb2.ConfigChange(
        kind=change.kind, name=change.name, op=change.op, detail=change.detail
    )


def revision_to_pb(info: RevisionInfo) -> admin_pb2.Revision:
    return admin_pb2.Revision(
        revision=info.revision,
        snapshot_version=info.snapshot_version,
        created_at_unix_ms=info.created_at_unix_ms,
        author=info.author,
        source_name=info.source_name,
        models=info.models,
        capabilities=info.capabilities,
        tenants=info.tenants,
    )


def sidecar_to_pb(info: SidecarInfo) -> admin_pb2.SidecarStatus:
    return admin_pb2.SidecarStatus(
        sidecar_id=info.sidecar_id,
        service=info.service,
        connected=info.connected,
        snapshot_version=info.snapshot_version,
        last_nack_version=info.last_nack_version,
        last_nack_reason=info.last_nack_reason,
        last_seen_unix_ms=info.last_seen_unix_ms,
        incarnation=info.incarnation,
        hostname=info.hostname,
        controlplane_id=info.controlplane_id,
    )


def spend_to_pb(rows: Iterable[SpendRow], window_ms: int, group_by: str) -> admin_pb2.SpendResponse:
    messages = [
        admin_pb2.SpendRow(
            key=row.key,
            cost_nanos=row.cost_nanos,
            requests=row.requests,
            input_tokens=row.input_tokens,
            cached_input_tokens=row.cached_input_tokens,
            output_tokens=row.output_tokens,
            business_value_nanos=row.business_value_nanos,
        )
        for row in rows
    ]
    return admin_pb2.SpendResponse(
        rows=messages,
        total_cost_nanos=sum(row.cost_nanos for row in messages),
        total_requests=sum(row.requests for row in messages),
        window_ms=window_ms,
        group_by=group_by,
    )
