#!/usr/bin/env python3
"""A tiny DNS server for the delivery tests, on IP:PORT (UDP).

  dns_server.py IP PORT MODE     MODE: answer (A 127.0.0.1 for every name, no AAAA),
                                       silent (never answers), wrongid (answers with a bad ID)
Prints "READY" on stderr once bound; logs each question to stderr; runs until SIGTERM.
"""
import socket, struct, sys

ip, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((ip, port))
print("READY", file=sys.stderr, flush=True)
while True:
    q, peer = s.recvfrom(512)
    if len(q) < 17:
        continue
    end = 12
    while q[end] != 0:
        end += q[end] + 1
    qtype = struct.unpack(">H", q[end + 1:end + 3])[0]
    print(f"question type {qtype} from {peer}", file=sys.stderr, flush=True)
    if mode == "silent":
        continue
    ident = struct.unpack(">H", q[:2])[0]
    if mode == "wrongid":
        ident ^= 0x5A5A
    answers = b""
    count = 0
    if qtype == 1:
        answers = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([127, 0, 0, 1])
        count = 1
    header = struct.pack(">HHHHHH", ident, 0x8180, 1, count, 0, 0)
    s.sendto(header + q[12:end + 5] + answers, peer)
