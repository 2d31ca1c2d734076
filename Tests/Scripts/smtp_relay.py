#!/usr/bin/env python3
"""A real SMTP relay for the delivery tests: aiosmtpd (PyPI) on 127.0.0.1.

Every accepted message is written to OUTDIR/<n>.json (atomically): envelope, the exact
DATA bytes (latin-1 string), whether the session was TLS, who authenticated, MAIL options.
Every AUTH attempt is appended to OUTDIR/auth.log with "tls" or "clear" — a test that finds
"clear" there has caught credentials crossing the wire unencrypted.

  smtp_relay.py --outdir DIR [--starttls CERT KEY | --implicit-tls CERT KEY] [--auth USER:PASS]
                [--no-smtputf8] [--reply PHASE=TEXT ...] [--reply-once] [--stall-eod]
                [--max-sessions N] [--eod-delay SECONDS] [--reply-count N] [--record-then-stall]
PHASE is MAIL, RCPT or EOD (the reply to the end of data); TEXT e.g. "451 4.3.0 try later".
With --reply-once the scripted replies apply to the first transaction only, with --reply-count N
to the first N. --stall-eod never answers the end of data (and keeps nothing);
--record-then-stall keeps the message (as a relay that took it) and then never answers: every
copy the client sends is on disk. Each record has "at", the time it was taken (seconds).
--rcpt ADDRESS=TEXT refuses that recipient at RCPT with TEXT every time; --rcpt-once
ADDRESS=TEXT only the first time it is given (a recipient refused for now, then taken).
Concurrent sessions are counted: OUTDIR/sessions.state holds (JSON) {"now", "max", "refused"} after
every change; with --max-sessions N a session beyond N is refused at once with Microsoft 365's
"432 4.3.2 Concurrent connections limit exceeded". --eod-delay holds each end-of-data reply
(sessions then overlap as they do with a real relay).
Prints "PORT <n>" on stderr when it accepts connections; runs until SIGTERM.
"""
import argparse, asyncio, json, os, signal, socket, ssl, sys, threading, time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

p = argparse.ArgumentParser()
p.add_argument("--outdir", required=True)
p.add_argument("--starttls", nargs=2)
p.add_argument("--implicit-tls", nargs=2)
p.add_argument("--auth")
p.add_argument("--login-only", action="store_true", help="offer AUTH LOGIN but not PLAIN")
p.add_argument("--no-smtputf8", action="store_true")
p.add_argument("--reply", action="append", default=[])
p.add_argument("--reply-once", action="store_true")
p.add_argument("--reply-count", type=int, default=0)
p.add_argument("--record-then-stall", action="store_true")
p.add_argument("--stall-eod", action="store_true")
p.add_argument("--max-sessions", type=int, default=0)
p.add_argument("--eod-delay", type=float, default=0)
p.add_argument("--rcpt", action="append", default=[])
p.add_argument("--rcpt-once", action="append", default=[])
a = p.parse_args()
os.makedirs(a.outdir, exist_ok=True)
replies = dict(r.split("=", 1) for r in a.reply)
rcpt_always = dict(r.split("=", 1) for r in a.rcpt)
rcpt_once = dict(r.split("=", 1) for r in a.rcpt_once)
state = {"n": 0, "transactions": 0}
lock = threading.Lock()


def scripted(phase):
    if phase not in replies:
        return None
    if a.reply_once and state["transactions"] > 1:
        return None
    if a.reply_count and state["transactions"] > a.reply_count:
        return None
    return replies[phase]


class Handler:
    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        state["transactions"] += 1
        r = scripted("MAIL")
        if r:
            return r
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        r = scripted("RCPT")
        if r:
            return r
        if address in rcpt_always:
            return rcpt_always[address]
        if address in rcpt_once:
            return rcpt_once.pop(address)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if a.stall_eod:
            await asyncio.sleep(3600)
        if a.eod_delay:
            await asyncio.sleep(a.eod_delay)
        r = scripted("EOD")
        if r:
            return r
        with lock:
            state["n"] += 1
            n = state["n"]
        record = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "mail_options": envelope.mail_options,
            # Implicit TLS: the listener only speaks TLS (aiosmtpd sets session.ssl for STARTTLS only).
            "tls": session.ssl is not None or bool(a.implicit_tls),
            "auth": session.auth_data.decode() if isinstance(session.auth_data, bytes) else session.auth_data,
            "data": envelope.original_content.decode("latin-1"),
            "peer": list(session.peer)[:2],
            "at": time.time(),
        }
        tmp = os.path.join(a.outdir, f".{n}.tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(a.outdir, f"{n}.json"))
        if a.record_then_stall:
            await asyncio.sleep(3600)
        return f"250 2.0.0 OK queued as {n}"


sessions = {"now": 0, "max": 0, "refused": 0}


def write_sessions():
    tmp = os.path.join(a.outdir, ".sessions.tmp")
    with open(tmp, "w") as f:
        json.dump(sessions, f)
    os.rename(tmp, os.path.join(a.outdir, "sessions.state"))


class CountingSMTP(SMTP):
    def connection_made(self, transport):
        with lock:
            sessions["now"] += 1
            sessions["max"] = max(sessions["max"], sessions["now"])
            over = a.max_sessions and sessions["now"] > a.max_sessions
            if over:
                sessions["refused"] += 1
            write_sessions()
        super().connection_made(transport)
        if over:
            transport.write(b"432 4.3.2 Concurrent connections limit exceeded\r\n")
            transport.close()

    def connection_lost(self, exc):
        with lock:
            sessions["now"] -= 1
            write_sessions()
        super().connection_lost(exc)


class CountingController(Controller):
    def factory(self):
        return CountingSMTP(self.handler, **self.SMTP_kwargs)


def authenticator(server, session, envelope, mechanism, auth_data):
    secure = session.ssl is not None or bool(a.implicit_tls)
    with open(os.path.join(a.outdir, "auth.log"), "a") as f:
        f.write(f"{mechanism} {'tls' if secure else 'clear'}\n")
    if not a.auth or not isinstance(auth_data, LoginPassword):
        return AuthResult(success=False, handled=False)
    user, password = a.auth.split(":", 1)
    ok = auth_data.login.decode() == user and auth_data.password.decode() == password
    if not ok:
        return AuthResult(success=False, handled=False)   # aiosmtpd answers 535 5.7.8
    return AuthResult(success=True, auth_data=auth_data.login)


def context(cert, key):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]

kwargs = dict(hostname="127.0.0.1", port=port, enable_SMTPUTF8=not a.no_smtputf8,
              authenticator=authenticator, auth_require_tls=False, auth_required=bool(a.auth),
              decode_data=False, ident="test-relay")
if a.login_only:
    kwargs["auth_exclude_mechanism"] = ["PLAIN"]
if a.starttls:
    kwargs["tls_context"] = context(*a.starttls)
if a.implicit_tls:
    kwargs["ssl_context"] = context(*a.implicit_tls)
    kwargs["server_hostname"] = "localhost"

controller = CountingController(Handler(), **kwargs)
controller.start()
print(f"PORT {port}", file=sys.stderr, flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
signal.signal(signal.SIGINT, lambda *_: stop.set())
stop.wait()
controller.stop()
