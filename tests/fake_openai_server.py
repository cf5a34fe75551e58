"""A tiny OpenAI-compatible chat-completions server (stdlib `http.server`) on 127.0.0.1: the test double for
`semacdr.semantics.OpenAIBackend`.

Answers are deterministic functions of the item's turn (the last user message), so two runs give the same store.
Items whose title contains `BADITEM` always get an unusable answer (-> fallback); `RETRYITEM` gets an unusable answer
to the normal prompt and a good one to the strict retry prompt. `fail_first` makes the first N requests fail with
`fail_status` (with Retry-After 0); `delay` sleeps before answering (timeouts, concurrency); every request's
Authorization header and the peak number of requests in flight are recorded.
"""
from __future__ import annotations
import json, re, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def answer_for(messages: list[dict]) -> str:
    user = messages[-1]['content']
    strict = messages[0]['content'].startswith('Answer with exactly two lines')
    m = re.search(r'Item: ([^;\n]+)', user)
    title = m.group(1).strip() if m else 'unknown'
    if 'BADITEM' in title or ('RETRYITEM' in title and not strict):
        return "Specific: what the item is in its domain: type, key features, use, audience.\nAgnostic:"
    words = re.findall(r'\w+', title.lower())
    return (f"Specific: {title} as an everyday pick; sturdy build; for home users\n"
            f"Agnostic: calm routines and comfort ({' '.join(words[:2])}); practical value; weekend moods")


class FakeOpenAI:
    def __init__(self, delay: float = 0.0, fail_first: int = 0, fail_status: int = 500, retry_after: str | None = '0'):
        self.delay, self.fail_first, self.fail_status, self.retry_after = delay, fail_first, fail_status, retry_after
        self.requests, self.auth, self.in_flight, self.peak = 0, [], 0, 0
        self.lock = threading.Lock()
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get('Content-Length', 0))) or b'{}')
                with srv.lock:
                    srv.requests += 1
                    n = srv.requests
                    srv.auth.append(self.headers.get('Authorization'))
                    srv.in_flight += 1
                    srv.peak = max(srv.peak, srv.in_flight)
                try:
                    if self.path.rstrip('/') != '/v1/chat/completions':
                        return self._send(404, {'error': 'not found'})
                    if n <= srv.fail_first:
                        return self._send(srv.fail_status, {'error': 'try again'},
                                          {'Retry-After': srv.retry_after} if srv.retry_after else {})
                    if srv.delay:
                        time.sleep(srv.delay)
                    text = answer_for(body['messages'])
                    self._send(200, {'id': f'c{n}', 'object': 'chat.completion', 'model': body.get('model'),
                                     'choices': [{'index': 0, 'message': {'role': 'assistant', 'content': text},
                                                  'finish_reason': 'stop'}],
                                     'usage': {'prompt_tokens': 50, 'completion_tokens': len(text.split()),
                                               'total_tokens': 50 + len(text.split())}})
                finally:
                    with srv.lock:
                        srv.in_flight -= 1

            def _send(self, code, obj, headers=None):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}/v1'
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


if __name__ == '__main__':   # a standalone server for trying `semacdr generate --backend openai` by hand
    import sys
    with FakeOpenAI(delay=float(sys.argv[1]) if len(sys.argv) > 1 else 0.0) as s:
        print(s.url, flush=True)
        try:
            s.thread.join()
        except KeyboardInterrupt:
            pass
