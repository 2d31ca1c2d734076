/// The per-request stages of `POST /api/send_email`, each alone, and the whole pure pipeline:
/// HTTP parse, JSON decode + validation, canonical fingerprint, bearer auth check, template
/// render, MIME build, SMTP reply parse, and the SQLite group commit of 1 / 16 / 64 accepted
/// rows (synchronous=FULL, WAL, on a temp file — what the server does once per loop turn).
import Auth
import Benchmark
import Foundation
import HTTP1
import Idempotency
import JSON
import MIME
import SMTPProtocol
import SendAPI
import Store
import Templates

struct BenchRandom: RandomNumberGenerator {
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

let templateBody = Array("""
    {"to_address":"marcus@trailblazers-club.example","template_identifier":"invoice_delivery",
     "data":{"invoice_number":"INV-2026-0488","amount":"£189.00","due_date":"2026-05-15"},"mailbox":"Sales"}
    """.utf8)
let directBody = Array("""
    {"to_address":"marcus@trailblazers-club.example","subject":"Your order SP-2412-0489 has shipped",
     "content":"<p>Hi Marcus,</p><p>Your order is on its way. Tracking: <b>TRACK-XYZ</b>.</p>"}
    """.utf8)
let secret = "s3cretS3cretS3cretS3cretS3cretS3cretS3cr"
let requestBytes = Array(("POST /api/send_email HTTP/1.1\r\nHost: localhost:8443\r\nAuthorization: Bearer 1|\(secret)\r\n"
    + "Idempotency-Key: 5a0c1b7e-3f5d-4f7e-9a51-0c6a3f7b2d11\r\nContent-Type: application/json\r\nUser-Agent: wrk\r\n"
    + "Content-Length: \(directBody.count)\r\n\r\n").utf8) + directBody

func tempDatabase() -> Database {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tickiti-bench-\(UUID().uuidString)").path
    return try! Database(path: dir + "/bench.db", synchronous: .full)
}

func newMessage(_ i: Int, raw: [UInt8]) -> NewMessage {
    NewMessage(acceptedAt: 1_795_000_000_000 + Int64(i), tokenID: 1, tokenName: "shop", idempotencyKey: "key-\(i)",
               fingerprint: [UInt8](repeating: 7, count: 32), responseStatus: 200,
               responseBody: Array(#"{"ok":true,"data":{"mailbox":"sales@shop.example","used_template":false}}"#.utf8),
               mailboxName: "Sales", mailboxAddress: "sales@shop.example", recipient: "customer\(i % 1000)@example.org",
               subject: "Your order SP-2412-0489 has shipped", template: nil, messageID: "<\(i)@shop.example>", raw: raw)
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .mallocCountTotal, .throughput],
                                           maxDuration: .seconds(2), maxIterations: 1_000_000)

    Benchmark("HTTP parse (send_email request)") { benchmark in
        for _ in benchmark.scaledIterations {
            var p = RequestParser(limits: HTTPLimits())
            var consumed = 0
            while consumed < requestBytes.count {
                let (n, event) = requestBytes.withUnsafeBytes { p.parse(UnsafeRawBufferPointer(rebasing: $0[consumed...])) }
                consumed += n
                blackHole(event)
                if case .end = event { break }
            }
        }
    }

    Benchmark("JSON decode + validate (direct)") { benchmark in
        for _ in benchmark.scaledIterations {
            let v = try SendAPI.parseBody(directBody).get()
            blackHole(try SendAPI.validate(v).get())
        }
    }

    Benchmark("JSON decode + validate (template)") { benchmark in
        for _ in benchmark.scaledIterations {
            let v = try SendAPI.parseBody(templateBody).get()
            blackHole(try SendAPI.validate(v).get())
        }
    }

    let parsedBody = try! SendAPI.parseBody(templateBody).get()
    Benchmark("Canonical fingerprint") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(Idempotency.fingerprint(parsedBody)) }
    }

    let stored = StoredToken(id: 1, name: "shop", secretHash: BearerToken.hash(secret: secret), abilities: ["send-email"], revoked: false)
    Benchmark("Auth check (parse + SHA-256 + constant-time compare)") { benchmark in
        for _ in benchmark.scaledIterations {
            let (_, s) = try BearerToken.parse(authorization: "Bearer 1|\(secret)").get()
            blackHole(try BearerToken.verify(secret: s, against: stored).get().grants("send-email"))
        }
    }

    let template = try! EmailTemplate(identifier: "invoice_delivery", subject: "Invoice {{invoice_number}}",
                                      html: "<p>Invoice {{invoice_number}}: {{amount}} due {{due_date}}.</p><p>Thank you!</p>", text: nil)
    let data = try! JSONParser.parse(Array(#"{"invoice_number":"INV-2026-0488","amount":"£189.00","due_date":"2026-05-15"}"#.utf8))
    Benchmark("Template render (missing-variable check + render)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(template.missingVariables(in: data))
            blackHole(template.render(data))
        }
    }

    Benchmark("MIME build (multipart/alternative, QP)") { benchmark in
        var r = BenchRandom()
        for _ in benchmark.scaledIterations {
            blackHole(MessageBuilder.build(.init(fromAddress: "sales@shop.example", fromName: "Shop Sales", to: "marcus@trailblazers-club.example",
                                                 subject: "Your order SP-2412-0489 has shipped",
                                                 html: "<p>Hi Marcus,</p><p>Your order is on its way. Tracking: <b>TRACK-XYZ</b>.</p>", text: nil),
                                           epochSeconds: 1_795_000_000, random: &r))
        }
    }

    // Attachments: the body's JSON decoded, the base64 checked, the message built around it
    // (re-wrapped, never decoded) — per byte of attachment, next to a plain copy of the same
    // bytes (the memcpy-order floor the issue sets).
    for (label, size) in [("200 KiB", 200 << 10), ("5 MiB", 5 << 20)] {
        var rng = BenchRandom()
        let pdf = (0..<size).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let body = Array(("{\"to_address\":\"a@b.example\",\"subject\":\"Invoice\",\"content\":\"<p>Attached.</p>\","
            + "\"attachments\":[{\"filename\":\"invoice.pdf\",\"content\":\"" + Data(pdf).base64EncodedString() + "\"}]}").utf8)
        Benchmark("Attachment \(label): JSON decode + validate + MIME build", configuration: .init(maxDuration: .seconds(3), maxIterations: 2000)) { benchmark in
            var r = BenchRandom()
            for _ in benchmark.scaledIterations {
                let v = try SendAPI.parseBody(body).get()
                let req = try SendAPI.validate(v).get()
                blackHole(MessageBuilder.build(.init(fromAddress: "sales@shop.example", fromName: "Shop", to: req.toAddress, subject: "Invoice",
                                                     html: "<p>Attached.</p>", text: nil, attachments: req.attachments),
                                               epochSeconds: 1_795_000_000, random: &r))
            }
        }
        Benchmark("Attachment \(label): reference, one copy of the request body", configuration: .init(maxDuration: .seconds(3), maxIterations: 2000)) { benchmark in
            for _ in benchmark.scaledIterations { blackHole(body.withUnsafeBufferPointer { Array($0) }) }
        }
    }

    let ehlo = Array("250-smtp.example.org Hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n".utf8)
    Benchmark("SMTP reply parse (7-line EHLO)") { benchmark in
        var replies: [SMTPReply] = []
        replies.reserveCapacity(4)
        for _ in benchmark.scaledIterations {
            var p = ReplyParser()
            replies.removeAll(keepingCapacity: true)
            try p.feed(ehlo, into: &replies)
            blackHole(replies)
        }
    }

    var r = BenchRandom()
    let raw = MessageBuilder.build(.init(fromAddress: "sales@shop.example", fromName: "Shop Sales", to: "marcus@trailblazers-club.example",
                                         subject: "Your order has shipped", html: String(decoding: directBody, as: UTF8.self), text: nil),
                                   epochSeconds: 1_795_000_000, random: &r).bytes
    for rows in [1, 16, 64] {
        Benchmark("SQLite group commit, \(rows) row(s), synchronous=FULL",
                  configuration: .init(metrics: [.wallClock, .mallocCountTotal, .throughput], maxDuration: .seconds(3), maxIterations: 2_000)) { benchmark in
            let db = tempDatabase()
            var i = 0
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                try db.begin()
                for _ in 0..<rows {
                    i += 1
                    try db.insertAccepted(newMessage(i, raw: raw))
                }
                try db.commit()
            }
            benchmark.stopMeasurement()
        }
    }

    Benchmark("Whole pure pipeline (parse → auth → JSON → fingerprint → validate → render → MIME)") { benchmark in
        var random = BenchRandom()
        for _ in benchmark.scaledIterations {
            var p = RequestParser(limits: HTTPLimits())
            var consumed = 0
            var head: RequestHead?
            var body: [UInt8] = []
            while consumed < requestBytes.count {
                let (n, event) = requestBytes.withUnsafeBytes { p.parse(UnsafeRawBufferPointer(rebasing: $0[consumed...])) }
                let base = consumed
                consumed += n
                switch event {
                case .head(let h): head = h
                case .body(let range): body.append(contentsOf: requestBytes[(base + range.lowerBound)..<(base + range.upperBound)])
                default: break
                }
                if case .end = event { break }
            }
            let h = head!.headers
            let (_, s) = try BearerToken.parse(authorization: h["Authorization"]).get()
            _ = try BearerToken.verify(secret: s, against: stored).get()
            blackHole(SendAPI.contentTypeIsJSON(h["Content-Type"]))
            let v = try SendAPI.parseBody(body).get()
            blackHole(Idempotency.fingerprint(v))
            let send = try SendAPI.validate(v).get()
            guard case .direct(let subject, let html) = send.content else { fatalError() }
            blackHole(MessageBuilder.build(.init(fromAddress: "sales@shop.example", fromName: "Shop Sales", to: send.toAddress,
                                                 subject: subject, html: html, text: nil), epochSeconds: 1_795_000_000, random: &random))
        }
    }
}
