"""The error answer of every endpoint, read and write alike."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response


class ApiError(Exception):
    """An error answer; ``code`` becomes ``X-Error-Code`` (the client maps it to a typed exception)."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}

    def response(self) -> Response:
        headers = dict(self.headers)
        if self.code:
            headers["X-Error-Code"] = self.code
            headers["X-Error-Message"] = self.code  # fixed text: request input never goes into a header
        return JSONResponse({"error": self.message}, status_code=self.status, headers=headers)
