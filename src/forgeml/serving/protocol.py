"""uvicorn's HTTP/1.1 protocol, with the answer to a request it cannot parse (a malformed
Content-Length, a broken request line) in the server's own shape: a JSON `{"error": ...}` 400
instead of uvicorn's plain text, like every other refusal (docs/serving.md)."""

from __future__ import annotations

import h11
import orjson
from uvicorn.protocols.http.h11_impl import H11Protocol


class JSONErrorH11Protocol(H11Protocol):
    def send_400_response(self, msg: str) -> None:
        body = orjson.dumps({"error": f"The request is not valid HTTP/1.1 ({msg.rstrip('.')}): "
                                      "check its request line and headers (Content-Length "
                                      "must be a number)."})
        headers = [(b"content-type", b"application/json"), (b"connection", b"close"),
                   (b"content-length", str(len(body)).encode())]
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                      h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()
