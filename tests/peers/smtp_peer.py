"""A real SMTP server for Messo's integration tests, built on aiosmtpd.

Run it with the venv that scripts/install-peers.sh makes:

    target/peers-venv/bin/python tests/peers/smtp_peer.py --dir DIR [--port 0]
        [--tls-cert CERT --tls-key KEY] [--require-starttls] [--implicit-tls]
        [--auth USER:PASS] [--fail-rcpt ADDR:CODE ...] [--fail-data-code CODE]
        [--delay-data SECONDS]

It listens on 127.0.0.1, prints one line `READY <port>` on stdout once it accepts connections,
and logs to stderr. Each accepted message is saved as DIR/<n>.eml (000001.eml, ...), holding the
DATA bytes as the client sent them (dot-stuffing undone, final "." line dropped), and described by
one JSON line in DIR/envelopes.jsonl: mail_from, rcpt_tos, file, tls, auth_user.
SIGTERM or SIGINT stops it with exit status 0.
"""

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import ssl
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult

REASONS = {
    ("RCPT", 4): "4.2.1 Mailbox busy, try again later",
    ("RCPT", 5): "5.1.1 No such mailbox",
    ("DATA", 4): "4.3.0 Temporary failure, try again later",
    ("DATA", 5): "5.6.0 Message refused",
}


def reply(stage, code):
    return f"{code} {REASONS[stage, code // 100]} (test peer)"


class Recorder:
    """aiosmtpd handler: applies the configured faults and saves what it accepts."""

    def __init__(self, args):
        self.dir = args.dir
        self.fail_rcpt = args.fail_rcpt
        self.fail_data_code = args.fail_data_code
        self.delay_data = args.delay_data
        saved = [int(f[:6]) for f in os.listdir(self.dir) if re.fullmatch(r"\d{6}\.eml", f)]
        self.count = max(saved, default=0)  # never overwrite what an earlier run saved

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        code = self.fail_rcpt.get(address.lower())
        if code is not None:
            return reply("RCPT", code)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.fail_data_code is None:
            self.save(server, session, envelope)
        if self.delay_data:
            await asyncio.sleep(self.delay_data)  # the message is already saved: a slow "250"
        if self.fail_data_code is not None:
            return reply("DATA", self.fail_data_code)
        return "250 OK: queued by test peer"

    def save(self, server, session, envelope):
        self.count += 1
        name = f"{self.count:06d}.eml"
        tmp = os.path.join(self.dir, f".{name}.tmp")
        with open(tmp, "wb") as f:
            f.write(envelope.original_content)
        os.replace(tmp, os.path.join(self.dir, name))  # readers never see a half-written file
        user = session.auth_data.login.decode("utf-8", "replace") if session.authenticated else None
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "file": name,
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "auth_user": user,
        }
        with open(os.path.join(self.dir, "envelopes.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")  # one write per line, after the .eml is in place
        print(f"smtp_peer: saved {name} from {envelope.mail_from} to {envelope.rcpt_tos}",
              file=sys.stderr, flush=True)


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        if auth_data.login == user.encode() and auth_data.password == password.encode():
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)  # handled=False: aiosmtpd answers 535
    return check


def parse_args():
    p = argparse.ArgumentParser(description="aiosmtpd SMTP peer for Messo's tests")
    p.add_argument("--dir", required=True, help="where messages and envelopes.jsonl go")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--require-starttls", action="store_true")
    p.add_argument("--implicit-tls", action="store_true", help="TLS from the first byte (SMTPS)")
    p.add_argument("--auth", metavar="USER:PASS")
    p.add_argument("--fail-rcpt", metavar="ADDR:CODE", action="append", default=[])
    p.add_argument("--fail-data-code", type=int, metavar="CODE")
    p.add_argument("--delay-data", type=float, default=0.0, metavar="SECONDS")
    args = p.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    if (args.require_starttls or args.implicit_tls) and not args.tls_cert:
        p.error("--require-starttls and --implicit-tls need --tls-cert and --tls-key")
    if args.require_starttls and args.implicit_tls:
        p.error("--require-starttls and --implicit-tls exclude each other")
    if args.auth and ":" not in args.auth:
        p.error("--auth takes USER:PASS")
    fails = {}
    for item in args.fail_rcpt:
        addr, _, code = item.rpartition(":")
        if not addr or not code.isdigit() or not 400 <= int(code) <= 599:
            p.error(f"--fail-rcpt takes ADDR:CODE with a 4xx or 5xx code, not {item!r}")
        fails[addr.lower()] = int(code)
    args.fail_rcpt = fails
    if args.fail_data_code is not None and not 400 <= args.fail_data_code <= 599:
        p.error("--fail-data-code takes a 4xx or 5xx code")
    os.makedirs(args.dir, exist_ok=True)
    return args


async def serve(args):
    loop = asyncio.get_running_loop()
    context = None
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
    smtp_options = {"hostname": "localhost", "enable_SMTPUTF8": True, "loop": loop}
    if context and not args.implicit_tls:
        smtp_options.update(tls_context=context, require_starttls=args.require_starttls)
    if args.auth:
        user, _, password = args.auth.partition(":")
        # AUTH needs TLS where TLS is on offer; with implicit TLS every session already has it.
        smtp_options.update(authenticator=authenticator(user, password), auth_required=True,
                            auth_require_tls=bool(context) and not args.implicit_tls)
    handler = Recorder(args)
    server = await loop.create_server(lambda: SMTP(handler, **smtp_options), "127.0.0.1",
                                      args.port, ssl=context if args.implicit_tls else None)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    await stop.wait()
    server.close()


def main():
    # Quiet aiosmtpd's notes on AUTH without TLS (the point of a loopback test peer) and on its
    # own use of a deprecated attribute; everything else it logs still reaches stderr.
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    logging.getLogger("mail.log").addFilter(
        lambda r: not any(s in r.getMessage() for s in ("auth_require_tls", "login_data")))
    args = parse_args()
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
