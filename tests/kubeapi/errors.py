"""Kubernetes `Status` failures, raised by handlers and rendered as the response body."""

from __future__ import annotations

REASONS = {
    400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed", 406: "NotAcceptable",
    409: "Conflict", 410: "Expired", 415: "UnsupportedMediaType", 422: "Invalid",
    429: "TooManyRequests", 500: "InternalError",
}


class ApiError(Exception):
    """An API failure with the HTTP code, reason and details a real server would send."""

    def __init__(self, code: int, message: str, reason: str | None = None,
                 details: dict | None = None, headers: dict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            body["details"] = self.details
        return body


def not_found(rtype, name: str) -> ApiError:
    resource = f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural
    return ApiError(404, f'{resource} "{name}" not found',
                    details={"name": name, "group": rtype.group, "kind": rtype.plural})


def already_exists(rtype, name: str) -> ApiError:
    resource = f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural
    return ApiError(409, f'{resource} "{name}" already exists', reason="AlreadyExists",
                    details={"name": name, "group": rtype.group, "kind": rtype.plural})


def conflict(rtype, name: str, why: str) -> ApiError:
    resource = f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural
    return ApiError(409, f'Operation cannot be fulfilled on {resource} "{name}": {why}',
                    details={"name": name, "group": rtype.group, "kind": rtype.plural})


def invalid(rtype, name: str, causes) -> ApiError:
    summary = ", ".join(c.message for c in causes)
    return ApiError(422, f'{rtype.qualified} "{name}" is invalid: [{summary}]'
                    if len(causes) > 1 else f'{rtype.qualified} "{name}" is invalid: {summary}',
                    details={"name": name, "group": rtype.group, "kind": rtype.kind,
                             "causes": [c.as_dict() for c in causes]})
