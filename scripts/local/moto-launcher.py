# Starts moto server on 127.0.0.1 with a port the OS chooses (port 0) and prints "PORT <n>" once it listens.
# It exits when its stdin closes, so a parent that dies without cleaning up never leaves moto behind.
import logging
import os
import sys
import threading
import time

import moto.backends
import waitress
import moto.sqs.models
from moto.dynamodb.models import DynamoDBBackend
from moto.sqs.models import Queue, SQSBackend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app


def serialize_dynamodb_writes() -> None:
    """DynamoDB evaluates a write's condition and applies the write atomically; moto (5.2.5) does not: its
    threaded server can run two conditional updates of one item at once and let both pass the check. The
    ledger's lease depends on that atomicity (two workers claiming one message: exactly one wins), so every
    DynamoDB write here takes one lock, as the real service behaves. Reads stay concurrent."""
    lock = threading.RLock()
    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        original = getattr(DynamoDBBackend, name)

        def locked(*args, __original=original, **kwargs):
            with lock:
                return __original(*args, **kwargs)

        setattr(DynamoDBBackend, name, locked)


def lock_sqs_deletes() -> None:
    """moto (5.2.5) deletes a message by rebuilding the queue's message list from a copy, with no lock: two
    deletes at once (parallel DeleteMessageBatch calls) can each write back a list that still holds the other's
    message, which then stays in flight until its visibility timeout ends and is delivered again (and an
    enqueue in between is lost the same way). A deletion takes the lock the queue's enqueue already holds."""
    original = Queue.delete_message

    def delete_message(self, receipt_handle):  # type: ignore[no-untyped-def]
        with self._messages_lock:
            return original(self, receipt_handle)

    Queue.delete_message = delete_message


def read_retention_period_directly() -> None:
    """moto (5.2.5) checks each message a ReceiveMessage returns against the queue's retention period by
    computing every queue attribute three times over, approximate counts included: a scan of the whole queue
    per message returned, so a receive costs O(queue depth x batch) and a few hundred queued messages make
    the emulator, not the product, the bottleneck of the pipeline benchmark and the dev stack. Same rule,
    read from the queue itself."""

    def is_message_valid_based_on_retention_period(self, queue_name, message):  # type: ignore[no-untyped-def]
        retention_period = int(self.get_queue(queue_name).message_retention_period)
        return retention_period + message.sent_timestamp / 1000 > time.time()

    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period


def fast_sqs_clock() -> None:
    """moto's SQS asks for the time once per message per visibility/delay check — several times per queued
    message on every send and receive — through datetime arithmetic that costs ~20x time.time(). Same
    clock (seconds since the epoch, UTC), without the datetimes."""
    original_unix_time = moto.sqs.models.unix_time

    def unix_time_now(dt=None):  # type: ignore[no-untyped-def]
        return time.time() if dt is None else original_unix_time(dt)

    moto.sqs.models.unix_time = unix_time_now
    moto.sqs.models.unix_time_millis = lambda dt=None: unix_time_now(dt) * 1000.0


def list_moto_modules_once() -> None:
    """moto lists its own package directory (a listdir and ~150 isdir calls) on every request to route it;
    the list never changes while the server runs."""
    modules = tuple(moto.backends.list_of_moto_modules())
    moto.backends.list_of_moto_modules = lambda: modules


serialize_dynamodb_writes()
lock_sqs_deletes()
list_moto_modules_once()
read_retention_period_directly()
fast_sqs_clock()

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]"}


def loopback_only(wsgi_app):  # type: ignore[no-untyped-def]
    """moto has no auth and listens on loopback, but a web page can still reach it: by pointing a domain
    it owns at 127.0.0.1 (DNS rebinding) or by posting to it straight from the browser. Such a request names
    the page's host, or carries an Origin; the AWS SDKs and the CLI do neither. So only requests for a
    loopback name are served (any port: the benchmark's proxy forwards its own), and none with an Origin."""

    def guarded(environ, start_response):  # type: ignore[no-untyped-def]
        host = environ.get("HTTP_HOST", "").lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name not in LOOPBACK_HOSTS:
            start_response("421 Misdirected Request", [("Content-Type", "text/plain")])
            return [b"refused: this AWS emulator serves loopback host names only (DNS rebinding guard)\n"]
        if "HTTP_ORIGIN" in environ:
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return [b"refused: this AWS emulator does not serve web pages (a request with an Origin)\n"]
        return wsgi_app(environ, start_response)

    return guarded


app = loopback_only(DomainDispatcherApplication(create_backend_app))
# Served by waitress rather than moto's own werkzeug development server, which closes the connection after
# every response (`Connection: close`) and starts a thread per connection: a TCP handshake and a new thread
# for each AWS call, about half of the emulator's CPU per call. waitress keeps connections alive and runs
# requests on a pool of threads; 64 of them, since every SQS long poll holds one for up to 20 s.
server = waitress.create_server(
    app, host="127.0.0.1", port=0, threads=64, connection_limit=2000, backlog=2048, channel_timeout=300
)
port = server.effective_port
# moto builds some URLs (e.g. Lambda's endpoint) from MOTO_PORT.
os.environ["MOTO_PORT"] = str(port)


def exit_when_parent_goes() -> None:
    while sys.stdin.buffer.read(4096):
        pass
    os._exit(0)


threading.Thread(target=exit_when_parent_goes, daemon=True).start()
print(f"PORT {port}", flush=True)
server.run()
