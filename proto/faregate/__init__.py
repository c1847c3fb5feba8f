"""Faregate's shared core: the wire contract (`faregate.v1`, generated) and the
pure model both the control plane and the sidecar speak.

`faregate.model` and `faregate.pricing` are pure (no gRPC, no SQL, no clock);
`faregate.convert` is the one place that maps them to and from protobuf.
Nothing here imports `controlplane`, `sidecar` or `clients`.
"""
