#!/usr/bin/env python3
"""Opens N TLS keep-alive connections to https://127.0.0.1:PORT, sends one GET /healthz on
each (so every connection is past its handshake and first request, as a real idle client
is), prints "READY <n>" and keeps them open until stdin closes. Used by Benchmarks/run-idle."""
import asyncio, ssl, sys

port, n = int(sys.argv[1]), int(sys.argv[2])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE   # the benchmark's own throwaway certificate
request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

async def one(sem, conns):
    async with sem:
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        w.write(request)
        await w.drain()
        head = await r.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await r.readexactly(length)
        conns.append((r, w))

async def main():
    conns = []
    sem = asyncio.Semaphore(200)
    results = await asyncio.gather(*(one(sem, conns) for _ in range(n)), return_exceptions=True)
    errors = [e for e in results if isinstance(e, Exception)]
    print(f"READY {len(conns)} errors={len(errors)}" + (f" first={errors[0]!r}" if errors else ""), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
