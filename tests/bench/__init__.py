"""Faregate's benchmarks, run with `make bench` (`python -m tests.bench`).

One module per benchmark (`decision`, `router_rpc`, `ledger`), each exposing
`run(options) -> Section`; `stats` turns samples into medians and percentiles and
`report` prints the table and writes `bench-results/latest.json`. The machine is
shared and noisy, so every benchmark reports medians and ratios measured side by
side in one run; a stated target is printed as met or not, never failed on.

Nothing here is collected by pytest: no module or function carries a `test_` prefix.
"""
