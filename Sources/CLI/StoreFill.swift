/// `tickiti-mail store fill` (hidden; for Benchmarks/ — issue 21's realistic workload): adds N
/// accepted-and-sent messages to a SQLite store through the store's own statements (the
/// acceptance insert with its idempotency record, then the delivery's attempt), so the indexes
/// are those of a database after days in production: random UUIDv4 keys, recipients drawn from
/// `--recipients` distinct addresses, accepted times spread over the last 24 hours (inside the
/// idempotency retention), ~1.2 KB messages like the seed's. Transactions of 10 000.
#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Store

struct StoreFill: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fill", abstract: "Benchmarks: add N sent messages to a SQLite store (random keys, many recipients).",
        shouldDisplay: false)
    @Option(help: databaseHelp) var db = defaultDatabase
    @Option(help: "Messages to add.") var messages = 1_000_000
    @Option(help: "Distinct recipient addresses.") var recipients = 100_000
    @Option(help: "The mailbox they went through (must exist).") var mailbox: String

    func run() throws {
        guard case .sqlite(let path) = StoreLocation(db) else { throw usageError("store fill works on a SQLite store") }
        let database = try Database(path: path)
        guard let token = try database.tokens().first else { throw usageError("the store needs a token first") }
        guard let box = try database.mailboxes().first(where: { $0.name == mailbox }) else { throw usageError("no mailbox named \(mailbox)") }
        var rng = SystemRandomNumberGenerator()
        func hex(_ n: Int) -> String { (0..<n).map { _ in String("0123456789abcdef".randomElement(using: &rng)!) }.joined() }
        let now = nowMilliseconds()
        let span: Int64 = 86_000_000
        let response = Array(#"{"ok":true,"data":{"mailbox":"\#(box.address)","used_template":false}}"#.utf8)
        let body = String(repeating: "<p>Your order has shipped. Tracking: TRACK-XYZ. Thank you for shopping with us.</p>\r\n", count: 12)
        var done = 0
        while done < messages {
            try database.begin()
            for _ in 0..<min(10_000, messages - done) {
                let at = now - span + Int64(done) * span / Int64(messages)
                let key = "\(hex(8))-\(hex(4))-4\(hex(3))-\(["8", "9", "a", "b"].randomElement(using: &rng)!)\(hex(3))-\(hex(12))"
                let to = "customer-\(Int.random(in: 0..<recipients, using: &rng))@example.test"
                let ms = String(at, radix: 16)
                let messageID = "<\(String(repeating: "0", count: max(0, 12 - ms.count)))\(ms).\(hex(16))@tickiti.localhost>"
                let raw = Array("""
                    Message-ID: \(messageID)\r
                    From: \(box.address)\r
                    To: \(to)\r
                    Subject: Your order SP-2412-0489 has shipped\r
                    MIME-Version: 1.0\r
                    Content-Type: text/html; charset=utf-8\r
                    \r
                    \(body)
                    """.utf8)
                let m = NewMessage(acceptedAt: at, tokenID: token.id, tokenName: token.name, idempotencyKey: key,
                                   fingerprint: (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }, responseStatus: 200,
                                   responseBody: response, mailboxName: box.name, mailboxAddress: box.address, recipient: to,
                                   subject: "Your order SP-2412-0489 has shipped", template: nil, messageID: messageID, raw: raw)
                let id = try database.insertAccepted(m, sending: true)
                try database.recordAttempt(id: id, status: "sent", outcome: "sent", reply: "250 2.0.0 Ok: queued",
                                           atMilliseconds: at + 50, nextAttemptAt: at + 50)
                done += 1
            }
            try database.commit()
        }
        print("added \(done) sent messages to \(path)")
    }
}
