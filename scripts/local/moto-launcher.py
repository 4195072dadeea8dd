# Starts moto server on 127.0.0.1 with a port the OS chooses (port 0) and prints "PORT <n>" once it listens.
# It exits when its stdin closes, so a parent that dies without cleaning up never leaves moto behind.
import os
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server


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


serialize_dynamodb_writes()

app = DomainDispatcherApplication(create_backend_app)
server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
port = server.server_port
# moto builds some URLs (e.g. Lambda's endpoint) from MOTO_PORT.
os.environ["MOTO_PORT"] = str(port)


def exit_when_parent_goes() -> None:
    while sys.stdin.buffer.read(4096):
        pass
    os._exit(0)


threading.Thread(target=exit_when_parent_goes, daemon=True).start()
print(f"PORT {port}", flush=True)
server.serve_forever()
