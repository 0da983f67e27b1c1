"""Run code in a Jupyter kernel over its server's websocket, as a browser would (used by the
workshop and `make lab` tests): no client library between the test and the server."""

import json
import time
import uuid


def _request(ws, code):
    """Send an execute_request for `code`: its msg_id."""
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                   "msg_type": "execute_request", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}))
    return msg_id


def send(channels_url, token, code, timeout=10, gone=None):
    """`code` sent, without waiting for an answer that may never come (the kernel may be
    killed while it runs): until the kernel says it is busy with it, or until `gone()` says
    the kernel is no more (killed before its "busy" reached the server: seen once in CI, on a
    loaded machine, as a 10 s silence)."""
    import websocket
    ws = websocket.create_connection(channels_url, header=[f"Authorization: token {token}"],
                                     timeout=timeout)
    try:
        msg_id = _request(ws, code)
        ws.settimeout(0.5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                m = json.loads(ws.recv())
            except (websocket.WebSocketTimeoutException,
                    websocket.WebSocketConnectionClosedException) as e:
                if gone is not None and gone():
                    return
                if isinstance(e, websocket.WebSocketConnectionClosedException):
                    time.sleep(0.2)     # nothing more will come: only gone() can end it
                continue
            if m.get("parent_header", {}).get("msg_id") == msg_id and \
                    m["msg_type"] == "status" and m["content"]["execution_state"] == "busy":
                return
        raise AssertionError(f"the kernel did not take the code in {timeout} s")
    finally:
        ws.close()


def execute(channels_url, token, code, timeout=120):
    """(stdout and results as text, "Name: message" of an error or None) of `code` run in the
    kernel whose channels websocket is `channels_url`. Done when the shell channel replied and
    iopub went idle (the two channels keep no order between them)."""
    import websocket
    ws = websocket.create_connection(channels_url, header=[f"Authorization: token {token}"],
                                     timeout=timeout)
    try:
        msg_id = _request(ws, code)
        out, error, replied, idle = [], None, False, False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = json.loads(ws.recv())
            if m.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = m["msg_type"]
            if kind == "stream":
                out.append(m["content"]["text"])
            elif kind in ("execute_result", "display_data"):
                out.append(m["content"]["data"].get("text/plain", ""))
            elif kind == "error":
                error = f"{m['content']['ename']}: {m['content']['evalue']}"
            elif kind == "execute_reply":
                replied = True
            elif kind == "status" and m["content"]["execution_state"] == "idle":
                idle = True     # iopub's last word: the outputs came before it
            if replied and idle:
                return "".join(out), error
        raise AssertionError(f"no execute_reply in {timeout} s")
    finally:
        ws.close()
