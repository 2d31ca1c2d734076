/// The audit's page queries at 1 000 000 rows (issue target: ≤ 5 ms each): the first page, a
/// deep page (a cursor 900 000 rows in), a recipient search, a rare status, a date range, and
/// one entry's detail (row + attempts + the message read back). The database is built once
/// (≈1 KiB messages, 10 000 recipients, 0.5 % failed) at AUDIT_BENCH_DB (default
/// /tmp/tickiti-audit-1m.db) and reused while it holds the full row count.
import AuditAPI
import Benchmark
import Foundation
import MIME
import Store

let rowCount = 1_000_000
let path = ProcessInfo.processInfo.environment["AUDIT_BENCH_DB"] ?? "/tmp/tickiti-audit-1m/audit.db"
let start: Int64 = 1_790_000_000_000

struct Counter: RandomNumberGenerator {
    var n: UInt64 = 1
    mutating func next() -> UInt64 { n &+= 0x9E37_79B9_7F4A_7C15; return n }
}

func openSeeded() -> Database {
    let db = try! Database(path: path, synchronous: .normal)
    if (try? db.auditPage(AuditFilter(), limit: 1).first?.id) == Int64(rowCount) { return db }
    // Build: one transaction, 1 000 000 rows of realistic size (the accepted-at spacing of
    // one message per 100 ms spreads them over ~28 hours).
    var r = Counter()
    let raw = MessageBuilder.build(.init(fromAddress: "sales@shop.example", fromName: "Shop Sales", to: "customer@example.org",
                                         subject: "Your order has shipped",
                                         html: "<p>" + String(repeating: "Thank you for your order. ", count: 18) + "</p>", text: nil),
                                   epochSeconds: 1_790_000_000, random: &r).bytes
    try! db.begin()
    for i in 1...rowCount {
        let at = start + Int64(i) * 100
        let id = try! db.insertAccepted(NewMessage(
            acceptedAt: at, tokenID: 1, tokenName: "shop", idempotencyKey: "key-\(i)", fingerprint: [UInt8](repeating: 1, count: 32),
            responseStatus: 200, responseBody: [], mailboxName: "Sales", mailboxAddress: "sales@shop.example",
            recipient: "customer\(i % 10_000)@example.org", subject: "Your order \(i) has shipped", template: nil,
            messageID: "<\(i)@shop.example>", raw: raw))
        let status = i % 200 == 0 ? "failed" : i > rowCount - 500 ? "deferred" : "sent"
        try! db.recordAttempt(id: id, status: status, reply: status == "sent" ? "250 2.0.0 OK" : "550 5.1.1 no such user",
                              atMilliseconds: at + 50, nextAttemptAt: at + 60_000)
    }
    try! db.commit()
    return db
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .mallocCountTotal, .throughput],
                                           maxDuration: .seconds(2), maxIterations: 100_000)
    let db = openSeeded()
    let deep = AuditCursor(acceptedAt: start + 100_000 * 100, id: 100_000)   // 900 000 newer rows before it

    Benchmark("Audit page at 1M rows: first page (50)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try db.auditPage(AuditFilter(), limit: 51)) }
    }
    Benchmark("Audit page at 1M rows: deep page (900 000 rows in)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try db.auditPage(AuditFilter(), limit: 51, after: deep)) }
    }
    Benchmark("Audit page at 1M rows: recipient search (100 matches)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try db.auditPage(AuditFilter(recipient: "Customer4242@Example.org"), limit: 51)) }
    }
    Benchmark("Audit page at 1M rows: status=failed (0.5 %)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try db.auditPage(AuditFilter(status: "failed"), limit: 51)) }
    }
    Benchmark("Audit page at 1M rows: 1-hour date range, deep in the past") { benchmark in
        let from = start + 200_000 * 100
        for _ in benchmark.scaledIterations {
            blackHole(try db.auditPage(AuditFilter(since: from, until: from + 3_600_000), limit: 51))
        }
    }
    Benchmark("Audit page at 1M rows: recipient + status=failed") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try db.auditPage(AuditFilter(recipient: "customer4200@example.org", status: "failed"), limit: 51))
        }
    }
    Benchmark("Audit entry at 1M rows: detail (row + attempts + message read back)") { benchmark in
        for _ in benchmark.scaledIterations {
            let e = try db.auditEntry(id: 123_456)!
            blackHole(try db.deliveryAttempts(messageID: e.id))
            blackHole(MessageReader.read(e.raw))
        }
    }
}
