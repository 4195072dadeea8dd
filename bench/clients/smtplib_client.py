"""Benchmark client: Python's smtplib on one connection, the same job and result JSON as the Node clients.

smtplib does not pipeline: it sends MAIL, each RCPT, DATA and the body, waiting for each reply.
"""

import json
import resource
import smtplib
import sys
import time
from email.message import EmailMessage


def text_body(size: int) -> str:
    """The same body as body.ts textBody(): 74-character lines up to about `size` octets."""
    line = "The quick brown fox jumps over the lazy dog; pack my box with five dozen jugs."[:74]
    lines = []
    total = 0
    while total < size:
        lines.append(line)
        total += len(line) + 2
    return "\r\n".join(lines) + "\r\n"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() // 1024


def main() -> None:
    job = json.loads(sys.argv[1])
    workload = job["workload"]
    sender, recipients = job["from"], job["to"]
    baseline = rss_kib()
    client = smtplib.SMTP(job["host"], job["port"])
    client.ehlo()

    if workload["kind"] == "prebuilt":
        with open(workload["messageFile"], "rb") as source:
            raw = source.read()

        def send(_index: int) -> None:
            client.sendmail(sender, recipients, raw)

    elif workload["kind"] == "composed":
        text = text_body(workload["bodyBytes"]).replace("\r\n", "\n")

        def send(index: int) -> None:
            message = EmailMessage()
            message["From"] = sender
            message["To"] = ", ".join(recipients)
            message["Subject"] = f"Benchmark message {index}"
            message.set_content(text)
            client.send_message(message)

    else:
        raise SystemExit(f"workload {workload['kind']} is not implemented for smtplib")

    send(-1)
    started_at = time.time() * 1000
    cpu_before = cpu_seconds()
    for index in range(job["count"]):
        send(index)
    cpu = cpu_seconds() - cpu_before
    ended_at = time.time() * 1000
    client.quit()
    print(
        json.dumps(
            {
                "sent": job["count"],
                "elapsedMs": ended_at - started_at,
                "cpuMs": cpu * 1000,
                "startedAt": started_at,
                "endedAt": ended_at,
                "baselineRssKiB": baseline,
                "maxRssKiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
        )
    )


main()
