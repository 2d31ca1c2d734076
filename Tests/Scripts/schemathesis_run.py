#!/usr/bin/env python3
"""schemathesis (PyPI) against a running tickiti-mail with the OpenAPI document it serves.

    schemathesis_run.py --url https://127.0.0.1:PORT --ca-file CERT.pem --token 'ID|SECRET'
                        [--schema URL-or-FILE] [--max-examples 20] [--max-time SECONDS]

Every operation of the document, in the examples, coverage and fuzzing phases (positive and
negative data), at most --max-examples generated cases per operation, with the checks
not_a_server_error, status_code_conformance, content_type_conformance and
response_schema_conformance: no 5xx, and every status, media type and body is one the document
describes. Exit status: schemathesis's (0 when nothing was found).

The token needs both abilities (send-email and audit-read) so the operations are reached past
authentication. Idempotency-Key values: a generated key that the server would accept is
replaced by a fresh UUIDv4 when it is 3 characters or longer, so most writes are new calls;
the short ones (hypothesis makes many "0", "!"…) are kept and collide on purpose, so replays
(`Idempotent-Replayed`) and 409 conflicts are exercised too. Invalid keys are sent as generated.

Only the given URL is contacted (127.0.0.1 in the test suite). This file is also the hooks
module: schemathesis loads it again through SCHEMATHESIS_HOOKS, under another module name.
"""
import argparse
import os
import subprocess
import sys
import uuid

if __name__ != "__main__":
    import schemathesis

    def _acceptable_key(value):
        return isinstance(value, str) and 1 <= len(value) <= 255 and all(0x21 <= ord(c) <= 0x7E for c in value)

    @schemathesis.hook
    def before_call(context, case, kwargs):
        headers = case.headers
        if not headers:
            return
        for name in list(headers):
            if name.lower() == "idempotency-key" and _acceptable_key(headers[name]) and len(headers[name]) >= 3:
                headers[name] = str(uuid.uuid4())


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="the server's base URL, e.g. https://127.0.0.1:8443")
    p.add_argument("--schema", help="the document (URL or file); default: URL/api/openapi.json")
    p.add_argument("--ca-file", help="CA bundle that verifies the server's certificate")
    p.add_argument("--token", required=True, help="a bearer token with send-email and audit-read")
    p.add_argument("--max-examples", type=int, default=20)
    p.add_argument("--max-time", type=int, default=None, help="a time budget for the whole run, in seconds")
    p.add_argument("--seed", type=int, default=None)
    args, extra = p.parse_known_args()

    schema = args.schema or args.url.rstrip("/") + "/api/openapi.json"
    argv = [
        sys.executable, "-m", "schemathesis.cli", "run", schema,
        "--url", args.url,
        "--tls-verify", args.ca_file or "false",
        "-H", f"Authorization: Bearer {args.token}",
        "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        "--phases", "examples,coverage,fuzzing",
        "--mode", "all",
        "--max-examples", str(args.max_examples),
        "--request-timeout", "10",
        "--generation-database", "none",
        "--no-color",
    ]
    if args.max_time:
        argv += ["--max-time", str(args.max_time)]
    if args.seed is not None:
        argv += ["--seed", str(args.seed)]
    argv += extra
    env = dict(os.environ, SCHEMATHESIS_HOOKS=os.path.realpath(__file__), NO_COLOR="1")
    print("$ " + " ".join(a if a.isprintable() and " " not in a else repr(a) for a in argv[1:]).replace(args.token, "<token>"), flush=True)
    return subprocess.call(argv, env=env)


if __name__ == "__main__":
    sys.exit(main())
