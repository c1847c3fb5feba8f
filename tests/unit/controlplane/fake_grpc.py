"""Just enough of a grpc.aio servicer context to call servicer methods directly."""

from __future__ import annotations

from typing import Any, NoReturn

import grpc


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class FakeContext:
    async def abort(self, code: grpc.StatusCode, details: str = "", *_: Any) -> NoReturn:
        raise Aborted(code, details)
