"""The leases this process holds, on disk, so that its successor can forfeit them.

A sidecar that crashes cannot account for calls that were in flight, so the next
process closes its predecessor's open leases as *forfeited* (docs/budgets.md):
the control plane keeps their unspent remainder as spent instead of returning
it. To know which leases those are, every change to the set of open leases is
written to `STATE_DIR/leases.json` (atomically, fsynced) before the new authority
is used. A clean shutdown closes its leases and leaves the file empty.

`forfeits` turns what the file lists into lease closes: leases whose close is
still in the journal are left alone (closed already), and each close states the
spend the journal knows for the lease (ACKed plus still journaled).
Must not import gRPC or the wire types.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

from faregate.model import LeaseClose
from sidecar.leases import LeaseView
from sidecar.state_dir import write_atomic

log = logging.getLogger(__name__)

LEASE_FILE = "leases.json"


class LeaseFile:
    def __init__(self, state_dir: Path) -> None:
        self._path = state_dir / LEASE_FILE
        self._written: frozenset[str] | None = None

    def read(self) -> list[dict[str, str]]:
        """What the previous process left: [{lease_id, budget, period_key}, ...]."""
        try:
            value = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.warning("cannot read %s (%s): previous leases will expire instead", self._path, exc)
            return []
        leases = value.get("leases", []) if isinstance(value, dict) else []
        return [
            {k: str(lease.get(k, "")) for k in ("lease_id", "budget", "period_key")}
            for lease in leases
            if isinstance(lease, dict) and lease.get("lease_id")
        ]

    def write(self, leases: Iterable[LeaseView]) -> None:
        """Record the open leases, if the set changed since the last write."""
        views = sorted(leases, key=lambda v: v.lease_id)
        ids = frozenset(v.lease_id for v in views)
        if ids == self._written:
            return
        body = {
            "leases": [
                {"lease_id": v.lease_id, "budget": v.budget, "period_key": v.period_key}
                for v in views
            ]
        }
        write_atomic(self._path, (json.dumps(body, indent=1) + "\n").encode())
        self._written = ids


def forfeits(
    previous: Iterable[Mapping[str, str]],
    closed: frozenset[str],
    spent_by_lease: Mapping[str, int],
) -> list[LeaseClose]:
    """Closes for the previous process's leases that it did not close itself."""
    return [
        LeaseClose(
            lease_id=lease["lease_id"],
            budget=lease["budget"],
            spent_nanos=spent_by_lease.get(lease["lease_id"], 0),
            forfeit=True,
            reason="previous sidecar process ended without closing it",
        )
        for lease in previous
        if lease["lease_id"] not in closed
    ]
